"""``python -m emulator azure``: start the local Azure and print one ready line of JSON."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import signal
import sys
from pathlib import Path

from .core import Emulator
from .server import start_servers
from .settings import MIRID_MODES, NIC_UPDATE_MODES, Settings
from .topology import load_topology

__all__ = ["main", "parse_args"]

_LOG = logging.getLogger("emulator.azure")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (see docs/local-azure.md)."""
    parser = argparse.ArgumentParser(prog="python -m emulator azure", description=__doc__)
    parser.add_argument(
        "--topology", default="seed", help="seed, scale:N, scale-rg:N, or a topology JSON file"
    )
    parser.add_argument(
        "--state", required=True, type=Path, help="state directory (created if missing)"
    )
    parser.add_argument("--port", type=int, default=0, help="ARM https port (0 = ephemeral)")
    parser.add_argument("--identity-port", type=int, default=0, help="app identity endpoint port")
    parser.add_argument("--nic-update-seconds", type=float, default=2.0)
    parser.add_argument("--retry-after", type=float, default=10.0)
    parser.add_argument(
        "--nic-update-mode",
        choices=NIC_UPDATE_MODES,
        default="mixed",
        help="answer NIC PUTs Succeeded (sync), Updating (async), or alternately (mixed)",
    )
    parser.add_argument("--read-rate", type=float, default=25.0)
    parser.add_argument("--read-burst", type=int, default=250)
    parser.add_argument("--write-rate", type=float, default=10.0)
    parser.add_argument("--write-burst", type=int, default=200)
    parser.add_argument("--token-lifetime", type=int, default=86400, help="seconds")
    parser.add_argument("--mirid-claim", choices=MIRID_MODES, default="arm-only")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument(
        "--in-use-with-resource",
        action="store_true",
        help="checkIPAddressAvailability names the holder (a field no API definition has)",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def _raise_fd_limit() -> None:
    # scale:N opens one IMDS listener per VM; the default soft limit can be too low.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(args: argparse.Namespace) -> int:
    settings = Settings(
        nic_update_seconds=args.nic_update_seconds,
        retry_after=args.retry_after,
        read_rate=args.read_rate,
        read_burst=args.read_burst,
        write_rate=args.write_rate,
        write_burst=args.write_burst,
        token_lifetime=args.token_lifetime,
        mirid_claim=args.mirid_claim,
        page_size=args.page_size,
        nic_update_mode=args.nic_update_mode,
        in_use_with_resource=args.in_use_with_resource,
    )
    state_dir: Path = args.state.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    emu = Emulator.create(load_topology(args.topology), state_dir, settings)
    running = await start_servers(
        emu, state_dir, arm_port=args.port, identity_port=args.identity_port
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(json.dumps(running.ready) + "\n")
    sys.stdout.flush()
    _LOG.info("local Azure ready at %s", running.ready["arm"])
    try:
        await stop.wait()
    finally:
        await running.stop()
        (state_dir / "ready.json").unlink(missing_ok=True)
    return 0


def main(argv: list[str]) -> int:
    """Run until SIGTERM/SIGINT; 0 on a clean stop, 2 on bad arguments or topology."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    _raise_fd_limit()
    try:
        return asyncio.run(_serve(args))
    except (ValueError, KeyError, OSError) as exc:
        print(f"emulator azure: {exc}", file=sys.stderr)
        return 2
