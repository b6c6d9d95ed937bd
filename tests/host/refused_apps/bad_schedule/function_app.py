"""A timer whose schedule is not NCRONTAB: the host cannot index it."""

import azure.functions as func

app = func.FunctionApp()


@app.timer_trigger(arg_name="timer", schedule="0 0 25 * * *")
def nightly(timer: func.TimerRequest) -> None:
    """Hour 25 does not exist."""
