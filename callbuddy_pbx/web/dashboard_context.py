"""What the dashboard's pages read: the store, the configured businesses and the live parts of the service.

The live parts are callables, asked on every request, so a page always shows the state of that moment and the
dashboard never holds a reference into the AMI client, the gateways or the device registry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config import Business
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.health import HealthStatus
from callbuddy_pbx.web.phone_names import PhoneBook


@dataclass(frozen=True, slots=True)
class DashboardContext:
    store: CallStore
    businesses: tuple[Business, ...]
    health: Callable[[], HealthStatus] | None  # None: no live service (e.g. a dashboard over a copied database)
    devices: Callable[[], Sequence[Device]]
    ami_last_event_at: Callable[[], float | None]
    version: str
    clock: Callable[[], float] = time.time
    live_poll_s: float = 1.0  # how often a live feed asks the database for changes
    phones: tuple[Phone, ...] = ()  # the configured phones (pbx.phones): their names and people on every page
    # With several Asterisk servers (asterisk.nodes): each server's name and devices, for /devices; None: `devices`.
    devices_by_site: Callable[[], Sequence[tuple[str, Sequence[Device]]]] | None = None

    @property
    def phone_book(self) -> PhoneBook:
        return PhoneBook(self.phones)

    def timezone_of(self, business: str | None) -> str:
        """The business's time zone (UTC for a call without a business, or a business no longer configured)."""
        for configured in self.businesses:
            if configured.name == business:
                return configured.timezone
        return "UTC"

    def common_timezone(self, businesses: Sequence[str] | None) -> str:
        """The one clock of a view of these businesses (None: every configured one): theirs when they share one,
        else UTC (the page says which)."""
        names = [b.name for b in self.businesses] if businesses is None else list(businesses)
        zones = {self.timezone_of(name) for name in names}
        return zones.pop() if len(zones) == 1 else "UTC"
