"""The alert for a push service refusing our credentials: once per service until a push is taken again, never
repeated, never resumed after a restart; then the monitor reading the routing service's state over a real store."""

from __future__ import annotations

from callbuddy_pbx.service.alerts import AlertMonitor, AlertRules, Sample, push_problem
from callbuddy_pbx.service.notify import Notifier
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from tests.test_alerts import CONFIG, T0, Clock, FakeStatus, _close_notifiers, gateway, kinds, store

__all__ = ["_close_notifiers", "gateway", "store"]  # fixtures

APNS, FCM = push_problem("apns"), push_problem("fcm")


def refused(at: float, **services: str) -> Sample:
    return Sample(at=T0 + at, ami_up=True, push_refused=services)


def test_a_refused_push_key_is_alerted_at_once_and_once_per_service_until_it_works() -> None:
    rules = AlertRules(CONFIG)
    assert kinds(rules.check(refused(0, apns="InvalidProviderToken"))) == [("alert", APNS)]
    later = [rules.check(refused(at, apns="InvalidProviderToken")) for at in (5, 3600, 2 * 3600, 30 * 3600)]
    assert later == [[], [], [], []]  # no repeats: nothing new is known until a push is taken
    both = rules.check(refused(30 * 3600 + 5, apns="InvalidProviderToken", fcm="PERMISSION_DENIED"))
    assert kinds(both) == [("alert", FCM)]  # each service is its own problem
    assert kinds(rules.check(refused(30 * 3600 + 10, fcm="PERMISSION_DENIED"))) == [("resolved", APNS)]


def test_the_alert_says_which_service_and_what_it_means_without_the_key() -> None:
    rules = AlertRules(CONFIG)
    [notice] = rules.check(refused(0, fcm="PERMISSION_DENIED"))
    text = notice.text("pbx-1")
    assert "Google (FCM) refuses the push credentials" in text and "cannot be woken" in text
    assert text.endswith(": PERMISSION_DENIED")


async def test_the_monitor_alerts_from_the_routing_services_state_and_resolves(
    store: CallStore, gateway: SimulatedGateway
) -> None:
    clock, status = Clock(), FakeStatus()
    state: dict[str, str] = {}
    notifier = Notifier({"sim": gateway}, service="pbx-1", retry_delay_s=0.0)
    try:
        monitor = AlertMonitor(CONFIG, status, store, notifier, clock, push_refused=lambda: dict(state))
        assert await monitor.check() == []
        state["apns"] = "InvalidProviderToken"
        clock.now = T0 + 5
        assert kinds(await monitor.check()) == [("alert", APNS)]
        clock.now = T0 + 2 * 3600
        assert await monitor.check() == []
        del state["apns"]
        clock.now = T0 + 2 * 3600 + 5
        assert kinds(await monitor.check()) == [("resolved", APNS)]
        assert len(gateway.sent) == 2  # one alert, one resolved
        # A new monitor (a restart) does not resume a push episode: it would only be "resolved" by knowing nothing.
        state["apns"] = "InvalidProviderToken"
        clock.now = T0 + 3 * 3600
        again = AlertMonitor(CONFIG, status, store, notifier, clock, push_refused=lambda: dict(state))
        assert kinds(await again.check()) == [("alert", APNS)]
        restarted = AlertMonitor(CONFIG, status, store, notifier, clock, push_refused=dict)
        clock.now = T0 + 3 * 3600 + 5
        assert await restarted.check() == []  # no "resolved" for an episode nobody knows the end of
    finally:
        await notifier.close()
