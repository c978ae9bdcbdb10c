"""Database URLs (`storage.url`): which engine a URL names, where its SQLite file is, and the URL as it may be shown.

The password never lives in the URL: it comes from the environment (CALLBUDDY_DB_PASSWORD, else libpq's own
PGPASSWORD), and a URL is masked (`masked`) wherever it is printed or logged, in case one was put there anyway."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

PASSWORD_VARIABLES: tuple[str, ...] = ("CALLBUDDY_DB_PASSWORD", "PGPASSWORD")
SQLITE_SCHEME = "sqlite"
POSTGRESQL_SCHEMES: tuple[str, ...] = ("postgresql", "postgres")
_MASK = "***"


class UrlError(ValueError):
    """A storage URL that cannot be used; the message says why (and shows no password)."""


def masked(url: str) -> str:
    """The URL with any password (in the user part or a `password=` parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":" + _MASK
        netloc = f"{user}@{host}"
    query = parts.query
    if query:
        pairs = [(k, _MASK if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def engine_of(url: str) -> str:
    """'sqlite' or 'postgresql' for a URL this build can open; UrlError otherwise."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == SQLITE_SCHEME:
        return "sqlite"
    if scheme in POSTGRESQL_SCHEMES:
        return "postgresql"
    raise UrlError(f"{masked(url)!r} is not a database URL (postgresql://user@host:port/database or sqlite:///path)")


def sqlite_path(url: str) -> Path:
    """The file of `sqlite:///relative/path` or `sqlite:////absolute/path` (SQLAlchemy's spelling)."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise UrlError(f"{url!r}: a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
    return Path(unquote(parts.path[1:]))


def check_postgresql(url: str) -> None:
    """A PostgreSQL URL names a database and carries no password (UrlError otherwise)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is no number)
    except ValueError as exc:
        raise UrlError(f"{masked(url)!r}: {exc}") from None
    user = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    has_password = ":" in user or any(k.lower() == "password" for k, _ in parse_qsl(parts.query))
    if has_password:
        raise UrlError(
            f"{masked(url)!r}: the password does not belong in the configuration file; "
            f"set it in the environment ({' or '.join(PASSWORD_VARIABLES)})"
        )
    if not parts.path.strip("/"):
        raise UrlError(f"{masked(url)!r}: name the database (postgresql://user@host:port/database)")
