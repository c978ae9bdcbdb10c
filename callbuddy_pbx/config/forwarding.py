"""Replies forwarded to the owner: a business's `forward_replies_to` targets, and the `smtp:` server e-mail goes
through. Read here with file:line problems; the forwarding itself is service/forwards.py.

A target is written as a plain string, told apart by its form: an http(s) URL is a webhook, an address with an @ is
an e-mail, anything else must be a phone number (E.164, or national in the business's region). The mapping forms
(`{sms: ...}`, `{email: ...}`, `{webhook: URL, secret: ...}`) say it explicitly and give a webhook its own secret;
`forward_webhook_secret` is the business's secret for the webhooks that have none.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal

import yaml

from callbuddy_pbx.config.gateways import GatewayReader
from callbuddy_pbx.config.reader import Reader, key_node, line_of, shown
from callbuddy_pbx.phone import to_e164

Channel = Literal["sms", "email", "webhook"]
CHANNELS: tuple[Channel, ...] = ("sms", "email", "webhook")
SMTP_PASSWORD_ENV_VAR = "CALLBUDDY_SMTP_PASSWORD"  # noqa: S105 (a variable name) - read when smtp.password is not set
SMTP_SECURITY = ("starttls", "tls", "none")
FORWARD_KEYS = ("forward_replies_to", "forward_webhook_secret")
MAX_TARGETS = 10  # each reply goes to every target: a long list is a mistake (or a cost)
MAX_ADDRESS_CHARS = 254  # RFC 5321's limit of a forward path
MIN_SECRET_CHARS = 16  # an HMAC key shorter than this is guessable
# Deliberately plain: one @, no spaces, quotes or angle brackets (which could smuggle a second recipient or a header),
# and a domain with a dot. Exotic but valid addresses (quoted local parts) are refused rather than mis-parsed.
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
DEFAULT_SMTP_TIMEOUT_S = 30.0
_SMTP_KEYS = ("host", "port", "security", "username", "password", "from", "timeout_seconds")
_TARGET_KEYS = ("sms", "email", "webhook", "secret")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The SMTP server forwarded replies are e-mailed through."""

    host: str
    from_address: str
    port: int = 587
    security: str = "starttls"  # "starttls" (submission, 587), "tls" (implicit TLS, 465) or "none" (a local relay)
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = DEFAULT_SMTP_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """Where a business's replies are forwarded: a phone number (E.164), an e-mail address or a webhook URL."""

    channel: Channel
    address: str = field(repr=False)  # a webhook URL may carry a key
    secret: str = field(default="", repr=False)  # the webhook's HMAC key


def email_address(text: str) -> str | None:
    """`text` when it is an e-mail address this service sends to (see _EMAIL), else None."""
    value = text.strip()
    if len(value) > MAX_ADDRESS_CHARS or _EMAIL.fullmatch(value) is None:
        return None
    return value


class SmtpReader:
    """Reads the top-level `smtp:` section with a Reader (whose problem list it adds to)."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def smtp(self, node: yaml.Node | None) -> SmtpConfig | None:
        """None when there is no `smtp:` section (or it cannot be used: its problems are reported)."""
        if node is None:
            return None
        section = self.r.mapping(node, "smtp", _SMTP_KEYS)
        if section is None:
            return None
        ok = True
        host = ""
        if "host" not in section:
            self.r.problem(node, "smtp", "missing required key 'host' (the SMTP server's name or address)")
            ok = False
        else:
            host = self.r.non_empty(section["host"], "smtp.host", "a host name") or ""
            ok = ok and bool(host)
        security = "starttls"
        if "security" in section:
            chosen = self.r.choice(section["security"], "smtp.security", SMTP_SECURITY, upper=False)
            ok = ok and chosen is not None
            security = chosen or security
        port = 465 if security == "tls" else 587
        if "port" in section:
            given = self.r.integer(section["port"], "smtp.port", 1, 65535)
            ok = ok and given is not None
            port = given or port
        from_address = ""
        if "from" not in section:
            self.r.problem(node, "smtp", "missing required key 'from' (the address forwarded replies come from)")
            ok = False
        else:
            raw = self.r.non_empty(section["from"], "smtp.from", "an e-mail address")
            if raw is not None:
                from_address = email_address(raw) or ""
                if not from_address:
                    self.r.problem(section["from"], "smtp.from", f"{shown(raw)} is not an e-mail address")
            ok = ok and bool(from_address)
        username = ""
        if "username" in section:
            username = self.r.non_empty(section["username"], "smtp.username", "a user name") or ""
        password = ""
        if "password" in section:
            password = self.r.secret(section["password"], "smtp.password", "a password") or ""
        elif username:  # kept out of the file: the environment (a container's secret)
            password = os.environ.get(SMTP_PASSWORD_ENV_VAR, "")
        if username and not password:
            where = key_node(node, "username") or node
            self.r.problem(
                where, "smtp.username", f"a user name needs a password (smtp.password, or ${SMTP_PASSWORD_ENV_VAR})"
            )
            ok = False
        timeout_s = DEFAULT_SMTP_TIMEOUT_S
        if "timeout_seconds" in section:
            timeout_s = self.r.positive(section["timeout_seconds"], "smtp.timeout_seconds") or timeout_s
        if not ok:
            return None
        return SmtpConfig(host, from_address, port, security, username, password, timeout_s)


class ForwardingReader:
    """Reads a business entry's `forward_replies_to` and `forward_webhook_secret`.

    `smtp_configured`: whether the file has a usable `smtp:` section (an e-mail target needs one); the gateways are
    read first (a phone target is texted through one)."""

    def __init__(self, reader: Reader, gateways: GatewayReader, *, smtp_configured: bool) -> None:
        self.r = reader
        self._gateways = gateways
        self._smtp = smtp_configured

    def targets(
        self, entry: yaml.Node, section: dict[str, yaml.Node], path: str, region: str
    ) -> tuple[ForwardTarget, ...]:
        if "forward_replies_to" not in section:
            if "forward_webhook_secret" in section:
                self._business_secret(section, path)  # still checked: a typo'd secret is reported
            return ()
        node = section["forward_replies_to"]
        items: list[tuple[yaml.Node, str]] = [(node, f"{path}.forward_replies_to[0]")]  # one target alone
        if not isinstance(node, yaml.ScalarNode):
            items = self.r.items(node, f"{path}.forward_replies_to") or []
        business_secret = self._business_secret(section, path)
        found: dict[tuple[str, str], int] = {}
        targets: list[ForwardTarget] = []
        for item, item_path in items:
            target = self._target(item, item_path, region, business_secret)
            if target is None:
                continue
            same = (target.channel, target.address.casefold() if target.channel == "email" else target.address)
            if same in found:
                self.r.problem(item, item_path, f"this {target.channel} target is listed twice (first on line "
                               f"{found[same]})")  # fmt: skip
                continue
            found[same] = line_of(item)
            targets.append(target)
        if len(targets) > MAX_TARGETS:
            where = key_node(entry, "forward_replies_to") or node
            self.r.problem(where, f"{path}.forward_replies_to", f"{len(targets)} targets; at most {MAX_TARGETS}")
        return tuple(targets)

    def _business_secret(self, section: dict[str, yaml.Node], path: str) -> str:
        if "forward_webhook_secret" not in section:
            return ""
        node = section["forward_webhook_secret"]
        secret = self.r.secret(node, f"{path}.forward_webhook_secret", "a webhook signing secret") or ""
        if secret and len(secret) < MIN_SECRET_CHARS:
            self.r.problem(node, f"{path}.forward_webhook_secret", f"too short: at least {MIN_SECRET_CHARS} characters")
            return ""
        return secret

    def _target(self, node: yaml.Node, path: str, region: str, business_secret: str) -> ForwardTarget | None:
        if isinstance(node, yaml.MappingNode):
            return self._explicit(node, path, region, business_secret)
        raw = self.r.non_empty(node, path, "a phone number, an e-mail address or a webhook URL")
        if raw is None:
            return None
        if "://" in raw:
            return self._webhook(node, path, business_secret, node)
        if "@" in raw:
            return self._email(node, path, raw)
        return self._sms(node, path, raw, region, guessed=True)

    def _explicit(self, node: yaml.MappingNode, path: str, region: str, business_secret: str) -> ForwardTarget | None:
        section = self.r.mapping(node, path, _TARGET_KEYS)
        if section is None:
            return None
        given = [channel for channel in CHANNELS if channel in section]
        if len(given) != 1:
            self.r.problem(node, path, "give exactly one of sms, email or webhook")
            return None
        channel = given[0]
        if "secret" in section and channel != "webhook":
            self.r.problem(section["secret"], f"{path}.secret", "only a webhook has a secret")
            return None
        value = section[channel]
        if channel == "webhook":
            secret = business_secret
            if "secret" in section:
                secret = self.r.secret(section["secret"], f"{path}.secret", "a webhook signing secret") or ""
                if secret and len(secret) < MIN_SECRET_CHARS:
                    self.r.problem(section["secret"], f"{path}.secret", f"too short: at least {MIN_SECRET_CHARS} "
                                   "characters")  # fmt: skip
                    return None
                if not secret:
                    return None
            return self._webhook(value, f"{path}.webhook", secret, node)
        raw = self.r.non_empty(
            value, f"{path}.{channel}", "a phone number" if channel == "sms" else "an e-mail address"
        )
        if raw is None:
            return None
        if channel == "email":
            return self._email(value, f"{path}.email", raw)
        return self._sms(value, f"{path}.sms", raw, region, guessed=False)

    def _webhook(self, node: yaml.Node, path: str, secret: str, where: yaml.Node) -> ForwardTarget | None:
        url = self.r.url(node, path, "a webhook URL", quoted=False)
        if url is None:
            return None
        if not secret:
            self.r.problem(
                where,
                path,
                "a webhook needs a signing secret (forward_webhook_secret on the business, or "
                "{webhook: URL, secret: ...}); e.g. ${FORWARD_WEBHOOK_SECRET}",
            )
            return None
        return ForwardTarget("webhook", url, secret)

    def _email(self, node: yaml.Node, path: str, raw: str) -> ForwardTarget | None:
        address = email_address(raw)
        if address is None:
            self.r.problem(node, path, f"{shown(raw)} is not an e-mail address (expected e.g. owner@example.com)")
            return None
        if not self._smtp:
            self.r.problem(node, path, "an e-mail target needs an SMTP server: add a top-level `smtp:` section "
                           "(host, port, security, username, from)")  # fmt: skip
            return None
        return ForwardTarget("email", address)

    def _sms(self, node: yaml.Node, path: str, raw: str, region: str, *, guessed: bool) -> ForwardTarget | None:
        number = to_e164(raw, region)
        if number is None:
            expected = f"e.g. +15550001000 or a number valid in region {region}"
            if guessed:
                expected += ", an e-mail address or an http(s) webhook URL"
            self.r.problem(node, path, f"{shown(raw)} is not a phone number (expected {expected})")
            return None
        if not self._gateways.entries:
            self.r.problem(node, path, "a phone target is texted through a gateway, and none is configured (add one "
                           "under `gateways:`)")  # fmt: skip
            return None
        return ForwardTarget("sms", number)
