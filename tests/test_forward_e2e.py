"""End to end: the real `callbuddy-pbx run` process, a caller's reply posted to its Twilio webhook by the simulated
Twilio, and the owner's real SMTP server (aiosmtpd) on loopback. The reply is in the owner's mailbox within seconds;
kill -9 while the SMTP server is down and a restart once it is back still deliver it exactly once."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import sys
import time
from pathlib import Path

from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.http_gateway import FakeTwilioApi
from tests.forward_peers import Mailbox
from tests.servers import free_port

EXE = Path(sys.executable).parent / "callbuddy-pbx"
JANE = "+15557654321"
GLOW_LINE = "+15550001000"
OWNER = "owner@glow.example"


def write_config(path: Path, ami_port: int, twilio: FakeTwilioApi, smtp_port: int, web_port: int) -> None:
    path.write_text(
        f"""
asterisk: {{host: 127.0.0.1, port: {ami_port}, username: callbuddy, secret: s3cret,
           reconnect_min_s: 0.1, reconnect_max_s: 0.5}}
businesses:
  - name: Glow Salon
    numbers: ["{GLOW_LINE}"]
    booking_url: https://glow.example
    text_back: {{}}
    forward_replies_to: [{OWNER}]
gateways:
  - {{name: twilio, kind: twilio, account_sid: {twilio.account_sid}, auth_token: {twilio.auth_token},
     url: "{twilio.url}"}}
smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, from: callbuddy@glow.example, timeout_seconds: 5}}
web: {{host: 127.0.0.1, port: {web_port}, public_url: "http://127.0.0.1:{web_port}",
      webhook_token: 0123456789abcdef}}
storage: {{path: calls.sqlite3}}
"""
    )


def forward_rows(db: Path) -> list[tuple[str, int]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return [(str(s), int(a)) for s, a in conn.execute("SELECT state, attempts FROM reply_forwards")]
        except sqlite3.OperationalError:  # not migrated yet
            return []


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def start_service(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(EXE), "run", "--config", str(config), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )


async def post_reply(twilio: FakeTwilioApi, web_port: int, body: str, sid: str) -> None:
    """The reply as Twilio posts it; tried again while the service's web server is still starting."""
    url = f"http://127.0.0.1:{web_port}/webhooks/twilio/inbound"
    params = {"MessageSid": sid, "AccountSid": twilio.account_sid, "From": JANE, "To": GLOW_LINE, "Body": body}
    async with asyncio.timeout(10):
        while True:
            try:
                if await twilio.post_signed(url, params) == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)


async def stop(service: asyncio.subprocess.Process) -> str:
    if service.returncode is not None:
        return ""
    service.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(service.communicate(), 10)
    assert service.returncode == 0, err.decode()[-2000:]
    return err.decode()


async def test_a_reply_reaches_the_owners_mailbox_within_seconds_once(tmp_path: Path) -> None:
    config, web_port = tmp_path / "callbuddy.yaml", free_port()
    mailbox = Mailbox()
    await mailbox.start()
    async with FakeTwilioApi() as twilio:
        ami = SimulatedAmiServer(secret="s3cret")
        await ami.start()
        write_config(config, ami.port, twilio, mailbox.port, web_port)
        service = await start_service(config)
        try:
            sid = f"SM{secrets.token_hex(16)}"
            await post_reply(twilio, web_port, "Can I come at 3?", sid)
            posted = time.monotonic()
            await wait_until(lambda: len(mailbox.messages) == 1, 5)
            assert time.monotonic() - posted < 3.0  # woken by the reply, not found by a sweep
            await post_reply(twilio, web_port, "Can I come at 3?", sid)  # Twilio's retry of the same reply
            await post_reply(twilio, web_port, "STOP", f"SM{secrets.token_hex(16)}")
            await asyncio.sleep(1.0)  # time for a wrong second e-mail
            assert len(mailbox.messages) == 1
            message = mailbox.messages[0]
            assert (message["To"], message["Subject"]) == (OWNER, f"Reply from {JANE} to Glow Salon")
            assert "Can I come at 3?" in message.get_content()
            err = await stop(service)
            assert "Can I come at 3?" not in err  # the reply's words never reach the log
            forwarding = [line for line in err.splitlines() if "forwards" in line]
            assert any("reply from +155******21 forwarded to owner@glow.example (email)" in line for line in forwarding)
            assert not any(JANE in line for line in forwarding)  # nor the caller's number in full
        finally:
            await stop(service)
            await ami.stop()
            await mailbox.stop()


async def test_kill_9_while_the_smtp_server_is_down_then_a_restart_delivers_once(tmp_path: Path) -> None:
    config, db, web_port = tmp_path / "callbuddy.yaml", tmp_path / "calls.sqlite3", free_port()
    mailbox = Mailbox()
    mailbox.port = free_port()  # nothing listens there yet: the owner's mail server is down
    async with FakeTwilioApi() as twilio:
        ami = SimulatedAmiServer(secret="s3cret")
        await ami.start()
        write_config(config, ami.port, twilio, mailbox.port, web_port)
        service = await start_service(config)
        try:
            await post_reply(twilio, web_port, "Can I come at 3?", f"SM{secrets.token_hex(16)}")
            await wait_until(lambda: forward_rows(db) == [("pending", 1)])  # tried, deferred, kept
            os.kill(service.pid, signal.SIGKILL)
            await service.wait()
            await mailbox.start()  # the mail server is back
            service = await start_service(config)
            await wait_until(lambda: len(mailbox.messages) == 1, 15)  # the first retry is due 5 s after the try
            await asyncio.sleep(1.0)
            assert len(mailbox.messages) == 1
            assert forward_rows(db) == [("sent", 2)]
        finally:
            await stop(service)
            await ami.stop()
            await mailbox.stop()
