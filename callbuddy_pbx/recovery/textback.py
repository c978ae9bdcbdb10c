"""Text-back: from finished calls to queued texts, and from receipts and replies (STOP, START, HELP) to their effects.

Decisions are made by the pure policy; this module gathers the facts it needs, stores each call with its verdict and
its text in one transaction, and hands receipts and replies from the gateways to the store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.message_text import render
from callbuddy_pbx.model import CallRecord, Outcome
from callbuddy_pbx.phone import mask, to_e164
from callbuddy_pbx.recovery.forward_rules import forward_key, is_forwarded
from callbuddy_pbx.recovery.keys import REPEAT_WINDOW_S, inbound_key, missed_call_key, neighbour_keys, reply_key
from callbuddy_pbx.recovery.outbox import Outbox
from callbuddy_pbx.recovery.policy import Keyword, PolicyFacts, classify_inbound, decide
from callbuddy_pbx.sms.gateway import DeliveryReport, InboundSms, SmsGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.forwards import NewForward
from callbuddy_pbx.store.links import NewLink, new_token
from callbuddy_pbx.store.messages import (
    FAILED,
    SENT,
    MessageStore,
    NewText,
    OutboxRow,
    ReplyEffect,
    SendUpdate,
    Verdict,
)

log = logging.getLogger(__name__)

MAX_INBOUND_CHARS = 640
MAX_MESSAGE_ID_CHARS = 128  # of a gateway's id of a reply (the HTTP gateways refuse longer ones)
MAX_PENDING_LATENCIES = 10_000  # hang-up times kept for the latency metric, one per text not yet sent
NETWORK_ERROR_PREFIX = "network error"  # how HTTP gateways word a send that did not reach them (http_common)


class TextMetrics(Protocol):
    """What text-back reports to the service's metrics (service.metrics.Metrics), named here so that recovery
    depends on nothing above it."""

    def watch_outbox(self, stats: Mapping[str, int]) -> None: ...

    def text_update(self, row: OutboxRow, update: SendUpdate, ended_at: float | None) -> None: ...

    def text_report(self, report: DeliveryReport) -> None: ...


class TextBackService:
    def __init__(
        self,
        config: Config,
        store: CallStore,
        gateways: Mapping[str, SmsGateway],
        *,
        clock: Callable[[], float] = time.time,
        token_factory: Callable[[], str] = new_token,
        on_update: Callable[[OutboxRow, SendUpdate], None] | None = None,
        on_receipt: Callable[[str, DeliveryReport], None] | None = None,
        metrics: TextMetrics | None = None,
    ) -> None:
        self._config = config
        self._on_receipt = on_receipt
        self._on_update = on_update
        self._metrics = metrics
        self._ended_at: dict[str, float] = {}  # linkedid -> hang-up, of texts waiting for their send (for metrics)
        self.gateways_started: set[str] = set()  # names of the gateways whose start() completed
        self.network_errors: dict[str, str] = {}  # gateway -> its last send's network error (cleared by a send)
        self._gateways = gateways
        self._clock = clock
        self._new_token = token_factory
        self.messages = MessageStore(store)
        rates = {g.name: g.rate_per_s for g in config.gateways}
        self.outbox = Outbox(
            self.messages,
            gateways,
            rates=rates,
            max_age_s=config.outbox.max_age_s,
            resend_unknown_after_s=config.outbox.resend_unknown_after_s,
            clock=clock,
            on_update=self._updated,
        )
        self._businesses = {b.name: b for b in config.businesses}
        self._by_number = {n: b for b in config.businesses for n in b.numbers}
        self._by_sender = {b.text_back.sender: b for b in config.businesses if b.text_back.sender}
        self.on_forwards: Callable[[], None] | None = None  # a reply to forward was stored: the forwarder's wake
        if metrics is not None:
            metrics.watch_outbox(self.outbox.stats)

    async def start(self) -> None:
        for name, gateway in self._gateways.items():
            await gateway.start(partial(self.on_report, name), partial(self.on_inbound, name))
            self.gateways_started.add(name)

    async def close(self) -> None:
        self.gateways_started.clear()
        for gateway in self._gateways.values():
            await gateway.close()

    # ---- calls -> texts -------------------------------------------------------------------------------------

    async def record_calls(self, records: Sequence[CallRecord]) -> int:
        """Store finished calls with the policy's verdict and, for those that get one, their text."""
        now = self._clock()
        verdicts: list[Verdict] = []
        texts: list[NewText] = []
        links: list[NewLink] = []
        answered: list[tuple[str, str, float]] = []
        texted_now: dict[tuple[str, str], float] = {}  # two missed calls from one caller in one batch: one text
        for record in records:
            business = self._businesses.get(record.business or "")
            if business is not None and record.caller and record.outcome is Outcome.ANSWERED:
                answered.append((record.caller, business.name, record.started_at))
            facts = PolicyFacts()
            if business is not None and record.caller:
                pair = (record.caller, business.name)
                stored = await self.messages.facts(record.caller, business.name, now - business.text_back.window_s)
                last = max(filter(None, (stored.last_text_at, texted_now.get(pair))), default=None)
                facts = PolicyFacts(opted_out=stored.opted_out, last_text_at=last)
            public_url = self._config.web.public_url
            token = self._new_token() if business is not None and business.text_back.track_clicks and public_url else ""
            decision = decide(
                record,
                business,
                facts,
                now,
                public_url=public_url,
                link_token=token,
                found_late_s=self._config.cel.text_within_s,
            )
            verdicts.append(Verdict(record.linkedid, decision.send, decision.reason.value))
            if decision.send and business is not None:
                texted_now[(decision.to, business.name)] = now
                texts.append(
                    NewText(
                        key=missed_call_key(record.linkedid),
                        kind="missed_call",
                        to=decision.to,
                        sender=decision.sender,
                        gateway=decision.gateway,
                        body=decision.text,
                        send_at=decision.send_at,
                        business=business.name,
                        linkedid=record.linkedid,
                    )
                )
                if decision.link_token:  # stored only with its text: a replayed call makes no second token
                    links.append(
                        NewLink(record.linkedid, decision.link_token, decision.link_url, record.linkedid, business.name)
                    )
        new = await self.messages.save_calls_with_texts(records, verdicts, texts, answered, now, links=links)
        if self._metrics is not None and texts:
            self._remember_hang_ups(new, {t.linkedid for t in texts if t.linkedid})
        if texts:
            self.outbox.wake()
        return len(new)

    def _remember_hang_ups(self, new: Sequence[CallRecord], texted: set[str]) -> None:
        for record in new:
            if record.linkedid in texted:
                self._ended_at[record.linkedid] = record.ended_at
        while len(self._ended_at) > MAX_PENDING_LATENCIES:  # texts cancelled or held off for long: forget the oldest
            del self._ended_at[next(iter(self._ended_at))]

    def _updated(self, row: OutboxRow, update: SendUpdate) -> None:
        """The outbox's on_update: gateway health and metrics first, then the caller's listener."""
        if update.state != SENT and update.error and update.error.startswith(NETWORK_ERROR_PREFIX):
            self.network_errors[row.gateway] = update.error
        else:
            self.network_errors.pop(row.gateway, None)
        if self._metrics is not None:
            ended_at = self._ended_at.get(row.linkedid) if row.linkedid else None
            if row.linkedid and update.state in (SENT, FAILED):
                self._ended_at.pop(row.linkedid, None)
            self._metrics.text_update(row, update, ended_at)
        if self._on_update is not None:
            self._on_update(row, update)

    # ---- gateways -> store ----------------------------------------------------------------------------------

    async def on_report(self, gateway: str, report: DeliveryReport) -> None:
        await self.messages.apply_report(gateway, report)
        if self._metrics is not None:
            self._metrics.text_report(report)
        if self._on_receipt is not None:
            self._on_receipt(gateway, report)

    async def on_inbound(self, gateway: str, sms: InboundSms) -> None:
        """A reply: STOP / START / HELP act for the business whose number was texted (all of them if unknown).

        Stored with its effects in one transaction, known by its identity (the gateway's id of it, else its words and
        when it came): the same reply delivered again by its gateway is not stored, counted or acted on again."""
        now = self._clock()
        sender = to_e164(sms.sender, self._config.default_region) or sms.sender[:40]
        to = sms.to[:40]
        text = sms.text[:MAX_INBOUND_CHARS]
        message_id = sms.message_id[:MAX_MESSAGE_ID_CHARS] if sms.message_id else None
        business = self._business_texted(sms.to)
        keyword = classify_inbound(text)
        identity = inbound_key(message_id, sender, to, text, now)
        nearby = neighbour_keys(message_id, sender, to, text, now)  # the same text just across a period's end
        targets = [business] if business is not None else list(self._config.businesses)
        effects: list[ReplyEffect] = []
        for target in targets:
            if keyword is Keyword.OPT_OUT:  # confirmed once, not per STOP: only when it changes the opt-out
                confirmation = self._reply(target, "opt_out_confirmation", sender, sms.to, gateway, identity, now)
                effects.append(ReplyEffect(target.name, True, confirmation, only_if_changed=True))
            elif keyword is Keyword.OPT_IN:
                effects.append(ReplyEffect(target.name, False))
            elif keyword is Keyword.HELP and business is not None:
                help_text = self._reply(target, "help", sender, sms.to, gateway, identity, now)
                effects.append(ReplyEffect(target.name, text=help_text))
        forwards = self._forwards(business, keyword, text, gateway, identity)
        queued = await self.messages.record_inbound(
            gateway,
            sender,
            to,
            business.name if business else None,
            text,
            keyword.value,
            now,
            key=identity,
            message_id=message_id,
            same_keys=nearby,
            within_s=REPEAT_WINDOW_S,
            effects=effects,
            forwards=forwards,
        )
        if queued is None:
            log.info("reply from %s delivered again by %s: already handled", mask(sender), gateway)
            return
        log.info("reply from %s: %s (%d businesses)", mask(sender), keyword.value, len(targets))
        if queued:
            self.outbox.wake()
        if forwards and self.on_forwards is not None:
            self.on_forwards()

    @staticmethod
    def _forwards(
        business: Business | None, keyword: Keyword, text: str, gateway: str, identity: str
    ) -> list[NewForward]:
        """A reply in words to a business's number goes to each of the business's forward targets, keyed by the
        reply's identity and the target (forward_rules.forward_key): delivered twice, forwarded once."""
        if business is None or not is_forwarded(keyword, text, business_known=True):
            return []
        return [
            NewForward(forward_key(business.name, gateway, identity, t), business.name, t.channel, t.address)
            for t in business.forward_to
        ]

    def _business_texted(self, to: str) -> Business | None:
        number = to_e164(to, self._config.default_region)
        return self._by_number.get(number or "") or self._by_sender.get(to)

    def _reply(
        self, business: Business, kind: str, to: str, our_number: str, gateway: str, inbound: str, now: float
    ) -> NewText:
        """The automatic answer of `kind` to the reply `inbound` (its identity, keys.inbound_key) from `to`."""
        template = business.text_back.opt_out_text if kind == "opt_out_confirmation" else business.text_back.help_text
        body = render(
            template,
            business=business.name,
            booking_url=business.booking_url,
            caller_name=None,
            when=datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(business.timezone)),
        )
        sender = business.text_back.sender or our_number or (business.numbers[0] if business.numbers else "")
        key = reply_key(kind, business.name, gateway, to, inbound)  # the same reply delivered twice: one answer
        return NewText(key, kind, to, sender, gateway, body, now, business=business.name)
