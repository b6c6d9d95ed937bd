"""Run the host emulator on its sample app and show an orchestration at work.

A placeholder until the failover demo exists: it proves the local Functions
host runs a Durable app end to end, and leaves nothing running.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import requests

from emulator.launch import REPO_ROOT, start_service

SAMPLE_APP = REPO_ROOT / "tests" / "host" / "sample_app"


def main() -> int:
    """Start the host, run a fan-out and a retried activity, print what happened."""
    with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        state = Path(tmp)
        host = start_service(
            ["host", "--app-dir", str(SAMPLE_APP), "--state", str(state), "--port", "0"],
            log_path=state / "host.log",
            env={"SAMPLE_COUNTER_DIR": tmp},
        )
        try:
            keys = json.loads(Path(host.info["keysFile"]).read_text())
            base = f"{host.info['url']}/api"
            print(f"host ready at {host.info['url']} with {len(host.info['functions'])} functions")
            ok = True
            for name, payload, expected in (
                ("sequence", ["server01", "server02"], ["hello server01", "hello server02"]),
                ("fan_out", 10, 285),
                (
                    "retrying",
                    {"tag": "demo", "fail_times": 2, "attempts": 3},
                    {"ok": "succeeded on attempt 3"},
                ),
            ):
                t0 = time.monotonic()
                r = requests.post(
                    f"{base}/run/{name}",
                    params={"code": keys["function"]},
                    json=payload,
                    timeout=60,
                )
                elapsed = time.monotonic() - t0
                good = r.status_code == 200 and r.json() == expected
                ok &= good
                print(f"{name:10} {'ok ' if good else 'BAD'} {elapsed:6.3f}s  -> {r.text}")
        finally:
            host.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
