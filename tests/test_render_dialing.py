"""What desk phones can dial (issue 13): emergency numbers always, with the business number as caller ID and straight
to the trunk's SIP address; national numbers as E.164 with the business number; international and premium-rate
numbers refused unless allowed; a limit of calls out per phone; 503 when the trunk cannot be reached; internal
calls to every registered contact, else voicemail or 480; *97 only for phones with a mailbox.

The rendered extensions_callbuddy.conf and the shipped library are run by `Pbx`, a small interpreter of the
applications and functions they use (Gosub/Return, GotoIf, Set, Dial, Hangup, DIALPLAN_EXISTS, GROUP_COUNT, ...),
with Asterisk's pattern matching (an exact extension first, then the most specific pattern)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.cli import main
from callbuddy_pbx.config import Config, ConfigError, load_config
from callbuddy_pbx.config.dialing import INTERNATIONAL, NATIONAL, PREMIUM, plan_for
from tests.test_render import assert_asterisklint_passes

GOLDEN = Path(__file__).resolve().parent / "golden"
KEY = "dialing-test-secret-key-0123456789abcdef"
SALON_URI = "PJSIP/trunk/sip:{number}@sip.example.net:5060"


# -- a small dialplan interpreter ----------------------------------------------------------------------------------


@dataclass
class Call:
    """One call placed by `endpoint` (its channel's PJSIP endpoint)."""

    endpoint: str
    contacts: dict[str, str] = field(default_factory=dict)  # extension -> what PJSIP_DIAL_CONTACTS gives
    status: Callable[[str], str] = lambda dial_string: "ANSWER"  # what each Dial ends with
    calls_out: dict[str, int] = field(default_factory=dict)  # phone -> its other calls already in callbuddy-out
    blind_transfer: str = ""  # BLINDTRANSFER: the channel of the phone that transferred this caller


@dataclass
class Ran:
    apps: list[tuple[str, str]]  # (application, data after substitution)
    dials: list[tuple[str, str]]  # (dial string, CALLERID(num) when it was dialled)
    cause: str | None  # Hangup's argument ("" for none); None: the dialplan ran out

    @property
    def dial_strings(self) -> list[str]:
        return [dial for dial, _ in self.dials]


_LINE = re.compile(r"^(?:exten\s*=>\s*([^,]+),1|same\s*=>\s*n)(?:\(([\w-]+)\))?,(\w+)\((.*)\)$")
_VARIABLE = re.compile(r"\$\{([^${}]*)\}")
_EXPRESSION = re.compile(r"\$\[([^$\[\]]*)\]")
_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}


def _pattern(pattern: str) -> re.Pattern[str]:
    parts = re.findall(r"\[[^\]]+\]|.", pattern[1:])
    return re.compile("".join(part if part.startswith("[") else _CLASSES.get(part, re.escape(part)) for part in parts))


def _specificity(pattern: str) -> tuple[int, ...]:
    """Asterisk's order of patterns: position by position, fewer possible characters first; `.` last."""
    sizes = {"X": 10, "Z": 9, "N": 8, ".": 99, "!": 100}
    parts = re.findall(r"\[[^\]]+\]|.", pattern[1:])
    return tuple(len(re.findall(r".-.|.", part[1:-1])) * 3 if part.startswith("[") else sizes.get(part, 1)
                 for part in parts)  # fmt: skip


class Pbx:
    def __init__(self, *texts: str) -> None:
        self.contexts: dict[str, dict[str, list[tuple[str | None, str, str]]]] = {}
        context: dict[str, list[tuple[str | None, str, str]]] = {}
        current: list[tuple[str | None, str, str]] = []
        for text in texts:
            for raw in text.splitlines():
                line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].strip()
                if line.startswith("["):
                    context = self.contexts.setdefault(line[1 : line.index("]")], {})
                elif match := _LINE.match(line):
                    exten, label, app, data = match.groups()
                    if exten is not None:
                        current = context.setdefault(exten.strip(), [])
                    current.append((label, app, data))

    def find(self, context: str, exten: str) -> str | None:
        """The extension of `context` Asterisk runs for `exten`: itself, else the most specific matching pattern."""
        extensions = self.contexts.get(context, {})
        if exten in extensions:
            return exten
        patterns = [name for name in extensions if name.startswith("_") and _pattern(name).fullmatch(exten)]
        return min(patterns, key=_specificity, default=None)

    def dial(self, exten: str, call: Call, context: str = "from-internal") -> Ran:
        return _Run(self, call).start(context, exten)


class _Run:
    def __init__(self, pbx: Pbx, call: Call) -> None:
        self.pbx, self.call = pbx, call
        self.variables: dict[str, str] = {"BLINDTRANSFER": call.blind_transfer}
        self.stack: list[tuple[str, str, int, dict[str, str]]] = []
        self.args: dict[str, str] = {}
        self.groups: set[str] = set()
        self.ran = Ran([], [], None)

    def start(self, context: str, exten: str) -> Ran:
        self.jump(context, exten, 0)
        for _ in range(500):
            lines = self.pbx.contexts[self.context][self.found]
            if self.index >= len(lines):
                return self.ran
            _, app, raw = lines[self.index]
            data = self.substitute(raw)
            self.ran.apps.append((app, data))
            self.index += 1
            if app == "Hangup":
                self.ran.cause = data
                return self.ran
            getattr(self, f"app_{app.lower()}", lambda data: None)(data)
        raise AssertionError("the dialplan loops")

    def jump(self, context: str, exten: str, index: int) -> None:
        found = self.pbx.find(context, exten)
        assert found is not None, f"no extension {exten} in [{context}]"
        self.context, self.exten, self.found, self.index = context, exten, found, index
        self.variables["EXTEN"] = exten

    def label(self, target: str) -> None:
        if "," in target:
            context, exten, _ = target.split(",")
            self.jump(context, exten, 0)
            return
        lines = self.pbx.contexts[self.context][self.found]
        self.index = next(i for i, (label, _, _) in enumerate(lines) if label == target)

    # -- applications

    def app_gosub(self, data: str) -> None:
        target, _, args = data.partition("(")
        context, exten, _ = target.split(",")
        self.stack.append((self.context, self.exten, self.index, self.args))
        values = args.removesuffix(")").split(",") if args else []
        self.args = {f"ARG{i}": value for i, value in enumerate(values, start=1)}
        self.jump(context, exten, 0)

    def app_return(self, data: str) -> None:
        context, exten, index, self.args = self.stack.pop()
        self.jump(context, exten, index)

    def app_gotoif(self, data: str) -> None:
        condition, _, target = data.partition("?")
        if condition.strip() == "1":
            self.label(target)

    def app_set(self, data: str) -> None:
        name, _, value = data.partition("=")
        if name == "GROUP(callbuddy-out)":
            self.groups.add(value)
        else:
            self.variables[name] = value

    def app_dial(self, data: str) -> None:
        dial_string = data.split(",")[0]
        self.ran.dials.append((dial_string, self.variables.get("CALLERID(num)", self.call.endpoint)))
        self.variables["DIALSTATUS"] = self.call.status(dial_string)

    # -- substitution: functions, variables, expressions

    def substitute(self, data: str) -> str:
        while True:
            done = _EXPRESSION.sub(lambda m: _expression(m.group(1)), _VARIABLE.sub(self.function, data))
            if done == data:
                return done
            data = done

    def function(self, match: re.Match[str]) -> str:
        inner = match.group(1)
        name, _, args = inner.partition("(")
        values = args.removesuffix(")").split(",")
        if name == "PJSIP_DIAL_CONTACTS":
            return self.call.contacts.get(values[0], "")
        if name == "CHANNEL":
            return self.call.endpoint
        if name == "DIALPLAN_EXISTS":
            return "1" if self.pbx.find(values[0], values[1]) else "0"
        if name == "GROUP_COUNT":
            phone = values[0].split("@")[0]
            return str(self.call.calls_out.get(phone, 0) + (phone in self.groups))
        if name == "CUT":
            return self.variables.get(values[0], "").split(values[1])[int(values[2]) - 1]
        variable, _, offset = inner.partition(":")
        value = self.args.get(variable, self.variables.get(variable, ""))
        return value[int(offset) :] if offset else value


def _expression(text: str) -> str:
    """`|` of `&` of comparisons (=, !=, >) of quoted strings or numbers, as Asterisk's $[...] reads them."""

    def compare(term: str) -> bool:
        left, op, right = re.split(r"\s*(!=|=|>)\s*", term.strip(), maxsplit=1)
        a, b = left.strip('"'), right.strip('"')
        return {"=": a == b, "!=": a != b, ">": op == ">" and a.isdigit() and b.isdigit() and int(a) > int(b)}[op]

    return str(int(any(all(compare(t) for t in alt.split(" & ")) for alt in text.split(" | "))))


# -- configurations ------------------------------------------------------------------------------------------------


def golden(case: str) -> Config:
    return load_config(GOLDEN / case / "callbuddy.yaml")


def pbx_of(config: Config) -> Pbx:
    files = render_all(config)
    return Pbx(files["extensions_callbuddy.conf"], files["callbuddy-library.conf"])


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


MIXED = f"""\
asterisk: {{secret: ami-secret-for-tests}}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
  - name: London Cafe
    numbers: ["020 7946 0000"]
    default_region: GB
pbx:
  secret_key: {KEY}
  phones:
    - {{extension: "100", name: Salon desk, business: Glow Salon, location: "12 Main St, Springfield IL"}}
    - {{extension: "400", name: Cafe till, business: London Cafe, location: "1 High St, London"}}
    - {{extension: "401", name: Cafe office, business: London Cafe}}
  trunks:
    - name: trunk
      template: pjsip-trunk-ip-auth
      fields: {{CARRIER_SIP_HOST: sip.example.net}}
"""


@pytest.fixture
def mixed(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path, MIXED))


def status_of(prefix: str, status: str) -> Callable[[str], str]:
    """`status` for a Dial whose dial string starts with `prefix`, ANSWER for any other."""
    return lambda dial: status if dial.startswith(prefix) else "ANSWER"


# -- the numbering table -------------------------------------------------------------------------------------------


def test_the_numbering_plans_know_their_emergency_numbers() -> None:
    us, ca, gb, de = (plan_for(region) for region in ("US", "ca", "GB", "DE"))
    assert us is not None and us is ca and us.emergency == ("911", "933")
    assert gb is not None and set(gb.emergency) == {"999", "112"}
    assert de is not None and de.emergency == ("112",)
    assert plan_for("AU") is None  # no guessing: a region without a plan is a configuration problem


# -- emergency calls -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["911", "933"])
def test_every_phone_reaches_911_with_its_business_number_straight_to_the_trunk(number: str) -> None:
    config = golden("installer")
    pbx = pbx_of(config)
    for phone, business_number in (("100", "+15550001000"), ("300", "+15550003000"), ("301", "+15550003000")):
        ran = pbx.dial(number, Call(phone))
        assert ran.dials == [(f"PJSIP/carrier/sip:{number}@sip.example.net:5060", business_number)], phone
        assert ran.cause == ""  # answered, then ended normally


def test_an_emergency_call_is_never_refused_nor_limited() -> None:
    pbx = pbx_of(golden("salon"))
    # At its limit of calls out, and unknown to the dialplan (a channel that is no configured phone): still dialled.
    at_limit = pbx.dial("911", Call("100", calls_out={"100": 2}))
    assert at_limit.dial_strings == [SALON_URI.format(number="911")]
    stranger = pbx.dial("911", Call("somebody"))
    assert stranger.dial_strings == [SALON_URI.format(number="911")]
    assert ("Set", "GROUP(callbuddy-out)=100") not in at_limit.apps  # not counted as a call out either


def test_an_emergency_call_the_trunk_address_refuses_is_tried_through_the_aor() -> None:
    pbx = pbx_of(golden("salon"))
    ran = pbx.dial("911", Call("100", status=status_of("PJSIP/trunk/sip:", "CHANUNAVAIL")))
    assert ran.dial_strings == [SALON_URI.format(number="911"), "PJSIP/911@trunk"]
    failed = pbx.dial("911", Call("100", status=lambda dial: "CONGESTION"))
    assert failed.cause == "34"


def test_an_emergency_call_carries_the_phones_location() -> None:
    ran = pbx_of(golden("salon")).dial("911", Call("100"))
    assert ("NoOp", "CallBuddy: emergency call from phone 100 at Suite 4, 12 Main St, Springfield IL 62701") in ran.apps


def test_gb_phones_reach_999_and_112_and_us_phones_911(mixed: Config) -> None:
    pbx = pbx_of(mixed)
    uri = "PJSIP/trunk/sip:{}@sip.example.net:5060"
    for number in ("999", "112"):
        assert pbx.dial(number, Call("400")).dials == [(uri.format(number), "+442079460000")]
    assert pbx.dial("911", Call("100")).dials == [(uri.format("911"), "+15550001000")]


def test_an_extension_cannot_be_an_emergency_number(tmp_path: Path) -> None:
    text = MIXED.replace('extension: "400"', 'extension: "999"')
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, text))
    assert f"{tmp_path / 'site.yaml'}:12: pbx.phones[1].extension: 999 is an emergency number" in str(error.value)


# -- calls out: E.164, caller ID, what is allowed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "e164"),
    [("2125551234", "+12125551234"), ("12125551234", "+12125551234"), ("+12125551234", "+12125551234")],
)
def test_national_numbers_go_out_as_e164_with_the_business_number(dialled: str, e164: str) -> None:
    ran = pbx_of(golden("clinic")).dial(dialled, Call("201"))
    assert ran.dials == [(f"PJSIP/{e164}@trunk", "+15550002000")]
    assert ran.cause == ""


def test_gb_national_numbers_go_out_as_e164(mixed: Config) -> None:
    pbx = pbx_of(mixed)
    ran = pbx.dial("02079460001", Call("400"))
    assert ran.dials == [("PJSIP/+442079460001@trunk", "+442079460000")]
    assert pbx.dial("09011234567", Call("400")).cause == "21"  # 09: premium rate


@pytest.mark.parametrize(
    ("dialled", "kind"),
    [
        ("011442079460000", INTERNATIONAL),
        ("+442079460000", INTERNATIONAL),
        ("19005551234", PREMIUM),
        ("9005551234", PREMIUM),
        ("+19765551234", PREMIUM),
        ("2129761234", PREMIUM),  # a local 976 exchange
    ],
)
def test_international_and_premium_numbers_are_refused_by_default(dialled: str, kind: str) -> None:
    ran = pbx_of(golden("installer")).dial(dialled, Call("100"))
    assert ran.dials == []
    assert ran.cause == "21"  # 403 Forbidden
    assert ("NoOp", f"CallBuddy: phone 100 may not dial {kind} numbers: see allow_{kind} in README") in ran.apps
    assert ("Playback", "cannot-complete-as-dialed,noanswer") in ran.apps


def test_a_business_or_a_phone_allows_what_it_says() -> None:
    clinic = pbx_of(golden("clinic"))  # the business allows international; 202 not, but premium
    assert clinic.dial("011442079460000", Call("200")).dial_strings == ["PJSIP/+442079460000@trunk"]
    assert clinic.dial("011442079460000", Call("202")).cause == "21"
    assert clinic.dial("19005551234", Call("202")).dial_strings == ["PJSIP/+19005551234@trunk"]
    assert clinic.dial("19005551234", Call("200")).cause == "21"
    salon = pbx_of(golden("salon"))  # only phone 101 may call abroad
    assert salon.dial("+33142000000", Call("101")).dial_strings == ["PJSIP/+33142000000@trunk"]
    assert salon.dial("+33142000000", Call("100")).cause == "21"


def test_gb_international_prefix_is_00(mixed: Config) -> None:
    pbx = pbx_of(replace(mixed, businesses=tuple(replace(b, allow_international=True) for b in mixed.businesses)))
    assert pbx.dial("0012125551234", Call("400")).dial_strings == ["PJSIP/+12125551234@trunk"]
    assert pbx.dial("01112125551234", Call("100")).dial_strings == ["PJSIP/+12125551234@trunk"]


def test_a_number_no_plan_has_ends_as_not_found() -> None:
    ran = pbx_of(golden("salon")).dial("55512", Call("100"))
    assert (ran.dials, ran.cause) == ([], "1")


def test_a_channel_that_is_no_phone_cannot_call_out() -> None:
    ran = pbx_of(golden("salon")).dial("2125551234", Call("trunk"))
    assert (ran.dials, ran.cause) == ([], "1")


def test_a_caller_blind_transferred_to_a_number_calls_as_the_transferring_phone() -> None:
    call = Call("trunk", blind_transfer="PJSIP/101-0000002a")
    ran = pbx_of(golden("salon")).dial("+33142000000", call)  # 101 may call abroad
    assert ran.dials == [("PJSIP/+33142000000@trunk", "+15550001000")]


# -- limits and failures -------------------------------------------------------------------------------------------


def test_a_phone_at_its_limit_of_calls_out_gets_503() -> None:
    pbx = pbx_of(golden("salon"))  # 100: 2 calls out at once, 101: 3
    assert pbx.dial("2125551234", Call("100", calls_out={"100": 1})).dial_strings == ["PJSIP/+12125551234@trunk"]
    at_limit = pbx.dial("2125551234", Call("100", calls_out={"100": 2}))
    assert (at_limit.dials, at_limit.cause) == ([], "34")
    assert pbx.dial("2125551234", Call("101", calls_out={"101": 2})).dial_strings == ["PJSIP/+12125551234@trunk"]
    assert pbx.dial("2125551234", Call("100", calls_out={"101": 5})).dial_strings  # counted per phone


# 503 Service Unavailable (cause 34) when the trunk cannot be reached or is congested, not 404; 486 and 480 else.
@pytest.mark.parametrize(
    ("status", "cause"), [("CHANUNAVAIL", "34"), ("CONGESTION", "34"), ("BUSY", "17"), ("NOANSWER", "19")]
)
def test_a_call_out_the_trunk_cannot_take_ends_with_503(status: str, cause: str) -> None:
    ran = pbx_of(golden("salon")).dial("2125551234", Call("100", status=lambda dial: status))
    assert ran.cause == cause


# -- internal calls and voicemail ----------------------------------------------------------------------------------


def test_an_internal_call_rings_every_registered_contact() -> None:
    contacts = {"101": "PJSIP/101/sip:101@10.0.0.5:5060&PJSIP/101/sip:101@10.0.0.9:5062"}
    ran = pbx_of(golden("salon")).dial("101", Call("100", contacts=contacts))
    assert ran.dial_strings == [contacts["101"]]


def test_an_internal_call_to_an_unregistered_phone_never_dials_nothing() -> None:
    clinic = pbx_of(golden("clinic"))
    with_mailbox = clinic.dial("200", Call("201"))
    assert with_mailbox.dials == []
    assert ("VoiceMail", "200@default,u") in with_mailbox.apps
    without = clinic.dial("202", Call("201"))
    assert (without.dials, without.cause) == ([], "19")  # 480


def test_a_busy_phones_caller_hears_the_busy_greeting() -> None:
    clinic = pbx_of(golden("clinic"))
    contacts = {"200": "PJSIP/200/sip:200@10.0.0.5:5060", "202": "PJSIP/202/sip:202@10.0.0.6:5060"}
    busy = clinic.dial("200", Call("201", contacts=contacts, status=lambda dial: "BUSY"))
    assert ("VoiceMail", "200@default,b") in busy.apps
    no_answer = clinic.dial("200", Call("201", contacts=contacts, status=lambda dial: "NOANSWER"))
    assert ("VoiceMail", "200@default,u") in no_answer.apps
    assert clinic.dial("202", Call("201", contacts=contacts, status=lambda dial: "BUSY")).cause == "17"


def test_star97_opens_only_the_callers_own_mailbox() -> None:
    clinic = pbx_of(golden("clinic"))
    assert ("VoiceMailMain", "201@default") in clinic.dial("*97", Call("201")).apps
    no_mailbox = clinic.dial("*97", Call("202"))
    assert no_mailbox.cause == "1"
    assert not any(app == "VoiceMailMain" for app, _ in no_mailbox.apps)


def test_without_a_trunk_star97_still_works_and_nothing_goes_out() -> None:
    config = golden("clinic")
    config = replace(config, pbx=replace(config.pbx, trunks=(), ring_groups=config.pbx.ring_groups[:1]))
    pbx = pbx_of(config)
    assert ("VoiceMailMain", "200@default") in pbx.dial("*97", Call("200")).apps
    assert pbx.find("from-internal", "911") is None  # `check` warns: no trunk, not even for emergency calls


def test_no_star97_without_any_mailbox() -> None:
    config = golden("clinic")
    phones = tuple(replace(phone, voicemail=False) for phone in config.pbx.phones)
    config = replace(config, pbx=replace(config.pbx, phones=phones, ring_groups=config.pbx.ring_groups[1:]))
    assert "*97" not in render_all(config)["extensions_callbuddy.conf"]


# -- the YAML, check, and Asterisk's own checker -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('location: "Suite 4; DROP"', "pbx.phones[0].location: 'Suite 4; DROP': use only letters, digits"),
        ('location: "' + "x" * 121 + '"', "pbx.phones[0].location: too long: at most 120 characters"),
        ("outbound: {abroad: true}", "pbx.phones[0].outbound.abroad: unknown key"),
        ("outbound: {premium: maybe}", "pbx.phones[0].outbound.premium"),
        ("max_outbound_calls: 0", "pbx.phones[0].max_outbound_calls"),
    ],
)
def test_wrong_dialling_settings_are_problems_with_file_and_line(tmp_path: Path, setting: str, message: str) -> None:
    text = MIXED.replace(', location: "12 Main St, Springfield IL"}', f", {setting}}}")
    assert text != MIXED
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, text))
    assert f"{tmp_path / 'site.yaml'}:11: {message}" in str(error.value)


def test_a_business_in_a_region_without_a_plan_is_a_problem(tmp_path: Path) -> None:
    text = MIXED.replace('020 7946 0000"]\n    default_region: GB', '02 9374 4000"]\n    default_region: AU')
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, text))
    problems = str(error.value)
    assert "pbx.phones[1].business: 'London Cafe' is in region AU, which has no numbering plan" in problems
    assert problems.count("which has no numbering plan") == 1  # once per business, not per phone


def test_check_shows_what_each_phone_may_dial_and_warns_of_a_missing_location(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--offline", "--config", str(GOLDEN / "salon" / "callbuddy.yaml")]) == 0
    out = capsys.readouterr().out
    assert "Dialling:   emergency 911, 933 from every phone" in out
    assert "phone 101: caller ID +15550001000; national, international; at most 3 calls out; location Back" in out
    assert main(["check", "--offline", "--config", str(GOLDEN / "installer" / "callbuddy.yaml")]) == 0
    captured = capsys.readouterr()
    assert "phone 300: caller ID +15550003000; national; at most 2 calls out; location NOT SET" in captured.out
    assert "warning: phone 300 has no location" in captured.err


def test_every_kind_of_rule_is_rendered_for_the_plans_in_use(mixed: Config) -> None:
    text = render_all(mixed)["extensions_callbuddy.conf"]
    for region in ("US", "GB"):
        plan = plan_for(region)
        assert plan is not None
        for rule in plan.rules:
            assert rule.kind in (NATIONAL, INTERNATIONAL, PREMIUM)
            assert f"exten => {rule.pattern},1,Gosub(callbuddy-outbound,s,1(" in text, (region, rule.pattern)


def test_the_mixed_dialplan_passes_asterisklint(mixed: Config, tmp_path: Path) -> None:
    assert_asterisklint_passes(render_all(mixed), tmp_path)
