"""Forwarding that fails is alerted: the forwarder's trouble, as the supervisor shows it in health, is an alert at
once (its own delay is in the trouble already), and a "resolved" follows once it clears."""

from __future__ import annotations

from callbuddy_pbx.config.alerts import AlertsConfig
from callbuddy_pbx.service.alerts import FORWARDS_FAILING, AlertRules, Sample, sample_of
from callbuddy_pbx.service.forwards import TASK
from callbuddy_pbx.web.health import AmiHealth, HealthStatus

TROUBLE = "1 forwarded replies waiting for their server (SMTP server 127.0.0.1:2525 not reachable)"


def test_the_forwarders_trouble_in_health_is_what_the_alert_says() -> None:
    status = HealthStatus(AmiHealth(True), tasks_down={TASK: TROUBLE, "digests": "RuntimeError: x"})
    assert sample_of(status, 0, 100.0).forwards_trouble == TROUBLE
    assert sample_of(HealthStatus(AmiHealth(True)), 0, 100.0).forwards_trouble == ""


def test_forwarding_trouble_is_alerted_at_once_and_resolved_when_it_clears() -> None:
    rules = AlertRules(AlertsConfig())
    assert rules.check(Sample(at=100.0, ami_up=True)) == []
    (alert,) = rules.check(Sample(at=105.0, ami_up=True, forwards_trouble=TROUBLE))
    assert (alert.kind, alert.problem, alert.detail) == ("alert", FORWARDS_FAILING, TROUBLE)
    assert "callers' replies are not reaching the owners" in alert.text("callbuddy@test")
    assert rules.check(Sample(at=110.0, ami_up=True, forwards_trouble=TROUBLE)) == []  # once per episode
    (resolved,) = rules.check(Sample(at=200.0, ami_up=True))
    assert (resolved.kind, resolved.problem) == ("resolved", FORWARDS_FAILING)
