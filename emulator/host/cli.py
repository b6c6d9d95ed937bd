"""``python -m emulator host``: run a Function app like ``func start`` would."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .server import AppIndexError, HostConfig, LocalHost
from .worker.pool import PROXY_WORKER, AppLoadError, process_count_setting

__all__ = ["main"]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m emulator host",
        description=(
            "Local Azure Functions host with the Durable extension. Serves the app's HTTP "
            "routes under /api/, runs orchestrations, activities and entities, keeps durable "
            "state in --state, and prints one JSON line when ready."
        ),
    )
    parser.add_argument(
        "--app-dir", type=Path, default=Path.cwd(), help="folder with the app and host.json"
    )
    parser.add_argument("--state", type=Path, required=True, help="folder for durable state")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7071, help="port (0 picks a free one)")
    parser.add_argument(
        "--settings",
        type=Path,
        help="local.settings.json whose Values become environment variables, as func does",
    )
    parser.add_argument(
        "--activity-workers",
        type=int,
        help="activities run at once (default: host.json's maxConcurrentActivityFunctions, "
        "else 10 per processor, as the Durable extension)",
    )
    parser.add_argument(
        "--worker-python",
        help="interpreter of the worker's environment (default: .venv-worker/bin/python, "
        "or EMULATOR_WORKER_PYTHON)",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Start the host and serve until SIGINT or SIGTERM."""
    args = _parse(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.settings:
        values = json.loads(args.settings.read_text()).get("Values", {})
        for key, value in values.items():
            os.environ.setdefault(key, str(value))
    try:
        processes = process_count_setting(os.environ.get("FUNCTIONS_WORKER_PROCESS_COUNT"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = None
    if args.worker_python:
        command = [args.worker_python, str(PROXY_WORKER)]
    config = HostConfig(
        app_dir=args.app_dir.resolve(),
        state_dir=args.state.resolve(),
        host=args.host,
        port=args.port,
        activity_workers=args.activity_workers,
        worker_processes=processes,
        worker_command=command,
    )
    return asyncio.run(_serve(config))


async def _serve(config: HostConfig) -> int:
    try:
        host = LocalHost(config)
    except ValueError as exc:  # host.json settings the real host would refuse
        print(f"error: {config.app_dir / 'host.json'}: {exc}", file=sys.stderr)
        return 1
    try:
        await host.start()
    except AppIndexError as exc:
        # Azure's host starts without that function and reports it in error; the
        # local host refuses the app, for the same reason as below.
        print(
            f"error: the host could not index the app in {config.app_dir}: {exc}", file=sys.stderr
        )
        await host.stop()
        return 1
    except AppLoadError as exc:
        # `func start` logs the worker's message and serves no function; exit
        # instead, so that an app Azure would not load cannot pass a test or a demo.
        print(
            f"error: the worker could not load the app in {config.app_dir}: {exc}", file=sys.stderr
        )
        await host.stop()
        return 1
    except BaseException:
        await host.stop()
        raise
    print(json.dumps(host.ready_info()), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await host.stop()
    return 0
