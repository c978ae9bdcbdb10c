"""An Android softphone woken through FCM, end to end on loopback: the simulated ARI with a mobile that registers
with `pn-provider=fcm` and sleeps, the simulated FCM (OAuth2 token endpoint and HTTP v1 over HTTP/2 and TLS), the
real PushSenders and RoutingService. The phone wakes on the call's data message, registers again and answers."""

from __future__ import annotations

import asyncio
import ssl

from cryptography.hazmat.primitives.asymmetric import rsa

from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import PbxConfig
from callbuddy_pbx.config.push import FcmConfig, PushConfig
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.sim.fcm_server import FcmServer
from tests.push_servers import CLIENT_EMAIL, PROJECT_ID, ca, client_tls, fcm_key, fcm_server, pem
from tests.test_push_router import DID, MOBILE, PHONES, WAIT_S, group, legs_to
from tests.test_router import bridged, sim
from tests.test_sim_ari import config_for
from tests.waiting import wait_until

__all__ = ["ca", "client_tls", "fcm_key", "fcm_server", "sim"]  # fixtures

FCM_TOKEN = "dGVzdC1mY20tdG9rZW4:APA91b" + "x" * 60  # an FCM registration token's shape


async def test_a_sleeping_android_softphone_wakes_on_fcm_and_answers(
    sim: SimulatedAriServer, fcm_server: FcmServer, fcm_key: rsa.RSAPrivateKey, client_tls: ssl.SSLContext
) -> None:
    fcm_server.known_tokens.add(FCM_TOKEN)
    sim.wake_on(fcm_server)
    fcm = FcmConfig(PROJECT_ID, CLIENT_EMAIL, pem(fcm_key), token_uri=fcm_server.token_uri)
    push = PushConfig(fcm=fcm, push_wait_s=WAIT_S)
    config = Config(pbx=PbxConfig(phones=PHONES, ring_groups=(group(),)), ari=config_for(sim), push=push)

    def senders(settings: PushConfig) -> PushSenders:
        return PushSenders.from_config(settings, verify=client_tls, fcm_url=fcm_server.url)

    service = RoutingService(config, DeviceRegistry.from_config(config), push_factory=senders)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: service.ready)
        phone = sim.mobile_softphone("103", FCM_TOKEN, PROJECT_ID, wake_after_s=0.05, provider="fcm")
        await wait_until(lambda: getattr(service.registry.get(MOBILE), "registered", None) is True)
        sim.mobile_sleeps(phone)
        await wait_until(lambda: getattr(service.registry.get(MOBILE), "sleeping", False))
        sim.phone_answers_after("103", 0.1)
        caller = sim.inbound_call(DID, "15557654321", "Jane Caller")
        await wait_until(lambda: bool(bridged(sim)))
        [leg] = legs_to(sim, MOBILE)
        assert sorted(bridged(sim)[0]) == sorted([caller, leg])  # the woken Android phone answered
        [message] = fcm_server.messages
        assert message.message["token"] == FCM_TOKEN and message.message["android"]["priority"] == "high"
        assert message.message["data"]["type"] == "call" and message.message["data"]["call_id"] == caller
        assert phone.wakes == 1 and phone.port == 40001
        await asyncio.sleep(0.1)
        assert [m.message["data"]["type"] for m in fcm_server.messages] == ["call"]  # no cancel to the answerer
        device = service.registry.get(MOBILE)
        assert device is not None and device.wake.woke_ms is not None
    finally:
        await service.stop()
        await asyncio.wait_for(task, 5)
