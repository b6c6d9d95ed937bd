"""Small helpers shared by the local-Azure tests."""

from __future__ import annotations

import copy
from typing import Any

import requests

from emulator.azure.control import AzureControl, ReadyInfo


def with_secondary(
    nic: dict[str, Any], ip: str = "10.5.0.110", name: str = "ipconfig2"
) -> dict[str, Any]:
    """A copy of raw NIC JSON with one more (non-primary, static) ip-configuration."""
    body = copy.deepcopy(nic)
    subnet_id = body["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"]
    body["properties"]["ipConfigurations"].append(
        {
            "name": name,
            "properties": {
                "privateIPAddress": ip,
                "privateIPAllocationMethod": "Static",
                "subnet": {"id": subnet_id},
                "primary": False,
            },
        }
    )
    return body


def arm_get(ready: ReadyInfo, path: str, token: str | None, **params: str) -> requests.Response:
    """A raw GET against the fake ARM (for what the SDK hides: headers, exact bodies)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(
        f"{ready.arm}{path}", params=params, headers=headers, verify=ready.ca_file, timeout=10
    )


def nic_path(ready: ReadyInfo, nic: str) -> str:
    """ARM path of a NIC in the seed topology."""
    return (
        f"/subscriptions/{ready.subscription_id}/resourceGroups/{ready.resource_group}"
        f"/providers/Microsoft.Network/networkInterfaces/{nic}"
    )


def app_token(control: AzureControl, **kwargs: Any) -> str:
    """A valid ARM token of the Function app, minted through the control API."""
    return control.token("app", **kwargs)


def put_first_response(client: Any, group: str, nic: str, body: Any, **kwargs: Any) -> Any:
    """PUT a NIC through the SDK without its poller; the PUT's own PipelineResponse."""
    return client.network_interfaces.begin_create_or_update(
        group, nic, body, polling=False, cls=lambda response, _model, _headers: response, **kwargs
    ).result()
