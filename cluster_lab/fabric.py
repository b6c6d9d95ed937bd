"""The VNet's fabric: delivers private IPs where the local ARM says they are, not the OS.

``python -m cluster_lab.fabric CONFIG.json`` runs as root in the host's network namespace
and does what Azure's host networking does for the lab's VMs:

* **follows ARM**: polls the local ARM's NICs and, for each NIC whose provisioning has
  ``Succeeded``, takes its ip-configurations as applied (a NIC still ``Updating`` or
  ``Failed`` keeps its previous ones: the same rule as the local Azure's instance metadata).
  Each address is routed in the VNet namespace to the veth of the VM whose NIC has it
  applied, with a permanent neighbour entry for that VM's MAC (Azure delivers to the NIC,
  it does not ARP the guest). An address no NIC has goes to a discard device; the VNet's
  reverse-path filter drops packets a VM sends from an address that is not its own.
  So a node whose OS configured 10.5.0.110 gets nothing for it until ARM has put
  the ip-configuration on its NIC, and its answers go nowhere either;
* **instance metadata**: 169.254.169.254:80 inside the VNet answers each VM with its own
  VM's IMDS of the local Azure (one listener per VM veth, ``SO_BINDTODEVICE``);
* **the Function app's private endpoint**: an https address of the VNet (the local CA's
  certificate) in front of the local Functions host.

Every change of the dataplane is one JSON line in ``events`` (wall-clock time, address,
VM), so tests and benchmarks can tell when traffic really moved. It prints a ready line
on stdout and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FabricConfig", "VmPort", "applied_routes", "main"]

_LOG = logging.getLogger("cluster_lab.fabric")
_CLONE_NEWNET = 0x40000000
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IMDS_ADDRESS = "169.254.169.254"


@dataclass(frozen=True)
class VmPort:
    """One VM's attachment to the VNet: its NIC in ARM and its veth in the VNet namespace."""

    vm: str
    nic: str
    device: str  # the veth end inside the VNet namespace
    mac: str  # the VM's eth0 MAC (where the fabric delivers)
    imds: str  # base URL of this VM's IMDS in the local Azure (host namespace)


@dataclass
class FabricConfig:
    """What the fabric needs; written by the lab as JSON."""

    vnet_netns: str
    control_url: str
    ca_file: str
    vms: list[VmPort]
    events: str
    function_address: str
    function_target: str  # host:port of the local Functions host (plain http, loopback)
    cert_file: str
    key_file: str
    poll_seconds: float = 0.05
    # Azure says "Succeeded" can precede traffic flowing: an optional lag before a change is
    # programmed (0: at once, the kindest the fabric can be; never kinder than that).
    program_delay: float = 0.0

    @classmethod
    def load(cls, path: Path) -> FabricConfig:
        """Read the lab's JSON."""
        raw = json.loads(path.read_text())
        raw["vms"] = [VmPort(**vm) for vm in raw["vms"]]
        return cls(**raw)


@dataclass
class Dataplane:
    """The fabric's view: per NIC the addresses applied, per address the VM it goes to."""

    applied: dict[str, set[str]] = field(default_factory=dict)
    routes: dict[str, str] = field(default_factory=dict)  # address -> vm


def applied_routes(nics: list[dict[str, Any]], state: Dataplane, ports: list[VmPort]) -> None:
    """Update ``state`` from ARM's NICs: a NIC's addresses count once its update Succeeded.

    An address that two NICs would claim (ARM refuses that) is routed nowhere.
    """
    by_nic = {port.nic.lower(): port for port in ports}
    for nic in nics:
        port = by_nic.get(str(nic.get("name", "")).lower())
        props = nic.get("properties", {})
        if port is None or props.get("provisioningState") != "Succeeded":
            continue
        state.applied[port.nic.lower()] = {
            config.get("properties", {}).get("privateIPAddress", "")
            for config in props.get("ipConfigurations", [])
        } - {""}
    owners: dict[str, list[str]] = {}
    for port in ports:
        for address in state.applied.get(port.nic.lower(), set()):
            owners.setdefault(address, []).append(port.vm)
    state.routes = {address: vms[0] for address, vms in owners.items() if len(vms) == 1}


# -- namespaces --------------------------------------------------------------------------


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Create sockets in network namespace ``name`` (this thread only), then come back.

    A socket stays in the namespace it was created in, so one process can listen in the
    VNet and connect to the local Azure on the host's loopback.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def _listener(address: str, port: int, device: str | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if device:
        sock.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, device.encode())
    sock.bind((address, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


# -- relays ------------------------------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _relay_to(host: str, port: int) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


# -- programming the VNet ----------------------------------------------------------------


class Programmer:
    """Applies the dataplane to the VNet namespace with ``ip`` and logs each change."""

    def __init__(self, config: FabricConfig) -> None:
        self.config = config
        self.ports = {port.vm: port for port in config.vms}
        self.current: dict[str, str] = {}
        self.events = Path(config.events)

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.config.vnet_netns, *args], check=True)

    def apply(self, routes: dict[str, str]) -> None:
        """Route each address to its VM; drop addresses that no VM has any more."""
        for address in sorted(set(self.current) - set(routes)):
            self._ip("route", "del", f"{address}/32")
            with contextlib.suppress(subprocess.CalledProcessError):
                self._ip("neigh", "del", address, "dev", self.ports[self.current[address]].device)
            self._event(address, None)
            del self.current[address]
        for address, vm in sorted(routes.items()):
            if self.current.get(address) == vm:
                continue
            old = self.current.get(address)
            port = self.ports[vm]
            self._ip("route", "replace", f"{address}/32", "dev", port.device)
            self._ip(
                "neigh", "replace", address, "lladdr", port.mac, "dev", port.device, "nud",
                "permanent",
            )  # fmt: skip
            if old is not None and old != vm:
                with contextlib.suppress(subprocess.CalledProcessError):
                    self._ip("neigh", "del", address, "dev", self.ports[old].device)
            self.current[address] = vm
            self._event(address, vm)

    def _event(self, address: str, vm: str | None) -> None:
        _LOG.info("%s -> %s", address, vm or "nowhere")
        with self.events.open("a") as out:
            out.write(json.dumps({"t": time.time(), "address": address, "vm": vm}) + "\n")


def _read_nics(config: FabricConfig, context: ssl.SSLContext) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        f"{config.control_url}/nics", timeout=5, context=context
    ) as response:
        return list(json.load(response))


async def _follow_arm(config: FabricConfig, programmer: Programmer, ready: asyncio.Event) -> None:
    context = ssl.create_default_context(cafile=config.ca_file)
    state = Dataplane()
    while True:
        try:
            nics = await asyncio.to_thread(_read_nics, config, context)
        except OSError as exc:
            _LOG.warning("reading ARM failed: %s", exc)
        else:
            applied_routes(nics, state, config.vms)
            if state.routes != programmer.current:
                if config.program_delay and ready.is_set():
                    await asyncio.sleep(config.program_delay)
                programmer.apply(state.routes)
            ready.set()
        await asyncio.sleep(config.poll_seconds)


async def _serve(config: FabricConfig) -> None:
    # Listeners are created in the VNet namespace before any thread exists (setns is per
    # thread; threads started later inherit the host namespace of the main thread).
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config.cert_file, config.key_file)
    with in_netns(config.vnet_netns):
        imds_socks = [(port, _listener(IMDS_ADDRESS, 80, port.device)) for port in config.vms]
        function_sock = _listener(config.function_address, 443)
    servers = []
    for port, sock in imds_socks:
        target = port.imds.removeprefix("http://")
        host, _, number = target.partition(":")
        servers.append(await asyncio.start_server(_relay_to(host, int(number)), sock=sock))
    host, _, number = config.function_target.partition(":")
    servers.append(
        await asyncio.start_server(_relay_to(host, int(number)), sock=function_sock, ssl=tls)
    )

    programmer = Programmer(config)
    ready = asyncio.Event()
    follower = asyncio.create_task(_follow_arm(config, programmer, ready))
    await ready.wait()
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    follower.cancel()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    """Run the fabric until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m cluster_lab.fabric", description=__doc__)
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    asyncio.run(_serve(FabricConfig.load(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
