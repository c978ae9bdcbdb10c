"""How the service reaches Asterisk's REST Interface (ARI): the type only; reading it from YAML lives elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AriConfig:
    """ARI over HTTP + WebSocket (Asterisk's http.conf and ari.conf).

    `url` is the HTTP server's base ("http://host:8088"); a trailing "/ari" is accepted too. The WebSocket URL
    is derived from it (ws:// or wss://). The password goes in an Authorization header, never in a URL.
    """

    url: str = "http://127.0.0.1:8088"
    username: str = "callbuddy"
    password: str = field(default="", repr=False)  # never printed or logged
    app: str = "callbuddy"  # the Stasis application name the dialplan's Stasis() uses
    reconnect_min_s: float = 0.5  # first retry after a drop (trace 34: Asterisk answers again ~1 s after a restart)
    reconnect_max_s: float = 30.0  # backoff cap; also the wait after a refused login
    heartbeat_s: float = 3.0  # WebSocket ping after this much silence; no pong within half of it = dead link
    request_timeout_s: float = 5.0  # each REST request, and the WebSocket handshake
