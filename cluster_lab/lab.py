"""The whole lab: VNet, fabric, two Pacemaker nodes running the recipe, and a client.

``start_lab(stack, directory)`` takes a running local stack (``emulator.stack``: local ARM,
IMDS, token issuer, and the local Functions host with the mover) and builds around it:

1. the namespaces (``cluster_lab.network``): VNet, server01, server02, client;
2. what an administrator installs on each VM, overlaid read-only onto the node: the node
   client as /usr/local/sbin/ipmover, /etc/ipmover.conf naming the Function app's private
   endpoint, the OCF agent, the local CA among the trusted ones (so the client keeps its
   defaults: IMDS at 169.254.169.254, the system's CA store);
3. the fabric process (``cluster_lab.fabric``), which follows ARM;
4. Corosync + Pacemaker on both nodes; the recipe of docs/node-client.md
   (``node_client/ocf/configure-ha-ip.sh``) run once, plus the lab's service (an HTTP
   server answering with the node's name) as the group's last member; the group starts on
   server01;
5. the client's prober.

``Lab.close()`` ends every process by PID and deletes every namespace; it runs from
``finally`` and from ``atexit``, so nothing is left behind when a test fails.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import trustme

from cluster_lab.network import (
    CLIENT_ADDRESS,
    FUNCTION_ADDRESS,
    LabNetwork,
    die_with_parent,
    remove_stale,
    run,
)
from cluster_lab.pacemaker import Cluster, wait_for
from cluster_lab.prober import Probe, read_probes
from emulator.launch import REPO_ROOT
from emulator.stack import AUDIENCE, LocalStack

__all__ = [
    "GROUP",
    "MEMBERS",
    "NODES",
    "VIP",
    "Lab",
    "lab_unavailable",
    "start_lab",
]

VIP = "10.5.0.110"
NODES = ("server01", "server02")
GROUP = "ha-ip"
MEMBERS = ["vip-azure", "vip-os", "web"]
RECIPE = REPO_ROOT / "node_client" / "ocf" / "configure-ha-ip.sh"
AGENT = REPO_ROOT / "node_client" / "ocf" / "azure-secondary-ip"
CLIENT = REPO_ROOT / "node_client" / "ipmover.py"
LAB_AGENTS = Path(__file__).resolve().parent / "agents"
TOOLS = ("ip", "unshare", "nsenter", "corosync", "pacemakerd", "cibadmin", "crm_mon")
# The lab's service, added to the recipe's group as a user adds theirs.
WEB_PRIMITIVE = f"""<primitive id="web" class="ocf" provider="ipmover-lab" type="vipweb">
  <instance_attributes id="web-params"><nvpair id="web-ip" name="ip" value="{VIP}"/>
  </instance_attributes>
  <operations><op id="web-monitor" name="monitor" interval="10s" timeout="20s"/></operations>
</primitive>"""


def lab_unavailable() -> str | None:
    """Why the lab cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return "needs root (network, PID and mount namespaces)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"missing {', '.join(missing)}: apt-get install pacemaker pacemaker-cli-utils "
            "corosync resource-agents (make system-deps)"
        )
    if not Path("/run/netns").exists() and not os.access("/run", os.W_OK):
        return "cannot create network namespaces"
    return None


@dataclass
class Lab:
    """A running lab; see the module's docstring."""

    stack: LocalStack
    directory: Path
    network: LabNetwork
    cluster: Cluster | None = None
    fabric: subprocess.Popen[str] | None = None
    prober: subprocess.Popen[bytes] | None = None
    probe_file: Path = field(default_factory=Path)
    events_file: Path = field(default_factory=Path)
    nic_of: dict[str, str] = field(default_factory=dict)  # vm -> its NIC's name in ARM
    http: requests.Session = field(default_factory=requests.Session)
    _closed: bool = False

    # -- what a user sees ---------------------------------------------------------------

    def probes(self, since: float = 0.0) -> list[Probe]:
        """The client's requests that started at or after ``since``."""
        return [p for p in read_probes(self.probe_file) if p.start >= since]

    def answering(self, since: float) -> str | None:
        """The node that answered the client's latest request started after ``since``."""
        recent = self.probes(since)
        return recent[-1].node if recent else None

    def wait_answering(self, node: str, timeout: float = 60) -> float:
        """Until the client gets answers from ``node``; returns when the first came."""
        start = time.time()

        def first() -> float | None:
            answered = [p for p in self.probes(start - 0.001) if p.node == node]
            return answered[0].end if answered else None

        return wait_for(first, timeout, f"the client answered by {node}")

    def holders(self) -> list[tuple[str, str]]:
        """(NIC, provisioningState) of each NIC holding the VIP in the local ARM."""
        # Read through the local ARM's control API: the same NICs the mover reads.
        found = []
        for nic in self.stack.control.nics():
            props = nic["properties"]
            for config in props["ipConfigurations"]:
                if config["properties"].get("privateIPAddress") == VIP:
                    found.append((nic["name"], props["provisioningState"]))
        return found

    def os_has_vip(self, vm: str) -> bool:
        """Whether ``vm``'s OS has the VIP configured (what IPaddr2 does), ARM aside."""
        shown = run(["ip", "-n", self.network.netns(vm), "-4", "addr", "show", "dev", "eth0"])
        return f"inet {VIP}/" in shown.stdout

    def _api(self, path: str, **params: Any) -> Any:
        """GET from the mover's API as a member reads it (server02's token)."""
        token = self.stack.vm_token("server02")
        response = self.http.get(
            f"{self.stack.api}/{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The VIP's audit records from the mover's API, newest first."""
        return list(self._api(f"ips/{VIP}/history", limit=limit)["records"])

    def moves_pending(self) -> bool:
        """Whether the mover has a request for the VIP running or queued (its lock)."""
        lock = self._api(f"ips/{VIP}")["lock"]
        return bool(lock.get("holder") or lock.get("queue"))

    def fabric_events(self, since: float = 0.0) -> list[dict[str, Any]]:
        """The fabric's changes of where the VIP is delivered, since ``since``."""
        events = []
        for line in self.events_file.read_text().splitlines():
            event = json.loads(line)
            if event["address"] == VIP and event["t"] >= since:
                events.append(event)
        return events

    def group_on(self, via: str | None = None) -> str | None:
        """The node running the whole group, as a surviving node's Pacemaker sees it."""
        assert self.cluster is not None
        for node in [via] if via else list(NODES):
            if self.cluster.processes[node].init_pid() is not None:
                return self.cluster.group_on(node, MEMBERS)
        return None

    def wait_group_on(self, node: str, via: str | None = None, timeout: float = 60) -> None:
        """Until Pacemaker reports the whole group started on ``node``."""
        wait_for(lambda: self.group_on(via) == node, timeout, f"group {GROUP} on {node}", 0.2)

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything by PID, delete the namespaces; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for process in (self.prober, self.fabric):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.cluster is not None:
            self.cluster.kill_all()
        self.network.delete()
        self.http.close()


def _install_tree(directory: Path, stack: LocalStack) -> Path:
    """What an administrator puts on each VM (overlaid onto the nodes read-only)."""
    root = directory / "install"
    (root / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
    (root / "sbin").mkdir(parents=True, exist_ok=True)
    (root / "ocf" / "ipmover").mkdir(parents=True, exist_ok=True)
    # The docs' /etc/ipmover.conf, with the Function app's private endpoint as its URL.
    (root / "etc" / "ipmover.conf").write_text(
        f"[ipmover]\nurl = https://{FUNCTION_ADDRESS}\naudience = {AUDIENCE}\n"
        f"ip = {VIP}\ntimeout = 300\n"
    )
    # The local CA joins the VM's trusted CAs, as a private CA would in an enterprise.
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    host_cas = bundle.read_text() if bundle.exists() else ""
    ca = Path(stack.ready.ca_file).read_text()
    (root / "etc" / "ssl" / "certs" / "ca-certificates.crt").write_text(host_cas + "\n" + ca)
    shutil.copy2(CLIENT, root / "sbin" / "ipmover")
    (root / "sbin" / "ipmover").chmod(0o755)
    shutil.copy2(AGENT, root / "ocf" / "ipmover" / AGENT.name)
    shutil.copytree(LAB_AGENTS, root / "ocf", dirs_exist_ok=True)
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    return root


def _start_fabric(lab: Lab, stack: LocalStack) -> None:
    directory = lab.directory
    ca_dir = Path(stack.ready.ca_file).parent
    ca = trustme.CA.from_pem((ca_dir / "ca.pem").read_bytes(), (ca_dir / "ca-key.pem").read_bytes())
    cert = ca.issue_cert(FUNCTION_ADDRESS)
    cert.cert_chain_pems[0].write_to_path(str(directory / "function-cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "function-key.pem"))
    topology = stack.control.topology()
    vms = []
    for vm in topology["vms"]:
        if vm["name"] in NODES:
            attachment = lab.network.attachments[vm["name"]]
            vms.append(
                {
                    "vm": vm["name"],
                    "nic": vm["nics"][0]["name"],
                    "device": attachment.device,
                    "mac": attachment.mac,
                    "imds": stack.ready.imds[vm["name"]],
                }
            )
    config = {
        "vnet_netns": lab.network.vnet,
        "control_url": stack.ready.control,
        "ca_file": stack.ready.ca_file,
        "vms": vms,
        "events": str(lab.events_file),
        "function_address": FUNCTION_ADDRESS,
        "function_target": str(stack.host.info["url"]).removeprefix("http://"),
        "cert_file": str(directory / "function-cert.pem"),
        "key_file": str(directory / "function-key.pem"),
    }
    path = directory / "fabric.json"
    path.write_text(json.dumps(config, indent=2))
    log = (directory / "fabric.log").open("a")
    lab.fabric = subprocess.Popen(
        [sys.executable, "-m", "cluster_lab.fabric", str(path)],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
        cwd=str(REPO_ROOT), env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        preexec_fn=die_with_parent,
    )  # fmt: skip
    log.close()
    assert lab.fabric.stdout is not None
    line = lab.fabric.stdout.readline()
    if not line.startswith("{"):
        raise RuntimeError(f"fabric did not start: {(directory / 'fabric.log').read_text()}")


def apply_recipe(cluster: Cluster, node: str) -> None:
    """Run the docs' recipe inside ``node``, then add the lab's service to its group."""
    cluster.run(node, "sh", "-s", input=RECIPE.read_text())
    xpath = f"//group[@id='{GROUP}']"
    group = ET.fromstring(cluster.run(node, "cibadmin", "--query", "--xpath", xpath).stdout)
    group.append(ET.fromstring(WEB_PRIMITIVE))
    cluster.run(
        node, "cibadmin", "--replace", "--xpath", xpath, "--xml-text", ET.tostring(group).decode()
    )


def start_lab(stack: LocalStack, directory: Path, token_ms: int = 1000) -> Lab:
    """Build and start everything; the group runs on server01 and the client sees it."""
    remove_stale()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # agents run as root, but pacemaker's daemons read some files
    lab = Lab(stack, directory, LabNetwork())
    lab.probe_file = directory / "probes.jsonl"
    lab.events_file = directory / "fabric-events.jsonl"
    lab.events_file.touch()
    atexit.register(lab.close)
    try:
        lab.network.create_vnet()
        topology = stack.control.topology()
        for vm in topology["vms"]:
            if vm["name"] in NODES:
                lab.nic_of[vm["name"]] = vm["nics"][0]["name"]
                primary = vm["nics"][0]["ip_configurations"][0]["private_ip"]
                lab.network.attach(vm["name"], primary)
        lab.network.pin(lab.network.attach("client", CLIENT_ADDRESS))
        install = _install_tree(directory, stack)
        _start_fabric(lab, stack)
        cluster = Cluster(lab.network, directory / "cluster", install, list(NODES), token_ms)
        lab.cluster = cluster
        cluster.prepare()
        for node in NODES:
            cluster.start(node)
        cluster.wait_online("server01", set(NODES), timeout=90)
        # The group's first start is on server01: server02 waits in standby meanwhile.
        cluster.standby("server02", True, via="server01")
        apply_recipe(cluster, "server01")
        lab.wait_group_on("server01", timeout=120)
        cluster.standby("server02", False, via="server01")
        lab.prober = subprocess.Popen(
            [*lab.network.exec_argv("client"), sys.executable, "-m", "cluster_lab.prober",
             f"http://{VIP}/", str(lab.probe_file)],
            stdin=subprocess.DEVNULL, stderr=(directory / "prober.log").open("a"),
            cwd=str(REPO_ROOT), env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            preexec_fn=die_with_parent,
        )  # fmt: skip
        lab.wait_answering("server01", timeout=30)
    except BaseException:
        lab.close()
        raise
    return lab
