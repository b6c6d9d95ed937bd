"""What running the app in Microsoft's worker costs: per invocation and per move, same run.

The local host now runs every function in Microsoft's Python worker library over
FunctionRpc (gRPC), as Azure does. Before that (commit ``--before``, default the last
commit without the worker) it imported the app and called the functions in its own
process. This benchmark extracts that earlier ``emulator`` package from git into a
temporary folder and measures both hosts one after the other in the same run:

- per HTTP invocation: the median round trip of ``GET /api/ping`` (bench/worker_app);
- per activity step: a durable chain of N activities, started through the management
  API and polled every millisecond until it completes; (time of N steps - time of 1
  step) / (N - 1), median of the runs;
- per move: the mover's takeover (POST acquire to ``succeeded``) on the local Azure with
  NIC updates of ``--nic-update-seconds`` (median of ``--runs``).

Usage: python -m bench.worker [--runs 5] [--http-calls 300] [--chain 20]
                             [--nic-update-seconds 2] [--before REV] [--output FILE]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from emulator.launch import REPO_ROOT, ServiceProcess, start_service
from emulator.stack import start_stack

from .takeover import mover_takeover

# The last commit whose host ran the app in its own process.
BEFORE_WORKER = "d66a941"
WORKER_APP = Path(__file__).with_name("worker_app")


@dataclass
class HostFigures:
    """One host's figures (seconds)."""

    label: str
    http: list[float] = field(default_factory=list)
    step: list[float] = field(default_factory=list)
    move: list[float] = field(default_factory=list)


def extract_emulator(rev: str, into: Path) -> Path:
    """The ``emulator`` package of commit ``rev``, unpacked into ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", rev, "emulator"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    _skip_timer_functions(into / "emulator" / "host" / "app_loader.py")
    return into


# That host refused functions of any other trigger; the app's retention job (a
# timer function, not measured here) came later. Its copy leaves timers out.
_REFUSAL = """        else:
            raise ValueError(f"function {indexed.name!r}: trigger {kind!r} is not supported")"""
_TIMERS_LEFT_OUT = (
    """        elif kind == "timerTrigger":
            continue
"""
    + _REFUSAL
)


def _skip_timer_functions(loader: Path) -> None:
    if not loader.exists():
        return
    text = loader.read_text()
    if _REFUSAL not in text:
        raise RuntimeError(f"{loader}: cannot teach this host to leave timer functions out")
    loader.write_text(text.replace(_REFUSAL, _TIMERS_LEFT_OUT))


def _host(app_dir: Path, state: Path, emulator_root: Path) -> ServiceProcess:
    return start_service(
        ["host", "--app-dir", str(app_dir), "--state", str(state), "--port", "0"],
        log_path=state / "host.log",
        emulator_root=emulator_root,
    )


def measure_invocations(
    figures: HostFigures, emulator_root: Path, state: Path, http_calls: int, chain: int, runs: int
) -> None:
    """HTTP round trips and activity steps on the bench app."""
    service = _host(WORKER_APP, state, emulator_root)
    try:
        url, rpc = service.info["url"], service.info["rpcBaseUrl"]
        session = requests.Session()
        for _ in range(20):  # warm up
            session.get(f"{url}/api/ping", timeout=10).raise_for_status()
        for _ in range(http_calls):
            started = time.perf_counter()
            session.get(f"{url}/api/ping", timeout=10).raise_for_status()
            figures.http.append(time.perf_counter() - started)
        for _ in range(runs):
            one = _chain(session, rpc, 1)
            many = _chain(session, rpc, chain)
            figures.step.append((many - one) / (chain - 1))
    finally:
        service.stop()


def _chain(session: requests.Session, rpc: str, steps: int) -> float:
    started = time.perf_counter()
    r = session.post(f"{rpc}orchestrators/chain", json=steps, timeout=30)
    r.raise_for_status()
    status_url = f"{rpc}instances/{r.json()['id']}"
    deadline = started + 120
    while time.perf_counter() < deadline:
        status = session.get(status_url, timeout=30).json()
        if status["runtimeStatus"] not in ("Pending", "Running"):
            break
        time.sleep(0.001)
    elapsed = time.perf_counter() - started
    if status["runtimeStatus"] != "Completed" or status["output"] != steps:
        raise RuntimeError(f"chain of {steps}: {status}")
    return elapsed


def measure_moves(
    figures: HostFigures, emulator_root: Path, state: Path, runs: int, nic_update: float
) -> None:
    """Takeovers of the seed topology's IP, alternating between the two VMs."""
    stack = start_stack(
        state,
        azure_args=["--nic-update-seconds", str(nic_update), "--retry-after", "10"],
        host_emulator_root=emulator_root,
    )
    try:
        mover_takeover(stack, "server01")  # the IP on no NIC: a start, not timed
        for i in range(runs):
            figures.move.append(mover_takeover(stack, "server02" if i % 2 == 0 else "server01"))
    finally:
        stack.stop()


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms"


def report(before: HostFigures, worker: HostFigures, args: argparse.Namespace) -> str:
    """The figures as Markdown, the worker side by side with the host before it."""
    rows = [
        ("HTTP invocation (`GET /api/ping`, round trip)", "http", _ms),
        ("activity step (activity + orchestrator episode)", "step", _ms),
        (
            "takeover (two NIC updates + the mover's steps)",
            "move",
            lambda v: f"{statistics.median(v):.2f} s",
        ),
    ]
    lines = [
        "# What the worker costs",
        "",
        f"`python -m bench.worker --runs {args.runs} --http-calls {args.http_calls} "
        f"--chain {args.chain} --nic-update-seconds {args.nic_update_seconds}` "
        f"on {time.strftime('%Y-%m-%d')}, commit "
        f'{_git("rev-parse", "--short", "HEAD")}; "before" is the host of commit '
        f"{args.before} (the app called in the host's own process), run in the same run. "
        "Medians.",
        "",
        "| per | before (in-process) | Microsoft's worker (gRPC) | added | ratio |",
        "|---|---|---|---|---|",
    ]
    for label, key, fmt in rows:
        b, w = getattr(before, key), getattr(worker, key)
        added = statistics.median(w) - statistics.median(b)
        added_text = f"{added * 1000:+.2f} ms" if key != "move" else f"{added:+.2f} s"
        ratio = statistics.median(w) / statistics.median(b)
        lines.append(f"| {label} | {fmt(b)} | {fmt(w)} | {added_text} | {ratio:.2f}x |")
    lines += [
        "",
        f"Takeovers (s), before: {[round(t, 2) for t in before.move]}; "
        f"worker: {[round(t, 2) for t in worker.move]}. "
        f"Floor of a takeover: {2 * args.nic_update_seconds:.2f} s (two NIC updates).",
        "",
    ]
    return "\n".join(lines)


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False
    ).stdout.strip()


def main() -> None:
    """Measure both hosts and print (and optionally write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--http-calls", type=int, default=300)
    parser.add_argument("--chain", type=int, default=20)
    parser.add_argument("--nic-update-seconds", type=float, default=2.0)
    parser.add_argument("--before", default=BEFORE_WORKER)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        root = Path(tmp)
        before_root = extract_emulator(args.before, root / "before")
        before, worker = HostFigures("before"), HostFigures("worker")
        for figures, emulator_root in ((before, before_root), (worker, REPO_ROOT)):
            label = figures.label
            print(f"[{time.strftime('%H:%M:%S')}] {label}: invocations", flush=True)
            measure_invocations(
                figures,
                emulator_root,
                root / f"{label}-app",
                args.http_calls,
                args.chain,
                args.runs,
            )
            print(f"[{time.strftime('%H:%M:%S')}] {label}: moves", flush=True)
            measure_moves(
                figures, emulator_root, root / f"{label}-stack", args.runs, args.nic_update_seconds
            )
    text = report(before, worker, args)
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
