"""The EXPRESSCLUSTER recipe's timeouts are derived from the client's own, in one table.

The issue this guards against: three documents with three sets of timeouts (330 s vs
360 s; a 20 s monitor timeout that killed a client given 20 s). The table in
docs/node-client.md is the only place with numbers; these tests derive each number
from the client (node_client/ipmover.py) and the scripts, and fail when they drift.
"""

from __future__ import annotations

import re

from node_client import ipmover

from .conftest import ROOT

DOCS = ROOT / "docs"
ECX = ROOT / "node_client" / "expresscluster"
EXEC_MARGIN = 30  # Python start-up, the scripts' logging, clplogcmd
MONITOR_MARGIN = 10


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^#{2,3} ", text[start + len(heading) :], re.MULTILINE)
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def _table_value(table: str, setting: str) -> str:
    row = next(line for line in table.splitlines() if f"| {setting} |" in line)
    return row.split("|")[3].strip()


def test_the_exec_timeouts_are_the_clients_timeout_plus_the_margin() -> None:
    client_timeout = int(ipmover.PARAM_BY_NAME["timeout"].default)
    table = _section((DOCS / "node-client.md").read_text(), "### EXPRESSCLUSTER settings")

    expected = f"**{client_timeout + EXEC_MARGIN} s**"
    assert _table_value(table, "Start script: timeout") == expected
    assert _table_value(table, "Stop script: timeout") == expected


def test_the_monitor_timeout_is_the_scripts_client_budget_plus_the_margin() -> None:
    script = (ECX / "monitor.sh").read_text()
    budget = int(re.search(r'TIMEOUT="\$\{IPMOVER_MONITOR_TIMEOUT:-(\d+)\}"', script).group(1))
    table = _section((DOCS / "node-client.md").read_text(), "### EXPRESSCLUSTER settings")

    assert _table_value(table, "Timeout") == f"**{budget + MONITOR_MARGIN} s**"
    assert "`monitor.sh`" in _table_value(table, "Script")


def test_the_table_names_every_setting_the_issue_lists() -> None:
    table = _section((DOCS / "node-client.md").read_text(), "### EXPRESSCLUSTER settings")
    for setting in (
        "Retry Count at Activation Failure",
        "Failover Threshold",
        "Final Action at Activation Failure",
        "Retry Count at Deactivation Failure",
        "Final Action at Deactivation Failure",
        "Wait Time to Start Monitoring",
        "Retry Count",
        "Recovery Action",
        "Maximum Reactivation Count",
        "Maximum Failover Count",
        "Final Action",
        "Interval",
    ):
        assert f"| {setting} |" in table, setting


def test_no_other_expresscluster_text_gives_its_own_timeouts() -> None:
    # The runbook's EXPRESSCLUSTER step points at the table instead of repeating numbers.
    runbook = _section((DOCS / "deployment.md").read_text(), "### EXPRESSCLUSTER")
    assert "node-client.md#expresscluster-settings" in runbook
    assert re.findall(r"\b\d+ ?s\b", runbook) == ["30 s", "10 s"]  # the margins only
    for script in ("start.sh", "stop.sh"):
        assert "plus 30 s" in (ECX / script).read_text()
