"""`forward_replies_to` of a business and the top-level `smtp:` in the YAML: the targets read, and each problem at
its file:line (as `check` prints them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from callbuddy_pbx.cli import main as cli_main
from callbuddy_pbx.config import load_config
from callbuddy_pbx.config.forwarding import SMTP_PASSWORD_ENV_VAR, ForwardTarget, SmtpConfig
from tests.config_files import problems_of

SECRET = "whsec-0123456789abcdef"
BASE = """\
gateways:
  - {name: sim, kind: simulated}
smtp:
  host: mail.example.com
  port: 2525
  security: none
  from: callbuddy@glow.example
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    timezone: America/New_York
    booking_url: https://glow.example/book
    text_back: {}
"""


def test_every_target_form_is_read(write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_SECRET", "crm-secret-0123456789")
    path = write(
        BASE
        + f"""\
    forward_webhook_secret: {SECRET}
    forward_replies_to:
      - "(555) 010-3000"
      - Owner@Glow.example
      - https://hooks.example/replies?key=abc
      - {{webhook: "https://crm.example/in", secret: "${{CRM_SECRET}}"}}
      - {{sms: "+44 20 7946 0000"}}
      - {{email: desk@glow.example}}
"""
    )
    config = load_config(path)
    assert config.smtp == SmtpConfig("mail.example.com", "callbuddy@glow.example", 2525, "none")
    assert config.businesses[0].forward_to == (
        ForwardTarget("sms", "+15550103000"),
        ForwardTarget("email", "Owner@Glow.example"),
        ForwardTarget("webhook", "https://hooks.example/replies?key=abc", SECRET),
        ForwardTarget("webhook", "https://crm.example/in", "crm-secret-0123456789"),
        ForwardTarget("sms", "+442079460000"),
        ForwardTarget("email", "desk@glow.example"),
    )


def test_one_target_alone_and_no_targets(write) -> None:
    config = load_config(write(BASE + "    forward_replies_to: owner@glow.example\n"))
    assert config.businesses[0].forward_to == (ForwardTarget("email", "owner@glow.example"),)
    assert load_config(write(BASE)).businesses[0].forward_to == ()


def test_smtp_defaults_password_from_the_environment_and_never_in_repr(write, monkeypatch) -> None:
    monkeypatch.setenv(SMTP_PASSWORD_ENV_VAR, "hunter2-smtp-password")
    path = write("smtp: {host: smtp.example.com, username: glow, from: a@glow.example}\n")
    smtp = load_config(path).smtp
    assert smtp == SmtpConfig("smtp.example.com", "a@glow.example", 587, "starttls", "glow", "hunter2-smtp-password")
    assert "hunter2" not in repr(smtp)
    assert load_config(write("smtp: {host: smtp.example.com, security: tls, from: a@glow.example}\n")).smtp == (
        SmtpConfig("smtp.example.com", "a@glow.example", 465, "tls")
    )


def test_problems_name_file_line_and_key(write) -> None:
    path = write(
        """\
gateways:
  - {name: sim, kind: simulated}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    forward_replies_to:
      - not a number
      - owner@glow.example
      - ftp://files.example/replies
      - https://hooks.example/replies
      - "owner@@glow"
      - {sms: "+15550103000", email: x@glow.example}
      - {email: desk@glow.example, secret: abcdefghijklmnopqrstu}
      - {webhook: "https://crm.example/in", secret: short}
      - "+15550103000"
      - "(555) 010-3000"
"""
    )
    file = str(path)
    assert problems_of(path) == [
        f"{file}:7: businesses[0].forward_replies_to[0]: 'not a number' is not a phone number (expected e.g. "
        "+15550001000 or a number valid in region US, an e-mail address or an http(s) webhook URL)",
        f"{file}:8: businesses[0].forward_replies_to[1]: an e-mail target needs an SMTP server: add a top-level "
        "`smtp:` section (host, port, security, username, from)",
        f"{file}:9: businesses[0].forward_replies_to[2]: not an http(s) URL (expected a webhook URL, e.g. "
        "https://example.com/...)",
        f"{file}:10: businesses[0].forward_replies_to[3]: a webhook needs a signing secret (forward_webhook_secret "
        "on the business, or {webhook: URL, secret: ...}); e.g. ${FORWARD_WEBHOOK_SECRET}",
        f"{file}:11: businesses[0].forward_replies_to[4]: 'owner@@glow' is not an e-mail address (expected e.g. "
        "owner@example.com)",
        f"{file}:12: businesses[0].forward_replies_to[5]: give exactly one of sms, email or webhook",
        f"{file}:13: businesses[0].forward_replies_to[6].secret: only a webhook has a secret",
        f"{file}:14: businesses[0].forward_replies_to[7].secret: too short: at least 16 characters",
        f"{file}:16: businesses[0].forward_replies_to[9]: this sms target is listed twice (first on line 15)",
    ]


def test_smtp_problems_and_a_phone_target_without_a_gateway(write) -> None:
    path = write(
        """\
smtp:
  port: 99999
  security: ssl
  username: glow
  from: not-an-address
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    forward_replies_to: ["+15550103000", owner@glow.example]
"""
    )
    file = str(path)
    assert problems_of(path) == [
        f"{file}:2: smtp: missing required key 'host' (the SMTP server's name or address)",
        f"{file}:2: smtp.port: 99999 is out of range (expected a whole number from 1 to 65535)",
        f"{file}:3: smtp.security: 'ssl' is not allowed (expected one of: starttls, tls, none)",
        f"{file}:4: smtp.username: a user name needs a password (smtp.password, or $CALLBUDDY_SMTP_PASSWORD)",
        f"{file}:5: smtp.from: 'not-an-address' is not an e-mail address",
        f"{file}:9: businesses[0].forward_replies_to[0]: a phone target is texted through a gateway, and none is "
        "configured (add one under `gateways:`)",
    ]


def test_check_prints_the_problems_with_file_and_line(write, capsys: pytest.CaptureFixture[str]) -> None:
    path: Path = write(BASE + "    forward_replies_to: [https://hooks.example/replies]\n")
    code = cli_main(["check", "--config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    line = BASE.count("\n") + 1
    assert f"{path}:{line}: businesses[0].forward_replies_to[0]: a webhook needs a signing secret" in err
