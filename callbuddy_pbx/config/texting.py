"""Per-business text-back configuration: its types, and the YAML keys of a business entry that set them
(booking_url, hours, holidays, text_back). Everything is importable from callbuddy_pbx.config as well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from datetime import time as time_of_day

import yaml

from callbuddy_pbx.config.gateways import GatewayReader
from callbuddy_pbx.config.reader import Reader, did_you_mean, is_null, key_node, line_of, shown
from callbuddy_pbx.config.web import WebConfig
from callbuddy_pbx.message_text import REPLY_FIELDS, TEMPLATE_FIELDS, fields_of, template_problem
from callbuddy_pbx.model import Outcome
from callbuddy_pbx.phone import to_e164

MISSED_OUTCOMES: tuple[str, ...] = ("no_answer", "busy", "abandoned", "unavailable", "voicemail", "queue_abandoned")
DEFAULT_TEMPLATE = (
    "Hi, this is {business}. Sorry we missed your call! Book online: {booking_url} Reply STOP to opt out."
)
DEFAULT_HELP_TEXT = "{business}: missed-call texts. Book online: {booking_url} Reply STOP to opt out."
DEFAULT_OPT_OUT_TEXT = "{business}: you will get no more texts from us. Reply START to undo."


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the business's time zone when texts wait (may cross midnight: 21:00-08:00)."""

    start: time_of_day
    end: time_of_day


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening hours: for each weekday (0 = Monday), the (open, close) intervals of that day."""

    days: tuple[tuple[tuple[time_of_day, time_of_day], ...], ...]  # exactly 7 entries; a close of 24:00 is time.max


@dataclass(frozen=True, slots=True)
class TextBack:
    """Per business: who gets a text back after a missed call, what it says, how it is sent."""

    enabled: bool = True
    outcomes: tuple[str, ...] = MISSED_OUTCOMES  # Outcome values that get a text
    template: str = DEFAULT_TEMPLATE  # fields: {business} {booking_url} {caller_name} {date} {time}
    after_hours_template: str | None = None  # used outside `hours` (and on holidays) when set
    help_text: str = DEFAULT_HELP_TEXT  # the answer to HELP
    opt_out_text: str = DEFAULT_OPT_OUT_TEXT  # the one confirmation after STOP
    sender: str | None = None  # E.164 or alphanumeric sender id; None: the business number that was called
    gateway: str | None = None  # a name from `gateways`; None: the first gateway
    window_s: float = 24 * 3600.0  # at most one text per caller per business in this window
    min_ring_s: float = 0.0  # a caller who hangs up sooner than this (pocket dial) gets no text
    hold_off_s: float = 0.0  # wait this long; an answered call from the same caller meanwhile cancels the text
    quiet_hours: QuietHours | None = None
    track_clicks: bool = False  # the booking link becomes {public_url}/r/<token>: a visit is counted, then redirected


@dataclass(frozen=True, slots=True)
class BusinessTexting:
    """What a business entry's texting keys say. Without a `text_back` key a business sends no texts."""

    booking_url: str = ""
    hours: WeeklyHours | None = None
    holidays: tuple[date, ...] = ()
    text_back: TextBack = TextBack(enabled=False)


# ---------------------------------------------------------------------------------------------------------------------
# YAML

BUSINESS_TEXTING_KEYS = ("booking_url", "hours", "holidays", "text_back")
_TEXT_BACK_KEYS = (
    "enabled",
    "outcomes",
    "template",
    "after_hours_template",
    "help_text",
    "opt_out_text",
    "sender",
    "gateway",
    "window_hours",
    "min_ring_seconds",
    "hold_off_seconds",
    "quiet_hours",
    "track_clicks",
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TEXTED_OUTCOMES = tuple(outcome.value for outcome in Outcome if outcome.missed)

_INTERVAL = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_PHONE_LIKE = re.compile(r"\+?[\d\s().-]+")
_ALPHANUMERIC_ID = re.compile(r"[A-Za-z0-9 ]{1,11}")
_MAX_TIME = time_of_day.max  # a close of 24:00


def _hhmm(value: time_of_day) -> str:
    return "24:00" if value == _MAX_TIME else f"{value:%H:%M}"


class TextingReader:
    """Reads the texting keys of business entries with a Reader (whose problem list it adds to).

    The gateways are read first (`text_back.gateway` must name one); `finish()` runs when every business is read.
    """

    def __init__(self, reader: Reader, gateways: GatewayReader) -> None:
        self.r = reader
        self._gateways = gateways
        self._enabled: list[tuple[yaml.Node, str]] = []  # text_back sections that send texts
        self._tracking: list[tuple[yaml.Node, str]] = []  # `track_clicks: true` nodes, checked against `web`

    def business(self, entry: yaml.Node, section: dict[str, yaml.Node], path: str, region: str) -> BusinessTexting:
        """The texting keys of one business entry (`section` holds its known keys and their value nodes)."""
        booking_url = ""
        if "booking_url" in section:
            booking_url = self.r.url(section["booking_url"], f"{path}.booking_url", "a booking page URL") or ""
        hours = self.hours(section["hours"], f"{path}.hours") if "hours" in section else None
        holidays = self.holidays(section["holidays"], f"{path}.holidays") if "holidays" in section else ()
        text_back = BusinessTexting().text_back
        if "text_back" in section:
            where = key_node(entry, "text_back") or section["text_back"]
            has_url = bool(booking_url) or "booking_url" in section  # a wrong URL is reported once, where it is
            text_back = self.text_back(section["text_back"], where, f"{path}.text_back", region, has_url)
        return BusinessTexting(booking_url=booking_url, hours=hours, holidays=holidays, text_back=text_back)

    def hours(self, node: yaml.Node, path: str) -> WeeklyHours | None:
        section = self.r.mapping(node, path, _DAYS)
        if section is None:
            return None
        days: list[tuple[tuple[time_of_day, time_of_day], ...]] = []
        for day in _DAYS:
            days.append(self._day(section[day], f"{path}.{day}") if day in section else ())
        return WeeklyHours(tuple(days))

    def _day(self, node: yaml.Node, path: str) -> tuple[tuple[time_of_day, time_of_day], ...]:
        """`["09:00-12:00", "13:00-18:00"]` (one string alone is accepted too); `[]` or nothing is closed."""
        if is_null(node):
            return ()
        items = [(node, path)] if isinstance(node, yaml.ScalarNode) else self.r.items(node, path)
        intervals: list[tuple[time_of_day, time_of_day, yaml.Node]] = []
        for item, item_path in items or ():
            interval = self._interval(item, item_path, crossing=False)
            if interval is None:
                continue
            start, end = interval
            clash = next(((s, e) for s, e, _ in intervals if start < e and s < end), None)
            if clash is not None:
                self.r.problem(item, item_path, f"overlaps {_hhmm(clash[0])}-{_hhmm(clash[1])}")
                continue
            intervals.append((start, end, item))
        return tuple(sorted((start, end) for start, end, _ in intervals))

    def _interval(self, node: yaml.Node, path: str, *, crossing: bool) -> tuple[time_of_day, time_of_day] | None:
        """`HH:MM-HH:MM`. Opening hours need open < close (24:00 closes at midnight); quiet hours may cross it."""
        text = self.r.non_empty(node, path, "a time range such as 09:00-17:00")
        if text is None:
            return None
        match = _INTERVAL.fullmatch(text)
        if match is None:
            self.r.problem(node, path, f"{shown(text)} is not a time range (expected HH:MM-HH:MM, e.g. 09:00-17:00)")
            return None
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
            self.r.problem(node, path, f"{shown(text)} is not a time range (hours 00-23, minutes 00-59; 24:00 ends)")
            return None
        start = time_of_day(h1, m1)
        end = _MAX_TIME if h2 == 24 else time_of_day(h2, m2)
        if crossing:
            end = time_of_day(0) if h2 == 24 else end
            if start == end:
                self.r.problem(node, path, f"{shown(text)} starts and ends at the same time")
                return None
        elif start >= end:
            self.r.problem(node, path, f"{shown(text)} closes before it opens (open < close; 24:00 for midnight)")
            return None
        return start, end

    def holidays(self, node: yaml.Node, path: str) -> tuple[date, ...]:
        if is_null(node):
            return ()
        items = self.r.items(node, path)
        days: dict[date, int] = {}
        for item, item_path in items or ():
            day = self.r.day(item, item_path)
            if day is None:
                continue
            if day in days:
                self.r.problem(item, item_path, f"{day} is listed twice (first on line {days[day]})")
                continue
            days[day] = line_of(item)
        return tuple(sorted(days))

    def text_back(self, node: yaml.Node, where: yaml.Node, path: str, region: str, has_url: bool) -> TextBack:
        """An empty `text_back:` turns texting on with the defaults. `where` is the node section problems point to
        (the `text_back:` key)."""
        section = self.r.mapping(node, path, _TEXT_BACK_KEYS)
        if section is None:
            return TextBack(enabled=False)
        base = TextBack()
        enabled = True
        if "enabled" in section:
            enabled = self.r.boolean(section["enabled"], f"{path}.enabled") is not False
        outcomes = self._outcomes(section["outcomes"], f"{path}.outcomes") if "outcomes" in section else None
        texts = {
            key: self._template(section[key], f"{path}.{key}", fields) if key in section else None
            for key, fields in (
                ("template", TEMPLATE_FIELDS),
                ("after_hours_template", TEMPLATE_FIELDS),
                ("help_text", REPLY_FIELDS),
                ("opt_out_text", REPLY_FIELDS),
            )
        }
        sender = self._sender(section["sender"], f"{path}.sender", region) if "sender" in section else None
        gateway = self._gateways.reference(section["gateway"], f"{path}.gateway") if "gateway" in section else None
        if gateway is None and "gateway" not in section and self._gateways.names:
            gateway = next(iter(self._gateways.names))  # the first gateway
        quiet = None
        if "quiet_hours" in section and not is_null(section["quiet_hours"]):
            interval = self._interval(section["quiet_hours"], f"{path}.quiet_hours", crossing=True)
            quiet = QuietHours(*interval) if interval is not None else None
        track_clicks = False
        if "track_clicks" in section:
            track_clicks = self.r.boolean(section["track_clicks"], f"{path}.track_clicks") is True
            if track_clicks:
                self._tracking.append((section["track_clicks"], f"{path}.track_clicks"))

        def seconds(key: str, scale: float, default: float, *, allow_zero: bool) -> float:
            if key not in section:
                return default
            unit = "hours" if scale > 1 else "seconds"
            value = self.r.number(section[key], f"{path}.{key}", unit, allow_zero=allow_zero)
            return default if value is None else value * scale

        text_back = TextBack(
            enabled=enabled,
            outcomes=outcomes or base.outcomes,
            template=texts["template"] or base.template,
            after_hours_template=texts["after_hours_template"],
            help_text=texts["help_text"] or base.help_text,
            opt_out_text=texts["opt_out_text"] or base.opt_out_text,
            sender=sender,
            gateway=gateway,
            window_s=seconds("window_hours", 3600.0, base.window_s, allow_zero=False),
            min_ring_s=seconds("min_ring_seconds", 1.0, base.min_ring_s, allow_zero=True),
            hold_off_s=seconds("hold_off_seconds", 1.0, base.hold_off_s, allow_zero=True),
            quiet_hours=quiet,
            track_clicks=track_clicks,
        )
        if enabled:
            self._enabled.append((where, path))
            if not has_url:
                self._needs_booking_url(text_back, where, path)
        return text_back

    def _outcomes(self, node: yaml.Node, path: str) -> tuple[str, ...] | None:
        items = self.r.items(node, path)
        if items is None:
            return None
        if not items:
            self.r.problem(node, path, "expected at least one outcome (or enabled: false)")
            return None
        values: dict[str, int] = {}
        choices = ", ".join(_TEXTED_OUTCOMES)
        for item, item_path in items:
            value = self.r.non_empty(item, item_path, "an outcome")
            if value is None:
                continue
            value = value.lower()
            if value == Outcome.ANSWERED.value:
                self.r.problem(item, item_path, f"answered calls are never texted (expected one of: {choices})")
            elif value not in _TEXTED_OUTCOMES:
                hint = did_you_mean(value, _TEXTED_OUTCOMES)
                self.r.problem(item, item_path, f"{shown(value)} is not an outcome ({hint})")
            elif value in values:
                self.r.problem(item, item_path, f"{value!r} is listed twice (first on line {values[value]})")
            else:
                values[value] = line_of(item)
        return tuple(values) or None

    def _template(self, node: yaml.Node, path: str, fields: Sequence[str]) -> str | None:
        value = self.r.text(node, path)
        if value is None:
            return None
        problem = template_problem(value, fields)
        if problem is not None:
            self.r.problem(node, path, problem)
            return None
        return value.strip()

    def _needs_booking_url(self, text_back: TextBack, node: yaml.Node, path: str) -> None:
        users = [
            name
            for name, template in (
                ("template", text_back.template),
                ("after_hours_template", text_back.after_hours_template),
                ("help_text", text_back.help_text),
                ("opt_out_text", text_back.opt_out_text),
            )
            if template is not None and "booking_url" in fields_of(template)
        ]
        if users:
            business_path = path.rsplit(".", 1)[0]
            self.r.problem(
                node,
                path,
                f"{{booking_url}} is used ({', '.join(users)}) but {business_path}.booking_url is not set",
            )

    def _sender(self, node: yaml.Node, path: str, region: str) -> str | None:
        value = self.r.non_empty(node, path, "a phone number or an alphanumeric sender id")
        if value is None:
            return None
        if _PHONE_LIKE.fullmatch(value) and sum(char.isdigit() for char in value) >= 7:
            number = to_e164(value, region)
            if number is None:
                self.r.problem(node, path, f"{shown(value)} is not a phone number (expected e.g. +15550001000)")
            return number
        if _ALPHANUMERIC_ID.fullmatch(value):
            return value  # an alphanumeric id, or a short code
        self.r.problem(
            node,
            path,
            f"{shown(value)} is neither an E.164 number (e.g. +15550001000) nor an alphanumeric sender id "
            "(up to 11 letters, digits or spaces)",
        )
        return None

    def finish_web(self, web: WebConfig) -> None:
        """Tracked links point at this service (`{public_url}/r/<token>`): they need its public URL."""
        if web.public_url:
            return
        for node, path in self._tracking:
            self.r.problem(
                node,
                path,
                "track_clicks needs web.public_url (the links in texts point at this service: {public_url}/r/<token>)",
            )

    def finish(self) -> None:
        """Texting needs somewhere to send from."""
        if self._gateways.entries:
            return
        for node, path in self._enabled:
            self.r.problem(
                node,
                path,
                "text-back is enabled but no gateways are configured (add one under `gateways:`; "
                "to try it out: {name: sim, kind: simulated})",
            )
