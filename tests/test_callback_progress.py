"""A call back's pure parts: the Originate action's fields (validated: nothing typed becomes AMI or dialplan text),
its progress from the recorded Originate traces (actions/originate-async-*), and the owner's words for each stage."""

from __future__ import annotations

import pytest

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage, iter_stream
from callbuddy_pbx.asterisk.callback import (
    CALLBACK_CONTEXT,
    CallBackError,
    Progress,
    Stage,
    originate_fields,
)
from callbuddy_pbx.web.callback_words import progress_words
from tests.traces import TRACES_DIR

ACTIONS = TRACES_DIR / "actions"
CALLER = "+15557654321"


def recorded(name: str) -> list[AmiMessage]:
    return [m for m in iter_stream((ACTIONS / f"{name}.raw").read_bytes()) if "Event" in m]


def test_the_originate_rings_the_desk_then_runs_the_call_back_context() -> None:
    fields = originate_fields("100", CALLER, "callback-0123456789abcdef")
    assert fields == {
        "Channel": "PJSIP/100",
        "Context": CALLBACK_CONTEXT,
        "Exten": CALLER,
        "Priority": "1",
        "Timeout": "30000",
        "CallerID": f'"Call back {CALLER}" <{CALLER}>',
        "Async": "true",
        "ChannelId": "callback-0123456789abcdef",
    }
    assert "Application" not in fields and "Data" not in fields  # `originate` suffices, never `system`


@pytest.mark.parametrize(
    "number",
    [
        "15557654321",  # no +
        "+1555765432\r\nAction: Originate",  # a second action smuggled in
        "+1555${SHELL(id)}",
        "+1 555 765 4321",
        "+0555765432",
        "+1234567890123456",  # 16 digits
        "+12345",  # too short
        "911",
        "",
    ],
)
def test_a_number_that_is_not_e164_never_reaches_the_action(number: str) -> None:
    with pytest.raises(CallBackError):
        originate_fields("100", number, "callback-1")


@pytest.mark.parametrize("extension", ["100\r\nAction: Logoff", "100&PJSIP/101", "PJSIP/100", "", "1" * 41])
def test_an_extension_that_is_not_a_phone_never_reaches_the_action(extension: str) -> None:
    with pytest.raises(CallBackError):
        originate_fields(extension, CALLER, "callback-1")


def test_a_desk_that_never_answers_is_said_after_the_recorded_failure() -> None:
    """actions/originate-async-noanswer: OriginateResponse Failure, Reason 3, before the desk's Hangup (cause 19)."""
    events = recorded("originate-async-noanswer")
    desk = next(e["Uniqueid"] for e in events if e["Event"] == "Newchannel")
    progress = Progress(desk)
    assert progress.queued() and progress.stage is Stage.RINGING_DESK
    stages = [progress.stage for event in events if progress.feed(event)]
    assert stages == [Stage.DESK_NO_ANSWER]
    assert not progress.in_progress


def test_a_desk_that_is_not_registered_is_unreachable() -> None:
    """actions/originate-async-unavailable: only OriginateResponse Failure, Reason 0, and no channel."""
    progress = Progress("callback-1")
    progress.queued()
    stages = [progress.stage for event in recorded("originate-async-unavailable") if progress.feed(event)]
    assert stages == [Stage.DESK_UNREACHABLE]


def test_an_answered_desk_moves_on_to_calling_the_caller() -> None:
    """actions/originate-async-answered: the desk's Newstate Up, then OriginateResponse Success, Reason 4."""
    events = recorded("originate-async-answered")
    desk = next(e["Uniqueid"] for e in events if e["Event"] == "Newchannel")
    progress = Progress(desk)
    progress.queued()
    for event in events:
        if event["Event"] == "Hangup":
            break
        progress.feed(event)
    assert progress.stage is Stage.CALLING and progress.desk_answered


@pytest.mark.parametrize(
    ("reason", "stage"),
    [("0", Stage.DESK_UNREACHABLE), ("1", Stage.DESK_HUNG_UP), ("3", Stage.DESK_NO_ANSWER),
     ("5", Stage.DESK_BUSY), ("8", Stage.DESK_UNREACHABLE)],
)  # fmt: skip
def test_originate_failure_reasons(reason: str, stage: Stage) -> None:
    progress = Progress("callback-1")
    progress.queued()
    assert progress.feed({"Event": "OriginateResponse", "Response": "Failure", "Reason": reason})
    assert progress.stage is stage


def _desk(event: str, **fields: str) -> AmiMessage:
    return {"Event": event, "Uniqueid": "callback-1", **fields}


@pytest.mark.parametrize(
    ("events", "stage"),
    [
        ([_desk("DialBegin"), _desk("DialEnd", DialStatus="ANSWER"), _desk("Hangup", Cause="16")], Stage.TALKED),
        ([_desk("DialBegin"), _desk("DialEnd", DialStatus="BUSY"), _desk("Hangup", Cause="17")], Stage.CALLER_BUSY),
        ([_desk("DialBegin"), _desk("DialEnd", DialStatus="NOANSWER")], Stage.CALLER_NO_ANSWER),
        ([_desk("DialBegin"), _desk("DialEnd", DialStatus="CHANUNAVAIL")], Stage.CALLER_UNREACHABLE),
        ([_desk("DialBegin"), _desk("DialEnd", DialStatus="CANCEL")], Stage.DESK_HUNG_UP),
        ([_desk("Hangup", Cause="21")], Stage.NOT_ALLOWED),  # callbuddy-outbound refused the number
        ([_desk("Hangup", Cause="16")], Stage.DESK_HUNG_UP),
    ],
)
def test_the_caller_leg_after_the_desk_answered(events: list[AmiMessage], stage: Stage) -> None:
    progress = Progress("callback-1")
    progress.queued()
    progress.feed({"Event": "OriginateResponse", "Response": "Success", "Reason": "4", "Uniqueid": "callback-1"})
    for event in events:
        progress.feed(event)
    assert progress.stage is stage


def test_another_channels_events_change_nothing() -> None:
    progress = Progress("callback-1")
    progress.queued()
    for event in ("DialBegin", "Hangup", "Newstate"):
        assert not progress.feed({"Event": event, "Uniqueid": "1795255098.102", "ChannelState": "6", "Cause": "16"})
    # The Originate's own dial of the desk (AppDial2) has only Dest fields: it is not the desk calling the caller.
    assert not progress.feed({"Event": "DialEnd", "DestUniqueid": "callback-1", "DialStatus": "ANSWER"})
    assert progress.stage is Stage.RINGING_DESK


def test_a_late_failure_cannot_undo_an_answer_and_an_end_is_final() -> None:
    progress = Progress("callback-1")
    progress.queued()
    progress.feed(_desk("Newstate", ChannelState="6"))
    assert not progress.feed({"Event": "OriginateResponse", "Response": "Failure", "Reason": "3"})
    progress.feed(_desk("Hangup", Cause="16"))
    assert progress.stage is Stage.DESK_HUNG_UP
    assert not progress.feed(_desk("DialEnd", DialStatus="ANSWER"))


@pytest.mark.parametrize("stage", list(Stage))
def test_every_stage_is_said_in_an_owners_words(stage: Stage) -> None:
    words = progress_words(stage, "Front desk")
    assert words and not any(w in words.lower() for w in ("originate", "channel", "cause", "ami", "pjsip", "dial"))
