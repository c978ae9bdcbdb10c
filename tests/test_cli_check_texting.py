"""`callbuddy-pbx check` on a configuration that texts: each message as a caller reads it, what it costs, warnings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from callbuddy_pbx.cli import main

SECRETS = {
    "AMI_SECRET": "ami-secret-0000",
    "SMPP_PASSWORD": "smpp-pw1",
    "TWILIO_TOKEN": "twilio-token-0002",
    "KANNEL_PASSWORD": "kannel-pw-0003",
    "TOKEN": "bearer-token-0004",
    "WEBHOOK_TOKEN": "webhook-token-0005-abcdef",
}

CONFIG = """\
asterisk:
  secret: ${AMI_SECRET}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    timezone: America/New_York
    booking_url: https://glow.example/book
    hours: {mon: ["09:00-17:00"], tue: ["09:00-12:00", "13:00-18:00"]}
    holidays: [2026-12-25]
    text_back:
      template: "Hi {caller_name}, {business} missed your call at {time}. Book: {booking_url} Reply STOP to opt out."
      after_hours_template: "{business} is closed. Book: {booking_url} Reply STOP to opt out."
      gateway: smsc
      quiet_hours: "21:00-08:00"
      hold_off_seconds: 60
  - name: Bright Smile Dental
    numbers: ["+1 555 000 1007"]
gateways:
  - {name: smsc, kind: smpp, host: smsc.local, system_id: callbuddy, password: "${SMPP_PASSWORD}"}
  - {name: twilio, kind: twilio, account_sid: AC0123, auth_token: "${TWILIO_TOKEN}", rate_per_second: 0}
  - {name: kannel, kind: kannel, url: "http://127.0.0.1:13013/cgi-bin/sendsms", username: cb,
     password: "${KANNEL_PASSWORD}"}
  - name: custom
    kind: generic
    url: "https://sms.example/send?api_key=key-in-url-0006"
    body_format: json
    body: {to: "{to}", message: "{text}"}
    headers: {Authorization: "Bearer ${TOKEN}"}
web:
  public_url: "https://cb.example.com"
  webhook_token: "${WEBHOOK_TOKEN}"
  users:
    - name: ann
      password_hash: "scrypt$16384$8$1$ME7SorPw3iFGcaDxNdnOEQ==$ZH8wc64iri/u05JgfK7/2vm87H1VdJktsKYazEH/Sqc="
      role: admin
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CALLBUDDY_AMI_SECRET", raising=False)


def check(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> tuple[int, str, str]:
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    code = main(["check", "--config", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def with_template(template: str) -> str:
    return CONFIG.replace(
        '"Hi {caller_name}, {business} missed your call at {time}. Book: {booking_url} Reply STOP to opt out."',
        template,
    )


def test_each_message_is_shown_rendered_with_its_encoding_and_segments(capsys, tmp_path):
    code, out, err = check(capsys, tmp_path, CONFIG)
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert (
        "    template (GSM-7, 1 segment): Hi Jane, Glow Salon missed your call at 3:05 PM. "
        "Book: https://glow.example/book Reply STOP to opt out."
    ) in lines
    assert (
        "    after_hours_template (GSM-7, 1 segment): Glow Salon is closed. Book: https://glow.example/book "
        "Reply STOP to opt out."
    ) in lines
    assert (
        "    help_text (GSM-7, 1 segment): Glow Salon: missed-call texts. Book online: https://glow.example/book "
        "Reply STOP to opt out."
    ) in lines
    assert (
        "    opt_out_text (GSM-7, 1 segment): Glow Salon: you will get no more texts from us. Reply START to undo."
        in (lines)
    )


def test_text_back_settings_are_summarised(capsys, tmp_path):
    _, out, _ = check(capsys, tmp_path, CONFIG)
    assert "    text-back: on after no_answer, busy, abandoned, unavailable, voicemail, queue_abandoned" in out
    assert "      via smsc from the number called; at most one text per caller per 24 h" in out
    assert "      hold-off 60 s; quiet hours 21:00-08:00 (texts wait)" in out
    assert "      open: Mon 09:00-17:00; Tue 09:00-12:00, 13:00-18:00; Wed closed;" in out
    assert "closed on 1 holiday" in out
    assert "  Bright Smile Dental: +15550001007 (time zone UTC, region US)\n    text-back: off\n" in out


def test_gateways_and_web_are_listed_without_secrets(capsys, tmp_path):
    _, out, err = check(capsys, tmp_path, CONFIG)
    assert "Gateways:   smsc (smpp): smsc.local:2775 as callbuddy, password set; 1/s per sender" in out
    assert "twilio (twilio): https://api.twilio.com, auth token set; unlimited" in out
    assert "kannel (kannel): http://127.0.0.1:13013/cgi-bin/sendsms as cb, password set; 1/s per sender" in out
    assert (
        "custom (generic): POST json to https://sms.example/send (query hidden), headers Authorization (values hidden)"
    ) in out
    assert "Web:        127.0.0.1:8080, public URL https://cb.example.com, webhook token set" in out
    for name, secret in SECRETS.items():
        assert secret not in out + err, name
    assert "key-in-url-0006" not in out + err


def test_a_curly_quote_is_named_as_the_reason_for_ucs2(capsys, tmp_path):
    template = '"{business} missed your call – we’ll call back. Book: {booking_url} Reply STOP to opt out."'
    code, out, err = check(capsys, tmp_path, with_template(template))
    assert code == 0
    assert (
        "    template (UCS-2, 2 segments): Glow Salon missed your call – we’ll call back. "
        "Book: https://glow.example/book Reply STOP to opt out."
    ) in out.splitlines()
    assert err.splitlines() == [
        "warning: Glow Salon: template: '–' (EN DASH), '’' (RIGHT SINGLE QUOTATION MARK) make the text UCS-2 "
        "(70 characters per segment instead of 160)",
        "warning: Glow Salon: template: 2 segments (each text is billed as 2 messages)",
    ]


def test_a_long_gsm_text_warns_about_segments_only(capsys, tmp_path):
    long = "We are sorry we missed you. " * 5
    template = f'"{long}{{business}} Reply STOP to opt out."'
    _, out, err = check(capsys, tmp_path, with_template(template))
    assert "    template (GSM-7, 2 segments): We are sorry" in out
    assert err.splitlines() == ["warning: Glow Salon: template: 2 segments (each text is billed as 2 messages)"]


def test_a_caller_name_that_could_push_the_text_over_one_segment(capsys, tmp_path):
    template = '"Hi {caller_name}! ' + "x" * 100 + ' Reply STOP to opt out."'
    _, _, err = check(capsys, tmp_path, with_template(template))
    assert err.splitlines() == [
        "warning: Glow Salon: template: with a 40-character caller name it takes 2 segments",
    ]


def test_a_template_without_opt_out_words(capsys, tmp_path):
    _, _, err = check(capsys, tmp_path, with_template('"{business} missed your call."'))
    assert err.splitlines() == [
        "warning: Glow Salon: template: does not say how to opt out (e.g. 'Reply STOP to opt out')"
    ]


def test_an_alphanumeric_sender_cannot_get_replies(capsys, tmp_path):
    _, out, err = check(capsys, tmp_path, CONFIG.replace("gateway: smsc", "gateway: smsc\n      sender: GlowSalon"))
    assert "via smsc from GlowSalon;" in out
    assert err.splitlines() == [
        "warning: Glow Salon: sender 'GlowSalon' is not a phone number: callers cannot reply STOP or HELP, and some "
        "countries (US, Canada) do not deliver texts from alphanumeric senders"
    ]


def test_an_after_hours_template_that_can_never_be_used(capsys, tmp_path):
    text = CONFIG.replace('    hours: {mon: ["09:00-17:00"], tue: ["09:00-12:00", "13:00-18:00"]}\n', "").replace(
        "    holidays: [2026-12-25]\n", ""
    )
    _, _, err = check(capsys, tmp_path, text)
    assert err.splitlines() == [
        "warning: Glow Salon: after_hours_template is never used (no hours or holidays are set)",
    ]


def test_problems_in_the_texting_sections_fail_the_check(capsys, tmp_path):
    code, out, err = check(capsys, tmp_path, CONFIG.replace("gateway: smsc", "gateway: smcs"))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{tmp_path / 'site.yaml'}:13: businesses[0].text_back.gateway: 'smcs' is not a configured gateway "
        "(did you mean 'smsc'?)"
    ]
