"""The lab's network: a VNet namespace that routes, and one namespace per VM and client.

::

    server01 (10.5.0.101, eth0) ─┐                    ┌─ 169.254.169.254 (IMDS per VM)
    server02 (10.5.0.102, eth0) ─┼─ VNet namespace ───┼─ 10.5.1.4:443 (the Function app)
    client   (10.5.0.50,  eth0) ─┘  (the fabric)      └─ discard: addresses no NIC holds

Each VM sees what an Azure VM sees: eth0 with its primary address in 10.5.0.0/24 and
a default gateway 10.5.0.1. The VNet answers every ARP request (as Azure's host does)
and routes by the fabric's table, which follows ARM (``cluster_lab.fabric``). Nothing is
configured in the host's namespace: no address, no route, no sysctl.

Names carry the creating process's id, so two labs can coexist and a later run can tell
leftovers of a dead run from a live one (``remove_stale``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CLIENT_ADDRESS",
    "FUNCTION_ADDRESS",
    "GATEWAY",
    "Attachment",
    "LabNetwork",
    "die_with_parent",
    "remove_stale",
    "run",
]

PREFIX = "ipmlab"
GATEWAY = "10.5.0.1"
SUBNET = "10.5.0.0/24"
CLIENT_ADDRESS = "10.5.0.50"
# The Function app's private endpoint, in a subnet of its own as Azure places them.
FUNCTION_ADDRESS = "10.5.1.4"
_PR_SET_PDEATHSIG = 1
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)-")


def run(
    command: Sequence[str], check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; raise with it on failure when ``check``."""
    result = subprocess.run(list(command), capture_output=True, text=True, check=False, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.returncode} {result.stderr.strip()}")
    return result


def die_with_parent() -> None:
    """``preexec_fn`` for the lab's long-running children: the kernel kills them when the
    process that started them dies, even by SIGKILL, when no ``finally`` or ``atexit`` runs
    (a node's ``unshare --kill-child`` then takes its whole PID namespace with it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def remove_stale() -> list[str]:
    """Delete lab namespaces whose creating process is gone (a run killed mid-way)."""
    removed = []
    for line in run(["ip", "netns", "list"]).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME_RE.match(name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            _kill_netns_processes(name)
            run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


def _kill_netns_processes(name: str) -> None:
    # Only processes inside this lab's namespace: by their PIDs, never by name.
    pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)


@dataclass(frozen=True)
class Attachment:
    """A namespace attached to the VNet: its eth0 address and MAC, the VNet-side device."""

    name: str  # vm or "client"
    netns: str
    address: str
    device: str  # veth end in the VNet namespace
    mac: str


@dataclass
class LabNetwork:
    """Creates and deletes the namespaces; every name is recorded as soon as it exists."""

    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    created: list[str] = field(default_factory=list)
    attachments: dict[str, Attachment] = field(default_factory=dict)

    @property
    def vnet(self) -> str:
        """The VNet namespace."""
        return f"{self.tag}-vnet"

    def netns(self, name: str) -> str:
        """The namespace of VM or client ``name``."""
        return f"{self.tag}-{name}"

    def _add_netns(self, name: str) -> None:
        run(["ip", "netns", "add", name])
        self.created.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])

    def create_vnet(self) -> None:
        """The VNet: a router with a discard device for addresses no NIC holds."""
        self._add_netns(self.vnet)
        vnet = ["ip", "-n", self.vnet]
        # Namespace-local settings: forward, drop spoofed sources (Azure does), and answer
        # ARP for any address at once (Azure's host does; proxy_delay would add up to 0.8 s).
        sysctl = ["ip", "netns", "exec", self.vnet, "sysctl", "-qw"]
        run([*sysctl, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=1"])
        run([*sysctl, "net.ipv4.conf.default.rp_filter=1", "net.ipv4.conf.default.proxy_arp=1"])
        # The discard device: a veth whose peer stays down, so what is sent into it is
        # dropped, silently, as Azure drops traffic for an address no NIC holds (a dummy
        # device would do, but needs a kernel module that may be missing).
        run([*vnet, "link", "add", "discard", "type", "veth", "peer", "name", "discard-peer"])
        # No ARP on it: a failed neighbour lookup would send ICMP "host unreachable" back,
        # an answer Azure does not give.
        run([*vnet, "link", "set", "discard", "arp", "off"])
        run([*vnet, "link", "set", "discard", "up"])
        run([*vnet, "addr", "add", f"{GATEWAY}/32", "dev", "lo"])
        run([*vnet, "addr", "add", "169.254.169.254/32", "dev", "lo"])
        run([*vnet, "addr", "add", f"{FUNCTION_ADDRESS}/32", "dev", "lo"])
        run([*vnet, "route", "add", SUBNET, "dev", "discard"])

    def attach(self, name: str, address: str) -> Attachment:
        """A namespace for ``name`` with eth0 = ``address``/24, default via the gateway."""
        netns = self.netns(name)
        self._add_netns(netns)
        device = f"v-{name}"[:15]
        run(["ip", "-n", self.vnet, "link", "add", device, "type", "veth", "peer", "name",
             "eth0", "netns", netns])  # fmt: skip
        run(["ip", "-n", self.vnet, "link", "set", device, "up"])
        # Proxy ARP and proxy_delay are per device; set them on this one explicitly.
        run(["ip", "netns", "exec", self.vnet, "sysctl", "-qw",
             f"net.ipv4.conf.{device}.proxy_arp=1", f"net.ipv4.conf.{device}.rp_filter=1",
             f"net.ipv4.neigh.{device}.proxy_delay=0"])  # fmt: skip
        run(["ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0"])
        run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        run(["ip", "-n", netns, "route", "add", "default", "via", GATEWAY])
        mac = run(["ip", "-n", netns, "-br", "link", "show", "eth0"]).stdout.split()[2]
        attachment = Attachment(name, netns, address, device, mac)
        self.attachments[name] = attachment
        return attachment

    def pin(self, attachment: Attachment) -> None:
        """A static route to an address ARM does not manage (the client's)."""
        vnet = ["ip", "-n", self.vnet]
        run([*vnet, "route", "replace", f"{attachment.address}/32", "dev", attachment.device])
        run([*vnet, "neigh", "replace", attachment.address, "lladdr", attachment.mac, "dev",
             attachment.device, "nud", "permanent"])  # fmt: skip

    def partition(self, a: str, b: str, on: bool) -> None:
        """Cut (or heal) the traffic between two VMs' primary addresses, both ways."""
        first, second = self.attachments[a].address, self.attachments[b].address
        verb = "add" if on else "del"
        for src, dst in ((first, second), (second, first)):
            run(["ip", "-n", self.vnet, "rule", verb, "from", src, "to", dst, "blackhole"])

    def exec_argv(self, name: str) -> list[str]:
        """The prefix that runs a command in ``name``'s network namespace."""
        return ["ip", "netns", "exec", self.netns(name)]

    def delete(self) -> None:
        """Delete every namespace this lab created (processes inside are killed first)."""
        for name in reversed(self.created):
            _kill_netns_processes(name)
            run(["ip", "netns", "del", name], check=False)
        self.created.clear()
