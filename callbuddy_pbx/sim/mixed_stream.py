"""`mixed_call_stream`: a lazy, deterministic stream of varied calls (a weighted mix of every scenario kind with
varied callers, names, DIDs and timings), built from per-call templates (call_templates.py)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from callbuddy_pbx.sim import call_scripts, queue_scripts
from callbuddy_pbx.sim.call_templates import Template, compile_template
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
from callbuddy_pbx.sim.scenario_model import (
    FOLLOW_ME_DID,
    HOSTILE_NAME,
    HUNT_DID,
    MAIN_DID,
    QUEUE_DID,
    SALES_HUNT_DID,
    SINGLE_DESK_DID,
    VOICEMAIL_DID,
    Scenario,
    Script,
)

# (weight, kind, script, keyword variants, DIDs, caller kind)
KINDS: tuple[tuple[float, str, Script, tuple[dict[str, Any], ...], tuple[str, ...], str], ...] = (
    (
        30.0,
        "ring_all_answered",
        call_scripts.script_ring_all_answered,
        (
            {"answered_by": "101", "answer_after": 3.0, "talk": 42.0, "race": 0},
            {"answered_by": "100", "answer_after": 7.5, "talk": 185.0, "race": 1},
            {"desks": ("100", "101", "102"), "answered_by": "102", "answer_after": 1.8, "talk": 12.0, "race": 0},
            {"answered_by": "101", "answer_after": 4.2, "talk": 65.0, "hangup_by": "desk"},
        ),
        (MAIN_DID, "15550002000", "15550003000", "15550004000"),
        "person",
    ),
    (
        12.0,
        "ring_all_no_answer",
        call_scripts.script_ring_all_no_answer,
        ({}, {"desks": ("100", "101", "102"), "timeout": 20}, {"desks": ("102",)}),
        (MAIN_DID, "15550002000", SINGLE_DESK_DID),
        "person",
    ),
    (
        12.0,
        "caller_hangs_up_while_ringing",
        call_scripts.script_caller_hangs_up_while_ringing,
        ({"after": 4.0}, {"after": 0.5}, {"after": 11.0, "desks": ("100", "101", "102")}),
        (MAIN_DID, "15550002000", "15550003000"),
        "person",
    ),
    (
        8.0,
        "voicemail",
        call_scripts.script_voicemail,
        ({"message_s": 16.0}, {"message_s": 38.0}, {"message_s": 2.5, "leave_message": False}),
        (VOICEMAIL_DID,),
        "person",
    ),
    (4.0, "busy", call_scripts.script_busy, ({}, {"desks": ("100",)}), (MAIN_DID, "15550002000"), "person"),
    (3.0, "no_device_registered", call_scripts.script_no_device_registered, ({},), (MAIN_DID, "15550003000"), "person"),
    (
        6.0,
        "queue_answered",
        queue_scripts.script_queue_answered,
        ({"answer_after": 3.0, "talk": 95.0}, {"answered_by": "100", "answer_after": 9.0, "talk": 30.0}),
        (QUEUE_DID,),
        "person",
    ),
    (3.0, "queue_abandoned", queue_scripts.script_queue_abandoned, ({"after": 8.0}, {"after": 21.0}), (QUEUE_DID,),
     "person"),
    (
        4.0,
        "in_order_second_answers",
        call_scripts.script_in_order,
        ({"answered_by": "101", "answer_after": 2.0, "talk": 48.0, "label": "sales hunt line"},),
        (SALES_HUNT_DID,),
        "person",
    ),
    (2.0, "in_order_nobody_answers", call_scripts.script_in_order, ({},), (HUNT_DID,), "person"),
    (2.0, "follow_me_mobile_answers", call_scripts.script_follow_me, ({"talk": 75.0},), (FOLLOW_ME_DID,), "person"),
    (
        2.0,
        "ring_all_one_declines_other_answers",
        call_scripts.script_one_declines_other_answers,
        ({"talk": 33.0},),
        (MAIN_DID,),
        "person",
    ),
    (1.5, "answered_then_blind_transfer_not_picked_up", call_scripts.script_blind_transfer, ({},), (MAIN_DID,),
     "person"),
    (2.0, "anonymous_caller_no_answer", call_scripts.script_ring_all_no_answer,
     ({"name": "anonymous_caller_no_answer"},), (MAIN_DID,), "anonymous"),
    (0.5, "hostile_caller_name", call_scripts.script_ring_all_no_answer, ({"name": "hostile_caller_name"},),
     (MAIN_DID,), "hostile"),
    (3.0, "internal_call", call_scripts.script_internal, ({"_inbound": False}, {"_inbound": False, "to_desk": "102"}),
     (), "desk"),
    (4.0, "outbound_call", call_scripts.script_outbound, ({"_inbound": False, "talk": 120.0},), (), "desk"),
)  # fmt: skip

_FIRST = ("Jane", "Bob", "Maria", "Wei", "Aisha", "Tom", "Olga", "Luis", "Priya", "Sam", "Chloé", "Kenji", "Zoë")
_LAST = ("Caller", "Second", "Garcia", "Chen", "Okafor", "Smith", "Ivanova", "Müller", "Patel", "Nguyen", "O'Neil")
_HOSTILE = (HOSTILE_NAME, '"; DROP TABLE calls; --', "<img src=x onerror=alert(1)>\x1b[31m", "\x07\t \u202e evil")


class _MixedState:
    """Compiled templates of one factory configuration (compiled on first use)."""

    def __init__(self, timestamps: bool, cel_cdr: bool, boot: int) -> None:
        self.timestamps, self.cel_cdr, self.boot = timestamps, cel_cdr, boot
        self.cache: dict[tuple[int, int], Template] = {}

    def template(self, kind: int, variant: int) -> Template:
        key = (kind, variant)
        template = self.cache.get(key)
        if template is None:
            _, _, script, variants, _, _ = KINDS[kind]
            template = compile_template(
                script, dict(variants[variant]), timestamps=self.timestamps, cel_cdr=self.cel_cdr, boot=self.boot
            )
            self.cache[key] = template
        return template


_STATES: dict[tuple[bool, bool, int], _MixedState] = {}


def _mixed_calls(
    count: int | None, seed: int, calls_per_second: float, factory: ScenarioFactory | None
) -> Iterator[tuple[Template, float, tuple[Any, ...], str | None, str | None]]:
    """The calls of a mixed stream: (template, start, build arguments, caller, DID), ids reserved in the factory."""
    factory = factory or ScenarioFactory(seed=seed)
    if factory.clock < 1e9:
        raise ValueError("mixed streams need a unix start time (ScenarioFactory start_time)")
    key = (factory.timestamps, factory.cel_cdr, factory.boot_time)
    state = _STATES.get(key)
    if state is None:
        if len(_STATES) >= 8:  # one per factory configuration; keep a few
            del _STATES[next(iter(_STATES))]
        state = _STATES[key] = _MixedState(factory.timestamps, factory.cel_cdr, factory.boot_time)
    rng = random.Random(seed)
    bits = random.Random(seed ^ 0x5EED).getrandbits
    weights = list(itertools.accumulate(k[0] for k in KINDS))
    kinds = range(len(KINDS))
    ids = factory.ids
    when = factory.clock
    produced = 0
    while count is None or produced < count:
        kind = rng.choices(kinds, cum_weights=weights, k=1)[0]
        _, _, _, variants, dids, caller_kind = KINDS[kind]
        template = state.template(kind, rng.randrange(len(variants)))
        caller: str | None
        if caller_kind == "anonymous":
            caller, caller_name = "anonymous", "Anonymous"
        elif caller_kind == "desk":
            caller, caller_name = template.meta.caller, ""
        else:
            caller = f"1{rng.choice('2345678')}{rng.randrange(10)}{rng.randrange(10)}555{rng.randrange(10000):04d}"
            caller_name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            if caller_kind == "hostile":
                caller_name = rng.choice(_HOSTILE)
        did = rng.choice(dids) if dids else None
        args = (
            when,
            ids.next_uniqueid,
            ids.next_pjsip,
            ids.next_local,
            ids.next_sipp_call,
            ids.sipp_pid,
            bits,
            caller or "",
            caller_name,
            did or "",
        )
        counts = template.counts
        ids.next_uniqueid += counts["uid"]
        ids.next_pjsip += counts["pjsip"]
        ids.next_local += counts["local"]
        ids.next_sipp_call += counts["callid"]
        yield template, when, args, caller, did
        produced += 1
        when += rng.expovariate(calls_per_second) if calls_per_second > 0 else 0.0
        factory.clock = max(factory.clock, when)


def mixed_call_stream(
    count: int | None,
    *,
    seed: int = 0,
    calls_per_second: float = 1.0,
    factory: ScenarioFactory | None = None,
) -> Iterator[Scenario]:
    """A lazy, deterministic (per seed) stream of varied scenarios: a weighted mix of every kind above with varied
    callers, names, DIDs and timings; `count=None` never ends. Calls start as a Poisson process of
    `calls_per_second` from the factory's clock (each `Scenario.started_at`), so they overlap like real traffic;
    merge them with `stream_events`. Each kind is compiled once into a template; a call then costs ~0.14 ms."""
    for template, when, args, caller, did in _mixed_calls(count, seed, calls_per_second, factory):
        linkedid, events = template.build(*args)
        meta = template.meta
        yield Scenario(meta.name, caller, did, meta.outcome, meta.answered_by, linkedid, events, started_at=when)
