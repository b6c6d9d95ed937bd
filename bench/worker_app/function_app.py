"""A tiny app for ``python -m bench.worker``: one HTTP round trip, one chain of activities."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    """The smallest HTTP function: what a host adds per HTTP invocation."""
    return func.HttpResponse("pong")


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    """Activities one after the other: each costs an activity and an orchestrator episode."""
    total = 0
    for _ in range(context.get_input()):
        total = yield context.call_activity("step", total)
    return total


@app.activity_trigger(input_name="value")
def step(value: int) -> int:
    """Trivial work."""
    return value + 1
