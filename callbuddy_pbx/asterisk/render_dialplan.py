"""The dialplan: extensions.conf (includes), extensions_callbuddy.conf ([from-trunk], [from-internal],
[callbuddy-fallback]) and voicemail.conf. The shipped library (dialplans/callbuddy-*.conf) holds the subroutines.

Numbers with `routing: callbuddy` enter the service's Stasis application: `Stasis(<ari.app>,inbound,<DID without +>)`.
Fail open: whenever Stasis() returns with the caller still there and still in this extension, the next priorities
are the same ring steps and no-answer action as `routing: dialplan`, so the phones ring whether or not the service
is up. That is the case when Stasis() fails (STASISSTATUS=FAILED: no WebSocket connected for the app, or the app is
only left over and not active, traces 32 and 33) and when the service hands a call back with
`POST /channels/{id}/continue` and no target (STASISSTATUS=SUCCESS: routing/router.py relies on it). A call the
service ends is hung up (Asterisk runs no further priority), and a call it sends on is elsewhere.
The fallback contract: when nobody answered, the service continues the caller with
`POST /channels/{id}/continue?context=callbuddy-fallback&extension=<DID without +>&priority=1`; that extension of
`[callbuddy-fallback]` runs the ring group's no-answer action (voicemail, forward through the trunk, or hang up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from callbuddy_pbx.asterisk.render_base import quoted, voicemail_pin
from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config.pbx import CALLBUDDY_ONLY_STRATEGIES, NoAnswer, Phone, RingGroup, Trunk

FALLBACK_CONTEXT = "callbuddy-fallback"  # where the service continues an unanswered `routing: callbuddy` call
CAUSE_NO_ANSWER = 19  # Q.850 no answer from user: Asterisk sends 480 Temporarily Unavailable
CAUSE_BUSY = 17  # Q.850 user busy: 486 Busy Here
NANP_DID = re.compile(r"1\d{10}")  # a North American (+1) number without +: carriers may send its last 10 digits


def render_extensions(library: list[str]) -> str:
    includes = "".join(f"#include {name}\n" for name in library)
    return f"""
[general]
static=yes
writeprotect=yes

[globals]

{includes}#include extensions_callbuddy.conf
#tryinclude extensions_custom.conf
"""


def render_dialplan(config: Config) -> str:
    pbx = config.pbx
    phones = {p.extension: p for p in pbx.phones}
    business_of = {number: b for b in config.businesses for number in b.numbers}
    out = ["", "[from-trunk]", "; Calls from carriers: each business number rings its group of phones."]
    groups = sorted(pbx.ring_groups, key=lambda g: g.number)
    for group in groups:
        out += _ring_group(group, business_of.get(group.number), phones, _first_trunk(pbx.trunks), config.ari.app)
    out += ["", "[from-internal]", "; Desk phones: extensions, voicemail, and calls out through the trunk."]
    for phone in sorted(pbx.phones, key=lambda p: p.extension):
        mailbox = int(phone.voicemail)
        out.append(f"exten => {phone.extension},1,Gosub(callbuddy-desk,s,1({phone.extension},{mailbox},20))")
        out.append(" same => n,Hangup()")
    if any(p.voicemail for p in pbx.phones):
        out.append("exten => *97,1,VoiceMailMain(${CALLERID(num)}@default)")
    trunk = _first_trunk(pbx.trunks)
    if trunk:
        for pattern in ("_+X.", "_1NXXNXXXXXX"):
            out.append(f"exten => {pattern},1,Gosub(callbuddy-outbound,s,1(${{EXTEN}},{trunk}))")
            out.append(" same => n,Hangup()")
    routed = [group for group in groups if group.routing == "callbuddy"]
    if routed:
        out += _fallback_context(routed, business_of, phones, trunk)
    return "\n".join(out) + "\n"


def _first_trunk(trunks: Iterable[Trunk]) -> str:
    return next((t.name for t in trunks), "")


def _contacts(extensions: Iterable[str]) -> str:
    # Only the phones registered at this moment: an unregistered one gives an empty item, which Dial skips.
    return "&".join(f"${{PJSIP_DIAL_CONTACTS({ext})}}" for ext in extensions)


def _voicemail(extension: str) -> str:
    return f"VoiceMail({extension}@default,u)"


def _ring_group(
    group: RingGroup, business: Business | None, phones: dict[str, Phone], trunk: str, app: str
) -> list[str]:
    """One DID: ring the registered phones (all together, or one after the other), then the no-answer action.

    A step whose phones are all unregistered is skipped: Dial with an empty list would end the call at once.
    With `routing: callbuddy` the Stasis entry comes first and the steps are its fail-open path.
    """
    did = group.number.lstrip("+")
    via = " via callbuddy" if group.routing == "callbuddy" else ""
    label = f"{business.name if business else 'unknown business'}: {group.strategy}{via}"
    lines = [f"exten => {did},1,NoOp(CallBuddy {quoted(label)})"]
    if group.routing == "callbuddy":
        lines += _stasis_entry(group, did, app)
    if group.strategy in ("in_order", *CALLBUDDY_ONLY_STRATEGIES):
        steps = [[member] for member in group.members[: max(1, group.total_s // group.ring_s)]]
    else:
        steps = [list(group.members)]
    for index, members in enumerate(steps, start=1):
        after = f"step{index + 1}" if index < len(steps) else "noanswer"
        lines += [
            f" same => n(step{index}),Set(CB_DIAL={_contacts(members)})",
            f" same => n,GotoIf($[${{LEN(${{STRREPLACE(CB_DIAL,&,)}})}} = 0]?{after})",
            f" same => n,Dial(${{CB_DIAL}},{group.ring_s})",
            ' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)',
        ]
    app = _no_answer_app(group.no_answer, phones, trunk)
    lines.append(f" same => n(noanswer),{app or 'NoOp(nobody answered)'}")
    lines += _unanswered_end(app)
    lines.append(" same => n(done),Hangup()")
    # Carriers differ: some deliver the number with a leading +, some without, some (NANP) only its 10 digits.
    lines += [f"exten => {alias},1,Goto({did},1)" for alias in did_aliases(group.number)]
    return lines


def did_aliases(number: str) -> list[str]:
    """The other forms carriers deliver a business number in: with a leading +, and a NANP number (+1 and 10 digits)
    also as its 10-digit national number."""
    did = number.lstrip("+")
    aliases = [f"+{did}"]
    if NANP_DID.fullmatch(did):
        aliases.append(did[1:])
    return aliases


def _unanswered_end(app: str) -> list[str]:
    """After a no-answer action that leaves the caller unanswered: hang up with the cause the carrier should see,
    486 Busy Here (cause 17) when the last Dial found the phones busy, else 480 Temporarily Unavailable (cause 19).
    A bare Hangup() would send 603 Decline, which tells the carrier not to try elsewhere. Voicemail answered the
    caller: the call ends normally (done). A forward that was answered ends normally too."""
    if app.startswith("VoiceMail("):
        return []
    answered = [' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)'] if app else []
    return [
        *answered,
        ' same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?busy)',
        f" same => n,Hangup({CAUSE_NO_ANSWER})",
        f" same => n(busy),Hangup({CAUSE_BUSY})",
    ]


def _no_answer_app(action: NoAnswer, phones: dict[str, Phone], trunk: str) -> str:
    """The application of a no-answer action ("" for hang up)."""
    if action.action == "voicemail" and action.extension in phones:
        return _voicemail(action.extension)
    if action.action == "forward" and trunk:
        return f"Dial(PJSIP/{action.number}@{trunk},30)"
    return ""


def _stasis_entry(group: RingGroup, did: str, app: str) -> list[str]:
    """Hand the call to the service; whatever Stasis() returns, the next priority rings the group (fail open).

    FAILED: no app connected, or one left over and not active (traces 32, 33). SUCCESS with the caller still here:
    the service handed the call back (continue without a target). Deliberately no `GotoIf` on STASISSTATUS: a
    handed-back call must ring, not hang up. The NoOp shows which in AMI's Newexten events (VarSet is filtered out).
    """
    lines = [
        f" same => n,Stasis({app},inbound,{did})",
        " same => n,NoOp(STASISSTATUS=${STASISSTATUS})",
    ]
    if group.strategy in CALLBUDDY_ONLY_STRATEGIES:
        lines.append(f"; {group.strategy} has no dialplan equivalent: without the service it rings in_order")
    return lines


def _fallback_context(
    groups: Iterable[RingGroup], business_of: dict[str, Business], phones: dict[str, Phone], trunk: str
) -> list[str]:
    """Where the service continues a `routing: callbuddy` call nobody answered: the group's no-answer action."""
    out = [
        "",
        f"[{FALLBACK_CONTEXT}]",
        "; Calls to numbers with routing: callbuddy that nobody answered. The CallBuddy service continues them with",
        f";   POST /ari/channels/{{id}}/continue?context={FALLBACK_CONTEXT}&extension=<number without +>&priority=1",
        "; and the number's extension runs its ring group's no-answer action. A call the service never had",
        "; (Stasis() failed) does not come here: its extension in [from-trunk] rings the phones, then does the same.",
    ]
    for group in groups:
        did = group.number.lstrip("+")
        business = business_of.get(group.number)
        label = f"{business.name if business else 'unknown business'}: nobody answered"
        out.append(f"exten => {did},1,NoOp(CallBuddy {quoted(label)})")
        app = _no_answer_app(group.no_answer, phones, trunk)
        if app:
            out.append(f" same => n,{app}")
        out += _unanswered_end(app)
        out.append(" same => n(done),Hangup()")
    return out


# ---- voicemail --------------------------------------------------------------------------------------------------


def render_voicemail(config: Config) -> str:
    lines = ["", "[general]", "format = wav49|wav", "attach = no", "", "[default]"]
    for phone in sorted(config.pbx.phones, key=lambda p: p.extension):
        if phone.voicemail:
            lines.append(f"{phone.extension} => {voicemail_pin(config, phone)},{quoted(phone.name)}")
    lines += ["", "#tryinclude voicemail_custom.conf", ""]
    return "\n".join(lines)
