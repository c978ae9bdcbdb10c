"""`alerts:` and a business's `digest:` in the YAML: values, defaults, and each problem at its file:line."""

from __future__ import annotations

from pathlib import Path

from callbuddy_pbx.config import AlertsConfig, DigestConfig, load_config
from callbuddy_pbx.service.notify import alert_route, business_route
from tests.config_files import problems_of

BASE = """\
gateways:
  - {name: sim, kind: simulated}
  - {name: backup, kind: simulated}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    timezone: America/New_York
    booking_url: https://glow.example/book
    text_back: {}
"""


def test_every_setting(write) -> None:
    path = write(
        BASE
        + """\
    digest:
      time: 8:30
      sms_to: ["(555) 010-3000"]
      webhook_url: https://hooks.example/digest?key=abc
alerts:
  sms_to: ["555-010-2000", "+44 20 7946 0000"]
  gateway: backup
  sender: CallBuddy
  webhook_url: https://hooks.example/alerts/T000/SECRET
  ami_down_after_s: 60
  gateway_down_after_s: 600
  failures_threshold: 5
  failures_window_s: 1800
  repeat_after_s: 7200
"""
    )
    config = load_config(path)
    assert config.alerts == AlertsConfig(
        sms_to=("+15550102000", "+442079460000"),
        gateway="backup",
        sender="CallBuddy",
        webhook_url="https://hooks.example/alerts/T000/SECRET",
        ami_down_after_s=60.0,
        gateway_down_after_s=600.0,
        failures_threshold=5,
        failures_window_s=1800.0,
        repeat_after_s=7200.0,
    )
    assert "SECRET" not in repr(config.alerts)  # webhook URLs may carry keys
    (business,) = config.businesses
    assert business.digest == DigestConfig(
        time="08:30", sms_to=("+15550103000",), webhook_url="https://hooks.example/digest?key=abc"
    )
    assert "key=abc" not in repr(business.digest)


def test_defaults_and_routes(write) -> None:
    config = load_config(write(BASE + "alerts:\n  sms_to: ['+15550102000']\n"))
    assert config.alerts.gateway == "sim"  # the first gateway
    assert config.alerts.sender == "+15550001000"  # what Glow Salon's texts are sent from
    assert config.alerts.ami_down_after_s == 120.0 and config.alerts.repeat_after_s == 3600.0
    route = alert_route(config)
    assert route is not None and (route.gateway, route.sender) == ("sim", "+15550001000")
    assert config.businesses[0].digest is None
    route = business_route(config, config.businesses[0])
    assert route is not None and (route.gateway, route.sender) == ("sim", "+15550001000")


def test_no_alerts_section_is_the_defaults(write) -> None:
    config = load_config(write(BASE))
    assert config.alerts == AlertsConfig()


def test_digest_time_forms(write) -> None:
    for written, expected in (('"08:00"', "08:00"), ("7:05", "07:05"), ("23:59", "23:59"), ('"0:00"', "00:00")):
        path = write(BASE + f"    digest: {{time: {written}, sms_to: ['+15550103000']}}\n")
        assert load_config(path).businesses[0].digest.time == expected, written


def test_problems_name_file_line_and_key(write) -> None:
    path = write(
        BASE
        + """\
    digest:
      time: "25:00"
      sms_to: ["12"]
      webhook_url: ftp://hooks.example/x?key=abc
alerts:
  sms_to: ["not a number", "+15550102000", "555-010-2000"]
  gateway: smsc
  sender: "This is far too long"
  webhook_url: "hooks.example/alerts"
  ami_down_after_s: -5
  failures_threshold: 0
  repeat: 10
"""
    )
    source = str(path)
    assert problems_of(path) == [
        f"{source}:11: businesses[0].digest.time: '25:00' is not a time of day (expected HH:MM, e.g. 08:00)",
        f"{source}:12: businesses[0].digest.sms_to[0]: '12' is not a phone number "
        "(expected e.g. +15550001000 or a number valid in region US)",
        f"{source}:13: businesses[0].digest.webhook_url: not an http(s) URL "
        "(expected a webhook URL, e.g. https://example.com/...)",
        f"{source}:15: alerts.sms_to[0]: 'not a number' is not a phone number "
        "(expected e.g. +15550001000 or a number valid in region US)",
        f"{source}:15: alerts.sms_to[2]: +15550102000 is listed twice (first on line 15)",
        f"{source}:16: alerts.gateway: 'smsc' is not a configured gateway (expected one of: sim, backup)",
        f"{source}:17: alerts.sender: 'This is far too long' is neither an E.164 number (e.g. +15550001000) "
        "nor an alphanumeric sender id (up to 11 letters, digits or spaces)",
        f"{source}:18: alerts.webhook_url: not an http(s) URL (expected a webhook URL, e.g. https://example.com/...)",
        f"{source}:19: alerts.ami_down_after_s: -5 is not allowed (expected a positive number of seconds)",
        f"{source}:20: alerts.failures_threshold: 0 is out of range (expected a whole number from 1 to 100000)",
        f"{source}:21: alerts.repeat: unknown key (did you mean 'repeat_after_s'?)",
    ]
    assert all("key=abc" not in problem for problem in problems_of(path))


def test_texts_without_any_gateway(write) -> None:
    path = write(
        """\
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    digest:
      sms_to: ["+15550103000"]
alerts:
  sms_to: ["+15550102000"]
  webhook_url: https://hooks.example/alerts
"""
    )
    source = str(path)
    assert problems_of(path) == [
        f"{source}:5: businesses[0].digest.sms_to: texts need a gateway, and none is configured "
        "(add one under `gateways:`)",
        f"{source}:7: alerts.sms_to: texts need a gateway, and none is configured (add one under `gateways:`)",
    ]


def test_alert_texts_need_a_sender(write) -> None:
    path = write(
        """\
gateways:
  - {name: sim, kind: simulated}
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
alerts:
  sms_to: ["+15550102000"]
"""
    )
    (problem,) = problems_of(path)
    assert problem == (
        f"{path}:7: alerts.sms_to: no business texts through gateway 'sim', so alert texts have no sender "
        "(set alerts.sender: a number or sender id that gateway may send from)"
    )
    config = load_config(write(Path(path).read_text() + "  sender: '+1 555 000 1999'\n"))
    assert config.alerts.sender == "+15550001999"


def test_a_digest_needs_somewhere_to_go(write) -> None:
    path = write(BASE + "    digest: {time: '07:00'}\n")
    assert problems_of(path) == [
        f"{path}:10: businesses[0].digest: nowhere to send the digest (give sms_to, webhook_url or both)"
    ]


def test_webhook_only_alerts_need_no_gateway(write) -> None:
    path = write(
        """\
businesses:
  - name: Glow Salon
    numbers: ["+1 555 000 1000"]
    digest: {webhook_url: "https://hooks.example/d"}
alerts:
  webhook_url: https://hooks.example/alerts
"""
    )
    config = load_config(path)
    assert config.alerts.webhook_url == "https://hooks.example/alerts" and config.alerts.sms_to == ()
    assert config.businesses[0].digest == DigestConfig(webhook_url="https://hooks.example/d")
    assert alert_route(config) is None


def test_numbers_use_the_business_region(write) -> None:
    path = write(
        """\
gateways:
  - {name: sim, kind: simulated}
businesses:
  - name: Salon London
    numbers: ["+44 20 7946 0000"]
    default_region: GB
    timezone: Europe/London
    digest: {sms_to: ["020 7946 0001"]}
"""
    )
    assert load_config(path).businesses[0].digest.sms_to == ("+442079460001",)
