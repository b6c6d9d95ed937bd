"""Requests for different IPs do not wait for each other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator.stack import LocalStack, start_stack

from .conftest import FAST_LIMITS, Mover

CLUSTERS = 10
NIC_UPDATE_SECONDS = 1.0


@pytest.fixture(scope="module")
def scale_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Ten two-node clusters, one IP each; NIC updates take a second."""
    with start_stack(
        tmp_path_factory.mktemp("scale"),
        topology=f"scale:{CLUSTERS}",
        azure_args=["--nic-update-seconds", str(NIC_UPDATE_SECONDS), "--retry-after", "1"],
        limits=FAST_LIMITS,
        lro_poll_seconds=0.1,
    ) as running:
        yield running


def test_ten_ips_move_in_parallel_not_one_after_another(scale_stack: LocalStack) -> None:
    mover = Mover(scale_stack)
    clusters = scale_stack.config["clusters"]
    jobs = [(c["members"][0]["name"], c["ips"][0]["address"]) for c in clusters]
    assert len(jobs) == CLUSTERS

    started = time.monotonic()
    with ThreadPoolExecutor(CLUSTERS) as pool:
        records = list(pool.map(lambda job: mover.move("acquire", job[0], ip=job[1]), jobs))
    elapsed = time.monotonic() - started

    assert all(r["status"] == "succeeded" for r in records), records
    for (vm, ip), _ in zip(jobs, records, strict=True):
        assert mover.holders(ip) == [f"{vm}-nic"]
    # One after another this takes more than 10 NIC updates (10 s).
    assert elapsed < CLUSTERS * NIC_UPDATE_SECONDS, elapsed
    spans = sorted((r["lockedAt"], r["finishedAt"]) for r in records)
    assert spans[-1][0] < spans[0][1], "the last move should start before the first ends"
