"""GET /devices and GET /system : what the installer looks at, for admins only (a business user gets 403).

/devices lists the phones the device registry knows (`ctx.devices()`); /system the AMI link, the SMS gateways
(`ctx.health()`), the outbox backlog and the texts failed in the last hour (counted in the database), the version
and the database file. Times are on the businesses' shared clock (UTC when they differ).
"""

from __future__ import annotations

from aiohttp import web

from callbuddy_pbx.store.dashboard_queries import system_counts
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.page import Handler, admin_only, page, render
from callbuddy_pbx.web.viewer import Viewer

FAILED_WINDOW_S = 3600.0


def devices_handler(ctx: DashboardContext) -> Handler:
    async def devices(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        admin_only(viewer)
        found = sorted(ctx.devices(), key=lambda device: (device.name, device.endpoint))
        return render(request, "devices.html", devices=found, timezone=ctx.common_timezone(None))

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
            database=str(ctx.store.path),
            timezone=ctx.common_timezone(None),
            now=now,
        )

    return page(system)
