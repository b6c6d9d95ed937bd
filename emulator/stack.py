"""The whole product on the stand-ins: local Azure + local host running function_app.py.

``start_stack`` starts the local Azure with a topology, writes the mover's
configuration for it (clusters, members' principal ids, the local issuer and
CA), and starts the local Functions host on the repository's app with the
app identity of the local Azure. Tests, the demo and the benchmarks use it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.azure.control import AzureControl, ReadyInfo
from emulator.launch import REPO_ROOT, ServiceProcess, start_service

__all__ = ["AUDIENCE", "NODE_CLIENT", "LocalStack", "mover_config_for", "start_stack"]

# The app registration's identifier URI that nodes request tokens for.
AUDIENCE = "api://ip-mover-local"
NODE_CLIENT = REPO_ROOT / "node_client" / "ipmover.py"


@dataclass
class LocalStack:
    """A running local Azure and local host with the mover app."""

    azure: ServiceProcess
    host: ServiceProcess
    ready: ReadyInfo
    control: AzureControl
    config: dict[str, Any]
    config_path: Path
    state_dir: Path
    # App settings of the host besides the configuration and identity (kept across restarts).
    host_settings: dict[str, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """Base URL of the mover's HTTP API."""
        return f"{self.host.info['url']}/api/v1"

    @property
    def rpc(self) -> str:
        """The host's Durable management API (local RPC endpoint)."""
        return str(self.host.info["rpcBaseUrl"])

    def vm_token(self, vm: str, audience: str = AUDIENCE) -> str:
        """A managed-identity token of ``vm``, from its IMDS, as the node client gets it."""
        url = (
            f"{self.ready.imds[vm]}/metadata/identity/oauth2/token"
            f"?api-version=2018-02-01&resource={audience}"
        )
        request = urllib.request.Request(url, headers={"Metadata": "true"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["access_token"])

    def node_env(
        self, vm: str, config: Path, event: str | None = None, **settings: str
    ) -> dict[str, str]:
        """Environment of the node client (or a cluster script running it) on ``vm``.

        The client reaches this stack's host and ``vm``'s IMDS; ``settings``
        override ``IPMOVER_<NAME>`` values; ``event`` sets EXPRESSCLUSTER's
        ``CLP_*`` variables as a group start or failover would.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IPMOVER", "CLP_"))}
        env.update(
            IPMOVER=str(NODE_CLIENT),
            IPMOVER_CONFIG=str(config),
            IPMOVER_URL=str(self.host.info["url"]),
            IPMOVER_AUDIENCE=AUDIENCE,
            IPMOVER_IP="10.5.0.110",
            IPMOVER_IMDS_URL=self.ready.imds[vm],
            IPMOVER_TIMEOUT="120",
        )
        env.update({f"IPMOVER_{k.upper()}": v for k, v in settings.items()})
        if event is not None:
            env.update(
                CLP_EVENT=event,
                CLP_SERVER=vm,
                CLP_GROUPNAME="failover",
                CLP_RESOURCENAME="exec-secondary-ip",
            )
        return env

    def restart_host(self, kill: bool = True) -> None:
        """Kill (or stop) the host and start it again on the same durable state."""
        if kill:
            self.host.kill()
        else:
            self.host.stop()
        self.host = _start_host(
            self.state_dir, self.config_path, self.ready, self.host_port, self.host_settings
        )

    @property
    def host_port(self) -> int:
        """The host's port (kept across restarts so clients can keep their URL)."""
        return int(str(self.host.info["url"]).rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop both processes."""
        self.host.stop()
        self.azure.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def mover_config_for(
    ready: ReadyInfo,
    topology: dict[str, Any],
    limits: dict[str, Any] | None = None,
    lro_poll_seconds: float | None = None,
    first_poll_seconds: float | None = None,
    name_member_nics: bool = False,
) -> dict[str, Any]:
    """The mover's configuration for a local Azure topology: one cluster per topology cluster.

    ``name_member_nics``: each member's ``nicId`` is its VM's first NIC (otherwise
    the mover learns the NICs from the VMs).
    """
    vms = {vm["name"]: vm for vm in topology["vms"]}

    def group(vm: str) -> str:
        return str(vms[vm].get("resource_group") or ready.resource_group)

    def vm_id(vm: str) -> str:
        return (
            f"/subscriptions/{ready.subscription_id}/resourceGroups/{group(vm)}"
            f"/providers/Microsoft.Compute/virtualMachines/{vm}"
        )

    clusters = []
    for cluster in topology.get("clusters", []):
        clusters.append(
            {
                "name": cluster["name"],
                # The members' group (scale-rg:N gives each cluster its own).
                "resourceGroup": group(cluster["members"][0]),
                "members": [
                    {
                        "name": name,
                        "vmResourceId": vm_id(name),
                        "principalId": vms[name]["principal_id"],
                        **(
                            {
                                "nicId": f"/subscriptions/{ready.subscription_id}/resourceGroups"
                                f"/{group(name)}/providers/Microsoft.Network"
                                f"/networkInterfaces/{vms[name]['nics'][0]['name']}"
                            }
                            if name_member_nics
                            else {}
                        ),
                    }
                    for name in cluster["members"]
                ],
                "ips": [
                    {"address": ip["ip"], "ipConfigName": ip["ipconfig"]}
                    for ip in cluster["secondary_ips"]
                ],
            }
        )
    return {
        "subscriptionId": ready.subscription_id,
        "auth": {
            "tenantId": ready.tenant_id,
            "audience": AUDIENCE,
            "issuer": ready.issuer,
            "jwksUri": ready.jwks_uri,
            "caBundle": ready.ca_file,
        },
        "arm": {
            "endpoint": ready.arm,
            "caBundle": ready.ca_file,
            **({"lroPollSeconds": lro_poll_seconds} if lro_poll_seconds else {}),
            **({"firstPollSeconds": first_poll_seconds} if first_poll_seconds else {}),
        },
        "limits": limits or {},
        "clusters": clusters,
    }


def start_stack(
    state_dir: Path,
    topology: str = "seed",
    azure_args: list[str] | None = None,
    limits: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
    host_port: int = 0,
    lro_poll_seconds: float | None = None,
    host_emulator_root: Path = REPO_ROOT,
    host_settings: dict[str, str] | None = None,
    first_poll_seconds: float | None = None,
    name_member_nics: bool = False,
    worker_processes: int = 1,
) -> LocalStack:
    """Start the local Azure and the host with the mover app; return when both are ready.

    ``worker_processes`` is the app setting ``FUNCTIONS_WORKER_PROCESS_COUNT`` (Azure's
    default is 1; each process has its own caches, e.g. of signing keys), unless
    ``host_settings`` names it. ``host_settings`` are further app settings (e.g.
    ``MOVER_RETENTION_SCHEDULE``);
    ``auth`` adds to the configuration's ``auth`` section (e.g. ``operatorRole``,
    ``keyRefreshSeconds``). ``host_emulator_root`` runs the host of another checkout
    (benchmarks only).
    """
    settings = dict(host_settings or {})
    settings.setdefault("FUNCTIONS_WORKER_PROCESS_COUNT", str(worker_processes))
    state_dir.mkdir(parents=True, exist_ok=True)
    azure = start_service(
        ["azure", "--topology", topology, "--state", str(state_dir / "azure"), *(azure_args or [])],
        log_path=state_dir / "azure.log",
    )
    try:
        ready = ReadyInfo.from_json(json.dumps(azure.info))
        control = AzureControl.from_ready(ready)
        config = mover_config_for(
            ready,
            control.topology(),
            limits,
            lro_poll_seconds,
            first_poll_seconds,
            name_member_nics,
        )
        config["auth"].update(auth or {})
        config_path = state_dir / "mover-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        host = _start_host(state_dir, config_path, ready, host_port, settings, host_emulator_root)
    except BaseException:
        azure.stop()
        raise
    return LocalStack(azure, host, ready, control, config, config_path, state_dir, settings)


def _start_host(
    state_dir: Path,
    config_path: Path,
    ready: ReadyInfo,
    port: int,
    settings: dict[str, str] | None = None,
    emulator_root: Path = REPO_ROOT,
) -> ServiceProcess:
    env = {**(settings or {}), "MOVER_CONFIG_FILE": str(config_path), **ready.app_identity_env()}
    deadline = time.monotonic() + 30
    while True:
        try:
            return start_service(
                [
                    "host",
                    "--app-dir",
                    str(REPO_ROOT),
                    "--state",
                    str(state_dir / "host"),
                    "--port",
                    str(port),
                    "--log-level",
                    "INFO",
                ],
                log_path=state_dir / "host.log",
                env=env,
                emulator_root=emulator_root,
            )
        except RuntimeError:
            # A restarted host may find its old port still closing; retry briefly.
            if port == 0 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
