"""`ScenarioFactory`: the scripted scenarios of one simulated PBX, one method per scenario.

Each method only declares its scenario's parameters (names, types, defaults) and documentation; `_plays` turns it
into the method that runs the scenario's script (call_scripts.py, queue_scripts.py) with them.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec

from callbuddy_pbx.sim.call_ids import IdSource
from callbuddy_pbx.sim.call_scripts import (
    script_blind_transfer,
    script_busy,
    script_caller_hangs_up_while_ringing,
    script_follow_me,
    script_in_order,
    script_internal,
    script_no_device_registered,
    script_one_declines_other_answers,
    script_outbound,
    script_ring_all_answered,
    script_ring_all_no_answer,
    script_voicemail,
)
from callbuddy_pbx.sim.callgen import CallScript
from callbuddy_pbx.sim.queue_scripts import script_queue_abandoned, script_queue_answered
from callbuddy_pbx.sim.scenario_model import (
    CALLER,
    CALLER_NAME,
    DEFAULT_START,
    DESKS,
    FOLLOW_ME_DID,
    HOSTILE_NAME,
    HUNT_DID,
    MAIN_DID,
    MOBILE,
    QUEUE_DID,
    SALES_HUNT_DID,
    VOICEMAIL_DID,
    Scenario,
    Script,
    ScriptedEvent,
)

_P = ParamSpec("_P")
_Options = dict[str, Any]  # script keyword arguments a scenario method adds to its own
_Declared = Callable[Concatenate["ScenarioFactory", _P], _Options]
_Method = Callable[Concatenate["ScenarioFactory", _P], Scenario]


def _plays(script: Script) -> Callable[[_Declared[_P]], _Method[_P]]:
    """Makes a scenario method out of one that only declares the scenario's parameters (names, types, defaults) and
    documentation. The made method calls the declaring one first (it may check its arguments; it returns the script
    options a caller does not choose, e.g. the bridge teardown order), then runs `script` with every argument but
    `start` (when the scenario starts), plus those options. It has the declaring method's signature and docstring,
    returning a `Scenario`."""

    def make(declared: _Declared[_P]) -> _Method[_P]:
        signature = inspect.signature(declared)

        @functools.wraps(declared)
        def method(self: ScenarioFactory, /, *args: _P.args, **kwargs: _P.kwargs) -> Scenario:
            options = declared(self, *args, **kwargs)
            arguments = signature.bind(self, *args, **kwargs)
            arguments.apply_defaults()
            chosen = dict(arguments.arguments)
            del chosen["self"]
            start = chosen.pop("start")
            return self._run(script, start, **chosen, **options)

        method.__annotations__ = {**declared.__annotations__, "return": "Scenario"}
        method.__signature__ = signature.replace(return_annotation="Scenario")  # type: ignore[attr-defined]
        return method

    return make


class ScenarioFactory:
    """Makes scenarios for one simulated PBX: it owns the Uniqueid / channel-name counters, so scenarios made by one
    factory never collide and can run concurrently (see `interleave`).

    Each scenario starts at `start` (absolute unix time) or, by default, at the factory's clock, which then moves
    past the scenario's end (plus one second). `timestamps` adds the `Timestamp` header (`timestampevents = yes`, as
    in the recordings); `cel_cdr` adds CEL and Cdr events (off on a stock Asterisk).
    """

    def __init__(
        self, start_time: float = DEFAULT_START, *, timestamps: bool = True, cel_cdr: bool = False, seed: int = 0
    ) -> None:
        self.start_time = start_time
        self.clock = start_time
        self.timestamps = timestamps
        self.cel_cdr = cel_cdr
        self.seed = seed
        self.rng = random.Random(seed)
        self.ids = IdSource(random.Random(seed + 1))
        self.boot_time = int(start_time) - 742
        self._mailbox_new: dict[str, int] = {}

    # ---- plumbing -------------------------------------------------------------------------------------------------

    def _run(self, script: Script, start: float | None, *args: Any, **kwargs: Any) -> Scenario:
        begin = self.clock if start is None else start
        s = CallScript(
            self.ids,
            begin,
            timestamps=self.timestamps,
            cel_cdr=self.cel_cdr,
            rng=random.Random(self.rng.getrandbits(64)),
            boot_time=self.boot_time,
        )
        meta = script(s, *args, **kwargs)
        events = tuple(ScriptedEvent(at, message) for at, message in s.events)
        self.clock = max(self.clock, begin + s.t + 1.0)
        return Scenario(
            meta.name, meta.caller, meta.did, meta.outcome, meta.answered_by, meta.linkedid, events, started_at=begin
        )

    def _race(self) -> int:
        return self.rng.randrange(2)

    # ---- inbound calls with a recording ---------------------------------------------------------------------------

    @_plays(script_ring_all_no_answer)
    def ring_all_no_answer(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        timeout: int = 15,
        start: float | None = None,
    ) -> _Options:
        """01: the desks ring for `timeout` s, nobody answers (no_answer)."""
        return {}

    @_plays(script_ring_all_answered)
    def ring_all_answered(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        answered_by: str = "101",
        answer_after: float = 3.0,
        talk: float = 3.0,
        hangup_by: str = "caller",
        start: float | None = None,
    ) -> _Options:
        """03: `answered_by` picks up after `answer_after` s, they talk `talk` s; `hangup_by` "caller" or "desk"."""
        if answered_by not in desks:
            raise ValueError(f"answered_by {answered_by!r} is not one of the desks {tuple(desks)}")
        return {"race": self._race()}

    @_plays(script_one_declines_other_answers)
    def ring_all_one_declines_other_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        declining: str = "100",
        answered_by: str = "101",
        answer_after: float = 4.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> _Options:
        """17: `declining` rejects (603) at once, `answered_by` answers after `answer_after` s."""
        return {"race": self._race()}

    @_plays(script_caller_hangs_up_while_ringing)
    def caller_hangs_up_while_ringing(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        after: float = 4.0,
        start: float | None = None,
    ) -> _Options:
        """02 (06 with after=0.5): the caller cancels after `after` s of ringing (abandoned)."""
        return {}

    @_plays(script_no_device_registered)
    def no_device_registered(
        self, caller: str = CALLER, caller_name: str = CALLER_NAME, did: str = MAIN_DID, *, start: float | None = None
    ) -> _Options:
        """05: nothing can ring: no Dial events, Hangup cause 3 (unavailable)."""
        return {}

    @_plays(script_voicemail)
    def voicemail(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = VOICEMAIL_DID,
        *,
        desk: str = "100",
        timeout: int = 10,
        message_s: float = 16.0,
        leave_message: bool = True,
        start: float | None = None,
    ) -> _Options:
        """07 (22 with leave_message=False): no answer, then VoiceMail answers the caller (voicemail)."""
        new = self._mailbox_new.get(desk, 0) + (1 if leave_message else 0)
        self._mailbox_new[desk] = new
        return {"new_messages": max(new, 1)}

    @_plays(script_queue_answered)
    def queue_answered(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = QUEUE_DID,
        *,
        members: Sequence[str] = DESKS,
        answered_by: str = "101",
        answer_after: float = 3.0,
        talk: float = 4.0,
        start: float | None = None,
    ) -> _Options:
        """20: queue with Local-channel members; `answered_by` answers inside its Local channel (answered)."""
        return {}

    @_plays(script_in_order)
    def in_order_second_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = SALES_HUNT_DID,
        *,
        steps: Sequence[str] = DESKS,
        step_timeout: int = 5,
        answer_after: float = 2.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> _Options:
        """19: one Dial per desk in turn; the last step's desk answers after `answer_after` s."""
        return {"answered_by": steps[-1], "label": "sales hunt line", "race": self._race()}

    @_plays(script_in_order)
    def in_order_nobody_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = HUNT_DID,
        *,
        steps: Sequence[str] = DESKS,
        step_timeout: int = 5,
        start: float | None = None,
    ) -> _Options:
        """18: one Dial per desk in turn, each times out (no_answer)."""
        return {}

    @_plays(script_follow_me)
    def follow_me_mobile_answers(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = FOLLOW_ME_DID,
        *,
        desk: str = "100",
        mobile: str = MOBILE,
        answer_after: float = 3.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> _Options:
        """21: desk and the owner's mobile (through the trunk) ring together; the mobile answers."""
        return {}

    @_plays(script_internal)
    def internal_call(
        self,
        *,
        from_desk: str = "100",
        to_desk: str = "101",
        answer_after: float = 2.0,
        talk: float = 2.0,
        start: float | None = None,
    ) -> _Options:
        """15: desk to desk (context from-internal): not an inbound call."""
        return {}

    @_plays(script_outbound)
    def outbound_call(
        self,
        *,
        from_desk: str = "100",
        number: str = "15552223333",
        answer_after: float = 2.0,
        talk: float = 3.0,
        start: float | None = None,
    ) -> _Options:
        """16: a desk calls out through the trunk: not an inbound call."""
        return {}

    # ---- inbound calls without a recording (see each script's docstring for what it is based on) -------------------

    @_plays(script_busy)
    def busy(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        start: float | None = None,
    ) -> _Options:
        """Every desk answers 486 Busy Here: DialEnd BUSY, desk Hangup 17 `User busy` (busy)."""
        return {}

    @_plays(script_queue_abandoned)
    def queue_abandoned(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = QUEUE_DID,
        *,
        members: Sequence[str] = DESKS,
        after: float = 8.0,
        start: float | None = None,
    ) -> _Options:
        """The caller hangs up after `after` s waiting in the queue: QueueCallerAbandon (queue_abandoned)."""
        return {}

    @_plays(script_blind_transfer)
    def answered_then_blind_transfer_not_picked_up(
        self,
        caller: str = CALLER,
        caller_name: str = CALLER_NAME,
        did: str = MAIN_DID,
        *,
        answered_by: str = "101",
        target: str = "100",
        answer_after: float = 3.0,
        talk: float = 5.0,
        ring_after_transfer: float = 8.0,
        start: float | None = None,
    ) -> _Options:
        """`answered_by` answers, blind-transfers the caller to `target`, which is never answered (answered)."""
        return {}

    @_plays(script_ring_all_no_answer)
    def anonymous_caller_no_answer(
        self, did: str = MAIN_DID, *, desks: Sequence[str] = DESKS, timeout: int = 15, start: float | None = None
    ) -> _Options:
        """01 with a withheld number (CallerIDNum `anonymous`, CallerIDName `Anonymous`): no_answer, nobody to text."""
        return {"caller": "anonymous", "caller_name": "Anonymous", "name": "anonymous_caller_no_answer"}

    @_plays(script_ring_all_no_answer)
    def hostile_caller_name(
        self,
        caller: str = CALLER,
        caller_name: str = HOSTILE_NAME,
        did: str = MAIN_DID,
        *,
        desks: Sequence[str] = DESKS,
        timeout: int = 15,
        start: float | None = None,
    ) -> _Options:
        """01 with a CallerIDName full of markup, quotes and a control character (no CR/LF: AMI cannot carry them)."""
        if "\r" in caller_name or "\n" in caller_name:
            raise ValueError("an AMI header value cannot contain CR or LF")
        return {"name": "hostile_caller_name"}
