"""Wiring only: one AriClient -> the call router, and ARI's device events -> the device registry.

Runs beside CallService (the AMI observer, which stays the single judge of every call) when at least one ring group
has `routing: callbuddy`. The app subscribes explicitly to `endpoint:PJSIP` and `deviceState:PJSIP/<ext>` for every
configured phone: an app connected without those gets no endpoint events, and `subscribeAll=true` never delivers
EndpointStateChange (trace 33). After every (re)connect the registry is seeded from `GET /ari/endpoints` and the
router rebuilt from `GET /ari/channels` (see Router.rebuild: nothing missed while the socket was down is replayed;
a phone a call waits to wake that registered meanwhile is rung, Router.registered_meanwhile).

With push credentials configured (`push:`), the router is handed the push services (push.senders.PushSenders) to
wake sleeping softphones; a ContactStatusChange goes to the registry first (it keeps the binding) and then to the
router (a call waiting for that phone rings it). The push clients are closed when the service stops. Each phone's
wake-ups and failures are recorded in the registry (its devices page); `push_refused` tells the alerts which push
services refuse our credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from callbuddy_pbx.asterisk.ari import AriClient, AriError, AriEvent
from callbuddy_pbx.asterisk.devices import ARI_DEVICE_EVENTS, DeviceRegistry
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import RingGroup
from callbuddy_pbx.config.push import PushConfig
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.routing.router import Router, TimingHook
from callbuddy_pbx.routing.wake import PushWake
from callbuddy_pbx.routing.wake_report import PushCredentials

log = logging.getLogger(__name__)

ClientFactory = Callable[..., AriClient]  # called like AriClient(config.ari, app, on_event, ..., event_sources=...)
PushFactory = Callable[[PushConfig], PushSenders]  # PushSenders.from_config; tests point it at simulated services


def routed_groups(config: Config) -> tuple[RingGroup, ...]:
    """The ring groups whose calls the service routes."""
    return tuple(group for group in config.pbx.ring_groups if group.routing == "callbuddy")


class RoutingService:
    """Routes the calls of `routing: callbuddy` numbers over ARI; `run()` until `stop()`."""

    def __init__(
        self,
        config: Config,
        registry: DeviceRegistry,
        *,
        client_factory: ClientFactory = AriClient,
        clock: Callable[[], float] = time.time,
        on_timing: TimingHook | None = None,
        push_factory: PushFactory = PushSenders.from_config,
    ) -> None:
        self.registry = registry
        self._clock = clock
        phones = config.pbx.phones
        sources = ("endpoint:PJSIP", *dict.fromkeys(f"deviceState:PJSIP/{phone.extension}" for phone in phones))
        self.client: AriClient = client_factory(
            config.ari,
            config.ari.app,
            self._on_event,
            self._on_connected,
            self._on_disconnected,
            event_sources=sources,
        )
        self.push: PushSenders | None = push_factory(config.push) if config.push.enabled else None
        self.push_credentials = PushCredentials()
        wake = None
        if self.push is not None:  # the registry keeps each phone's wake-ups for the devices page
            wake = PushWake(
                self.push,
                config.push.push_wait_s,
                registry.end_binding,
                report=registry,
                credentials=self.push_credentials,
                clock=clock,
            )
        self.router = Router(
            self.client, routed_groups(config), phones, registry.get, clock=clock, on_timing=on_timing, wake=wake
        )

    @staticmethod
    def wanted(config: Config) -> bool:
        return bool(routed_groups(config))

    @property
    def connected(self) -> bool:
        """The event WebSocket is open (Asterisk listing the app proves nothing: trace 33)."""
        return self.client.connected

    @property
    def ready(self) -> bool:
        """Connected, subscribed, seeded and rebuilt: calls entering Stasis now are routed."""
        return self.client.ready

    @property
    def last_error(self) -> str:
        return self.client.last_error

    @property
    def routes_active(self) -> int:
        return self.router.active

    def push_refused(self) -> dict[str, str]:
        """The push services refusing our credentials now (provider -> their reason), for the alerts."""
        return self.push_credentials.refused()

    async def run(self) -> None:
        """Keep the ARI link up and route calls until `stop()` (or cancellation)."""
        try:
            await self.client.run()
        finally:
            await self.router.shutdown()  # the push clients stay open: the supervisor may run this again

    async def stop(self) -> None:
        """Hand unanswered calls back to the dialplan while ARI still answers, then close the link."""
        await self.router.shutdown()
        await self.client.close()
        await self._close_push()

    async def _close_push(self) -> None:
        if self.push is not None:
            await self.push.close()

    # The hot path: one call per ARI event, synchronous, no I/O.
    def _on_event(self, event: AriEvent, received_at: float) -> None:
        if event["type"] in ARI_DEVICE_EVENTS:
            self.registry.feed_ari(event, received_at)
            if event["type"] == "ContactStatusChange":  # after the registry: it keeps the new contact's binding
                self.router.on_event(event, received_at)
        else:
            self.router.on_event(event, received_at)

    async def _on_connected(self, client: AriClient) -> None:
        try:
            endpoints = await client.get("endpoints")
        except AriError as exc:
            log.warning("ARI: GET /endpoints failed (%s); phone states come from events only", exc)
        else:
            count = self.registry.seed_ari_endpoints(endpoints if isinstance(endpoints, list) else [], self._clock())
            log.info("ARI: %d phones seeded from the endpoint list", count)
        await self.router.rebuild()
        if woken := self.router.registered_meanwhile():
            log.info("ARI: %d calls ring a phone that woke while the link was down", woken)
        log.info("ARI: routing calls of app %r; %d calls followed", client.app, self.router.active)

    def _on_disconnected(self, reason: str) -> None:
        log.warning("ARI link lost (%s): calls ring through the dialplan's fail-open path until it is back", reason)
