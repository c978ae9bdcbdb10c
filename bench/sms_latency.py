"""Missed call -> text latency through the whole service, and submits/s on one SMPP bind.

Phase 1: N missed calls (distinct callers) arrive over AMI at --rate calls/s from the simulated PBX; the service
judges each, stores it with its text, and the outbox submits it over SMPP to the simulated SMSC (smpp34), which
returns a delivery receipt. Latencies are measured from the caller's Hangup event arriving to (a) the submit_sm_resp
and (b) the receipt being stored. Phase 2: --submits texts through one bind, rate limiting off, window 10:
directly through the SMPP gateway, and through the service's outbox (SQLite claim + result writes included).

    python bench/sms_latency.py [--calls 2000] [--rate 100] [--submits 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from callbuddy_pbx.config import AsteriskConfig, Business, Config, GatewayConfig, StorageConfig, TextBack
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.recovery.outbox import Outbox
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, encode_event
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from callbuddy_pbx.sms.gateway import DeliveryReport, OutgoingSms, SmsGateway
from callbuddy_pbx.sms.smpp import SmppGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore, NewText, OutboxRow, SendUpdate

SECRET = "bench"
SMSC_USER, SMSC_PASSWORD = "bench", "benchpw"
DID = "+15550001000"


def missed_call(n: int) -> bytes:
    """A ring-all-style call nobody answers, shaped like trace 01 (no Timestamp: arrival time is the clock)."""
    caller = {"Channel": f"PJSIP/trunk-{n:08x}", "Uniqueid": f"1900000000.{2 * n}", "Linkedid": f"1900000000.{2 * n}"}
    desk = {"Channel": f"PJSIP/100-{n:08x}", "Uniqueid": f"1900000000.{2 * n + 1}", "Linkedid": caller["Linkedid"]}
    dial = {
        **caller,
        "DestChannel": desk["Channel"],
        "DestUniqueid": desk["Uniqueid"],
        "DestLinkedid": desk["Linkedid"],
    }
    number = f"1555{1000000 + n:07d}"
    events = [
        {"Event": "Newchannel", **caller, "ChannelState": "4", "CallerIDNum": number, "CallerIDName": "Bench",
         "Context": "from-trunk", "Exten": DID[1:]},
        {"Event": "Newchannel", **desk, "ChannelState": "0", "Context": "from-internal", "Exten": "s"},
        {"Event": "DialBegin", **dial, "DialString": "100"},
        {"Event": "Newstate", **desk, "ChannelState": "5"},
        {"Event": "DialEnd", **dial, "DialStatus": "NOANSWER"},
        {"Event": "Hangup", **desk, "Cause": "0"},
        {"Event": "Hangup", **caller, "Cause": "16"},
    ]  # fmt: skip
    return b"".join(encode_event(e) for e in events)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def latency_phase(calls: int, rate: float) -> tuple[list[float], list[float]]:
    server = SimulatedAmiServer(secret=SECRET, track_channels=False)
    await server.start()
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, receipt_delay_s=0.0)
    await smsc.start()
    ended: dict[str, float] = {}
    key_of: dict[str, str] = {}
    submitted: dict[str, float] = {}
    receipts: dict[str, float] = {}

    def on_call(record: CallRecord) -> None:
        ended[record.linkedid] = record.ended_at  # = arrival of the caller's Hangup (no Timestamp header)

    def on_update(row: OutboxRow, update: SendUpdate) -> None:
        if update.message_id:
            submitted[row.key] = update.at
            key_of[update.message_id] = row.key

    def on_receipt(gateway: str, report: DeliveryReport) -> None:
        key = key_of.get(report.message_id)
        if key is not None:
            receipts.setdefault(key, time.time())

    with tempfile.TemporaryDirectory() as tmp:
        business = Business("Bench", (DID,), text_back=TextBack(gateway="smsc", window_s=0.0))
        gateway_config = GatewayConfig(
            "smsc", "smpp", rate_per_s=0, port=smsc.port, system_id=SMSC_USER, password=SMSC_PASSWORD
        )
        config = Config(
            asterisk=AsteriskConfig(port=server.port, secret=SECRET, ping_interval_s=60),
            businesses=(business,),
            gateways=(gateway_config,),
            storage=StorageConfig(Path(tmp) / "bench.sqlite3"),
        )
        store = await CallStore.open(config.storage.path)
        gateways: dict[str, SmsGateway] = {"smsc": SmppGateway(gateway_config)}
        text_back = TextBackService(config, store, gateways, on_update=on_update, on_receipt=on_receipt)
        service = CallService(config, store, on_call=on_call, text_back=text_back)
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.ready.wait(), 10)
        start = time.perf_counter()
        for n in range(calls):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await server.broadcast(missed_call(n))
        deadline = time.monotonic() + 30
        while len(receipts) < calls and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await service.stop()
        await task
        await store.close()
    await smsc.stop()
    await server.stop()
    to_submit = [(submitted[k] - ended[k]) * 1000 for k in submitted if k in ended]
    to_receipt = [(receipts[k] - ended[k]) * 1000 for k in receipts if k in ended]
    if len(to_submit) != calls:
        print(f"warning: {len(to_submit)} of {calls} calls were texted")
    return to_submit, to_receipt


async def throughput_phase(count: int) -> tuple[float, float]:
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, receipt_delay_s=None)
    await smsc.start()
    config = GatewayConfig("smsc", "smpp", rate_per_s=0, port=smsc.port, system_id=SMSC_USER, password=SMSC_PASSWORD)

    async def ignore(_: object) -> None:
        return None

    gateway = SmppGateway(config)
    await gateway.start(ignore, ignore)
    start = time.perf_counter()
    await asyncio.gather(
        *(
            gateway.send(OutgoingSms(f"g{n}", f"+1555200{n:04d}", DID, "Sorry we missed your call"))
            for n in range(count)
        )
    )
    direct = count / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        store = await CallStore.open(Path(tmp) / "bench.sqlite3")
        messages = MessageStore(store)
        now = time.time()
        await messages.enqueue(
            [
                NewText(f"o{n}", "missed_call", f"+1555300{n:04d}", DID, "smsc", "Sorry we missed", now)
                for n in range(count)
            ],
            now,
        )
        done = asyncio.Event()
        sent = 0

        def counted(row: OutboxRow, update: SendUpdate) -> None:
            nonlocal sent
            sent += 1
            if sent >= count:
                done.set()

        outbox = Outbox(messages, {"smsc": gateway}, rates={"smsc": 0.0}, on_update=counted)
        start = time.perf_counter()
        task = asyncio.create_task(outbox.run())
        await asyncio.wait_for(done.wait(), 120)
        through_outbox = count / (time.perf_counter() - start)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    await gateway.close()
    await smsc.stop()
    return direct, through_outbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0, help="missed calls per second")
    parser.add_argument("--submits", type=int, default=5000)
    args = parser.parse_args()
    to_submit, to_receipt = asyncio.run(latency_phase(args.calls, args.rate))
    p50, p95, p99 = (percentile(to_submit, q) for q in (0.50, 0.95, 0.99))
    dlr_p99 = percentile(to_receipt, 0.99)
    print(f"{len(to_submit)} missed calls at {args.rate:g}/s, hold-off 0: Hangup -> submit_sm_resp")
    print(f"  p50 {p50:.1f} ms  p95 {p95:.1f} ms  p99 {p99:.1f} ms  max {max(to_submit):.1f} ms")
    print(f"  Hangup -> receipt stored: p50 {statistics.median(to_receipt):.1f} ms  p99 {dlr_p99:.1f} ms")
    direct, through_outbox = asyncio.run(throughput_phase(args.submits))
    print(f"{args.submits} submits on one bind, window 10, no rate limit:")
    print(f"  gateway alone {direct:,.0f}/s; through the outbox (SQLite included) {through_outbox:,.0f}/s")
    print(
        f"sms_latency p50_ms={p50:.1f} p95_ms={p95:.1f} p99_ms={p99:.1f} dlr_p99_ms={dlr_p99:.1f}"
        f" submits_per_s={through_outbox:.0f}"
    )


if __name__ == "__main__":
    main()
