"""One orchestration episode: history in, actions out, state committed.

An episode is what the Durable extension does when an instance's control queue
has new messages: it replays the orchestrator over its history plus the new
events, then turns the actions the orchestrator scheduled for the first time
into history events, queue messages and activity work items, all in one
transaction.

Task ids follow DurableTask.Core's sequence numbering, which the SDK mirrors:
each scheduled activity, timer, sub-orchestration and entity message takes the
next id; retries take ids for their timer and each new attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .actions import ActionType, OrchestratorAnswer, parse_answer
from .catalog import FunctionCatalog
from .history import EventType, event, format_time, parse_time, utc_now
from .invoker import Invoker
from .store import DurableStore, EpisodeCommit, InstanceRecord, Message
from .versioning import VersioningSettings, VersionRejected

__all__ = ["FINISHED_STATES", "OrchestrationRunner", "ReplayState"]

log = logging.getLogger("emulator.host.orchestration")

FINISHED_STATES = frozenset({"Completed", "Failed", "Terminated"})

# What the extension (2.x, Azure Storage backend) puts in the orchestrator's
# context besides history and input: schema V2 plus V3 as "new" (so the SDK
# answers with one list of every action so far), and the storage provider's
# timer limits (timers longer than 6 days are split into 3-day timers).
CONTEXT_SETTINGS: dict[str, Any] = {
    "upperSchemaVersion": 1,
    "upperSchemaVersionNew": 2,
    "maximumShortTimerDuration": "6.00:00:00",
    "longRunningTimerIntervalDuration": "3.00:00:00",
    "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
}

_SUPPORTED = frozenset(ActionType) - {ActionType.CALL_HTTP}


@dataclass
class ReplayState:
    """Host-side bookkeeping of one execution, kept with the instance."""

    next_id: int = 0
    actions_seen: int = 0
    action_ids: list[int | None] = field(default_factory=list)
    action_signatures: list[str] = field(default_factory=list)
    # task id -> what it is; retried tasks and their timers keep their chain here.
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: dict[str, Any]) -> ReplayState:
        """From the JSON kept in the instance row."""
        return cls(**raw) if raw else cls()

    def dump(self) -> dict[str, Any]:
        """To the JSON kept in the instance row."""
        return dataclasses.asdict(self)

    def take_id(self) -> int:
        """The next task sequence number."""
        task_id = self.next_id
        self.next_id += 1
        return task_id


@dataclass
class _Episode:
    """What one episode works on: the instance, its replay state, its clock and its output."""

    instance: InstanceRecord
    state: ReplayState
    now: dt.datetime
    commit: EpisodeCommit
    outputs: list[dict[str, Any]] = field(default_factory=list)


class OrchestrationRunner:
    """Runs orchestration episodes against the durable store."""

    def __init__(
        self,
        store: DurableStore,
        catalog: FunctionCatalog,
        invoker: Invoker,
        versioning: VersioningSettings | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._invoker = invoker
        self.versioning = versioning or VersioningSettings()

    def run_episode(self, instance_id: str) -> None:
        """Process the instance's visible messages, if any, in one committed episode.

        Raises VersionRejected, changing nothing, when the instance's version
        does not match the host's (``versionFailureStrategy`` ``Reject``).
        """
        messages = self._store.visible_messages(instance_id, time.time())
        if not messages:
            return
        instance = self._store.get_instance(instance_id)
        if instance is None or instance.runtime_status in FINISHED_STATES:
            # As in Azure, events for an ended or unknown instance are discarded.
            self._store.delete_messages([m.id for m in messages])
            return
        current = [m for m in messages if m.execution_id in (None, instance.execution_id)]
        stale = [m.id for m in messages if m.execution_id not in (None, instance.execution_id)]
        terminate = next(
            (m for m in current if m.body["EventType"] == EventType.EXECUTION_TERMINATED), None
        )
        if terminate is not None:
            # Terminating runs no orchestrator code: the version check does not apply.
            self._store.commit(self._terminate(instance, terminate, [m.id for m in messages]))
            return
        refusal = self.versioning.mismatch(instance.version)
        if refusal is not None and self.versioning.failure_strategy == "Reject":
            raise VersionRejected(refusal)
        state = ReplayState.load(instance.replay)
        history = self._store.get_played_history(instance_id)
        batch = _select_batch(current, state, first_episode=history[0] == 0)
        if not batch:
            if stale:
                self._store.delete_messages(stale)
            return
        commit = self._episode(instance, state, history, batch, refusal)
        commit.consumed_message_ids.extend(stale)
        self._store.commit(commit)

    # -- the episode ------------------------------------------------------

    def _episode(
        self,
        instance: InstanceRecord,
        state: ReplayState,
        history: tuple[int, str],
        batch: list[Message],
        refusal: str | None = None,
    ) -> EpisodeCommit:
        """One episode; with ``refusal`` (a version mismatch under ``Fail``) the instance fails.

        ``history``: how many events the instance's history has, and their JSON as the
        store keeps it (see ``DurableStore.get_played_history``).
        """
        now = utc_now()
        commit = EpisodeCommit(consumed_message_ids=[m.id for m in batch])
        new_events = [dict(m.body, IsPlayed=False) for m in batch]
        started = event(EventType.ORCHESTRATOR_STARTED, now)
        episode = _Episode(instance, state, now, commit)
        if history[0] == 0 and new_events[0]["EventType"] == EventType.EXECUTION_STARTED:
            instance.runtime_status = "Running"
        if refusal is None:
            self._schedule_retry_step(episode, new_events[0])
            answer = self._invoke(instance, history, started, new_events)
        else:
            answer = OrchestratorAnswer(is_done=False, error=refusal)
        known = len(state.action_signatures)
        signatures = [_signature(a) for a in answer.actions]
        if answer.error is None and signatures[:known] != state.action_signatures:
            answer = OrchestratorAnswer(
                is_done=False,
                error=(
                    "Non-deterministic workflow detected: the orchestrator scheduled "
                    f"{signatures[:known]} on replay where its history has "
                    f"{state.action_signatures}"
                ),
            )
        unsupported = [
            a["actionType"] for a in answer.actions[known:] if a["actionType"] not in _SUPPORTED
        ]
        if answer.error is None and unsupported:
            # Durable HTTP (CallHttp) is not emulated: fail loudly, never silently.
            answer = OrchestratorAnswer(
                is_done=False,
                error=f"The emulator does not support action types {unsupported}",
            )
        if answer.custom_status is not None:
            instance.custom_status = json.dumps(answer.custom_status)

        continue_as_new: dict[str, Any] | None = None
        if answer.error is None:
            for index in range(known, len(answer.actions)):
                action = answer.actions[index]
                if action["actionType"] == ActionType.CONTINUE_AS_NEW:
                    continue_as_new = action
                    state.action_ids.append(None)
                    continue
                task_id = self._schedule_action(episode, action)
                state.action_ids.append(task_id)
            state.action_signatures = signatures
            state.actions_seen = len(answer.actions)
            self._cancel_timers(episode, answer.actions)

        episode_events = [started, *new_events, *episode.outputs]
        episode_events.append(event(EventType.ORCHESTRATOR_COMPLETED, utc_now()))
        instance.last_updated_time = format_time(utc_now())
        commit.instance = instance

        if answer.error is not None:
            reason = f"Orchestrator function '{instance.name}' failed: {answer.error}"
            self._finish(instance, "Failed", reason, episode_events, commit)
        elif continue_as_new is not None:
            self._continue_as_new(instance, continue_as_new, commit)
            return commit
        elif answer.is_done:
            output = json.dumps(answer.output)
            self._finish(instance, "Completed", output, episode_events, commit)
        else:
            instance.replay = state.dump()
        commit.append_history = episode_events
        return commit

    def _invoke(
        self,
        instance: InstanceRecord,
        history: tuple[int, str],
        started: dict[str, Any],
        new_events: list[dict[str, Any]],
    ) -> OrchestratorAnswer:
        function = self._catalog.orchestrator(instance.name)
        if function is None:
            return OrchestratorAnswer(
                is_done=False,
                error=(
                    f"The function '{instance.name}' doesn't exist, is disabled, "
                    "or is not an orchestrator function."
                ),
            )
        outcome = self._invoker.orchestration(
            function, orchestrator_context(instance, history, [started, *new_events])
        )
        try:
            if outcome.ok:
                return parse_answer(outcome.text(), None)
            return parse_answer(None, outcome.error)
        except (ValueError, json.JSONDecodeError) as exc:
            return OrchestratorAnswer(is_done=False, error=f"Invalid orchestrator answer: {exc}")

    # -- scheduling ------------------------------------------------------

    def _schedule_action(self, ep: _Episode, action: dict[str, Any]) -> int | None:
        instance, state, now = ep.instance, ep.state, ep.now
        kind = action["actionType"]
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            return None
        task_id = state.take_id()
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            task = {
                "kind": "activity",
                "name": action["functionName"],
                "input": action.get("input"),
                "retry": action.get("retryOptions"),
                "attempt": 1,
                "first_attempt": now.timestamp(),
            }
            state.tasks[str(task_id)] = task
            self._schedule_activity(ep, task_id, task)
        elif kind == ActionType.CREATE_TIMER:
            self._schedule_timer(ep, task_id, parse_time(action["fireAt"]))
        elif kind in (
            ActionType.CALL_SUB_ORCHESTRATOR,
            ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY,
        ):
            task = {
                "kind": "suborchestration",
                "name": action["functionName"],
                "input": action.get("input"),
                # The action's version, else the host's defaultVersion (not the parent's).
                "version": self.versioning.new_instance_version(action.get("version")),
                # DTFx names an unnamed sub-orchestration "{parentExecutionId}:{taskId}".
                "instance_id": action.get("instanceId") or f"{instance.execution_id}:{task_id}",
                "retry": action.get("retryOptions"),
                "attempt": 1,
                "first_attempt": now.timestamp(),
            }
            state.tasks[str(task_id)] = task
            self._schedule_suborchestration(ep, task_id, task)
        else:  # CALL_ENTITY or SIGNAL_ENTITY
            signal = kind == ActionType.SIGNAL_ENTITY
            request = {
                "id": str(uuid.uuid4()),
                "op": action["operation"],
                "signal": signal,
                "input": action.get("input"),
                "parent": None if signal else instance.instance_id,
                "parentExecution": None if signal else instance.execution_id,
            }
            target = action["instanceId"]
            ep.outputs.append(
                event(
                    EventType.EVENT_SENT,
                    now,
                    task_id,
                    InstanceId=target,
                    Name="op",
                    Input=json.dumps(request),
                )
            )
            ep.commit.new_messages.append((target, None, {"request": request}, 0.0))
        return task_id

    def _schedule_activity(self, ep: _Episode, task_id: int, task: dict[str, Any]) -> None:
        ep.outputs.append(
            event(EventType.TASK_SCHEDULED, ep.now, task_id, Name=task["name"], Input=task["input"])
        )
        ep.commit.new_activities.append(
            (
                ep.instance.instance_id,
                ep.instance.execution_id,
                task_id,
                task["name"],
                task["input"],
            )
        )

    def _schedule_timer(self, ep: _Episode, task_id: int, fire_at: dt.datetime) -> None:
        fire_text = format_time(fire_at)
        ep.outputs.append(event(EventType.TIMER_CREATED, ep.now, task_id, FireAt=fire_text))
        fired = event(EventType.TIMER_FIRED, fire_at, TimerId=task_id, FireAt=fire_text)
        ep.commit.new_messages.append(
            (ep.instance.instance_id, ep.instance.execution_id, fired, fire_at.timestamp())
        )

    def _schedule_suborchestration(self, ep: _Episode, task_id: int, task: dict[str, Any]) -> None:
        instance, commit = ep.instance, ep.commit
        child_id = task["instance_id"]
        # Tasks recorded before versioning have no version: the default applies.
        version = task.get("version", self.versioning.new_instance_version(None))
        ep.outputs.append(
            event(
                EventType.SUB_ORCHESTRATION_INSTANCE_CREATED,
                ep.now,
                task_id,
                Name=task["name"],
                InstanceId=child_id,
                Input=task["input"],
                Version=version,
            )
        )
        child = new_instance_record(child_id, task["name"], task["input"], version)
        child.parent_instance_id = instance.instance_id
        child.parent_execution_id = instance.execution_id
        child.parent_task_id = task_id
        commit.new_instances.append(child)
        commit.new_messages.append(
            (child_id, child.execution_id, execution_started_event(child), 0.0)
        )

    def _schedule_retry_step(self, ep: _Episode, first_event: dict[str, Any]) -> None:
        """DurableTask.Core's retry interceptor: after a failure a timer, then a new attempt.

        Like DTFx, a timer follows every failed attempt, the last one included;
        the SDK waits for that timer before it fails the task.
        """
        state = ep.state
        kind = first_event["EventType"]
        if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
            failed = state.tasks.get(str(first_event["TaskScheduledId"]))
            if not failed or not failed.get("retry"):
                return
            timer_id = state.take_id()
            # After the last attempt DTFx still creates a (due now) timer, for back-compat.
            last = failed["attempt"] >= int(failed["retry"]["maxNumberOfAttempts"])
            delay_ms = 0.0 if last else _retry_delay_ms(failed["retry"], failed["attempt"])
            fire_at = ep.now + dt.timedelta(milliseconds=delay_ms)
            state.tasks[str(timer_id)] = {
                "kind": "retry_timer",
                "of": str(first_event["TaskScheduledId"]),
            }
            self._schedule_timer(ep, timer_id, fire_at)
        elif kind == EventType.TIMER_FIRED:
            timer = state.tasks.get(str(first_event["TimerId"]))
            if not timer or timer.get("kind") != "retry_timer":
                return
            failed = state.tasks[timer["of"]]
            if failed["attempt"] >= int(failed["retry"]["maxNumberOfAttempts"]):
                return
            attempt_id = state.take_id()
            attempt = dict(failed, attempt=failed["attempt"] + 1)
            state.tasks[str(attempt_id)] = attempt
            if attempt["kind"] == "activity":
                self._schedule_activity(ep, attempt_id, attempt)
            else:
                self._schedule_suborchestration(ep, attempt_id, attempt)

    def _cancel_timers(self, ep: _Episode, actions: list[dict[str, Any]]) -> None:
        state = ep.state
        for action, task_id in zip(actions, state.action_ids, strict=False):
            if (
                task_id is not None
                and action["actionType"] == ActionType.CREATE_TIMER
                and action.get("isCanceled")
                and not state.tasks.get(str(task_id), {}).get("cancelled")
            ):
                state.tasks[str(task_id)] = {"kind": "timer", "cancelled": True}
                ep.commit.cancelled_timer_ids.append((ep.instance.instance_id, task_id))

    # -- endings ---------------------------------------------------------

    def _finish(
        self,
        instance: InstanceRecord,
        status: str,
        output: str,
        episode_events: list[dict[str, Any]],
        commit: EpisodeCommit,
    ) -> None:
        instance.runtime_status = status
        instance.replay = {}
        if status == "Completed":
            instance.output = output
            episode_events.append(
                event(
                    EventType.EXECUTION_COMPLETED, utc_now(), OrchestrationStatus=1, Result=output
                )
            )
        else:
            # The status API shows a failed orchestration's reason as its output.
            instance.output = output
            episode_events.append(
                event(
                    EventType.EXECUTION_COMPLETED,
                    utc_now(),
                    OrchestrationStatus=3,
                    Result=output,
                    FailureDetails={"ErrorMessage": output},
                )
            )
            log.warning("orchestration %s failed: %s", instance.instance_id, output)
        self._notify_parent(instance, status, output, commit)

    def _terminate(
        self, instance: InstanceRecord, message: Message, message_ids: list[int]
    ) -> EpisodeCommit:
        reason = message.body.get("Input")
        instance.runtime_status = "Terminated"
        instance.output = json.dumps(reason)
        instance.last_updated_time = format_time(utc_now())
        instance.replay = {}
        commit = EpisodeCommit(consumed_message_ids=message_ids, instance=instance)
        commit.append_history = [dict(message.body, IsPlayed=False)]
        self._notify_parent(instance, "Terminated", str(reason), commit)
        # Activities of a terminated instance are not run (their results would be dropped).
        return commit

    def _continue_as_new(
        self, instance: InstanceRecord, action: dict[str, Any], commit: EpisodeCommit
    ) -> None:
        instance.execution_id = uuid.uuid4().hex
        instance.input = action.get("input")
        instance.runtime_status = "Running"
        instance.output = None
        instance.replay = {}
        # instance.version stays: the new execution starts with the same version.
        commit.reset_history = True
        commit.append_history = []
        commit.new_messages.append(
            (instance.instance_id, instance.execution_id, execution_started_event(instance), 0.0)
        )

    def _notify_parent(
        self, instance: InstanceRecord, status: str, output: str, commit: EpisodeCommit
    ) -> None:
        if instance.parent_instance_id is None or instance.parent_task_id is None:
            return
        now = utc_now()
        if status == "Completed":
            body = event(
                EventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED,
                now,
                TaskScheduledId=instance.parent_task_id,
                Result=output,
            )
        else:
            body = event(
                EventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                now,
                TaskScheduledId=instance.parent_task_id,
                Reason=f"Sub-orchestration '{instance.name}' {status.lower()}: {output}",
                Details=None,
            )
        commit.new_messages.append(
            (instance.parent_instance_id, instance.parent_execution_id, body, 0.0)
        )


def orchestrator_context(
    instance: InstanceRecord, history: tuple[int, str], new_events: list[dict[str, Any]]
) -> str:
    """The orchestrator's context JSON: the played history (kept as text), the new events
    and the rest; the same text as ``json.dumps`` of the whole context would give."""
    count, played = history
    events = ", ".join(([played] if count else []) + [json.dumps(e) for e in new_events])
    rest = json.dumps(
        {
            "input": instance.input,
            "instanceId": instance.instance_id,
            "isReplaying": count > 0,
            "parentInstanceId": instance.parent_instance_id,
            **CONTEXT_SETTINGS,
        }
    )
    return f'{{"history": [{events}], {rest[1:]}'


def new_instance_record(
    instance_id: str, name: str, input_json: str | None, version: str = ""
) -> InstanceRecord:
    """A Pending instance about to receive its ExecutionStarted event."""
    now = format_time(utc_now())
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=uuid.uuid4().hex,
        runtime_status="Pending",
        input=input_json,
        output=None,
        custom_status=None,
        created_time=now,
        last_updated_time=now,
        version=version,
    )


def execution_started_event(instance: InstanceRecord) -> dict[str, Any]:
    """The ExecutionStarted event that begins an execution of ``instance``."""
    parent = None
    if instance.parent_instance_id:
        parent = {
            "OrchestrationInstance": {
                "InstanceId": instance.parent_instance_id,
                "ExecutionId": instance.parent_execution_id,
            },
            "TaskScheduleId": instance.parent_task_id,
        }
    return event(
        EventType.EXECUTION_STARTED,
        utc_now(),
        Name=instance.name,
        Input=instance.input,
        # Always present: the SDK (1.3.3+) reads it for context.version, and
        # fails on an ExecutionStarted event without it.
        Version=instance.version,
        OrchestrationInstance={
            "InstanceId": instance.instance_id,
            "ExecutionId": instance.execution_id,
        },
        ParentInstance=parent,
    )


def _select_batch(
    messages: list[Message], state: ReplayState, first_episode: bool
) -> list[Message]:
    """The messages one episode may deliver together.

    An event that makes the retry machinery take task ids (a failed retried
    task, or its retry timer firing) goes first in its episode, so that the host
    and the SDK number that step before any task the orchestrator code
    schedules in reaction to the other events of the episode.
    """
    ordered = list(messages)
    if first_episode:
        starts = [m for m in ordered if m.body["EventType"] == EventType.EXECUTION_STARTED]
        if not starts:
            return []
        ordered = [starts[0]] + [m for m in ordered if m is not starts[0]]
    batch: list[Message] = []
    for message in ordered:
        if _takes_retry_ids(message.body, state) and batch and not first_episode:
            break
        batch.append(message)
    return batch


def _takes_retry_ids(body: dict[str, Any], state: ReplayState) -> bool:
    kind = body["EventType"]
    if kind in (EventType.TASK_FAILED, EventType.SUB_ORCHESTRATION_INSTANCE_FAILED):
        task = state.tasks.get(str(body.get("TaskScheduledId")))
        return bool(task and task.get("retry"))
    if kind == EventType.TIMER_FIRED:
        task = state.tasks.get(str(body.get("TimerId")))
        return bool(task and task.get("kind") == "retry_timer")
    return False


def _retry_delay_ms(retry: dict[str, Any], attempt: int) -> float:
    first = float(retry.get("firstRetryIntervalInMilliseconds", 0))
    backoff = float(retry.get("backoffCoefficient", 1.0))
    delay = first * backoff ** (attempt - 1)
    cap = retry.get("maxRetryIntervalInMilliseconds")
    return min(delay, float(cap)) if cap else delay


def _signature(action: dict[str, Any]) -> str:
    name = action.get("functionName") or action.get("externalEventName") or ""
    return f"{action['actionType']}:{name}"
