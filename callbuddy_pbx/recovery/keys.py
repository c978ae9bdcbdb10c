"""Idempotency keys of the outbox (pure): the same event always makes the same key, so a replayed call or a webhook
delivered twice finds its text already queued (`INSERT ... ON CONFLICT (key) DO NOTHING`) and nothing is sent twice.

A missed call's text is keyed by the call itself (its Linkedid): one text per call, however often it is reported.
"""

from __future__ import annotations


def missed_call_key(linkedid: str) -> str:
    return linkedid


def reply_key(kind: str, business: str, to: str, now: float) -> str:
    """An automatic reply (HELP, the opt-out confirmation): one per kind, business and caller in the same whole
    second, so a gateway's retry of the same webhook moments later is the same reply."""
    return f"{kind}:{business}:{to}:{int(now)}"
