"""A mobile softphone's push wake-ups in an owner's words.

"Wakes by push", "Last woke in 1.2 s (14:05)", "Did not wake (14:07)": the devices page's words for what the
router recorded (asterisk/devices_model.WakeRecord).
"""

from __future__ import annotations

from dataclasses import dataclass

from callbuddy_pbx.asterisk.devices_model import Device, WakeFailure
from callbuddy_pbx.web.templating import seconds, when

FAILURES: dict[WakeFailure, str] = {
    WakeFailure.DID_NOT_WAKE: "Did not wake",
    WakeFailure.UNREGISTERED: "Push refused: the app must be signed in again",
    WakeFailure.CREDENTIALS_REJECTED: "Push refused: the push key was not accepted (the installer is alerted)",
    WakeFailure.SERVICE_BUSY: "Push service busy or unreachable",
    WakeFailure.REFUSED: "Push refused",
}


@dataclass(frozen=True, slots=True)
class WakeWords:
    summary: str  # "Wakes by push" ("" for a phone that does not)
    last_woke: str  # "Last woke in 1.2 s (14:05)", "" when it never woke since the service started
    failure: str  # the last failure, when it came after the last wake-up: "Did not wake (14:07)"


def wake_words(device: Device, timezone: str, now: float) -> WakeWords:
    if not device.push:
        return WakeWords("", "", "")
    if device.push_binding is None:
        summary = "Wakes by push once its app has registered with push"
    elif device.sleeping:
        summary = "Wakes by push (asleep now)"
    else:
        summary = "Wakes by push"
    record = device.wake
    last_woke = ""
    if record.woke_ms is not None and record.woke_at is not None:
        last_woke = f"Last woke in {seconds(record.woke_ms / 1000)} ({_at(record.woke_at, timezone, now)})"
    failure = ""
    if record.failing and record.failure is not None and record.failed_at is not None:
        failure = f"{FAILURES[record.failure]} ({_at(record.failed_at, timezone, now)})"
    return WakeWords(summary, last_woke, failure)


def _at(epoch: float, timezone: str, now: float) -> str:
    """ "14:05" today (on the page's clock), else "Mar 14 14:05"."""
    today = when(epoch, timezone, "%Y-%m-%d") == when(now, timezone, "%Y-%m-%d")
    return when(epoch, timezone, "%H:%M" if today else "%b %d %H:%M")
