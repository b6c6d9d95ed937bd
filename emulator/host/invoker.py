"""Invoke the app's functions in the worker: the host's side of each binding.

For every invocation the host supplies the function's input bindings as
``TypedData``, as Azure's host and the Durable extension (out-of-process
"OrchestratorShim" protocol, the one Python uses) do: the HTTP trigger as
``RpcHttp``; orchestration and entity contexts, activity inputs and the durable
client binding all as ``string``; a timer's ``TimerInfo`` as ``json`` (built
by ``timers.py``). The worker answers with the function's
``$return`` value or a failure carrying the exception's ``Type: message`` and
stack trace.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .catalog import IndexedFunction
from .worker.channel import WorkerGoneError, pb
from .worker.pool import WorkerPool

__all__ = ["InvocationOutcome", "Invoker", "typed_value"]

# Input bindings the host knows how to supply (trigger types are routed by the catalog).
_TRIGGERS = frozenset(
    {"httpTrigger", "orchestrationTrigger", "activityTrigger", "entityTrigger", "timerTrigger"}
)


@dataclass
class InvocationOutcome:
    """What came back from one invocation."""

    ok: bool
    value: pb.TypedData | None = None
    error: str = ""
    stack_trace: str = ""

    def text(self) -> str | None:
        """The returned value as JSON/string text (orchestrators, entities, activities)."""
        if self.value is None:
            return None
        value = typed_value(self.value)
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, str):
            return value
        return json.dumps(value)


def typed_value(data: pb.TypedData) -> Any:
    """The Python value inside a TypedData (``None`` when empty)."""
    kind = data.WhichOneof("data")
    return None if kind is None else getattr(data, kind)


class Invoker:
    """Builds each invocation's input bindings and runs it on the worker pool.

    ``invoke`` is a coroutine for the host's event loop; ``invoke_blocking``
    is for the dispatcher's threads.
    """

    def __init__(
        self,
        pool: WorkerPool,
        loop: asyncio.AbstractEventLoop,
        client_binding: Callable[[], dict[str, Any]],
    ) -> None:
        self._pool = pool
        self._loop = loop
        self._client_binding = client_binding

    async def invoke(
        self,
        function: IndexedFunction,
        trigger: pb.TypedData,
        trigger_metadata: dict[str, pb.TypedData] | None = None,
    ) -> InvocationOutcome:
        """Invoke ``function`` with ``trigger`` as its trigger binding's data."""
        inputs = []
        for binding in function.input_bindings:
            if binding["type"] in _TRIGGERS:
                data = trigger
            elif binding["type"] == "durableClient":
                data = pb.TypedData(string=json.dumps(self._client_binding()))
            else:
                raise ValueError(f"binding type {binding['type']!r} is not supported")
            inputs.append(pb.ParameterBinding(name=binding["name"], data=data))
        try:
            answer = await self._pool.invoke(function.function_id, inputs, trigger_metadata)
        except WorkerGoneError as exc:
            return InvocationOutcome(ok=False, error=f"WorkerGoneError: {exc}")
        if answer.result.status != pb.StatusResult.Success:
            return InvocationOutcome(
                ok=False,
                error=answer.result.exception.message,
                stack_trace=answer.result.exception.stack_trace,
            )
        value: pb.TypedData | None = None
        if answer.HasField("return_value"):
            value = answer.return_value
        else:
            value = next((o.data for o in answer.output_data if o.name == "$return"), None)
        return InvocationOutcome(ok=True, value=value)

    def orchestration(self, function: IndexedFunction, context_json: str) -> InvocationOutcome:
        """An orchestrator episode; its answer must be a JSON object (``json`` or ``string``)."""
        outcome = self._durable(function, context_json, {})
        if outcome.ok and (outcome.value is None or outcome.value.WhichOneof("data") not in _TEXT):
            return _invalid_schema()
        return outcome

    def entity(self, function: IndexedFunction, context_json: str) -> InvocationOutcome:
        """An entity batch; the extension accepts only a ``json`` object back."""
        outcome = self._durable(function, context_json, {})
        if outcome.ok and (outcome.value is None or outcome.value.WhichOneof("data") != "json"):
            return _invalid_schema()
        return outcome

    def activity(
        self, function: IndexedFunction, instance_id: str, input_json: str | None
    ) -> InvocationOutcome:
        """An activity: the extension passes the input as a .NET string.

        A JSON string input arrives unquoted (``"abc"`` as ``abc``); objects and
        arrays as compact JSON. So ``"123"`` reaches the function as the number
        123, as in Azure.
        """
        value = json.loads(input_json) if input_json is not None else None
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        metadata = {"instanceId": pb.TypedData(string=instance_id)}
        if value is not None:
            metadata["data"] = pb.TypedData(json=json.dumps(value))
        return self._durable(function, text, metadata)

    def _durable(
        self, function: IndexedFunction, text: str, metadata: dict[str, pb.TypedData]
    ) -> InvocationOutcome:
        trigger = pb.TypedData(string=text)
        metadata = {function.trigger_name: trigger, **metadata}
        future = asyncio.run_coroutine_threadsafe(
            self.invoke(function, trigger, metadata), self._loop
        )
        return future.result()


_TEXT = ("json", "string")


def _invalid_schema() -> InvocationOutcome:
    return InvocationOutcome(
        ok=False, error="Out of proc orchestrators must return a valid JSON schema."
    )
