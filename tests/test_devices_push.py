"""Push bindings in the device registry (from AMI ContactStatus / ContactList and ARI ContactStatusChange), the ring
plan's phones to wake, and `push: true` on a configured phone."""

from __future__ import annotations

from typing import Any

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.pbx import NoAnswer, Phone, RingGroup
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.routing.plan import ring_plan
from tests.config_files import problems_of, write
from tests.test_config_routing import BASE

__all__ = ["write"]  # fixture

TOKEN = "ab" * 32
OTHER = "cd" * 32
DESK_URI = "sip:103@192.0.2.7:5060"


def push_uri(token: str = TOKEN, port: int = 40000, padding: str = "") -> str:
    push = f"pn-provider=apns;pn-prid={token};pn-param=TEAM123456.com.ex.app.voip"
    return f"sip:103@192.0.2.7:{port};transport=tcp;{push}{padding}"


def registry(*push_phones: str) -> DeviceRegistry:
    return DeviceRegistry({"PJSIP/103": "Ana mobile"}, push_phones=push_phones)


def ami(registry: DeviceRegistry, uri: str, status: str) -> bool:
    event = {"Event": "ContactStatus", "URI": uri, "ContactStatus": status, "AOR": "103", "EndpointName": "103"}
    return registry.feed(event, 1.0)


def ari(registry: DeviceRegistry, uri: str, status: str) -> bool:
    event: dict[str, Any] = {
        "type": "ContactStatusChange",
        "endpoint": {"technology": "PJSIP", "resource": "103", "state": "online", "channel_ids": []},
        "contact_info": {"uri": uri, "contact_status": status, "aor": "103", "roundtrip_usec": "0"},
    }
    return registry.feed_ari(event, 1.0)


def mobile(registry: DeviceRegistry) -> Device:
    device = registry.get("PJSIP/103")
    assert device is not None
    return device


def test_a_registration_with_push_parameters_gives_the_device_its_binding_and_sleep_keeps_it() -> None:
    for feed in (ami, ari):
        phones = registry()
        assert feed(phones, push_uri(), "NonQualified")
        device = mobile(phones)
        assert device.push_binding == PushBinding(
            Provider.APNS, TOKEN, app="com.ex.app", team_id="TEAM123456", sandbox=False
        )
        assert (device.push, device.registered, device.sleeping) == (True, True, False)
        assert feed(phones, push_uri(), "Removed")  # the app was suspended; its contact expired
        device = mobile(phones)
        assert (device.contacts, device.registered, device.sleeping) == ((), False, True)
        assert device.push_binding is not None and device.push_binding.device_token == TOKEN


def test_a_new_binding_replaces_the_old_and_a_contact_without_one_leaves_it() -> None:
    phones = registry()
    ami(phones, push_uri(), "Created")
    ami(phones, push_uri(), "Removed")
    ami(phones, push_uri(OTHER, port=40001), "Created")
    assert mobile(phones).push_binding.device_token == OTHER  # type: ignore[union-attr]
    ami(phones, DESK_URI, "Created")  # registered without push parameters: live, and the binding stays
    assert mobile(phones).push_binding.device_token == OTHER  # type: ignore[union-attr]


def test_an_unregistered_token_ends_the_binding_but_not_a_newer_one() -> None:
    phones = registry()
    ami(phones, push_uri(), "Created")
    old = mobile(phones).push_binding
    assert old is not None
    ami(phones, push_uri(OTHER, port=40001), "Created")
    assert not phones.end_binding("PJSIP/103", old)  # the phone re-registered with a new token meanwhile
    assert mobile(phones).push_binding is not None
    current = mobile(phones).push_binding
    assert current is not None and phones.end_binding("PJSIP/103", current)
    device = mobile(phones)
    assert (device.push_binding, device.push, device.sleeping) == (None, False, False)
    assert not phones.end_binding("PJSIP/999", current)


def test_the_contact_list_seed_reads_bindings() -> None:
    phones = registry()
    phones.seed_contacts([{"Event": "ContactList", "Endpoint": "103", "Uri": push_uri(), "Status": "Unavail"}])
    device = mobile(phones)
    assert device.sleeping and device.push_binding is not None and device.push_binding.device_token == TOKEN


def test_a_uri_near_asterisks_512_characters_is_kept_whole_and_a_longer_one_gives_no_binding() -> None:
    base = push_uri()
    near = push_uri(padding=";x-pad=" + "a" * (512 - len(base) - 7))
    assert len(near) == 512
    phones = registry()
    ami(phones, near, "Created")
    assert mobile(phones).contacts == (near,) and mobile(phones).push_binding is not None
    phones = registry()
    ami(phones, near + "a", "Created")  # Asterisk refuses such a Contact (400): never a binding from a cut URI
    assert mobile(phones).push_binding is None


def test_push_true_marks_a_phone_push_capable_before_any_binding() -> None:
    phones = registry("PJSIP/103")
    ami(phones, DESK_URI, "Created")
    device = mobile(phones)
    assert (device.push, device.push_binding, device.sleeping) == (True, None, False)
    plain = registry()
    ami(plain, DESK_URI, "Created")
    assert mobile(plain).push is False


def test_push_key_in_pbx_phones(write: Any) -> None:
    text = BASE.replace("person: Ana Ruiz}", "person: Ana Ruiz, push: true}")
    assert [phone.push for phone in load_config(write(text)).pbx.phones] == [True, False, False]
    wrong = BASE.replace("person: Ana Ruiz}", "person: Ana Ruiz, push: maybe}")
    assert any("push" in problem and "true or false" in problem for problem in problems_of(write(wrong)))


# -- the ring plan ---------------------------------------------------------------------------------------------------

PHONES = (Phone("100", "Desk", "Glow", person="Ana"), Phone("103", "Mobile", "Glow", person="Ana"))
BINDING = PushBinding(Provider.APNS, TOKEN)


def device(name: str, *, registered: bool, binding: PushBinding | None = None, state: str = "NOT_INUSE") -> Device:
    return Device(name, name.split("/")[1], state, registered, push_binding=binding, push=binding is not None)


def group(strategy: str = "ring_all", members: tuple[str, ...] = ("100",)) -> RingGroup:
    return RingGroup("+15550001001", members, strategy, 20, 60, NoAnswer(), routing="callbuddy")


def test_a_sleeping_phone_the_router_can_push_to_is_woken_beside_the_desk() -> None:
    devices = {
        "PJSIP/100": device("PJSIP/100", registered=True),
        "PJSIP/103": device("PJSIP/103", registered=False, binding=BINDING, state="UNAVAILABLE"),
    }
    plan = ring_plan(group(), PHONES, devices, wakeable=("PJSIP/103",))
    assert [(step.endpoints, step.wake) for step in plan.steps] == [(("PJSIP/100",), ("PJSIP/103",))]
    assert plan.skipped == ()
    unreachable = ring_plan(group(), PHONES, devices)  # no push service for its binding
    assert unreachable.wake == () and unreachable.skipped == (("PJSIP/103", "not registered"),)


def test_a_person_with_only_a_sleeping_phone_gets_a_step_and_a_busy_or_dnd_one_is_not_woken() -> None:
    devices = {"PJSIP/103": device("PJSIP/103", registered=False, binding=BINDING, state="UNAVAILABLE")}
    solo = (Phone("103", "Mobile", "Glow"),)
    plan = ring_plan(group("in_order", ("103",)), solo, devices, wakeable=("PJSIP/103",))
    assert [(step.endpoints, step.wake, step.ring_s) for step in plan.steps] == [((), ("PJSIP/103",), 20)]
    busy = {"PJSIP/103": device("PJSIP/103", registered=False, binding=BINDING, state="INUSE")}
    assert ring_plan(group("in_order", ("103",)), solo, busy, wakeable=("PJSIP/103",)).steps == ()
    dnd = ring_plan(group("in_order", ("103",)), solo, devices, wakeable=("PJSIP/103",), dnd=("PJSIP/103",))
    assert dnd.steps == ()


def test_a_phone_whose_only_contact_is_stale_is_sleeping() -> None:
    phones = registry()
    ari(phones, push_uri(), "Reachable")
    ari(phones, push_uri(), "Unreachable")  # qualify gets no answer: the app is suspended, its contact not expired
    device = mobile(phones)
    assert device.contacts == (push_uri(),) and device.registered is False and device.sleeping
