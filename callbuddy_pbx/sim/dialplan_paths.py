"""Every path through the ring groups `callbuddy-pbx render` writes, as scripted AMI scenarios.

`parse_ring_groups` reads the rendered `[from-trunk]` context of extensions_callbuddy.conf back into what each
business number does: its ring steps (the phones of each step, how long each rings) and its no-answer action
(voicemail, forward to a number through the trunk, or hang up). It is strict: a line of a business number's
extension it does not understand is an error, so a new kind of rendered branch cannot go unnoticed.

`paths` turns one parsed ring group into one scenario per way a call can go through it:

- for each step, each of its phones answering (the earlier steps rang out);
- for each step, the caller hanging up while it rings (abandoned);
- nobody answering any step, then the no-answer action: voicemail answers (voicemail), the PBX hangs up
  (no_answer), or the forward to a mobile through the trunk, which answers (answered by `PJSIP/<number>@<trunk>`),
  rings out (no_answer) or is abandoned by the caller while it rings;
- no phone registered: every step skipped by its GotoIf, then the no-answer action directly (hang up: unavailable);
- the carrier delivering the number with a leading `+` (the rendered `Goto` alias), then the first step answered.

The scenarios are written by `script_ring_steps` with the building blocks of call_steps.py and the `CallScript`
primitives, shaped like the recordings in shared/traces/asterisk: 01/18/19 (Dial steps timing out and answered),
32 (`Dial(${PJSIP_DIAL_CONTACTS(..)}&..)`: contact-form dial strings), 02 (the caller cancels), 07 (VoiceMail
answers the caller), 05 (nothing can ring) and the outbound trunk leg of 21 (the mobile through the trunk). The
dialplan priorities in the `Newexten` events are the rendered ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from callbuddy_pbx.sim.call_steps import (
    answer_in_time,
    caller_cancels,
    caller_hangs_up_bridged,
    ring_legs,
    set_dialstatus,
)
from callbuddy_pbx.sim.callgen import CallScript
from callbuddy_pbx.sim.channels import Chan
from callbuddy_pbx.sim.pbx_constants import LOCAL_IP, STATE_UP, UNKNOWN
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
from callbuddy_pbx.sim.scenario_model import CALLER, CALLER_NAME, Scenario, ScriptMeta

VOICEMAIL, FORWARD, HANGUP = "voicemail", "forward", "hangup"
NO_ANSWER_KINDS = (VOICEMAIL, FORWARD, HANGUP)

# What a leg of a step does in a path (see `script_ring_steps`).
_ANSWERS, _CALLER_HANGS_UP = "answers", "caller_hangs_up"


@dataclass(frozen=True, slots=True)
class RenderedStep:
    """One Dial step: `Set(CB_DIAL=<contacts of members>)` at `priority`, the GotoIf that skips it when none is
    registered, `Dial(${CB_DIAL},<ring_seconds>)`, the GotoIf to `done` when answered."""

    members: tuple[str, ...]
    ring_seconds: int
    priority: int


@dataclass(frozen=True, slots=True)
class NoAnswer:
    """The `noanswer` line: `kind` voicemail (target = mailbox extension), forward (target = the number as dialled,
    e.g. `+15559876543`, through `trunk` for `ring_seconds`) or hangup (target None)."""

    kind: str
    target: str | None = None
    trunk: str | None = None
    ring_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class RenderedGroup:
    """One business number's extension in `[from-trunk]`."""

    did: str  # the extension, as rendered (digits, no +)
    label: str  # the first step's NoOp text
    steps: tuple[RenderedStep, ...]
    no_answer: NoAnswer
    noanswer_priority: int
    done_priority: int
    aliases: tuple[str, ...] = ()  # other extensions that only `Goto(<did>,1)` (with a leading +, or 10 digits)
    busy_check_priority: int | None = None  # the `GotoIf(...BUSY...?busy)` before Hangup(19) (not after voicemail)


@dataclass(frozen=True, slots=True)
class DialplanPath:
    name: str
    scenario: Scenario
    expected_outcome: str
    expected_answered_by: str | None


class DialplanParseError(ValueError):
    """The rendered `[from-trunk]` has a line this reader does not understand (a new kind of branch?)."""


# ---- reading the rendered dialplan ----------------------------------------------------------------------------

_EXTEN = re.compile(r"^exten\s*=>\s*([^,]+),\s*(\d+)(?:\(([\w-]+)\))?\s*,\s*(.*)$")
_SAME = re.compile(r"^same\s*=>\s*(n|\d+)(?:\(([\w-]+)\))?\s*,\s*(.*)$")
_APP = re.compile(r"^(\w+)\((.*)\)$")
_CONTACTS = re.compile(r"\$\{PJSIP_DIAL_CONTACTS\(([^()]+)\)\}")
_SKIP = re.compile(r"^\$\[\$\{LEN\(\$\{STRREPLACE\(CB_DIAL,&,\)\}\)\} = 0\]\?([\w-]+)$")
_STEP_DIAL = re.compile(r"^\$\{CB_DIAL\},(\d+)$")
_ANSWERED = '$["${DIALSTATUS}" = "ANSWER"]?done'
_BUSY = '$["${DIALSTATUS}" = "BUSY"]?busy'
CAUSE_NO_ANSWER, CAUSE_BUSY = 19, 17  # what an unanswered call ends with: 480 and 486 to the carrier
# The greeting follows the last Dial's status (b when busy); the simulated groups are never all busy: "u".
_VOICEMAIL = re.compile(r'^([^@,]+)@default,(?:u|\$\{IF\(\$\["\$\{DIALSTATUS\}" = "BUSY"\]\?b:u\)\})$')
_FORWARD = re.compile(r"^PJSIP/([^@,/&]+)@([^,/&]+),(\d+)$")
_GOTO = re.compile(r"^([^,]+),1$")


@dataclass(frozen=True, slots=True)
class _Line:
    priority: int
    label: str | None
    app: str
    data: str
    text: str


def _strip_comment(line: str) -> str:
    """Drop an Asterisk `;` comment (an escaped `\\;` is not one)."""
    match = re.search(r"(?<!\\);", line)
    return (line[: match.start()] if match else line).strip()


def _context_lines(text: str, context: str) -> list[str]:
    lines: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if line.startswith("[") and "]" in line:
            inside = line[1 : line.index("]")] == context
            continue
        if inside and line:
            lines.append(line)
    return lines


def _extensions(lines: Sequence[str]) -> dict[str, list[_Line]]:
    """The lines of each extension, with their priorities (`n` counted as Asterisk does)."""
    extensions: dict[str, list[_Line]] = {}
    current: list[_Line] | None = None
    for line in lines:
        if match := _EXTEN.match(line):
            exten, priority, label, body = match.groups()
            current = extensions.setdefault(exten.strip(), [])
            number = int(priority)
        elif (match := _SAME.match(line)) and current is not None:
            priority, label, body = match.groups()
            number = current[-1].priority + 1 if priority == "n" else int(priority)
        else:
            raise DialplanParseError(f"[from-trunk]: cannot read {line!r}")
        app = _APP.match(body.strip())
        if app is None:
            raise DialplanParseError(f"[from-trunk]: not an application call: {line!r}")
        current.append(_Line(number, label, app.group(1), app.group(2), line))
    return extensions


def _unexpected(exten: str, line: _Line | None, wanted: str) -> DialplanParseError:
    got = "the end of the extension" if line is None else repr(line.text)
    return DialplanParseError(f"[from-trunk] {exten}: expected {wanted}, got {got}")


def _group(exten: str, lines: list[_Line]) -> RenderedGroup:
    """Reads one business number's extension: NoOp, the steps, the no-answer line, Hangup; nothing else."""
    queue = list(lines)

    def take(wanted: str, app: str, label: str | None = None) -> _Line:
        line = queue.pop(0) if queue else None
        if line is None or line.app != app or (label is not None and line.label != label):
            raise _unexpected(exten, line, wanted)
        return line

    noop = take("NoOp(<label>) at priority 1", "NoOp")
    if noop.priority != 1:
        raise _unexpected(exten, noop, "priority 1")
    steps: list[RenderedStep] = []
    while queue and queue[0].label == f"step{len(steps) + 1}":
        number = len(steps) + 1
        set_line = take(f"step{number}: Set(CB_DIAL=...)", "Set")
        value = set_line.data.removeprefix("CB_DIAL=")
        members = tuple(_CONTACTS.findall(value))
        if (
            not set_line.data.startswith("CB_DIAL=")
            or not members
            or _CONTACTS.sub("", value) != "&" * (len(members) - 1)
        ):
            raise _unexpected(exten, set_line, "Set(CB_DIAL=${PJSIP_DIAL_CONTACTS(ext)}&...)")
        skip = take("the GotoIf that skips a step with no phone registered", "GotoIf")
        skip_to = _SKIP.match(skip.data)
        if skip_to is None:
            raise _unexpected(exten, skip, "GotoIf($[${LEN(${STRREPLACE(CB_DIAL,&,)})} = 0]?<label>)")
        dial = take("Dial(${CB_DIAL},<seconds>)", "Dial")
        seconds = _STEP_DIAL.match(dial.data)
        if seconds is None:
            raise _unexpected(exten, dial, "Dial(${CB_DIAL},<seconds>)")
        answered = take("GotoIf to done when answered", "GotoIf")
        if answered.data != _ANSWERED:
            raise _unexpected(exten, answered, f"GotoIf({_ANSWERED})")
        following = queue[0].label if queue else None
        if skip_to.group(1) != following:
            raise _unexpected(exten, skip, f"a skip to the next line's label ({following})")
        steps.append(RenderedStep(members, int(seconds.group(1)), set_line.priority))
    if not steps:
        raise _unexpected(exten, queue[0] if queue else None, "step1: Set(CB_DIAL=...)")
    line = queue.pop(0) if queue else None
    if line is None or line.label != "noanswer":
        raise _unexpected(exten, line, "the (noanswer) line")
    if line.app == "VoiceMail" and (mailbox := _VOICEMAIL.match(line.data)):
        no_answer = NoAnswer(VOICEMAIL, mailbox.group(1))
    elif line.app == "Dial" and (forward := _FORWARD.match(line.data)):
        no_answer = NoAnswer(FORWARD, forward.group(1), forward.group(2), int(forward.group(3)))
    elif line.app == "NoOp":
        no_answer = NoAnswer(HANGUP)
    else:
        raise _unexpected(exten, line, "VoiceMail(<ext>@default,<greeting>), Dial(PJSIP/<number>@<trunk>,<s>) or NoOp")
    unanswered = None if no_answer.kind == VOICEMAIL else _unanswered_end(exten, no_answer, take)
    done = take("(done),Hangup()", "Hangup", "done")
    if done.data or queue:
        raise _unexpected(exten, queue[0] if queue else done, "nothing after (done),Hangup()")
    return RenderedGroup(exten, noop.data, tuple(steps), no_answer, line.priority, done.priority, (), unanswered)


def _unanswered_end(exten: str, no_answer: NoAnswer, take: Callable[..., _Line]) -> int:
    """After a hang-up or forward no-answer action: (a forward answered: GotoIf to done), the GotoIf to busy, then
    Hangup(19) and (busy) Hangup(17). Returns the priority of the GotoIf to busy."""
    if no_answer.kind == FORWARD:
        answered = take("GotoIf to done when the forward is answered", "GotoIf")
        if answered.data != _ANSWERED:
            raise _unexpected(exten, answered, f"GotoIf({_ANSWERED})")
    busy = take("GotoIf to busy", "GotoIf")
    if busy.data != _BUSY:
        raise _unexpected(exten, busy, f"GotoIf({_BUSY})")
    no_answer_hangup = take(f"Hangup({CAUSE_NO_ANSWER})", "Hangup")
    if no_answer_hangup.data != str(CAUSE_NO_ANSWER):
        raise _unexpected(exten, no_answer_hangup, f"Hangup({CAUSE_NO_ANSWER})")
    busy_hangup = take(f"(busy),Hangup({CAUSE_BUSY})", "Hangup", "busy")
    if busy_hangup.data != str(CAUSE_BUSY):
        raise _unexpected(exten, busy_hangup, f"(busy),Hangup({CAUSE_BUSY})")
    return busy.priority


def parse_ring_groups(extensions_text: str) -> dict[str, RenderedGroup]:
    """The business numbers of the rendered `[from-trunk]` context, by extension (the DID as rendered)."""
    groups: dict[str, RenderedGroup] = {}
    aliases: dict[str, list[str]] = {}
    for exten, lines in _extensions(_context_lines(extensions_text, "from-trunk")).items():
        goto = _GOTO.match(lines[0].data) if len(lines) == 1 and lines[0].app == "Goto" else None
        if goto is not None:
            aliases.setdefault(goto.group(1), []).append(exten)
        else:
            groups[exten] = _group(exten, lines)
    for target, names in aliases.items():
        if target not in groups:
            raise DialplanParseError(f"[from-trunk] {names[0]}: Goto({target},1) but no extension {target}")
        groups[target] = _replace_aliases(groups[target], tuple(names))
    return groups


def _replace_aliases(group: RenderedGroup, aliases: tuple[str, ...]) -> RenderedGroup:
    return RenderedGroup(
        group.did,
        group.label,
        group.steps,
        group.no_answer,
        group.noanswer_priority,
        group.done_priority,
        aliases,
        group.busy_check_priority,
    )


# ---- the scenario script ----------------------------------------------------------------------------------------


def contact(extension: str) -> str:
    """The registered contact `PJSIP_DIAL_CONTACTS(<ext>)` gives (the recordings' desks: 100 at port 5101, ...)."""
    port = 5001 + int(extension) if extension.isdigit() and int(extension) < 60000 else 5060
    return f"PJSIP/{extension}/sip:{extension}@{LOCAL_IP}:{port}"


def _at(s: CallScript, ch: Chan, priority: int, application: str, data: str) -> None:
    """The dialplan runs `application` at `priority` of the caller's extension (a Goto's jump included)."""
    ch.priority = priority - 1
    s.exten(ch, application, data)


def _dial(
    s: CallScript, ch: Chan, priority: int, targets: Sequence[tuple[str, str | None]], seconds: int
) -> list[Chan]:
    """`Dial(<dial strings>,<seconds>)` at `priority`; each target is (dial string after `PJSIP/`, desk or None for
    a number through a trunk). Legs are created, then one DialBegin each (32; 21 for a trunk leg)."""
    ch.priority = priority - 1  # the Dial where the rendered dialplan has it (s.exten counts on from here)
    s.dial_app(ch, "&".join(f"PJSIP/{target}" for target, _ in targets) + f",{seconds}")
    s.wait(0.0004)
    legs: list[Chan] = []
    for target, desk in targets:
        if desk is not None:
            legs.append(s._dialled_leg(ch, f"PJSIP/{desk}", desk, f"Desk {desk}", "from-internal", target, desk))
        else:
            trunk = target.split("@", 1)[1]
            legs.append(s._dialled_leg(ch, f"PJSIP/{trunk}", UNKNOWN, UNKNOWN, "from-trunk", target, None))
    for leg, (target, _) in zip(legs, targets, strict=True):
        s.dial_begin(ch, leg, target)
        if len(targets) == 1:
            s.connected_line(ch, leg.cid_num, leg.cid_name)
    return legs


def _rings_out(s: CallScript, ch: Chan, legs: Sequence[Chan]) -> None:
    """Dial's timeout on a step that is not the call's end (18): DialEnd NOANSWER, the legs hang up (0)."""
    for leg in legs:
        s.dial_end(ch, leg, "NOANSWER")
    for leg in legs:
        s.hangup(leg, 0, source="")
        s.desk_state(leg.desk, "idle", queues=False)
    set_dialstatus(s, ch, "NOANSWER")


def _voicemail_answers(s: CallScript, ch: Chan, priority: int, mailbox: str, message_s: float) -> None:
    """VoiceMail answers the caller, who leaves a message and hangs up (07)."""
    data = f"{mailbox}@default,u"
    _at(s, ch, priority, "VoiceMail", data)
    s.newstate(ch, STATE_UP)
    s.wait(message_s)
    s.cdr_application(ch, "VoiceMail", data, "ANSWERED")
    s.rtp_qos(ch, message_s)
    s.hangup_request(ch)
    s.varset(ch, "VM_MESSAGEFILE", f"/var/spool/asterisk/voicemail/default/{mailbox}/INBOX/msg0000")
    s.chan_event(
        "MessageWaiting", ch, [("Mailbox", f"{mailbox}@default"), ("Waiting", "1"), ("New", "1"), ("Old", "0")]
    )
    s.device_state(f"MWI:{mailbox}@default", "INUSE")
    s.varset(ch, "VMSTATUS", "SUCCESS")
    s.soft_hangup_request(ch, 16)
    s.hangup(ch, 0)
    s.device_state("PJSIP/trunk", "NOT_INUSE")


def script_ring_steps(
    s: CallScript,
    caller: str,
    caller_name: str,
    did: str,
    *,
    group: RenderedGroup,
    name: str,
    registered: bool = True,
    step_event: tuple[int, str, str | None] | None = None,
    forward: str | None = None,
    answer_after: float = 3.0,
    talk: float = 3.0,
    hang_up_after: float = 4.0,
    message_s: float = 12.0,
) -> ScriptMeta:
    """A call to `did` (the group's number, or one of its `+` aliases) through the rendered extension `group`.

    `registered`: every member has a contact (else every step is skipped). `step_event` (step index, `answers` or
    `caller_hangs_up`, the member who answers) ends the call in that step; the earlier steps ring out. Without it
    every step rings out and the no-answer action runs; for a forward, `forward` says what the mobile's leg does:
    `answers`, `caller_hangs_up` (while it rings) or None (it rings out)."""
    ch = s.inbound(caller, caller_name, did)
    if did != group.did:  # `exten => +<did>,1,Goto(<did>,1)`
        s.exten(ch, "Goto", f"{group.did},1")
        s.goto(ch, "from-trunk", group.did)
    s.exten(ch, "NoOp", group.label)
    dialled = 0.0
    for index, step in enumerate(group.steps):
        after = f"step{index + 2}" if index + 1 < len(group.steps) else "noanswer"
        contacts = "&".join(contact(m) if registered else "" for m in step.members)
        _at(s, ch, step.priority, "Set", f"CB_DIAL={contacts}")
        s.varset(ch, "CB_DIAL", contacts)
        s.exten(ch, "GotoIf", f"{0 if registered else 1}?{after}")
        if not registered:
            continue
        targets = [(contact(m).removeprefix("PJSIP/"), m) for m in step.members]
        legs = _dial(s, ch, step.priority + 2, targets, step.ring_seconds)
        start = ring_legs(s, ch, legs)
        if step_event is not None and step_event[0] == index:
            _, what, member = step_event
            if what == _CALLER_HANGS_UP:
                s.wait(min(hang_up_after, step.ring_seconds / 2) - (s.t - start))
                caller_cancels(s, ch, legs)
                return ScriptMeta(name, caller, did, "abandoned", None, ch.linkedid)
            winner = next(leg for leg in legs if leg.desk == member)
            others = [leg for leg in legs if leg is not winner]
            after_s = min(answer_after, step.ring_seconds / 2)
            bridge = answer_in_time(s, ch, winner, others, ring_start=start, answer_after=after_s, talk=talk)
            caller_hangs_up_bridged(s, ch, winner, bridge, talk=talk, dialed=dialled + after_s + talk, race=index % 2)
            return ScriptMeta(name, caller, did, "answered", f"PJSIP/{member}", ch.linkedid)
        s.wait(step.ring_seconds - (s.t - start))
        dialled += step.ring_seconds
        _rings_out(s, ch, legs)
        s.exten(ch, "GotoIf", "0?done")
    action = group.no_answer
    if action.kind == VOICEMAIL:
        assert action.target is not None
        _voicemail_answers(s, ch, group.noanswer_priority, action.target, message_s)
        return ScriptMeta(name, caller, did, "voicemail", None, ch.linkedid)
    if action.kind == HANGUP:
        _at(s, ch, group.noanswer_priority, "NoOp", "nobody answered")
        _hangup_unanswered(s, ch, group)
        s.hangup(ch, CAUSE_NO_ANSWER, source="dialplan/builtin")
        s.device_state("PJSIP/trunk", "NOT_INUSE")
        return ScriptMeta(name, caller, did, "no_answer" if registered else "unavailable", None, ch.linkedid)
    assert action.target is not None and action.trunk is not None and action.ring_seconds is not None
    dial_string = f"{action.target}@{action.trunk}"
    (leg,) = _dial(s, ch, group.noanswer_priority, [(dial_string, None)], action.ring_seconds)
    start = ring_legs(s, ch, [leg])
    if forward == _ANSWERS:
        bridge = answer_in_time(s, ch, leg, [], ring_start=start, answer_after=answer_after, talk=talk)
        caller_hangs_up_bridged(s, ch, leg, bridge, talk=talk, dialed=dialled + answer_after + talk, race=0)
        return ScriptMeta(name, caller, did, "answered", f"PJSIP/{dial_string}", ch.linkedid)
    if forward == _CALLER_HANGS_UP:
        s.wait(min(hang_up_after, action.ring_seconds / 2) - (s.t - start))
        caller_cancels(s, ch, [leg])
        return ScriptMeta(name, caller, did, "abandoned", None, ch.linkedid)
    s.wait(action.ring_seconds - (s.t - start))
    s.dial_end(ch, leg, "NOANSWER")
    set_dialstatus(s, ch, "NOANSWER")
    s.exten(ch, "GotoIf", "0?done")
    _hangup_unanswered(s, ch, group)
    s.hangup(leg, 0, source="")
    s.hangup(ch, CAUSE_NO_ANSWER, source="dialplan/builtin")
    s.device_state("PJSIP/trunk", "NOT_INUSE")
    return ScriptMeta(name, caller, did, "no_answer", None, ch.linkedid)


def _hangup_unanswered(s: CallScript, ch: Chan, group: RenderedGroup) -> None:
    """Not busy (`GotoIf(0?busy)`), so `Hangup(19)`: the carrier hears 480, and the soft hangup it requests."""
    assert group.busy_check_priority is not None
    _at(s, ch, group.busy_check_priority, "GotoIf", "0?busy")
    s.exten(ch, "Hangup", str(CAUSE_NO_ANSWER))
    s.soft_hangup_request(ch, CAUSE_NO_ANSWER)


# ---- the paths ----------------------------------------------------------------------------------------------------


def _no_answer_variants(action: NoAnswer) -> list[tuple[str, str | None]]:
    """(name suffix, what the forward's leg does) per way the no-answer action can go."""
    if action.kind == FORWARD:
        return [("forward_mobile_answers", _ANSWERS), ("forward_mobile_no_answer", None)]
    return [(action.kind, None)]


def paths(did: str, group: RenderedGroup, factory: ScenarioFactory) -> list[DialplanPath]:
    """One scenario per path through the rendered extension of `did` (see the module docstring for the list)."""
    if did != group.did:
        raise ValueError(f"ring group {group.did} parsed, paths asked for {did}")
    runs: list[tuple[str, dict[str, object]]] = []
    for index, step in enumerate(group.steps):
        number = index + 1
        for member in step.members:
            runs.append((f"step{number}_answered_by_{member}", {"step_event": (index, _ANSWERS, member)}))
        runs.append((f"step{number}_caller_hangs_up", {"step_event": (index, _CALLER_HANGS_UP, None)}))
    for suffix, forward in _no_answer_variants(group.no_answer):
        runs.append((f"nobody_answers_{suffix}", {"forward": forward}))
    if group.no_answer.kind == FORWARD:
        runs.append(("nobody_answers_forward_caller_hangs_up", {"forward": _CALLER_HANGS_UP}))
    for suffix, forward in _no_answer_variants(group.no_answer):
        runs.append((f"none_registered_{suffix}", {"registered": False, "forward": forward}))
    first = group.steps[0].members[0]
    for alias in group.aliases:
        runs.append((f"via_{alias}_step1_answered_by_{first}", {"step_event": (0, _ANSWERS, first), "dialled": alias}))
    result: list[DialplanPath] = []
    for name, options in runs:
        dialled = str(options.pop("dialled", did))
        scenario = factory._run(
            script_ring_steps, None, CALLER, CALLER_NAME, dialled, group=group, name=name, **options
        )
        assert scenario.expected_outcome is not None
        result.append(DialplanPath(name, scenario, scenario.expected_outcome, scenario.expected_answered_by))
    return result
