"""Start the stand-ins as child processes and wait for their ready line.

Used by the tests, the demo and the benchmarks, so that each starts the local
host and the local Azure the same way a person would from a shell.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["ServiceProcess", "start_service"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceProcess:
    """A running stand-in: its process, its ready-line JSON, and where its logs go."""

    args: list[str]
    process: subprocess.Popen[str]
    info: dict[str, Any]
    log_path: Path
    _stdout_thread: threading.Thread | None = field(default=None, repr=False)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crashed host)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's stderr, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_service(
    args: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
    cwd: Path | None = None,
    emulator_root: Path = REPO_ROOT,
) -> ServiceProcess:
    """Run ``python -m emulator ARGS`` and wait for its JSON ready line on stdout.

    ``emulator_root`` is the folder whose ``emulator`` package runs (another
    checkout, for benchmarks against an earlier version). Raises RuntimeError
    with the log's tail when the process exits or stays silent past
    ``ready_timeout``.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(emulator_root), *filter(None, [full_env.get("PYTHONPATH")])]
    )
    full_env.update(env or {})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("a")
    command = [sys.executable, "-m", "emulator", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log_file,
        stdin=subprocess.DEVNULL,
        text=True,
        env=full_env,
        cwd=str(cwd or emulator_root),
    )
    log_file.close()
    ready: dict[str, Any] = {}
    got_line = threading.Event()

    def read_stdout(stream: IO[str]) -> None:
        for line in stream:
            if not got_line.is_set():
                try:
                    ready.update(json.loads(line))
                    got_line.set()
                    continue
                except json.JSONDecodeError:
                    pass
        got_line.set()

    reader = threading.Thread(target=read_stdout, args=(process.stdout,), daemon=True)
    reader.start()
    deadline = time.monotonic() + ready_timeout
    while not got_line.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            break
    service = ServiceProcess(command, process, ready, log_path, reader)
    if not ready.get("ready"):
        service.kill()
        raise RuntimeError(f"{' '.join(command)} did not become ready:\n{service.log_tail()}")
    return service
