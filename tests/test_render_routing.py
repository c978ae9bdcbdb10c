"""`render` for `routing: callbuddy` numbers: the Stasis entry, its fail-open path (the same ring steps as
`routing: dialplan`, played here through a small dialplan interpreter and compared with what real Asterisk ran in
trace 32), the [callbuddy-fallback] context per no-answer action, http.conf and ari.conf from `ari:`, asterisklint."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from callbuddy_pbx.asterisk.ami_protocol import iter_stream
from callbuddy_pbx.asterisk.render import FALLBACK_CONTEXT, RenderError, render_all
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.config.asterisk import AriConfig
from tests.test_render import assert_asterisklint_passes
from tests.traces import TRACES_DIR

KEY = "routing-test-secret-key-0123456789abcdef"
TRACE_32 = TRACES_DIR / "32-stasis-app-not-connected-fail-open"

YAML = f"""\
asterisk: {{secret: ami-secret-for-tests}}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1013", "+1 555 000 1000", "+1 555 000 1014", "+1 555 000 1015"]
pbx:
  secret_key: {KEY}
  phones:
    - {{extension: "100", name: Desk 100, business: Glow Salon, person: Ana}}
    - {{extension: "101", name: Desk 101, business: Glow Salon, person: Ana}}
    - {{extension: "102", name: Desk 102, business: Glow Salon}}
  ring_groups:
    - number: "+1 555 000 1013"
      members: ["100", "101"]
      ring_seconds: 15
      routing: callbuddy
    - number: "+1 555 000 1000"
      members: ["100", "101"]
      ring_seconds: 15
    - number: "+1 555 000 1014"
      members: ["100", "101", "102"]
      strategy: last_active_first
      ring_seconds: 10
      total_seconds: 30
      routing: callbuddy
      no_answer: {{action: voicemail, extension: "100"}}
    - number: "+1 555 000 1015"
      members: ["102"]
      strategy: in_order
      routing: callbuddy
      no_answer: {{action: forward, number: "+1 555 987 6543"}}
  trunks:
    - name: trunk
      template: pjsip-trunk-ip-auth
      fields: {{CARRIER_SIP_HOST: sip.example.net}}
      dids: ["+1 555 000 1013"]
"""

STASIS_ENTRY = [
    "exten => 15550001013,1,NoOp(CallBuddy Glow Salon: ring_all via callbuddy)",
    " same => n,Stasis(callbuddy,inbound,15550001013)",
    " same => n,NoOp(STASISSTATUS=${STASISSTATUS})",
]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "site.yaml"
    path.write_text(YAML)
    return load_config(path)


def context(text: str, name: str) -> list[str]:
    """The lines of one context, comments included, up to the next context."""
    lines = text.splitlines()
    start = lines.index(f"[{name}]") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("[")), len(lines))
    return [line for line in lines[start:end] if line]


def extension(text: str, ctx: str, exten: str) -> list[str]:
    """The lines of one extension (from `exten => <exten>,1` to the next `exten =>`), comments included."""
    lines = context(text, ctx)
    start = lines.index(next(line for line in lines if line.startswith(f"exten => {exten},1,")))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("exten =>")), len(lines))
    return lines[start:end]


# -- a tiny dialplan interpreter: just what the rendered ring groups use -------------------------------------------

_LINE = re.compile(r"^(?:exten => [^,]+,1|\s*same => n)(?:\(([\w-]+)\))?,(\w+)\((.*)\)$")
_VARIABLE = re.compile(r"\$\{([^${}]*)\}")
_EXPRESSION = re.compile(r"\$\[([^$\[\]]*)\]")


@dataclass
class Channel:
    stasis_status: str  # what Stasis() sets: FAILED (no app connected) or SUCCESS
    contacts: dict[str, str]  # endpoint -> its registered contact as PJSIP_DIAL_CONTACTS gives it
    dial_status: str = "NOANSWER"


def _substitute(data: str, variables: dict[str, str], channel: Channel) -> str:
    def function(match: re.Match[str]) -> str:
        inner = match.group(1)
        name, _, args = inner.partition("(")
        args = args.removesuffix(")")
        if name == "PJSIP_DIAL_CONTACTS":
            return channel.contacts.get(args, "")
        if name == "LEN":
            return str(len(args))
        if name == "IF":  # the condition is already 1 or 0: expressions are read inside out
            condition, _, choices = args.partition("?")
            yes, _, no = choices.partition(":")
            return yes if condition.strip() not in ("", "0") else no
        if name == "STRREPLACE":
            var, find, replace = args.split(",")
            return variables.get(var, "").replace(find, replace)
        return variables.get(inner, "")

    def expression(match: re.Match[str]) -> str:
        left, _, right = match.group(1).partition(" = ")
        return "1" if left.strip().strip('"') == right.strip().strip('"') else "0"

    while True:
        done = _EXPRESSION.sub(expression, _VARIABLE.sub(function, data))
        if done == data:
            return done
        data = done


def run(lines: list[str], channel: Channel) -> list[tuple[str, str]]:
    """(application, data as Asterisk shows it in Newexten) of every priority the channel runs."""
    program = [match.groups() for line in lines if (match := _LINE.match(line))]
    labels = {label: index for index, (label, _, _) in enumerate(program) if label}
    variables: dict[str, str] = {}
    ran: list[tuple[str, str]] = []
    index = 0
    while index < len(program):
        _, app, raw = program[index]
        data = _substitute(raw, variables, channel)
        ran.append((app, data))
        index += 1
        if app == "Stasis":
            variables["STASISSTATUS"] = channel.stasis_status
        elif app == "Set":
            name, _, value = data.partition("=")
            variables[name] = value
        elif app == "Dial":
            variables["DIALSTATUS"] = channel.dial_status
        elif app == "GotoIf":
            condition, _, target = data.partition("?")
            if condition == "1":
                index = labels[target]
        elif app == "Hangup":
            break
    return ran


def recorded_contacts() -> dict[str, str]:
    """Desks 100 and 101 as registered in the recording PBX (actions/pjsipshowcontacts)."""
    events = iter_stream((TRACES_DIR / "actions" / "pjsipshowcontacts.raw").read_bytes())
    return {e["Endpoint"]: f"PJSIP/{e['Endpoint']}/{e['Uri']}" for e in events if e.get("Event") == "ContactList"}


def recorded_trace_32() -> list[tuple[str, str, str]]:
    """(priority, application, data) of the caller's dialplan steps in trace 32, up to its Dial."""
    steps = []
    for message in iter_stream((TRACE_32 / "ami.raw").read_bytes()):
        if message.get("Event") == "Newexten" and message.get("Channel", "").startswith("PJSIP/trunk-"):
            steps.append((message["Priority"], message["Application"], message["AppData"]))
            if message["Application"] == "Dial":
                break
    return steps


# -- the Stasis entry and its fail-open path -----------------------------------------------------------------------


def test_stasis_entry_with_its_args(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    lines = extension(text, "from-trunk", "15550001013")
    assert lines[:3] == STASIS_ENTRY
    assert lines[3].startswith(" same => n(step1),Set(CB_DIAL=")  # no GotoIf on STASISSTATUS: see below
    assert "exten => +15550001013,1,Goto(15550001013,1)" in context(text, "from-trunk")  # with a leading +


def test_the_app_name_comes_from_ari_app(config: Config) -> None:
    custom = replace(config, ari=AriConfig(app="salon-router", password="an-ari-password-1"))
    text = render_all(custom)["extensions_callbuddy.conf"]
    assert " same => n,Stasis(salon-router,inbound,15550001013)" in text


def test_fail_open_path_is_the_dialplan_ring_group(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    routed = extension(text, "from-trunk", "15550001013")
    plain = extension(text, "from-trunk", "15550001000")
    assert plain[0] == "exten => 15550001000,1,NoOp(CallBuddy Glow Salon: ring_all)"
    assert routed[3:] == plain[1:]  # after the Stasis entry: the very same steps, no-answer action and Hangup
    contacts = recorded_contacts()
    failed = run(routed, Channel("FAILED", contacts))
    assert failed[3:] == run(plain, Channel("FAILED", contacts))[1:]


def test_fail_open_runs_what_asterisk_ran_in_trace_32(config: Config) -> None:
    """The same priorities and data (as Newexten shows them) for Stasis and the NoOp, then the same Dial of the
    registered contacts of desks 100 and 101 for 15 s as the recorded
    `Dial(${PJSIP_DIAL_CONTACTS(100)}&${PJSIP_DIAL_CONTACTS(101)},15)`. (The recording PBX had a `GotoIf` on
    STASISSTATUS in between; the rendered dialplan rings on any return: see the hand-back test.)"""
    text = render_all(config)["extensions_callbuddy.conf"]
    ran = run(extension(text, "from-trunk", "15550001013"), Channel("FAILED", recorded_contacts()))
    recorded = recorded_trace_32()
    assert [(str(priority), *step) for priority, step in enumerate(ran[1:3], start=2)] == recorded[1:3]
    assert recorded[1:4] == [
        ("2", "Stasis", "callbuddy,inbound,15550001013"),
        ("3", "NoOp", "STASISSTATUS=FAILED"),
        ("4", "GotoIf", "0?done"),
    ]
    dial = next(step for step in ran if step[0] == "Dial")
    assert dial == recorded[-1][1:] == ("Dial", "PJSIP/100/sip:100@127.0.0.1:5101&PJSIP/101/sip:101@127.0.0.1:5102,15")


def test_a_call_the_service_hands_back_rings_as_well(config: Config) -> None:
    """Stasis() returning SUCCESS with the caller still in the extension: the router continued it without a target
    (routing/router.py hands calls back that way); it must ring, not hang up."""
    text = render_all(config)["extensions_callbuddy.conf"]
    lines = extension(text, "from-trunk", "15550001013")
    handed_back = run(lines, Channel("SUCCESS", recorded_contacts()))
    failed = run(lines, Channel("FAILED", recorded_contacts()))
    assert handed_back[2] == ("NoOp", "STASISSTATUS=SUCCESS")
    assert handed_back[3:] == failed[3:]
    assert ("Dial", "PJSIP/100/sip:100@127.0.0.1:5101&PJSIP/101/sip:101@127.0.0.1:5102,15") in handed_back


def test_fail_open_with_nobody_registered_goes_to_the_no_answer_action(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    ran = run(extension(text, "from-trunk", "15550001014"), Channel("FAILED", {}))
    assert not [step for step in ran if step[0] == "Dial"]
    assert ran[-2:] == [("VoiceMail", "100@default,u"), ("Hangup", "")]


def test_last_active_first_fails_open_in_order_and_says_so(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    lines = extension(text, "from-trunk", "15550001014")
    assert "; last_active_first has no dialplan equivalent: without the service it rings in_order" in lines
    ran = run(lines, Channel("FAILED", {**recorded_contacts(), "102": "PJSIP/102/sip:102@127.0.0.1:5103"}))
    dials = [data for app, data in ran if app == "Dial"]
    assert dials == [
        "PJSIP/100/sip:100@127.0.0.1:5101,10",
        "PJSIP/101/sip:101@127.0.0.1:5102,10",
        "PJSIP/102/sip:102@127.0.0.1:5103,10",
    ]  # one member after the other, total_seconds 30 / ring_seconds 10 steps


# -- [callbuddy-fallback] ------------------------------------------------------------------------------------------


def test_fallback_context_has_each_routed_number_with_its_no_answer_action(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    lines = context(text, FALLBACK_CONTEXT)
    contract = ";   POST /ari/channels/{id}/continue?context=callbuddy-fallback&extension=<number without +>&priority=1"
    assert contract in lines
    assert [line for line in lines if not line.startswith(";")] == [
        "exten => 15550001013,1,NoOp(CallBuddy Glow Salon: nobody answered)",
        ' same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?busy)',
        " same => n,Hangup(19)",
        " same => n(busy),Hangup(17)",
        " same => n(done),Hangup()",
        "exten => 15550001014,1,NoOp(CallBuddy Glow Salon: nobody answered)",
        ' same => n,VoiceMail(100@default,${IF($["${DIALSTATUS}" = "BUSY"]?b:u)})',
        " same => n(done),Hangup()",
        " same => n(busy),VoiceMail(100@default,b)",  # the service continues here when every phone was busy
        " same => n,Hangup()",
        "exten => 15550001015,1,NoOp(CallBuddy Glow Salon: nobody answered)",
        " same => n,Dial(PJSIP/+15559876543@trunk,30)",
        ' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)',
        ' same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?busy)',
        " same => n,Hangup(19)",
        " same => n(busy),Hangup(17)",
        " same => n(done),Hangup()",
    ]  # not 15550001000: that number is not routed by the service; unanswered: 480 (cause 19) or 486 (cause 17)


def test_fallback_runs_the_same_action_as_the_fail_open_path(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    # hang up and an unanswered forward: cause 19 (480 to the carrier); after voicemail answered: a normal Hangup()
    for did, cause in (("15550001013", "19"), ("15550001014", ""), ("15550001015", "19")):
        fail_open = run(extension(text, "from-trunk", did), Channel("FAILED", {}))
        fallback = run(extension(text, FALLBACK_CONTEXT, did), Channel("FAILED", {}))
        noanswer = max(index for index, step in enumerate(fail_open) if step == ("GotoIf", "1?noanswer")) + 1
        assert fallback[1:] == [step for step in fail_open[noanswer:] if step[0] != "NoOp"], did
        assert fallback[-1] == ("Hangup", cause), did


def test_no_fallback_context_without_routed_numbers(config: Config) -> None:
    groups = tuple(replace(group, routing="dialplan", strategy="in_order") for group in config.pbx.ring_groups)
    plain = replace(config, pbx=replace(config.pbx, ring_groups=groups))
    text = render_all(plain)["extensions_callbuddy.conf"]
    assert f"[{FALLBACK_CONTEXT}]" not in text
    assert "Stasis(" not in text


def test_rendered_routing_dialplan_passes_asterisklint(config: Config, tmp_path: Path) -> None:
    assert_asterisklint_passes(render_all(config), tmp_path)


# -- http.conf and ari.conf ----------------------------------------------------------------------------------------


def _with_ari(config: Config, **values: Any) -> Config:
    return replace(config, ari=replace(config.ari, **values))


def test_http_conf_binds_where_a_loopback_ari_url_points(config: Config) -> None:
    assert "bindaddr = 127.0.0.1\nbindport = 8088\n" in render_all(config)["http.conf"]
    http = render_all(_with_ari(config, url="http://localhost:8090/asterisk/ari"))["http.conf"]
    assert "bindaddr = 127.0.0.1\nbindport = 8090\nprefix = asterisk\n" in http
    http = render_all(_with_ari(config, url="http://[::1]:8091"))["http.conf"]
    assert "bindaddr = ::1\nbindport = 8091\n" in http


def test_http_conf_stays_on_loopback_when_ari_url_points_elsewhere(config: Config) -> None:
    http = render_all(_with_ari(config, url="http://192.168.1.5:8088"))["http.conf"]
    assert "bindaddr = 127.0.0.1\nbindport = 8088\n" in http
    assert "; ari.url is not plain http on this machine's loopback, so ARI stays on loopback here" in http
    assert "192.168.1.5" not in http


def test_ari_conf_has_the_user_and_password_of_ari(config: Config) -> None:
    ari = render_all(_with_ari(config, username="router", password="an-explicit-ari-pw"))["ari.conf"]
    assert "[router]\ntype = user\nread_only = no\npassword = an-explicit-ari-pw\n" in ari
    assert "[callbuddy]" not in ari


def test_ari_conf_without_any_password_is_a_render_error(config: Config) -> None:
    keyless = replace(config, pbx=replace(config.pbx, secret_key=""), ari=AriConfig())
    with pytest.raises(RenderError, match=re.escape("ari.conf needs a password: set pbx.secret_key")):
        render_all(keyless)
