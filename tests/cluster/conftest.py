"""A real Pacemaker cluster around the local stack, once per module (about 20 s to form)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cluster_lab.lab import Lab, lab_unavailable, start_lab
from cluster_lab.network import run
from emulator.stack import LocalStack, start_stack
from tests.mover.conftest import FAST_AZURE, FAST_LIMITS, FAST_POLLS

UNAVAILABLE = lab_unavailable()


def require_lab() -> None:
    """Skip where the lab cannot run, saying why; as root (CI) a missing package fails the
    test instead: there the cluster tests must run (make system-deps installs them)."""
    if UNAVAILABLE is None:
        return
    if os.geteuid() == 0:
        pytest.fail(f"the cluster lab cannot run: {UNAVAILABLE}")
    pytest.skip(UNAVAILABLE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The mover on the local Azure (fast NIC updates, as the other end-to-end tests)."""
    require_lab()
    with start_stack(
        tmp_path_factory.mktemp("cluster-stack"),
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        **FAST_POLLS,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lab(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The cluster formed, the group on server01, the client answered by server01."""
    running = start_lab(stack, tmp_path_factory.mktemp("cluster-lab"))
    try:
        yield running
    finally:
        running.close()
        left = [n for n in run(["ip", "netns", "list"]).stdout.split() if running.network.tag in n]
        assert not left, f"namespaces left behind: {left}"
