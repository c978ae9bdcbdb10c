"""Which new channel starts an inbound call to a business number (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from callbuddy_pbx.config import DEFAULT_INBOUND_CONTEXTS, DEFAULT_INTERNAL_CONTEXTS, Business, Config
from callbuddy_pbx.phone import to_e164


@dataclass(frozen=True, slots=True)
class InboundMatch:
    business: str | None
    did: str  # E.164 when the dialled number parses, else as Asterisk gave it
    region: str  # region for reading the caller's number


def endpoint_of(channel: str) -> str:
    """`PJSIP/101-0000003d` -> `PJSIP/101`; `Local/100@ctx-00000006;1` -> `Local/100@ctx`."""
    base = channel.split(";", 1)[0]
    head, sep, suffix = base.rpartition("-")
    if sep and len(suffix) == 8 and all(ch in "0123456789abcdef" for ch in suffix):
        return head
    return base


class InboundMatcher:
    """Decides from a call's first channel whether it is an inbound call we report, and for which business.

    With businesses configured, the dialled number (the channel's Exten) must be one of theirs. Without, the channel
    must start in an inbound context or on a configured trunk endpoint. Either way a channel in an internal context
    (a desk phone dialling) never counts.
    """

    def __init__(
        self,
        businesses: tuple[Business, ...] = (),
        *,
        contexts: tuple[str, ...] = DEFAULT_INBOUND_CONTEXTS,
        trunk_endpoints: tuple[str, ...] = (),
        internal_contexts: tuple[str, ...] = DEFAULT_INTERNAL_CONTEXTS,
        default_region: str = "US",
        by_number: bool | None = None,
    ) -> None:
        # Matched by the dialled number when businesses are configured: on a node none of them rings on too (its
        # calls are then nobody's), rather than every call in an inbound context.
        self._by_numbers = bool(businesses) if by_number is None else by_number
        self._businesses = businesses
        self._by_number = {number: business for business in businesses for number in business.numbers}
        self._regions = tuple(dict.fromkeys([default_region, *(b.default_region for b in businesses)]))
        self._contexts = frozenset(contexts)
        self._trunks = frozenset(trunk_endpoints)
        self._internal = frozenset(internal_contexts)
        self._default_region = default_region

    @classmethod
    def from_config(cls, config: Config, node: str = "") -> InboundMatcher:
        """The matcher for the calls of one Asterisk server (`node`; "" : the only one): its businesses' numbers."""
        return cls(
            tuple(business for business in config.businesses if business.on_node(node)) if node else config.businesses,
            by_number=bool(config.businesses),
            contexts=config.inbound.contexts,
            trunk_endpoints=config.inbound.trunk_endpoints,
            internal_contexts=config.inbound.internal_contexts,
            default_region=config.default_region,
        )

    def could_be_inbound(self, channel: str, context: str) -> bool:
        """A new channel worth following: not a desk phone's own call, not a Local channel half."""
        return context not in self._internal and not channel.startswith("Local/")

    def match(self, channel: str, context: str, exten: str) -> InboundMatch | None:
        if not self.could_be_inbound(channel, context):
            return None
        if self._by_numbers:
            for region in self._regions:
                did = to_e164(exten, region)
                if did is not None and did in self._by_number:
                    business = self._by_number[did]
                    return InboundMatch(business.name, did, business.default_region)
            return None
        if context in self._contexts or endpoint_of(channel) in self._trunks:
            return InboundMatch(None, to_e164(exten, self._default_region) or exten, self._default_region)
        return None
