"""Takeover time: the mover versus the SDK's own long-running-operation polling.

Starts the local stack with Azure's NIC behaviour (each update takes
``--nic-update-seconds``; ARM answers it in the PUT, or ``Updating`` with
``Retry-After: 10``, as ``--nic-update-mode`` says: both alternate by default), then times
takeovers (the IP moves from one node's NIC to the other's) in the same run:

- mover: POST acquire through the API, poll the request until it is done;
- sdk-default: the same two NIC writes straight through azure-mgmt-network,
  each waited for with ``begin_create_or_update(...).result()``, whose poller
  obeys Retry-After (what a script using the SDK naively gets);
- floor: the sum of the two NIC update times.

Usage: python -m bench.takeover [--runs 5] [--nic-update-seconds 2] [--retry-after 10]
                                [--nic-update-mode mixed|async|sync]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import NetworkInterfaceIPConfiguration, Subnet

from emulator.azure.settings import NIC_UPDATE_MODES
from emulator.stack import LocalStack, start_stack

IP = "10.5.0.110"
NICS = {"server01": "server01535", "server02": "server02800"}


def mover_takeover(stack: LocalStack, vm: str) -> float:
    """Seconds from POST acquire to the request's success, as a node sees it."""
    token = stack.vm_token(vm)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    r = requests.post(
        f"{stack.api}/ips/{IP}/acquire",
        headers=headers,
        json={"requestId": str(uuid.uuid4())},
        timeout=30,
    )
    r.raise_for_status()
    url = f"{stack.api}/requests/{r.json()['requestId']}"
    while True:
        status = requests.get(url, headers=headers, timeout=30).json()["status"]
        if status in ("succeeded", "failed", "expired"):
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    if status != "succeeded":
        raise RuntimeError(f"takeover to {vm} ended {status}")
    return elapsed


def sdk_takeover(client: NetworkManagementClient, group: str, vm: str) -> float:
    """Seconds for remove-then-add with the SDK's default poller."""
    target, other = NICS[vm], next(n for v, n in NICS.items() if v != vm)
    started = time.monotonic()
    nic = client.network_interfaces.get(group, other)
    nic.ip_configurations = [c for c in nic.ip_configurations if c.private_ip_address != IP]
    client.network_interfaces.begin_create_or_update(
        group, other, nic, headers={"If-Match": nic.etag}
    ).result()
    nic = client.network_interfaces.get(group, target)
    primary = next(c for c in nic.ip_configurations if c.primary)
    nic.ip_configurations.append(
        NetworkInterfaceIPConfiguration(
            name="ipconfig2",
            private_ip_address=IP,
            private_ip_allocation_method="Static",
            subnet=Subnet(id=primary.subnet.id),
            primary=False,
        )
    )
    client.network_interfaces.begin_create_or_update(
        group, target, nic, headers={"If-Match": nic.etag}
    ).result()
    return time.monotonic() - started


def run(runs: int, nic_update: float, retry_after: float, mode: str = "mixed") -> dict[str, Any]:
    """Time ``runs`` takeovers each way on one stack; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp:
        stack = start_stack(
            Path(tmp),
            azure_args=[
                *("--nic-update-seconds", str(nic_update), "--retry-after", str(retry_after)),
                *("--nic-update-mode", mode),
            ],
        )
        try:
            os.environ.update(stack.ready.app_identity_env())
            client = NetworkManagementClient(
                ManagedIdentityCredential(),
                stack.ready.subscription_id,
                base_url=stack.ready.arm,
                credential_scopes=["https://management.azure.com/.default"],
                connection_verify=stack.ready.ca_file,
            )
            mover_acquire = mover_takeover(stack, "server01")  # IP on no NIC: start
            mover_times, sdk_times = [], []
            for i in range(runs):
                vm = "server02" if i % 2 == 0 else "server01"
                mover_times.append(mover_takeover(stack, vm))
            last = "server02" if runs % 2 == 1 else "server01"
            for i in range(runs):
                vm = "server01" if (i % 2 == 0) == (last == "server02") else "server02"
                sdk_times.append(sdk_takeover(client, stack.ready.resource_group, vm))
        finally:
            stack.stop()
    return {
        "runs": runs,
        "nic_update": nic_update,
        "retry_after": retry_after,
        "mode": mode,
        "floor": 2 * nic_update,
        "mover_start": mover_acquire,
        "mover": statistics.median(mover_times),
        "sdk_default": statistics.median(sdk_times),
        "mover_all": mover_times,
        "sdk_all": sdk_times,
    }


def main() -> None:
    """Print the figures as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nic-update-seconds", type=float, default=2.0)
    parser.add_argument("--retry-after", type=float, default=10.0)
    parser.add_argument("--nic-update-mode", choices=NIC_UPDATE_MODES, default="mixed")
    args = parser.parse_args()
    f = run(args.runs, args.nic_update_seconds, args.retry_after, args.nic_update_mode)
    print(
        f"takeover, NIC update {f['nic_update']} s ({f['mode']}), "
        f"Retry-After {f['retry_after']} s, median of {f['runs']}"
    )
    print("| method | median s | over the floor | vs floor |")
    print("|---|---|---|---|")
    for name in ("mover", "sdk_default"):
        value = f[name]
        print(f"| {name} | {value:.2f} | +{value - f['floor']:.2f} s | {value / f['floor']:.2f}x |")
    print(f"| floor (2 NIC updates) | {f['floor']:.2f} | | |")
    print(f"mover runs: {[round(t, 2) for t in f['mover_all']]}")
    print(f"sdk runs:   {[round(t, 2) for t in f['sdk_all']]}")


if __name__ == "__main__":
    main()
