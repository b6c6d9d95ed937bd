"""A restart with the same state directory keeps NIC state, the CA and the signing key."""

from __future__ import annotations

from pathlib import Path

import requests

from emulator.azure.launcher import EmulatorProcess

from .helpers import with_secondary

NIC = "server01535"


def _jwks_kids(process: EmulatorProcess) -> list[str]:
    ready = process.ready
    keys = requests.get(ready.jwks_uri, verify=ready.ca_file, timeout=5).json()["keys"]
    return [k["kid"] for k in keys]


def test_restart_keeps_nic_state_ca_and_keys(tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ["--nic-update-seconds", "0.2", "--retry-after", "1"]
    with EmulatorProcess(state, args) as first:
        control = first.control()
        control.set_nic(NIC, with_secondary(control.nic(NIC)))
        etag = control.nic(NIC)["etag"]
        kids = _jwks_kids(first)
        ca = Path(first.ready.ca_file).read_bytes()
        assert first.stop() == 0  # SIGTERM is a clean shutdown

    with EmulatorProcess(state, args) as second:
        control = second.control()
        nic = control.nic(NIC)
        assert [c["name"] for c in nic["properties"]["ipConfigurations"]] == [
            "ipconfig1",
            "ipconfig2",
        ]
        assert nic["etag"] == etag
        assert control.ip_holder("10.5.0.110").vm == "server01"
        assert _jwks_kids(second) == kids
        assert Path(second.ready.ca_file).read_bytes() == ca
