"""The simulated APNs and FCM services for the push tests: real TLS (a trustme CA the clients trust) and HTTP/2 on
loopback, with keys made for each test."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.fcm_server import FcmServer

TEAM_ID = "TEAM123456"
KEY_ID = "KEY7890ABC"
BUNDLE_ID = "com.example.salon"
PROJECT_ID = "salon-app-1234"
CLIENT_EMAIL = "pusher@salon-app-1234.iam.gserviceaccount.com"


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def fcm_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def apns_server(ca: trustme.CA, apns_key: ec.EllipticCurvePrivateKey) -> AsyncIterator[ApnsServer]:
    server = ApnsServer(server_tls(ca), TEAM_ID, KEY_ID, apns_key.public_key(), BUNDLE_ID)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def fcm_server(ca: trustme.CA, fcm_key: rsa.RSAPrivateKey) -> AsyncIterator[FcmServer]:
    server = FcmServer(server_tls(ca), PROJECT_ID, CLIENT_EMAIL, fcm_key.public_key())
    await server.start()
    yield server
    await server.close()
