"""The device registry fed from the real recordings: what a user would see for each phone."""

from __future__ import annotations

import dataclasses

import pytest

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage, iter_stream
from callbuddy_pbx.asterisk.devices import DeviceRegistry, is_phone_device, normalise_state
from callbuddy_pbx.config import Config, InboundConfig
from callbuddy_pbx.config.pbx import PbxConfig, Phone, Trunk
from tests.traces import TRACES_DIR, all_traces

ACTIONS = TRACES_DIR / "actions"
PRESENCE = TRACES_DIR / "33-ari-endpoint-and-contact-events" / "ami.raw"


def items(name: str) -> list[AmiMessage]:
    """The list items of a recorded action (the events carrying its ActionID)."""
    return [m for m in iter_stream((ACTIONS / name).read_bytes()) if "Event" in m and "ActionID" in m]


def events(path) -> list[AmiMessage]:
    return [m for m in iter_stream(path.read_bytes()) if "Event" in m]


def seeded(*, during_call: bool = False, at: float = 1000.0, registry: DeviceRegistry | None = None) -> DeviceRegistry:
    registry = DeviceRegistry() if registry is None else registry
    suffix = "-during-call" if during_call else ""
    registry.seed_endpoints(items(f"pjsipshowendpoints{suffix}.raw"), at)
    registry.seed_contacts(items("pjsipshowcontacts.raw"))
    registry.seed_states(items(f"devicestatelist{suffix}.raw"), at)
    return registry


def view(registry: DeviceRegistry) -> dict[str, tuple[bool | None, str]]:
    return {device.name: (device.registered, device.state) for device in registry.snapshot()}


def test_idle_pbx_lists_two_registered_desks_and_one_unregistered() -> None:
    registry = seeded()
    assert view(registry) == {
        "PJSIP/100": (True, "NOT_INUSE"),
        "PJSIP/101": (True, "NOT_INUSE"),
        "PJSIP/102": (False, "UNAVAILABLE"),  # empty `Contacts:` and DeviceState Unavailable
    }
    desk = registry.get("PJSIP/100")
    assert desk is not None
    assert desk.endpoint == "100"
    assert desk.contacts == ("sip:100@127.0.0.1:5101",)
    assert desk.user_agent == "CallBuddy-Test-Desk-100"
    assert desk.last_call_at is None and desk.state_changed_at is None  # a list says what, not since when
    assert registry.get("PJSIP/102").contacts == ()


def test_trunk_queue_and_mwi_devices_are_not_phones() -> None:
    registry = seeded()
    names = [device.name for device in registry.snapshot()]
    assert "PJSIP/trunk" not in names  # no inbound Auths: matched by address, a carrier
    assert not any(name.startswith(("Queue:", "MWI:")) for name in names)


def test_each_list_alone_still_gives_a_useful_answer() -> None:
    only_states = DeviceRegistry(trunks=["PJSIP/trunk"])
    only_states.seed_states(items("devicestatelist.raw"), 1.0)
    assert view(only_states) == {
        "PJSIP/100": (True, "NOT_INUSE"),
        "PJSIP/101": (True, "NOT_INUSE"),
        "PJSIP/102": (False, "UNAVAILABLE"),
    }
    only_endpoints = DeviceRegistry()
    only_endpoints.seed_endpoints(items("pjsipshowendpoints.raw"), 1.0)
    assert view(only_endpoints) == view(only_states)


def test_during_a_ringing_call_the_desks_ring() -> None:
    registry = seeded(during_call=True, at=500.0)
    assert view(registry) == {
        "PJSIP/100": (True, "RINGING"),
        "PJSIP/101": (True, "RINGING"),
        "PJSIP/102": (False, "UNAVAILABLE"),
    }
    assert registry.get("PJSIP/100").last_call_at == 500.0


def test_a_reconnect_that_finds_another_state_dates_the_change() -> None:
    registry = seeded(at=100.0)
    seeded(during_call=True, at=200.0, registry=registry)
    desk = registry.get("PJSIP/101")
    assert (desk.state, desk.state_changed_at, desk.last_call_at) == ("RINGING", 200.0, 200.0)


def test_trace_33_phone_102_registers_then_unregisters_and_100_takes_a_call() -> None:
    """The real events of desk 102 registering and unregistering, then desk 101 calling 100."""
    registry = seeded()
    seen: list[tuple[str, bool | None, str]] = []
    for event in events(PRESENCE):
        at = float(event["Timestamp"]) if "Timestamp" in event else 0.0
        if registry.feed(event, at):
            device = registry.get(event.get("Device") or event.get("Peer") or f"PJSIP/{event.get('EndpointName')}")
            assert device is not None
            seen.append((device.name, device.registered, device.state))
    assert [step for step in seen if step[0] == "PJSIP/102"] == [
        ("PJSIP/102", True, "UNAVAILABLE"),  # PeerStatus Reachable comes first
        ("PJSIP/102", True, "UNAVAILABLE"),  # ContactStatus NonQualified: its contact
        ("PJSIP/102", True, "NOT_INUSE"),
        ("PJSIP/102", False, "NOT_INUSE"),  # PeerStatus Unreachable
        ("PJSIP/102", False, "UNAVAILABLE"),
        ("PJSIP/102", False, "UNAVAILABLE"),  # ContactStatus Removed: its contact goes
    ]
    assert [step[2] for step in seen if step[0] == "PJSIP/100"] == ["RINGING", "INUSE", "NOT_INUSE"]
    assert [step[2] for step in seen if step[0] == "PJSIP/101"] == ["INUSE", "NOT_INUSE"]
    final = {device.name: device for device in registry.snapshot()}
    assert final["PJSIP/102"].registered is False and final["PJSIP/102"].contacts == ()
    assert final["PJSIP/100"].last_call_at == pytest.approx(1795257727.607428)  # the INUSE after the RINGING
    assert final["PJSIP/100"].state_changed_at == pytest.approx(1795257729.621538)
    assert final["PJSIP/101"].registered is True


def test_trace_33_registration_seen_mid_way() -> None:
    """Just after 102's REGISTER: registered, with the contact the event named."""
    registry = seeded()
    for event in events(PRESENCE):
        registry.feed(event, 1.0)
        if event.get("Event") == "DeviceStateChange" and event.get("Device") == "PJSIP/102":
            break
    desk = registry.get("PJSIP/102")
    assert (desk.registered, desk.state, desk.contacts) == (True, "NOT_INUSE", ("sip:102@127.0.0.1:5103",))


@pytest.mark.parametrize("trace", all_traces(), ids=lambda t: t.name)
def test_every_call_trace_leaves_only_phones_idle_again(trace) -> None:
    """DeviceStateChange is in every call trace: phones ring and go back to idle, nothing else shows up."""
    config = Config(inbound=InboundConfig(trunk_endpoints=("PJSIP/trunk",)))
    registry = DeviceRegistry.from_config(config)
    for event in events(trace.path / "ami.raw"):
        registry.feed(event, float(event.get("Timestamp", "0")))
    devices = registry.snapshot()
    assert all(device.name.startswith("PJSIP/10") for device in devices), [d.name for d in devices]
    rang = [device for device in devices if device.last_call_at is not None]
    if trace.name.startswith(("01", "03", "09", "15", "17", "18", "19")):
        assert rang, "desks rang in this call"
    for device in rang:
        assert device.state in ("NOT_INUSE", "UNAVAILABLE"), (device.name, device.state)


def test_people_and_trunks_from_the_config() -> None:
    phones = (Phone("100", "Anna", "Glow"), Phone("101", "Ben", "Glow"))
    config = Config(pbx=PbxConfig(phones=phones, trunks=(Trunk("carrier", "twilio-elastic-sip"),)))
    registry = DeviceRegistry.from_config(config)
    registry.feed({"Event": "DeviceStateChange", "Device": "PJSIP/carrier", "State": "INUSE"}, 1.0)
    seeded(registry=registry)
    assert {device.name: device.person for device in registry.snapshot()} == {
        "PJSIP/100": "Anna",
        "PJSIP/101": "Ben",
        "PJSIP/102": "",
    }


def test_contact_status_values() -> None:
    registry = DeviceRegistry()

    def contact(status: str, uri: str = "sip:200@192.0.2.1:5060") -> bool | None:
        event = {"Event": "ContactStatus", "URI": uri, "ContactStatus": status, "AOR": "200", "EndpointName": "200"}
        registry.feed(event, 1.0)
        return registry.get("PJSIP/200").registered

    assert contact("Created") is True
    assert contact("Unreachable") is False
    assert contact("Reachable") is True
    assert contact("Updated") is True
    assert contact("NonQualified", "sip:200@192.0.2.2:5060") is True  # a second contact
    assert contact("Removed") is True  # the other one is still there
    assert contact("Unreachable", "sip:200@192.0.2.2:5060") is False
    assert contact("Removed", "sip:200@192.0.2.2:5060") is False
    assert registry.get("PJSIP/200").contacts == ()


def test_peer_status_for_chan_sip_and_iax2() -> None:
    registry = DeviceRegistry()
    assert registry.feed(
        {"Event": "PeerStatus", "ChannelType": "SIP", "Peer": "SIP/300", "PeerStatus": "Registered"}, 1
    )
    assert registry.get("SIP/300").registered is True
    assert registry.feed({"Event": "PeerStatus", "Peer": "SIP/300", "PeerStatus": "Unregistered"}, 2.0)
    assert registry.get("SIP/300").registered is False
    assert not registry.feed({"Event": "PeerStatus", "Peer": "SIP/300", "PeerStatus": "Unregistered"}, 3.0)
    registry.feed({"Event": "PeerStatus", "Peer": "IAX2/400", "PeerStatus": "Reachable"}, 1.0)
    assert registry.get("IAX2/400").registered is True
    assert not registry.feed({"Event": "PeerStatus", "Peer": "SIP/300", "PeerStatus": "Weird"}, 3.0)


def test_unknown_and_odd_events_change_nothing() -> None:
    registry = DeviceRegistry()
    for event in (
        {"Event": "Newchannel", "Channel": "PJSIP/100-00000001"},
        {"Event": "DeviceStateChange"},
        {"Event": "DeviceStateChange", "Device": "Local/100@queue-members", "State": "INUSE"},
        {"Event": "DeviceStateChange", "Device": "PJSIP/15559876543@trunk", "State": "INUSE"},
        {"Event": "DeviceStateChange", "Device": "Custom:lamp", "State": "INUSE"},
        {"Event": "ContactStatus", "URI": "", "ContactStatus": "Created", "EndpointName": "100"},
        {"Event": "PeerStatus", "Peer": "PJSIP/", "PeerStatus": "Reachable"},
    ):
        assert not registry.feed(event, 1.0)
    assert registry.snapshot() == []


def test_bounded_devices_contacts_and_strings() -> None:
    registry = DeviceRegistry(max_devices=3)
    for n in range(10):
        registry.feed({"Event": "DeviceStateChange", "Device": f"PJSIP/{n}", "State": "NOT_INUSE"}, 1.0)
    assert len(registry) == 3 and registry.dropped == 7
    contacts = [
        {"Event": "ContactList", "Endpoint": "1", "Uri": f"sip:1@192.0.2.{n}:5060", "Status": "Avail", "UserAgent": "x"}
        for n in range(50)
    ]
    contacts[0]["UserAgent"] = "Evil\x1b[31m phone " + "A" * 10_000
    registry.seed_contacts(contacts)
    desk = registry.get("PJSIP/1")
    assert len(desk.contacts) == 10
    assert len(desk.user_agent) <= 120 and "\x1b" not in desk.user_agent and desk.user_agent.startswith("Evil[31m")
    registry.feed({"Event": "DeviceStateChange", "Device": "PJSIP/" + "9" * 500, "State": "INUSE"}, 1.0)
    assert len(registry) == 3


def test_endpoints_removed_from_the_pbx_disappear_at_the_next_seed() -> None:
    registry = seeded()
    fewer = [item for item in items("pjsipshowendpoints.raw") if item.get("ObjectName") != "101"]
    registry.seed_endpoints(fewer, 2.0)
    assert [device.name for device in registry.snapshot()] == ["PJSIP/100", "PJSIP/102"]


def test_snapshot_sorts_extensions_numerically() -> None:
    registry = DeviceRegistry()
    for name in ("PJSIP/10", "PJSIP/9", "PJSIP/alice", "SIP/2", "PJSIP/100"):
        registry.feed({"Event": "DeviceStateChange", "Device": name, "State": "NOT_INUSE"}, 1.0)
    assert [device.name for device in registry.snapshot()] == [
        "PJSIP/9",
        "PJSIP/10",
        "PJSIP/100",
        "PJSIP/alice",
        "SIP/2",
    ]


def test_helpers() -> None:
    assert normalise_state("Not in use") == "NOT_INUSE"
    assert normalise_state("Ring+Inuse") == "RINGINUSE"
    assert normalise_state("RINGING") == "RINGING"
    assert normalise_state("") == "UNKNOWN"
    assert is_phone_device("PJSIP/100") and is_phone_device("SIP/alice") and is_phone_device("IAX2/branch")
    assert not is_phone_device("MWI:100@default") and not is_phone_device("Queue:callbuddy-sales_pause_PJSIP/100")
    assert not is_phone_device("Local/100@queue-members") and not is_phone_device("PJSIP/a/b")
    device = seeded().get("PJSIP/100")
    assert dataclasses.replace(device, person="x").person == "x"  # the shared, frozen Device
