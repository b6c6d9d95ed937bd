"""Activities on NICs: read the members' NICs, change one NIC's ip-configurations,
follow the update.

Each returns an outcome, ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": ErrorInfo}``, so that the orchestration gets the error's kind and
Retry-After as data (Durable would pass it only a message).

They are ``async def`` on azure-mgmt-network's ``aio`` client: Microsoft's worker
runs them on its event loop, so a NIC update that ARM takes seconds to finish
holds no thread while it is followed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df
from azure.core.rest import HttpRequest
from azure.mgmt.network.models import NetworkInterfaceIPConfiguration, Subnet

from mover.arm_budget import ARM_CALL_PRIORITY
from mover.config import ArmSettings, current_config
from mover.errors import TransientError, classify_arm_failure
from mover.member_nics import MemberNics, MemberRef
from mover.planning import Change, NicView, plan_nic_edit

from .arm import (
    get_nic,
    get_nic_to_update,
    get_vm,
    map_sdk_error,
    network_client,
    nic_view,
    read_nic_view,
    split_nic_id,
)
from .binding_types import JsonObject

__all__ = ["READ_NICS", "UPDATE_NIC", "WAIT_FOR_NIC_UPDATE", "bp"]

log = logging.getLogger("mover.activities")

READ_NICS = "read_nics"
UPDATE_NIC = "update_nic_ip_configs"
WAIT_FOR_NIC_UPDATE = "wait_for_nic_update"

bp = df.Blueprint()

# The members' NICs learned from their VMs, for this worker process.
_MEMBER_NICS = MemberNics()


@bp.activity_trigger(input_name="request", activity=READ_NICS)
async def read_nics(request: JsonObject) -> dict[str, Any]:
    """The members' NICs (``members``: ``[{vmId, nicId?}]``) and the NICs ARM named as
    holding the IP (``nicIds``), read by id in parallel; each as a NicView dict with
    only the ip-configurations that carry ``address``.
    """

    async def call() -> list[dict[str, Any]]:
        settings = current_config().arm
        views = await _MEMBER_NICS.read(
            [MemberRef.from_dict(m) for m in request["members"]],
            request.get("nicIds") or (),
            lambda vm_id: get_vm(settings, vm_id),
            lambda nic_id: read_nic_view(settings, nic_id),
        )
        return [view.about(request["address"]).to_dict() for view in views]

    return await _outcome(READ_NICS, request, call)


@bp.activity_trigger(input_name="request", activity=UPDATE_NIC)
async def update_nic_ip_configs(request: JsonObject) -> dict[str, Any]:
    """Change only the NIC's ip-configurations, PUT it back with If-Match, and follow the
    update to its end.

    The NIC is the one the change was planned on (``etag``) when this process still
    has it as read, else read now. The change is re-decided on it, so a repeated
    call is a no-op (``{"noop": true, "ended": true}``, with the NIC as read in
    ``nic``), unless the NIC is ``Failed``: then it is written again as it is.
    ARM often answers the PUT when the update is already done (``provisioningState``
    Succeeded in its answer): that answer is the NIC's final state. Otherwise the
    NIC is polled, as ``wait_for_nic_update`` does, until the update ends or the
    wall clock reaches ``followBy`` (epoch seconds): ``ended`` says which, ``nic``
    is the NIC when it ended. Following here, on the event loop, spares the
    orchestration an episode per update.
    """

    async def call() -> dict[str, Any]:
        settings = current_config().arm
        subscription, group, name = split_nic_id(request["nicId"])
        client = network_client(settings, subscription)
        nic = await get_nic_to_update(settings, request["nicId"], request.get("etag"))
        change = Change(**request["change"])
        address = request["address"]
        read = nic_view(nic)
        edit = plan_nic_edit(read, change, address, request["ipConfigName"])
        # A NIC whose last update Failed may show the wanted configuration without having
        # it; Azure's remedy for a Failed network resource is to PUT it again.
        if edit.is_noop and read.provisioning_state != "Failed":
            return {"noop": True, "ended": True, "nic": read.about(address).to_dict()}
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
        poller = await client.network_interfaces.begin_create_or_update(
            group,
            name,
            nic,
            headers={"If-Match": nic.etag},
            polling=False,
            cls=lambda pipeline_response, deserialized, _headers: (pipeline_response, deserialized),
        )
        response, written = await poller.result()
        answered_at = time.time()
        http = response.http_response
        state = _provisioning_state(http)
        answer: dict[str, Any] = {
            "noop": False,
            # Kept exactly as ARM sent it: newer URLs carry signature parameters.
            "operationUrl": http.headers.get("Azure-AsyncOperation"),
            "armRequestId": http.headers.get("x-ms-request-id"),
            "provisioningState": state,
            "ended": False,
        }
        if state == "Succeeded" and written is not None:
            # The update is done and this is the NIC as ARM now has it.
            return {**answer, "ended": True, "nic": nic_view(written).about(address).to_dict()}
        first_poll = settings.first_poll_seconds  # ARM answered just now
        follow_by = request.get("followBy")
        if follow_by is None or float(follow_by) - time.time() < first_poll:
            # Not ours to follow (or no time to): the orchestration waits for it.
            return {**answer, "answeredAt": answered_at}
        try:
            ended = await _follow_update(
                settings,
                {**request, "operationUrl": answer["operationUrl"]},
                first_poll,
                time.monotonic() + float(follow_by) - time.time(),
            )
        except TransientError as still:
            if still.code != "StillUpdating":
                raise
            return answer
        return {**answer, "ended": True, "provisioningState": "Succeeded", "nic": ended["nic"]}

    return await _outcome(UPDATE_NIC, request, call)


@bp.activity_trigger(input_name="request", activity=WAIT_FOR_NIC_UPDATE)
async def wait_for_nic_update(request: JsonObject) -> dict[str, Any]:
    """Read the NIC until its update ends or the budget (``budgetSeconds``) is spent.

    Polls the NIC itself, not the Azure-AsyncOperation resource: the read that sees
    ``provisioningState`` Succeeded is also the NIC's state after the update
    (``{"status": "Succeeded", "nic": NicView}``), so the move needs no second read
    to verify it. Only when the update ended ``Failed`` or ``Canceled`` is the
    operation resource read, for ARM's reason.

    Polls every ``arm.lroPollSeconds``; with ``answeredAt`` (when ARM answered the
    PUT) the first poll comes ``arm.firstPollSeconds`` after it. Deliberately
    ignores ARM's Retry-After (10 s on NIC updates): a failover must not wait for
    a clock when Azure finished sooner. Waits on the event loop, holding no
    thread. Ends with ``TransientError("StillUpdating")`` when the budget runs out
    first.
    """

    async def call() -> dict[str, Any]:
        settings = current_config().arm
        return await _follow_update(
            settings,
            request,
            _first_delay(settings, request.get("answeredAt")),
            time.monotonic() + float(request["budgetSeconds"]),
        )

    return await _outcome(WAIT_FOR_NIC_UPDATE, request, call)


async def _follow_update(
    settings: ArmSettings, request: JsonObject, delay: float, ends_at: float
) -> dict[str, Any]:
    """Poll the NIC (first after ``delay``, then every ``lroPollSeconds``) until its update
    ends; ``{"status": "Succeeded", "nic"}``, or raise the update's failure, or
    ``StillUpdating`` once the monotonic clock passes ``ends_at``."""
    subscription, _, name = split_nic_id(request["nicId"])
    while True:
        await asyncio.sleep(max(0.0, min(delay, ends_at - time.monotonic())))
        delay = settings.lro_poll_seconds
        try:
            view = nic_view(await get_nic(settings, request["nicId"]))
        except Exception as exc:
            failed = map_sdk_error(exc)
            if not failed.transient:
                raise failed from exc
            # A poll that went wrong (throttled, 5xx, no answer) says nothing of the
            # update: poll again after ARM's Retry-After, rather than end the wait and
            # have the update retried on a fresh read.
            delay = max(delay, failed.retry_after or 0.0)
            if time.monotonic() + delay >= ends_at:
                raise TransientError("StillUpdating", f"{name} is still updating") from exc
            continue
        status = view.provisioning_state
        if status == "Succeeded":
            if change_is_in(view, request):
                return {"status": status, "nic": view.about(request["address"]).to_dict()}
            # Done, but not with our change: our update failed (ARM accepts a PUT that
            # meets another update, then fails it) or another writer overtook it.
            error = await _operation_error(settings, subscription, request.get("operationUrl"))
            if error:
                raise classify_arm_failure(200, error.get("code"), error.get("message") or "")
            raise TransientError("UpdateOvertaken", f"{name} ended without the change")
        if status in ("Failed", "Canceled"):
            error = await _operation_error(settings, subscription, request.get("operationUrl"))
            if not error:
                # No reason to judge by; a Failed NIC is repaired by writing it again.
                raise TransientError(f"Operation{status}", f"{name}'s update ended {status}")
            raise classify_arm_failure(
                200, error.get("code"), error.get("message") or f"the NIC update ended {status}"
            )
        if time.monotonic() >= ends_at:
            raise TransientError("StillUpdating", f"{name} is still updating")


def change_is_in(nic: NicView, request: dict[str, Any]) -> bool:
    """Whether the NIC already is as the request's change wants it (a repair: always)."""
    change = Change(**request["change"])
    return plan_nic_edit(nic, change, request["address"], request["ipConfigName"]).is_noop


def _first_delay(settings: ArmSettings, answered_at: Any) -> float:
    """How long to wait before the first poll of this call.

    ``firstPollSeconds`` after ARM answered the PUT (the time the activity took to
    be scheduled counts), never more; a later call for the same update (no
    ``answeredAt``) polls at the usual cadence.
    """
    if answered_at is None:
        return settings.lro_poll_seconds
    remaining = float(answered_at) + settings.first_poll_seconds - time.time()
    return min(max(remaining, 0.0), settings.first_poll_seconds)


async def _operation_error(
    settings: ArmSettings, subscription: str, operation_url: str | None
) -> dict[str, Any]:
    """ARM's reason for an update that ended Failed/Canceled, from its
    Azure-AsyncOperation resource; empty when there is none or it cannot be read.

    The operation resource sits at subscription scope; where the app's role is
    granted only on the resource group ARM refuses it (403/404), and the reason is
    then the NIC's provisioningState alone.
    """
    if not operation_url:
        return {}
    client = network_client(settings, subscription)
    response = await client.send_request(HttpRequest("GET", operation_url))
    if response.status_code in (403, 404):
        log.warning("cannot read %s (%d)", operation_url, response.status_code)
        return {}
    response.raise_for_status()
    error = response.json().get("error")
    return error if isinstance(error, dict) else {}


def _provisioning_state(http: Any) -> str | None:
    """The NIC's provisioningState in the PUT's answer (None when it has none)."""
    try:
        return http.json()["properties"]["provisioningState"]
    except (ValueError, KeyError, TypeError):
        return None


async def _outcome(
    activity: str, request: dict[str, Any], call: Callable[[], Awaitable[Any]]
) -> dict[str, Any]:
    started = time.monotonic()
    # The move's calls wait for ARM's budget in the order the moves were requested.
    priority = ARM_CALL_PRIORITY.set(request.get("priority"))
    try:
        result = await call()
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
    finally:
        ARM_CALL_PRIORITY.reset(priority)
    log.info(
        "%s request=%s ok in %.3fs", activity, request.get("requestId"), time.monotonic() - started
    )
    return {"ok": True, "result": result}
