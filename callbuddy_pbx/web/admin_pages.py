"""GET /devices and GET /system : what the installer looks at, for admins only (a business user gets 403).

/devices lists the phones the device registry knows (`ctx.devices()`), each by its configured name and person, its
state in words (the Asterisk word stays in a tooltip), its contacts (push tokens masked) and, for a mobile softphone
that wakes by push, its last wake-up and failure (wake_words); /system the AMI link, the SMS gateways
(`ctx.health()`), the outbox backlog and the texts failed in the last hour (counted in the database), the version
and the database file. Times are on the businesses' shared clock (UTC when they differ).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aiohttp import web

from callbuddy_pbx.asterisk.devices_model import Device, masked_contact
from callbuddy_pbx.store.dashboard_queries import system_counts
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.page import Handler, admin_only, page, render
from callbuddy_pbx.web.phone_names import PhoneBook, device_state
from callbuddy_pbx.web.viewer import Viewer
from callbuddy_pbx.web.wake_words import WakeWords, wake_words

FAILED_WINDOW_S = 3600.0
CONNECTIONS = {True: "Connected", False: "Not connected", None: "Unknown"}


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One row of /devices: the device as Asterisk knows it and as the configuration names it."""

    device: Device
    phone: str  # the configured name ("Front desk"), else what the registry knows of it, else the extension
    person: str  # who uses it ("" when the configuration names nobody)
    business: str
    state: str  # in words ("Free", "On a call")
    connection: str  # "Connected", "Not connected", "Unknown"
    contacts: tuple[str, ...]  # where it is registered, push tokens masked
    wake: WakeWords
    site: str = ""  # the Asterisk server it is on, with several (asterisk.nodes)


def device_row(device: Device, book: PhoneBook, timezone: str = "UTC", now: float = 0.0) -> DeviceRow:
    phone = book.phone(device.name)
    state, connection = device_state(device.state), CONNECTIONS[device.registered]
    contacts = tuple(masked_contact(contact) for contact in device.contacts)
    wake = wake_words(device, timezone, now)
    if phone is None:  # a device not in pbx.phones (a phone configured by hand in Asterisk)
        return DeviceRow(device, device.person or device.endpoint, "", "", state, connection, contacts, wake)
    return DeviceRow(device, phone.name, phone.person, phone.business, state, connection, contacts, wake)


def devices_handler(ctx: DashboardContext) -> Handler:
    async def devices(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        admin_only(viewer)
        book = ctx.phone_book
        sites = ctx.devices_by_site() if ctx.devices_by_site is not None else [("", ctx.devices())]
        timezone, now = ctx.common_timezone(None), ctx.clock()
        rows = [
            dataclasses.replace(device_row(device, book, timezone, now), site=site)
            for site, devices in sites
            for device in sorted(devices, key=lambda device: (device.name, device.endpoint))
        ]
        several = any(row.site for row in rows)
        return render(request, "devices.html", rows=rows, timezone=timezone, several_sites=several)

    return page(devices)


def system_handler(ctx: DashboardContext) -> Handler:
    async def system(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        admin_only(viewer)
        now = ctx.clock()
        return render(
            request,
            "system.html",
            health=None if ctx.health is None else ctx.health(),
            ami_last_event_at=ctx.ami_last_event_at(),
            counts=await system_counts(ctx.store, since=now - FAILED_WINDOW_S),
            version=ctx.version,
            database=ctx.store.where,  # the file, or the URL with no password in it
            timezone=ctx.common_timezone(None),
            now=now,
        )

    return page(system)
