"""Section 4: the node client's start-up time and peak memory, vs ``python3 -c pass``.

``status`` runs at every monitor interval and ``acquire`` at every start, so their own
cost matters on a busy node. Measured with the logic of tests/node_client/
measure_startup.py (kept there for the node client's docs; its ``measure`` is reused
here): each command under GNU time (``/usr/bin/time -f %M``, the child's own maximum
RSS), alternating with the baseline, against the node client tests' fake IMDS + API on
loopback (tests/node_client/fake_azure.py), so the figures are the client's cost, not the
mover's: ``status`` finds the IP here (exit 0, IMDS only); ``acquire`` finds the move
already done (token, one POST answered 200, IMDS check). Interpreter: the distribution's
``/usr/bin/python3`` when there is one (what a node runs), else this one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from tests.node_client.conftest import CLIENT, clean_env
from tests.node_client.fake_azure import AUDIENCE, CLUSTER_IP, THIS_NIC, FakeServer
from tests.node_client.measure_startup import measure

from .common import median


@dataclass
class ClientFigures:
    """Median wall seconds and maximum RSS (KiB) per command, and the interpreter."""

    python: str
    version: str
    runs: int
    wall: dict[str, float]
    rss_kib: dict[str, float]


def _interpreter() -> str:
    system = "/usr/bin/python3"
    return system if shutil.which(system) else sys.executable


def run(runs: int, log: Callable[[str], None]) -> ClientFigures:
    """``runs`` rounds of: baseline, status, acquire (each a fresh process)."""
    if not shutil.which("/usr/bin/time"):
        raise RuntimeError("GNU time (/usr/bin/time) is needed: apt-get install time")
    python = _interpreter()
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    server = FakeServer().start()
    config = tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="ipmover-")  # noqa: SIM115
    config.write("[ipmover]\n")
    config.flush()
    try:
        state = server.state
        state.holder = THIS_NIC  # the IP is here: status exits 0, acquire has nothing to move
        state.visible[CLUSTER_IP] = 0.0
        state.step_time = 0.0  # the fake's move finishes at once: POST answers 200
        env = clean_env(
            IPMOVER_IMDS_URL=server.url,
            IPMOVER_URL=server.url,
            IPMOVER_AUDIENCE=AUDIENCE,
            IPMOVER_IP=CLUSTER_IP,
            IPMOVER_CONFIG=config.name,
        )
        commands = {
            "python3 -c pass": [python, "-c", "pass"],
            "ipmover status": [python, str(CLIENT), "status", "--quiet"],
            "ipmover acquire": [python, str(CLIENT), "acquire", "--quiet"],
        }
        samples: dict[str, list[tuple[float, int]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                elapsed, rss, code = measure(command, env)
                if code != 0:
                    raise RuntimeError(f"{name} exited {code}")
                samples[name].append((elapsed, rss))
    finally:
        server.stop()
        config.close()
    wall = {name: median([s[0] for s in values]) for name, values in samples.items()}
    rss = {name: median([s[1] for s in values]) for name, values in samples.items()}
    for name in commands:
        log(f"client {name:16} {wall[name] * 1000:7.1f} ms  {rss[name] / 1024:5.1f} MiB")
    return ClientFigures(python, version, runs, wall, rss)
