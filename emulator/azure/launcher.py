"""Run ``python -m emulator azure`` as a child process and wait for its ready line."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from .control import AzureControl, ReadyInfo

__all__ = ["EmulatorProcess"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


class EmulatorProcess:
    """The emulator as a subprocess; a context manager that starts and stops it.

    stderr goes to ``<state_dir>/emulator.log``. ``extra_args`` are passed through,
    e.g. ``["--nic-update-seconds", "0.3", "--retry-after", "0.5"]``.
    """

    def __init__(
        self,
        state_dir: Path,
        extra_args: list[str] | None = None,
        *,
        topology: str = "seed",
        ready_timeout: float = 30.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.args = ["--topology", topology, "--state", str(self.state_dir), *(extra_args or [])]
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[str] | None = None
        self._ready: ReadyInfo | None = None

    @property
    def ready(self) -> ReadyInfo:
        """The ready line of the running emulator."""
        if self._ready is None:
            raise RuntimeError("emulator not started")
        return self._ready

    def control(self) -> AzureControl:
        """A control client for the running emulator."""
        return AzureControl.from_ready(self.ready)

    def start(self) -> ReadyInfo:
        """Start and wait for the ready line. Raises RuntimeError if it exits or times out."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = (self.state_dir / "emulator.log").open("a", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emulator", "azure", *self.args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=_REPO_ROOT,
        )
        log.close()
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = self.process.stdout.readline()
                if line:
                    self._ready = ReadyInfo.from_json(line)
                    selector.close()
                    return self._ready
            if self.process.poll() is not None:
                break
        selector.close()
        self.stop()
        raise RuntimeError(f"emulator did not become ready; see {self.state_dir / 'emulator.log'}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        code = self.process.returncode
        self.process = None
        return code

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
