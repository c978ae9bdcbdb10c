"""The FCM HTTP v1 client against the simulated FCM: the service-account assertion traded for an access token at the
token endpoint, the token kept, the messages' shape, and every answer mapped to what the router must do."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from callbuddy_pbx.config.push import FcmConfig
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.fcm import SCOPE, TOKEN_MARGIN_S, FcmSender
from callbuddy_pbx.push.sender import CallPush, CancelReason, PushOutcome
from callbuddy_pbx.sim.fcm_server import FcmServer
from tests.push_servers import CLIENT_EMAIL, PROJECT_ID, ca, client_tls, fcm_key, fcm_server, pem

__all__ = ["ca", "client_tls", "fcm_key", "fcm_server"]  # fixtures

TOKEN = "dXk3_Qm9R0e:APA91bHuVx-0aZ_" + "k" * 120
CALL = CallPush(call_id="1733490000.42", caller_number="+15550001000", caller_name="Ada Lovelace")
BINDING = PushBinding(Provider.FCM, TOKEN, app=PROJECT_ID)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def credentials(server: FcmServer, key: rsa.RSAPrivateKey, **fields: str) -> FcmConfig:
    values = {"private_key_id": "abc123", "token_uri": server.token_uri, **fields}
    return FcmConfig(PROJECT_ID, CLIENT_EMAIL, pem(key), **values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sender(
    fcm_server: FcmServer, fcm_key: rsa.RSAPrivateKey, client_tls: ssl.SSLContext, clock: Clock
) -> AsyncIterator[FcmSender]:
    fcm_server.known_tokens.add(TOKEN)
    client = FcmSender(
        credentials(fcm_server, fcm_key), base_url=fcm_server.url, verify=client_tls, timeout_s=2, clock=clock
    )
    yield client
    await client.close()


async def test_a_call_is_a_high_priority_data_message_that_never_rings_late(
    sender: FcmSender, fcm_server: FcmServer
) -> None:
    result = await sender.send_call(BINDING, CALL)
    assert result.outcome is PushOutcome.SENT and result.status == 200
    assert result.push_id is not None and result.push_id.startswith(f"projects/{PROJECT_ID}/messages/")
    [received] = fcm_server.messages
    assert received.headers["authorization"].startswith("Bearer ya29.sim-")
    assert received.message == {
        "token": TOKEN,
        "data": {
            "type": "call",
            "call_id": CALL.call_id,
            "caller_name": "Ada Lovelace",
            "caller_number": "+15550001000",
        },
        "android": {"priority": "high", "ttl": "0s"},
    }
    assert "notification" not in received.message  # a data message: the app decides how to ring


async def test_the_cancel_is_a_data_message_for_the_same_call(sender: FcmSender, fcm_server: FcmServer) -> None:
    result = await sender.send_cancel(BINDING, CALL, CancelReason.CALLER_HUNG_UP)
    assert result.sent
    [received] = fcm_server.messages
    assert received.message["data"] == {"type": "cancel", "call_id": CALL.call_id, "reason": "caller_hung_up"}
    assert received.message["android"]["ttl"] != "0s"  # worth delivering a little late: it stops a ringing screen


async def test_the_assertion_is_rs256_for_the_service_account(
    fcm_server: FcmServer, fcm_key: rsa.RSAPrivateKey, sender: FcmSender, clock: Clock
) -> None:
    assert (await sender.send_call(BINDING, CALL)).sent
    [assertion] = fcm_server.assertions
    assert jwt.get_unverified_header(assertion) == {"alg": "RS256", "kid": "abc123", "typ": "JWT"}
    claims = jwt.decode(assertion, fcm_key.public_key(), algorithms=["RS256"], audience=fcm_server.token_uri)
    assert claims == {
        "iss": CLIENT_EMAIL,
        "scope": SCOPE,
        "aud": fcm_server.token_uri,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
    }


async def test_the_access_token_is_kept_until_shortly_before_it_expires(
    sender: FcmSender, fcm_server: FcmServer, clock: Clock
) -> None:
    clock.now -= 3600 - TOKEN_MARGIN_S + 10  # so every assertion below is issued in the past, as Google demands
    for _ in range(3):
        assert (await sender.send_call(BINDING, CALL)).sent
    assert fcm_server.token_requests == 1
    clock.now += 3600 - TOKEN_MARGIN_S - 1
    assert (await sender.send_call(BINDING, CALL)).sent
    assert fcm_server.token_requests == 1
    clock.now += 2
    assert (await sender.send_call(BINDING, CALL)).sent
    assert fcm_server.token_requests == 2
    first, last = fcm_server.messages[0].headers["authorization"], fcm_server.messages[-1].headers["authorization"]
    assert first != last


async def test_an_access_token_revoked_early_is_replaced_once(sender: FcmSender, fcm_server: FcmServer) -> None:
    assert (await sender.send_call(BINDING, CALL)).sent
    fcm_server.revoke_access_tokens()
    assert (await sender.send_call(BINDING, CALL)).sent
    assert fcm_server.token_requests == 2


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (404, "UNREGISTERED", PushOutcome.UNREGISTERED),
        (400, "UNREGISTERED", PushOutcome.UNREGISTERED),
        (403, "SENDER_ID_MISMATCH", PushOutcome.UNREGISTERED),
        (404, "", PushOutcome.UNREGISTERED),
        (403, "", PushOutcome.CREDENTIALS_REJECTED),
        (401, "THIRD_PARTY_AUTH_ERROR", PushOutcome.CREDENTIALS_REJECTED),
        (429, "QUOTA_EXCEEDED", PushOutcome.RETRY_LATER),
        (500, "INTERNAL", PushOutcome.RETRY_LATER),
        (503, "UNAVAILABLE", PushOutcome.RETRY_LATER),
        (400, "INVALID_ARGUMENT", PushOutcome.BAD_REQUEST),
    ],
)
async def test_every_fcm_answer_maps_to_what_the_router_does(
    sender: FcmSender, fcm_server: FcmServer, status: int, code: str, outcome: PushOutcome
) -> None:
    fcm_server.fail(status, code, times=2)  # a 401 is tried once more with a new access token
    result = await sender.send_call(BINDING, CALL)
    assert (result.outcome, result.status) == (outcome, status)
    assert result.reason == (code or ("PERMISSION_DENIED" if status == 403 else "NOT_FOUND"))


async def test_an_unregistered_token_ends_its_binding(sender: FcmSender, fcm_server: FcmServer) -> None:
    fcm_server.unregistered.add(TOKEN)
    result = await sender.send_call(BINDING, CALL)
    assert (result.outcome, result.status, result.reason) == (PushOutcome.UNREGISTERED, 404, "UNREGISTERED")


async def test_throttling_says_when_to_come_back(sender: FcmSender, fcm_server: FcmServer) -> None:
    fcm_server.fail(429, "QUOTA_EXCEEDED", retry_after="12")
    result = await sender.send_call(BINDING, CALL)
    assert (result.outcome, result.retry_after_s) == (PushOutcome.RETRY_LATER, 12.0)


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (400, "invalid_grant", PushOutcome.CREDENTIALS_REJECTED),
        (401, "invalid_client", PushOutcome.CREDENTIALS_REJECTED),
        (503, "temporarily_unavailable", PushOutcome.RETRY_LATER),
        (429, "rate_limited", PushOutcome.RETRY_LATER),
    ],
)
async def test_the_token_endpoints_answers(
    sender: FcmSender, fcm_server: FcmServer, status: int, error: str, outcome: PushOutcome
) -> None:
    fcm_server.fail_token(status, error)
    result = await sender.send_call(BINDING, CALL)
    assert (result.outcome, result.status, result.reason) == (outcome, status, f"token endpoint: {error}")
    assert fcm_server.messages == []
    assert (await sender.send_call(BINDING, CALL)).sent  # nothing bad was kept


async def test_a_key_google_does_not_know_is_rejected(fcm_server: FcmServer, client_tls: ssl.SSLContext) -> None:
    fcm_server.known_tokens.add(TOKEN)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = FcmSender(credentials(fcm_server, stranger), base_url=fcm_server.url, verify=client_tls)
    try:
        result = await client.send_call(BINDING, CALL)
    finally:
        await client.close()
    assert (result.outcome, result.reason) == (PushOutcome.CREDENTIALS_REJECTED, "token endpoint: invalid_grant")


async def test_a_key_that_cannot_sign_is_rejected_without_a_request(
    fcm_server: FcmServer, client_tls: ssl.SSLContext
) -> None:
    creds = FcmConfig(PROJECT_ID, CLIENT_EMAIL, "not a key", token_uri=fcm_server.token_uri)
    client = FcmSender(creds, base_url=fcm_server.url, verify=client_tls)
    try:
        result = await client.send_call(BINDING, CALL)
    finally:
        await client.close()
    assert result.outcome is PushOutcome.CREDENTIALS_REJECTED
    assert fcm_server.token_requests == 0


async def test_a_slow_fcm_is_retry_later_within_the_timeout(
    fcm_server: FcmServer, fcm_key: rsa.RSAPrivateKey, client_tls: ssl.SSLContext
) -> None:
    fcm_server.delay_s = 2.0
    client = FcmSender(credentials(fcm_server, fcm_key), base_url=fcm_server.url, verify=client_tls, timeout_s=0.2)
    started = time.monotonic()
    try:
        result = await client.send_call(BINDING, CALL)
    finally:
        await client.close()
    assert result.outcome is PushOutcome.RETRY_LATER and result.status is None
    assert time.monotonic() - started < 1.5


async def test_fcm_unreachable_is_retry_later(sender: FcmSender, fcm_server: FcmServer) -> None:
    await fcm_server.close()
    result = await sender.send_call(BINDING, CALL)
    assert result.outcome is PushOutcome.RETRY_LATER and result.status is None


async def test_a_binding_for_another_project_or_service_is_not_sent(sender: FcmSender, fcm_server: FcmServer) -> None:
    other = await sender.send_call(PushBinding(Provider.FCM, TOKEN, app="someone-else"), CALL)
    apns = await sender.send_call(PushBinding(Provider.APNS, "ab" * 32), CALL)
    assert other.outcome is PushOutcome.BAD_REQUEST and apns.outcome is PushOutcome.BAD_REQUEST
    assert fcm_server.token_requests == 0
    # Linphone's app-id is the numeric sender id, which only Google can check.
    assert (await sender.send_call(PushBinding(Provider.FCM, TOKEN, app="929724111839"), CALL)).sent


async def test_nothing_secret_is_logged_even_at_debug(
    sender: FcmSender, fcm_server: FcmServer, fcm_key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sender.send_call(BINDING, CALL)
    fcm_server.unregistered.add(TOKEN)
    await sender.send_call(BINDING, CALL)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert TOKEN[:4] + "..." + TOKEN[-4:] in logged
    assert TOKEN not in logged
    assert "ya29.sim-" not in logged  # the access token
    assert pem(fcm_key).splitlines()[1] not in logged
