"""An originated call back is an ordinary answered desk call to the caller for the outbound tracker (asterisk/outbound),
so it marks the missed call `called_back`. Fed the events the simulated PBX sends for it (sim/originate.py), whose
shapes are checked here against the recorded Originate (actions/originate-async-*) and desk call (trace 16)."""

from __future__ import annotations

import pytest

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage, iter_stream
from callbuddy_pbx.asterisk.callback import Progress, Stage, originate_fields
from callbuddy_pbx.asterisk.outbound import OutboundTracker
from callbuddy_pbx.sim.originate import ANSWER, BUSY, NO_ANSWER, OriginatePlan, originate_steps
from tests.traces import TRACES_DIR

CALLER = "+15557654321"
CHANNEL_ID = "callback-00000000000000aa"


def call_back_events(desk: str = ANSWER, caller: str = ANSWER) -> list[AmiMessage]:
    action = {"Action": "Originate", "ActionID": "cb-1", **originate_fields("100", CALLER, CHANNEL_ID)}
    return [event for _, event in originate_steps(action, OriginatePlan(desk=desk, caller=caller))]


def tracker() -> OutboundTracker:
    return OutboundTracker(("from-internal",), {"PJSIP/100": "Glow Salon"}, regions={"Glow Salon": "US"})


def test_an_answered_call_back_is_an_answered_desk_call_to_the_caller() -> None:
    outbound = tracker()
    answers = [answer for event in call_back_events() for answer in outbound.feed(event, 1000.0)]
    assert [(a.linkedid, a.business, a.endpoint, a.number) for a in answers] == [
        (CHANNEL_ID, "Glow Salon", "PJSIP/100", CALLER)
    ]
    assert outbound.following == 0  # both channels hung up: nothing is kept


@pytest.mark.parametrize(("desk", "caller"), [(NO_ANSWER, ANSWER), (BUSY, ANSWER), (ANSWER, NO_ANSWER), (ANSWER, BUSY)])
def test_a_call_back_nobody_answered_recovers_nothing(desk: str, caller: str) -> None:
    outbound = tracker()
    assert [a for event in call_back_events(desk, caller) for a in outbound.feed(event, 1000.0)] == []


@pytest.mark.parametrize(
    ("desk", "caller", "stage"),
    [
        (ANSWER, ANSWER, Stage.TALKED),
        (NO_ANSWER, ANSWER, Stage.DESK_NO_ANSWER),
        (BUSY, ANSWER, Stage.DESK_BUSY),
        (ANSWER, NO_ANSWER, Stage.CALLER_NO_ANSWER),
        (ANSWER, BUSY, Stage.CALLER_BUSY),
    ],
)
def test_the_simulated_events_tell_the_progress_what_happened(desk: str, caller: str, stage: Stage) -> None:
    progress = Progress(CHANNEL_ID)
    progress.queued()
    for event in call_back_events(desk, caller):
        progress.feed(event)
    assert progress.stage is stage


def _recorded(path: str) -> list[AmiMessage]:
    return [m for m in iter_stream((TRACES_DIR / path).read_bytes()) if "Event" in m]


def _shapes(events: list[AmiMessage]) -> dict[str, set[str]]:
    ignored = {"Timestamp", "Privilege", "SystemName"}
    shapes: dict[str, set[str]] = {}
    for event in events:
        shapes.setdefault(event["Event"], set()).update(set(event) - ignored)
    return shapes


@pytest.mark.parametrize(
    ("recorded", "desk"),
    [("actions/originate-async-noanswer.raw", NO_ANSWER), ("actions/originate-async-answered.raw", ANSWER)],
)
def test_the_desk_leg_has_the_recorded_events_and_fields(recorded: str, desk: str) -> None:
    real = _shapes(_recorded(recorded))
    sim_events = call_back_events(desk)
    if desk == ANSWER:  # the recording ran Playback, not our dialplan: compare up to the OriginateResponse
        end = next(i for i, e in enumerate(sim_events) if e["Event"] == "OriginateResponse")
        sim_events = sim_events[: end + 1]
    sim = _shapes(sim_events)
    calls = {"Newchannel", "Newexten", "NewCallerid", "NewConnectedLine", "DialBegin", "DialState", "Newstate",
             "DialEnd", "OriginateResponse", "Hangup"}  # fmt: skip
    if desk == ANSWER:
        calls.discard("Hangup")  # the recording's desk hung up after Playback; ours goes on to call the caller
    assert set(sim) == set(real) & calls
    for name, fields in sim.items():
        expected = real[name] - {"Application", "Data"}  # an Originate to Playback names it; ours has Context/Exten
        assert fields >= expected, (name, expected - fields)


def test_the_trunk_leg_has_the_fields_of_a_recorded_desk_call() -> None:
    """Trace 16 (desk 100 calls an outside number): the trunk leg's Newchannel and the desk's DialBegin/DialEnd."""
    real = _shapes(_recorded("16-outbound-call/ami.raw"))
    sim_events = call_back_events()
    start = next(i for i, e in enumerate(sim_events) if e["Event"] == "Newexten" and e["Application"] == "Dial")
    sim = _shapes(sim_events[start:])
    for name in ("Newchannel", "DialBegin", "DialState", "DialEnd", "BridgeEnter", "Hangup"):
        assert sim[name] >= real[name] - {"TechCause"}, (name, real[name] - sim[name])
