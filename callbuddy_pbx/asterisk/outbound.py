"""Calls a desk phone places to an outside number, and whether they were answered (pure; no I/O, no clock).

The inbound tracker judges calls *to* a business; this follows the other direction, fed the same AMI events, so a
business calling a missed caller back is seen. A call is a desk's channel running in an internal dialplan context
with a phone number as its extension (a desk dialling `15557654321`); it was answered when that channel's Dial
ended with ANSWER. Extensions that are not phone numbers (another desk) are never followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from callbuddy_pbx.asterisk.inbound import endpoint_of
from callbuddy_pbx.asterisk.tracker import NON_PERSON_TECHS, ami_event_time
from callbuddy_pbx.config import Config
from callbuddy_pbx.phone import to_e164


@dataclass(frozen=True, slots=True)
class OutboundAnswer:
    """An answered call from a desk phone to an outside number."""

    linkedid: str
    business: str | None  # the desk's business (None when it cannot be told)
    endpoint: str  # the desk, e.g. "PJSIP/100"
    number: str  # E.164 of the number it dialled
    answered_at: float


@dataclass(frozen=True, slots=True)
class _Placed:
    linkedid: str
    business: str | None
    endpoint: str
    number: str


class OutboundTracker:
    """Feed it every AMI event in arrival order; it returns the outbound calls each event saw answered (once each).

    `phones` maps a desk's endpoint ("PJSIP/100") to its business; `default_business` is the business of a desk
    not in it (the only business, when there is one), `regions` the region each business reads numbers in."""

    def __init__(
        self,
        internal_contexts: tuple[str, ...],
        phones: Mapping[str, str],
        *,
        default_business: str | None = None,
        regions: Mapping[str, str] | None = None,
        default_region: str = "US",
    ) -> None:
        self._internal = frozenset(internal_contexts)
        self._phones = dict(phones)
        self._default_business = default_business
        self._regions = dict(regions or {})
        self._default_region = default_region
        self._placed: dict[str, _Placed] = {}  # by the desk channel's Uniqueid
        self._answered: set[str] = set()  # Uniqueids already reported: a second DialEnd reports nothing

    @classmethod
    def from_config(cls, config: Config) -> OutboundTracker:
        only = config.businesses[0].name if len(config.businesses) == 1 else None
        return cls(
            config.inbound.internal_contexts,
            {f"PJSIP/{phone.extension}": phone.business for phone in config.pbx.phones},
            default_business=only,
            regions={business.name: business.default_region for business in config.businesses},
            default_region=config.default_region,
        )

    @property
    def following(self) -> int:
        return len(self._placed)

    def feed(self, event: Mapping[str, str], received_at: float) -> list[OutboundAnswer]:
        name = event.get("Event", "")
        if name in ("Newchannel", "Newexten"):
            self._see(event)
        elif name == "DialEnd" and event.get("DialStatus") == "ANSWER":
            uniqueid = event.get("Uniqueid", "")
            placed = self._placed.get(uniqueid)
            if placed is not None and uniqueid not in self._answered:
                self._answered.add(uniqueid)
                at = ami_event_time(event, received_at)
                return [OutboundAnswer(placed.linkedid, placed.business, placed.endpoint, placed.number, at)]
        elif name == "Hangup":
            uniqueid = event.get("Uniqueid", "")
            self._placed.pop(uniqueid, None)
            self._answered.discard(uniqueid)
        return []

    def _see(self, event: Mapping[str, str]) -> None:
        uniqueid, channel = event.get("Uniqueid", ""), event.get("Channel", "")
        if uniqueid in self._placed or event.get("Context", "") not in self._internal:
            return
        if channel.split("/", 1)[0] in NON_PERSON_TECHS:  # a Local half runs a desk's call; the desk placed it
            return
        endpoint = endpoint_of(channel)
        business = self._phones.get(endpoint, self._default_business)
        region = self._regions.get(business or "", self._default_region)
        number = to_e164(event.get("Exten", ""), region)
        if number is not None:
            self._placed[uniqueid] = _Placed(event.get("Linkedid", uniqueid), business, endpoint, number)
