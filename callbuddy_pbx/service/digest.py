"""The owner's daily digest: at `digest.time` (the business's local time), yesterday's missed calls and texts.

"Yesterday" is the previous local calendar day, [local midnight yesterday, local midnight today), computed with
zoneinfo so a DST day is its true 23 or 25 hours long. Its figures are those of `recovery_stats` for the business
alone, so the digest, the stats command and the dashboard always agree.

Each digest is sent at most once: its key `digest:<business>:<YYYY-MM-DD>` (the day it reports on) is recorded
in `notifications` before it is sent (notify.deliver). A service that was down at digest time sends it when it
starts again, but only the same local day: a digest about the day before yesterday, arriving the day after, is
no longer news, so a day the service was down through is skipped rather than caught up on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from typing import Any
from zoneinfo import ZoneInfo

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config.alerts import DigestConfig
from callbuddy_pbx.message_text import segments
from callbuddy_pbx.service.notify import Notice, NotificationLog, Notifier, business_route, deliver
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.stats import RecoveryStats, recovery_stats

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0  # how late after digest.time a digest may go out (and how often the clock is looked at)
MAX_NAME_CHARS = 40  # of the business name in a text


@dataclass(frozen=True, slots=True)
class DigestDay:
    """The day a digest reports on, and its bounds in epoch seconds."""

    day: date
    since: float  # local midnight at the start of `day`
    until: float  # local midnight at its end (23, 24 or 25 hours later)


def local_midnight(day: date, zone: ZoneInfo) -> float:
    """The first instant of `day` on the local clock. Where midnight itself is skipped by a DST jump, fold=0 maps
    it past the gap: the first instant that exists."""
    return datetime.combine(day, time_of_day(0), tzinfo=zone).timestamp()


def due_day(digest: DigestConfig, timezone: str, now: float) -> DigestDay | None:
    """The day whose digest is due at `now`: yesterday, once today's local clock has passed digest.time (and until
    today ends); None before it."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, zone)
    hour, minute = (int(part) for part in digest.time.split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return None
    yesterday = local.date() - timedelta(days=1)
    return DigestDay(yesterday, local_midnight(yesterday, zone), local_midnight(local.date(), zone))


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def digest_text(business: str, day: date, stats: RecoveryStats, *, clicks: bool = True) -> str:
    """One line for the owner, in one SMS segment when it fits: the long form first, then shorter ones."""
    name = business if len(business) <= MAX_NAME_CHARS else business[: MAX_NAME_CHARS - 3] + "..."  # GSM-7 dots
    when = f"{day:%a} {day.day} {day:%b}"
    if stats.missed == 0:
        figures = [f"no missed calls ({_count(stats.answered, 'call', 'calls')} answered)", "no missed calls"]
        compact = "no missed calls"
    else:
        parts = f"{stats.texted} texted, {stats.delivered} delivered"
        missed = f"{_count(stats.missed, 'call', 'calls')} missed, {parts}"
        compact = f"{stats.missed} missed, {parts}"
        if clicks or stats.clicked:  # "0 clicked" means nothing for a business whose links are not tracked
            figures = [f"{missed}, {stats.clicked} clicked the booking link", f"{missed}, {stats.clicked} clicked"]
            compact += f", {stats.clicked} clicked"
        else:
            figures = [missed]
    candidates = [f"{name}, yesterday ({when}): {figures[0]}."]
    candidates += [f"{name}, yesterday: {text}." for text in figures]
    candidates.append(f"{name} yesterday: {compact}")  # a name outside GSM-7 leaves 70 characters a segment
    return next((text for text in candidates if segments(text) == 1), candidates[-1])


def digest_payload(
    business: Business, period: DigestDay, stats: RecoveryStats, text: str, service: str
) -> dict[str, Any]:
    return {
        "kind": "digest",
        "business": business.name,
        "day": period.day.isoformat(),
        "timezone": business.timezone,
        "since": period.since,
        "until": period.until,
        "calls": stats.calls,
        "answered": stats.answered,
        "missed": stats.missed,
        "texted": stats.texted,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "clicked": stats.clicked,
        "text": text,
        "service": service,
    }


class DigestScheduler:
    """Sends each business's digest once a day (`run()` until cancelled; `check()` is one look at the clock)."""

    def __init__(
        self,
        config: Config,
        store: CallStore,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        *,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self._config = config
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._interval_s = interval_s
        self._log = NotificationLog(store)
        self._done: set[str] = set()  # keys known to be recorded: no database read for them again
        self.businesses = tuple(business for business in config.businesses if business.digest is not None)

    async def run(self) -> None:
        if not self.businesses:
            return
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("digest: check failed; trying again in %g s", self._interval_s)
            await asyncio.sleep(self._interval_s)

    async def check(self) -> list[str]:
        """Send every digest due now and not sent yet; returns their keys."""
        sent: list[str] = []
        for business in self.businesses:
            assert business.digest is not None
            period = due_day(business.digest, business.timezone, self._clock())
            if period is None:
                continue
            key = f"digest:{business.name}:{period.day.isoformat()}"
            if key in self._done:
                continue
            if await self._log.exists(key):
                self._done.add(key)
                continue
            notice = await self.notice(business, period, key)
            if await deliver(self._log, self._notifier, notice, self._clock):
                sent.append(key)
                log.info("digest for %s (%s) sent", business.name, period.day)
            self._done.add(key)
        return sent

    async def notice(self, business: Business, period: DigestDay, key: str) -> Notice:
        digest = business.digest
        assert digest is not None
        stats = await recovery_stats(
            self._store, since=period.since, until=period.until, business=business.name, timezone=business.timezone
        )
        text = digest_text(business.name, period.day, stats, clicks=business.text_back.track_clicks)
        return Notice(
            key=key,
            kind="digest",
            text=text,
            payload=digest_payload(business, period, stats, text, self._notifier.service),
            sms_to=digest.sms_to,
            route=business_route(self._config, business),
            webhook_url=digest.webhook_url,
            business=business.name,
        )
