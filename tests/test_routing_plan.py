"""The ring plan (pure): which devices ring for a call, together or one person after another, and for how long."""

from __future__ import annotations

import dataclasses

import pytest

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config.pbx import NoAnswer, Phone, RingGroup
from callbuddy_pbx.routing.plan import (
    BUSY_STATES,
    UNUSABLE_STATES,
    RingPlan,
    RingStep,
    all_busy,
    people_of,
    ring_plan,
    why_unusable,
)

PHONES = (
    Phone("100", "Anna desk", "Glow", person="anna"),
    Phone("110", "Anna softphone", "Glow", person="anna"),
    Phone("120", "Anna mobile app", "Glow", person="anna"),
    Phone("101", "Ben desk", "Glow", person="ben"),
    Phone("102", "Front desk", "Glow"),  # its own person
    Phone("103", "Back office", "Glow"),
)


def device(name: str, state: str = "NOT_INUSE", registered: bool | None = True, **times: float) -> Device:
    return Device(name=f"PJSIP/{name}", endpoint=name, state=state, registered=registered, **times)


def idle(*names: str) -> dict[str, Device]:
    return {f"PJSIP/{name}": device(name) for name in names}


ALL_IDLE = idle("100", "110", "120", "101", "102", "103")


def group(members: tuple[str, ...], strategy: str = "ring_all", ring_s: int = 20, total_s: int = 60) -> RingGroup:
    voicemail = NoAnswer("voicemail", "100")
    return RingGroup("+15550001001", members, strategy, ring_s, total_s, voicemail, routing="callbuddy")


def steps(plan: RingPlan) -> list[tuple[tuple[str, ...], int]]:
    return [(tuple(e.removeprefix("PJSIP/") for e in step.endpoints), step.ring_s) for step in plan.steps]


# -- device states -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "registered", "usable"),
    [
        ("NOT_INUSE", True, True),
        ("UNKNOWN", True, True),  # no state computed yet, but a live contact
        ("UNKNOWN", None, False),  # nothing known at all
        ("UNKNOWN", False, False),
        ("NOT_INUSE", False, False),  # the last event said unregistered
        ("NOT_INUSE", None, False),
        *[(state, True, False) for state in sorted(BUSY_STATES)],
        *[(state, True, False) for state in sorted(UNUSABLE_STATES)],
    ],
)
def test_which_device_states_may_ring(state: str, registered: bool | None, usable: bool) -> None:
    assert (why_unusable(device("100", state, registered)) is None) is usable
    plan = ring_plan(group(("102",)), PHONES, {"PJSIP/102": device("102", state, registered)})
    assert bool(plan.steps) is usable
    if not usable:
        assert plan.skipped[0][0] == "PJSIP/102" and plan.skipped[0][1]


def test_reasons_say_why() -> None:
    assert why_unusable(None) == "unknown to the registry"
    assert why_unusable(device("100", registered=False)) == "not registered"
    assert why_unusable(device("100", "RINGING")) == "busy (RINGING)"
    assert why_unusable(device("100", "INVALID")) == "unavailable (INVALID)"
    assert why_unusable(device("100"), dnd=True) == "do not disturb"


def test_a_device_the_registry_does_not_know_does_not_ring() -> None:
    plan = ring_plan(group(("102", "103")), PHONES, idle("102"))
    assert steps(plan) == [(("102",), 20)]
    assert plan.skipped == (("PJSIP/103", "unknown to the registry"),)


def test_do_not_disturb_from_a_caller_supplied_set() -> None:
    plan = ring_plan(group(("102", "103")), PHONES, ALL_IDLE, dnd={"PJSIP/102"})
    assert steps(plan) == [(("103",), 20)]


# -- persons with several devices ----------------------------------------------------------------------------------


def test_a_member_stands_for_every_device_of_its_person() -> None:
    people = people_of(group(("110", "101", "100", "102")), PHONES)
    assert [(p.key, p.devices) for p in people] == [
        ("anna", ("PJSIP/110", "PJSIP/100", "PJSIP/120")),  # the member's own phone first, then config order
        ("ben", ("PJSIP/101",)),
        ("ext:102", ("PJSIP/102",)),  # 100 is Anna again: no second entry
    ]


def test_a_member_missing_from_the_phones_is_its_own_person() -> None:
    assert [(p.key, p.devices) for p in people_of(group(("555",)), PHONES)] == [("ext:555", ("PJSIP/555",))]


def test_ring_all_rings_every_usable_device_of_every_person_at_once() -> None:
    devices = {**ALL_IDLE, "PJSIP/110": device("110", "INUSE"), "PJSIP/101": device("101", registered=False)}
    plan = ring_plan(group(("100", "101", "102")), PHONES, devices)
    assert steps(plan) == [(("100", "120", "102"), 20)]
    assert plan.steps[0].persons == ("anna", "102")  # Ben has no usable device
    assert dict(plan.skipped) == {"PJSIP/110": "busy (INUSE)", "PJSIP/101": "not registered"}


def test_in_order_rings_all_of_a_persons_devices_in_one_step() -> None:
    plan = ring_plan(group(("101", "100", "102"), "in_order", ring_s=15), PHONES, ALL_IDLE)
    assert steps(plan) == [(("101",), 15), (("100", "110", "120"), 15), (("102",), 15)]


# -- strategies ----------------------------------------------------------------------------------------------------


def test_in_order_is_capped_by_the_total_time() -> None:
    plan = ring_plan(group(("101", "102", "103", "100"), "in_order", ring_s=20, total_s=50), PHONES, ALL_IDLE)
    assert steps(plan) == [(("101",), 20), (("102",), 20), (("103",), 10)]  # the last one shortened, 100 dropped
    assert plan.ring_s == 50


def test_in_order_skips_persons_nobody_can_reach_without_using_up_time() -> None:
    devices = {**ALL_IDLE, "PJSIP/101": device("101", "BUSY"), "PJSIP/102": device("102", "UNAVAILABLE", False)}
    plan = ring_plan(group(("101", "102", "103"), "in_order", ring_s=20, total_s=20), PHONES, devices)
    assert steps(plan) == [(("103",), 20)]


def test_ring_all_rings_for_ring_s() -> None:
    assert steps(ring_plan(group(("102", "103"), ring_s=25, total_s=60), PHONES, ALL_IDLE)) == [(("102", "103"), 25)]


def test_last_active_first_orders_persons_by_their_latest_activity() -> None:
    devices = {
        **ALL_IDLE,
        "PJSIP/102": device("102", last_call_at=1000.0),
        "PJSIP/120": device("120", state_changed_at=2000.0),  # Anna's mobile app: the newest of all
        "PJSIP/101": device("101", last_call_at=1500.0, state_changed_at=1200.0),
    }
    plan = ring_plan(group(("103", "102", "101", "100"), "last_active_first", ring_s=10), PHONES, devices)
    assert steps(plan) == [(("100", "110", "120"), 10), (("101",), 10), (("102",), 10), (("103",), 10)]


def test_last_active_first_takes_extra_activity_and_keeps_member_order_for_the_rest() -> None:
    members = ("103", "102", "101", "100")
    plan = ring_plan(group(members, "last_active_first", ring_s=10), PHONES, ALL_IDLE, {"PJSIP/102": 5.0})
    assert steps(plan)[0] == (("102",), 10)
    assert [step.persons for step in plan.steps[1:]] == [("103",), ("ben",), ("anna",)]
    tie = {"PJSIP/101": 7.0, "PJSIP/103": 7.0}
    assert [s.persons for s in ring_plan(group(members, "last_active_first"), PHONES, ALL_IDLE, tie).steps][:2] == [
        ("103",),
        ("ben",),
    ]


def test_last_active_first_skips_the_busy_most_recent_person() -> None:
    devices = {**ALL_IDLE, "PJSIP/101": device("101", "INUSE", last_call_at=9999.0)}
    plan = ring_plan(group(("102", "101"), "last_active_first"), PHONES, devices)
    assert steps(plan) == [(("102",), 20)]


@pytest.mark.parametrize("strategy", ["ring_all", "in_order", "last_active_first"])
def test_nobody_usable_gives_an_empty_plan(strategy: str) -> None:
    offline = {name: dataclasses.replace(d, registered=False) for name, d in ALL_IDLE.items()}
    plan = ring_plan(group(("100", "101", "102"), strategy), PHONES, offline)
    assert plan.steps == () and plan.endpoints == () and plan.ring_s == 0
    assert len(plan.skipped) == 5  # Anna's three, Ben's, the front desk


def test_plan_properties() -> None:
    plan = RingPlan((RingStep(("PJSIP/1", "PJSIP/2"), 5, ("a",)), RingStep(("PJSIP/3",), 7, ("b",))))
    assert plan.endpoints == ("PJSIP/1", "PJSIP/2", "PJSIP/3") and plan.ring_s == 12


def test_why_a_phone_did_not_ring_tells_unregistered_from_unknown() -> None:
    assert why_unusable(device("100", registered=None)) == "registration unknown"
    assert why_unusable(device("100", registered=False)) == "not registered"
    devices = {**ALL_IDLE, "PJSIP/101": device("101", registered=None), "PJSIP/102": device("102", registered=False)}
    plan = ring_plan(group(("101", "102", "103")), PHONES, devices)
    assert dict(plan.skipped) == {"PJSIP/101": "registration unknown", "PJSIP/102": "not registered"}


def test_a_person_ranks_by_the_latest_activity_of_any_of_their_devices() -> None:
    devices = {
        **ALL_IDLE,
        "PJSIP/100": device("100", last_call_at=3000.0),  # Anna's desk phone: the latest call of all
        "PJSIP/120": device("120", last_call_at=10.0),  # her mobile app, listed after it, long ago
        "PJSIP/101": device("101", last_call_at=2000.0),
    }
    plan = ring_plan(group(("101", "100"), "last_active_first", ring_s=10), PHONES, devices)
    assert [step.persons for step in plan.steps] == [("anna",), ("ben",)]
    # Activity the router reported for an earlier device counts as much as the registry's times of a later one.
    extra = {"PJSIP/100": 5000.0}
    later = {**devices, "PJSIP/100": device("100"), "PJSIP/110": device("110", state_changed_at=20.0)}
    plan = ring_plan(group(("101", "100"), "last_active_first", ring_s=10), PHONES, later, extra)
    assert [step.persons for step in plan.steps] == [("anna",), ("ben",)]


def test_the_last_person_rings_for_what_is_left_down_to_one_second() -> None:
    plan = ring_plan(group(("102", "103", "101"), "in_order", ring_s=20, total_s=41), PHONES, ALL_IDLE)
    assert steps(plan) == [(("102",), 20), (("103",), 20), (("101",), 1)]
    assert plan.ring_s == 41


def test_the_caller_hears_busy_only_when_every_phone_that_could_ring_was_busy() -> None:
    skipped_busy = RingPlan((), (("PJSIP/100", "busy (INUSE)"), ("PJSIP/102", "not registered")))
    assert all_busy(skipped_busy, [])  # the only registered phone was busy
    assert all_busy(RingPlan(()), [17, 17])  # both rang and answered busy
    assert not all_busy(skipped_busy, [17, None])  # one rang and nobody picked up
    assert not all_busy(RingPlan((), (("PJSIP/100", "not registered"),)), [])  # nothing could ring: unavailable
    assert not all_busy(RingPlan(()), [19])
