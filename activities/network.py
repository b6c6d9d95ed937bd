"""Activities on NICs: list them, change one NIC's ip-configurations, follow the update.

Each returns an outcome, ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": ErrorInfo}``, so that the orchestration gets the error's kind and
Retry-After as data (Durable would pass it only a message).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df
from azure.core.rest import HttpRequest
from azure.mgmt.network.models import NetworkInterfaceIPConfiguration, Subnet

from mover.config import current_config
from mover.errors import TransientError, classify_arm_failure
from mover.planning import Change, plan_nic_edit

from .arm import map_sdk_error, network_client, nic_view
from .binding_types import JsonObject

__all__ = ["LIST_NICS", "UPDATE_NIC", "WAIT_FOR_NIC_UPDATE", "bp"]

log = logging.getLogger("mover.activities")

LIST_NICS = "list_nics"
UPDATE_NIC = "update_nic_ip_configs"
WAIT_FOR_NIC_UPDATE = "wait_for_nic_update"

bp = df.Blueprint()

_NIC_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Network/"
    r"networkInterfaces/(?P<name>[^/]+)$",
    re.IGNORECASE,
)


@bp.activity_trigger(input_name="request", activity=LIST_NICS)
def list_nics(request: JsonObject) -> dict[str, Any]:
    """All NICs of the cluster's resource group, as NicView dicts."""

    def call() -> list[dict[str, Any]]:
        client = network_client(current_config().arm, request["subscriptionId"])
        nics = client.network_interfaces.list(request["resourceGroup"])
        return [nic_view(n).to_dict() for n in nics]

    return _outcome(LIST_NICS, request, call)


@bp.activity_trigger(input_name="request", activity=UPDATE_NIC)
def update_nic_ip_configs(request: JsonObject) -> dict[str, Any]:
    """Read the NIC, change only its ip-configurations, PUT it back with If-Match.

    The change is re-decided on the NIC as read, so a repeated call is a no-op
    (``{"noop": true}``), unless the NIC is ``Failed``: then it is written again as it
    is. Does not wait for the update to finish; ARM often answers the PUT when the
    update is already done (``provisioningState`` Succeeded in the result), and then
    there is nothing to wait for.
    """

    def call() -> dict[str, Any]:
        client = network_client(current_config().arm, request["subscriptionId"])
        group, name = _split_nic_id(request["nicId"])
        nic = client.network_interfaces.get(group, name)
        change = Change(**request["change"])
        edit = plan_nic_edit(nic_view(nic), change, request["address"], request["ipConfigName"])
        # A NIC whose last update Failed may show the wanted configuration without having
        # it; Azure's remedy for a Failed network resource is to PUT it again.
        if edit.is_noop and nic.provisioning_state != "Failed":
            return {"noop": True}
        write_by = request.get("writeBy")
        if write_by is not None and time.time() >= float(write_by):
            # This call ran late (a slow read, an overloaded host): the lock's
            # lease may have passed to another request. Renew first, then write.
            raise TransientError(
                "LeaseExpiring", "the lock's lease was running out before the write; renewing"
            )
        configs = [c for c in nic.ip_configurations if c.name not in edit.remove_names]
        if edit.add_name:
            configs.append(
                NetworkInterfaceIPConfiguration(
                    name=edit.add_name,
                    private_ip_address=edit.add_address,
                    private_ip_allocation_method="Static",
                    subnet=Subnet(id=edit.add_subnet_id),
                    primary=False,
                )
            )
        # Everything else of the NIC (DNS, forwarding, NSG, public IPs, tags)
        # goes back as read (a repair changes nothing at all: Azure's remedy
        # for a NIC left Failed is to PUT it again); If-Match makes a
        # concurrent writer's change win.
        nic.ip_configurations = configs
        response = client.network_interfaces.begin_create_or_update(
            group,
            name,
            nic,
            headers={"If-Match": nic.etag},
            polling=False,
            cls=lambda pipeline_response, _deserialized, _headers: pipeline_response,
        ).result()
        http = response.http_response
        return {
            "noop": False,
            # Kept exactly as ARM sent it: newer URLs carry signature parameters.
            "operationUrl": http.headers.get("Azure-AsyncOperation"),
            "armRequestId": http.headers.get("x-ms-request-id"),
            "provisioningState": _provisioning_state(http),
        }

    return _outcome(UPDATE_NIC, request, call)


@bp.activity_trigger(input_name="request", activity=WAIT_FOR_NIC_UPDATE)
def wait_for_nic_update(request: JsonObject) -> dict[str, Any]:
    """Poll the NIC update every ``lro_poll_seconds`` until it ends or the budget is spent.

    Deliberately ignores ARM's Retry-After (10 s on NIC updates): a failover
    must not wait for a clock when Azure finished sooner. Ends with
    ``TransientError("StillUpdating")`` when the budget runs out first.
    """

    def call() -> dict[str, Any]:
        settings = current_config().arm
        client = network_client(settings, request["subscriptionId"])
        group, name = _split_nic_id(request["nicId"])
        budget_ends = time.monotonic() + float(request["budgetSeconds"])
        while True:
            time.sleep(settings.lro_poll_seconds)
            status, error = _update_status(client, request.get("operationUrl"), group, name)
            if status == "Succeeded":
                return {"status": status}
            if status in ("Failed", "Canceled"):
                error = error or {}
                raise classify_arm_failure(
                    200,
                    error.get("code") or f"Operation{status}",
                    error.get("message") or f"the NIC update ended {status}",
                )
            if time.monotonic() >= budget_ends:
                raise TransientError("StillUpdating", f"{name} is still updating")

    return _outcome(WAIT_FOR_NIC_UPDATE, request, call)


def _update_status(
    client: Any, operation_url: str | None, group: str, name: str
) -> tuple[str, dict[str, Any] | None]:
    """Status of the update: the Azure-AsyncOperation resource, else the NIC's state.

    The operation resource sits at subscription scope; where the app's role is
    granted only on the resource group and ARM refuses it (403/404), the NIC's
    provisioningState tells the same, without the failure's reason.
    """
    if operation_url:
        response = client.send_request(HttpRequest("GET", operation_url))
        if response.status_code not in (403, 404):
            response.raise_for_status()
            body = response.json()
            return str(body.get("status")), body.get("error")
        log.warning(
            "cannot read %s (%d): using the NIC's state", operation_url, response.status_code
        )
    nic = client.network_interfaces.get(group, name)
    return str(nic.provisioning_state), None


def _provisioning_state(http: Any) -> str | None:
    """The NIC's provisioningState in the PUT's answer (None when it has none)."""
    try:
        return http.json()["properties"]["provisioningState"]
    except (ValueError, KeyError, TypeError):
        return None


def _split_nic_id(nic_id: str) -> tuple[str, str]:
    m = _NIC_ID.match(nic_id)
    if m is None:
        raise ValueError(f"not a NIC resource id: {nic_id}")
    return m["rg"], m["name"]


def _outcome(activity: str, request: dict[str, Any], call: Callable[[], Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        error = map_sdk_error(exc)
        log.info(
            "%s request=%s failed after %.3fs: %s",
            activity,
            request.get("requestId"),
            time.monotonic() - started,
            error,
        )
        return {"ok": False, "error": error.info().to_dict()}
    log.info(
        "%s request=%s ok in %.3fs", activity, request.get("requestId"), time.monotonic() - started
    )
    return {"ok": True, "result": result}
