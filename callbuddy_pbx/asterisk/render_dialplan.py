"""The dialplan: extensions.conf (includes), extensions_callbuddy.conf ([from-trunk], [from-internal],
[callbuddy-phones], [callbuddy-dial-<region>], [callbuddy-fallback]) and voicemail.conf. The shipped library
(dialplans/callbuddy-*.conf) holds the subroutines.

Calls out: [from-internal] has the emergency numbers as extensions of their own (always dialled, see
callbuddy-emergency); any other number runs callbuddy-caller (which phone calls, and its settings from
[callbuddy-phones]: caller ID, region, what it may dial, its limit) and then the numbering plan of its business's
region, [callbuddy-dial-<region>] (config/dialing.py), whose rules make the number E.164 and name its kind for
callbuddy-outbound to allow or refuse.

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
from pathlib import Path

from callbuddy_pbx.asterisk.callback import CALLBACK_CONTEXT
from callbuddy_pbx.asterisk.render_base import custom_include, quoted, voicemail_pin
from callbuddy_pbx.asterisk.render_pjsip import trunk_text  # the trunk as pjsip.conf has it: its contact's host
from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config.dialing import NumberingPlan, plan_for
from callbuddy_pbx.config.pbx import CALLBUDDY_ONLY_STRATEGIES, NoAnswer, Phone, RingGroup, Trunk

FALLBACK_CONTEXT = "callbuddy-fallback"  # where the service continues an unanswered `routing: callbuddy` call
CAUSE_NO_ANSWER = 19  # Q.850 no answer from user: Asterisk sends 480 Temporarily Unavailable
CAUSE_BUSY = 17  # Q.850 user busy: 486 Busy Here
CAUSE_UNALLOCATED = 1  # Q.850 unallocated number: 404 Not Found (a number no phone may dial)
NANP_DID = re.compile(r"1\d{10}")  # a North American (+1) number without +: carriers may send its last 10 digits


def render_extensions(library: list[str]) -> str:
    includes = "".join(f"#include {name}\n" for name in library)
    custom = "\n".join(custom_include("extensions_custom.conf", dialplan=True))
    return f"""
[general]
static=yes
writeprotect=yes

[globals]

{includes}#include extensions_callbuddy.conf
{custom}
"""


def render_dialplan(config: Config) -> str:
    pbx = config.pbx
    phones = {p.extension: p for p in pbx.phones}
    business_of = {number: b for b in config.businesses for number in b.numbers}
    out = ["", "[from-trunk]", "; Calls from carriers: each business number rings its group of phones."]
    groups = sorted(pbx.ring_groups, key=lambda g: g.number)
    for group in groups:
        out += _ring_group(group, business_of.get(group.number), phones, _first_trunk(pbx.trunks), config.ari.app)
    trunk = _first_trunk(pbx.trunks)
    out += _from_internal(config, trunk)
    if pbx.phones:
        out += _phone_settings(config)  # *97 reads it too, with or without a trunk
    if trunk and pbx.phones:
        out += _dial_plans(config, trunk)
        out += _call_back()
    routed = [group for group in groups if group.routing == "callbuddy"]
    if routed:
        out += _fallback_context(routed, business_of, phones, trunk)
    return "\n".join(out) + "\n"


def _first_trunk(trunks: Iterable[Trunk]) -> str:
    return next((t.name for t in trunks), "")


# ---- [from-internal]: what desk phones dial (config/dialing.py has the numbering plans) ---------------------------


def _from_internal(config: Config, trunk: str) -> list[str]:
    """The phones' extensions, *97, the emergency numbers, and every other number through the calling phone's
    numbering plan. Emergency numbers are extensions of their own here, so no rule of a plan, a phone or the
    concurrency limit stands in their way."""
    phones = sorted(config.pbx.phones, key=lambda p: p.extension)
    out = ["", "[from-internal]", "; Desk phones: extensions, voicemail, emergency numbers, and calls out."]
    for phone in phones:
        mailbox = int(phone.voicemail)
        out.append(f"exten => {phone.extension},1,Gosub(callbuddy-desk,s,1({phone.extension},{mailbox},20))")
        out.append(" same => n,Hangup()")
    if any(p.voicemail for p in phones):
        out += _voicemail_main()
    if not (trunk and phones):
        return out
    out.append("; Emergency: any phone, no prefix, never refused nor limited (see [callbuddy-emergency]).")
    first_trunk = config.pbx.trunks[0]
    host = _trunk_contact_host(first_trunk, config.pbx.templates_dir)  # read once, for every emergency number
    for number in emergency_numbers(config):
        direct, through_aor = _emergency_targets(first_trunk.name, host, number)
        out.append(f"exten => {number},1,Gosub(callbuddy-emergency,s,1({number},{direct},{through_aor}))")
        out.append(" same => n,Hangup()")
    return [*out, *_by_numbering_plan()]


def _voicemail_main() -> list[str]:
    """*97 for a phone with a mailbox; any other phone hears the number does not exist (cause 1, 404)."""
    return [
        "exten => *97,1,Gosub(callbuddy-caller,s,1)",
        ' same => n,GotoIf($["${CB_MAILBOX}" = "1"]?mailbox)',
        " same => n,NoOp(CallBuddy: phone ${CB_PHONE} has no mailbox)",
        f" same => n,Hangup({CAUSE_UNALLOCATED})",
        " same => n(mailbox),VoiceMailMain(${CB_PHONE}@default)",
        " same => n,Hangup()",
    ]


def _by_numbering_plan() -> list[str]:
    """Every other number: the calling phone's settings, then its business's plan, [callbuddy-dial-<region>]."""
    plan = "callbuddy-dial-${CB_REGION}"
    return [
        "; Any other number: the calling phone's settings ([callbuddy-phones]), then its business's numbering plan.",
        "exten => _[0-9+].,1,Gosub(callbuddy-caller,s,1)",
        f" same => n,GotoIf(${{DIALPLAN_EXISTS({plan},${{EXTEN}},1)}}?{plan},${{EXTEN}},1)",
        " same => n,NoOp(CallBuddy: ${EXTEN} is no number phone ${CB_PHONE} can dial)",
        f" same => n,Hangup({CAUSE_UNALLOCATED})",
    ]


def emergency_numbers(config: Config) -> list[str]:
    """The emergency numbers of the plans of the businesses that have phones, in plan order."""
    numbers: dict[str, None] = {}
    for plan in _plans(config).values():
        numbers.update(dict.fromkeys(plan.emergency))
    return list(numbers)


def _plans(config: Config) -> dict[str, NumberingPlan]:
    """Region (lower case, as in context names) -> plan, for the regions of businesses that have phones."""
    used = {phone.business for phone in config.pbx.phones}
    regions = sorted({b.default_region for b in config.businesses if b.name in used})
    return {region.lower(): plan for region in regions if (plan := plan_for(region)) is not None}


def _emergency_targets(trunk: str, host: str, number: str) -> tuple[str, str]:
    """(the trunk's own SIP address with `number`, the same through the trunk's AOR) as Dial strings.

    `PJSIP/<trunk>/sip:<number>@<host>` sends the INVITE to that URI with the endpoint's settings (auth, outbound
    proxy) and looks no contact up, so it does not depend on qualify: a contact that OPTIONS marks Unavailable is
    left out when Asterisk picks the AOR's contacts (`PJSIP/<number>@<trunk>`), which then fails with CHANUNAVAIL.
    A template without a `contact = sip:` line (`host` "") only gets the AOR form."""
    through_aor = f"PJSIP/{number}@{trunk}"
    return (f"PJSIP/{trunk}/sip:{number}@{host}" if host else through_aor), through_aor


_CONTACT = re.compile(r"^contact\s*=\s*sips?:(?:[^@\s;]*@)?([^\s;]+)", re.MULTILINE)


def _trunk_contact_host(trunk: Trunk, templates_dir: Path) -> str:
    """host[:port] of the first `contact = sip:...` of the trunk's rendered template ("" when it has none)."""
    found = _CONTACT.search(trunk_text(trunk, templates_dir))
    return found.group(1) if found else ""


def _phone_settings(config: Config) -> list[str]:
    """[callbuddy-phones]: per phone, what callbuddy-caller sets before any call out (read by the library)."""
    businesses = {business.name: business for business in config.businesses}
    out = [
        "",
        "[callbuddy-phones]",
        "; Each phone's settings for calls out: caller ID (its business's first number, E.164), numbering plan,",
        "; international and premium-rate numbers allowed (1) or not (0), calls out at once, mailbox, location.",
    ]
    for phone in sorted(config.pbx.phones, key=lambda p: p.extension):
        business = businesses.get(phone.business)
        if business is None:
            continue
        values = phone_settings(phone, business)
        first, *rest = [f"Set({name}={value})" for name, value in values.items()]
        out += [f"exten => {phone.extension},1,{first}", *(f" same => n,{line}" for line in rest)]
        out.append(" same => n,Return()")
    return out


def phone_settings(phone: Phone, business: Business) -> dict[str, str]:
    """The channel variables of a phone's calls out (a phone's own `outbound` wins over its business's)."""
    international = phone.outbound.international
    premium = phone.outbound.premium
    return {
        "CB_CALLERID": business.numbers[0] if business.numbers else "",
        "CB_REGION": business.default_region.lower(),
        "CB_INTERNATIONAL": str(int(business.allow_international if international is None else international)),
        "CB_PREMIUM": str(int(business.allow_premium if premium is None else premium)),
        "CB_MAX_OUT": str(phone.max_outbound_calls),
        "CB_MAILBOX": str(int(phone.voicemail)),
        "CB_LOCATION": phone.location or "not given",
    }


def _dial_plans(config: Config, trunk: str) -> list[str]:
    """[callbuddy-dial-<region>] per numbering plan in use: each rule makes the number E.164 and names its kind;
    callbuddy-outbound decides whether the phone may dial it."""
    out: list[str] = []
    for region, plan in _plans(config).items():
        out += ["", f"[callbuddy-dial-{region}]", f"; {plan.name} numbering plan (region {region.upper()})."]
        if plan.note:
            out.append(f"; Not covered: {plan.note}.")
        for rule in plan.rules:
            number = rule.prefix + ("${EXTEN}" if rule.strip == 0 else f"${{EXTEN:{rule.strip}}}")
            out.append(f"exten => {rule.pattern},1,Gosub(callbuddy-outbound,s,1({number},{rule.kind},{trunk}))")
            out.append(" same => n,Hangup()")
    return out


def _call_back() -> list[str]:
    """[callbuddy-callback]: where a call back the service originated goes once the desk answered (AMI Originate
    with the caller's E.164 number as extension, asterisk/callback.py). Only `+` and digits match. The desk's own
    caller ID comes back (the Originate showed "Call back <number>" on its screen), then [from-internal] takes the
    number as if the desk had dialled it: its settings, its business's numbering plan, caller ID, limits, trunk."""
    return [
        "",
        f"[{CALLBACK_CONTEXT}]",
        "; Call backs from the dashboard: the desk answered; now it calls the caller like any call it dials.",
        "exten => _+X.,1,NoOp(CallBuddy: call back from phone ${CHANNEL(endpoint)})",
        " same => n,Set(CALLERID(all)=${PJSIP_ENDPOINT(${CHANNEL(endpoint)},callerid)})",
        " same => n,Goto(from-internal,${EXTEN},1)",
    ]


def _contacts(extensions: Iterable[str]) -> str:
    # Only the phones registered at this moment: an unregistered one gives an empty item, which Dial skips.
    return "&".join(f"${{PJSIP_DIAL_CONTACTS({ext})}}" for ext in extensions)


# The mailbox greeting: "busy" (b) when the last Dial found the phones busy, else "unavailable" (u).
_GREETING = '${IF($["${DIALSTATUS}" = "BUSY"]?b:u)}'
BUSY_LABEL = "busy"  # the fallback priority where the service continues a caller whose phones were all busy


def _voicemail(extension: str, greeting: str = _GREETING) -> str:
    return f"VoiceMail({extension}@default,{greeting})"


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
        "; and the number's extension runs its ring group's no-answer action (voicemail: with label=busy instead of",
        "; priority=1 when every phone was busy, for the busy greeting). A call the service never had",
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
        if app.startswith("VoiceMail("):  # no Dial ran here: the service says busy by continuing at this label
            out.append(f" same => n({BUSY_LABEL}),{_voicemail(group.no_answer.extension, 'b')}")
            out.append(" same => n,Hangup()")
    return out


# ---- voicemail --------------------------------------------------------------------------------------------------


def render_voicemail(config: Config) -> str:
    lines = ["", "[general]", "format = wav49|wav", "attach = no", "", "[default]"]
    for phone in sorted(config.pbx.phones, key=lambda p: p.extension):
        if phone.voicemail:
            lines.append(f"{phone.extension} => {voicemail_pin(config, phone)},{quoted(phone.name)}")
    lines += ["", *custom_include("voicemail_custom.conf"), ""]
    return "\n".join(lines)
