"""Measure the client's start-up time and peak memory for `status` (docs/node-client.md).

    .venv/bin/python -m tests.node_client.measure_startup [--runs 21] [--python PYTHON ...]

For each interpreter, runs `python -c pass` (the baseline) and `python ipmover.py status`
against the fake IMDS (the IP present, so exit 0), alternating, under GNU time
(`/usr/bin/time -f "%e %M"`: it forks from a small process, so the maximum RSS is the
child's own, not a copy of this Python process), and prints the median wall time and the
median maximum RSS of each. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from .conftest import CLIENT, clean_env
from .fake_azure import CLUSTER_IP, FakeServer


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, maximum RSS in KiB and exit code of one run."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        result = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%M", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - started
        return elapsed, int(report.read().split()[-1]), result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--python", action="append", help="interpreter(s) to measure")
    parser.add_argument("--client", default=str(CLIENT), help="another copy of ipmover.py")
    args = parser.parse_args()
    pythons = args.python or [sys.executable]
    server = FakeServer().start()
    server.state.visible[CLUSTER_IP] = 0.0
    env = clean_env(IPMOVER_IMDS_URL=server.url, IPMOVER_IP=CLUSTER_IP)
    print(f"{'python':<40} {'command':<22} {'median ms':>10} {'median max RSS MiB':>19}")
    for python in pythons:
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commands = {
            "-c pass": [python, "-c", "pass"],
            "ipmover.py status": [python, args.client, "status", "--quiet"],
        }
        results: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                elapsed, rss, code = measure(command, env)
                assert code == 0, (command, code)
                results[name].append((elapsed, rss))
        for name, samples in results.items():
            wall = statistics.median(s[0] for s in samples) * 1000
            rss = statistics.median(s[1] for s in samples) / 1024
            print(f"{python + ' (' + version + ')':<40} {name:<22} {wall:>10.1f} {rss:>19.1f}")
    server.stop()


if __name__ == "__main__":
    main()
