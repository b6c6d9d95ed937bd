"""The Pacemaker recipe is one: the file the cluster tests run is the one the docs show, and
the agent advertises the same operation timeouts. Runs anywhere (no cluster needed)."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from cluster_lab.lab import AGENT, RECIPE
from emulator.launch import REPO_ROOT


def _recipe_ops() -> dict[tuple[str, str], dict[str, str]]:
    """(primitive, operation) -> attributes, from the recipe's XML."""
    text = RECIPE.read_text()
    xml = text[text.index("<group") : text.index("</group>") + len("</group>")]
    xml = xml.replace("$IP", "10.5.0.110").replace("$CIDR", "24")
    ops = {}
    for primitive in ET.fromstring(xml).iter("primitive"):
        for op in primitive.iter("op"):
            ops[(primitive.get("id", ""), op.get("name", ""))] = dict(op.attrib)
    return ops


def test_the_docs_show_the_recipe_the_tests_run() -> None:
    docs = (REPO_ROOT / "docs" / "node-client.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", docs, flags=re.DOTALL)
    assert RECIPE.read_text() in blocks


def test_the_deployment_guide_states_the_recipes_values() -> None:
    guide = (REPO_ROOT / "docs" / "deployment.md").read_text()
    section = guide[guide.index("### Pacemaker") : guide.index("## 8. Test a failover")]
    assert "configure-ha-ip.sh" in section
    assert "330 s" in section and "every 10 s with a 20 s timeout" in section
    assert "resource-stickiness=1" in section and "migration-threshold=3" in section
    assert "pcs resource create" not in guide, "a second recipe would drift from the first"


def test_the_recipes_timeouts_follow_from_the_clients_timeout() -> None:
    ops = _recipe_ops()
    client = (REPO_ROOT / "node_client" / "ipmover.py").read_text()
    default = float(re.search(r'"timeout",\s*"seconds",\s*([\d.]+)', client).group(1))
    for action in ("start", "stop"):
        seconds = int(ops[("vip-azure", action)]["timeout"].rstrip("s"))
        # The agent keeps 10 % (at least 2 s) back and hands the client the rest, which must
        # be the client's own default budget, give or take a few seconds, never more.
        given = seconds - max(seconds // 10, 2)
        assert default * 0.95 <= given <= default
    assert ops[("vip-azure", "monitor")] | {"id": ""} == {
        "id": "",
        "name": "monitor",
        "interval": "10s",
        "timeout": "20s",
    }


def test_the_agent_advertises_the_recipes_timeouts() -> None:
    ops = _recipe_ops()
    metadata = subprocess.run(
        ["sh", str(AGENT), "meta-data"],
        env={"OCF_ROOT": "/usr/lib/ocf", "__OCF_ACTION": "meta-data", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    if metadata.returncode != 0:
        pytest.skip(f"the agent needs resource-agents' ocf-shellfuncs: {metadata.stderr}")
    actions = {a.get("name"): a.attrib for a in ET.fromstring(metadata.stdout).iter("action")}
    for action in ("start", "stop", "monitor"):
        assert actions[action]["timeout"] == ops[("vip-azure", action)]["timeout"]
    assert actions["monitor"]["interval"] == ops[("vip-azure", "monitor")]["interval"]
