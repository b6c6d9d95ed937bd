"""A move reads what it needs: its members' NICs by id, never the resource group's list.

Judged from the local Azure's request log (what ARM was asked), ARM's holders, each
NIC's provisioningState and each VM's instance metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from emulator.azure.requestlog import RequestRecord
from emulator.stack import LocalStack, start_stack

from ..azure.helpers import with_secondary
from .conftest import FAST_AZURE, FAST_LIMITS, FAST_POLLS, Mover

CLUSTERS = 20  # a resource group of 40 NICs, of which a move needs 2
IP1 = "10.8.128.10"  # cluster0001's, on no NIC at the start
N1, N2, OTHER = "c0001n1", "c0001n2", "c0002n1"  # cluster0001's members, another cluster's VM


def nic_of(vm: str) -> str:
    return f"{vm}-nic"


@pytest.fixture(scope="module")
def group_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Twenty two-node clusters in one resource group; members' NICs learned from their VMs."""
    with start_stack(
        tmp_path_factory.mktemp("group"),
        topology=f"scale:{CLUSTERS}",
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        **FAST_POLLS,
    ) as running:
        yield running


@pytest.fixture
def group(group_stack: LocalStack) -> Mover:
    group_stack.control.reset()
    return Mover(group_stack)


def arm_reads(mover: Mover, since: int) -> list[RequestRecord]:
    return [r for r in mover.stack.control.requests(since, target="arm") if r.method == "GET"]


def last_segment(record: RequestRecord) -> str:
    return record.path.rstrip("/").rsplit("/", 1)[-1]


def assert_only_on(mover: Mover, ip: str, vm: str, others: tuple[str, ...]) -> None:
    """The IP as a user checks it: ARM's holders, the NICs Succeeded, instance metadata."""
    control = mover.stack.control
    assert mover.holders(ip) == [nic_of(vm)]
    for name in (vm, *others):
        state = control.nic(nic_of(name))["properties"]["provisioningState"]
        assert state == "Succeeded", (name, state)
        assert (ip in mover.imds_ips(name)) == (name == vm), name


def put_ip_on(mover: Mover, vm: str, ip: str = IP1) -> None:
    """The IP on ``vm``'s NIC, put there behind the mover's back (a holder that crashed)."""
    control = mover.stack.control
    control.set_nic(nic_of(vm), with_secondary(control.nic(nic_of(vm)), ip=ip))


def test_a_takeover_reads_only_the_members_nics_and_never_lists_the_group(group: Mover) -> None:
    put_ip_on(group, N1)  # its node crashed with the IP on its NIC
    seq = group.stack.control.last_seq()

    record = group.move("acquire", N2, ip=IP1)

    assert record["status"] == "succeeded", record
    names = [s["name"] for s in record["steps"]]
    assert names == ["find_holder", "remove_ip_config", "add_ip_config", "verify"]
    assert record["fromNics"][0].endswith(f"/{nic_of(N1)}")
    assert_only_on(group, IP1, N2, (N1,))
    reads = arm_reads(group, seq)
    lists = [r for r in reads if r.path.lower().rstrip("/").endswith("/networkinterfaces")]
    assert lists == []
    nic_reads = {last_segment(r) for r in reads if "/networkinterfaces/" in r.path.lower()}
    assert nic_reads == {nic_of(N1), nic_of(N2)}
    vm_reads = {last_segment(r) for r in reads if "/virtualmachines/" in r.path.lower()}
    assert vm_reads <= {N1, N2}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_takeover_writes_each_nic_as_it_read_it_and_reads_it_again_only_to_follow(
    group: Mover, mode: str
) -> None:
    """Each member's NIC is read once, to find the holder; its write goes back at that
    read's etag, so the only other NIC reads are the polls that follow an update ARM
    answered Updating."""
    control = group.stack.control
    control.update_settings(nic_update_mode=mode)
    put_ip_on(group, N1)
    seq = control.last_seq()

    record = group.move("acquire", N2, ip=IP1)

    assert record["status"] == "succeeded", record
    assert_only_on(group, IP1, N2, (N1,))
    puts = [r for r in control.requests(since=seq) if r.method == "PUT"]
    assert [(last_segment(r), r.status) for r in puts] == [(nic_of(N1), 200), (nic_of(N2), 200)]
    nic_reads = [
        (r.seq, last_segment(r))
        for r in arm_reads(group, seq)
        if "/networkinterfaces/" in r.path.lower()
    ]
    before_writes = sorted(name for at, name in nic_reads if at < puts[0].seq)
    assert before_writes == [nic_of(N1), nic_of(N2)]
    follows = [(at, name) for at, name in nic_reads if at > puts[0].seq]
    written_at = {last_segment(r): r.seq for r in puts}
    assert all(at > written_at[name] for at, name in follows), follows  # polls of writes
    assert {name for _, name in follows} == (set() if mode == "sync" else set(written_at))


def test_the_members_nics_one_move_learned_spare_the_next_moves_vm_reads(group: Mover) -> None:
    """Kept by the IP's lock (durable state), not by a worker process: after a restart
    of the host, with every process new, the failback reads no VM."""
    assert group.move("acquire", N1, ip=IP1)["status"] == "succeeded"
    group.stack.restart_host()
    seq = group.stack.control.last_seq()

    record = group.move("acquire", N2, ip=IP1)

    assert record["status"] == "succeeded", record
    assert_only_on(group, IP1, N2, (N1,))
    reads = arm_reads(group, seq)
    assert [r.path for r in reads if "/virtualmachines/" in r.path.lower()] == []
    assert {last_segment(r) for r in reads} == {nic_of(N1), nic_of(N2)}


def test_the_members_nics_are_read_in_parallel(group: Mover) -> None:
    control = group.stack.control
    # Every NIC read takes half a second: two read one after the other take a second.
    control.delay_next(2, 0.5, method="GET", path=f"networkInterfaces/{N1}-nic$")
    control.delay_next(1, 0.5, method="GET", path=f"networkInterfaces/{N2}-nic$")
    seq = control.last_seq()

    assert group.move("release", N1, ip=IP1)["status"] == "succeeded"  # reads N1's only
    assert group.move("acquire", N1, ip=IP1)["status"] == "succeeded"

    reads = [
        r
        for r in arm_reads(group, seq)
        if last_segment(r) in (nic_of(N1), nic_of(N2)) and r.duration_ms >= 400
    ]
    spans = sorted((r.time, r.time + r.duration_ms / 1000) for r in reads)
    assert len(spans) == 3, spans  # the release's read, then the acquire's two together
    assert spans[2][0] < spans[1][1], "the acquire's two reads should overlap"


def test_what_a_move_keeps_in_its_history_is_only_what_concerns_the_ip(group: Mover) -> None:
    put_ip_on(group, N1)
    record = group.move("acquire", N2, ip=IP1)
    assert record["status"] == "succeeded", record

    r = requests.get(
        f"{group.stack.rpc}instances/{record['requestId']}",
        params={"showHistory": "true", "showHistoryOutput": "true"},
        timeout=10,
    )
    events = r.json()["historyEvents"]
    history = json.dumps(events)
    completed = [e for e in events if e["EventType"] == "TaskCompleted"]
    reads = [e["Result"]["result"] for e in completed if e.get("FunctionName") == "read_nics"]
    # Find the holder; the verification is the updates' own final answers.
    assert len(reads) == 1
    assert sorted(n["name"] for n in reads[0]) == [nic_of(N1), nic_of(N2)]
    ended = [
        e["Result"]["result"]["nic"]
        for e in completed
        if e.get("FunctionName") in ("update_nic_ip_configs", "wait_for_nic_update")
        and "nic" in (e["Result"].get("result") or {})
    ]
    assert sorted(n["name"] for n in ended) == [nic_of(N1), nic_of(N2)]  # remove, add
    for nic in [*reads[0], *ended]:
        # Only the ip-configurations that carry the IP: not the NICs' primary ones.
        assert all(c["address"] == IP1 for c in nic["ipConfigs"]), nic
    assert nic_of(OTHER) not in history
    assert "ipconfig1" not in history


def test_a_non_members_nic_named_by_arm_is_never_touched_unless_forced(group: Mover) -> None:
    control = group.stack.control
    put_ip_on(group, OTHER)  # another cluster's VM holds cluster0001's IP
    seq = control.last_seq()

    record = group.move("acquire", N1, ip=IP1)

    assert record["status"] == "failed", record
    assert record["error"]["code"] == "held_by_non_member"
    assert f"/{nic_of(OTHER)} " in record["error"]["message"]
    # Found through ARM's answer to the add (refused: nothing changed), then read by id.
    (put,) = [r for r in control.requests(since=seq) if r.method == "PUT"]
    assert (last_segment(put), put.status, put.error_code) == (
        nic_of(N1),
        400,
        "PrivateIPAddressIsAllocated",
    )
    nic_reads = {
        last_segment(r) for r in arm_reads(group, seq) if "/networkinterfaces/" in r.path.lower()
    }
    assert nic_reads == {nic_of(N1), nic_of(N2), nic_of(OTHER)}
    assert group.holders(IP1) == [nic_of(OTHER)]
    assert control.nic(nic_of(N1))["properties"]["provisioningState"] == "Succeeded"

    token = group.operator_token()
    posted = group.post("acquire", N1, ip=IP1, token=token, target=N1, force=True)
    assert posted.status_code == 202, posted.text
    forced = group.wait(posted.json()["requestId"], N1, token=token)

    assert forced["status"] == "succeeded", forced
    assert [s["name"] for s in forced["steps"]] == [
        "find_holder",
        "add_ip_config",
        "find_holder",
        "remove_ip_config",
        "add_ip_config",
        "verify",
    ]
    assert forced["steps"][1]["error"]["code"] == "PrivateIPAddressIsAllocated"
    assert forced["steps"][3]["nic"].endswith(f"/{nic_of(OTHER)}")
    assert [n.rsplit("/", 1)[-1] for n in forced["fromNics"]] == [nic_of(OTHER)]
    assert_only_on(group, IP1, N1, (N2, OTHER))


@pytest.fixture(scope="module")
def named_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The seed topology, each member's NIC named in the configuration."""
    with start_stack(
        tmp_path_factory.mktemp("named"),
        azure_args=FAST_AZURE,
        limits=FAST_LIMITS,
        name_member_nics=True,
        **FAST_POLLS,
    ) as running:
        yield running


def test_members_whose_nics_are_configured_are_never_read_as_vms(
    named_stack: LocalStack,
) -> None:
    mover = Mover(named_stack)
    named_stack.control.reset()
    seq = named_stack.control.last_seq()

    assert mover.move("acquire", "server01")["status"] == "succeeded"
    assert mover.move("acquire", "server02")["status"] == "succeeded"

    mover.assert_only_on("server02")
    paths = [r.path.lower() for r in arm_reads(mover, seq)]
    assert paths and not [p for p in paths if "/virtualmachines/" in p]
    assert not [p for p in paths if p.rstrip("/").endswith("/networkinterfaces")]


@pytest.fixture(scope="module")
def one_thread_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Four clusters, NIC updates of 1.5 s, and a worker with one thread for synchronous
    functions (the orchestrations and entities need it too)."""
    with start_stack(
        tmp_path_factory.mktemp("one-thread"),
        topology="scale:4",
        azure_args=["--nic-update-seconds", "1.5", "--retry-after", "1"],
        limits=FAST_LIMITS,
        lro_poll_seconds=0.1,
        first_poll_seconds=1.0,
        host_settings={"PYTHON_THREADPOOL_THREAD_COUNT": "1"},
    ) as running:
        yield running


def _move_all_at_once(mover: Mover) -> float:
    """Each cluster's first member acquires its IP, all at once; the time it took."""
    clusters = mover.stack.config["clusters"]
    jobs = [(c["members"][0]["name"], c["ips"][0]["address"]) for c in clusters]
    started = time.monotonic()
    with ThreadPoolExecutor(len(jobs)) as pool:
        records = list(pool.map(lambda job: mover.move("acquire", job[0], ip=job[1]), jobs))
    elapsed = time.monotonic() - started
    assert all(r["status"] == "succeeded" for r in records), records
    for vm, ip in jobs:
        assert mover.holders(ip) == [nic_of(vm)]
    return elapsed


def test_waiting_for_arm_holds_no_thread(one_thread_stack: LocalStack) -> None:
    """ARM answers each PUT only when its 1.5 s update is done: four moves at once, with
    one worker thread, overlap only if no move holds the thread while ARM works (one after
    another they take 4 x 1.5 s)."""
    control = one_thread_stack.control
    control.reset()
    control.update_settings(nic_update_mode="sync")

    elapsed = _move_all_at_once(Mover(one_thread_stack))

    assert elapsed < 4.5, elapsed


def test_an_update_answered_updating_is_first_polled_a_typical_update_time_later(
    one_thread_stack: LocalStack,
) -> None:
    control = one_thread_stack.control
    control.reset()
    control.update_settings(nic_update_mode="async")
    seq = control.last_seq()

    _move_all_at_once(Mover(one_thread_stack))

    puts = control.requests(since=seq, method="PUT")
    answered = {last_segment(r): r.time + r.duration_ms / 1000 for r in puts}
    polls: dict[str, list[float]] = {}
    for r in control.requests(since=seq, method="GET"):
        # The NIC itself is polled (the operation only when an update fails).
        assert "/operations/" not in r.path, r
        nic = last_segment(r)
        if nic in answered and r.time > answered[nic]:
            polls.setdefault(nic, []).append(r.time)
    assert len(puts) == 4 and set(polls) == set(answered)  # each NIC written once
    for nic, times in polls.items():
        # firstPollSeconds (1 s) after ARM answered the PUT, then every 0.1 s until the
        # update ends (1.5 s): not from the moment the PUT was answered.
        assert min(times) - answered[nic] >= 0.9, (nic, times)
        assert len(times) <= 8, (nic, times)
