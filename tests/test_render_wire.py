"""What the rendered files put on the wire (issue 13): a least-privilege AMI user, unanswered calls ending with the
cause a carrier expects (480 = cause 19, busy 486 = cause 17, never the bare Hangup() that sends 603 Decline), and
every business number answering in each form carriers deliver it (11 digits, +E.164, and 10 digits for NANP).

Asserted on the rendered text of the golden configs, each also with every number `routing: callbuddy` (which adds
[callbuddy-fallback]); the dialplan is run by the tiny interpreter of test_render_routing.py."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.render import FALLBACK_CONTEXT, render_all
from callbuddy_pbx.config import Config, load_config
from callbuddy_pbx.service.devices_seed import DEVICE_ACTIONS
from callbuddy_pbx.service.pbx_status import CONTACTS_ACTION, ENDPOINTS_ACTION, REGISTRATIONS_ACTION
from tests.test_render_routing import Channel, context, extension, run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
CASES = ["salon", "clinic", "installer"]

# Every AMI action the service sends, with the classes Asterisk 22 registers it with: the AMI user may send it when
# its `write` has any one of them (manager.c); () = no class needed.
SERVICE_ACTIONS: dict[str, tuple[str, ...]] = {
    "Login": (),
    "Logoff": (),
    "Ping": (),
    "CoreShowChannels": ("system", "reporting"),  # app.py: reconcile after a reconnect
    "DeviceStateList": ("call", "reporting"),  # devices_seed.py DEVICE_ACTIONS
    REGISTRATIONS_ACTION: ("system", "reporting"),  # pbx_status.py (`check`): trunk registrations
}
# Registered by res_pjsip with `system` alone: refused to the rendered user, and the service does without them.
SYSTEM_ONLY_ACTIONS = {ENDPOINTS_ACTION: ("system",), CONTACTS_ACTION: ("system",)}
# A call back (asterisk/callbacks.py): Originate to [callbuddy-callback], which only the rendered dialplan has; the
# hand-written asterisk_conf/manager.conf leaves it out (the dashboard then says call back is not available).
CALL_BACK_ACTIONS = {"Originate": ("originate",)}
# Never to the service's user: system (GetConfig with every password, Originate of System), and the rest it never uses.
FORBIDDEN_WRITE = {"system", "config", "command", "all", "user"}


def _config(case: str, *, routed: bool) -> Config:
    config = load_config(GOLDEN / case / "callbuddy.yaml")
    if not routed:
        return config
    groups = tuple(replace(group, routing="callbuddy") for group in config.pbx.ring_groups)
    return replace(config, pbx=replace(config.pbx, ring_groups=groups))


CONFIGS = [(case, routed) for case in CASES for routed in (False, True)]
IDS = [f"{case}{'-routed' if routed else ''}" for case, routed in CONFIGS]


@pytest.fixture(params=CONFIGS, ids=IDS)
def config(request: pytest.FixtureRequest) -> Config:
    case, routed = request.param
    return _config(case, routed=routed)


def _classes(text: str, key: str) -> set[str]:
    (value,) = re.findall(rf"^{key}\s*=\s*(.+)$", text, flags=re.MULTILINE)
    return {item.strip() for item in value.split(";")[0].split(",")}


# -- AMI: least privilege ------------------------------------------------------------------------------------------


def _manager_texts() -> list[tuple[str, str]]:
    rendered = [(case, render_all(_config(case, routed=False))["manager.conf"]) for case in CASES]
    return [*rendered, ("asterisk_conf", (ROOT / "asterisk_conf" / "manager.conf").read_text())]


@pytest.mark.parametrize(("name", "text"), _manager_texts(), ids=[name for name, _ in _manager_texts()])
def test_ami_write_classes_have_no_system_and_originate_only_where_rendered(name: str, text: str) -> None:
    write = _classes(text, "write")
    assert not write & FORBIDDEN_WRITE, f"{name}: write = {sorted(write)}"
    for action, classes in SERVICE_ACTIONS.items():
        assert not classes or write & set(classes), f"{name}: {action} needs one of {classes}"
    for action, classes in CALL_BACK_ACTIONS.items():
        assert bool(write & set(classes)) == (name != "asterisk_conf"), f"{name}: {action} and {sorted(write)}"
    for action, classes in SYSTEM_ONLY_ACTIONS.items():
        assert not write & set(classes), f"{name}: {action} would be allowed"
    # Events still come: call (channels, DeviceStateChange), system (ContactStatus, FullyBooted).
    assert {"call", "system"} <= _classes(text, "read"), name


def test_the_action_table_lists_every_action_the_service_sends() -> None:
    sent = set(DEVICE_ACTIONS) | {ENDPOINTS_ACTION, CONTACTS_ACTION, REGISTRATIONS_ACTION, "CoreShowChannels"}
    assert sent <= set(SERVICE_ACTIONS) | set(SYSTEM_ONLY_ACTIONS)
    found = set()
    for path in (ROOT / "callbuddy_pbx").rglob("*.py"):
        if "sim" in path.relative_to(ROOT / "callbuddy_pbx").parts:
            continue  # the simulated PBX answers actions, it does not send them
        found |= set(re.findall(r"""(?:list_action|_request)\(\s*"(\w+)\"""", path.read_text()))
    assert found <= set(SERVICE_ACTIONS) | set(SYSTEM_ONLY_ACTIONS), found - set(SERVICE_ACTIONS)
    call_backs = (ROOT / "callbuddy_pbx" / "asterisk" / "callbacks.py").read_text()
    assert set(re.findall(r'\.action\(\s*"(\w+)"', call_backs)) == set(CALL_BACK_ACTIONS)


# -- unanswered calls: 480 (cause 19), busy: 486 (cause 17) --------------------------------------------------------


def _ring_group_extensions(text: str, ctx: str) -> list[str]:
    lines = context(text, ctx)
    return [
        match.group(1)
        for line in lines
        if (match := re.match(r"^exten => ([^,]+),1,(\w+)\(", line)) and match.group(2) == "NoOp"
    ]


def _no_answer_kind(config: Config, did: str) -> str:
    (group,) = [g for g in config.pbx.ring_groups if g.number.lstrip("+") == did]
    return group.no_answer.action


def test_every_unanswered_inbound_call_ends_with_cause_19_or_busy_17(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    contexts = ["from-trunk"] + ([FALLBACK_CONTEXT] if f"[{FALLBACK_CONTEXT}]" in text else [])
    checked = 0
    for ctx in contexts:
        dids = _ring_group_extensions(text, ctx)
        assert dids, ctx
        for did in dids:
            lines = extension(text, ctx, did)
            kind = _no_answer_kind(config, did)
            registered = {m: f"PJSIP/{m}/sip:{m}@127.0.0.1:5060" for p in config.pbx.phones for m in [p.extension]}
            for contacts, status, cause in (
                (registered, "NOANSWER", "19"),
                (registered, "BUSY", "17"),
                (registered, "CHANUNAVAIL", "19"),
                ({}, "NOANSWER", "19"),  # nobody registered: 480, not 603
            ):
                ran = run(lines, Channel("FAILED", contacts, status))
                label = f"{ctx} {did} {status} {'registered' if contacts else 'none registered'}"
                if kind == "voicemail":
                    assert ran[-2][0] == "VoiceMail" and ran[-1] == ("Hangup", ""), label  # answered by voicemail
                    # busy phones: the mailbox's busy greeting (b); else "unavailable" (u). No Dial ran in the
                    # fallback: the service picks the busy greeting there by continuing at label `busy`.
                    busy = status == "BUSY" and contacts and ctx != FALLBACK_CONTEXT
                    assert ran[-2][1].endswith(",b" if busy else ",u"), label
                elif ctx == FALLBACK_CONTEXT and kind == "hangup":
                    # The service rang the phones over ARI: no Dial here set DIALSTATUS, so 480 (cause 19).
                    assert ran[-1] == ("Hangup", "19"), label
                else:
                    assert ran[-1] == ("Hangup", cause), label
                checked += 1
            # A bare Hangup() only where the call was answered: label `done`, or right after voicemail took it.
            for before, line in zip(["", *lines], lines, strict=False):
                if "Hangup()" in line and "VoiceMail(" not in before:
                    assert line.strip() == "same => n(done),Hangup()", f"{ctx} {did}: {line}"
    assert checked


def test_an_answered_forward_ends_normally() -> None:
    text = render_all(_config("clinic", routed=False))["extensions_callbuddy.conf"]
    ran = run(extension(text, "from-trunk", "15550002001"), Channel("FAILED", {}, "ANSWER"))
    assert ran[-3:] == [("Dial", "PJSIP/+15559876543@trunk,30"), ("GotoIf", "1?done"), ("Hangup", "")]


def _desk(library: str, mailbox: int) -> list[str]:
    lines = extension(library, "callbuddy-desk", "s")
    values = {"ARG1": "100", "ARG2": str(mailbox), "ARG3": "20"}
    return [re.sub(r"\$\{(ARG\d)\}", lambda m: values[m.group(1)], line) for line in lines]


def _until_return(ran: list[tuple[str, str]]) -> list[tuple[str, str]]:
    end = next((i for i, (app, _) in enumerate(ran) if app == "Return"), len(ran) - 1)
    return ran[: end + 1]


@pytest.mark.parametrize("case", CASES)
def test_internal_calls_to_an_unanswered_desk_end_with_19_or_busy_17(case: str) -> None:
    files = render_all(_config(case, routed=False))
    assert "Gosub(callbuddy-desk,s,1(" in files["extensions_callbuddy.conf"]
    library = files["callbuddy-library.conf"]
    registered = {"100": "PJSIP/100/sip:100@127.0.0.1:5101"}
    for status, cause, greeting in (("NOANSWER", "19", "u"), ("BUSY", "17", "b"), ("CHANUNAVAIL", "19", "u")):
        ran = _until_return(run(_desk(library, 0), Channel("FAILED", registered, status)))
        assert ("Dial", "PJSIP/100/sip:100@127.0.0.1:5101,20") in ran, status
        assert ran[-1] == ("Hangup", cause), status
        with_mailbox = _until_return(run(_desk(library, 1), Channel("FAILED", registered, status)))
        assert with_mailbox[-2:] == [("VoiceMail", f"100@default,{greeting}"), ("Return", "")], status
    assert _until_return(run(_desk(library, 0), Channel("FAILED", registered, "ANSWER")))[-1] == ("Return", "")
    # Not registered: no Dial at all (an empty one would end the call at once), 480 or the mailbox.
    unregistered = _until_return(run(_desk(library, 0), Channel("FAILED", {}, "ANSWER")))
    assert not any(app == "Dial" for app, _ in unregistered) and unregistered[-1] == ("Hangup", "19")
    assert _until_return(run(_desk(library, 1), Channel("FAILED", {})))[-2] == ("VoiceMail", "100@default,u")


# -- DIDs in every form --------------------------------------------------------------------------------------------


def test_each_did_answers_in_11_digit_e164_and_10_digit_forms(config: Config) -> None:
    text = render_all(config)["extensions_callbuddy.conf"]
    trunk = context(text, "from-trunk")
    assert config.pbx.ring_groups
    for group in config.pbx.ring_groups:
        did = group.number.lstrip("+")
        assert re.fullmatch(r"1\d{10}", did), did  # the golden numbers are all NANP
        assert any(line.startswith(f"exten => {did},1,NoOp(") for line in trunk), did
        assert f"exten => +{did},1,Goto({did},1)" in trunk, did
        assert f"exten => {did[1:]},1,Goto({did},1)" in trunk, did
        # The 10-digit form reaches the same ring group.
        ten = run(extension(text, "from-trunk", did[1:]), Channel("FAILED", {}))
        assert ten == [("Goto", f"{did},1")]


def test_a_number_outside_nanp_gets_no_10_digit_form() -> None:
    config = _config("installer", routed=False)
    (first, *rest) = config.pbx.ring_groups
    uk = replace(first, number="+442071234567")
    business = replace(config.businesses[0], numbers=(*config.businesses[0].numbers, "+442071234567"))
    config = replace(
        config,
        businesses=(business, *config.businesses[1:]),
        pbx=replace(config.pbx, ring_groups=(uk, *rest)),
    )
    trunk = context(render_all(config)["extensions_callbuddy.conf"], "from-trunk")
    assert "exten => +442071234567,1,Goto(442071234567,1)" in trunk
    assert not any(line.startswith("exten => 42071234567,") for line in trunk)
