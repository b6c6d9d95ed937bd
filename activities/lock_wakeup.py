"""Wake the next request waiting for an IP's lock (Python orchestrations cannot raise events)."""

from __future__ import annotations

import logging

import azure.durable_functions as df

from .binding_types import JsonObject

__all__ = ["WAKE_WAITER", "bp"]

log = logging.getLogger("mover.activities")

WAKE_WAITER = "wake_waiter"

bp = df.Blueprint()


@bp.activity_trigger(input_name="wake", activity=WAKE_WAITER)
@bp.durable_client_input(client_name="client")
async def wake_waiter(wake: JsonObject, client: df.DurableOrchestrationClient) -> bool:
    """Raise the waiter's wake event; False when it is gone (it then needs no waking).

    Best effort: a waiter that misses it re-checks the lock on its own timer.
    """
    try:
        await client.raise_event(wake["request_id"], wake["event"], None)
    except Exception as exc:
        log.info("could not wake %s: %s", wake["request_id"], exc)
        return False
    return True
