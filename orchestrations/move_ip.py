"""The move orchestration: one instance per request (instance id = request id).

    wait for the IP's lock (FIFO; expire if the deadline passes first)
    read the members' NICs → plan → apply each change → read them again
    … until the IP is where it should be (verified), then release the lock
    and record the request in the IP's history.

A move reads only the NICs of its cluster's members, by id (a release only the
caller's), never the resource group: another holder is found from ARM's own
answer to the add (PrivateIPAddressIsAllocated names it), and then read too.
What the history keeps of a NIC is what the decisions need (``NicView.about``).

Every transient ARM failure is retried with durable timers that honour
Retry-After, within the request's deadline; a permanent one ends the request
with its reason. Orchestrations must be deterministic: time comes from
``context.current_utc_datetime``, decisions from ``mover``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from activities.lock_wakeup import WAKE_WAITER
from activities.network import READ_NICS, UPDATE_NIC, WAIT_FOR_NIC_UPDATE
from mover.errors import ErrorInfo, MoverError, PermanentError
from mover.member_nics import MemberRef, learned_member_nics
from mover.planning import (
    Change,
    NicView,
    Plan,
    foreign_holder,
    holder_nic_to_read,
    plan_acquire,
    plan_release,
)
from mover.records import (
    REFUSED_CODE,
    Action,
    MoveRequest,
    RequestRecord,
    RequestStatus,
    Step,
    iso,
    parse_iso,
)
from mover.retry import retry_delay
from mover.telemetry import ArmTally, move_telemetry

from .ip_entities import history_entity, lock_entity

__all__ = ["MOVE_IP", "bp"]

MOVE_IP = "move_ip"

log = logging.getLogger("mover.orchestration")

# Longest single wait for a NIC update inside one activity call; the lease is
# renewed between calls.
_UPDATE_WAIT_BUDGET_SECONDS = 60.0

# How soon a NIC still updating (per ARM's provisioningState) is read again.
_STATE_RECHECK_SECONDS = 1.0

_STEP_OF_CHANGE = {"remove": "remove_ip_config", "add": "add_ip_config", "repair": "repair_nic"}

# The NIC changed under us so that the plan no longer holds: read again.
_REPLAN_CODES = frozenset({"PrivateIPAddressInUse", "PrivateIPAddressIsAllocated"})

bp = df.Blueprint()

Steps = Generator[Any, Any, Any]


@bp.orchestration_trigger(context_name="context", orchestration=MOVE_IP)
def move_ip(context: df.DurableOrchestrationContext) -> Steps:
    """Serialize, apply and verify one acquire or release of a secondary IP."""
    run = MoveRun(context, MoveRequest.from_dict(context.get_input()))
    granted = yield from run.wait_for_lock()
    if granted is None:
        run.end(RequestStatus.FAILED, run.refused_error())
        return (yield from run.record_in_history())
    if not granted:
        run.end(RequestStatus.EXPIRED, run.expired_error())
        return (yield from run.record_in_history())
    try:
        yield from run.converge()
        run.end(RequestStatus.SUCCEEDED)
    except MoverError as failure:
        run.end(RequestStatus.FAILED, run.failure(failure))
    except Exception:
        # No yield in `finally` (it misbehaves on replay): release, then re-raise.
        yield from run.release_lock()
        raise
    yield from run.release_lock()
    return (yield from run.record_in_history())


class MoveRun:
    """One request's progress: its audit record, kept as the custom status."""

    def __init__(self, context: df.DurableOrchestrationContext, request: MoveRequest) -> None:
        self.context = context
        self.request = request
        self.record = RequestRecord(request)
        # Fixed when the request was queued: a replay must not see a changed setting.
        self.limits = request.limits
        self.deadline = parse_iso(request.deadline).timestamp()
        self.lock = lock_entity(request.ip)
        self.lease_until = 0.0
        # ARM's last "address already allocated" answer, and a holder outside the plan
        # that was already given one more try (see check_conflict).
        self.conflict: ErrorInfo | None = None
        self.foreign_retried: str | None = None
        # NICs outside the members' that ARM named as holding the IP: read them too.
        self.holder_nics: list[str] = []
        # Members' NIC ids learned by earlier moves (from the lock), and by this one.
        self.known_nics: dict[str, list[str]] = {}
        self.learned_nics: dict[str, list[str]] = {}
        # ARM activity calls and failed attempts, for the request's telemetry line.
        self.arm = ArmTally()
        self._publish()

    # -- time and audit ------------------------------------------------------

    def now(self) -> float:
        """Replay-safe current time, epoch seconds."""
        return self.context.current_utc_datetime.timestamp()

    def _now_iso(self) -> str:
        return iso(self.context.current_utc_datetime)

    def _publish(self) -> None:
        self.context.set_custom_status(self.record.to_api())

    def _start_step(self, name: str, nic: str | None = None) -> Step:
        step = Step(name=name, started_at=self._now_iso(), nic=nic)
        self.record.steps.append(step)
        self._publish()
        return step

    def _end_step(self, step: Step, error: ErrorInfo | None = None) -> None:
        step.finished_at = self._now_iso()
        step.status = "failed" if error else "succeeded"
        step.error = error.to_dict() if error else None
        self._publish()
        self._log(
            "step=%s status=%s attempt=%d nic=%s elapsed=%.3fs%s",
            step.name,
            step.status,
            step.attempt,
            (step.nic or "-").rsplit("/", 1)[-1],
            _elapsed(step.started_at, step.finished_at),
            f" error={error.code}" if error else "",
        )

    def _log(self, message: str, *args: Any) -> None:
        """One structured line per event, never repeated by replays."""
        if not self.context.is_replaying:
            log.info(
                "move request=%s ip=%s action=%s " + message,
                self.request.request_id,
                self.request.ip,
                self.request.action,
                *args,
            )

    # -- the lock ------------------------------------------------------------

    def wait_for_lock(self) -> Steps:
        """Wait for the IP's lock: True once granted, False if the deadline passes first,
        None if refused (the caller already has as many pending requests as allowed).

        The releaser wakes the next waiter with an event; a timer re-checks
        anyway (lost wake-ups, holders whose lease ran out).
        """
        attempt = 0
        while True:
            now = self.now()
            if now >= self.deadline:
                yield from self.release_lock()
                return False
            attempt += 1
            wake_event = f"lock-free-{attempt}"
            grant = yield self.context.call_entity(
                self.lock, "try_acquire", {**self._lock_args(), "wakeEvent": wake_event}
            )
            if grant.get("refused"):
                return None
            if grant["granted"]:
                self.lease_until = grant["lease_until"]
                self.known_nics = grant.get("member_nics") or {}
                self.record.status = RequestStatus.RUNNING
                self.record.locked_at = self._now_iso()
                self.record.queue_position = None
                self._publish()
                return True
            if grant["position"] != self.record.queue_position:
                self.record.queue_position = grant["position"]
                self._publish()
            recheck = self.context.create_timer(
                _utc(min(now + self.limits.lock_poll_seconds, self.deadline))
            )
            woken = self.context.wait_for_external_event(wake_event)
            winner = yield self.context.task_any([recheck, woken])
            if winner == woken:
                recheck.cancel()

    def renew_lock(self, before_write: bool = False) -> Steps:
        """Keep the lease before every ARM call of the move (reads, writes, waits).

        Renewed once half of it has passed, and before a write once a quarter has:
        a write (which ARM may answer only when the update is done) starts with at
        least three quarters of a lease ahead, and the activity refuses to write in
        the last quarter (``writeBy``). A move of a few seconds renews nothing
        (each renewal costs the orchestration an entity round trip). A lease that
        ran out is still ours unless another request took the lock; if one did,
        the request ends with ``lock_lost`` and never writes again.
        """
        lease = self.limits.lock_lease_seconds
        keep = lease * (3 / 4 if before_write else 1 / 2)
        if self.now() < self.lease_until - keep:
            return
        if not (yield self.context.call_entity(self.lock, "renew", self._lock_args())):
            raise PermanentError("lock_lost", "the IP's lock lease ran out before the move ended")
        self.lease_until = self.now() + lease

    def release_lock(self) -> Steps:
        """Give up the lock (or the place in the queue) and wake whoever is next."""
        args = self._lock_args()
        if self.learned_nics and self.learned_nics != self.known_nics:
            args["memberNics"] = self.learned_nics
        wake = yield self.context.call_entity(self.lock, "release", args)
        if wake:
            yield self.context.call_activity(WAKE_WAITER, wake)

    def _lock_args(self) -> dict[str, Any]:
        return {
            "requestId": self.request.request_id,
            "deadline": self.deadline,
            "now": self.now(),
            "leaseSeconds": self.limits.lock_lease_seconds,
            "caller": self.request.caller_principal,
            "maxPending": self.limits.max_pending_per_caller,
        }

    # -- the move ------------------------------------------------------------

    def converge(self) -> Steps:
        """Read, plan and apply until the IP is where the request wants it.

        After a plan's changes, the NICs are planned on again as ARM reported them at
        the end of each update (the answer that said Succeeded: the PUT's own, or the
        poll's read of the NIC): the verification costs no read of its own. ARM lets
        one NIC of a network hold a private address, so the target's final state
        showing the IP also shows that no other NIC has it. Where an end state is
        unknown, the NICs are read again.
        """
        request = self.request
        acquiring = request.action == Action.ACQUIRE
        step_name = "find_holder"
        touched: list[str] = []  # NICs this request wrote: each must end Succeeded
        nics: list[NicView] | None = None
        while True:
            if nics is None:
                nics = yield from self.read_nics(step_name)
            else:
                self._end_step(self._start_step(step_name))
            if acquiring:
                plan = plan_acquire(
                    nics,
                    request.vm_id,
                    request.ip,
                    request.member_vm_ids,
                    request.force,
                    tuple(touched),
                )
            else:
                plan = plan_release(nics, request.vm_id, request.ip, tuple(touched))
            self.check_conflict(plan)
            if step_name == "find_holder":
                self.record.from_nics = [h for h in plan.holders if h != plan.target_nic.id]
                self.record.to_nic = plan.target_nic.id if acquiring else None
                if not acquiring:
                    self.record.from_nics = [c.nic_id for c in plan.changes]
            if plan.done:
                self.record.unassigned = False
                self._publish()
                return
            step_name = "verify"
            if not plan.changes:
                # A NIC is still updating (ours, or someone else's write): look again soon.
                yield from self._wait_for_states(plan.waiting, nics)
                nics = None
                continue
            nics, step_name = yield from self.apply_plan(plan, nics, touched)

    def apply_plan(self, plan: Plan, nics: list[NicView], touched: list[str]) -> Steps:
        """Apply the plan's changes in order.

        Returns the NICs as they ended and the next step's name; the NICs are None
        when they must be read again: a change's end state is unknown, or ARM's
        answer calls for a new plan (``find_holder`` again when ARM named a holder
        the move has not read).
        """
        ended: dict[str, NicView] = {}
        planned_on = {nic.id.lower(): nic.etag for nic in nics}
        for change in plan.changes:
            touched.append(change.nic_id)
            replan, final = yield from self.apply(change, planned_on.get(change.nic_id.lower()))
            if replan:
                return None, "find_holder" if self.read_named_holder(plan, nics) else "verify"
            if final is None:
                return None, "verify"
            ended[final.id.lower()] = final
        return [ended.get(nic.id.lower(), nic) for nic in nics], "verify"

    def read_named_holder(self, plan: Plan, nics: list[NicView]) -> bool:
        """After ARM said another resource holds the address: read it too, if it is a NIC
        of the cluster's resource group the move has not read.

        A move reads only its members' NICs, so ARM's PrivateIPAddressIsAllocated is
        how it learns of any other holder: a NIC that is not a member's (the plan then
        refuses it, ``held_by_non_member``, unless an operator forces the move), or a
        member's NIC the configuration does not name. True when there is such a NIC
        to read before planning again.
        """
        if self.conflict is None:
            return False
        holder = foreign_holder(self.conflict.message, plan)
        if holder is None:
            return False
        request = self.request
        unread = holder_nic_to_read(
            holder, request.subscription_id, request.resource_group, [n.id for n in nics]
        )
        if unread is None:
            return False
        self.holder_nics.append(unread)
        return True

    def check_conflict(self, plan: Plan) -> None:
        """After ARM said another resource holds the address: re-plan, or give up.

        When the holder ARM names is one of the NICs the new plan takes the IP from,
        the plan deals with it. When it is not (a resource the mover does not manage
        or cannot read, or a read that lagged), the plan is tried once more; the same
        answer again ends the request with ARM's code and message.
        """
        conflict, self.conflict = self.conflict, None
        if conflict is None:
            return
        holder = foreign_holder(conflict.message, plan)
        if holder is None:
            return
        if holder.lower() == (self.foreign_retried or "").lower():
            raise PermanentError(conflict.code, conflict.message, status=conflict.status)
        self.foreign_retried = holder

    def read_nics(self, step_name: str) -> Steps:
        """Read the NICs the move needs, retrying transient failures.

        An acquire reads every member's NICs (a holder among them loses the IP); a
        release only the caller's. Plus any NIC ARM named as holding the IP.
        """
        request = self.request
        if request.action == Action.RELEASE or not request.member_vm_ids:
            vms: tuple[str, ...] = (request.vm_id,)
        else:
            vms = request.member_vm_ids
        members = [
            MemberRef(
                vm,
                _nic_of(request.member_nic_ids, vm),
                tuple(self.known_nics.get(vm.lower(), ())),
            )
            for vm in vms
        ]
        step = self._start_step(step_name)
        payload = {
            "requestId": request.request_id,
            "priority": self._arm_priority(),
            "address": request.ip,
            "members": [m.to_dict() for m in members],
            "nicIds": list(self.holder_nics),
        }
        while True:
            yield from self.renew_lock()
            self.arm.reads += 1
            outcome = yield self.context.call_activity(READ_NICS, payload)
            if outcome["ok"]:
                self._end_step(step)
                views = [NicView.from_dict(n) for n in outcome["result"]]
                self.learned_nics.update(learned_member_nics(members, views))
                return views
            yield from self._back_off(step, ErrorInfo.from_dict(outcome["error"]))

    def apply(self, change: Change, etag: str | None) -> Steps:
        """Make one NIC change and wait for ARM to finish it.

        ``etag`` is the version of the NIC the change was planned on: the first try
        writes that version back (If-Match) without reading it again if its process
        read it. Returns ``(replan, nic)``: ``replan`` when the NIC changed under us
        in a way that invalidates the plan (the IP now in use elsewhere); else the NIC
        as ARM reported it when the update ended (None if not known). Transient
        failures retry the same change (on the NIC as it is then, so a change that
        did happen is a no-op).
        """
        name = _STEP_OF_CHANGE[change.kind]
        step = self._start_step(name, nic=change.nic_id)
        final: dict[str, Any] | None = None
        while True:
            yield from self.renew_lock(before_write=True)
            self.arm.writes += 1
            write_by = self.lease_until - self.limits.lock_lease_seconds / 4
            outcome = yield self.context.call_activity(
                UPDATE_NIC,
                {
                    **self._change_input(change),
                    # Only a first try writes the NIC as planned on: after any failed
                    # try the NIC may have changed (our own write, accepted), and a
                    # process that read it before cannot know.
                    **({"etag": etag} if etag and step.attempt == 1 else {}),
                    # The activity writes only while the lease surely holds: a
                    # delayed activity of a holder overtaken meanwhile never writes.
                    "writeBy": write_by,
                    # It follows the update while the lease surely holds, then we wait.
                    "followBy": min(
                        write_by, self.deadline, self.now() + _UPDATE_WAIT_BUDGET_SECONDS
                    ),
                },
            )
            if outcome["ok"]:
                update = outcome["result"]
                step.arm_operation_id = update.get("armRequestId") or step.arm_operation_id
                error = None
                final = update.get("nic")
                if not update.get("ended"):
                    error, final = yield from self._wait_for_update(change, update)
                if error is None:
                    break
            else:
                error = ErrorInfo.from_dict(outcome["error"])
            yield from self._back_off(step, error)
            if error.code in _REPLAN_CODES:
                self._end_step(step, error)
                self.conflict = error
                return True, None
        self._end_step(step)
        if self.request.action == Action.ACQUIRE and change.kind != "repair":
            # Between a remove and the add, the IP is on no NIC: say so plainly.
            self.record.unassigned = change.kind == "remove"
            self._publish()
        return False, NicView.from_dict(final) if final else None

    def _change_input(self, change: Change) -> dict[str, Any]:
        """What the update and the wait for it both get: the change and whose it is."""
        return {
            "requestId": self.request.request_id,
            "priority": self._arm_priority(),
            "subscriptionId": self.request.subscription_id,
            "nicId": change.nic_id,
            "change": {"kind": change.kind, "nic_id": change.nic_id, "nic_name": change.nic_name},
            "address": self.request.ip,
            "ipConfigName": self.request.ip_config_name,
        }

    def _arm_priority(self) -> float:
        """When the move was requested: in a burst, ARM's budget goes to the oldest
        move's calls first (``mover.arm_budget.BudgetGate``)."""
        return parse_iso(self.request.created_at).timestamp()

    def _wait_for_update(self, change: Change, update: dict[str, Any]) -> Steps:
        """Follow the NIC update to its end: ``(None, nic)`` when it succeeded (the NIC
        as read then), else ``(error, None)``.

        The first wait starts from when ARM answered the PUT (its first poll comes a
        typical update time later); the following ones poll at the usual cadence.
        """
        answered_at = update.get("answeredAt")
        while True:
            # Each wait returns well within the lease, so the lease is renewed in time.
            budget = min(
                _UPDATE_WAIT_BUDGET_SECONDS,
                self.limits.lock_lease_seconds / 2,
                self.deadline - self.now(),
            )
            if budget <= 0:
                late = ErrorInfo("deadline_exceeded", "the NIC update outlasted the deadline", True)
                return late, None
            yield from self.renew_lock()
            self.arm.waits += 1
            outcome = yield self.context.call_activity(
                WAIT_FOR_NIC_UPDATE,
                {
                    **self._change_input(change),
                    "operationUrl": update.get("operationUrl"),
                    "budgetSeconds": budget,
                    **({"answeredAt": answered_at} if answered_at is not None else {}),
                },
            )
            answered_at = None
            if outcome["ok"]:
                return None, outcome["result"].get("nic")
            error = ErrorInfo.from_dict(outcome["error"])
            if error.code != "StillUpdating":
                return error, None

    def _wait_for_states(self, waiting: tuple[str, ...], nics: list[NicView]) -> Steps:
        """Wait a little for NICs whose update is in progress, within the deadline."""
        if self.now() + _STATE_RECHECK_SECONDS >= self.deadline:
            states = {n.id: n.provisioning_state for n in nics}
            still = ", ".join(f"{w.rsplit('/', 1)[-1]} ({states.get(w)})" for w in waiting)
            raise PermanentError("deadline_exceeded", f"the deadline passed while {still} updated")
        yield self.context.create_timer(_utc(self.now() + _STATE_RECHECK_SECONDS))

    def _back_off(self, step: Step, error: ErrorInfo) -> Steps:
        """Wait before retrying a step, or end the request when retrying cannot help."""
        step.error = error.to_dict()
        self.arm.count_failure(error)
        delay = retry_delay(step.attempt, error, self.now(), self.deadline)
        if delay is None:
            self._end_step(step, error)
            if not error.transient:
                raise PermanentError(error.code, error.message, status=error.status)
            raise self._deadline_error(step)
        step.attempt += 1
        step.retried = [*step.retried, error.code][-10:]
        self._publish()
        if delay > 0:
            yield self.context.create_timer(_utc(self.now() + delay))

    def _deadline_error(self, step: Step) -> PermanentError:
        last = f" (last error: {step.error['code']}: {step.error['message']})" if step.error else ""
        return PermanentError("deadline_exceeded", f"the deadline passed during {step.name}{last}")

    # -- the end -------------------------------------------------------------

    def expired_error(self) -> dict[str, Any]:
        """Why a request that never got the lock did nothing."""
        return {
            "code": "expired",
            "message": "the deadline passed while the request waited for the IP's lock; "
            "nothing was changed",
        }

    def refused_error(self) -> dict[str, Any]:
        """Why a request was never queued."""
        return {
            "code": REFUSED_CODE,
            "message": f"the caller already has {self.limits.max_pending_per_caller} requests "
            f"holding or waiting for {self.request.ip}'s lock; nothing was changed",
        }

    def failure(self, error: MoverError) -> dict[str, Any]:
        """The error as the audit shows it, saying plainly when the IP is on no NIC."""
        message = error.message
        if self.record.unassigned:
            message += f"; {self.request.ip} is unassigned (on no NIC)"
        return {"code": error.code, "message": message}

    def end(self, status: RequestStatus, error: dict[str, Any] | None = None) -> None:
        """The request's outcome (before the lock passes on, so audit spans never overlap)."""
        self.record.status = status
        self.record.error = error
        self.record.queue_position = None
        self.record.finished_at = self._now_iso()
        self._publish()
        self._log(
            "status=%s waited=%.3fs moved=%.3fs%s",
            status,
            _elapsed(self.request.created_at, self.record.locked_at or self.record.finished_at),
            _elapsed(self.record.locked_at, self.record.finished_at)
            if self.record.locked_at
            else 0,
            f" error={error['code']}" if error else "",
        )
        if not self.context.is_replaying:
            # The one structured line per request that alerts and queries read.
            telemetry = move_telemetry(self.record.to_api(), self.arm, self.request.force)
            log.info(telemetry.line(), extra=telemetry.log_extra())

    def record_in_history(self) -> Steps:
        """Keep the finished record in the IP's history; it is also the orchestration's output."""
        record = self.record.to_api()
        appended = yield self.context.call_entity(
            history_entity(self.request.ip),
            "append",
            {
                "record": record,
                "limit": self.limits.history_size,
                "splitBrainWindowSeconds": self.limits.split_brain_window_seconds,
            },
        )
        # The history judged the record against the moves before it (mover/split_brain.py).
        split = appended.get("splitBrain") if isinstance(appended, dict) else None
        if split:
            record["splitBrain"] = split
            if not self.context.is_replaying:
                log.warning(
                    "move request=%s ip=%s split_brain: took the IP from %s %.1fs after its "
                    "acquire %s%s",
                    self.request.request_id,
                    self.request.ip,
                    split.get("tookFrom") or split.get("nic"),
                    float(split.get("secondsAfter") or 0),
                    split.get("acquiredBy"),
                    " (both were queued at once)" if split.get("overlapped") else "",
                )
        return record


def _nic_of(configured: dict[str, str], vm_id: str) -> str | None:
    """The NIC the configuration names for this VM (ids compare case-insensitively)."""
    return next((nic for vm, nic in configured.items() if vm.lower() == vm_id.lower()), None)


def _elapsed(start: str, end: str) -> float:
    return (parse_iso(end) - parse_iso(start)).total_seconds()


def _utc(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)
