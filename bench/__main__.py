"""``python -m bench``: every benchmark, side by side with its baseline, into docs/benchmarks.md.

    .venv/bin/python -m bench [--quick] [--only timing,races,scale,client]
                              [--output docs/benchmarks.md] [--sizes 10,100,500,1000]
                              [--layouts shared,per-cluster] [--scale-limit SECONDS]
                              [--worker-processes 2]

Sections (docstrings of each module say what and why):

1. ``bench.timing`` - start / takeover / switchover time, node client vs the vendor's
   scripts with azure-cli, with NIC updates answered Updating (ARM ``Retry-After`` 10
   and 1) and answered in the PUT;
2. ``bench.races`` - both nodes starting at once, a stop racing a start, a takeover from
   a crashed holder: outcomes of the vendor's scripts vs ours;
3. ``bench.scale`` - N clusters failing over at once through one Function app, all in one
   resource group and each in its own;
4. ``bench.client`` - the node client's start-up time and peak memory.

Section 5, ``python -m bench.pacemaker`` (a real Pacemaker cluster failing over, and the
outage its client sees), needs root and runs on its own; this command keeps its section.

The full run takes 20 to 35 minutes on the project's 2-core machine (the longer while
scale sizes run into their limits), ``--quick`` a few.
Everything is bounded (timeouts on every script, a time limit per scale size: a minute plus
twice what ARM's write budget imposes, so at most 7 minutes for N = 1,000) and stops
what it started. The report is rewritten after each section, so an interrupted run
leaves what it measured (marked incomplete); the figures are also kept in
bench/.last-run.pickle (ignored by git), and ``--render`` rewrites the report from them
without measuring again. Needs GNU time (``/usr/bin/time``, Debian package ``time``) for
section 4, and PyPI once for azure-cli (section 1 and 2's baseline).

``bench.takeover`` is the older, narrower benchmark (the mover vs the SDK's own poller);
it still runs on its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from . import client, races, scale, timing
from .azcli import ensure_azure_cli
from .common import REPO_ROOT, machine, seed_stack
from .report import Report

SECTIONS = ("timing", "races", "scale", "client")
NIC_UPDATE = 2.0  # seconds per NIC update in sections 1 and 2 (Azure: ~10, varies)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs and sizes")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "docs" / "benchmarks.md",
        help="Markdown report (default docs/benchmarks.md)",
    )
    parser.add_argument(
        "--sizes",
        help="scale section: comma-separated N (default 10,100,500,1000; quick 10,100)",
    )
    parser.add_argument(
        "--layouts",
        default=",".join(scale.LAYOUTS),
        help="scale section: resource groups, 'shared' (one for all clusters) and/or "
        "'per-cluster' (default both)",
    )
    parser.add_argument(
        "--scale-limit",
        type=float,
        help="scale section: seconds allowed per N, posting included (default 60 s plus "
        "twice the write budget's time, (2N - 200) / 10 s)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=scale.WORKER_PROCESSES,
        help="scale section: the host's FUNCTIONS_WORKER_PROCESS_COUNT "
        f"(default {scale.WORKER_PROCESSES})",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: rewrite the report from the last run's figures",
    )
    args = parser.parse_args(argv)
    if args.render:
        Report.load_last().write(args.output)
        _log(f"rewrote {args.output} from the last run's figures")
        return 0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")

    # Runs per setting of the local ARM, (how it answers NIC updates, Retry-After). Azure
    # was recorded answering both ways: Updating with Retry-After 10, or Succeeded in the
    # PUT itself (no Retry-After). Retry-After 1 shows the vendor's scripts with the poll
    # wait nearly gone; --quick leaves it out.
    runs: dict[timing.Setting, int] = (
        {("async", 10.0): 3, ("sync", 10.0): 3}
        if args.quick
        else {("async", 10.0): 5, ("async", 1.0): 3, ("sync", 10.0): 5}
    )
    race_runs = 1 if args.quick else 3
    sizes = (10, 100) if args.quick else (10, 100, 500, 1000)
    if args.sizes:
        sizes = tuple(int(n) for n in args.sizes.split(","))
    layouts = tuple(x.strip() for x in args.layouts.split(",") if x.strip())
    if set(layouts) - set(scale.LAYOUTS):
        parser.error(f"unknown layouts {sorted(set(layouts) - set(scale.LAYOUTS))}")
    client_runs = 7 if args.quick else 21
    command = "python -m bench" + (" --quick" if args.quick else "")
    if set(only) != set(SECTIONS):
        command += f" --only {','.join(only)}"
    if args.sizes:
        command += f" --sizes {args.sizes}"
    if args.layouts != parser.get_default("layouts"):
        command += f" --layouts {args.layouts}"
    if args.scale_limit:
        command += f" --scale-limit {args.scale_limit:g}"
    if args.worker_processes != scale.WORKER_PROCESSES:
        command += f" --worker-processes {args.worker_processes}"

    started = time.monotonic()
    report = Report(command=command, machine=machine(), quick=args.quick, scale_sizes=sizes)
    _log(f"benchmark: {', '.join(only)}; report to {args.output}")
    _log("machine: {nproc} cores, {cpu}, {ram}; commit {commit}".format(**report.machine))
    with tempfile.TemporaryDirectory(prefix="ipmover-bench-") as tmp:
        work = Path(tmp)
        if "timing" in only or "races" in only:
            report.az_version = ensure_azure_cli()
            _log(f"azure-cli {report.az_version}; starting the seed stack")
            stack = seed_stack(work / "seed", NIC_UPDATE, retry_after=10)
            try:
                sides = timing.Sides(stack, work)
                if "timing" in only:
                    report.timing = timing.run(stack, sides, runs, _log)
                    report.write(args.output)
                if "races" in only:
                    stack.control.update_settings(retry_after=10, nic_update_mode="mixed")
                    report.races = races.run(sides, race_runs, _log)
                    report.write(args.output)
            finally:
                stack.stop()
        if "scale" in only:
            report.scale = []
            report.scale_layouts = layouts
            for n in sizes:
                for layout in layouts:
                    limit = args.scale_limit or scale.time_limit(n)
                    report.scale.append(
                        scale.run_one(work, n, limit, _log, layout, args.worker_processes)
                    )
                    report.write(args.output)
        if "client" in only:
            report.client = client.run(client_runs, _log)
    report.seconds = time.monotonic() - started
    report.write(args.output)
    _log(f"done in {report.seconds / 60:.1f} minutes; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
