"""Replies forwarded to the owner, the pure part: which reply is forwarded, its keys, what each target receives (the
text, the e-mail, the webhook's signed JSON) and what a send's answer does to the row (sent, tried again, failed).

Keys are what make a forward happen once: `forward_key` names (reply, target) and is UNIQUE in `reply_forwards`, the
outbox row of an SMS forward is keyed by it, an e-mail's Message-ID and a webhook's Idempotency-Key are made from
it. A forward sent again after a crash (see service/forwards.py) therefore carries the same identity as the first
send, and the owner's mail client or webhook receiver can tell it is one forward.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from enum import StrEnum
from zoneinfo import ZoneInfo

from callbuddy_pbx.config.forwarding import ForwardTarget
from callbuddy_pbx.message_text import encoding_of, segments
from callbuddy_pbx.recovery.policy import Keyword
from callbuddy_pbx.untrusted import printable

KIND = "forward"  # the outbox kind of an SMS forward, and the prefix of every forward key
MAX_SMS_SEGMENTS = 3  # a forwarded reply costs the owner at most three texts; the rest is cut ("...")
MAX_SUBJECT_NUMBER_CHARS = 40
RETRY_MIN_S = 5.0  # a server that cannot take the forward: first wait, doubled per try up to RETRY_MAX_S
RETRY_MAX_S = 900.0
MAX_AGE_S = 24 * 3600.0  # a forward its server could not take for a day is failed with the last reason
MAX_ERROR_CHARS = 300
SIGNATURE_HEADER = "X-CallBuddy-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Reply:
    """A stored reply, as forwarded: `id` is its row in inbound_messages (the conversations' r<id>)."""

    id: int
    business: str
    caller: str  # E.164 when it parsed, else as the gateway gave it (bounded)
    our_number: str  # the number the caller texted
    text: str
    received_at: float


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # trouble on the way (server down, busy, 5xx, 429): try again later, however often
    FAILED = "failed"  # a definite no about this forward (recipient refused, webhook 4xx): never tried again


@dataclass(frozen=True, slots=True)
class SendAnswer:
    outcome: Outcome
    error: str | None = None  # bounded, no secrets: what the server said
    retry_after_s: float | None = None  # when the server asked for a pause


@dataclass(frozen=True, slots=True)
class NextStep:
    state: str  # reply_forwards.state: "sent", "pending" (try again at `next_attempt_at`) or "failed"
    attempts: int
    next_attempt_at: float
    error: str | None


def is_forwarded(keyword: Keyword, text: str, business_known: bool) -> bool:
    """Only a reply in words (not STOP, START or HELP, not blank) to a number of a business is forwarded."""
    return keyword is Keyword.OTHER and business_known and bool(text.strip())


def forward_key(business: str, gateway: str, reply: str, target: ForwardTarget) -> str:
    """One key per (reply, target): `reply` is the reply's identity on `gateway` (keys.inbound_key), the same in
    every delivery of it, so a reply delivered twice makes the same key, and two replies two keys."""
    parts = (business, gateway, reply, target.channel, target.address)
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{KIND}:{digest[:40]}"


def message_id(key: str, from_address: str) -> str:
    """The e-mail's Message-ID, the same for every send of one forward (`key`)."""
    domain = from_address.rpartition("@")[2] or "callbuddy.invalid"
    return f"<{key.replace(':', '.')}@{domain}>"


def _plain(text: str) -> str:
    """The reply's words without control characters (a line break and a tab stay): what the owner can read."""
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))


def sms_text(reply: Reply) -> str:
    """ "Reply from +15557654321: <words>", cut to MAX_SMS_SEGMENTS texts of its own encoding (GSM-7: 459 septets;
    UCS-2: 201 code units), with "..." (GSM-7) or "…" (already UCS-2) where it was cut: a cut never turns a GSM-7
    text into a UCS-2 one, which would fit less than half."""
    full = f"Reply from {printable(reply.caller, MAX_SUBJECT_NUMBER_CHARS)}: {_plain(reply.text).strip()}"
    if segments(full) <= MAX_SMS_SEGMENTS:
        return full
    ellipsis = "..." if encoding_of(full) == "GSM-7" else "…"
    low, high = 0, len(full)  # the longest prefix that fits with its ellipsis: segments grow with the prefix
    while low < high:
        middle = (low + high + 1) // 2
        if segments(full[:middle].rstrip() + ellipsis) <= MAX_SMS_SEGMENTS:
            low = middle
        else:
            high = middle - 1
    return full[:low].rstrip() + ellipsis


def _local(reply: Reply, timezone: str) -> str:
    moment = datetime.fromtimestamp(reply.received_at, UTC).astimezone(ZoneInfo(timezone))
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def email_message(reply: Reply, key: str, to: str, from_address: str, timezone: str = "UTC") -> EmailMessage:
    """The e-mail to the owner: plain text, dated when the reply came, with a Message-ID made from `key`."""
    caller = printable(reply.caller, MAX_SUBJECT_NUMBER_CHARS)  # header-safe: no line breaks survive printable
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = f"Reply from {caller} to {printable(reply.business, 60)}"
    message["Date"] = formatdate(reply.received_at, usegmt=True)
    message["Message-ID"] = message_id(key, from_address)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: an auto-responder must not answer it
    message["X-CallBuddy-Reply-Id"] = str(reply.id)
    body = (
        f"{caller} replied to {reply.business} ({printable(reply.our_number, 40)}) at {_local(reply, timezone)}:\n\n"
        f"{_plain(reply.text).strip()}\n\n"
        "-- \nForwarded by CallBuddy. Answer the caller from the dashboard, or text them back from the business's "
        "number.\n"
    )
    message.set_content(body)
    return message


def webhook_body(reply: Reply, key: str) -> bytes:
    """The JSON a webhook receives (compact, keys sorted: the same bytes, and signature, in every send)."""
    payload = {
        "event": "reply",
        "forward_id": key,
        "reply_id": reply.id,
        "business": reply.business,
        "caller": reply.caller,
        "to": reply.our_number,
        "text": reply.text,
        "received_at": datetime.fromtimestamp(reply.received_at, UTC).isoformat(),
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The SIGNATURE_HEADER value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def http_answer(status: int, retry_after: str | None = None) -> SendAnswer:
    """A webhook's HTTP status: 2xx sent; 408, 429 and 5xx (and a redirect, not followed) are trouble on the way;
    any other 4xx is a definite no (a URL that is gone, a signature refused)."""
    if 200 <= status < 300:
        return SendAnswer(Outcome.SENT)
    pause = _seconds(retry_after)
    if status in (408, 429) or status >= 500:
        return SendAnswer(Outcome.RETRY, f"HTTP {status}", pause)
    if 300 <= status < 400:
        return SendAnswer(Outcome.RETRY, f"HTTP {status} (a redirect, not followed: check the URL)")
    return SendAnswer(Outcome.FAILED, f"HTTP {status}")


def smtp_answer(code: int, what: str, refused_recipient: bool) -> SendAnswer:
    """An SMTP server's error reply: a permanent (5xx) refusal of the recipient or of the message itself is a
    definite no; everything else (4xx, a refused login or sender: the server's or our setup, not this forward) is
    tried again."""
    error = f"SMTP {code}: {what}"[:MAX_ERROR_CHARS]
    if 500 <= code < 600 and refused_recipient:
        return SendAnswer(Outcome.FAILED, error)
    return SendAnswer(Outcome.RETRY, error)


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        value = float(header.strip())
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return min(max(value, 0.0), RETRY_MAX_S)


def retry_delay(attempts: int) -> float:
    """The wait after the `attempts`-th failed try (1, 2, ...): RETRY_MIN_S doubled per try, at most RETRY_MAX_S."""
    return min(RETRY_MAX_S, RETRY_MIN_S * 2.0 ** min(max(attempts - 1, 0), 20))


def next_step(answer: SendAnswer, attempts: int, created_at: float, now: float) -> NextStep:
    """What a send's answer makes of its row (`attempts` tries before this one)."""
    tried = attempts + 1
    error = None if answer.error is None else answer.error[:MAX_ERROR_CHARS]
    if answer.outcome is Outcome.SENT:
        return NextStep("sent", tried, now, None)
    if answer.outcome is Outcome.FAILED:
        return NextStep("failed", tried, now, error)
    if now - created_at >= MAX_AGE_S:
        hours = MAX_AGE_S / 3600
        return NextStep("failed", tried, now, f"not forwarded within {hours:g} h: {error}"[:MAX_ERROR_CHARS])
    delay = answer.retry_after_s if answer.retry_after_s is not None else retry_delay(tried)
    return NextStep("pending", tried, now + delay, error)
