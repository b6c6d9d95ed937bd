"""Refused by Microsoft's worker: an orchestration trigger binding not named ``context``."""

import azure.durable_functions as df

app = df.DFApp()


@app.orchestration_trigger(context_name="ctx")
def orchestrate(ctx: df.DurableOrchestrationContext):
    """The worker treats a ``context`` parameter as func.Context (durabletask-python#171)."""
    result = yield ctx.call_activity("add_one", 1)
    return result


@app.activity_trigger(input_name="n")
def add_one(n: int) -> int:
    """Never reached: the app does not load."""
    return n + 1
