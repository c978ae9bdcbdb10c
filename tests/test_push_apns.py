"""The APNs client against the simulated APNs: real TLS and HTTP/2 on loopback, the provider token checked with the
test key's public half, every answer Apple gives mapped to what the router must do."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from callbuddy_pbx.config.push import ApnsConfig
from callbuddy_pbx.push.apns import PRODUCTION_URL, SANDBOX_URL, ApnsSender, service_url
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.sender import CallPush, CancelReason, PushOutcome
from callbuddy_pbx.sim.apns_server import ApnsServer
from tests.push_servers import BUNDLE_ID, KEY_ID, TEAM_ID, apns_key, apns_server, ca, client_tls, pem

__all__ = ["apns_key", "apns_server", "ca", "client_tls"]  # fixtures

TOKEN = "0123456789abcdef" * 4
CALL = CallPush(call_id="1733490000.42", caller_number="+15550001000", caller_name="Ada Lovelace")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def apns_config(private_key: str, *, sandbox: bool = False) -> ApnsConfig:
    return ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, private_key, sandbox=sandbox)


def binding(token: str = TOKEN, **fields: object) -> PushBinding:
    return PushBinding(Provider.APNS, token, **fields)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sender(
    apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext, clock: Clock
) -> ApnsSender:
    apns_server.known_tokens.add(TOKEN)
    credentials = apns_config(pem(apns_key))
    client = ApnsSender(credentials, base_url=apns_server.url, verify=client_tls, timeout_s=2, clock=clock)
    yield client
    await client.close()


async def test_a_call_push_is_a_voip_push_that_never_rings_late(sender: ApnsSender, apns_server: ApnsServer) -> None:
    result = await sender.send_call(binding(), CALL)
    assert result.outcome is PushOutcome.SENT and result.status == 200 and result.push_id
    [push] = apns_server.pushes
    assert push.device_token == TOKEN
    assert push.headers["apns-push-type"] == "voip"
    assert push.headers["apns-topic"] == f"{BUNDLE_ID}.voip"
    assert push.headers["apns-expiration"] == "0"
    assert push.headers["apns-priority"] == "10"
    assert push.headers["apns-collapse-id"] == CALL.call_id
    assert push.payload == {
        "aps": {},
        "type": "call",
        "call_id": CALL.call_id,
        "caller_name": "Ada Lovelace",
        "caller_number": "+15550001000",
    }


async def test_a_huge_caller_name_is_cut_not_refused(sender: ApnsSender, apns_server: ApnsServer) -> None:
    result = await sender.send_call(binding(), CallPush("c1", "+15550001000", "N" * 10_000))
    assert result.sent
    assert apns_server.pushes[0].payload["caller_name"] == "N" * 80


async def test_the_cancel_is_a_normal_push_for_the_same_call(sender: ApnsSender, apns_server: ApnsServer) -> None:
    await sender.send_call(binding(), CALL)
    result = await sender.send_cancel(binding(), CALL, CancelReason.ANSWERED_ELSEWHERE)
    assert result.sent
    cancel = apns_server.pushes[-1]
    assert cancel.headers["apns-push-type"] == "alert"
    assert cancel.headers["apns-topic"] == BUNDLE_ID  # not the VoIP topic: iOS would demand a new CallKit call
    assert cancel.headers["apns-collapse-id"] == CALL.call_id
    assert cancel.payload["type"] == "cancel"
    assert cancel.payload["call_id"] == CALL.call_id
    assert cancel.payload["reason"] == "answered_elsewhere"
    assert cancel.payload["aps"]["alert"]["title"] == "Answered elsewhere"


async def test_pushes_share_one_http2_connection(sender: ApnsSender, apns_server: ApnsServer) -> None:
    for _ in range(3):
        assert (await sender.send_call(binding(), CALL)).sent
    assert apns_server.connections == 1


async def test_fifty_concurrent_calls_are_multiplexed(sender: ApnsSender, apns_server: ApnsServer) -> None:
    calls = [CallPush(f"call-{n}", "+15550001000") for n in range(50)]
    results = await asyncio.gather(*(sender.send_call(binding(), call) for call in calls))
    assert all(result.sent for result in results)
    assert sorted(push.headers["apns-collapse-id"] for push in apns_server.pushes) == sorted(c.call_id for c in calls)
    assert apns_server.connections <= 4  # HTTP/2 streams, not a connection per push
    assert len(set(apns_server.provider_tokens)) == 1


async def test_the_provider_token_is_es256_with_key_id_and_team(
    sender: ApnsSender, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, clock: Clock
) -> None:
    await sender.send_call(binding(), CALL)
    [token] = apns_server.provider_tokens
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(token, apns_key.public_key(), algorithms=["ES256"])
    assert claims == {"iss": TEAM_ID, "iat": int(clock.now)}


async def test_the_provider_token_is_reused_then_renewed_before_an_hour(
    sender: ApnsSender, apns_server: ApnsServer, clock: Clock
) -> None:
    clock.now -= 50 * 60 + 30  # so every token below is issued in the past, as Apple demands
    await sender.send_call(binding(), CALL)
    clock.now += 49 * 60
    await sender.send_call(binding(), CALL)
    first, second = apns_server.provider_tokens
    assert second == first  # Apple throttles providers that make a new token per push
    clock.now += 60
    await sender.send_call(binding(), CALL)
    assert apns_server.provider_tokens[-1] != first
    assert len(apns_server.pushes) == 3


async def test_an_expired_provider_token_is_made_anew_once(sender: ApnsSender, apns_server: ApnsServer) -> None:
    await sender.send_call(binding(), CALL)
    apns_server.fail(403, "ExpiredProviderToken")
    result = await sender.send_call(binding(), CALL)
    assert result.sent
    assert apns_server.provider_tokens[-1] != apns_server.provider_tokens[0]


async def test_a_token_older_than_an_hour_is_refused_by_the_simulator(
    apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    """The simulator holds Apple's rule, so the renewal test above means something."""
    apns_server.known_tokens.add(TOKEN)
    stale = ApnsSender(
        apns_config(pem(apns_key)),
        base_url=apns_server.url,
        verify=client_tls,
        clock=lambda: time.time() - 3700,
    )
    try:
        result = await stale.send_call(binding(), CALL)
    finally:
        await stale.close()
    assert (result.outcome, result.reason) == (PushOutcome.CREDENTIALS_REJECTED, "ExpiredProviderToken")


@pytest.mark.parametrize(
    ("status", "reason", "outcome"),
    [
        (410, "Unregistered", PushOutcome.UNREGISTERED),
        (400, "BadDeviceToken", PushOutcome.UNREGISTERED),
        (400, "DeviceTokenNotForTopic", PushOutcome.UNREGISTERED),
        (403, "InvalidProviderToken", PushOutcome.CREDENTIALS_REJECTED),
        (403, "TooManyProviderTokenUpdates", PushOutcome.CREDENTIALS_REJECTED),
        (429, "TooManyRequests", PushOutcome.RETRY_LATER),
        (500, "InternalServerError", PushOutcome.RETRY_LATER),
        (503, "ServiceUnavailable", PushOutcome.RETRY_LATER),
        (400, "BadCollapseId", PushOutcome.BAD_REQUEST),
        (413, "PayloadTooLarge", PushOutcome.BAD_REQUEST),
    ],
)
async def test_every_apns_answer_maps_to_what_the_router_does(
    sender: ApnsSender, apns_server: ApnsServer, status: int, reason: str, outcome: PushOutcome
) -> None:
    apns_server.fail(status, reason)
    result = await sender.send_call(binding(), CALL)
    assert (result.outcome, result.status, result.reason) == (outcome, status, reason)


async def test_throttling_says_when_to_come_back(sender: ApnsSender, apns_server: ApnsServer) -> None:
    apns_server.fail(429, "TooManyRequests", retry_after="30")
    result = await sender.send_call(binding(), CALL)
    assert (result.outcome, result.retry_after_s) == (PushOutcome.RETRY_LATER, 30.0)


async def test_an_unregistered_device_ends_its_binding(sender: ApnsSender, apns_server: ApnsServer) -> None:
    apns_server.unregistered.add(TOKEN)
    result = await sender.send_call(binding(), CALL)
    assert (result.outcome, result.status, result.reason) == (PushOutcome.UNREGISTERED, 410, "Unregistered")
    unknown = await sender.send_call(binding("fe" * 32), CALL)
    assert (unknown.outcome, unknown.reason) == (PushOutcome.UNREGISTERED, "BadDeviceToken")


async def test_a_key_apple_does_not_know_is_rejected(apns_server: ApnsServer, client_tls: ssl.SSLContext) -> None:
    apns_server.known_tokens.add(TOKEN)
    other_key = pem(ec.generate_private_key(ec.SECP256R1()))
    client = ApnsSender(apns_config(other_key), base_url=apns_server.url, verify=client_tls)
    try:
        result = await client.send_call(binding(), CALL)
    finally:
        await client.close()
    assert (result.outcome, result.status, result.reason) == (
        PushOutcome.CREDENTIALS_REJECTED,
        403,
        "InvalidProviderToken",
    )
    assert apns_server.pushes == []


async def test_a_key_that_cannot_sign_is_rejected_without_a_request(
    apns_server: ApnsServer, client_tls: ssl.SSLContext
) -> None:
    client = ApnsSender(apns_config("not a key"), base_url=apns_server.url, verify=client_tls)
    try:
        result = await client.send_call(binding(), CALL)
    finally:
        await client.close()
    assert result.outcome is PushOutcome.CREDENTIALS_REJECTED
    assert apns_server.provider_tokens == []


async def test_a_slow_apns_is_retry_later_within_the_timeout(
    apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, client_tls: ssl.SSLContext
) -> None:
    apns_server.known_tokens.add(TOKEN)
    apns_server.delay_s = 2.0
    client = ApnsSender(
        apns_config(pem(apns_key)),
        base_url=apns_server.url,
        verify=client_tls,
        timeout_s=0.2,
    )
    started = time.monotonic()
    try:
        result = await client.send_call(binding(), CALL)
    finally:
        await client.close()
    assert result.outcome is PushOutcome.RETRY_LATER and result.status is None
    assert time.monotonic() - started < 1.5


async def test_apns_unreachable_is_retry_later(sender: ApnsSender, apns_server: ApnsServer) -> None:
    await apns_server.close()
    result = await sender.send_call(binding(), CALL)
    assert result.outcome is PushOutcome.RETRY_LATER and result.status is None


async def test_an_untrusted_certificate_is_not_a_push_service(
    apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey
) -> None:
    apns_server.known_tokens.add(TOKEN)
    client = ApnsSender(apns_config(pem(apns_key)), base_url=apns_server.url)
    try:
        result = await client.send_call(binding(), CALL)
    finally:
        await client.close()
    assert result.outcome is PushOutcome.RETRY_LATER
    assert apns_server.pushes == []


async def test_a_binding_for_another_app_or_service_is_not_sent(sender: ApnsSender, apns_server: ApnsServer) -> None:
    other_app = await sender.send_call(binding(app="com.example.other"), CALL)
    other_team = await sender.send_call(binding(app=BUNDLE_ID, team_id="OTHER12345"), CALL)
    fcm = await sender.send_call(PushBinding(Provider.FCM, "x" * 40), CALL)
    assert {other_app.outcome, other_team.outcome, fcm.outcome} == {PushOutcome.BAD_REQUEST}
    assert apns_server.provider_tokens == []  # nothing reached APNs
    assert (await sender.send_call(binding(app=BUNDLE_ID, team_id=TEAM_ID), CALL)).sent


def test_the_phone_says_which_apple_environment_its_token_is_for() -> None:
    production = apns_config("", sandbox=False)
    sandbox = apns_config("", sandbox=True)
    assert service_url(production, binding()) == PRODUCTION_URL
    assert service_url(sandbox, binding()) == SANDBOX_URL
    assert service_url(production, binding(sandbox=True)) == SANDBOX_URL
    assert service_url(sandbox, binding(sandbox=False)) == PRODUCTION_URL


async def test_nothing_secret_is_logged_even_at_debug(
    sender: ApnsSender, apns_server: ApnsServer, apns_key: ec.EllipticCurvePrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sender.send_call(binding(), CALL)
    apns_server.unregistered.add(TOKEN)
    await sender.send_call(binding(), CALL)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert TOKEN[:4] + "..." + TOKEN[-4:] in logged  # masked, still telling devices apart
    assert TOKEN not in logged
    assert apns_server.provider_tokens[0] not in logged
    assert pem(apns_key).splitlines()[1] not in logged
