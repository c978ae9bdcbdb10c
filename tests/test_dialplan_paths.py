"""Every path through the rendered `[from-trunk]` ring groups (callbuddy_pbx/sim/dialplan_paths.py), played through
the call tracker: each golden case is rendered, read back, and every way a call can go through each business
number gives exactly one call record with the outcome and the answering device the path expects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.asterisk.tracker import CallTracker
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.sim.dialplan_paths import (
    DialplanParseError,
    DialplanPath,
    NoAnswer,
    RenderedGroup,
    RenderedStep,
    parse_ring_groups,
    paths,
)
from callbuddy_pbx.sim.scenarios import Scenario, ScenarioFactory

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = ["salon", "clinic", "installer"]
MOBILE = "PJSIP/+15559876543@trunk"

# What each path must come to, per golden case and DID, written out by hand from the rendered files.
EXPECTED: dict[str, dict[str, dict[str, tuple[str, str | None]]]] = {
    "salon": {
        "15550001000": {
            "step1_answered_by_100": ("answered", "PJSIP/100"),
            "step1_answered_by_101": ("answered", "PJSIP/101"),
            "step1_caller_hangs_up": ("abandoned", None),
            "nobody_answers_voicemail": ("voicemail", None),
            "none_registered_voicemail": ("voicemail", None),
            "via_+15550001000_step1_answered_by_100": ("answered", "PJSIP/100"),
            "via_5550001000_step1_answered_by_100": ("answered", "PJSIP/100"),
        },
    },
    "clinic": {
        "15550002000": {
            "step1_answered_by_200": ("answered", "PJSIP/200"),
            "step1_caller_hangs_up": ("abandoned", None),
            "step2_answered_by_201": ("answered", "PJSIP/201"),
            "step2_caller_hangs_up": ("abandoned", None),
            "step3_answered_by_202": ("answered", "PJSIP/202"),
            "step3_caller_hangs_up": ("abandoned", None),
            "nobody_answers_voicemail": ("voicemail", None),
            "none_registered_voicemail": ("voicemail", None),
            "via_+15550002000_step1_answered_by_200": ("answered", "PJSIP/200"),
            "via_5550002000_step1_answered_by_200": ("answered", "PJSIP/200"),
        },
        "15550002001": {
            "step1_answered_by_201": ("answered", "PJSIP/201"),
            "step1_caller_hangs_up": ("abandoned", None),
            "nobody_answers_forward_mobile_answers": ("answered", MOBILE),
            "nobody_answers_forward_mobile_no_answer": ("no_answer", None),
            "nobody_answers_forward_caller_hangs_up": ("abandoned", None),
            "none_registered_forward_mobile_answers": ("answered", MOBILE),
            "none_registered_forward_mobile_no_answer": ("no_answer", None),
            "via_+15550002001_step1_answered_by_201": ("answered", "PJSIP/201"),
            "via_5550002001_step1_answered_by_201": ("answered", "PJSIP/201"),
        },
    },
    "installer": {
        "15550001000": {
            "step1_answered_by_100": ("answered", "PJSIP/100"),
            "step1_caller_hangs_up": ("abandoned", None),
            "nobody_answers_hangup": ("no_answer", None),
            "none_registered_hangup": ("unavailable", None),
            "via_+15550001000_step1_answered_by_100": ("answered", "PJSIP/100"),
            "via_5550001000_step1_answered_by_100": ("answered", "PJSIP/100"),
        },
        "15550003000": {
            "step1_answered_by_300": ("answered", "PJSIP/300"),
            "step1_answered_by_301": ("answered", "PJSIP/301"),
            "step1_caller_hangs_up": ("abandoned", None),
            "nobody_answers_hangup": ("no_answer", None),
            "none_registered_hangup": ("unavailable", None),
            "via_+15550003000_step1_answered_by_300": ("answered", "PJSIP/300"),
            "via_5550003000_step1_answered_by_300": ("answered", "PJSIP/300"),
        },
    },
}


def rendered(case: str) -> tuple[Config, str]:
    config = load_config(GOLDEN / case / "callbuddy.yaml")
    return config, render_all(config)["extensions_callbuddy.conf"]


def all_paths(case: str) -> tuple[Config, str, dict[str, list[DialplanPath]]]:
    config, text = rendered(case)
    factory = ScenarioFactory()
    return config, text, {did: paths(did, group, factory) for did, group in parse_ring_groups(text).items()}


def track(config: Config, scenario: Scenario) -> tuple[list[CallRecord], list[CallRecord]]:
    """(records `feed` returned, records `flush` returned afterwards), from a fresh tracker."""
    tracker = CallTracker(InboundMatcher.from_config(config))
    fed: list[CallRecord] = []
    for event in scenario.events:
        fed += tracker.feed(event.message, scenario.started_at + event.at)
    return fed, tracker.flush()


def test_render_still_matches_the_golden_files() -> None:
    for case in CASES:
        assert rendered(case)[1] == (GOLDEN / case / "out" / "extensions_callbuddy.conf").read_text()


@pytest.mark.parametrize("case", CASES)
def test_every_path_gives_the_expected_call_record(case: str) -> None:
    config, _, by_did = all_paths(case)
    assert set(by_did) == set(EXPECTED[case])
    for did, generated in by_did.items():
        expected = EXPECTED[case][did]
        assert {p.name for p in generated} == set(expected), did
        for path in generated:
            label = f"{case} {did} {path.name}"
            assert (path.expected_outcome, path.expected_answered_by) == expected[path.name], label
            assert path.scenario.expected_outcome == path.expected_outcome, label
            assert path.scenario.expected_answered_by == path.expected_answered_by, label
            fed, flushed = track(config, path.scenario)
            assert flushed == [], f"{label}: the call only ended at flush()"
            assert len(fed) == 1, f"{label}: {len(fed)} records"
            (record,) = fed
            assert record.outcome.value == path.expected_outcome, f"{label}: {record.outcome}"
            assert record.answered_by == path.expected_answered_by, f"{label}: {record.answered_by}"
            assert record.did == "+" + did, label
            assert record.business is not None, label
            assert record.caller == "+15557654321", label


@pytest.mark.parametrize("case", CASES)
def test_paths_cover_every_rendered_branch(case: str) -> None:
    """Read independently of the parser: every `n(stepK)` label, every no-answer line and every `+` alias of each
    business number has its paths (a new rendered branch without a path fails here)."""
    _, text, by_did = all_paths(case)
    trunk = text.split("[from-trunk]", 1)[1].split("\n[", 1)[0]
    extensions = re.findall(r"^exten => ([^,]+),1,(.*)$((?:\n same => .*)*)", trunk, flags=re.MULTILINE)
    business = [(exten, body) for exten, first, body in extensions if not first.startswith("Goto(")]
    aliases = {exten: first for exten, first, _ in extensions if first.startswith("Goto(")}
    assert {exten for exten, _ in business} == set(by_did)
    for did, body in business:
        names = {p.name for p in by_did[did]}
        steps = re.findall(r"n\(step(\d+)\),Set\(CB_DIAL=(.*)\)$", body, flags=re.MULTILINE)
        assert steps, did
        for number, value in steps:
            for member in re.findall(r"PJSIP_DIAL_CONTACTS\((\w+)\)", value):
                assert f"step{number}_answered_by_{member}" in names, (did, number, member)
            assert f"step{number}_caller_hangs_up" in names, (did, number)
        (action,) = re.findall(r"n\(noanswer\),(\w+)\(", body)
        kind = {"VoiceMail": "voicemail", "Dial": "forward", "NoOp": "hangup"}[action]
        suffixes = ["forward_mobile_answers", "forward_mobile_no_answer"] if kind == "forward" else [kind]
        for suffix in suffixes:
            assert f"nobody_answers_{suffix}" in names, (did, suffix)
            assert f"none_registered_{suffix}" in names, (did, suffix)
        for alias, goto in aliases.items():
            if goto == f"Goto({did},1)":
                assert any(name.startswith(f"via_{alias}_") for name in names), (did, alias)
        # nothing else rendered in the extension: the 1 NoOp, 4 lines per step, noanswer, the unanswered end
        # (voicemail: none; hang up: GotoIf busy, Hangup(19), Hangup(17); forward: a GotoIf answered first), done
        unanswered = {"voicemail": 0, "hangup": 3, "forward": 4}[kind]
        assert body.count("\n same => ") == 4 * len(steps) + 2 + unanswered, did


def test_paths_have_distinct_names_and_calls() -> None:
    for case in CASES:
        _, _, by_did = all_paths(case)
        linkedids = [p.scenario.linkedid for generated in by_did.values() for p in generated]
        assert len(set(linkedids)) == len(linkedids)
        for generated in by_did.values():
            assert len({p.name for p in generated}) == len(generated)


def test_the_scenarios_run_the_rendered_dialplan() -> None:
    """Newexten priorities and data are the rendered ones; dial strings are the registered contacts (as in 32)."""
    _, _, by_did = all_paths("clinic")
    path = next(p for p in by_did["15550002000"] if p.name == "step2_answered_by_201")
    caller = path.scenario.events[0].message["Channel"]
    steps = [
        (m["Priority"], m["Application"], m["AppData"])
        for m in (e.message for e in path.scenario.events)
        if m["Event"] == "Newexten" and m["Channel"] == caller
    ]
    assert steps == [
        ("1", "NoOp", "CallBuddy Bright Smile Dental: in_order"),
        ("2", "Set", "CB_DIAL=PJSIP/200/sip:200@127.0.0.1:5201"),
        ("3", "GotoIf", "0?step2"),
        ("4", "Dial", "PJSIP/200/sip:200@127.0.0.1:5201,15"),
        ("5", "GotoIf", "0?done"),
        ("6", "Set", "CB_DIAL=PJSIP/201/sip:201@127.0.0.1:5202"),
        ("7", "GotoIf", "0?step3"),
        ("8", "Dial", "PJSIP/201/sip:201@127.0.0.1:5202,15"),
    ]
    dial_strings = [e.message["DialString"] for e in path.scenario.events if e.message["Event"] == "DialBegin"]
    assert dial_strings == ["200/sip:200@127.0.0.1:5201", "201/sip:201@127.0.0.1:5202"]
    unregistered = next(p for p in by_did["15550002000"] if p.name == "none_registered_voicemail")
    events = [e.message for e in unregistered.scenario.events]
    assert not any(m["Event"] == "DialBegin" for m in events)
    jumps = [(m["Priority"], m["AppData"]) for m in events if m["Event"] == "Newexten" and m["Application"] == "GotoIf"]
    assert jumps == [("3", "1?step2"), ("7", "1?step3"), ("11", "1?noanswer")]
    assert [m["Priority"] for m in events if m.get("Application") == "VoiceMail"] == ["14"]


SNIPPET = r"""
; not a business number's context
[from-internal]
exten => 100,1,Dial(PJSIP/100,20)

[from-trunk]
; a comment
exten => 15551230000,1,NoOp(CallBuddy Acme: in_order)
 same => n(step1),Set(CB_DIAL=${PJSIP_DIAL_CONTACTS(10)}&${PJSIP_DIAL_CONTACTS(11)}) ; two desks together
 same => n,GotoIf($[${LEN(${STRREPLACE(CB_DIAL,&,)})} = 0]?step2)
 same => n,Dial(${CB_DIAL},12)
 same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)
 same => n(step2),Set(CB_DIAL=${PJSIP_DIAL_CONTACTS(12)})
 same => n,GotoIf($[${LEN(${STRREPLACE(CB_DIAL,&,)})} = 0]?noanswer)
 same => n,Dial(${CB_DIAL},8)
 same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)
 same => n(noanswer),Dial(PJSIP/+15557778888@carrier,25)
 same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)
 same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?busy)
 same => n,Hangup(19)
 same => n(busy),Hangup(17)
 same => n(done),Hangup()
exten => +15551230000,1,Goto(15551230000,1)
exten => 15551230001,1,NoOp(CallBuddy Acme: ring_all)
 same => n(step1),Set(CB_DIAL=${PJSIP_DIAL_CONTACTS(12)})
 same => n,GotoIf($[${LEN(${STRREPLACE(CB_DIAL,&,)})} = 0]?noanswer)
 same => n,Dial(${CB_DIAL},30)
 same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)
 same => n(noanswer),VoiceMail(12@default,u)
 same => n(done),Hangup()

[other]
exten => 15551230002,1,NoOp(not from-trunk)
"""


def test_parse_ring_groups_reads_a_hand_written_snippet() -> None:
    groups = parse_ring_groups(SNIPPET)
    assert groups == {
        "15551230000": RenderedGroup(
            did="15551230000",
            label="CallBuddy Acme: in_order",
            steps=(RenderedStep(("10", "11"), 12, 2), RenderedStep(("12",), 8, 6)),
            no_answer=NoAnswer("forward", "+15557778888", "carrier", 25),
            noanswer_priority=10,
            done_priority=15,
            aliases=("+15551230000",),
            busy_check_priority=12,
        ),
        "15551230001": RenderedGroup(
            did="15551230001",
            label="CallBuddy Acme: ring_all",
            steps=(RenderedStep(("12",), 30, 2),),
            no_answer=NoAnswer("voicemail", "12"),
            noanswer_priority=6,
            done_priority=7,
        ),
    }


def test_paths_of_the_snippet_follow_its_trunk_and_timeouts() -> None:
    groups = parse_ring_groups(SNIPPET)
    generated = {p.name: p for p in paths("15551230000", groups["15551230000"], ScenarioFactory())}
    assert set(generated) == {
        "step1_answered_by_10",
        "step1_answered_by_11",
        "step1_caller_hangs_up",
        "step2_answered_by_12",
        "step2_caller_hangs_up",
        "nobody_answers_forward_mobile_answers",
        "nobody_answers_forward_mobile_no_answer",
        "nobody_answers_forward_caller_hangs_up",
        "none_registered_forward_mobile_answers",
        "none_registered_forward_mobile_no_answer",
        "via_+15551230000_step1_answered_by_10",
    }
    mobile = generated["nobody_answers_forward_mobile_answers"]
    assert mobile.expected_answered_by == "PJSIP/+15557778888@carrier"
    events = [e for e in mobile.scenario.events if e.message["Event"] in ("DialBegin", "DialEnd")]
    begins = [(round(e.at), e.message["DestChannel"].rsplit("-", 1)[0]) for e in events if "DialString" in e.message]
    assert begins == [(0, "PJSIP/10"), (0, "PJSIP/11"), (12, "PJSIP/12"), (20, "PJSIP/carrier")]
    timeout = generated["nobody_answers_forward_mobile_no_answer"].scenario
    assert round(timeout.duration) == 12 + 8 + 25
    for path in generated.values():
        fed, _ = track_without_businesses(path.scenario)
        assert [(r.outcome.value, r.answered_by) for r in fed] == [(path.expected_outcome, path.expected_answered_by)]


def track_without_businesses(scenario: Scenario) -> tuple[list[CallRecord], list[CallRecord]]:
    tracker = CallTracker(InboundMatcher())
    fed: list[CallRecord] = []
    for event in scenario.events:
        fed += tracker.feed(event.message, scenario.started_at + event.at)
    return fed, tracker.flush()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("VoiceMail(12@default,u)", "Queue(support)", "expected VoiceMail"),
        ("?noanswer)\n same => n,Dial(${CB_DIAL},30)", "?step9)\n same => n,Dial(${CB_DIAL},30)", "a skip to"),
        ("Dial(${CB_DIAL},30)", "Dial(PJSIP/12,30)", "Dial(${CB_DIAL},<seconds>)"),
        (" same => n(done),Hangup()\n\n[other]", " same => n(done),Hangup()\n same => n,NoOp(x)\n\n[other]", "after"),
        ("exten => +15551230000,1,Goto(15551230000,1)", "exten => +1555,1,Goto(1666,1)", "no extension 1666"),
        (
            "=${PJSIP_DIAL_CONTACTS(12)})\n same => n,GotoIf($[${LEN(${STRREPLACE(CB_DIAL,&,)})} = 0]?noanswer)",
            "=PJSIP/12)\n same => n,GotoIf($[${LEN(${STRREPLACE(CB_DIAL,&,)})} = 0]?noanswer)",
            "PJSIP_DIAL_CONTACTS",
        ),
    ],
)
def test_an_unknown_rendered_branch_is_an_error(old: str, new: str, message: str) -> None:
    assert old in SNIPPET
    with pytest.raises(DialplanParseError, match=re.escape(message)):
        parse_ring_groups(SNIPPET.replace(old, new))
