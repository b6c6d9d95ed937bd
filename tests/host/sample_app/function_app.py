"""Small orchestrations exercising each Durable feature the host emulator supports.

Kept under tests/: not part of the product.
"""

import datetime as dt
import json
import logging
import os
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()

# Attempt counters survive in files so that a retried activity sees its past
# attempts even across a host restart.
_COUNTERS = Path(os.environ.get("SAMPLE_COUNTER_DIR", "/tmp"))


@bp.route(route="start/{name}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start orchestration {name} with the JSON body as input (optional ?id=, ?version=)."""
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(
        req.route_params["name"], req.params.get("id"), payload, version=req.params.get("version")
    )
    return client.create_check_status_response(req, instance_id)


@bp.route(route="status/{id}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Status through the SDK client, with history."""
    s = await client.get_status(req.route_params["id"], show_history=True, show_history_output=True)
    return func.HttpResponse(json.dumps(s.to_json(), default=str), mimetype="application/json")


@bp.route(route="run/{name}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def run(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start orchestration {name} and wait (up to 20 s) for its output."""
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["name"], None, json.loads(body) if body else None
    )
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=20000, retry_interval_in_milliseconds=50
    )


@bp.route(route="raise/{id}/{event}", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def raise_event(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Raise an event through the SDK client."""
    await client.raise_event(req.route_params["id"], req.route_params["event"], req.get_json())
    return func.HttpResponse(status_code=202)


@bp.route(route="purge", methods=["POST"])
@bp.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Purge by filter through the SDK client: body {"from", "to", "statuses"}."""
    spec = req.get_json()
    result = await client.purge_instance_history_by(
        dt.datetime.fromisoformat(spec["from"]),
        dt.datetime.fromisoformat(spec["to"]) if spec.get("to") else None,
        [df.OrchestrationRuntimeStatus(s) for s in spec.get("statuses", [])],
    )
    return func.HttpResponse(
        json.dumps({"instancesDeleted": result.instances_deleted}), mimetype="application/json"
    )


@bp.route(route="echo/{a}/{b?}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def echo(req: func.HttpRequest) -> func.HttpResponse:
    """Echo what the host handed to the function."""
    return func.HttpResponse(
        json.dumps(
            {
                "method": req.method,
                "route": dict(req.route_params),
                "query": dict(req.params),
                "header": req.headers.get("x-test"),
                "body": req.get_body().decode(),
            }
        ),
        status_code=201,
        mimetype="application/json",
    )


@bp.route(route="pid", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def pid(req: func.HttpRequest) -> func.HttpResponse:
    """Which worker process ran this invocation; logs a marker the test looks for."""
    logging.info("pid route marker %s", req.params.get("marker", ""))
    return func.HttpResponse(str(os.getpid()))


@bp.route(route="crash", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def crash(req: func.HttpRequest) -> func.HttpResponse:
    """End the worker process abruptly, as a crashing native library would."""
    os._exit(3)


@bp.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    """Raise, to check the host's 500."""
    raise RuntimeError("boom")


@bp.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext):
    """Activities in a row, with custom status after each."""
    names = context.get_input() or ["a", "b", "c"]
    results = []
    for name in names:
        results.append((yield context.call_activity("greet", name)))
        context.set_custom_status({"done": len(results)})
    return results


@bp.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    """task_all over N activities."""
    n = context.get_input()
    tasks = [context.call_activity("square", i) for i in range(n)]
    return sum((yield context.task_all(tasks)))


@bp.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    """An activity that fails ``fail_times`` then succeeds, under RetryOptions."""
    spec = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=50, max_number_of_attempts=spec["attempts"]
    )
    try:
        result = yield context.call_activity_with_retry("flaky", options, spec)
        return {"ok": result}
    except Exception as exc:
        return {"error": str(exc)}


@bp.orchestration_trigger(context_name="context")
def timer_then_event(context: df.DurableOrchestrationContext):
    """A durable timer, then wait for an event or a timeout (task_any)."""
    spec = context.get_input()
    yield context.create_timer(context.current_utc_datetime + dt.timedelta(seconds=spec["sleep"]))
    deadline = context.current_utc_datetime + dt.timedelta(seconds=spec["timeout"])
    timeout = context.create_timer(deadline)
    approval = context.wait_for_external_event("approve")
    winner = yield context.task_any([approval, timeout])
    if winner == approval:
        timeout.cancel()
        return {"approved": approval.result}
    return {"approved": None}


@bp.orchestration_trigger(context_name="context")
def counter_loop(context: df.DurableOrchestrationContext):
    """continue_as_new until the counter reaches the target."""
    state = context.get_input()
    if state["n"] >= state["target"]:
        return state["n"]
    yield context.call_activity("greet", str(state["n"]))
    context.continue_as_new({"n": state["n"] + 1, "target": state["target"]})


@bp.orchestration_trigger(context_name="context")
def uses_entity(context: df.DurableOrchestrationContext):
    """Call and signal an entity."""
    key = context.get_input()
    entity = df.EntityId("counter", key)
    context.signal_entity(entity, "add", 5)
    value = yield context.call_entity(entity, "add", 2)
    try:
        yield context.call_entity(entity, "fail")
        failed = None
    except Exception as exc:
        failed = str(exc)
    return {"value": value, "failed": failed}


@bp.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    """Fails after one activity."""
    yield context.call_activity("greet", "x")
    raise ValueError("orchestrator gave up")


@bp.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    """A sub-orchestration."""
    child = yield context.call_sub_orchestrator("sequence", ["p", "q"])
    return {"child": child}


@bp.orchestration_trigger(context_name="context")
def slow_steps(context: df.DurableOrchestrationContext):
    """Two slow activities: the host can be killed between them."""
    spec = context.get_input()
    first = yield context.call_activity(
        "slow", {"tag": spec["tag"], "step": 1, "seconds": spec["seconds"]}
    )
    second = yield context.call_activity(
        "slow", {"tag": spec["tag"], "step": 2, "seconds": spec["seconds"]}
    )
    return [first, second]


@bp.orchestration_trigger(context_name="context")
def report_version(context: df.DurableOrchestrationContext):
    """The instance's version, as the SDK reads it from ExecutionStarted."""
    return context.version


@bp.orchestration_trigger(context_name="context")
def versioned_parent(context: df.DurableOrchestrationContext):
    """Sub-orchestrations with the version given in the input, and with none."""
    explicit = yield context.call_sub_orchestrator(
        "report_version", None, version=context.get_input()["child_version"]
    )
    default = yield context.call_sub_orchestrator("report_version")
    return {"parent": context.version, "explicit": explicit, "default": default}


@bp.orchestration_trigger(context_name="context")
def version_loop(context: df.DurableOrchestrationContext):
    """continue_as_new once, then report the version of the new execution."""
    if context.get_input():
        return context.version
    context.continue_as_new(True)


@bp.orchestration_trigger(context_name="context")
def spread(context: df.DurableOrchestrationContext):
    """``n`` activities at once, each reporting which process ran it and when."""
    spec = context.get_input()
    tasks = [
        context.call_activity("where", {"i": i, "seconds": spec["seconds"]})
        for i in range(spec["n"])
    ]
    return (yield context.task_all(tasks))


@bp.activity_trigger(input_name="name")
def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}"


@bp.activity_trigger(input_name="n")
async def square(n: int) -> int:
    """An async activity."""
    return n * n


@bp.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    """Fail the first ``fail_times`` attempts of tag ``tag``."""
    path = _COUNTERS / f"flaky-{spec['tag']}"
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts <= spec["fail_times"]:
        raise RuntimeError(f"attempt {attempts} failed")
    return f"succeeded on attempt {attempts}"


@bp.activity_trigger(input_name="spec")
def slow(spec: dict) -> dict:
    """Record each run (to count re-executions), then sleep."""
    import time

    path = _COUNTERS / f"slow-{spec['tag']}-{spec['step']}"
    runs = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(runs))
    time.sleep(spec["seconds"])
    return {"step": spec["step"], "runs": runs}


@bp.activity_trigger(input_name="spec")
def where(spec: dict) -> dict:
    """Sleep ``seconds``; say which worker process ran it, from when to when."""
    import time

    started = time.time()
    time.sleep(spec["seconds"])
    return {"pid": os.getpid(), "started": started, "ended": time.time()}


@bp.timer_trigger(arg_name="timer", schedule="* * * * * *")
@bp.durable_client_input(client_name="client")
async def tick(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    """Every second: record what the host handed over (the timer, a working durable client)."""
    probe = await client.get_status("no-such-instance")
    record = {
        "past_due": timer.past_due,
        "schedule": timer.schedule,
        "schedule_status": timer.schedule_status,
        "probe": probe.runtime_status,
    }
    with (_COUNTERS / "tick.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")


@bp.entity_trigger(context_name="context")
def counter(context: df.DurableEntityContext):
    """A counter entity."""
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
        context.set_state(value)
        context.set_result(value)
    elif context.operation_name == "get":
        context.set_result(value)
    elif context.operation_name == "fail":
        raise ValueError("entity refused")


app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
