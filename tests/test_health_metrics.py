"""/healthz and /metrics over the running service: simulated Asterisk, real gateways or the simulated one, SQLite."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from callbuddy_pbx.config import Config, GatewayConfig, WebConfig
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.healthz import health_routes, service_health
from callbuddy_pbx.service.metrics import Metrics, store_backlog
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.sms.smpp import SmppGateway, SmppTiming
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.health import config_secrets
from callbuddy_pbx.web.server import create_app
from tests.test_textback_e2e import salon_config
from tests.traces import all_traces, drop_headers

MISSED = next(t for t in all_traces() if t.name.startswith("01-"))  # Jane (+15557654321) rings; nobody answers
AMI_SECRET = "s3cret"  # what salon_config uses
SMPP_PASSWORD = "pw7Xq!9z"
WRONG_PASSWORD = "wr0ngPw!"
# Never in a health or metrics body: the caller's and the business's numbers, credentials.
FORBIDDEN = ("5557654321", "5550001000", AMI_SECRET, SMPP_PASSWORD, WRONG_PASSWORD)
FAST_SMPP = SmppTiming(connect_timeout_s=2.0, response_timeout_s=2.0, reconnect_min_s=0.05, reconnect_max_s=0.2)


@dataclass
class Running:
    server: SimulatedAmiServer
    service: CallService
    metrics: Metrics
    http: TestClient[Any, Any]
    calls: list[CallRecord]
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.service.run())

    async def health(self) -> tuple[int, dict[str, Any], str]:
        response = await self.http.get("/healthz")
        text = await response.text()
        assert response.content_type == "application/json"
        return response.status, json.loads(text), text

    async def health_until(self, status: int, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                code, body, _ = await self.health()
                if code == status:
                    return body
                await asyncio.sleep(0.02)

    async def scrape(self) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], float], str]:
        response = await self.http.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        return samples, text


def with_gateways(config: Config, *gateways: GatewayConfig) -> Config:
    return dataclasses.replace(config, gateways=gateways)


@dataclasses.dataclass
class Setup:
    config: Config
    gateways: dict[str, SmsGateway]


Build = Callable[[int, Path], Setup]


def simulated(port: int, db: Path) -> Setup:
    return Setup(salon_config(port, db), {"sim": SimulatedGateway("sim")})


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@dataclasses.dataclass
class Harness:
    tmp_path: Path
    stack: list[Callable[[], Awaitable[None]]]

    async def __call__(self, build: Build = simulated, *, reject_logins: bool = False, start: bool = True) -> Running:
        server = SimulatedAmiServer(secret=AMI_SECRET)
        server.reject_logins = reject_logins
        await server.start()
        self.stack.append(server.stop)
        setup = build(server.port, self.tmp_path / "calls.sqlite3")
        store = await CallStore.open(setup.config.storage.path)
        self.stack.append(store.close)
        metrics = Metrics()
        metrics.watch_backlog(store_backlog(store))
        text_back = TextBackService(setup.config, store, setup.gateways, metrics=metrics)
        calls: list[CallRecord] = []
        service = CallService(setup.config, store, on_call=calls.append, text_back=text_back, metrics=metrics)
        secrets = config_secrets(setup.config)
        app = create_app(
            webhook_gateways={},
            extra_routes=lambda app: health_routes(
                app, lambda: service_health(service, setup.gateways, secrets=secrets), metrics
            ),
        )
        http: TestClient[Any, Any] = TestClient(TestServer(app))
        await http.start_server()
        self.stack.append(http.close)
        running = Running(server, service, metrics, http, calls)

        async def stop_service() -> None:
            if running.task is not None:
                await service.stop()
                await asyncio.wait_for(running.task, 10)
            else:
                await text_back.close()

        self.stack.append(stop_service)
        if start:
            running.start()
            if not reject_logins:
                await asyncio.wait_for(service.ready.wait(), 5)
        return running


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, [])
    yield harness
    for cleanup in reversed(harness.stack):
        await cleanup()


def assert_private(*bodies: str) -> None:
    for body in bodies:
        for forbidden in FORBIDDEN:
            assert forbidden not in body


async def test_healthz_follows_the_ami_login_and_the_link(running: Harness) -> None:
    run = await running(reject_logins=True, start=False)
    code, body, text = await run.health()
    assert code == 503
    assert body["ok"] is False and body["ami"] == {"connected": False, "last_error": "not connected yet"}

    run.start()  # Asterisk refuses the login: still down, and the body says why
    await until(lambda: run.server.login_failures >= 1)
    await until(lambda: "uthentication" in run.service.ami.last_error)
    code, body, text = await run.health()
    assert code == 503 and body["ami"]["connected"] is False
    assert "Authentication failed" in body["ami"]["last_error"]
    assert_private(text)

    run.server.reject_logins = False
    body = await run.health_until(200)
    assert body == {
        "ok": True,
        "ami": {"connected": True, "last_error": None},
        "gateways": {"sim": {"up": True, "detail": "no status reported"}},
        "outbox": {"backlog": 0},
        "tasks": {"down": {}},  # every supervised task running
    }

    run.server.reject_logins = True  # the link drops and the logins fail until Asterisk lets us in again
    run.server.drop_clients()
    body = await run.health_until(503)
    assert body["ok"] is False and body["ami"]["connected"] is False and body["ami"]["last_error"]
    assert body["gateways"]["sim"]["up"] is True
    samples, _ = await run.scrape()
    assert samples[("callbuddy_ami_connected", ())] == 0

    run.server.reject_logins = False
    await run.health_until(200)
    samples, metrics_text = await run.scrape()
    assert samples[("callbuddy_ami_connected", ())] == 1
    assert samples[("callbuddy_ami_reconnects_total", ())] == 1
    assert_private(metrics_text)


def smpp_with_wrong_password(smsc: SimulatedSmsc) -> Build:
    def build(port: int, db: Path) -> Setup:
        smpp = GatewayConfig(
            name="smsc", kind="smpp", port=smsc.port, system_id="callbuddy", password=WRONG_PASSWORD, rate_per_s=0
        )
        config = with_gateways(salon_config(port, db), GatewayConfig(name="sim", kind="simulated", rate_per_s=0), smpp)
        return Setup(config, {"sim": SimulatedGateway("sim"), "smsc": SmppGateway(smpp, FAST_SMPP)})

    return build


async def test_an_smpp_gateway_that_is_not_bound_is_down(running: Harness) -> None:
    smsc = SimulatedSmsc(system_id="callbuddy", password=SMPP_PASSWORD, receipt_delay_s=None)
    await smsc.start()
    running.stack.append(smsc.stop)
    run = await running(smpp_with_wrong_password(smsc))
    await until(lambda: len(smsc.binds) >= 1)

    code, body, text = await run.health()
    assert code == 503
    assert body["ami"]["connected"] is True  # only the SMSC is down
    assert body["gateways"]["sim"]["up"] is True
    smsc_health = body["gateways"]["smsc"]
    assert smsc_health["up"] is False and smsc_health["detail"].startswith("not bound: ")
    assert "ESME_RINVPASWD" in smsc_health["detail"]
    samples, metrics_text = await run.scrape()
    assert samples[("callbuddy_gateway_up", (("gateway", "smsc"),))] == 0
    assert samples[("callbuddy_gateway_up", (("gateway", "sim"),))] == 1
    assert_private(text, metrics_text)


def http_gateway_nobody_listens_on(port: int, db: Path) -> Setup:
    generic = GatewayConfig(
        name="http", kind="generic", url="http://127.0.0.1:9/send", body=(("to", "{to}"), ("text", "{text}"))
    )
    config = with_gateways(salon_config(port, db, gateway="http", kind="generic"), generic)
    return Setup(config, {"http": GenericHttpGateway(generic, WebConfig())})


async def test_an_http_gateway_whose_last_send_failed_on_the_network_is_down(running: Harness) -> None:
    run = await running(http_gateway_nobody_listens_on)
    code, body, _ = await run.health()
    assert code == 200 and body["gateways"]["http"] == {"up": True, "detail": "started"}

    await run.server.replay_raw(drop_headers(MISSED.raw, "Timestamp"))
    body = await run.health_until(503)
    assert body["ami"]["connected"] is True
    http = body["gateways"]["http"]
    assert http["up"] is False and http["detail"].startswith("last send failed: network error")
    assert body["outbox"]["backlog"] == 1  # queued again for a retry
    samples, metrics_text = await run.scrape()
    assert samples[("callbuddy_texts_total", (("status", "retried"),))] == 1
    assert samples[("callbuddy_texts_total", (("status", "sent"),))] == 0
    assert samples[("callbuddy_outbox_backlog", ())] == 1
    assert_private(json.dumps(body), metrics_text)


async def test_metrics_after_a_missed_call_trace(running: Harness) -> None:
    run = await running()
    await run.server.replay_raw(drop_headers(MISSED.raw, "Timestamp"))  # the hang-up is now: a real latency
    await until(lambda: len(run.calls) == 1)
    await until(lambda: run.metrics.text_counts().get("delivered", 0) == 1)  # the simulated receipt came back

    samples, metrics_text = await run.scrape()
    events = run.service.ami.events_received
    assert events > 0
    assert samples[("callbuddy_ami_events_total", ())] == events
    assert samples[("callbuddy_ami_connected", ())] == 1
    assert samples[("callbuddy_ami_reconnects_total", ())] == 0
    assert samples[("callbuddy_calls_total", (("outcome", "no_answer"),))] == 1
    assert samples[("callbuddy_calls_total", (("outcome", "answered"),))] == 0
    texts = {status: samples[("callbuddy_texts_total", (("status", status),))] for status in ("sent", "delivered")}
    assert texts == {"sent": 1, "delivered": 1}
    for status in ("failed", "retried", "expired", "unknown"):
        assert samples[("callbuddy_texts_total", (("status", status),))] == 0
    assert samples[("callbuddy_text_latency_seconds_count", ())] == 1
    latency = samples[("callbuddy_text_latency_seconds_sum", ())]
    assert 0 <= latency < 5
    assert samples[("callbuddy_text_latency_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("callbuddy_outbox_backlog", ())] == 0
    assert samples[("callbuddy_gateway_up", (("gateway", "sim"),))] == 1

    code, body, health_text = await run.health()
    assert code == 200 and body["outbox"] == {"backlog": 0}
    assert_private(metrics_text, health_text)


async def test_metrics_of_two_services_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    assert b"callbuddy_calls_total" in first.render() and b"callbuddy_calls_total" in second.render()
    assert first.registry is not second.registry
