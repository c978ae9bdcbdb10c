"""A mobile softphone's push binding, read from the Contact URI it registered with (pure: no I/O).

Asterisk keeps the whole Contact URI of a registration (up to 512 characters) and reports it in AMI `ContactStatus`
/ `ContactStatusDetail` (`URI`) and ARI `ContactStatusChange` (`contact_info.uri`). A softphone that can be woken
by push puts its push details there as URI parameters: RFC 8599's `pn-provider`, `pn-prid`, `pn-param`, or one of
the older dialects in `_DIALECTS`. The URI comes from the phone, so everything in it is bounded and checked: a
parameter that does not look right gives no binding rather than a push to a made-up address.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

MAX_URI_CHARS = 512  # Asterisk answers a longer Contact with 400: anything longer did not come from it
_MAX_PARAMS = 40
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_PARAM_NAME = re.compile(r"[A-Za-z0-9-]{1,32}")
# APNs tokens are hex (64 today; Apple says not to rely on the length); FCM registration tokens are URL-safe text.
_APNS_TOKEN = re.compile(r"[0-9A-Fa-f]{32,200}")
_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:.-]{20,400}")
_BUNDLE_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_MAX_BUNDLE_CHARS = 155
_TEAM_ID = re.compile(r"[A-Z0-9]{10}")
_FCM_PROJECT = re.compile(r"[A-Za-z0-9_.:-]{1,100}")  # a project id or a numeric sender id
_APNS_SERVICES = ("voip", "remote", "apns")  # the last label of an APNs pn-param (Linphone writes "remote&voip")


class Provider(StrEnum):
    APNS = "apns"
    FCM = "fcm"


@dataclass(frozen=True, slots=True)
class PushBinding:
    """Where to send a device's pushes. Equal bindings mean the same device registration."""

    provider: Provider
    device_token: str = field(repr=False)  # pn-prid: an address for pushes; shown masked only (`masked_token`)
    # APNs: the app's bundle id (its VoIP topic is `<bundle_id>.voip`); FCM: the project (or sender) id. None: the
    # phone did not say, and the configured one applies.
    app: str | None = None
    team_id: str | None = None  # APNs only, when pn-param names it
    sandbox: bool | None = None  # APNs only: the phone says its token is for the development environment (or not)
    dialect: str = "rfc8599"

    @property
    def masked_token(self) -> str:
        return mask_token(self.device_token)

    def __repr__(self) -> str:
        return (
            f"PushBinding(provider={self.provider.value!r}, device_token={self.masked_token!r}, app={self.app!r}, "
            f"team_id={self.team_id!r}, sandbox={self.sandbox!r}, dialect={self.dialect!r})"
        )


def binding_json(binding: PushBinding) -> str:
    """The binding as kept across restarts (store/push_bindings): a sleeping phone must still be woken after one."""
    return json.dumps(
        {
            "provider": binding.provider.value,
            "token": binding.device_token,
            "app": binding.app,
            "team_id": binding.team_id,
            "sandbox": binding.sandbox,
            "dialect": binding.dialect,
        },
        separators=(",", ":"),
    )


def binding_from_json(text: str) -> PushBinding | None:
    """A kept binding read back, held to the rules a Contact URI's is: anything malformed gives None."""
    try:
        kept = json.loads(text) if len(text) <= _MAX_KEPT_CHARS else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(kept, dict):
        return None
    try:
        provider = Provider(str(kept.get("provider")))
    except ValueError:
        return None
    token, app, team_id, sandbox, dialect = (kept.get(k) for k in ("token", "app", "team_id", "sandbox", "dialect"))
    if not isinstance(token, str) or not all(isinstance(v, str | None) for v in (app, team_id)):
        return None
    if not isinstance(sandbox, bool | None) or dialect not in _KEPT_DIALECTS:
        return None
    return _binding(provider, token, app=app, team_id=team_id, sandbox=sandbox, dialect=dialect)


def mask_token(token: str) -> str:
    """A device token for logs: its first and last four characters, enough to tell devices apart."""
    return f"{token[:4]}...{token[-4:]}" if len(token) > 12 else "****"


def parse_contact(uri: str) -> PushBinding | None:
    """The push binding in a registration's Contact URI, or None (no push parameters, or any of them malformed)."""
    params = uri_params(uri)
    if params is None:
        return None
    if "pn-provider" in params:
        return _rfc8599(params)
    for dialect in _DIALECTS:
        if dialect.type_param in params:
            return dialect.parse(params)
    return None


def uri_params(uri: str) -> dict[str, str] | None:
    """The decoded parameters (lower-case names) of a sip:/sips: URI, or None for anything that is not one."""
    if not uri or len(uri) > MAX_URI_CHARS or not uri.isprintable() or not uri.isascii():
        return None
    text = uri.strip()
    if text.startswith("<"):  # a name-addr: the URI is between the brackets; header parameters follow them
        end = text.find(">")
        if end < 0:
            return None
        text = text[1:end]
    text = text.split("?", 1)[0]  # URI headers are not parameters
    scheme, _, rest = text.partition(":")
    if scheme.lower() not in ("sip", "sips") or not rest:
        return None
    pieces = rest.split(";")
    if len(pieces) > _MAX_PARAMS + 1:
        return None
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        name, _, raw = piece.partition("=")
        name = name.strip().lower()
        value = _decoded(raw.strip())
        if not _PARAM_NAME.fullmatch(name) or value is None or name in params:  # a repeated name is ambiguous
            return None
        params[name] = value
    return params


def _decoded(raw: str) -> str | None:
    """Percent-decoding that refuses a stray `%` and anything that decodes to a control or non-ASCII character."""
    if "%" in _PERCENT.sub("", raw):
        return None
    value = _PERCENT.sub(lambda match: chr(int(match.group(1), 16)), raw)
    return value if value.isascii() and value.isprintable() else None


# ---------------------------------------------------------------------------------------------------------------------
# RFC 8599


def _rfc8599(params: dict[str, str]) -> PushBinding | None:
    provider_word = params["pn-provider"].lower()
    prid, param = params.get("pn-prid", ""), params.get("pn-param")
    if provider_word == "fcm":  # pn-param: the Firebase project (sender) id
        if param is not None and not _FCM_PROJECT.fullmatch(param):
            return None
        return _binding(Provider.FCM, prid, app=param)
    # Linphone marks a development token with "apns.dev"; RFC 8599 has no such value, so it means production.
    if provider_word not in ("apns", "apns.dev"):
        return None
    apns = _apns_param(param) if param is not None else (None, None)
    if apns is None:
        return None
    team_id, bundle_id = apns
    return _binding(
        Provider.APNS,
        _voip_token(prid),
        app=bundle_id,
        team_id=team_id,
        sandbox=provider_word == "apns.dev",
    )


def _apns_param(param: str) -> tuple[str | None, str] | None:
    """(team id, bundle id) from RFC 8599's APNs pn-param `<team id>.<bundle id>.<service>`, where the service is
    `voip` for PushKit and `apns` otherwise (Linphone also writes `remote` and `remote&voip`). The team id and the
    service may be left out."""
    labels = param.split(".")
    if labels and all(word in _APNS_SERVICES for word in labels[-1].split("&")):
        labels = labels[:-1]
    team_id = labels[0] if len(labels) > 2 and _TEAM_ID.fullmatch(labels[0]) else None
    bundle_id = ".".join(labels[1:] if team_id else labels)
    if len(bundle_id) > _MAX_BUNDLE_CHARS or not _BUNDLE_ID.fullmatch(bundle_id):
        return None
    return team_id, bundle_id


def _voip_token(prid: str) -> str:
    """Linphone registers both of its APNs tokens as `<voip token>:voip&<remote token>:remote`: the VoIP one rings."""
    if ":" not in prid:
        return prid
    for part in prid.split("&"):
        token, _, kind = part.partition(":")
        if kind == "voip":
            return token
    return ""


def _binding(
    provider: Provider,
    token: str,
    *,
    app: str | None,
    team_id: str | None = None,
    sandbox: bool | None = None,
    dialect: str = "rfc8599",
) -> PushBinding | None:
    pattern = _APNS_TOKEN if provider is Provider.APNS else _FCM_TOKEN
    if not pattern.fullmatch(token):  # also a de-registration's empty pn-prid
        return None
    return PushBinding(provider, token, app=app, team_id=team_id, sandbox=sandbox, dialect=dialect)


# ---------------------------------------------------------------------------------------------------------------------
# Dialects from before RFC 8599: one row each, mapped onto the same binding.


@dataclass(frozen=True, slots=True)
class _Dialect:
    """Older push parameters: which names carry the provider, the token and the app, and the provider words."""

    name: str
    type_param: str
    token_param: str
    app_param: str
    providers: dict[str, Provider]

    def parse(self, params: dict[str, str]) -> PushBinding | None:
        provider = self.providers.get(params[self.type_param].lower())
        if provider is None:
            return None
        token, app = params.get(self.token_param, ""), params.get(self.app_param)
        if provider is Provider.FCM:
            if app is not None and not _FCM_PROJECT.fullmatch(app):
                return None
            return _binding(provider, token, app=app, dialect=self.name)
        sandbox: bool | None = None
        if app is not None:
            # Linphone's app-id is the bundle id ended by ".dev" (a development token) or ".prod", and ".voip".
            labels = app.split(".")
            ends: list[str] = []
            while len(labels) > 2 and labels[-1] in ("dev", "prod", "voip"):
                ends.append(labels.pop())
            sandbox = "dev" in ends if {"dev", "prod"} & set(ends) else None
            app = ".".join(labels)
            if len(app) > _MAX_BUNDLE_CHARS or not _BUNDLE_ID.fullmatch(app):
                return None
        return _binding(provider, token, app=app, sandbox=sandbox, dialect=self.name)


_DIALECTS: tuple[_Dialect, ...] = (
    # Linphone (and liblinphone-based apps) before 4.4: pn-type, pn-tok, app-id, with pn-msg-str, pn-call-str,
    # pn-call-snd, pn-msg-snd, pn-silent, pn-timeout for the notification's look (not needed to send it).
    _Dialect(
        name="linphone",
        type_param="pn-type",
        token_param="pn-tok",  # noqa: S106 (a parameter's name)
        app_param="app-id",
        providers={"apple": Provider.APNS, "apns": Provider.APNS, "google": Provider.FCM, "firebase": Provider.FCM},
    ),
)

_KEPT_DIALECTS = frozenset({"rfc8599", *(dialect.name for dialect in _DIALECTS)})
_MAX_KEPT_CHARS = 2048  # a binding is a token (at most a few hundred characters) and a few names
