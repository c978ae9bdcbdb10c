"""Idempotency keys of the outbox (pure): the same event always makes the same key, so a replayed call or a webhook
delivered twice finds its text already queued (`INSERT ... ON CONFLICT (key) DO NOTHING`) and nothing is sent twice.

A missed call's text is keyed by the call itself (its Linkedid): one text per call, however often it is reported.
A reply from a phone is known by `inbound_key`, and the automatic answer to it (HELP, the opt-out confirmation) by
that reply: one answer per reply, however often its gateway delivers it.
"""

from __future__ import annotations

import hashlib

# Two texts without a gateway's id, alike in sender, number and words, this close together are one text delivered
# twice. Gateways deliver again after their wait for our answer (an SMSC's deliver_sm_resp timer, a webhook's
# timeout: commonly 10 to 30 s) plus a reconnect: 45 s covers that, and stays under the minute after which a person
# writing the same words again (HELP, since no answer came) is a new text that gets its own answer.
REPEAT_WINDOW_S = 45.0


def missed_call_key(linkedid: str) -> str:
    return linkedid


def _digest(*parts: str, chars: int) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:chars]


def inbound_key(
    message_id: str | None, sender: str, to: str, body: str, at: float, window_s: float = REPEAT_WINDOW_S
) -> str:
    """The identity of a reply, unique per gateway: the gateway's own id of it (`id:<id>`) when it gives one (the
    same in each of its retries), else its sender, our number, its words (case and spacing aside) and the period of
    `window_s` seconds it came in (`text:<digest>:<period>`)."""
    if message_id:
        return f"id:{message_id}"
    words = " ".join(body.casefold().split())
    return f"text:{_digest(sender, to, words, chars=32)}:{int(at // window_s)}"


def neighbour_keys(
    message_id: str | None, sender: str, to: str, body: str, at: float, window_s: float = REPEAT_WINDOW_S
) -> tuple[str, ...]:
    """The keys the same reply without an id has in the periods before and after `at`'s: one stored under either
    less than `window_s` away is this reply delivered again across a period's end. None for a reply with an id."""
    if message_id:
        return ()
    return tuple(inbound_key(None, sender, to, body, at + shift * window_s, window_s) for shift in (-1, 1))


def reply_key(kind: str, business: str, gateway: str, to: str, inbound: str) -> str:
    """An automatic answer (HELP, the opt-out confirmation): one per kind, business and reply (`inbound`, the
    reply's `inbound_key` on `gateway`), so a gateway's second delivery of the same reply is the same answer, and
    two replies are two answers. At most 90 characters, whatever the ids (a key is an id for some gateways)."""
    return f"{kind}:{to[:40]}:{_digest(business, gateway, inbound, chars=24)}"
