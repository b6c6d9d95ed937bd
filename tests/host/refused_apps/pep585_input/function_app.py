"""Refused by Microsoft's worker: an activity input annotated with a PEP 585 generic."""

from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="request")
def takes_a_dict(request: dict[str, Any]) -> str:
    """Azure rejects ``dict[str, Any]`` here (azure-functions-durable-python#468)."""
    return "never loaded"
