"""The forwarder: sends the rows of `reply_forwards` (store/forwards.py) to the owner's phone, mailbox or webhook.

Text-back stores a reply and its forwards in one transaction and wakes this task, which sends them within a moment;
it also looks every SWEEP_S (rows waiting to be tried again, rows a wake-up missed). Each row is marked `sending`
(committed) before it is sent, and its answer decides what comes next (forward_rules.next_step): sent; tried again
later when its server is down, busy or answers 5xx/429 (trouble on the way defers work, never drops it); failed only
on a definite no (an SMTP 5xx refusal of the recipient or the message, a webhook 4xx other than 408 and 429) or after
a day of trouble.

A row found `sending` on start was being sent when the service stopped: whether it left is unknown. It is sent again
with the same identity rather than dropped: an SMS forward is the outbox row keyed by the forward's key (queued
once: the outbox itself never re-sends a text it may have handed to the gateway), an e-mail carries the same
Message-ID, a webhook POST the same Idempotency-Key and body (so the same signature). A lost forward is the worse
failure for an owner waiting for "Can I come at 3?"; a repeat is recognisable as one.

Phone numbers in logs are masked; the reply's words are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.config.forwarding import ForwardTarget
from callbuddy_pbx.phone import mask
from callbuddy_pbx.recovery.forward_rules import KIND, Outcome, Reply, SendAnswer, next_step, sms_text
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.forward_email import EmailSender
from callbuddy_pbx.service.forward_webhook import WebhookSender
from callbuddy_pbx.service.notify import shown_url
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.forwards import ForwardResult, ForwardRow, ForwardStore
from callbuddy_pbx.store.messages import NewText

log = logging.getLogger(__name__)
T = TypeVar("T")

TASK = "reply-forwards"  # its name under the supervisor: in /healthz's tasks, and what alerts look for
SWEEP_S = 5.0  # with nothing due sooner, look again this often
BATCH = 50  # rows sent at once (concurrently); the rest wait for the next pass, a moment later
TROUBLE_AFTER_S = 60.0  # a forward still waiting for its server this long after its reply came is reported
FAILED_REPORTED_S = 3600.0  # a failed forward is reported for an hour


class EmailSending(Protocol):
    async def send(self, reply: Reply, key: str, to: str, timezone: str) -> SendAnswer: ...


class WebhookSending(Protocol):
    async def send(self, reply: Reply, key: str, url: str, secret: str) -> SendAnswer: ...

    async def close(self) -> None: ...


class ReplyForwarder:
    """Run `run()` supervised; `trouble` is what health shows (None: forwarding works)."""

    def __init__(
        self,
        config: Config,
        store: CallStore,
        text_back: TextBackService,
        *,
        email: EmailSending | None = None,
        webhook: WebhookSending | None = None,
        clock: Callable[[], float] = time.time,
        sweep_s: float = SWEEP_S,
        rows: ForwardStore | None = None,
    ) -> None:
        self._rows = rows if rows is not None else ForwardStore(store)
        self._businesses = {business.name: business for business in config.businesses}
        self._first_gateway = config.gateways[0].name if config.gateways else ""
        self._text_back = text_back
        self._email = email if email is not None else (EmailSender(config.smtp) if config.smtp else None)
        self._webhook = webhook if webhook is not None else WebhookSender()
        self._clock = clock
        self._sweep_s = sweep_s
        self._wakeup = asyncio.Event()
        self.stats: Counter[str] = Counter()  # sent, retried, failed, resumed
        self.trouble: str | None = None
        self.on_trouble: Callable[[str | None], None] | None = None  # told each change (the supervisor's report)
        self.passes = 0
        text_back.on_forwards = self.wake

    @staticmethod
    def wanted(config: Config) -> bool:
        return any(business.forward_to for business in config.businesses)

    def wake(self) -> None:
        """A reply with forwards was stored: send at once rather than at the next sweep."""
        self._wakeup.set()

    async def run(self) -> None:
        resumed = await _uncancelled(self._rows.resume_after_crash(self._clock()))
        if resumed:
            self.stats["resumed"] += resumed
            log.warning("%d forwarded replies were being sent when the service stopped: sent again with the same "
                        "identity (Message-ID, Idempotency-Key, outbox key)", resumed)  # fmt: skip
        try:
            while True:
                self._wakeup.clear()
                await self._pass()
                self.passes += 1
                wait = self._sweep_s
                next_at = await self._rows.next_due_at()
                if next_at is not None:
                    wait = min(wait, max(0.0, next_at - self._clock()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.001)):
                        await self._wakeup.wait()
        finally:
            await self._webhook.close()

    async def _pass(self) -> None:
        now = self._clock()
        rows = await self._rows.due(now, BATCH)
        claimed = set(await _uncancelled(self._rows.claim([row.id for row in rows], now)))
        chosen = [row for row in rows if row.id in claimed]
        if chosen:
            answers = await asyncio.gather(*(self._send(row) for row in chosen))
            done = self._clock()
            results = []
            for row, answer in zip(chosen, answers, strict=True):
                step = next_step(answer, row.attempts, row.created_at, done)
                self._count(row, step.state, step.error, step.next_attempt_at - done)
                results.append(ForwardResult(row.id, step.state, step.attempts, step.next_attempt_at, step.error))
            await _uncancelled(self._rows.finish(results, done))
        await self._judge(now)

    async def _send(self, row: ForwardRow) -> SendAnswer:
        business = self._businesses.get(row.business)
        target = _target_of(business, row)
        if business is None or target is None:
            return SendAnswer(Outcome.FAILED, "this target is no longer configured for the business")
        reply = Reply(row.inbound_id, row.business, row.caller, row.our_number, row.text, row.received_at)
        try:
            if target.channel == "sms":
                return await self._text(business, reply, row)
            if target.channel == "email":
                if self._email is None:
                    return SendAnswer(Outcome.RETRY, "no SMTP server is configured")
                return await self._email.send(reply, row.key, target.address, business.timezone)
            return await self._webhook.send(reply, row.key, target.address, target.secret)
        except Exception as exc:  # a sender's bug must not lose the forward: tried again, and said
            log.exception("forward %s: the %s sender raised", row.key, row.channel)
            return SendAnswer(Outcome.RETRY, f"sender error: {type(exc).__name__}")

    async def _text(self, business: Business, reply: Reply, row: ForwardRow) -> SendAnswer:
        """Queued in the durable outbox under the forward's key (queued once, however often this runs): the
        outbox sends, paces, retries and settles it like every text. Without a business (`business` NULL) it is not
        a conversation with the owner's number."""
        gateway = business.text_back.gateway or self._first_gateway
        sender = business.text_back.sender or (business.numbers[0] if business.numbers else "")
        if not gateway or not sender:
            return SendAnswer(Outcome.FAILED, "the business has no gateway or sender to text from")
        now = self._clock()
        text = NewText(row.key, KIND, row.target, sender, gateway, sms_text(reply), now)
        await _uncancelled(self._text_back.messages.enqueue([text], now))
        self._text_back.outbox.wake()
        return SendAnswer(Outcome.SENT)

    def _count(self, row: ForwardRow, state: str, error: str | None, wait_s: float) -> None:
        where = mask(row.target) if row.channel == "sms" else _shown_target(row)
        if state == "sent":
            self.stats["sent"] += 1
            log.info("reply from %s forwarded to %s (%s)", mask(row.caller), where, row.channel)
        elif state == "failed":
            self.stats["failed"] += 1
            log.error("reply from %s not forwarded to %s: %s", mask(row.caller), where, error)
        else:
            self.stats["retried"] += 1
            log.warning("reply from %s to %s waits: %s; next try in %.0f s", mask(row.caller), where, error, wait_s)

    async def _judge(self, now: float) -> None:
        waiting, failed, error = await self._rows.trouble(now - TROUBLE_AFTER_S, now - FAILED_REPORTED_S)
        parts = []
        if waiting:
            parts.append(f"{waiting} forwarded replies waiting for their server")
        if failed:
            parts.append(f"{failed} failed in the last hour")
        trouble = "; ".join(parts) + (f" ({error})" if error else "") if parts else None
        if trouble != self.trouble and self.on_trouble is not None:
            self.on_trouble(trouble)
        self.trouble = trouble


async def _uncancelled(write: Awaitable[T]) -> T:
    """A database write that a stop (the task cancelled) lets finish before the task ends: cancelled halfway, the
    shared connection would be left inside its transaction, or rolled back after its commit, for the writers that
    still run while the service stops (the calls being drained)."""
    task = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # the stop goes on; the write's own failure was the database's
            await task
        raise


def _target_of(business: Business | None, row: ForwardRow) -> ForwardTarget | None:
    if business is None:
        return None
    return next((t for t in business.forward_to if (t.channel, t.address) == (row.channel, row.target)), None)


def _shown_target(row: ForwardRow) -> str:
    """An e-mail address as it is (the owner's, configured); a webhook URL by scheme and host (a key may hide)."""
    return shown_url(row.target) if row.channel == "webhook" else row.target
