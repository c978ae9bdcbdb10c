"""Gateways that receive receipts and inbound texts over HTTP: what the web server routes webhooks to."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

WEBHOOK_KINDS: tuple[str, ...] = ("status", "inbound")  # /webhooks/{gateway}/status and /webhooks/{gateway}/inbound


@runtime_checkable
class WebhookGateway(Protocol):
    name: str

    async def handle_webhook(self, kind: str, request: web.Request) -> web.Response:
        """Answer one webhook of `kind` ("status" or "inbound"): parse, authenticate, validate, report, reply.

        Never raises: a malformed request is a 400 naming the field, an unauthenticated one a 403.
        """
        ...
