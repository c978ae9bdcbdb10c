"""Whether Asterisk's ARI is ready for the numbers CallBuddy routes (`routing: callbuddy`), and what to fix.

`check_ari` asks, in order, and stops at the first thing that does not work:

1. the HTTP server at `ari.url` answers and accepts the ARI user (GET /ari/asterisk/info);
2. whether the service's app is registered now (GET /ari/applications). Only information: an app that held
   subscriptions stays listed after its WebSocket closed (trace 33), so listed does not prove connected;
3. a Stasis application can connect: it opens the event WebSocket, sees the app registered, and closes it.

The WebSocket is opened as `<app>-check`, never as the service's own app. Asterisk gives an app to one WebSocket,
the newest (the older one gets ApplicationReplaced and no more events), so connecting as `ari.app` would take the
running service's calls away; and with no service running, a call arriving meanwhile would enter Stasis on a socket
about to close instead of failing open. No dialplan sends calls to the probe's name, and it is gone once closed (it
holds no subscriptions).

Messages never contain the password (it only travels in the Authorization header). States may quote what Asterisk
sent: show them through `untrusted.printable`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import aiohttp
from yarl import URL

from callbuddy_pbx.asterisk.ari import (
    AriClient,
    AriConnectError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriTimeout,
    AriUnauthorized,
    AriUnavailable,
)
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.asterisk import AriConfig, derived_ari_password, loopback_bind
from callbuddy_pbx.service.pbx_status import Finding, Level

PROBE_SUFFIX = "-check"
_REGISTERED_TRIES = 3  # GET /applications/<probe> right after the handshake, then after short pauses
_REGISTERED_PAUSE_S = 0.1
_RENDER = "re-run `callbuddy-pbx render --config ... --out /etc/asterisk`"
_LOAD_ARI = (
    "load ARI with `asterisk -rx 'module load res_ari.so'` and its res_ari_*.so resources; ari.conf needs "
    f"`enabled = yes`, which render writes: {_RENDER}"
)
_LOAD_EVENTS = "load the event WebSocket: `asterisk -rx 'module load res_http_websocket.so'`, then res_ari_events.so"


def routed_numbers(config: Config) -> tuple[str, ...]:
    """The business numbers whose calls enter the service's Stasis app."""
    return tuple(group.number for group in config.pbx.ring_groups if group.routing == "callbuddy")


def password_is_derived(config: Config) -> bool:
    """True when the ARI password is the one render derives from pbx.secret_key (no `ari.password` given)."""
    key = config.pbx.secret_key
    return bool(key) and config.ari.password == derived_ari_password(key)


async def check_ari(ari: AriConfig, *, derived: bool, timeout_s: float, unreachable: Level = "error") -> list[Finding]:
    """What ARI says about `ari`; `derived`: the password comes from pbx.secret_key (it decides the fix of a 401);
    `unreachable`: the level of "nothing answers" (a warning when the PBX itself was not reached either)."""
    ari = dataclasses.replace(ari, request_timeout_s=min(ari.request_timeout_s, timeout_s))
    client = AriClient(ari, event_sources=())
    subject = f"ARI at {client.base_url}"
    try:
        server = await _server(client, subject, ari, derived, unreachable)
        if server.level != "ok":
            return [server]
        return [server, await _registered(client, ari.app), await _websocket(client, subject, ari, derived)]
    finally:
        await client.close()


async def _server(client: AriClient, subject: str, ari: AriConfig, derived: bool, unreachable: Level) -> Finding:
    try:
        info = await client.get("asterisk/info")
    except AriUnauthorized:
        return _unauthorized(subject, ari.username, derived)
    except AriNotFound:
        return Finding(
            "error", subject, "the HTTP server answers but serves no ARI (404 for /ari/asterisk/info)", _LOAD_ARI
        )
    except AriUnavailable:
        return Finding(
            "warning", subject, "Asterisk is still starting (503 Asterisk not booted)", "check again shortly"
        )
    except AriHttpError as exc:
        return Finding("error", subject, f"GET /ari/asterisk/info answered {exc.status}: {exc.message}", _LOAD_ARI)
    except AriTimeout:
        return Finding(unreachable, subject, f"no answer within {ari.request_timeout_s:g} s", _reach_fix(ari.url))
    except AriConnectError as exc:
        return Finding(unreachable, subject, f"nothing answers ({_why_unreachable(exc)})", _reach_fix(ari.url))
    return Finding("ok", subject, f"Asterisk {_version(info)} answers; user {ari.username} accepted", "")


async def _registered(client: AriClient, app: str) -> Finding:
    subject = f"app {app}"
    try:
        apps: Any = await client.applications()
    except AriError as exc:
        return Finding("warning", subject, f"unknown: GET /ari/applications failed ({exc})", _LOAD_ARI)
    names = {item.get("name") for item in apps if isinstance(item, dict)} if isinstance(apps, list) else set()
    if app in names:
        return Finding(
            "info",
            subject,
            "registered in Asterisk: the service is connected, or the app is left over from an earlier connection "
            "(a listed app is not proof of a connected one)",
            "",
        )
    return Finding(
        "info",
        subject,
        "not connected now: until the service connects, calls to these numbers ring through the dialplan (fail open)",
        "",
    )


async def _websocket(client: AriClient, subject: str, ari: AriConfig, derived: bool) -> Finding:
    """Open the event WebSocket as the probe app, see it registered, close it."""
    probe = f"{ari.app}{PROBE_SUFFIX}"
    base = client.base_url
    url = URL(("wss" + base[5:] if base.startswith("https:") else "ws" + base.removeprefix("http")) + "/ari/events")
    headers = {"Authorization": aiohttp.encode_basic_auth(ari.username, ari.password)}
    limit = ari.request_timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=limit)) as session:
        try:
            async with asyncio.timeout(limit):
                ws = await session.ws_connect(url, params={"app": probe}, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                return _unauthorized(subject, ari.username, derived)
            if exc.status == 503:
                return Finding("warning", subject, "event WebSocket: Asterisk is still starting (503)", "check again")
            return Finding("error", subject, f"the event WebSocket was refused ({exc.status})", _LOAD_EVENTS)
        except TimeoutError:
            return Finding("error", subject, f"the event WebSocket did not open within {limit:g} s", _LOAD_EVENTS)
        except aiohttp.ClientError as exc:
            return Finding("error", subject, f"the event WebSocket did not open ({type(exc).__name__})", _LOAD_EVENTS)
        try:
            registered = await _probe_registered(client, probe)
        finally:
            await ws.close()
    if registered:
        return Finding("ok", subject, f"a Stasis app can connect (opened and closed the WebSocket as app {probe})", "")
    return Finding(
        "warning",
        subject,
        f"the event WebSocket opened, but Asterisk did not list app {probe} while it was open",
        "check `asterisk -rx 'ari show apps'` and that res_stasis.so is loaded",
    )


async def _probe_registered(client: AriClient, probe: str) -> bool:
    for attempt in range(_REGISTERED_TRIES):
        try:
            await client.get(f"applications/{probe}")
            return True
        except AriNotFound:
            if attempt + 1 < _REGISTERED_TRIES:
                await asyncio.sleep(_REGISTERED_PAUSE_S)
        except AriError:
            return False
    return False


def _unauthorized(subject: str, username: str, derived: bool) -> Finding:
    state = f"401 for user {username}: the user is not in ari.conf, or its password differs"
    if derived:
        fix = f"{_RENDER}, which writes the password derived from pbx.secret_key to ari.conf, then "
    else:
        fix = f"set ari.password to the password of [{username}] in ari.conf, or remove it and {_RENDER}, then "
    return Finding("error", subject, state, fix + "`asterisk -rx 'module reload res_ari.so'`")


def _reach_fix(url: str) -> str:
    bind = loopback_bind(url)
    if bind is None:
        return (
            "render keeps Asterisk's HTTP server on 127.0.0.1:8088: run CallBuddy on the PBX host with that ari.url, "
            "or bind the server where ari.url points in http_custom.conf"
        )
    address, port = bind
    return (
        f"start Asterisk, or apply the rendered http.conf, which serves ARI on {address}:{port}: {_RENDER}, then "
        "`asterisk -rx 'module reload http'`"
    )


def _why_unreachable(exc: AriConnectError) -> str:
    """ "connection refused", "Name or service not known"...: the client raises `from None`, the cause is kept."""
    cause = exc.__context__
    if isinstance(cause, aiohttp.ClientConnectorError):
        if isinstance(cause.os_error, ConnectionRefusedError):
            return "connection refused"
        return cause.os_error.strerror or type(cause.os_error).__name__
    return str(exc).split(": ", 1)[-1]  # without the client's "ARI GET /asterisk/info" prefix


def _version(info: Any) -> str:
    system = info.get("system") if isinstance(info, dict) else None
    version = system.get("version") if isinstance(system, dict) else None
    return str(version) if version else "(version unknown)"


__all__ = ["PROBE_SUFFIX", "check_ari", "password_is_derived", "routed_numbers"]
