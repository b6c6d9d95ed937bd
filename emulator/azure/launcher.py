"""Run ``python -m emulator azure`` as a child process and wait for its ready line."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from emulator.launch import ServiceProcess, start_service

from .control import AzureControl, ReadyInfo

__all__ = ["EmulatorProcess"]


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
        self.service: ServiceProcess | None = None
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
        self.service = start_service(
            ["azure", *self.args],
            log_path=self.state_dir / "emulator.log",
            ready_timeout=self.ready_timeout,
        )
        self._ready = ReadyInfo.from_json(json.dumps(self.service.info))
        return self._ready

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.service is None:
            return None
        code = self.service.stop(timeout)
        self.service = None
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
