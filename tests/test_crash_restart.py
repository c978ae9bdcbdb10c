"""kill -9 of the real service between detecting a missed call and sending its text: after a restart, one text."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.http_gateway import FakeTwilioApi
from tests.servers import free_port
from tests.traces import all_traces, drop_headers

EXE = Path(sys.executable).parent / "callbuddy-pbx"


def write_config(path: Path, ami_port: int, twilio: FakeTwilioApi) -> None:
    path.write_text(
        f"""
asterisk: {{host: 127.0.0.1, port: {ami_port}, username: callbuddy, secret: s3cret,
           reconnect_min_s: 0.1, reconnect_max_s: 0.5}}
businesses:
  - name: Glow Salon
    numbers: ["+15550001000"]
    booking_url: https://glow.example
    text_back:
      hold_off_seconds: 1.5
gateways:
  - {{name: twilio, kind: twilio, account_sid: {twilio.account_sid}, auth_token: {twilio.auth_token},
     url: "{twilio.url}"}}
web: {{host: 127.0.0.1, port: {free_port()}, public_url: "http://127.0.0.1:9", webhook_token: 0123456789abcdef}}
storage: {{path: calls.sqlite3}}
"""
    )


def text_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT state FROM messages")]
        except sqlite3.OperationalError:  # not migrated yet
            return []


async def start_service(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(EXE), "run", "--config", str(config), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_kill_9_between_detection_and_send_still_sends_exactly_one_text(tmp_path: Path) -> None:
    trace = next(t for t in all_traces() if t.name.startswith("01-"))
    config, db = tmp_path / "callbuddy.yaml", tmp_path / "calls.sqlite3"
    async with FakeTwilioApi() as twilio:
        server = SimulatedAmiServer(secret="s3cret")
        await server.start()
        write_config(config, server.port, twilio)
        service = await start_service(config)
        try:
            await wait_until(lambda: server.clients > 0)
            await server.replay_raw(drop_headers(trace.raw, "Timestamp"))  # the call ends now, not when recorded
            await wait_until(lambda: text_states(db) == ["queued"])  # decided and stored, waiting for its hold-off
            os.kill(service.pid, signal.SIGKILL)
            await service.wait()
            assert twilio.messages == []

            service = await start_service(config)
            await wait_until(lambda: len(twilio.messages) == 1)
            await asyncio.sleep(1.0)  # time for a wrong second send
            assert len(twilio.messages) == 1
            assert twilio.messages[0].to == "+15557654321"
            assert text_states(db) == ["sent"]
        finally:
            if service.returncode is None:
                service.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(service.communicate(), 10)
                assert service.returncode == 0, err.decode()[-2000:]
            await server.stop()


async def test_a_taken_web_port_is_reported_and_calls_are_still_recorded(tmp_path: Path) -> None:
    config, db = tmp_path / "callbuddy.yaml", tmp_path / "calls.sqlite3"
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port = taken.getsockname()[1]
        config.write_text(
            f"asterisk: {{host: 127.0.0.1, port: {server.port}, username: callbuddy, secret: s3cret}}\n"
            f"web: {{host: 127.0.0.1, port: {web_port}}}\n"
            "storage: {path: calls.sqlite3}\n"
        )
        service = await start_service(config)
        try:
            await wait_until(lambda: server.clients > 0)
            await server.replay_raw(next(t for t in all_traces() if t.name.startswith("03-")).raw)

            def stored() -> int:
                if not db.exists():
                    return 0
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                    try:
                        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
                    except sqlite3.OperationalError:
                        return 0

            await wait_until(lambda: stored() == 1)
        finally:
            service.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(service.communicate(), 10)
            await server.stop()
    assert service.returncode == 0
    assert f"web server could not listen on 127.0.0.1:{web_port}" in err.decode()


async def test_the_running_service_serves_health_metrics_and_the_api(tmp_path: Path) -> None:
    import aiohttp

    config = tmp_path / "callbuddy.yaml"
    server = SimulatedAmiServer(secret="s3cret")
    await server.start()
    port, token = free_port(), "api-token-for-the-running-service-test"
    config.write_text(
        f"asterisk: {{host: 127.0.0.1, port: {server.port}, username: callbuddy, secret: s3cret}}\n"
        f"web: {{host: 127.0.0.1, port: {port}, api_tokens: [{{name: tests, token: {token}}}]}}\n"
        "storage: {path: calls.sqlite3}\n"
    )
    service = await start_service(config)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until(lambda: server.clients > 0)
        await server.replay_raw(next(t for t in all_traces() if t.name.startswith("01-")).raw)
        async with aiohttp.ClientSession() as http:
            calls: list[dict[str, object]] = []
            async with asyncio.timeout(10):
                while not calls:
                    async with http.get(f"{base}/api/v1/calls", headers={"Authorization": f"Bearer {token}"}) as r:
                        assert r.status == 200
                        calls = (await r.json())["calls"]
                    await asyncio.sleep(0.05)
            assert [(c["caller"], c["outcome"]) for c in calls] == [("+15557654321", "no_answer")]
            async with http.get(f"{base}/api/v1/calls") as r:
                assert r.status == 401
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200 and (await r.json())["ami"]["connected"] is True
            async with http.get(f"{base}/metrics") as r:
                assert 'callbuddy_calls_total{outcome="no_answer"} 1.0' in await r.text()
    finally:
        service.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(service.communicate(), 10)
        await server.stop()
    assert service.returncode == 0, err.decode()[-2000:]
