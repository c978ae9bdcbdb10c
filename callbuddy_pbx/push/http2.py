"""The HTTP/2 client both push services are reached with: its connections stay open and are shared by every push
(Apple asks providers not to open one per push), and the HTTP libraries' log lines are kept free of tokens."""

from __future__ import annotations

import ssl

import httpx

from callbuddy_pbx.push.quiet_logs import hide_push_secrets

MAX_CONNECTIONS = 4


def http2_client(verify: ssl.SSLContext | bool, timeout_s: float) -> httpx.AsyncClient:
    hide_push_secrets()
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS)
    return httpx.AsyncClient(http2=True, verify=verify, timeout=httpx.Timeout(timeout_s), limits=limits)
