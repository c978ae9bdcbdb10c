"""Forwarded replies to a webhook: a signed JSON POST (forward_rules.webhook_body, signature), with the forward's key
as Idempotency-Key so a receiver can drop a repeat. Redirects are not followed (a moved webhook is reconfigured, not
followed to a host nobody chose); URLs are logged by scheme and host only (a key may hide in them)."""

from __future__ import annotations

import aiohttp

from callbuddy_pbx.recovery.forward_rules import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Outcome,
    Reply,
    SendAnswer,
    http_answer,
    signature,
    webhook_body,
)
from callbuddy_pbx.service.notify import shown_url

TIMEOUT_S = 10.0
USER_AGENT = "CallBuddy-Forward/1"


class WebhookSender:
    """One aiohttp session for every webhook, opened on the first send (`close()` it)."""

    def __init__(self, *, timeout_s: float = TIMEOUT_S) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, reply: Reply, key: str, url: str, secret: str) -> SendAnswer:
        body = webhook_body(reply, key)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(secret, body),
            IDEMPOTENCY_HEADER: key,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        where = shown_url(url)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return http_answer(response.status, response.headers.get("Retry-After"))
        except TimeoutError:
            return SendAnswer(Outcome.RETRY, f"webhook {where}: no answer within {self._timeout.total:g} s")
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            return SendAnswer(Outcome.RETRY, f"webhook {where}: {type(exc).__name__}")
