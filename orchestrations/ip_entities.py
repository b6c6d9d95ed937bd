"""Entities per IP: its lock (who may move it now, who waits) and its audit history."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from mover.lock import IpLock
from mover.records import append_record
from mover.split_brain import suspect_split_brain

__all__ = ["IP_HISTORY", "IP_LOCK", "bp", "history_entity", "lock_entity"]

IP_LOCK = "ip_lock"
IP_HISTORY = "ip_history"

bp = df.Blueprint()


def lock_entity(ip: str) -> df.EntityId:
    """The lock entity of an IP."""
    return df.EntityId(IP_LOCK, ip)


def history_entity(ip: str) -> df.EntityId:
    """The history entity of an IP."""
    return df.EntityId(IP_HISTORY, ip)


@bp.entity_trigger(context_name="context", entity_name=IP_LOCK)
def ip_lock(context: df.DurableEntityContext) -> None:
    """Operations: try_acquire, renew, release (see mover.lock.IpLock)."""
    lock = IpLock.from_dict(context.get_state(dict))
    args: dict[str, Any] = context.get_input() or {}
    operation = context.operation_name
    if operation == "try_acquire":
        result: Any = lock.try_acquire(
            args["requestId"],
            args["deadline"],
            args["now"],
            args["leaseSeconds"],
            args.get("wakeEvent"),
            args.get("caller"),
            args.get("maxPending"),
        ).to_dict()
    elif operation == "renew":
        result = lock.renew(args["requestId"], args["now"], args["leaseSeconds"])
    elif operation == "release":
        wake = lock.release(args["requestId"], args["now"], args.get("memberNics"))
        result = wake.to_dict() if wake else None
    else:
        raise ValueError(f"ip_lock has no operation {operation!r}")
    context.set_state(lock.to_dict())
    context.set_result(result)


@bp.entity_trigger(context_name="context", entity_name=IP_HISTORY)
def ip_history(context: df.DurableEntityContext) -> None:
    """Operation append: keep a finished request's record (newest last, at most ``limit``).

    The record is judged against the history it joins (here, where appends are
    serialized): an acquire that took the IP from a member that had acquired it
    within ``splitBrainWindowSeconds`` gets a ``splitBrain`` field. Returns
    ``{"count", "splitBrain"}``.
    """
    records: list[dict[str, Any]] = context.get_state(list)
    args: dict[str, Any] = context.get_input() or {}
    if context.operation_name != "append":
        raise ValueError(f"ip_history has no operation {context.operation_name!r}")
    record = args["record"]
    window = args.get("splitBrainWindowSeconds")
    if window is not None:
        suspicion = suspect_split_brain(records, record, float(window))
        record = {**record, "splitBrain": suspicion.to_api() if suspicion else None}
    records = append_record(records, record, int(args["limit"]))
    context.set_state(records)
    context.set_result({"count": len(records), "splitBrain": record.get("splitBrain")})
