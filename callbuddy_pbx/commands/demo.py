"""`callbuddy-pbx demo`: the real service against a simulated Asterisk that places scripted calls.

Everything but the PBX is the production path: AMI over TCP, the call tracker, the SQLite store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import secrets
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import phonenumbers

from callbuddy_pbx.app import CallService
from callbuddy_pbx.commands.calls import caller_shown
from callbuddy_pbx.commands.display import printable
from callbuddy_pbx.config import Business, Config, GatewayConfig, TextBack, default_config
from callbuddy_pbx.logs import setup_logging
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.scenarios import ScenarioFactory, mixed_call_stream, stream_events
from callbuddy_pbx.sim.smsc import SimulatedSmsc, SubmitRecord
from callbuddy_pbx.sms.gateway import DeliveryReport, SmsGateway
from callbuddy_pbx.sms.smpp import SmppGateway
from callbuddy_pbx.store.db import CallStore

log = logging.getLogger(__name__)

SALON_DIDS = tuple(f"+1555000{n}" for n in ("1000", "1003", "1004", "1007", "1008", "1009", "1010", "2000"))
DENTAL_DIDS = ("+15550003000", "+15550004000")
SALON_URL, DENTAL_URL = "https://glow.example/book", "https://brightsmile.example/book"
SMSC_USER, SMSC_PASSWORD = "demo", "demo-pw"


def describe(record: CallRecord) -> str:
    when = datetime.fromtimestamp(record.ended_at).strftime("%H:%M:%S")
    name = printable(record.caller_name or "", 24)
    verdict = f"answered by {record.answered_by}" if not record.missed else f"MISSED ({record.outcome.value})"
    return f"{when}  {caller_shown(record):<14} {name:<24} -> {record.did:<13} {verdict}"


def demo_config(data_dir: Path, ami_port: int, ami_secret: str, smsc: SimulatedSmsc) -> Config:
    """Two businesses on the simulated PBX's numbers, texting through the simulated SMSC."""
    base = default_config(data_dir)
    text_back = TextBack(gateway="smsc", window_s=60.0)  # short window: the generated callers repeat
    return dataclasses.replace(
        base,
        asterisk=dataclasses.replace(base.asterisk, port=ami_port, secret=ami_secret, reconnect_max_s=2.0),
        businesses=(
            Business("Glow Salon", SALON_DIDS, "America/New_York", booking_url=SALON_URL, text_back=text_back),
            Business(
                "Bright Smile Dental", DENTAL_DIDS, "America/Chicago", booking_url=DENTAL_URL, text_back=text_back
            ),
        ),
        gateways=(
            GatewayConfig("smsc", "smpp", rate_per_s=0, port=smsc.port, system_id=SMSC_USER, password=SMSC_PASSWORD),
        ),
    )


def show_submit(record: SubmitRecord) -> None:
    if record.part is None or record.part[2] == 1:
        print(f"           SMS to {pretty(record.destination)}: {printable(record.text, 90)}", flush=True)


def show_receipt(gateway: str, report: DeliveryReport) -> None:
    print(f"           ...{report.state.value} ({printable(report.detail, 20)}, id {report.message_id})", flush=True)


def pretty(number: str) -> str:
    try:
        parsed = phonenumbers.parse(number, "US")
    except phonenumbers.NumberParseException:
        return printable(number, 20)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


async def run_demo(data_dir: Path, calls: int, speed: float, seed: int) -> int:
    secret = secrets.token_urlsafe(12)
    server = SimulatedAmiServer(secret=secret)
    await server.start()
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, on_submit=show_submit)
    await smsc.start()
    config = demo_config(data_dir, server.port, secret, smsc)
    store = await CallStore.open(config.storage.path)
    seen: list[CallRecord] = []
    expected = calls  # lowered to the number of inbound calls once the scenarios are drawn
    all_seen = asyncio.Event()

    def show(record: CallRecord) -> None:
        seen.append(record)
        print(describe(record), flush=True)
        if len(seen) >= expected:
            all_seen.set()

    gateways: dict[str, SmsGateway] = {"smsc": SmppGateway(config.gateways[0])}
    text_back = TextBackService(config, store, gateways, on_receipt=show_receipt)
    service = CallService(config, store, on_call=show, text_back=text_back)
    task = asyncio.create_task(service.run())
    print(f"simulated Asterisk AMI on 127.0.0.1:{server.port}, simulated SMSC (SMPP) on 127.0.0.1:{smsc.port}")
    print(f"calls and texts are stored in {config.storage.path}")
    print(f"placing {calls} calls, {speed:g}x faster than real time (Ctrl-C to stop)\n", flush=True)
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        factory = ScenarioFactory(start_time=time.time(), timestamps=True)
        scenarios = list(mixed_call_stream(calls, seed=seed, calls_per_second=0.4, factory=factory))
        expected = sum(1 for s in scenarios if s.expected_outcome is not None)
        started = time.monotonic()
        for event in stream_events(scenarios):
            delay = event.at / speed - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            await server.broadcast([event.message])
        if len(seen) < expected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_seen.wait(), 10)
    finally:
        await service.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # the last receipts
        stored = await store.count_calls()
        texts = await text_back.messages.list_messages(limit=10_000)
        await store.close()
        await server.stop()
        await smsc.stop()
    outcomes = Counter(r.outcome.value for r in seen)
    missed = sum(1 for r in seen if r.missed)
    by_outcome = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    print(f"\n{len(seen)} inbound calls, {missed} missed: {by_outcome}")
    delivered = sum(1 for t in texts if t.state == "delivered")
    print(f"{len(texts)} texts sent to missed callers, {delivered} delivered")
    print(f"{stored} calls in {config.storage.path}; list them with:")
    print(f"  callbuddy-pbx calls --db {config.storage.path} --missed")
    print(f"  callbuddy-pbx messages --db {config.storage.path}")
    return 0 if len(seen) == expected else 1


def main(args: argparse.Namespace) -> int:
    if args.calls < 1 or args.speed <= 0:
        print("callbuddy-pbx demo: --calls must be at least 1 and --speed positive", file=sys.stderr)
        return 2
    setup_logging("WARNING")
    try:
        seed = args.seed if args.seed is not None else int(time.time())
        return asyncio.run(run_demo(Path(args.data_dir), args.calls, args.speed, seed))
    except KeyboardInterrupt:
        return 130
