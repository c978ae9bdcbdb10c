"""Configuration for ARI call routing: `routing` and `last_active_first` on ring groups, `person` on phones, and the
top-level `ari:` section (defaults that agree with what render writes, every rule with its file:line, no secret in
any message)."""

from __future__ import annotations

import pytest

from callbuddy_pbx.asterisk.render import render_all
from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.asterisk import AriConfig, derived_ari_password, http_prefix, loopback_bind
from callbuddy_pbx.config.pbx import RING_STRATEGIES, ROUTINGS
from tests.config_files import problems_of

KEY = "routing-test-secret-key-0123456789abcdef"
ARI_SECRET = "ari-password-from-env-1"

# Line numbers matter: the cases below replace one line and expect its number in the message.
BASE = f"""\
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1013", "+1 555 000 1000"]
pbx:
  secret_key: {KEY}
  phones:
    - {{extension: "100", name: Desk 100, business: Glow Salon, person: Ana Ruiz}}
    - {{extension: "101", name: Softphone, business: Glow Salon, person: "  Ana   Ruiz "}}
    - {{extension: "102", name: Desk 102, business: Glow Salon}}
  ring_groups:
    - number: "+1 555 000 1013"
      members: ["100", "102"]
      strategy: last_active_first
      routing: callbuddy
    - number: "+1 555 000 1000"
      members: ["100", "101"]
"""
ROUTING_LINE = 14  # `      routing: callbuddy`
STRATEGY_LINE = 13


def replace_line(text: str, number: int, new: str) -> str:
    lines = text.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


# -- pbx: routing, strategies, person -------------------------------------------------------------------------------


def test_routing_person_and_ari_defaults(write):
    config = load_config(write(BASE))
    routed, plain = config.pbx.ring_groups
    assert (routed.routing, routed.strategy) == ("callbuddy", "last_active_first")
    assert (plain.routing, plain.strategy) == ("dialplan", "ring_all")
    assert [phone.person for phone in config.pbx.phones] == ["Ana Ruiz", "Ana Ruiz", ""]  # spaces collapsed
    assert config.ari == AriConfig(password=derived_ari_password(KEY))
    assert config.ari.url == "http://127.0.0.1:8088"
    assert (config.ari.username, config.ari.app) == ("callbuddy", "callbuddy")
    assert RING_STRATEGIES == ("ring_all", "in_order", "last_active_first")
    assert ROUTINGS == ("dialplan", "callbuddy")


def test_the_default_password_is_the_one_render_writes_to_ari_conf(write):
    config = load_config(write(BASE))
    ari_conf = render_all(config)["ari.conf"]
    assert f"[callbuddy]\ntype = user\nread_only = no\npassword = {config.ari.password}\n" in ari_conf
    assert config.ari.password not in repr(config.ari)


def test_last_active_first_needs_callbuddy_routing(write):
    path = write(replace_line(BASE, ROUTING_LINE, "      routing: dialplan"))
    assert problems_of(path) == [
        f"{path}:{STRATEGY_LINE}: pbx.ring_groups[0].strategy: 'last_active_first' needs routing: callbuddy (only "
        "the service knows which phone was active last; with routing: dialplan use ring_all or in_order)"
    ]
    path = write(replace_line(BASE, ROUTING_LINE, "      ring_seconds: 15"))  # routing left out: dialplan
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:{STRATEGY_LINE}: pbx.ring_groups[0].strategy: 'last_active_first' needs")


def test_unknown_routing_and_strategy(write):
    path = write(replace_line(BASE, ROUTING_LINE, "      routing: callbudy"))
    assert problems_of(path) == [
        f"{path}:{ROUTING_LINE}: pbx.ring_groups[0].routing: 'callbudy' is not allowed (did you mean 'callbuddy'?)"
    ]
    path = write(replace_line(BASE, STRATEGY_LINE, "      strategy: last_active"))
    assert problems_of(path) == [
        f"{path}:{STRATEGY_LINE}: pbx.ring_groups[0].strategy: 'last_active' is not allowed "
        "(did you mean 'last_active_first'?)"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('""', "expected the name of the person who uses the phone, got an empty string"),
        ('"Ana\\tRuiz"', "expected one line of printable text (a name such as Ana Ruiz)"),
        ("A" * 61, "too long: at most 60 characters (61 given)"),
        ("[Ana]", "expected a string, got a list"),
    ],
)
def test_person_problems(write, value: str, message: str):
    line = f'    - {{extension: "100", name: Desk 100, business: Glow Salon, person: {value}}}'
    path = write(replace_line(BASE, 7, line))
    assert problems_of(path) == [f"{path}:7: pbx.phones[0].person: {message}"]


# -- ari: ----------------------------------------------------------------------------------------------------------


def test_ari_section_with_every_key(write, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARI_SECRET", ARI_SECRET)
    path = write(
        BASE
        + """\
ari:
  url: http://localhost:8089/ari/
  username: router
  password: ${ARI_SECRET}
  app: callbuddy-main
  reconnect_max_s: 10
  heartbeat_s: 2.5
  request_timeout_s: 4
"""
    )
    ari = load_config(path).ari
    assert ari == AriConfig(
        url="http://localhost:8089/ari",
        username="router",
        password=ARI_SECRET,
        app="callbuddy-main",
        reconnect_max_s=10.0,
        heartbeat_s=2.5,
        request_timeout_s=4.0,
    )
    assert loopback_bind(ari.url) == ("127.0.0.1", 8089)
    assert http_prefix(ari.url) == ""


def test_loopback_bind_and_prefix():
    assert loopback_bind("http://127.0.0.1:8088") == ("127.0.0.1", 8088)
    assert loopback_bind("http://127.0.0.2") == ("127.0.0.2", 80)
    assert loopback_bind("http://[::1]:8088") == ("::1", 8088)
    assert loopback_bind("https://127.0.0.1:8089") is None  # TLS is the installer's (http_custom.conf)
    assert loopback_bind("http://192.168.1.5:8088") is None
    assert loopback_bind("http://pbx.lan:8088") is None
    assert http_prefix("http://127.0.0.1:8088/asterisk/ari") == "asterisk"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  url: ftp://127.0.0.1:8088", "'ftp://127.0.0.1:8088' is not an http(s) URL (expected Asterisk's HTTP"),
        ("  url: http://user:pw@127.0.0.1:8088", "expected only scheme, host, port and path (put the password in"),
        ("  url: http://127.0.0.1:8088/?api_key=a:b", "expected only scheme, host, port and path"),
        ("  url: http://127.0.0.1:99999", "'http://127.0.0.1:99999' has an invalid port"),
        ("  url: http://127.0.0.1:8088/a%20b", "'/a%20b' is not a usable path (expected none, or /ari)"),
        ("  url: http://93.184.216.34:8088", "93.184.216.34 is a public address: ARI controls every call"),
        ("  username: call buddy", "'call buddy' is not allowed (expected an ARI user name: letters, digits"),
        ("  username: a:b", "'a:b' is not allowed"),
        ("  app: callbuddy,inbound", "'callbuddy,inbound' is not allowed (expected a Stasis application name"),
        ("  password: short", "expected at least 12 printable characters on one line, without ';'"),
        ("  password: has;semicolon-inside", "expected at least 12 printable characters"),
        ("  heartbeat_s: 0", "0 is not allowed (expected a positive number of seconds)"),
        ("  heartbeat_s: 120", "120 is too long (at most 60 seconds)"),
        ("  request_timeout_s: fast", "'fast' is not a number"),
        ("  reconnect_max_s: 0.1", "0.1 is less than the first retry's wait (0.5 seconds)"),
        ("  reconnect_min_s: 1", "unknown key (did you mean 'reconnect_max_s'?)"),
    ],
)
def test_ari_problems_name_line_and_key(write, line: str, message: str):
    path = write(BASE + "ari:\n" + line + "\n")
    key = line.split(":")[0].strip()
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:18: ari.{key}: {message}"), problem


def test_ari_password_from_the_environment_is_never_quoted(write, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARI_SECRET", "sh;rt")
    path = write(BASE + "ari:\n  password: ${ARI_SECRET}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:18: ari.password: expected at least 12 printable characters")
    assert "sh;rt" not in problem
    monkeypatch.delenv("ARI_SECRET")
    assert problems_of(path) == [
        f"{path}:18: ari.password: environment variable ARI_SECRET is not set (or write ${{ARI_SECRET:-default}})"
    ]


def own_secrets(text: str) -> str:
    """BASE without pbx.secret_key: every phone with its own SIP secret and no mailbox, whose PIN would need the
    key (same line numbers)."""
    text = replace_line(text, 5, "  sip_port: 5060")
    for end in ("person: Ana Ruiz}", '"  Ana   Ruiz "}', "business: Glow Salon}"):
        text = text.replace(end, end[:-1] + ", secret: own-desk-secret-1, voicemail: false}")
    return text


def test_callbuddy_routing_without_key_or_password_is_a_problem_on_the_routing_line(write):
    path = write(own_secrets(BASE))
    assert problems_of(path) == [
        f"{path}:{ROUTING_LINE}: pbx.ring_groups[0].routing: 'callbuddy' needs an ARI password: set pbx.secret_key "
        "(render and the service derive the same one) or ari.password"
    ]
    config = load_config(write(own_secrets(BASE) + "ari:\n  password: an-ari-password-1\n"))
    assert config.ari.password == "an-ari-password-1"


def test_without_routed_numbers_no_ari_password_is_needed(write):
    text = replace_line(replace_line(BASE, STRATEGY_LINE, "      strategy: in_order"), ROUTING_LINE, "")
    config = load_config(write(own_secrets(text)))
    assert config.ari.password == ""
    assert {group.routing for group in config.pbx.ring_groups} == {"dialplan"}


def test_a_wrong_secret_key_is_reported_once_not_again_for_routing(write):
    path = write(replace_line(BASE, 5, "  secret_key: too-short"))
    problems = problems_of(path)
    assert [problem.split(": ")[1] for problem in problems] == ["pbx.secret_key"]
