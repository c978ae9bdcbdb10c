"""The errors AriClient raises. Messages never contain the password (it only ever travels in a header)."""

from __future__ import annotations

from typing import Any


class AriError(Exception):
    """Base class of every ARI client error."""


class AriClosed(AriError):
    """The client was closed; it cannot be used again."""


class AriConnectError(AriError):
    """Asterisk's HTTP server could not be reached, or the WebSocket handshake was refused (`status` then set)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AriAuthError(AriConnectError):
    """401 on the WebSocket handshake: wrong ARI user name or password (ari.conf)."""


class AriTimeout(AriError, TimeoutError):
    """No (complete) answer to a REST request, or to the WebSocket handshake, within its timeout."""


class AriHttpError(AriError):
    """Asterisk answered a REST request with an HTTP error. `message` is Asterisk's own text from the JSON body
    (`{"message": ...}`, or `{"error": ...}` as for originate's 500 "Allocation failed"), else the reason phrase."""

    def __init__(self, method: str, target: str, status: int, reason: str, message: str, body: Any) -> None:
        super().__init__(f"ARI {method} {target}: {status} {reason}: {message}")
        self.method = method
        self.target = target  # path and query as sent, e.g. "/channels?endpoint=PJSIP/102&..."
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class AriBadRequest(AriHttpError):
    """400: a missing or invalid parameter (e.g. "Endpoint must be specified")."""


class AriUnauthorized(AriHttpError):
    """401: "Authentication required" (wrong user name or password)."""


class AriNotFound(AriHttpError):
    """404: the channel, bridge, endpoint or application does not exist (any more)."""


class AriConflict(AriHttpError):
    """409: the object is in the wrong state, e.g. "Channel not in Stasis application" for answer/ring/hangup."""


class AriUnprocessable(AriHttpError):
    """422: a referenced object is unusable, e.g. addChannel of a channel not in Stasis, an unknown event source."""


class AriServerError(AriHttpError):
    """500: e.g. originate to an endpoint with no registered contact ("Allocation failed"; no channel is created)."""


class AriUnavailable(AriHttpError):
    """503: "Asterisk not booted" (for ~0.5 s while Asterisk restarts, trace 34)."""


_BY_STATUS: dict[int, type[AriHttpError]] = {
    400: AriBadRequest,
    401: AriUnauthorized,
    404: AriNotFound,
    409: AriConflict,
    422: AriUnprocessable,
    500: AriServerError,
    503: AriUnavailable,
}


def http_error(method: str, target: str, status: int, reason: str, body: Any) -> AriHttpError:
    """The typed error for an HTTP error answer; Asterisk's message is taken from the body when it has one."""
    message = ""
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                message = value
                break
    elif isinstance(body, str):
        message = body.strip()[:200]
    cls = _BY_STATUS.get(status, AriHttpError)
    return cls(method, target, status, reason, message or reason or "(no message)", body)


__all__ = [
    "AriAuthError",
    "AriBadRequest",
    "AriClosed",
    "AriConflict",
    "AriConnectError",
    "AriError",
    "AriHttpError",
    "AriNotFound",
    "AriServerError",
    "AriTimeout",
    "AriUnauthorized",
    "AriUnavailable",
    "AriUnprocessable",
    "http_error",
]
