"""What the router tells others about its pushes: each device's wake-ups and failures (kept by the device registry,
shown on the devices page) and which push services refuse our credentials (read by the alerts).

A refused credential is a fact about the service, not about one phone: it holds until a push through that service
is taken again, so one rejected key raises one alert however many calls fail meanwhile.
"""

from __future__ import annotations

from typing import Protocol

from callbuddy_pbx.asterisk.devices_model import WakeFailure
from callbuddy_pbx.push.binding import Provider
from callbuddy_pbx.push.sender import PushOutcome, PushResult, bounded_reason

_FAILURES = {
    PushOutcome.UNREGISTERED: WakeFailure.UNREGISTERED,
    PushOutcome.CREDENTIALS_REJECTED: WakeFailure.CREDENTIALS_REJECTED,
    PushOutcome.RETRY_LATER: WakeFailure.SERVICE_BUSY,
    PushOutcome.BAD_REQUEST: WakeFailure.REFUSED,
}


class WakeReport(Protocol):
    """Where wake-ups are recorded per device (asterisk.devices.DeviceRegistry)."""

    def push_woke(self, name: str, wake_ms: float, at: float) -> None: ...

    def push_failed(self, name: str, failure: WakeFailure, at: float) -> None: ...


def failure_of(outcome: PushOutcome) -> WakeFailure:
    """A push the service did not take, as a device's wake failure."""
    return _FAILURES.get(outcome, WakeFailure.REFUSED)


class PushCredentials:
    """Which push services refused our credentials (APNs 403, FCM 401/403), until one takes a push again."""

    def __init__(self) -> None:
        self._refused: dict[Provider, str] = {}

    def note(self, provider: Provider, result: PushResult) -> None:
        if result.outcome is PushOutcome.CREDENTIALS_REJECTED:
            self._refused[provider] = bounded_reason(result.reason or f"HTTP {result.status}")
        elif result.sent:
            self._refused.pop(provider, None)

    def refused(self) -> dict[str, str]:
        """provider ("apns", "fcm") -> the service's reason, for each service refusing our credentials now."""
        return {provider.value: reason for provider, reason in sorted(self._refused.items())}
