"""A real two-node Corosync 3 + Pacemaker 2.1 cluster, one node per set of namespaces.

Each node runs ``node-init.sh`` as PID 1 of its own PID, mount and UTS namespaces inside
its VM's network namespace (``cluster_lab.network``): ``corosync -f`` and ``pacemakerd``
in the foreground, no systemd. Cluster commands run inside a node with ``nsenter``
(libqb's IPC is per network namespace, its buffers in the node's private /dev/shm).

Corosync uses knet over the VMs' primary addresses, ``two_node: 1``. The CIB is seeded
offline so that its properties hold from the first second: no fencing (the lab has no
fence agent; production needs one, see docs/node-client.md) and a short ``dc-deadtime``
(the default 20 s only slows the start).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cluster_lab.network import GATEWAY, LabNetwork, die_with_parent, run

__all__ = ["CLUSTER_NAME", "Cluster", "NodeProcess", "wait_for"]

CLUSTER_NAME = "ha1"
NODE_INIT = Path(__file__).resolve().parent / "node-init.sh"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``check`` until it returns a truthy value; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class NodeProcess:
    """A started node: the ``unshare`` process (host PID) and its node-init child."""

    name: str
    process: subprocess.Popen[bytes]

    def init_pid(self) -> int | None:
        """Host PID of the node's PID-namespace init, None when the node is down."""
        if self.process.poll() is not None:
            return None
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            first = children.read_text().split()
        except OSError:
            return None
        return int(first[0]) if first else None


@dataclass
class Cluster:
    """Two Pacemaker nodes on a lab network; ``directory`` holds their state and logs."""

    network: LabNetwork
    directory: Path
    install_dir: Path  # etc/, sbin/, ocf/ overlaid onto every node
    nodes: list[str]
    token_ms: int = 1000
    dc_deadtime: str = "2s"
    processes: dict[str, NodeProcess] = field(default_factory=dict)

    # -- set-up -------------------------------------------------------------------------

    def prepare(self) -> None:
        """corosync.conf, authkey and a seeded CIB for every node."""
        etc = self.directory / "etc-corosync"
        etc.mkdir(parents=True, exist_ok=True)
        run(["corosync-keygen", "-k", str(etc / "authkey")])
        (etc / "authkey").chmod(0o400)
        (etc / "corosync.conf").write_text(self.corosync_conf())
        cib = self.directory / "cib.xml"
        cib.write_text(run(["cibadmin", "--empty"]).stdout)
        env = {**os.environ, "CIB_file": str(cib)}
        for name, value in (
            ("stonith-enabled", "false"),
            ("dc-deadtime", self.dc_deadtime),
            ("cluster-name", CLUSTER_NAME),
        ):
            subprocess.run(
                ["crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
        for node in self.nodes:
            node_dir = self.directory / node
            (node_dir / "lib-pacemaker" / "cib").mkdir(parents=True, exist_ok=True)
            target = node_dir / "lib-pacemaker" / "cib" / "cib.xml"
            shutil.copy(cib, target)
            shutil.chown(target, "hacluster", "haclient")
            target.chmod(0o600)
            shutil.copytree(etc, node_dir / "etc-corosync", dirs_exist_ok=True)

    def corosync_conf(self) -> str:
        """knet between the VMs' primary addresses; ``two_node`` implies ``wait_for_all``."""
        nodes = "".join(
            f"    node {{\n        name: {name}\n        nodeid: {index}\n"
            f"        ring0_addr: {self.network.attachments[name].address}\n    }}\n"
            for index, name in enumerate(self.nodes, start=1)
        )
        return (
            "totem {\n    version: 2\n    cluster_name: " + CLUSTER_NAME + "\n"
            "    transport: knet\n    crypto_cipher: aes256\n    crypto_hash: sha256\n"
            f"    token: {self.token_ms}\n}}\n"
            f"nodelist {{\n{nodes}}}\n"
            "quorum {\n    provider: corosync_votequorum\n    two_node: 1\n}\n"
            "logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n"
            "    to_stderr: no\n    to_syslog: no\n    timestamp: on\n}\n"
        )

    # -- node lifecycle -----------------------------------------------------------------

    def start(self, node: str) -> NodeProcess:
        """Boot ``node``: fresh /run, /tmp, /dev/shm; its disk (CIB, logs) kept.

        The network namespace outlives a crashed node, so a boot also does what a VM's boot
        does to its network: eth0 up with its primary address only (an address IPaddr2 had
        added before the crash is gone).
        """
        netns = self.network.netns(node)
        primary = self.network.attachments[node].address
        run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        for line in run(
            ["ip", "-n", netns, "-4", "-o", "addr", "show", "dev", "eth0"]
        ).stdout.splitlines():
            address = line.split()[3]
            if address.split("/")[0] != primary:
                run(["ip", "-n", netns, "addr", "del", address, "dev", "eth0"])
        if not run(["ip", "-n", netns, "route", "show", "default"]).stdout.strip():
            run(["ip", "-n", netns, "route", "add", "default", "via", GATEWAY])
        console = (self.directory / f"{node}.console").open("ab")
        process = subprocess.Popen(
            [*self.network.exec_argv(node), "unshare", "--mount", "--uts", "--pid", "--fork",
             "--kill-child", "--mount-proc", "--propagation", "private",
             "bash", str(NODE_INIT), node, str(self.directory / node), str(self.install_dir)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            preexec_fn=die_with_parent,
        )  # fmt: skip
        console.close()
        started = NodeProcess(node, process)
        self.processes[node] = started
        wait_for(started.init_pid, 10, f"{node}'s init")
        return started

    def crash(self, node: str) -> None:
        """Kill every process of ``node`` at once (SIGKILL to its PID namespace's init), and
        its network with it: a crashed VM's kernel does not answer either (the namespace's
        would, refusing connections at once, kinder to clients than a dead VM)."""
        started = self.processes[node]
        run(["ip", "-n", self.network.netns(node), "link", "set", "eth0", "down"])
        pid = started.init_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        started.process.wait(10)

    def stop(self, node: str, timeout: float = 60) -> None:
        """Graceful stop (pacemakerd, then corosync); SIGKILL when it does not end in time."""
        started = self.processes.get(node)
        if started is None or started.process.poll() is not None:
            return
        pid = started.init_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        try:
            started.process.wait(timeout)
        except subprocess.TimeoutExpired:
            # --kill-child: unshare's death SIGKILLs the node's whole PID namespace.
            started.process.kill()
            started.process.wait()

    def kill_all(self) -> None:
        """Teardown: every node's unshare process, by PID."""
        for started in self.processes.values():
            if started.process.poll() is None:
                started.process.kill()
                started.process.wait()

    # -- commands inside a node ---------------------------------------------------------

    def nsenter(self, node: str) -> list[str]:
        """The prefix that runs a command inside ``node`` (all its namespaces)."""
        pid = self.processes[node].init_pid()
        if pid is None:
            raise RuntimeError(f"{node} is down")
        return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "-p", "--wd=/"]

    def run(
        self, node: str, *command: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside ``node`` (its /tmp is its own: pass files as ``input``)."""
        return run([*self.nsenter(node), *command], check=check, input=input)

    def online(self, node: str) -> set[str]:
        """Nodes that ``node`` sees online (empty when its cluster is not answering)."""
        result = self.run(node, "crm_mon", "--one-shot", "--output-as=xml", check=False)
        if result.returncode != 0:
            return set()
        root = ET.fromstring(result.stdout)
        return {n.get("name", "") for n in root.iter("node") if n.get("online") == "true"}

    def wait_online(self, node: str, expected: set[str], timeout: float = 60) -> None:
        """Until ``node`` sees every node of ``expected`` online."""
        wait_for(lambda: expected <= self.online(node), timeout, f"{sorted(expected)} online")

    def locate(self, node: str, resource: str) -> list[str]:
        """Nodes where ``node``'s view of the cluster has ``resource`` active."""
        result = self.run(node, "crm_mon", "--one-shot", "--output-as=xml", check=False)
        if result.returncode != 0:
            return []
        root = ET.fromstring(result.stdout)
        where = []
        for element in root.iter("resource"):
            if element.get("id") == resource and element.get("role") == "Started":
                where += [n.get("name", "") for n in element.iter("node")]
        return sorted(where)

    def group_on(self, node: str, members: list[str]) -> str | None:
        """The single node on which every member runs, from ``node``'s view; else None."""
        places = {tuple(self.locate(node, member)) for member in members}
        if len(places) == 1:
            (where,) = places
            if len(where) == 1:
                return where[0]
        return None

    def attribute(self, node: str, *args: str) -> None:
        """``crm_attribute ARGS`` inside ``node``."""
        self.run(node, "crm_attribute", *args)

    def standby(self, node: str, on: bool, via: str | None = None) -> None:
        """Put ``node`` in (or out of) standby, asking ``via`` (default: the node itself)."""
        value = "on" if on else "off"
        self.attribute(via or node, "--node", node, "--name", "standby", "--update", value)
