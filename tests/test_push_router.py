"""Push wake-up in the router, end to end on loopback: the simulated ARI (with a mobile softphone that sleeps and
registers again after a VoIP push), the simulated APNs over HTTP/2 and TLS, the real AriClient, PushSenders and
RoutingService.

Ana has a desk phone (100) and a mobile softphone (103); Ben has a desk phone (101). The group rings both people.
Ring steps are 2 s and push_wait_seconds 0.6, so a phone that does not wake costs a test at most 0.6 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import NoAnswer, PbxConfig, Phone, RingGroup
from callbuddy_pbx.config.push import ApnsConfig, PushConfig
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.sender import CallPush, CancelReason, PushOutcome, PushResult
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.routing.wake import CallWakes, PushWake, Wakeups, Woken
from callbuddy_pbx.sim.apns_server import ApnsServer, ReceivedPush
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.sim.mobile_phones import MobileSoftphone
from tests.push_servers import BUNDLE_ID, KEY_ID, TEAM_ID, apns_key, apns_server, ca, client_tls, pem
from tests.test_router import bridged, hangups, originated, sim
from tests.test_sim_ari import config_for
from tests.waiting import wait_until

__all__ = ["apns_key", "apns_server", "ca", "client_tls", "sim"]  # fixtures

DID = "15550001001"
TOKEN = "c0ffee" * 10 + "beef"  # 64 hex digits
PARAM = f"{TEAM_ID}.{BUNDLE_ID}.voip"
MOBILE = "PJSIP/103"
PHONES = (
    Phone("100", "Ana desk", "Glow", person="Ana"),
    Phone("101", "Ben desk", "Glow", person="Ben"),
    Phone("103", "Ana mobile", "Glow", person="Ana"),
)
WAIT_S = 0.6


def group(members: tuple[str, ...] = ("100", "101"), strategy: str = "ring_all", ring_s: int = 2) -> RingGroup:
    return RingGroup("+" + DID, members, strategy, ring_s, 10, NoAnswer("hangup"), routing="callbuddy")


class PushRouting:
    def __init__(self, service: RoutingService, apns: ApnsServer, phone: MobileSoftphone) -> None:
        self.service = service
        self.registry: DeviceRegistry = service.registry
        self.apns = apns
        self.phone = phone

    def pushes(self, kind: str) -> list[ReceivedPush]:
        """The pushes APNs took for the mobile: "call" (VoIP) or "cancel" (alert)."""
        return [push for push in self.apns.pushes if push.payload.get("type") == kind]


@contextlib.asynccontextmanager
async def push_routing(
    sim: SimulatedAriServer,
    apns: ApnsServer,
    key: ec.EllipticCurvePrivateKey,
    tls: ssl.SSLContext,
    *,
    ring_group: RingGroup | None = None,
    wake_after_s: float | None = 0.05,
    padding: str = "",
    apns_url: str | None = None,
    push_wait_s: float = WAIT_S,
) -> AsyncIterator[PushRouting]:
    """A routing service with APNs configured, and Ana's mobile registered (so the service learns its binding
    from the ContactStatusChange) and then asleep."""
    apns.known_tokens.add(TOKEN)
    sim.wake_on(apns)
    push = PushConfig(apns=ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, pem(key)), push_wait_s=push_wait_s)
    config = Config(pbx=PbxConfig(phones=PHONES, ring_groups=(ring_group or group(),)), ari=config_for(sim), push=push)

    def senders(settings: PushConfig) -> PushSenders:
        return PushSenders.from_config(settings, verify=tls, apns_url=apns_url or apns.url)

    service = RoutingService(config, DeviceRegistry.from_config(config), push_factory=senders)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.ready)
        phone = sim.mobile_softphone("103", TOKEN, PARAM, wake_after_s=wake_after_s, padding=padding)
        await wait_until(lambda: _registered(service, True))
        sim.mobile_sleeps(phone)
        await wait_until(lambda: _registered(service, False))
        yield PushRouting(service, apns, phone)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 5)


def _registered(service: RoutingService, registered: bool) -> bool:
    device = service.registry.get(MOBILE)
    return device is not None and device.registered is registered


def legs_to(sim: SimulatedAriServer, endpoint: str) -> list[str]:
    return [channel_id for ep, channel_id, status in originated(sim) if ep == endpoint and status == 200]


def originate_times(sim: SimulatedAriServer, endpoint: str) -> list[float]:
    posts = [r for r in sim.requests if r.method == "POST" and r.path == "/ari/channels"]
    return [r.at for r in posts if r.query["endpoint"] == endpoint]


async def test_a_sleeping_mobile_wakes_fast_rings_and_answers(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        sim.phone_answers_after("103", 0.1)
        assert run.registry.get(MOBILE).sleeping  # type: ignore[union-attr]
        caller = sim.inbound_call(DID, "15557654321", "Jane Caller")
        await wait_until(lambda: bool(bridged(sim)))
        [leg] = legs_to(sim, MOBILE)
        assert sorted(bridged(sim)[0]) == sorted([caller, leg])
        # Just another leg of the caller's call (its Linkedid), so the AMI observer judges the call answered.
        [query] = [r.query for r in sim.requests if r.path == "/ari/channels" and r.query.get("channelId") == leg]
        assert (query["originator"], query["appArgs"]) == (caller, f"dialed,{caller}")
        # The desks rang at once, before the mobile had even registered again.
        assert legs_to(sim, "PJSIP/100") and legs_to(sim, "PJSIP/101")
        assert (
            max(originate_times(sim, "PJSIP/100") + originate_times(sim, "PJSIP/101")) < originate_times(sim, MOBILE)[0]
        )
        [push] = run.pushes("call")
        assert push.device_token == TOKEN and push.headers["apns-push-type"] == "voip"
        assert push.payload["call_id"] == caller
        assert (push.payload["caller_number"], push.payload["caller_name"]) == ("15557654321", "Jane Caller")
        assert run.phone.wakes == 1 and run.phone.port == 40001  # registered again from a new port
        await wait_until(lambda: len(hangups(sim)) == 2)
        assert set(hangups(sim).values()) == {"answered_elsewhere"}  # the desks
        await asyncio.sleep(0.1)
        assert run.pushes("cancel") == []  # the phone that answered is not told to stop ringing
        assert run.service.router.woken == 1


async def test_a_mobile_that_wakes_while_the_ari_link_is_down_rings_once_it_is_back(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    """The phone's ContactStatusChange is lost with the socket; the endpoint list after the reconnect says it is
    online, and the call still waiting for it rings it."""
    slow = group(ring_s=4)
    async with push_routing(
        sim, apns_server, apns_key, client_tls, ring_group=slow, wake_after_s=0.2, push_wait_s=1.5
    ) as run:
        sim.phone_answers_after("103", 0.1)
        caller = sim.inbound_call(DID)
        await wait_until(lambda: bool(run.pushes("call")))
        sim.silent = True  # half-open from now on: what Asterisk sends is lost
        await wait_until(lambda: run.phone.wakes == 1)
        await asyncio.sleep(0.05)
        assert legs_to(sim, MOBILE) == []  # its registration went nowhere
        await sim.drop_websockets()
        await wait_until(lambda: bool(bridged(sim)), within=3)
        assert sorted(bridged(sim)[0]) == sorted([caller, *legs_to(sim, MOBILE)])
        assert run.service.client.connects == 2


async def test_a_mobile_waking_after_a_colleague_answered_gets_a_cancel_and_no_call(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    sim.phone_answers_after("101", 0.05)
    async with push_routing(sim, apns_server, apns_key, client_tls, wake_after_s=0.4) as run:
        caller = sim.inbound_call(DID)
        await wait_until(lambda: bool(bridged(sim)))
        await wait_until(lambda: bool(run.pushes("cancel")))
        [cancel] = run.pushes("cancel")
        assert cancel.device_token == TOKEN and cancel.headers["apns-push-type"] == "alert"
        assert (cancel.payload["reason"], cancel.payload["call_id"]) == ("answered_elsewhere", caller)
        await wait_until(lambda: run.phone.wakes == 1)  # it wakes after all...
        await asyncio.sleep(0.1)
        assert legs_to(sim, MOBILE) == []  # ...but the call is answered: nothing rings it
        assert run.service.router.woken == 0


async def test_a_mobile_that_never_wakes_leaves_the_call_as_if_it_were_not_there(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls, wake_after_s=None) as run:
        started = time.monotonic()
        caller = sim.inbound_call(DID)
        router = run.service.router
        await wait_until(lambda: router.routed == 1 and router.active == 0, within=5)
        assert time.monotonic() - started < 2 + 1.5  # the step's 2 s and the grace: nothing waited longer
        assert hangups(sim)[caller] == "no_answer"  # the group's hangup action, as without the mobile
        assert legs_to(sim, MOBILE) == [] and len(run.pushes("call")) == 1
        await wait_until(lambda: bool(run.pushes("cancel")))
        assert [push.payload["reason"] for push in run.pushes("cancel")] == ["caller_hung_up"]  # "Missed call"
        assert len(router.wakeups) == 0  # no waiter left behind


async def test_a_person_with_only_a_sleeping_mobile_is_waited_for_then_the_next_rings(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    phones_group = group(("103", "101"), "in_order")
    sim.phone_answers_after("101", 0.05)
    async with push_routing(sim, apns_server, apns_key, client_tls, ring_group=phones_group, wake_after_s=None) as run:
        sim.unregister("100")  # Ana's desk is off: her step is the mobile alone
        await wait_until(lambda: run.registry.get("PJSIP/100").registered is False)  # type: ignore[union-attr]
        started = time.monotonic()
        sim.inbound_call(DID)
        await wait_until(lambda: bool(bridged(sim)))
        waited = time.monotonic() - started
        assert WAIT_S <= waited < WAIT_S + 0.5  # Ana's step ended when her mobile's wait did, not after 2 s
        assert len(run.pushes("call")) == 1 and legs_to(sim, MOBILE) == []


async def test_the_caller_hanging_up_during_the_wait_cancels_the_push(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls, wake_after_s=0.4) as run:
        caller = sim.inbound_call(DID)
        await wait_until(lambda: bool(run.pushes("call")))
        sim.caller_hangs_up(caller)
        await wait_until(lambda: bool(run.pushes("cancel")))
        assert run.pushes("cancel")[0].payload["reason"] == "caller_hung_up"
        await wait_until(lambda: run.phone.wakes == 1)
        await asyncio.sleep(0.1)
        assert legs_to(sim, MOBILE) == [] and run.service.router.active == 0


async def test_an_unregistered_token_ends_the_binding_and_the_desks_ring_anyway(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    sim.phone_answers_after("101", 0.3)
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        apns_server.unregistered.add(TOKEN)
        sim.inbound_call(DID)
        await wait_until(lambda: run.registry.get(MOBILE).push_binding is None)  # type: ignore[union-attr]
        await wait_until(lambda: bool(bridged(sim)))
        assert legs_to(sim, "PJSIP/100") and legs_to(sim, MOBILE) == []
        sim.caller_hangs_up(sim.inbound_call(DID))  # a second call: no binding, no push
        await asyncio.sleep(0.2)
        assert apns_server.pushes == [] and run.service.router.active <= 1


@pytest.mark.parametrize(
    "trouble",
    ["throttled", "service failing", "service hanging", "service unreachable"],
)
async def test_push_trouble_never_delays_the_other_phones(
    sim: SimulatedAriServer,
    apns_server: ApnsServer,
    apns_key: ec.EllipticCurvePrivateKey,
    client_tls: ssl.SSLContext,
    trouble: str,
) -> None:
    sim.phone_answers_after("101", 0.1)
    url = None
    if trouble == "throttled":
        apns_server.fail(429, "TooManyRequests", times=5, retry_after="30")
    elif trouble == "service failing":
        apns_server.fail(503, "ServiceUnavailable", times=5)
    elif trouble == "service hanging":
        apns_server.delay_s = 5.0
    else:
        url = "https://127.0.0.1:9"  # nothing listens: connection refused
    async with push_routing(sim, apns_server, apns_key, client_tls, apns_url=url) as run:
        started = time.monotonic()
        caller = sim.inbound_call(DID)
        await wait_until(lambda: bool(bridged(sim)))
        assert time.monotonic() - started < 0.5  # Ben's desk answered after 0.1 s as if no push were involved
        assert caller in bridged(sim)[0] and legs_to(sim, "PJSIP/100")
        await wait_until(lambda: run.service.router.active == 1)
        assert run.registry.get(MOBILE).push_binding is not None  # type: ignore[union-attr]  # not a dead token
        assert legs_to(sim, MOBILE) == []


async def test_the_push_is_begun_while_the_stasisstart_is_handled(
    sim: SimulatedAriServer,
    apns_server: ApnsServer,
    apns_key: ec.EllipticCurvePrivateKey,
    client_tls: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Waking takes seconds: the push is begun in the step that handles the call's StasisStart, so nothing of this
    call (its desks, its ringback) or of the calls that came in the same burst is queued ahead of it."""
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        router = run.service.router
        assert router.wake is not None
        service = router.wake.service
        begun: list[str] = []
        begun_when_handled: list[list[str]] = []
        start_call = service.start_call

        def spy(binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]:
            begun.append(call.call_id)
            return start_call(binding, call)

        handle = router.on_event

        def on_event(event: dict[str, Any], received_at: float) -> None:
            handle(event, received_at)
            if event["type"] == "StasisStart":
                begun_when_handled.append(list(begun))

        monkeypatch.setattr(service, "start_call", spy)
        monkeypatch.setattr(router, "on_event", on_event)
        caller = sim.inbound_call(DID)
        await wait_until(lambda: bool(run.pushes("call")))
        assert begun_when_handled[0] == [caller]


async def test_two_calls_for_one_sleeping_mobile_each_push_and_each_ring_it(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls, wake_after_s=0.2) as run:
        first = sim.inbound_call(DID, "15557654321")
        second = sim.inbound_call(DID, "15557654322")
        await wait_until(lambda: len(legs_to(sim, MOBILE)) == 2)
        assert sorted(push.payload["call_id"] for push in run.pushes("call")) == sorted([first, second])
        assert run.phone.wakes == 1  # one wake-up serves both calls
        assert sorted(leg.split("-cb-")[0] for leg in legs_to(sim, MOBILE)) == sorted([first, second])


async def test_a_contact_uri_near_asterisks_512_characters_wakes_the_phone(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    bare = MobileSoftphone("103", TOKEN, PARAM, port=40001).uri
    padding = ";x-pad=" + "a" * (510 - len(bare) - len(";x-pad="))
    async with push_routing(sim, apns_server, apns_key, client_tls, padding=padding) as run:
        sim.phone_answers_after("103", 0.05)
        assert len(run.phone.uri) == 510
        sim.inbound_call(DID)
        await wait_until(lambda: bool(bridged(sim)))
        assert legs_to(sim, MOBILE) and len(run.pushes("call")) == 1


def test_a_step_waits_for_a_woken_phone_at_most_half_its_ring_time() -> None:
    wake = PushWake(PushSenders({}), wait_s=8.0)
    assert (wake.wait_for(20), wake.wait_for(6), wake.wait_for(0)) == (8.0, 3.0, 0.0)


class _Closing:
    """A push client that only notes being closed."""

    provider = Provider.APNS
    closed = 0

    async def send_call(self, binding: PushBinding, call: CallPush) -> PushResult:
        raise AssertionError("not sent in this test")

    async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult:
        raise AssertionError("not sent in this test")

    async def close(self) -> None:
        self.closed += 1


async def test_the_push_clients_are_built_only_when_configured_and_closed_on_stop(sim: SimulatedAriServer) -> None:
    client = _Closing()
    base = Config(pbx=PbxConfig(phones=PHONES, ring_groups=(group(),)), ari=config_for(sim))

    def senders(settings: PushConfig) -> PushSenders:
        return PushSenders({Provider.APNS: client})

    plain = RoutingService(base, DeviceRegistry.from_config(base), push_factory=senders)
    assert plain.push is None and plain.router.wake is None
    await plain.stop()
    push = PushConfig(apns=ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, "unused"), push_wait_s=3.0)
    config = dataclasses.replace(base, push=push)
    service = RoutingService(config, DeviceRegistry.from_config(config), push_factory=senders)
    assert service.router.wake is not None and service.router.wake.wait_s == 3.0
    await service.stop()
    assert client.closed == 1


async def test_a_phone_registering_before_its_push_is_answered_still_rings() -> None:
    wakeups = Wakeups()
    binding = PushBinding(Provider.APNS, TOKEN)

    class Instant:
        """APNs delivers and the phone registers before the push request's answer is back."""

        def can_push(self, binding: PushBinding) -> bool:
            return True

        def start_call(self, binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]:
            wakeups.registered(MOBILE)
            answered: asyncio.Future[PushResult] = asyncio.get_running_loop().create_future()
            answered.set_result(PushResult(PushOutcome.SENT, 200))
            return answered

        async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult:
            raise AssertionError("no cancel: the call was not over")

    def no_background_work(work: Coroutine[Any, Any, None]) -> None:
        work.close()
        raise AssertionError("nothing to send in the background")

    posted: list[Woken] = []
    call = CallPush("c1", "+15557654321")
    wakes = CallWakes(PushWake(Instant(), wait_s=0.5), wakeups, call, posted.append, no_background_work)
    wakes.start(MOBILE, binding, 0.5)
    await wait_until(lambda: bool(posted))
    assert posted == [Woken(MOBILE, True)] and len(wakeups) == 0
