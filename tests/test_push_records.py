"""What the router records of its pushes, end to end on loopback (the fixtures of test_push_router): each device's
last wake-up and last failure in the device registry, and the push services refusing our credentials."""

from __future__ import annotations

import asyncio
import ssl

from cryptography.hazmat.primitives.asymmetric import ec

from callbuddy_pbx.asterisk.devices_model import Device, WakeFailure, WakeRecord
from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from tests.push_servers import apns_key, apns_server, ca, client_tls
from tests.test_push_router import DID, MOBILE, PushRouting, push_routing
from tests.test_router import bridged, sim
from tests.waiting import wait_until

__all__ = ["apns_key", "apns_server", "ca", "client_tls", "sim"]  # fixtures


def mobile(run: PushRouting) -> Device:
    device = run.registry.get(MOBILE)
    assert device is not None
    return device


async def test_a_wake_up_is_recorded_with_its_time_from_push_to_registration(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls, wake_after_s=0.15) as run:
        assert mobile(run).wake == WakeRecord()
        sim.phone_answers_after("103", 0.05)
        sim.inbound_call(DID)
        await wait_until(lambda: bool(bridged(sim)))
        record = mobile(run).wake
        assert record.woke_ms is not None and 150 <= record.woke_ms < 400  # the phone took 0.15 s to register
        assert record.woke_at is not None and record.failure is None and not record.failing


async def test_a_phone_that_never_wakes_is_recorded_as_not_woken(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls, wake_after_s=None) as run:
        sim.inbound_call(DID)
        await wait_until(lambda: mobile(run).wake.failure is not None, within=3)
        record = mobile(run).wake
        assert record.failure is WakeFailure.DID_NOT_WAKE and record.failing and record.woke_ms is None


async def test_a_dead_token_is_recorded_as_unregistered(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        apns_server.unregistered.add(run.phone.token)
        sim.inbound_call(DID)
        await wait_until(lambda: mobile(run).wake.failure is not None)
        assert mobile(run).wake.failure is WakeFailure.UNREGISTERED


async def test_a_throttled_or_hanging_push_service_is_recorded_as_busy(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        apns_server.fail(429, "TooManyRequests", retry_after="30")
        sim.caller_hangs_up(sim.inbound_call(DID))
        await wait_until(lambda: mobile(run).wake.failure is not None)
        assert mobile(run).wake.failure is WakeFailure.SERVICE_BUSY
        assert run.service.push_refused() == {}  # throttling says nothing of our credentials


async def test_a_push_service_that_never_answers_is_busy_not_a_phone_that_did_not_wake(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    apns_server.delay_s = 3.0
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        sim.inbound_call(DID)
        await wait_until(lambda: mobile(run).wake.failure is not None, within=3)
        assert mobile(run).wake.failure is WakeFailure.SERVICE_BUSY


async def refused_call(sim: SimulatedAriServer, run: PushRouting) -> None:
    """A call whose caller hangs up at once; returns once its push's refusal is recorded."""
    before = mobile(run).wake.failed_at

    def recorded() -> bool:
        return mobile(run).wake.failed_at != before

    sim.caller_hangs_up(sim.inbound_call(DID))
    await wait_until(recorded)


async def test_refused_credentials_are_kept_per_service_until_a_push_is_taken_again(
    sim: SimulatedAriServer, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    async with push_routing(sim, apns_server, apns_key, client_tls) as run:
        apns_server.fail(403, "InvalidProviderToken", times=2)
        for _ in range(2):  # two calls, one refused service
            await refused_call(sim, run)
        assert mobile(run).wake.failure is WakeFailure.CREDENTIALS_REJECTED
        assert run.service.push_refused() == {"apns": "InvalidProviderToken"}
        sim.phone_answers_after("103", 0.05)
        sim.inbound_call(DID)  # the key works again
        await wait_until(lambda: bool(bridged(sim)))
        await asyncio.sleep(0)
        assert run.service.push_refused() == {}
        assert not mobile(run).wake.failing  # a later wake-up makes the failure history
