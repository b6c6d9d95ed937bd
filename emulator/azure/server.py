"""Start and stop the servers: ARM (https), one IMDS port per VM, the app identity endpoint."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web

from .arm import add_arm_routes
from .control_routes import add_control_routes, add_discovery_routes
from .core import Emulator
from .imds import build_identity_app, build_imds_app
from .opsign import OperationSigner

__all__ = ["RunningEmulator", "load_or_create_ca", "start_servers"]

_HOST = "127.0.0.1"


def load_or_create_ca(directory: Path) -> trustme.CA:
    """The test CA kept in ``directory`` (``ca.pem`` + ``ca-key.pem``), made on first use."""
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
    ca = trustme.CA(organization_name="Local Azure emulator")
    key_tmp = key_path.with_suffix(".tmp")
    key_tmp.write_bytes(ca.private_key_pem.bytes())
    key_tmp.chmod(0o600)
    key_tmp.replace(key_path)
    cert_tmp = cert_path.with_suffix(".tmp")
    cert_tmp.write_bytes(ca.cert_pem.bytes())
    cert_tmp.replace(cert_path)
    return ca


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((_HOST, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass
class RunningEmulator:
    """The started servers and the ready-line information."""

    emulator: Emulator
    ready: dict[str, Any]
    runners: list[web.AppRunner] = field(default_factory=list)

    async def stop(self) -> None:
        """Close every listener and connection, persist state."""
        for runner in self.runners:
            await runner.cleanup()
        self.emulator.state.flush()


async def start_servers(
    emu: Emulator, state_dir: Path, arm_port: int = 0, identity_port: int = 0
) -> RunningEmulator:
    """Bind and start every server; returns what the ready line reports."""
    ca = load_or_create_ca(state_dir)
    # Operation URLs are signed with a key kept in the state directory (the CA's), so
    # URLs handed out before a restart still poll afterwards.
    emu.network.signer = OperationSigner(
        hashlib.sha256(ca.private_key_pem.bytes()).digest(),
        ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode("ascii")),
    )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(_HOST, "localhost").configure_cert(tls)

    arm_sock = _listen(arm_port)
    arm_base = f"https://{_HOST}:{arm_sock.getsockname()[1]}"
    emu.set_arm_base(arm_base)

    arm_app = web.Application(client_max_size=4 * 1024 * 1024)
    add_control_routes(arm_app, emu)
    add_discovery_routes(arm_app, emu)
    add_arm_routes(arm_app, emu)
    running = RunningEmulator(emu, {})

    arm_runner = web.AppRunner(arm_app, access_log=None, handle_signals=False)
    await arm_runner.setup()
    await web.SockSite(arm_runner, arm_sock, ssl_context=tls).start()
    running.runners.append(arm_runner)

    imds_runner = web.AppRunner(build_imds_app(emu), access_log=None, handle_signals=False)
    await imds_runner.setup()
    for vm in emu.topology.vms:
        sock = _listen(0)
        port = sock.getsockname()[1]
        emu.imds_ports[port] = vm.name
        emu.imds_urls[vm.name] = f"http://{_HOST}:{port}"
        await web.SockSite(imds_runner, sock).start()
    running.runners.append(imds_runner)

    identity_runner = web.AppRunner(build_identity_app(emu), access_log=None, handle_signals=False)
    await identity_runner.setup()
    identity_sock = _listen(identity_port)
    await web.SockSite(identity_runner, identity_sock).start()
    running.runners.append(identity_runner)

    topology = emu.topology
    app = emu.app_principal()
    tenant_base = f"{arm_base}/{topology.tenant_id}"
    running.ready = {
        "ready": True,
        "pid": os.getpid(),
        "arm": arm_base,
        "ca_file": str(state_dir / "ca.pem"),
        "control": f"{arm_base}/_control",
        "issuer": emu.issuer.issuer,
        "jwks_uri": f"{tenant_base}/discovery/keys",
        "openid_config": f"{tenant_base}/.well-known/openid-configuration",
        "tenant_id": topology.tenant_id,
        "subscription_id": topology.subscription_id,
        "resource_group": topology.resource_group,
        "location": topology.location,
        "state_dir": str(state_dir),
        "imds": dict(emu.imds_urls),
        "app_identity": {
            "endpoint": f"http://{_HOST}:{identity_sock.getsockname()[1]}/msi/token",
            "header": emu.app_identity_header,
            "principal_id": app.object_id,
            "client_id": app.client_id,
            "resource_id": app.resource_id,
        },
    }
    ready_path = state_dir / "ready.json"
    tmp = ready_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(running.ready), encoding="utf-8")
    tmp.replace(ready_path)
    return running
