"""The worker's memory of NICs it read: a write goes back at the etag it was planned on."""

from __future__ import annotations

from typing import Any

from azure.mgmt.network.models import NetworkInterface

from activities.arm import RecentNics

NIC_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n1"


def nic(etag: str, nic_id: str = NIC_ID, **properties: Any) -> NetworkInterface:
    """A NIC as the SDK gives it for ARM's JSON."""
    return NetworkInterface(
        {
            "id": nic_id,
            "name": nic_id.rsplit("/", 1)[-1],
            "etag": etag,
            "location": "japaneast",
            "properties": {"provisioningState": "Succeeded", **properties},
        }
    )


def test_a_nic_is_given_back_once_and_only_at_the_etag_it_was_read_at() -> None:
    recent = RecentNics()
    recent.keep(nic('W/"1"', enableIPForwarding=True))

    assert recent.take(NIC_ID, 'W/"2"') is None  # planned on another version
    recent.keep(nic('W/"1"', enableIPForwarding=True))
    taken = recent.take(NIC_ID.upper(), 'W/"1"')  # resource ids compare case-insensitively

    assert taken is not None and taken.etag == 'W/"1"' and taken.enable_ip_forwarding is True
    assert recent.take(NIC_ID, 'W/"1"') is None  # stale once written: a retry reads it


def test_a_change_to_a_nic_taken_does_not_change_what_was_kept() -> None:
    recent = RecentNics()
    read = nic('W/"1"', ipConfigurations=[{"name": "ipconfig1", "properties": {}}])
    recent.keep(read)
    taken = recent.take(NIC_ID, 'W/"1"')
    assert taken is not None
    taken.ip_configurations = []
    assert [c.name for c in read.ip_configurations] == ["ipconfig1"]


def test_no_etag_means_read_it() -> None:
    recent = RecentNics()
    recent.keep(nic('W/"1"'))
    assert recent.take(NIC_ID, None) is None


def test_the_oldest_nics_are_forgotten_past_the_limit() -> None:
    recent = RecentNics(limit=2)
    ids = [f"{NIC_ID}{i}" for i in range(3)]
    for nic_id in ids:
        recent.keep(nic('W/"1"', nic_id))
    assert recent.take(ids[0], 'W/"1"') is None
    assert recent.take(ids[1], 'W/"1"') is not None
    assert recent.take(ids[2], 'W/"1"') is not None
