"""The text-back sections of the YAML configuration: every rule, with the exact file:line a user is pointed to."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from callbuddy_pbx.config import (
    DEFAULT_TEMPLATE,
    MISSED_OUTCOMES,
    ConfigError,
    QuietHours,
    TextBack,
    load_config,
)
from tests.config_files import problems_of

SECRETS = {
    "SMPP_PASSWORD": "smpp-pw1",
    "TWILIO_SID": "AC0123456789abcdef0123456789abcdef",
    "TWILIO_TOKEN": "twilio-token-0002",
    "KANNEL_PASSWORD": "kannel-pw-0003",
    "TOKEN": "bearer-token-0004",
    "WEBHOOK_TOKEN": "webhook-token-0005-abcdef",
}

FULL = """\
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    timezone: America/New_York
    booking_url: https://glow.example/book
    hours: {mon: ["09:00-17:00"], tue: ["09:00-12:00", "13:00-18:00"], sat: []}
    holidays: [2026-12-25, 2027-01-01]
    text_back:
      enabled: true
      outcomes: [no_answer, busy, abandoned, unavailable, voicemail, queue_abandoned]
      template: "Hi, this is {business}. Sorry we missed your call! Book online: {booking_url} Reply STOP to opt out."
      after_hours_template: "{business} is closed. Book online: {booking_url} Reply STOP to opt out."
      help_text: "{business} help: {booking_url}"
      opt_out_text: "{business}: no more texts."
      sender: "+15550001000"
      gateway: smsc
      window_hours: 24
      min_ring_seconds: 3
      hold_off_seconds: 60
      quiet_hours: "21:00-08:00"
gateways:
  - {name: smsc, kind: smpp, host: 127.0.0.1, port: 2775, system_id: callbuddy, password: "${SMPP_PASSWORD}",
     rate_per_second: 1}
  - {name: twilio, kind: twilio, account_sid: "${TWILIO_SID}", auth_token: "${TWILIO_TOKEN}"}
  - {name: kannel, kind: kannel, url: "http://127.0.0.1:13013/cgi-bin/sendsms", username: cb,
     password: "${KANNEL_PASSWORD}"}
  - name: custom
    kind: generic
    method: POST
    url: https://sms.example/api/send
    body_format: json
    body: {to: "{to}", from: "{sender}", message: "{text}"}
    headers: {Authorization: "Bearer ${TOKEN}"}
    message_id_path: data.id
    error_path: error.message
  - {name: sim, kind: simulated}
web: {host: 127.0.0.1, port: 8080, public_url: "https://cb.example.com/", webhook_token: "${WEBHOOK_TOKEN}"}
"""

# A business that texts, through a simulated gateway, with nothing else set: the base for one-rule tests.
BASE = """\
businesses:
  - name: Glow Salon
    numbers: ["+15550001000"]
    booking_url: https://glow.example/book
    text_back:
{text_back}
gateways:
  - {{name: sim, kind: simulated}}
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def with_text_back(write, *lines: str) -> Path:
    """BASE with these lines under text_back (line 6 is the first of them)."""
    body = "\n".join("      " + line for line in lines) if lines else "      enabled: true"
    return write(BASE.format(text_back=body))


# -- the full example ------------------------------------------------------------------------------------------------


def test_full_example_loads(write):
    config = load_config(write(FULL))
    [business] = config.businesses
    assert business.booking_url == "https://glow.example/book"
    assert business.hours is not None
    assert business.hours.days[0] == ((time(9), time(17)),)
    assert business.hours.days[1] == ((time(9), time(12)), (time(13), time(18)))
    assert business.hours.days[2] == ()  # missing days are closed
    assert business.hours.days[5] == ()
    assert business.holidays == (date(2026, 12, 25), date(2027, 1, 1))
    text_back = business.text_back
    assert text_back.enabled
    assert text_back.outcomes == MISSED_OUTCOMES
    assert text_back.after_hours_template == "{business} is closed. Book online: {booking_url} Reply STOP to opt out."
    assert text_back.help_text == "{business} help: {booking_url}"
    assert text_back.sender == "+15550001000"
    assert text_back.gateway == "smsc"
    assert (text_back.window_s, text_back.min_ring_s, text_back.hold_off_s) == (86400.0, 3.0, 60.0)
    assert text_back.quiet_hours == QuietHours(time(21), time(8))

    smsc, twilio, kannel, custom, sim = config.gateways
    assert (smsc.kind, smsc.host, smsc.port, smsc.system_id, smsc.password) == (
        "smpp",
        "127.0.0.1",
        2775,
        "callbuddy",
        "smpp-pw1",
    )
    assert smsc.rate_per_s == 1.0
    assert (twilio.account_sid, twilio.auth_token) == (SECRETS["TWILIO_SID"], "twilio-token-0002")
    assert twilio.url == "https://api.twilio.com"  # the API base when none is given
    assert (kannel.url, kannel.username, kannel.password) == (
        "http://127.0.0.1:13013/cgi-bin/sendsms",
        "cb",
        "kannel-pw-0003",
    )
    assert custom.method == "POST"
    assert custom.body_format == "json"
    assert custom.body == (("to", "{to}"), ("from", "{sender}"), ("message", "{text}"))
    assert custom.headers == (("Authorization", "Bearer bearer-token-0004"),)
    assert (custom.message_id_path, custom.error_path) == ("data.id", "error.message")
    assert sim.kind == "simulated"
    assert config.web.public_url == "https://cb.example.com"  # trailing slash dropped
    assert config.web.webhook_token == SECRETS["WEBHOOK_TOKEN"]


def test_secrets_are_not_in_repr(write):
    config = load_config(write(FULL))
    shown = repr(config) + str(config)
    for name, value in SECRETS.items():
        if name != "TWILIO_SID":
            assert value not in shown, name


def test_business_without_text_back_sends_nothing(write):
    # Texting is opted into per business: configurations written before text-back keep working unchanged.
    config = load_config(write("businesses:\n  - name: A\n    numbers: ['+15550001000']\n"))
    assert config.businesses[0].text_back.enabled is False
    assert config.gateways == ()


def test_empty_text_back_turns_texting_on_with_defaults_and_the_first_gateway(write):
    path = write(
        "businesses:\n  - name: A\n    numbers: ['+15550001000']\n    booking_url: https://a.example\n"
        "    text_back:\ngateways:\n  - {name: first, kind: simulated}\n  - {name: second, kind: simulated}\n"
    )
    text_back = load_config(path).businesses[0].text_back
    assert text_back == TextBack(enabled=True, gateway="first")
    assert text_back.template == DEFAULT_TEMPLATE


def test_quiet_hours_may_stay_within_a_day_and_end_at_midnight(write):
    path = with_text_back(write, 'quiet_hours: "12:00-24:00"')
    assert load_config(path).businesses[0].text_back.quiet_hours == QuietHours(time(12), time(0))


def test_sender_forms(write):
    cases = {
        '"+1 (555) 000-1000"': "+15550001000",
        '"555 000 1000"': "+15550001000",  # national format, read in the business's region
        "GlowSalon": "GlowSalon",
        '"Glow Salon"': "Glow Salon",  # 10 characters with a space
        "12345": "12345",  # a short code
    }
    for raw, expected in cases.items():
        assert load_config(with_text_back(write, f"sender: {raw}")).businesses[0].text_back.sender == expected


# -- the rules, one by one -------------------------------------------------------------------------------------------


def test_unknown_template_field_names_it_and_lists_the_allowed(write):
    path = with_text_back(write, 'template: "Hi {name}! {business}"')
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.template: unknown field {{name}} "
        "(allowed: {business} {booking_url} {caller_name} {date} {time})"
    ]


def test_replies_only_know_business_and_booking_url(write):
    path = with_text_back(write, 'help_text: "Hi {caller_name}"', 'opt_out_text: "Bye {date}"')
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.help_text: unknown field {{caller_name}} (allowed: {{business}} "
        "{booking_url})",
        f"{path}:7: businesses[0].text_back.opt_out_text: unknown field {{date}} (allowed: {{business}} "
        "{booking_url})",
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('"Hi {business"', "unbalanced '{' at character 4 (write '{{' for a literal brace)"),
        ('"Hi } there"', "unbalanced '}' at character 4 (write '}}' for a literal brace)"),
        ('"Hi {{business}"', "unbalanced '}' at character 14 (write '}}' for a literal brace)"),
        ('"{business!r}"', "{business!r} is not a field name (fields are written like {business})"),
        ('"{business.__class__}"', "{business.__class__} is not a field name (fields are written like {business})"),
        ('"  "', "expected the text of the message, got an empty string"),
    ],
)
def test_malformed_templates(write, template, message):
    path = with_text_back(write, f"after_hours_template: {template}")
    assert problems_of(path) == [f"{path}:6: businesses[0].text_back.after_hours_template: {message}"]


def test_literal_braces_are_allowed(write):
    path = with_text_back(write, 'template: "{{{business}}} Reply STOP"')
    assert load_config(path).businesses[0].text_back.template == "{{{business}}} Reply STOP"


def test_outcomes_must_be_missed_outcomes(write):
    path = with_text_back(write, "outcomes: [no_answer, no-answer, answered, busy, busy]")
    expected = "expected one of: no_answer, busy, abandoned, unavailable, voicemail, queue_abandoned"
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.outcomes[1]: 'no-answer' is not an outcome (did you mean 'no_answer'?)",
        f"{path}:6: businesses[0].text_back.outcomes[2]: answered calls are never texted ({expected})",
        f"{path}:6: businesses[0].text_back.outcomes[4]: 'busy' is listed twice (first on line 6)",
    ]


def test_outcomes_must_not_be_empty(write):
    path = with_text_back(write, "outcomes: []")
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.outcomes: expected at least one outcome (or enabled: false)"
    ]


def test_outcomes_subset_is_kept(write):
    path = with_text_back(write, "outcomes: [NO_ANSWER, busy]")
    assert load_config(path).businesses[0].text_back.outcomes == ("no_answer", "busy")


def test_gateway_names_must_be_unique(write):
    path = write(
        """\
        gateways:
          - {name: sms, kind: simulated}
          - {name: sms, kind: simulated}
        """
    )
    assert problems_of(path) == [f"{path}:3: gateways[1].name: 'sms' is already used (line 2)"]


def test_business_gateway_must_exist(write):
    path = with_text_back(write, "gateway: smi")
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.gateway: 'smi' is not a configured gateway (did you mean 'sim'?)"
    ]


def test_text_back_without_any_gateway_is_an_error(write):
    path = write(
        """\
        businesses:
          - name: Glow Salon
            numbers: ["+15550001000"]
            booking_url: https://glow.example/book
            text_back:
              template: "Hi from {business}. Reply STOP to opt out."
        """
    )
    assert problems_of(path) == [
        f"{path}:5: businesses[0].text_back: text-back is enabled but no gateways are configured "
        "(add one under `gateways:`; to try it out: {name: sim, kind: simulated})"
    ]


def test_disabled_text_back_needs_no_gateway(write):
    path = write("businesses:\n  - name: A\n    numbers: ['+15550001000']\n    text_back: {enabled: false}\n")
    assert load_config(path).businesses[0].text_back.enabled is False


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{name: a, kind: smpp, host: h}",
            "gateways[0]: missing required keys 'system_id', 'password' (kind smpp needs host, system_id, password)",
        ),
        (
            "{name: a, kind: twilio, account_sid: AC1}",
            "gateways[0]: missing required key 'auth_token' (kind twilio needs account_sid, auth_token)",
        ),
        (
            "{name: a, kind: kannel, url: 'http://k:13013/cgi-bin/sendsms', password: p}",
            "gateways[0]: missing required key 'username' (kind kannel needs url, username, password)",
        ),
        (
            "{name: a, kind: generic, url: 'https://x.example/send'}",
            "gateways[0]: missing required key 'body' (kind generic needs url, body)",
        ),
        ("{name: a}", "gateways[0]: missing required key 'kind' (one of smpp, twilio, kannel, generic, simulated)"),
        ("{kind: simulated}", "gateways[0]: missing required key 'name'"),
        (
            "{name: a, kind: sms}",
            "gateways[0].kind: 'sms' is not allowed (expected one of: smpp, twilio, kannel, generic, simulated)",
        ),
        (
            "{name: a, kind: simulated, host: h}",
            "gateways[0].host: not used by kind simulated (its keys: name, kind, rate_per_second)",
        ),
        (
            "{name: a, kind: simulated, rate_per_second: -1}",
            "gateways[0].rate_per_second: -1 is not allowed (expected zero or a positive number of texts per second)",
        ),
        (
            "{name: a, kind: smpp, host: h, system_id: s, password: p, port: 0}",
            "gateways[0].port: 0 is out of range (expected a whole number from 1 to 65535)",
        ),
        (
            "{name: a, kind: kannel, url: 'ftp://k/x', username: u, password: p}",
            "gateways[0].url: not an http(s) URL (expected the gateway's URL, e.g. https://example.com/...)",
        ),
        ("{name: 'a b', kind: simulated}", "gateways[0].name: 'a b' is not valid (letters, digits, '_', '-', '.')"),
    ],
)
def test_gateway_rules(write, entry, message):
    path = write(f"web: {{webhook_token: '{'x' * 16}', public_url: 'https://cb.example'}}\ngateways:\n  - {entry}\n")
    assert problems_of(path) == [f"{path}:3: {message}"]


def test_rate_zero_means_unlimited(write):
    assert (
        load_config(write("gateways: [{name: a, kind: simulated, rate_per_second: 0}]\n")).gateways[0].rate_per_s == 0
    )


def test_generic_gateway_rules(write):
    path = write(
        """\
        web: {webhook_token: 0123456789abcdef}
        gateways:
          - name: g
            kind: generic
            url: https://x.example/send
            method: GET
            body_format: json
            body: {to: "{to}", msg: "{txt}"}
            headers: {"X Key": abc}
            message_id_path: "data..id"
          - name: h
            kind: generic
            url: https://x.example/send
            body: {to: "{to}"}
        """
    )
    assert problems_of(path) == [
        f"{path}:7: gateways[0].body_format: a GET request has no JSON body (use POST)",
        f"{path}:8: gateways[0].body.msg: unknown field {{txt}} (allowed: {{to}} {{sender}} {{text}} {{key}})",
        f"{path}:9: gateways[0].headers.X Key: 'X Key' is not a valid HTTP header name",
        f"{path}:10: gateways[0].message_id_path: 'data..id' is not a dotted path (e.g. messages.0.id)",
        f"{path}:14: gateways[1].body: no field uses {{text}} (the gateway would not know what to send)",
    ]


@pytest.mark.parametrize("kind", ["kannel", "generic"])
def test_webhook_token_required_for_gateways_that_call_back(write, kind):
    entries = {
        "kannel": "{name: k, kind: kannel, url: 'http://k:13013/cgi-bin/sendsms', username: u, password: p}",
        "generic": "{name: k, kind: generic, url: 'https://x.example/send', body: {to: '{to}', text: '{text}'}}",
    }
    path = write(f"gateways:\n  - {{name: sim, kind: simulated}}\n  - {entries[kind]}\n")
    assert problems_of(path) == [
        f"{path}:3: gateways[1]: a {kind} gateway needs web.webhook_token "
        "(the shared secret in the URLs it calls with receipts and replies)"
    ]


def test_public_url_required_for_twilio(write):
    path = write("web: {port: 8081}\ngateways:\n  - {name: t, kind: twilio, account_sid: AC1, auth_token: tok}\n")
    assert problems_of(path) == [
        f"{path}:3: gateways[0]: a twilio gateway needs web.public_url (where Twilio posts delivery status and texts)"
    ]


def test_web_rules(write):
    path = write("web:\n  port: 70000\n  public_url: cb.example.com\n  webhook_token: short\n  hots: x\n")
    assert problems_of(path) == [
        f"{path}:2: web.port: 70000 is out of range (expected a whole number from 1 to 65535)",
        f"{path}:3: web.public_url: 'cb.example.com' is not an http(s) URL "
        "(expected the URL gateways reach us at, e.g. https://example.com/...)",
        f"{path}:4: web.webhook_token: too short: at least 16 characters (e.g. from `openssl rand -hex 16`)",
        f"{path}:5: web.hots: unknown key (did you mean 'host'?)",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"17:00-09:00"', "'17:00-09:00' closes before it opens (open < close; 24:00 for midnight)"),
        ('"09:00-09:00"', "'09:00-09:00' closes before it opens (open < close; 24:00 for midnight)"),
        ('"9-17"', "'9-17' is not a time range (expected HH:MM-HH:MM, e.g. 09:00-17:00)"),
        ('"09:00-25:00"', "'09:00-25:00' is not a time range (hours 00-23, minutes 00-59; 24:00 ends)"),
        ('"09:60-17:00"', "'09:60-17:00' is not a time range (hours 00-23, minutes 00-59; 24:00 ends)"),
    ],
)
def test_opening_hours_rules(write, value, message):
    path = write(f"businesses:\n  - name: A\n    numbers: ['+15550001000']\n    hours:\n      mon: [{value}]\n")
    assert problems_of(path) == [f"{path}:5: businesses[0].hours.mon[0]: {message}"]


def test_opening_hours_overlap_and_day_names(write):
    path = write(
        """\
        businesses:
          - name: A
            numbers: ['+15550001000']
            hours:
              tue: ["09:00-12:00", "11:30-18:00"]
              monday: ["09:00-17:00"]
        """
    )
    assert problems_of(path) == [
        f"{path}:5: businesses[0].hours.tue[1]: overlaps 09:00-12:00",
        f"{path}:6: businesses[0].hours.monday: unknown key (did you mean 'mon'?)",
    ]


def test_opening_hours_until_midnight_and_one_interval_alone(write):
    path = write(
        "businesses:\n  - name: A\n    numbers: ['+15550001000']\n    hours: {fri: '18:00-24:00', sat: '10:00-14:00'}\n"
    )
    hours = load_config(path).businesses[0].hours
    assert hours is not None
    assert hours.days[4] == ((time(18), time.max),)
    assert hours.days[5] == ((time(10), time(14)),)


def test_quiet_hours_rules(write):
    path = with_text_back(write, 'quiet_hours: "21:00-21:00"')
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.quiet_hours: '21:00-21:00' starts and ends at the same time"
    ]
    path = with_text_back(write, "quiet_hours: night")
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.quiet_hours: 'night' is not a time range "
        "(expected HH:MM-HH:MM, e.g. 09:00-17:00)"
    ]


def test_holidays_rules(write):
    path = write(
        """\
        businesses:
          - name: A
            numbers: ['+15550001000']
            holidays:
              - 2026-12-25
              - "2026-12-25"
              - 2026-02-30
              - 2026-12-25T10:00:00
              - [1]
        """
    )
    assert problems_of(path) == [
        f"{path}:6: businesses[0].holidays[1]: 2026-12-25 is listed twice (first on line 5)",
        f"{path}:7: businesses[0].holidays[2]: '2026-02-30' is not a date (expected YYYY-MM-DD, e.g. 2026-12-25)",
        f"{path}:8: businesses[0].holidays[3]: '2026-12-25T10:00:00' is not a date "
        "(expected YYYY-MM-DD, e.g. 2026-12-25)",
        f"{path}:9: businesses[0].holidays[4]: expected a date such as 2026-12-25, got a list",
    ]


@pytest.mark.parametrize(
    "value",
    ['"Glow Salon NYC"', '"Glow-Salon"', '"+1 555"', '"Glöw"', '"+1 555 000 100000000"'],
)
def test_sender_must_be_e164_or_alphanumeric(write, value):
    path = with_text_back(write, f"sender: {value}")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6: businesses[0].text_back.sender: ")
    assert "not a phone number" in problem or "is neither an E.164 number" in problem


def test_sender_message_is_exact(write):
    path = with_text_back(write, 'sender: "Glow Salon NYC"')
    assert problems_of(path) == [
        f"{path}:6: businesses[0].text_back.sender: 'Glow Salon NYC' is neither an E.164 number (e.g. +15550001000) "
        "nor an alphanumeric sender id (up to 11 letters, digits or spaces)"
    ]


def test_booking_url_must_be_a_url_and_is_needed_by_the_default_template(write):
    path = write(
        """\
        businesses:
          - name: A
            numbers: ['+15550001000']
            booking_url: glow.example/book
            text_back:
          - name: B
            numbers: ['+15550001001']
            text_back:
              template: "B missed you. Reply STOP to opt out."
        gateways: [{name: sim, kind: simulated}]
        """
    )
    assert problems_of(path) == [
        f"{path}:4: businesses[0].booking_url: 'glow.example/book' is not an http(s) URL "
        "(expected a booking page URL, e.g. https://example.com/...)",
        f"{path}:8: businesses[1].text_back: {{booking_url}} is used (help_text) but businesses[1].booking_url "
        "is not set",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("window_hours: 0", "window_hours: 0 is not allowed (expected a positive number of hours)"),
        (
            "min_ring_seconds: -1",
            "min_ring_seconds: -1 is not allowed (expected zero or a positive number of seconds)",
        ),
        (
            "hold_off_seconds: soon",
            "hold_off_seconds: 'soon' is not a number (expected zero or a positive number of seconds)",
        ),
        ("enabled: maybe", "enabled: 'maybe' is not true or false"),
        ("gatway: sim", "gatway: unknown key (did you mean 'gateway'?)"),
    ],
)
def test_text_back_value_rules(write, line, message):
    path = with_text_back(write, line)
    assert problems_of(path) == [f"{path}:6: businesses[0].text_back.{message}"]


def test_window_is_read_in_hours(write):
    assert load_config(with_text_back(write, "window_hours: 0.5")).businesses[0].text_back.window_s == 1800.0


def test_secret_values_never_appear_in_problems(write, monkeypatch):
    monkeypatch.setenv("TOKEN", "bearer\r\nX-Evil: 1")
    path = write(
        """\
        gateways:
          - {name: g, kind: generic, url: "https://x.example/s?key=sekrit-in-url", body: {to: "{to}"},
             headers: {Authorization: "${TOKEN}"}}
          - {name: k, kind: kannel, url: "ftp://sekrit-in-url", username: u, password: "${KANNEL_PASSWORD}"}
        web: {webhook_token: "${WEBHOOK_TOKEN}"}
        """
    )
    problems = problems_of(path)
    assert f"{path}:3: gateways[0].headers.Authorization: the value contains a line break" in problems
    text = "\n".join(problems)
    for secret in ("bearer", "sekrit", SECRETS["KANNEL_PASSWORD"], SECRETS["WEBHOOK_TOKEN"]):
        assert secret not in text


def test_problems_across_sections_come_in_file_order(write):
    path = write(
        """\
        web: {port: 0}
        businesses:
          - name: A
            numbers: ['+15550001000']
            booking_url: https://a.example
            text_back: {gateway: nope}
        gateways:
          - {name: sim, kind: simulated, rate_per_second: x}
        """
    )
    assert [problem.split(":")[1] for problem in problems_of(path)] == ["1", "6", "8"]


def test_smpp_credentials_longer_than_the_protocol_allows_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "gateways:\n"
        "  - name: smsc\n"
        "    kind: smpp\n"
        "    host: 127.0.0.1\n"
        "    system_id: callbuddy\n"
        "    password: much-too-long\n"
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.problems == [f"{path}:6: gateways[0].password: is 13 characters; SMPP allows 8"]
