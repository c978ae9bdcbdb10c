"""The one Jinja2 environment of the dashboard: templates from the package, HTML always escaped.

Everything shown may come from outside (a caller ID name, an SMS, a gateway's error), so autoescape is on for
every template, whatever its name, and no page marks data as safe.
"""

from __future__ import annotations

import datetime
import functools
import re
import urllib.parse
import zoneinfo

import jinja2

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def when(epoch: float | None, timezone: str = "UTC", fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An epoch time on a business's clock ("" for none)."""
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, tz=zoneinfo.ZoneInfo(timezone)).strftime(fmt)


NBSP = "\u00a0"  # between a number and its unit: "12 s" never breaks over two lines


def seconds(value: float | None) -> str:
    """A duration for people, in the one unit that fits: 0.5 s, 8 s, 12 s, 2 min 5 s, 1 h 3 min ("" for none)."""
    if value is None:
        return ""
    if value < 9.95:
        tenths = round(max(value, 0.0), 1)
        return f"{tenths:g}{NBSP}s"
    total = round(value)
    if total < 60:
        return f"{total}{NBSP}s"
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes}{NBSP}min" + (f"{NBSP}{rest}{NBSP}s" if rest else "")
    hours, rest = divmod(round(value / 60), 60)
    return f"{hours}{NBSP}h" + (f"{NBSP}{rest}{NBSP}min" if rest else "")


def clip(text: str | None, limit: int = 80) -> str:
    """Untrusted text fit for one line of a page: control characters (newlines too) become spaces, at most
    `limit` characters ("" for none). Escaping is still autoescape's job."""
    if not text:
        return ""
    flat = _CONTROL.sub(" ", text[: limit * 4]).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def segment(text: str) -> str:
    """A value as one URL path segment (a linkedid in /calls/<linkedid>): "/", "?" and "#" are escaped too."""
    return urllib.parse.quote(text, safe="")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("callbuddy_pbx.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name is an error in the tests, not a blank on a page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["seconds"] = seconds
    env.filters["clip"] = clip
    env.filters["segment"] = segment
    return env
