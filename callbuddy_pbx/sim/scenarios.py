"""Scripted AMI event sequences of inbound (and a few non-inbound) calls, shaped like a real Asterisk 22 PBX.

Every scenario with a real counterpart in shared/traces/asterisk (01, 02, 03, 05, 06, 07, 09, 15, 16, 17, 18, 19,
20, 21, 22) reproduces that recording's call events (Newchannel, Newstate, Dial*, Bridge*, (Soft)HangupRequest,
Hangup, Queue*, Agent*, LocalBridge, NewCallerid, MessageWaiting) with the same fields, header order and Privilege,
plus the same kind and amount of noise (VarSet, Newexten, NewConnectedLine, DialState, DeviceStateChange,
ExtensionStatus, QueueMemberStatus, RTCPSent). `Timestamp` headers are on by default (as in the recordings); CEL and
Cdr are off by default (as on a stock Asterisk). Scenarios without a recording (busy, queue abandoned, blind
transfer) follow Asterisk's documentation and source; each says what it is based on.

Usage::

    factory = ScenarioFactory()
    scenario = factory.ring_all_answered(answered_by="101")
    wire = encode_events(scenario.events)                      # AMI bytes
    both = interleave([factory.busy(), factory.voicemail()], [0.0, 1.5])   # concurrent calls

    for scenario in mixed_call_stream(1_000_000, seed=7):      # lazy; see below for the cost
        ...
    for event in stream_events(mixed_call_stream(None, calls_per_second=20)):   # one endless merged stream
        ...

Cost (Python 3.11, one core, measured): `mixed_call_stream(1_000_000)` yields 98.9 million events in 137 s
(0.14 ms per call with Timestamp headers, 0.105 ms without). A call averages ~100 events and building each event's
dict and ScriptedEvent (~1 µs) is the floor. Merging with `stream_events` costs 0.6 µs per event on its own, but at
20 calls/s some 800 calls are in flight and the larger working set makes generate+merge ~0.33 ms per call.

Layout (this module only gathers the public names; import them from here):

- scenario_model.py: `Scenario`, `ScriptedEvent`, the default numbers and desks (`MAIN_DID`, `DESKS`, ...).
- event_stream.py: `interleave`, `stream_events`, `encode_message`, `encode_events`.
- call_steps.py: the building blocks of the scripts (ringing, answering, hanging up, ...).
- call_scripts.py, queue_scripts.py: one script per scenario, writing into a `callgen.CallScript`.
- scenario_factory.py: `ScenarioFactory`, one method per scenario.
- call_templates.py, mixed_stream.py: the compiled per-call templates behind `mixed_call_stream`.
- callgen.py (with pbx_constants.py, call_ids.py, channels.py): `CallScript`, which writes a call's AMI events.
"""

from __future__ import annotations

from callbuddy_pbx.sim.callgen import (
    P_AGENT,
    P_CALL,
    P_REPORTING,
    QUEUE_START_VARS,
    STATE_RINGING,
    STATE_UP,
    UNKNOWN,
    Bridge,
    CallScript,
    Chan,
    IdSource,
    cel_time,
    event_tv,
    uuid_from_bits,
)
from callbuddy_pbx.sim.event_stream import encode_events, encode_message, interleave, stream_events
from callbuddy_pbx.sim.mixed_stream import mixed_call_stream
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
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
    QUEUE_NAME,
    SALES_HUNT_DID,
    SINGLE_DESK_DID,
    VOICEMAIL_DID,
    Scenario,
    ScriptedEvent,
)

__all__ = [
    "CALLER",
    "CALLER_NAME",
    "DEFAULT_START",
    "DESKS",
    "FOLLOW_ME_DID",
    "HOSTILE_NAME",
    "HUNT_DID",
    "MAIN_DID",
    "MOBILE",
    "QUEUE_DID",
    "QUEUE_NAME",
    "SALES_HUNT_DID",
    "SINGLE_DESK_DID",
    "VOICEMAIL_DID",
    "Scenario",
    "ScenarioFactory",
    "ScriptedEvent",
    "encode_events",
    "encode_message",
    "interleave",
    "mixed_call_stream",
    "stream_events",
]
# the CallScript vocabulary these names were once written with, still importable from here
__all__ += [
    "P_AGENT",
    "P_CALL",
    "P_REPORTING",
    "QUEUE_START_VARS",
    "STATE_RINGING",
    "STATE_UP",
    "UNKNOWN",
    "Bridge",
    "CallScript",
    "Chan",
    "IdSource",
    "cel_time",
    "event_tv",
    "uuid_from_bits",
]
