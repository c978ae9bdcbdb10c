"""A business's answer to a caller, typed in a conversation (dashboard or API): checked, keyed and queued in the
same durable outbox as text-backs, so it is sent once, paced per sender, retried and given its receipt like them.

Rules: the business's gateway, from the number the caller texted (one conversation on the caller's phone), else its
sender; quiet hours defer it to their end, never refuse it; a caller who opted out of the business
is refused (checked in the transaction that stores the answer, and a later STOP cancels it while it waits). The key
is the client's token for this answer (a form's hidden field, an API's Idempotency-Key): sent twice, stored once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from callbuddy_pbx.config import Business, Config
from callbuddy_pbx.phone import mask
from callbuddy_pbx.recovery.schedule import next_allowed
from callbuddy_pbx.store.conversations import ANSWER, QUEUED, REFUSED, AnswerOutcome, number_texted, queue_answer
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import NewText

log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 640  # four SMS segments of GSM-7; a longer answer belongs in a call
# Refusals the answerer itself gives (the store gives OPTED_OUT and TOO_MANY).
EMPTY, TOO_LONG, BAD_TOKEN, NOT_SET_UP = "empty", "too_long", "bad_token", "not_set_up"
TOKEN = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


def answer_key(business: str, number: str, token: str) -> str:
    """One outbox key per (business, caller, client token): the same answer sent again is the same row."""
    digest = hashlib.sha256("\x00".join((business, number, token)).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{ANSWER}:{digest[:40]}"


class Answers:
    """Queues answers; `wake` is the outbox's, so an answer leaves at once rather than at the next poll."""

    def __init__(
        self, config: Config, store: CallStore, wake: Callable[[], None], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._businesses = {business.name: business for business in config.businesses}
        self._store = store
        self._wake = wake
        self._clock = clock

    def can_answer(self, business: str) -> bool:
        """Whether the business has a gateway to answer through."""
        found = self._businesses.get(business)
        return found is not None and bool(found.text_back.gateway)

    def quiet_until(self, business: str) -> float | None:
        """When the business's quiet hours end, while they last (an answer written now waits until then)."""
        found = self._businesses.get(business)
        if found is None:
            return None
        now = self._clock()
        send_at = _send_at(found, now)
        return send_at if send_at > now + 1 else None  # (now itself, to the microsecond, outside them)

    async def answer(self, business: str, number: str, body: str, token: str, author: str) -> AnswerOutcome:
        """Queue `body` to `number` (a thread's caller) for `business`, written by `author`."""
        found = self._businesses.get(business)
        text = body.strip()
        if found is None or not found.text_back.gateway:
            return AnswerOutcome(REFUSED, NOT_SET_UP)
        if not text:
            return AnswerOutcome(REFUSED, EMPTY)
        if len(text) > MAX_ANSWER_CHARS:
            return AnswerOutcome(REFUSED, TOO_LONG)
        if TOKEN.fullmatch(token) is None:
            return AnswerOutcome(REFUSED, BAD_TOKEN)
        now = self._clock()
        sender = await self._sender(found, number)
        outbox_row = NewText(
            key=answer_key(business, number, token),
            kind=ANSWER,
            to=number,
            sender=sender,
            gateway=found.text_back.gateway,
            body=text,
            send_at=_send_at(found, now),
            business=business,
        )
        outcome = await queue_answer(self._store, outbox_row, author, now)
        log.info("answer to %s for %s: %s %s", mask(number), business, outcome.status, outcome.reason or "")
        if outcome.status == QUEUED:
            self._wake()
        return outcome

    async def _sender(self, business: Business, number: str) -> str:
        """The number the caller wrote to (or our last text came from), else the configured sender, else the
        business's first number."""
        texted = await number_texted(self._store, number, business.name)
        return texted or business.text_back.sender or (business.numbers[0] if business.numbers else "")


def _send_at(business: Business, now: float) -> float:
    """Now, or when the business's quiet hours end."""
    moment = datetime.fromtimestamp(now, UTC)
    return next_allowed(business.text_back.quiet_hours, business.timezone, moment).timestamp()
