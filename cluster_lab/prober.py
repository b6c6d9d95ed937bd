"""The cluster's user: sends HTTP requests to the VIP back to back, records every outcome.

``python -m cluster_lab.prober URL OUTPUT`` runs in the client's namespace. Each request is
one JSON line: ``{"start": t0, "end": t1, "node": "server01"}`` for an answer,
``{"start": t0, "end": t1, "error": "..."}`` for a failure (wall-clock seconds, shared by
every namespace of the host). A new connection per request, as a fresh client would open:
an old keep-alive connection would hide a move. Runs until SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

__all__ = ["Probe", "main", "read_probes"]

# A request that has no answer within this time counts as failed. It bounds how finely the
# outage is seen: the VNet drops packets for an address nobody holds (no refusal comes back).
REQUEST_TIMEOUT = 0.5
PAUSE = 0.02  # between requests, so the client does not spin on instant refusals


@dataclass
class Probe:
    """One request's outcome: ``node`` answered, or ``error``."""

    start: float
    end: float
    node: str | None = None
    error: str | None = None


def probe(host: str, port: int) -> Probe:
    """One GET of / on a fresh connection."""
    start = time.time()
    connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read().decode(errors="replace").strip()
        if response.status != 200:
            return Probe(start, time.time(), error=f"HTTP {response.status}")
        return Probe(start, time.time(), node=body)
    except OSError as exc:
        return Probe(start, time.time(), error=type(exc).__name__)
    finally:
        connection.close()


def read_probes(path: Path) -> list[Probe]:
    """The probes recorded so far (a partly written last line is skipped)."""
    probes = []
    if not path.exists():
        return probes
    for line in path.read_text().splitlines():
        try:
            probes.append(Probe(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return probes


def main(argv: list[str] | None = None) -> int:
    """Probe until SIGTERM."""
    url, output = (argv or sys.argv[1:])[:2]
    parts = urlsplit(url)
    running = True

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    with Path(output).open("a", buffering=1) as out:
        while running:
            result = probe(parts.hostname or "", parts.port or 80)
            out.write(json.dumps({k: v for k, v in asdict(result).items() if v is not None}) + "\n")
            time.sleep(PAUSE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
