"""The configured push services, picked by the binding's provider; a provider without credentials is never tried."""

from __future__ import annotations

import ssl

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from callbuddy_pbx.config.push import ApnsConfig, FcmConfig, PushConfig
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.sender import CallPush, CancelReason, PushOutcome
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.fcm_server import FcmServer
from tests.push_servers import (
    BUNDLE_ID,
    CLIENT_EMAIL,
    KEY_ID,
    PROJECT_ID,
    TEAM_ID,
    apns_key,
    apns_server,
    ca,
    client_tls,
    fcm_key,
    fcm_server,
    pem,
)

__all__ = ["apns_key", "apns_server", "ca", "client_tls", "fcm_key", "fcm_server"]  # fixtures

APNS_TOKEN = "ab" * 32
FCM_TOKEN = "fcm-token-" + "x" * 40
CALL = CallPush("1733490000.7", "+15550001000", "Ada")


async def test_each_binding_goes_to_its_own_service(
    apns_server: ApnsServer,
    fcm_server: FcmServer,
    apns_key: ec.EllipticCurvePrivateKey,
    fcm_key: rsa.RSAPrivateKey,
    client_tls: ssl.SSLContext,
) -> None:
    apns_server.known_tokens.add(APNS_TOKEN)
    fcm_server.known_tokens.add(FCM_TOKEN)
    config = PushConfig(
        apns=ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, pem(apns_key)),
        fcm=FcmConfig(PROJECT_ID, CLIENT_EMAIL, pem(fcm_key), token_uri=fcm_server.token_uri),
    )
    senders = PushSenders.from_config(config, verify=client_tls, apns_url=apns_server.url, fcm_url=fcm_server.url)
    try:
        assert senders.providers == {Provider.APNS, Provider.FCM}
        assert (await senders.send_call(PushBinding(Provider.APNS, APNS_TOKEN), CALL)).sent
        assert (await senders.send_cancel(PushBinding(Provider.FCM, FCM_TOKEN), CALL, CancelReason.CALLER_HUNG_UP)).sent
    finally:
        await senders.close()
    assert [push.device_token for push in apns_server.pushes] == [APNS_TOKEN]
    assert [message.message["token"] for message in fcm_server.messages] == [FCM_TOKEN]


async def test_a_provider_without_credentials_is_not_tried(
    fcm_server: FcmServer, fcm_key: rsa.RSAPrivateKey, client_tls: ssl.SSLContext
) -> None:
    config = PushConfig(fcm=FcmConfig(PROJECT_ID, CLIENT_EMAIL, pem(fcm_key), token_uri=fcm_server.token_uri))
    senders = PushSenders.from_config(config, verify=client_tls, fcm_url=fcm_server.url)
    apple = PushBinding(Provider.APNS, APNS_TOKEN)
    try:
        assert not senders.can_push(apple) and senders.can_push(PushBinding(Provider.FCM, FCM_TOKEN))
        for result in (
            await senders.send_call(apple, CALL),
            await senders.send_cancel(apple, CALL, CancelReason.ANSWERED_ELSEWHERE),
        ):
            assert (result.outcome, result.reason) == (PushOutcome.BAD_REQUEST, "no apns credentials configured")
    finally:
        await senders.close()
    assert fcm_server.token_requests == 0


async def test_no_push_configuration_gives_no_senders() -> None:
    senders = PushSenders.from_config(PushConfig())
    assert senders.providers == frozenset()
    await senders.close()
