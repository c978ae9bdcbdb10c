"""/healthz and the system page when the service routes calls over ARI: a dropped ARI link is reported, because
calls then ring through the fail-open dialplan and nobody would otherwise notice."""

from __future__ import annotations

from dataclasses import dataclass

from callbuddy_pbx.web.health import AmiHealth, HealthStatus, link_health


@dataclass
class FakeLink:
    connected: bool
    last_error: str = ""


def test_an_ari_link_that_is_down_fails_the_health_check() -> None:
    up = HealthStatus(AmiHealth(True), ari=link_health(FakeLink(True)))
    assert up.ok and up.to_json()["ari"] == {"connected": True, "last_error": None}
    down = HealthStatus(AmiHealth(True), ari=link_health(FakeLink(False, "503 Asterisk not booted"), ("booted",)))
    assert not down.ok
    assert down.to_json()["ari"] == {"connected": False, "last_error": "503 Asterisk not ***"}


def test_without_routing_there_is_no_ari_part() -> None:
    status = HealthStatus(AmiHealth(True))
    assert status.ok and "ari" not in status.to_json()
