"""Prometheus metrics of one running service, in a registry of its own (never the process-wide default one).

What changes per AMI event is never touched here: the AMI client already counts, and its counters are read when
Prometheus scrapes (`watch_ami`). Calls and texts are rare enough to be counted as they happen. The outbox backlog
is a database count, refreshed by `refresh()` before each scrape. Labels are outcomes, statuses and gateway names:
never a phone number, a message body or a credential.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import FAILED, QUEUED, SENDING, SENT, OutboxRow, SendUpdate

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what `render()` returns
TEXT_STATUSES = ("sent", "failed", "retried", "delivered", "expired", "unknown")
# Caller hang-up -> text accepted by the gateway: a few ms (no hold-off, local gateway) up to a minute (retries).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
_REPORT_STATUS = {
    DeliveryState.DELIVERED: "delivered",
    DeliveryState.EXPIRED: "expired",
    DeliveryState.FAILED: "failed",
}

BacklogSource = Callable[[], Awaitable[int]]


class AmiStats(Protocol):
    """What the metrics read from the AMI client at scrape time (AmiClient has all three)."""

    @property
    def connected(self) -> bool: ...

    @property
    def connects(self) -> int: ...

    @property
    def events_received(self) -> int: ...


def store_backlog(store: CallStore) -> BacklogSource:
    """The number of texts waiting to be sent or being sent, counted in the database (uses the `messages_due` index)."""

    async def count() -> int:
        async with store.connection.execute(
            "SELECT COUNT(*) FROM messages WHERE state IN (?, ?)", (QUEUED, SENDING)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    return count


class _ScrapeTimeCollector:
    """Series computed when scraped: the AMI client's counters and the text counts (plus recovered unknowns)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._metrics)

    @staticmethod
    def _families(metrics: Metrics | None) -> list[Metric]:
        events = CounterMetricFamily("callbuddy_ami_events", "AMI events received from Asterisk")
        reconnects = CounterMetricFamily(
            "callbuddy_ami_reconnects", "Successful AMI logins after the first one (the link was lost and restored)"
        )
        connected = GaugeMetricFamily("callbuddy_ami_connected", "1 while logged in to Asterisk's AMI, else 0")
        texts = CounterMetricFamily("callbuddy_texts", "Text send attempts and receipts, by status", labels=["status"])
        if metrics is None:  # describe(): names only
            return [events, reconnects, connected, texts]
        ami = metrics.ami
        events.add_metric([], ami.events_received if ami else 0)
        reconnects.add_metric([], max(0, ami.connects - 1) if ami else 0)
        connected.add_metric([], 1.0 if ami is not None and ami.connected else 0.0)
        counts = metrics.text_counts()
        for status in TEXT_STATUSES:
            texts.add_metric([status], counts.get(status, 0))
        return [events, reconnects, connected, texts]


class Metrics:
    """The service's metrics. Feed it with the `call_finished` / `text_update` / `text_report` hooks, point it at
    the live objects with `watch_*`, then `await refresh()` and `render()` for each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ami: AmiStats | None = None
        self._backlog_source: BacklogSource | None = None
        self._outbox_stats: list[Mapping[str, int]] = []
        self._texts: Counter[str] = Counter()
        self.backlog: int | None = None  # the last count `refresh()` made (None before the first one)
        self._calls = PromCounter(
            "callbuddy_calls", "Finished inbound calls, by outcome", ["outcome"], registry=self.registry
        )
        for outcome in Outcome:
            self._calls.labels(outcome.value)
        self._set_aside = PromCounter(
            "callbuddy_calls_set_aside", "Finished calls the database refused, kept aside", registry=self.registry
        )
        self._backlog = Gauge(
            "callbuddy_outbox_backlog", "Texts queued or being sent (refreshed at each scrape)", registry=self.registry
        )
        self._latency = Histogram(
            "callbuddy_text_latency_seconds",
            "From the caller's hang-up to the gateway accepting the text",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._gateway_up = Gauge(
            "callbuddy_gateway_up", "1 when the SMS gateway can take texts, else 0", ["gateway"], registry=self.registry
        )
        self.registry.register(_ScrapeTimeCollector(self))

    # ---- sources read at scrape time ------------------------------------------------------------------------

    def watch_ami(self, ami: AmiStats) -> None:
        self.ami = ami

    def watch_outbox(self, stats: Mapping[str, int]) -> None:
        """An Outbox's `stats`: its `recovered_unknown` count is reported as texts_total{status="unknown"}."""
        self._outbox_stats.append(stats)

    def watch_backlog(self, source: BacklogSource) -> None:
        self._backlog_source = source

    async def refresh(self) -> int | None:
        """Count the backlog again (when a source is watched); on a database error keep the last value."""
        if self._backlog_source is not None:
            try:
                self.backlog = await self._backlog_source()
            except Exception as exc:
                log.warning("could not count the outbox backlog: %s", type(exc).__name__)
            else:
                self._backlog.set(self.backlog)
        return self.backlog

    def set_gateways_up(self, up: Mapping[str, bool]) -> None:
        for name, is_up in up.items():
            self._gateway_up.labels(name).set(1.0 if is_up else 0.0)

    # ---- hooks the service calls ----------------------------------------------------------------------------

    def call_finished(self, record: CallRecord) -> None:
        self._calls.labels(record.outcome.value).inc()

    def call_set_aside(self) -> None:
        self._set_aside.inc()

    def text_update(self, row: OutboxRow, update: SendUpdate, ended_at: float | None) -> None:
        """One send attempt's result; `ended_at` (the call's hang-up, when known) gives the latency of a sent text."""
        if update.state == SENT:
            self._texts["sent"] += 1
            if ended_at is not None:
                self._latency.observe(max(0.0, update.at - ended_at))
        elif update.state == QUEUED:
            self._texts["retried"] += 1
        elif update.state == FAILED:
            self._texts["failed"] += 1

    def text_report(self, report: DeliveryReport) -> None:
        """A delivery receipt from a gateway (intermediate ones are not counted)."""
        status = _REPORT_STATUS.get(report.state)
        if status is not None:
            self._texts[status] += 1

    # ---- output ---------------------------------------------------------------------------------------------

    def text_counts(self) -> dict[str, int]:
        counts = dict(self._texts)
        counts["unknown"] = counts.get("unknown", 0) + sum(s.get("recovered_unknown", 0) for s in self._outbox_stats)
        return counts

    def render(self) -> bytes:
        """Every series, in Prometheus' text format 0.0.4 (see CONTENT_TYPE)."""
        return generate_latest(self.registry)
