"""Alerts to the installer: the AMI link down, a gateway down, texts failing, a push service refusing our key.

`AlertRules` is the decision, pure and clock-free: fed samples of the service's state (`Sample`), it says which
notices to send. A problem is an *episode* from the first sample that shows it to the first that does not:

- it is alerted once it has lasted `ami_down_after_s` / `gateway_down_after_s` (text failures at once, when the
  failures of the last `failures_window_s` reach `failures_threshold`),
- alerted again every `repeat_after_s` while it lasts,
- and, once it ends, a "resolved" notice follows. An episode too short to be alerted ends silently.

Forwarded replies that cannot reach the owner (the forwarder's trouble, service/forwards.py: its server down for a
minute, or a forward failed in the last hour) are alerted at once: the delay is already in what the forwarder says.

A push service refusing our credentials (routing.service.RoutingService.push_refused) is alerted at once and only
once per service: it is learnt from calls' pushes and holds until a push through that service is taken again, so a
reminder would only repeat what nothing has tested since. It is not resumed after a restart either: the service
knows nothing of it until its next push is refused (a new episode) or taken.

`AlertMonitor` samples the live service every few seconds (its HealthStatus, and the failed texts counted in the
messages table) and sends what the rules decide through a Notifier, each notice recorded first (notify.deliver).
After a restart it resumes the episodes that were alerted and not resolved, so they are neither alerted again nor
left without their "resolved".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from callbuddy_pbx.config.alerts import AlertsConfig
from callbuddy_pbx.service.forwards import TASK as FORWARDS_TASK
from callbuddy_pbx.service.notify import Notice, NotificationLog, Notifier, TextRoute, deliver
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.health import HealthStatus, safe_detail

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 5.0
RESUME_WINDOW_S = 7 * 24 * 3600.0  # an alerted episode older than this is not resumed after a restart
MAX_TEXT_CHARS = 300  # an alert text: two segments at most, whatever the detail says

AMI_DOWN = "ami_down"
TEXT_FAILURES = "text_failures"
GATEWAY_DOWN = "gateway_down"  # + ":<gateway name>"
PUSH_REFUSED = "push_refused"  # + ":<provider>" (apns, fcm)
FORWARDS_FAILING = "forwards_failing"  # replies forwarded to owners are not getting through
DATABASE_AWAY = "database_away"  # the owner cannot reach the database: calls wait on its disk (sent unclaimed)
_PUSH_NAMES = {"apns": "Apple (APNs)", "fcm": "Google (FCM)"}
KINDS: dict[str, str] = {"alert": "alert", "repeat": "alert_repeat", "resolved": "alert_resolved"}  # -> table kind

NoticeKind = Literal["alert", "repeat", "resolved"]

_FAILED_TEXTS = """
    SELECT COUNT(*) FROM messages
    WHERE state IN ('failed', 'expired') AND updated_at >= :since AND done_at >= :since
"""  # updated_at >= done_at always: the condition on it lets the updated_at index narrow the scan


def gateway_problem(name: str) -> str:
    return f"{GATEWAY_DOWN}:{name}"


def push_problem(provider: str) -> str:
    return f"{PUSH_REFUSED}:{provider}"


def _reminded(problem: str) -> bool:
    """Repeated while it lasts; not a refused push key: nothing tests it again before its next push."""
    return not problem.startswith(PUSH_REFUSED)


@dataclass(frozen=True, slots=True)
class Sample:
    """The service's state at one moment."""

    at: float
    ami_up: bool
    ami_detail: str = ""  # why it is down
    gateways: Mapping[str, tuple[bool, str]] = field(default_factory=dict)  # name -> (up, detail)
    failed_texts: int = 0  # texts failed (or expired) within the failures window before `at`
    push_refused: Mapping[str, str] = field(default_factory=dict)  # provider -> the push service's reason
    forwards_trouble: str = ""  # what the reply forwarder reports (empty: forwarding works, or is not set up)
    database_trouble: str = ""  # why the database cannot be reached (empty: it answers)


@dataclass(frozen=True, slots=True)
class AlertNotice:
    kind: NoticeKind
    problem: str  # AMI_DOWN, TEXT_FAILURES or gateway_problem(name)
    detail: str
    since: float  # when the episode began
    at: float
    repeat: int = 0  # 1, 2... for the repeats of one episode

    @property
    def key(self) -> str:
        base = f"alert:{self.problem}:{int(self.since)}"
        if self.kind == "repeat":
            return f"{base}:repeat:{self.repeat}"
        return f"{base}:resolved" if self.kind == "resolved" else base

    def text(self, service: str) -> str:
        since = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M UTC")
        lasted = duration(self.at - self.since)
        what = describe(self.problem)
        if self.kind == "resolved":
            text = f"CallBuddy resolved ({service}): {what} is over, after {lasted} (since {since})."
        else:
            still = "still " if self.kind == "repeat" else ""
            text = f"CallBuddy alert ({service}): {still}{what} since {since} ({lasted})"
            text += f": {self.detail}" if self.detail else "."
        return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 1] + "…"

    def payload(self, service: str) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "problem": self.problem,
            "detail": self.detail,
            "since": datetime.fromtimestamp(self.since, UTC).isoformat(),
            "service": service,
            "text": self.text(service),  # a ready-made line, for chat webhooks that show `text`
        }


def describe(problem: str) -> str:
    if problem == AMI_DOWN:
        return "Asterisk (AMI) not connected: calls are not being recorded"
    if problem == TEXT_FAILURES:
        return "texts to missed callers are failing"
    if problem == FORWARDS_FAILING:
        return "callers' replies are not reaching the owners"
    if problem == DATABASE_AWAY:
        return "the database cannot be reached: calls are kept on this machine until it is back"
    if problem.startswith(f"{GATEWAY_DOWN}:"):
        return f"SMS gateway {problem.split(':', 1)[1]} down"
    if problem.startswith(f"{PUSH_REFUSED}:"):
        provider = problem.split(":", 1)[1]
        name = _PUSH_NAMES.get(provider, provider)
        return f"{name} refuses the push credentials: sleeping mobile softphones cannot be woken for calls"
    return problem


def duration(seconds: float) -> str:
    minutes = max(0, int(seconds // 60))
    if minutes < 60:
        return f"{minutes} min" if minutes else f"{max(0, int(seconds))} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@dataclass(slots=True)
class _Episode:
    since: float
    detail: str
    alerted: bool = False
    last_notice_at: float = 0.0
    repeats: int = 0


class AlertRules:
    """Which notices a sequence of samples calls for. Samples must come in time order."""

    def __init__(self, config: AlertsConfig) -> None:
        self._config = config
        self._episodes: dict[str, _Episode] = {}

    @property
    def open_problems(self) -> dict[str, float]:
        """Problems seen and not over: problem -> since."""
        return {problem: episode.since for problem, episode in self._episodes.items()}

    def resume(self, problem: str, since: float, last_notice_at: float, repeats: int) -> None:
        """An episode alerted before a restart: it goes on (repeats on schedule) or ends with its "resolved"."""
        self._episodes[problem] = _Episode(since, "", alerted=True, last_notice_at=last_notice_at, repeats=repeats)

    def check(self, sample: Sample) -> list[AlertNotice]:
        config = self._config
        current: dict[str, tuple[float, str]] = {}  # problem -> (how long before alerting, detail)
        if not sample.ami_up:
            current[AMI_DOWN] = (config.ami_down_after_s, sample.ami_detail)
        for name, (up, detail) in sorted(sample.gateways.items()):
            if not up:
                current[gateway_problem(name)] = (config.gateway_down_after_s, detail)
        if sample.failed_texts >= config.failures_threshold:
            window = duration(config.failures_window_s)
            current[TEXT_FAILURES] = (0.0, f"{sample.failed_texts} failed in the last {window}")
        for provider, reason in sorted(sample.push_refused.items()):
            current[push_problem(provider)] = (0.0, reason)
        if sample.forwards_trouble:
            current[FORWARDS_FAILING] = (0.0, sample.forwards_trouble)
        if sample.database_trouble:
            current[DATABASE_AWAY] = (config.ami_down_after_s, sample.database_trouble)
        notices: list[AlertNotice] = []
        for problem, (after_s, detail) in current.items():
            episode = self._episodes.get(problem)
            if episode is None:
                episode = self._episodes[problem] = _Episode(sample.at, detail)
            episode.detail = detail or episode.detail
            if not episode.alerted:
                if sample.at - episode.since >= after_s:
                    episode.alerted, episode.last_notice_at = True, sample.at
                    notices.append(AlertNotice("alert", problem, episode.detail, episode.since, sample.at))
            elif _reminded(problem) and sample.at - episode.last_notice_at >= config.repeat_after_s:
                episode.repeats += 1
                episode.last_notice_at = sample.at
                notices.append(
                    AlertNotice("repeat", problem, episode.detail, episode.since, sample.at, episode.repeats)
                )
        for problem in [problem for problem in self._episodes if problem not in current]:
            episode = self._episodes.pop(problem)
            if episode.alerted:
                notices.append(AlertNotice("resolved", problem, "", episode.since, sample.at))
        return notices


def sample_of(
    status: HealthStatus,
    failed_texts: int,
    at: float,
    secrets: Iterable[str] = (),
    push_refused: Mapping[str, str] | None = None,
) -> Sample:
    """A Sample from the health check's view (details bounded, numbers masked, secrets scrubbed)."""
    secrets = tuple(secrets)
    return Sample(
        at=at,
        ami_up=status.ami.connected,
        ami_detail=safe_detail(status.ami.last_error or "", secrets),
        gateways={name: (g.up, safe_detail(g.detail, secrets)) for name, g in status.gateways.items()},
        failed_texts=failed_texts,
        push_refused={provider: safe_detail(reason, secrets) for provider, reason in (push_refused or {}).items()},
        forwards_trouble=safe_detail(status.tasks_down.get(FORWARDS_TASK, ""), secrets),
        database_trouble=safe_detail(status.leadership_problem or "database unreachable", secrets)
        if status.role == "holding"
        else "",
    )


class AlertMonitor:
    """Checks the service every `interval_s` and tells the installer (`run()` until cancelled).

    `status` is the live health (e.g. `lambda: service_health(service, gateways, secrets=...)`); texts go through
    `route` (default: config.gateway from config.sender, as the configuration reader resolved them); `push_refused`
    says which push services refuse our credentials (RoutingService.push_refused; None: no push wake-up)."""

    def __init__(
        self,
        config: AlertsConfig,
        status: Callable[[], HealthStatus],
        store: CallStore,
        notifier: Notifier,
        clock: Callable[[], float] = time.time,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        route: TextRoute | None = None,
        secrets: Iterable[str] = (),
        push_refused: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self._config = config
        self._status = status
        self._push_refused = push_refused
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._interval_s = interval_s
        self._route = route or (TextRoute(config.gateway, config.sender) if config.gateway and config.sender else None)
        self._secrets = tuple(secrets)
        self._log = NotificationLog(store)
        self.rules = AlertRules(config)
        self._resumed = False
        self.sent: list[AlertNotice] = []  # notices this monitor sent (for tests and the dashboard)

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the monitoring
                log.exception("alerts: check failed; trying again in %g s", self._interval_s)
            await asyncio.sleep(self._interval_s)

    async def check(self) -> list[AlertNotice]:
        """One round: sample, decide, send. Returns the notices decided (sent, or already sent before)."""
        if not self._resumed:
            await self._resume()
        now = self._clock()
        failed = await self.failed_texts(now)
        refused = self._push_refused() if self._push_refused is not None else None
        notices = self.rules.check(sample_of(self._status(), failed, now, self._secrets, refused))
        for notice in notices:
            log.warning("alert: %s", notice.text(self._notifier.service))
            if await self._deliver(notice):
                self.sent.append(notice)
        return notices

    async def _deliver(self, notice: AlertNotice) -> bool:
        """Claimed in the database first (once across instances and restarts); but that the database is away is
        said without a claim: it cannot be recorded, and a repeat is better than silence."""
        try:
            return await deliver(self._log, self._notifier, self._notice(notice), self._clock)
        except Exception as exc:
            if notice.problem != DATABASE_AWAY or not self._store.is_outage(exc):
                raise
        sent, errors = await self._notifier.send(self._notice(notice))
        if not sent:
            log.error("alert %s not sent: %s", notice.key, "; ".join(errors))
        return sent

    async def failed_texts(self, now: float) -> int:
        """Texts failed in the window (0 while the database is away: that is alerted on its own)."""
        since = now - self._config.failures_window_s
        try:
            async with self._store.connection.execute(_FAILED_TEXTS, {"since": since}) as cursor:
                row = await cursor.fetchone()
        except Exception as exc:
            if not self._store.is_outage(exc):
                raise
            return 0
        return int(row[0]) if row is not None else 0

    def _notice(self, notice: AlertNotice) -> Notice:
        service = self._notifier.service
        return Notice(
            key=notice.key,
            kind=KINDS[notice.kind],
            text=notice.text(service),
            payload=notice.payload(service),
            sms_to=self._config.sms_to,
            route=self._route,
            webhook_url=self._config.webhook_url,
        )

    async def _resume(self) -> None:
        """Episodes alerted by an earlier run and not resolved: (problem, since) from their keys."""
        rows = await self._log.since(tuple(KINDS.values()), self._clock() - RESUME_WINDOW_S)
        episodes: dict[tuple[str, int], tuple[float, int, bool]] = {}  # -> (last notice, repeats, resolved)
        for row in rows:
            parsed = _episode_of(row.key)
            if parsed is None:
                continue
            last, repeats, resolved = episodes.get(parsed, (0.0, 0, False))
            episodes[parsed] = (
                max(last, row.created_at),
                repeats + (row.kind == KINDS["repeat"]),
                resolved or row.kind == KINDS["resolved"],
            )
        for (problem, since), (last, repeats, resolved) in sorted(episodes.items(), key=lambda item: item[0][1]):
            if not resolved and not problem.startswith(PUSH_REFUSED):  # judged afresh by the next push
                self.rules.resume(problem, float(since), last, repeats)
                log.info("alerts: %s (since %d) is still open from before the restart", problem, since)
        self._resumed = True


def _episode_of(key: str) -> tuple[str, int] | None:
    """("gateway_down:smsc", 1795257719) from "alert:gateway_down:smsc:1795257719[:repeat:N|:resolved]"."""
    if not key.startswith("alert:"):
        return None
    rest = key.removeprefix("alert:")
    if rest.endswith(":resolved"):
        rest = rest.removesuffix(":resolved")
    elif ":repeat:" in rest:
        rest = rest.rsplit(":repeat:", 1)[0]
    problem, _, since = rest.rpartition(":")
    return (problem, int(since)) if problem and since.isdigit() else None
