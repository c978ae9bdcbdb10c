"""The dashboard and webhook side of the configuration: the YAML section `web:` (its logins are read by
`users`), and the users of a running service as they are now (`LiveUsers`)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from callbuddy_pbx.config.reader import Reader, is_null, line_of, shown, unknown_business
from callbuddy_pbx.config.users import UsersFileError, UsersReader, WebUser, read_users_file

log = logging.getLogger(__name__)

MIN_WEBHOOK_TOKEN_CHARS = 16
MIN_API_TOKEN_CHARS = 24
_WEB_KEYS = ("host", "port", "public_url", "webhook_token", "api_tokens", "trusted_proxies")
_WEB_LOGIN_KEYS = ("users", "users_file", "session_hours", "secure_cookies")  # read by UsersReader
_API_TOKEN_KEYS = ("name", "token", "businesses")


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A bearer token of the JSON API (/api/v1); `businesses` empty = every business."""

    name: str
    token: str = field(repr=False)
    businesses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how gateways reach us for receipts and inbound texts, e.g. https://cb.example.com
    webhook_token: str = field(default="", repr=False)  # shared secret in webhook URLs (Kannel, generic)
    api_tokens: tuple[ApiToken, ...] = ()  # who may read the JSON API; none = the API answers 401 to everyone
    users: tuple[WebUser, ...] = ()  # dashboard logins: `web.users` plus those in `users_file`
    users_file: Path | None = None  # a YAML list of users that `callbuddy-pbx user add` maintains
    session_hours: float = 12.0  # a dashboard login lasts this long
    # "auto": Secure when public_url is https or the request came over TLS; "always"; "never"
    secure_cookies: str = "auto"
    # reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client; none: the header is ignored
    trusted_proxies: tuple[str, ...] = ()


class WebReader:
    """Reads `web:` with a Reader (whose problem list it adds to)."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self._businesses: Collection[str] | None = None  # the configured business names

    def web(
        self, node: yaml.Node, base_dir: Path | None = None, businesses: Collection[str] | None = None
    ) -> WebConfig:
        """`businesses`: the configured names that tokens and users may name (None: not checked)."""
        self._businesses = businesses
        section = self.r.mapping(node, "web", _WEB_KEYS + _WEB_LOGIN_KEYS)
        base = WebConfig()
        if not section:
            return base
        host, port, public_url, token = base.host, base.port, base.public_url, base.webhook_token
        if "host" in section:
            host = self.r.non_empty(section["host"], "web.host", "a host name or address") or host
        if "port" in section:
            port = self.r.integer(section["port"], "web.port", 1, 65535) or port
        if "public_url" in section:
            url = self.r.url(section["public_url"], "web.public_url", "the URL gateways reach us at")
            public_url = (url or "").rstrip("/")
        if "webhook_token" in section:
            token = self.r.secret(section["webhook_token"], "web.webhook_token", "a webhook token") or ""
            if token and len(token) < MIN_WEBHOOK_TOKEN_CHARS:
                self.r.problem(
                    section["webhook_token"],
                    "web.webhook_token",
                    f"too short: at least {MIN_WEBHOOK_TOKEN_CHARS} characters (e.g. from `openssl rand -hex 16`)",
                )
                token = ""
        api_tokens = self._api_tokens(section["api_tokens"]) if "api_tokens" in section else ()
        proxies = self._proxies(section["trusted_proxies"]) if "trusted_proxies" in section else ()
        logins = UsersReader(self.r, businesses).settings(section, base_dir or Path())
        return WebConfig(
            host=host,
            port=port,
            public_url=public_url,
            webhook_token=token,
            api_tokens=api_tokens,
            users=logins.users,
            users_file=logins.users_file,
            session_hours=logins.session_hours,
            secure_cookies=logins.secure_cookies,
            trusted_proxies=proxies,
        )

    def _proxies(self, node: yaml.Node) -> tuple[str, ...]:
        """`web.trusted_proxies`: IP addresses or CIDR ranges, kept as written (normalised)."""
        if is_null(node):
            return ()
        found: list[str] = []
        for item, path in self.r.items(node, "web.trusted_proxies") or ():
            text = self.r.non_empty(item, path, "an IP address or a CIDR range such as 10.0.0.0/8")
            if text is None:
                continue
            try:
                found.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                self.r.problem(item, path, f"{shown(text)} is not an IP address or a CIDR range (e.g. 10.0.0.0/8)")
        return tuple(found)

    def _api_tokens(self, node: yaml.Node) -> tuple[ApiToken, ...]:
        """`web.api_tokens: [{name, token, businesses}]`; an entry with a problem is left out (and reported)."""
        if is_null(node):
            return ()
        entries = self.r.items(node, "web.api_tokens")
        if entries is None:
            return ()
        result: list[ApiToken] = []
        names: dict[str, int] = {}
        tokens: dict[str, int] = {}
        for entry, path in entries:
            section = self.r.mapping(entry, path, _API_TOKEN_KEYS)
            if section is None:
                continue
            missing = [key for key in ("name", "token") if key not in section]
            if missing:
                self.r.problem(
                    entry,
                    path,
                    f"missing required key{'s' if len(missing) > 1 else ''} " + ", ".join(map(repr, missing)),
                )
            name = self.r.non_empty(section["name"], f"{path}.name", "a token name") if "name" in section else None
            if name is not None and name in names:
                self.r.problem(section["name"], f"{path}.name", f"{name!r} is already used (line {names[name]})")
                name = None
            elif name is not None:
                names[name] = line_of(section["name"])
            token = self.r.secret(section["token"], f"{path}.token", "an API token") if "token" in section else None
            if token is not None and len(token) < MIN_API_TOKEN_CHARS:
                self.r.problem(
                    section["token"],
                    f"{path}.token",
                    f"too short: at least {MIN_API_TOKEN_CHARS} characters (e.g. from `openssl rand -hex 24`)",
                )
                token = None
            elif token is not None and token in tokens:
                self.r.problem(section["token"], f"{path}.token", f"the same token as on line {tokens[token]}")
                token = None
            elif token is not None:
                tokens[token] = line_of(section["token"])
            businesses = (
                self._token_businesses(section["businesses"], f"{path}.businesses") if ("businesses" in section) else ()
            )
            if name is not None and token is not None and businesses is not None:
                result.append(ApiToken(name, token, businesses))
        return tuple(result)

    def _token_businesses(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        """The businesses a token may read: a non-empty list of names (leave the key out for every business)."""
        items = self.r.items(node, path)
        if items is None:
            return None
        if not items:
            self.r.problem(node, path, "an empty list would allow nothing (leave the key out for every business)")
            return None
        names: list[str] = []
        for item, item_path in items:
            name = self.r.non_empty(item, item_path, "a business name")
            if name is None:
                return None
            problem = unknown_business(name, self._businesses)
            if problem is not None:
                self.r.problem(item, item_path, problem)
                return None
            if name not in names:
                names.append(name)
        return tuple(names)


class LiveUsers:
    """The users of a WebConfig as they are now: `web.users`, plus the users file re-read whenever it changes.

    Pass an instance as `users=` to `auth_setup`, so that `callbuddy-pbx user add|remove` takes effect on the
    running service at once (a stat per call; the file is read only when it changed). A users file that has become
    unusable (a bad hand edit) counts as holding no users until it is fixed: failing closed, and logged.
    """

    def __init__(self, web: WebConfig, businesses: Collection[str] | None = None) -> None:
        from_file = _file_users_of(web)
        self._inline = tuple(user for user in web.users if user not in from_file)  # web.users merges both
        self._path = web.users_file
        self._businesses = businesses
        self._loaded = False
        self._seen: tuple[int, int, int] | None = None
        self._users = self._inline

    def __call__(self) -> tuple[WebUser, ...]:
        if self._path is None:
            return self._inline
        stamp = _stamp(self._path)
        if not self._loaded or stamp != self._seen:
            self._loaded, self._seen = True, stamp
            self._users = self._inline + self._reload(self._path)
        return self._users

    def _reload(self, path: Path) -> tuple[WebUser, ...]:
        try:
            found = read_users_file(path, self._businesses)
        except UsersFileError as exc:
            log.error("%s has problems; its users cannot log in until it is fixed:\n%s", path, exc)
            return ()
        inline = {user.name.casefold() for user in self._inline}
        clashing = [user.name for user in found if user.name.casefold() in inline]
        if clashing:
            log.error("%s: users also in web.users are ignored: %s", path, ", ".join(clashing))
        log.info("%s: %d dashboard users", path, len(found))
        return tuple(user for user in found if user.name.casefold() not in inline)


def _file_users_of(web: WebConfig) -> tuple[WebUser, ...]:
    """The users of `web.users` that came from the users file (best effort: the file as it is now)."""
    if web.users_file is None:
        return ()
    try:
        return tuple(read_users_file(web.users_file))
    except UsersFileError:
        return ()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten (os.replace gives a new inode), None when it is not there."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino
