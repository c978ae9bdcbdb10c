"""Call back a caller from a desk phone (pure; no I/O, no clock): the AMI Originate that starts it, and how far it got.

The service rings the chosen desk first (Originate to `PJSIP/<extension>`, Async); once the desk answers, Asterisk
runs `[callbuddy-callback]` (asterisk/render_dialplan.py) with the caller's E.164 number as extension, which hands the
call to `[from-internal]`: from there it is the desk dialling the number, with the desk's caller ID rules, its
business's numbering plan and trunk. So the outbound tracker (asterisk/outbound.py) sees an ordinary desk call.

Events are tied to a call back by the Uniqueid the Originate gives the desk's channel (`ChannelId`): Asterisk sends
the dialplan's first events and `OriginateResponse` from two threads, in either order, so the response cannot be
what names the channel. A failed Originate has no channel (`Uniqueid: <unknown>`): its `OriginateResponse` is tied
by the action's ActionID.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

CALLBACK_CONTEXT = "callbuddy-callback"
DESK_RING_S = 30  # how long the desk rings before the call back gives up on it
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # ITU-T E.164: at most 15 digits; 7 is the shortest this service texts
_EXTENSION = re.compile(r"[0-9A-Za-z_-]{1,40}")  # what config/pbx.py accepts as a phone's extension, and no more
_CHANNEL_ID = re.compile(r"[0-9A-Za-z.-]{1,100}")  # Asterisk takes up to 149 characters


class CallBackError(ValueError):
    """A value that must never reach the Originate action (the message names which, never the number)."""


def originate_fields(extension: str, number: str, channel_id: str, *, ring_s: int = DESK_RING_S) -> dict[str, str]:
    """The Originate action's fields: ring desk `extension`; when answered, dial `number` (E.164) from it.

    Only Exten/Context/Priority, never Application: Asterisk then needs the `originate` write class alone (the
    `system` class is demanded for applications that reach a shell). Every value is checked against a strict
    pattern, so nothing a user typed can become dialplan or AMI text (a newline would start a new header)."""
    if not _EXTENSION.fullmatch(extension):
        raise CallBackError("the desk phone is not a configured extension")
    if not _E164.fullmatch(number):
        raise CallBackError("the number to call back is not an E.164 number")
    if not _CHANNEL_ID.fullmatch(channel_id):
        raise CallBackError("bad channel id")
    return {
        "Channel": f"PJSIP/{extension}",
        "Context": CALLBACK_CONTEXT,
        "Exten": number,
        "Priority": "1",
        "Timeout": str(ring_s * 1000),
        # What the desk's screen shows while it rings (the dialplan puts the desk's own caller ID back before
        # dialling out, so the caller never sees it).
        "CallerID": f'"Call back {number}" <{number}>',
        "Async": "true",
        "ChannelId": channel_id,
    }


def is_e164(number: str) -> bool:
    return bool(_E164.fullmatch(number))


class Stage(Enum):
    """How far a call back got. The first four are on the way; the rest are where it ended."""

    STARTING = "starting"  # the Originate is being sent
    RINGING_DESK = "ringing_desk"  # queued: the desk rings
    CALLING = "calling"  # the desk answered; the caller's number is being dialled
    CONNECTED = "connected"  # the caller answered: desk and caller talk
    TALKED = "talked"  # they talked and hung up
    DESK_NO_ANSWER = "desk_no_answer"
    DESK_BUSY = "desk_busy"
    DESK_UNREACHABLE = "desk_unreachable"  # not registered (no channel at all), or congestion
    DESK_HUNG_UP = "desk_hung_up"  # declined, or hung up before the caller was dialled
    CALLER_NO_ANSWER = "caller_no_answer"
    CALLER_BUSY = "caller_busy"
    CALLER_UNREACHABLE = "caller_unreachable"  # the trunk could not take the call (CHANUNAVAIL, CONGESTION)
    NOT_ALLOWED = "not_allowed"  # the desk's dialplan refused the number (international, premium, its limit)
    REFUSED = "refused"  # Asterisk refused the Originate (the AMI user lacks the `originate` class)
    UNAVAILABLE = "unavailable"  # no AMI connection, or it dropped while the call back was on its way
    LOST = "lost"  # nothing final arrived in time


IN_PROGRESS = frozenset({Stage.STARTING, Stage.RINGING_DESK, Stage.CALLING, Stage.CONNECTED})

# OriginateResponse `Reason` on failure: the last control frame the dialled channel gave (Asterisk's
# enum ast_control_frame_type): 0 no channel (e.g. not registered, actions/originate-async-unavailable), 1 hung up
# (a 603 Decline), 3 rang without answer until the Timeout (actions/originate-async-noanswer), 5 busy,
# 8 congestion. 4 (answered) comes with `Response: Success`.
_DESK_FAILURES = {"0": Stage.DESK_UNREACHABLE, "1": Stage.DESK_HUNG_UP, "3": Stage.DESK_NO_ANSWER,
                  "5": Stage.DESK_BUSY, "8": Stage.DESK_UNREACHABLE}  # fmt: skip
# The desk channel's own Hangup while it still rang, when it comes before OriginateResponse: Q.850 causes.
_DESK_HANGUP_CAUSES = {"17": Stage.DESK_BUSY, "19": Stage.DESK_NO_ANSWER, "18": Stage.DESK_NO_ANSWER,
                       "21": Stage.DESK_HUNG_UP, "20": Stage.DESK_UNREACHABLE}  # fmt: skip
# The desk's Dial to the caller (DialEnd DialStatus).
_DIAL_ENDS = {"BUSY": Stage.CALLER_BUSY, "NOANSWER": Stage.CALLER_NO_ANSWER, "CHANUNAVAIL": Stage.CALLER_UNREACHABLE,
              "CONGESTION": Stage.CALLER_UNREACHABLE, "CANCEL": Stage.DESK_HUNG_UP}  # fmt: skip
# The desk answered but hung up without any Dial: the dialplan refused the number (callbuddy-outbound: cause 21
# for a kind the phone may not dial, 34 for its limit of calls out), else the desk hung up first.
_REFUSED_CAUSES = frozenset({"21", "34"})


@dataclass(slots=True)
class Progress:
    """One call back, fed the AMI events of its desk channel (Uniqueid = `channel_id`) and its OriginateResponse."""

    channel_id: str
    stage: Stage = Stage.STARTING
    desk_answered: bool = False
    dialled: bool = False  # the desk's Dial to the caller began

    @property
    def in_progress(self) -> bool:
        return self.stage in IN_PROGRESS

    def queued(self) -> bool:
        """Asterisk accepted the Originate. False when an event already moved the call back on."""
        return self._move(Stage.RINGING_DESK) if self.stage is Stage.STARTING else False

    def refused(self, stage: Stage) -> bool:
        """The Originate was refused, or the AMI link is gone: `stage` is REFUSED or UNAVAILABLE."""
        return self._end(stage)

    def feed(self, event: Mapping[str, str]) -> bool:
        """Take one event of this call back; True when its stage changed."""
        if not self.in_progress:
            return False
        name = event.get("Event", "")
        if name == "OriginateResponse":
            return self._originate_response(event)
        if name == "DialBegin" and event.get("Uniqueid") == self.channel_id:
            self.dialled = True
            self.desk_answered = True  # the dialplan runs only on an answered channel
            return self._move(Stage.CALLING)
        if name == "DialEnd" and event.get("Uniqueid") == self.channel_id:
            status = event.get("DialStatus", "")
            if status == "ANSWER":
                return self._move(Stage.CONNECTED)
            return self._end(_DIAL_ENDS.get(status, Stage.CALLER_UNREACHABLE))
        if name == "Newstate" and event.get("Uniqueid") == self.channel_id and event.get("ChannelState") == "6":
            self.desk_answered = True
            return self._move(Stage.CALLING) if self.stage in (Stage.STARTING, Stage.RINGING_DESK) else False
        if name == "Hangup" and event.get("Uniqueid") == self.channel_id:
            return self._hangup(event.get("Cause", ""))
        return False

    def _originate_response(self, event: Mapping[str, str]) -> bool:
        if event.get("Response") == "Success":
            self.desk_answered = True
            return self._move(Stage.CALLING) if self.stage in (Stage.STARTING, Stage.RINGING_DESK) else False
        if self.desk_answered:  # a late response cannot undo an answer
            return False
        return self._end(_DESK_FAILURES.get(event.get("Reason", ""), Stage.DESK_UNREACHABLE))

    def _hangup(self, cause: str) -> bool:
        if self.stage is Stage.CONNECTED:
            return self._end(Stage.TALKED)
        if not self.desk_answered:
            return self._end(_DESK_HANGUP_CAUSES.get(cause, Stage.DESK_HUNG_UP))
        if not self.dialled and cause in _REFUSED_CAUSES:
            return self._end(Stage.NOT_ALLOWED)
        return self._end(Stage.DESK_HUNG_UP)

    def _move(self, stage: Stage) -> bool:
        if stage is self.stage:
            return False
        self.stage = stage
        return True

    def _end(self, stage: Stage) -> bool:
        if not self.in_progress:
            return False
        return self._move(stage)
