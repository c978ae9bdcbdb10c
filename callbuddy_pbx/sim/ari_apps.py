"""The simulated ARI's Stasis applications: which exist, which have a WebSocket, what each is subscribed to, and
so which apps receive an event (res_stasis, as the recordings in shared/traces/asterisk show it).

An app gets channel events for the channels it is subscribed to (in its Stasis() until StasisEnd; originated by
it, until destroyed; explicit `channel:`), and for the channels of endpoints it subscribed to (`endpoint:PJSIP`);
bridge events only for its bridges (a channel of its was added there); EndpointStateChange only through an
endpoint subscription (trace 33: never with subscribeAll); DeviceStateChanged through `deviceState:`; everything
else with subscribeAll. Only an app with a connected socket (`active`) receives anything, and it gets each event
once however many of its subscriptions match (not verified against a real Asterisk).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from callbuddy_pbx.sim.ari_model import AriRestError, SimApp, SimBridge, SimChannel, SimEndpoint, not_found

EventSource = tuple[str, str]  # ("endpoint:", "PJSIP"), ("deviceState:", "PJSIP/100")...


class StasisApps:
    def __init__(self) -> None:
        self.by_name: dict[str, SimApp] = {}

    def require(self, name: str) -> SimApp:
        app = self.by_name.get(name)
        if app is None:
            raise not_found("Application")
        return app

    def connected(self, name: str, subscribe_all: bool) -> SimApp:
        app = self.by_name.get(name)
        if app is None:
            app = SimApp(name, subscribe_all=subscribe_all)
            self.by_name[name] = app
        # An app that already exists is only re-activated: subscribeAll from the new URL is not applied (trace 33).
        app.sockets += 1
        return app

    def disconnected(self, name: str) -> None:
        app = self.by_name.get(name)
        if app is None:
            return
        app.sockets = max(0, app.sockets - 1)
        if not app.active and (app.subscribe_all or not app.holds_subscriptions()):
            del self.by_name[name]  # else it stays listed, inactive (trace 33: "Deactivating", not "Destroying")

    def subscribe(self, app: SimApp, sources: Sequence[EventSource]) -> dict[str, Any]:
        for scheme, target in sources:
            bucket = _bucket(app, scheme)
            if target not in bucket:
                bucket.append(target)
        return app.to_json()

    def unsubscribe(self, app: SimApp, sources: Sequence[EventSource]) -> dict[str, Any]:
        for scheme, target in sources:
            if target not in _bucket(app, scheme):
                raise AriRestError(409, "Application not subscribed to event source")
        for scheme, target in sources:
            _bucket(app, scheme).remove(target)
        return app.to_json()

    def recipients(
        self,
        *,
        channels: Sequence[SimChannel] = (),
        bridge: SimBridge | None = None,
        endpoint: SimEndpoint | None = None,
        endpoint_for_all: bool = True,
        device: str | None = None,
        only_app: str | None = None,
    ) -> list[SimApp]:
        """The active apps an event about these objects goes to. `only_app`: StasisStart / StasisEnd."""
        found = []
        for app in self.by_name.values():
            if not app.active or (only_app is not None and app.name != only_app):
                continue
            if bridge is not None:
                wanted = app.subscribe_all or bridge.id in app.bridge_ids
            elif endpoint is not None:
                wanted = app.wants_endpoint(endpoint) or (app.subscribe_all and endpoint_for_all)
            elif device is not None:
                wanted = app.wants_device(device)
            else:
                wanted = any(app.wants_channel(channel) for channel in channels)
            if wanted:
                found.append(app)
        return found


def _bucket(app: SimApp, scheme: str) -> list[str]:
    return {
        "channel:": app.channel_ids,
        "bridge:": app.bridge_ids,
        "endpoint:": app.endpoint_ids,
        "deviceState:": app.device_names,
    }[scheme]
