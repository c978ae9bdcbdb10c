"""`callbuddy-pbx demo`: the real service against a simulated Asterisk that places scripted calls.

Everything but the PBX and the SMSC is the production path: AMI over TCP, the call tracker, the SQLite store, SMPP
to the SMSC, and the dashboard (with two logins made up for the run). Without --calls it goes on until Ctrl-C.
The simulated PBX also writes its CEL rows to SQLite (`asterisk-cel.sqlite3` in the data folder) as Asterisk's
cel_sqlite3_custom does, and the service's `cel:` points at that file.

One clock: the scripted calls are played `--speed` times faster than they were written (a 20 s ring lasts 2 s at
10x), and every event says the real moment it is sent (`Timestamp`, a CEL event's `EventTime`, a Cdr's times), as
Asterisk stamps its events. So nothing stored is in the future, texts follow their calls, and the dashboard's
figures (calls today, hang-up to text) agree with the list; only durations are shorter than in a real office. The
other way, playing the calls at real speed, would keep their durations but place about one call a minute.

Each run starts a fresh database in the default data folder (the previous run's files are moved to `previous/`
there); with an explicit `--data-dir` the files there are used as they are, and the summary counts this run only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
from aiohttp import web

from callbuddy_pbx.commands.calls import caller_shown
from callbuddy_pbx.commands.demo_routing import PHONES, ROUTED_DID, ROUTED_GROUP, phones_come_and_go, routed_calls
from callbuddy_pbx.config import Business, CelConfig, Config, GatewayConfig, TextBack, WebUser, default_config
from callbuddy_pbx.config.asterisk import AriConfig
from callbuddy_pbx.config.pbx import PbxConfig
from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.passwords import hash_password
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.logs import setup_logging
from callbuddy_pbx.service.metrics import Metrics, store_backlog
from callbuddy_pbx.service.site import service_site
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, recorded_pjsip
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.sim.callgen import cel_time
from callbuddy_pbx.sim.cel_db import SimulatedCelDb
from callbuddy_pbx.sim.scenarios import Scenario, ScenarioFactory, mixed_call_stream, stream_events
from callbuddy_pbx.sim.smsc import SimulatedSmsc, SubmitRecord
from callbuddy_pbx.sms.gateway import DeliveryReport, SmsGateway
from callbuddy_pbx.sms.smpp import SmppGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.untrusted import printable
from callbuddy_pbx.web.server import bound_port, start_web

log = logging.getLogger(__name__)

SALON_DIDS = tuple(f"+1555000{n}" for n in ("1000", "1003", "1004", "1007", "1008", "1009", "1010", "2000"))
DENTAL_DIDS = ("+15550003000", "+15550004000")
SALON_URL, DENTAL_URL = "https://glow.example/book", "https://brightsmile.example/book"
SMSC_USER, SMSC_PASSWORD = "demo", "demo-pw"
CEL_FILE = "asterisk-cel.sqlite3"  # in the data folder: the simulated PBX's master.db (its CEL table)
DEFAULT_DATA_DIR = "data/demo"  # the CLI's default --data-dir: the demo's own folder, fresh for each run
PREVIOUS_RUN = "previous"  # where, in the default folder, the previous run's database and CEL file are moved
_CDR_TIMES = ("StartTime", "AnswerTime", "EndTime")


def describe(record: CallRecord) -> str:
    when = datetime.fromtimestamp(record.ended_at).strftime("%H:%M:%S")
    name = printable(record.caller_name or "", 24)
    verdict = f"answered by {record.answered_by}" if not record.missed else f"MISSED ({record.outcome.value})"
    return f"{when}  {caller_shown(record):<14} {name:<24} -> {record.did:<13} {verdict}"


def demo_config(
    data_dir: Path, ami_port: int, ami_secret: str, smsc: SimulatedSmsc, ari: AriConfig | None = None
) -> Config:
    """Two businesses on the simulated PBX's numbers, texting through the simulated SMSC; with `ari`, Glow Salon's
    booking line is routed by the service."""
    base = default_config(data_dir)
    routed = () if ari is None else (ROUTED_DID,)
    text_back = TextBack(gateway="smsc", window_s=60.0)  # short window: the generated callers repeat
    return dataclasses.replace(
        base,
        asterisk=dataclasses.replace(base.asterisk, port=ami_port, secret=ami_secret, reconnect_max_s=2.0),
        businesses=(
            Business("Glow Salon", SALON_DIDS + routed, "America/New_York", booking_url=SALON_URL, text_back=text_back),
            Business(
                "Bright Smile Dental", DENTAL_DIDS, "America/Chicago", booking_url=DENTAL_URL, text_back=text_back
            ),
        ),
        gateways=(
            GatewayConfig("smsc", "smpp", rate_per_s=0, port=smsc.port, system_id=SMSC_USER, password=SMSC_PASSWORD),
        ),
        pbx=PbxConfig(phones=PHONES, ring_groups=(ROUTED_GROUP,) if ari else ()),
        ari=ari or base.ari,
        cel=CelConfig(sqlite=data_dir / CEL_FILE),
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


REAL_CALLS_PER_S = 1 / 4  # without --calls: about one call every 4 s of real time, whatever the speed
PHONE_CYCLE_S = 40.0  # Mia's softphone comes and goes, so the devices page and the router's choices move
ROUTED_EVERY_S = 15.0  # a call to the routed line this often (real time)
SETTLE_S = 10.0  # at the end of a finite demo, how long its last texts and receipts may take


def demo_users() -> tuple[tuple[WebUser, ...], dict[str, str]]:
    """An admin and a Glow Salon owner, with passwords made up for this run (printed, never stored)."""
    passwords = {"admin": secrets.token_urlsafe(9), "glow": secrets.token_urlsafe(9)}
    users = (
        WebUser("admin", hash_password(passwords["admin"]), role="admin"),
        WebUser("glow", hash_password(passwords["glow"]), role="business", businesses=("Glow Salon",)),
    )
    return users, passwords


async def texts_settled(service: CallService, text_back: TextBackService, since: float) -> None:
    """Return once every judged call is stored and every text made since `since` is settled (delivered, failed...)."""
    unsettled = ("queued", "sending", "sent")
    while True:
        await service.wait_stored()
        rows = await text_back.messages.list_messages(limit=10_000, since=since)
        if not any(row.state in unsettled for row in rows):
            return
        await asyncio.sleep(0.02)


async def start_dashboard(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    try:
        runner = await start_web(app, host, port)
    except OSError as exc:  # 8080 taken: any free port rather than no dashboard
        print(f"port {port} is busy ({exc.strerror}); the dashboard takes a free one", flush=True)
        runner = await start_web(app, host, 0)
    return runner, bound_port(runner)


def inbound_calls(scenarios: Iterable[Scenario], inbound: int) -> Iterator[Scenario]:
    """The scenarios up to and including the `inbound`-th inbound call (the outbound and internal calls drawn between
    them are placed too, as on a real PBX): `--calls 5` places 5 calls the service counts."""
    left = inbound
    for scenario in scenarios:
        if left <= 0:
            return
        if scenario.expected_outcome is not None:
            left -= 1
        yield scenario


def restamped(message: Mapping[str, str], now: float, speed: float) -> dict[str, str]:
    """A copy of a scripted event as sent at `now`: `Timestamp` (and a CEL event's `EventTime`) say `now`; a Cdr
    (sent when its channel ends) ends `now`, and its start and answer are as far before as the call was scripted,
    divided by `speed` like the call itself."""
    out = dict(message)
    if "Timestamp" in out:
        out["Timestamp"] = f"{now:.6f}"
    event = out.get("Event")
    if event == "CEL" and "EventTime" in out:
        out["EventTime"] = cel_time(now)
    elif event == "Cdr":
        with contextlib.suppress(KeyError, ValueError):
            end = _cel_seconds(out["EndTime"])

            def real(key: str) -> float:
                return now - max(0.0, end - _cel_seconds(out[key])) / speed

            start = real("StartTime")
            out["StartTime"], out["EndTime"] = cel_time(start), cel_time(now)
            out["Duration"] = str(int(now - start))
            if out.get("AnswerTime"):
                answer = real("AnswerTime")
                out["AnswerTime"] = cel_time(answer)
                out["BillableSeconds"] = str(int(now - answer))
    return out


def _cel_seconds(text: str) -> float:
    """Unix seconds of a CEL/Cdr time (`2026-12-06 13:01:02`, UTC)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


async def place_calls(server: SimulatedAmiServer, calls: int | None, speed: float, seed: int) -> int:
    """Play `calls` inbound calls (None: until stopped), `speed` times faster than scripted, each event stamped
    with the moment it is sent; returns how many inbound calls were placed."""
    started_at = time.time()
    factory = ScenarioFactory(start_time=started_at, timestamps=True, cel_cdr=True)
    rate = 0.4 if calls is not None else REAL_CALLS_PER_S / speed
    drawn = mixed_call_stream(None, seed=seed, calls_per_second=rate, factory=factory)
    scenarios = list(inbound_calls(drawn, calls)) if calls is not None else None
    stream = stream_events(scenarios if scenarios is not None else drawn)
    started = time.monotonic()
    for event in stream:
        delay = event.at / speed - (time.monotonic() - started)
        if delay > 0:
            await asyncio.sleep(delay)
        await server.broadcast([restamped(event.message, time.time(), speed)])
    return sum(1 for s in scenarios or () if s.expected_outcome is not None)


def fresh_data_dir(data_dir: Path) -> Path | None:
    """Move the previous run's database and CEL file (with their -wal/-shm/-journal files) to `previous/`, replacing
    what was there; returns that folder when something was moved."""
    suffixes = ("", "-wal", "-shm", "-journal")
    names = [f"{base}{suffix}" for base in ("callbuddy.sqlite3", CEL_FILE) for suffix in suffixes]
    found = [data_dir / name for name in names if (data_dir / name).exists()]
    if not found:
        return None
    previous = data_dir / PREVIOUS_RUN
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir(parents=True)
    for path in found:
        path.replace(previous / path.name)
    return previous


async def run_demo(
    data_dir: Path,
    calls: int | None,
    speed: float,
    seed: int,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    fresh: bool = False,
) -> int:
    """Run the demo; with `fresh`, the previous run's files in `data_dir` are moved aside first."""
    run_started = time.time()  # the summary and the wait for texts are about what happened since
    previous = fresh_data_dir(data_dir) if fresh else None
    secret = secrets.token_urlsafe(12)
    cel_db = SimulatedCelDb(data_dir / CEL_FILE)
    server = SimulatedAmiServer(secret=secret, cel_db=cel_db)
    server.pjsip = recorded_pjsip()
    await server.start()
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, on_submit=show_submit)
    await smsc.start()
    ari = SimulatedAriServer(password=secret)
    await ari.start()
    config = demo_config(data_dir, server.port, secret, smsc, AriConfig(url=ari.url, password=secret))
    store = await CallStore.open(config.storage.path)
    stored_before = await store.count_calls()
    seen: list[CallRecord] = []
    expected = calls  # lowered to the number of inbound calls once the scenarios are drawn
    all_seen = asyncio.Event()

    def show(record: CallRecord) -> None:
        seen.append(record)
        print(describe(record), flush=True)
        if expected is not None and len(seen) >= expected:
            all_seen.set()

    gateways: dict[str, SmsGateway] = {"smsc": SmppGateway(config.gateways[0])}
    metrics = Metrics()
    metrics.watch_backlog(store_backlog(store))
    text_back = TextBackService(config, store, gateways, on_receipt=show_receipt, metrics=metrics)
    service = CallService(config, store, on_call=show, text_back=text_back, metrics=metrics)
    users, passwords = demo_users()

    def say(line: str) -> None:
        print(line, flush=True)

    routing = RoutingService(config, service.devices)
    site = service_site(config, store, service, gateways, metrics, users=lambda: users, routing=routing)
    runner, web_port = await start_dashboard(site, host, port)
    task = asyncio.create_task(service.run())
    helpers: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 (a comparison, not a bind)
    print(f"simulated Asterisk AMI on 127.0.0.1:{server.port}, simulated SMSC (SMPP) on 127.0.0.1:{smsc.port}")
    print(f"simulated ARI on {ari.url}: calls to {ROUTED_DID} are routed by the service (last active first)")
    print(f"calls and texts are stored in {config.storage.path}")
    if previous is not None:
        print(f"  (a new file for this run; the previous run's files are in {previous})")
    elif stored_before:
        print(f"  (it holds {stored_before} calls from earlier runs; the summary counts this run's only)")
    print(f"the simulated Asterisk writes its CEL rows to {cel_db.path} (the service's cel.sqlite)")
    print(f"dashboard: http://{shown_host}:{web_port}/")
    print(f"  log in as admin / {passwords['admin']}  (every business, full numbers)")
    print(f"  or glow / {passwords['glow']}  (Glow Salon only, its callers' numbers in full)")
    howmany = f"{calls} inbound calls" if calls is not None else "calls until Ctrl-C"
    print(
        f"placing {howmany}, scripted calls played {speed:g}x faster (a 20 s ring lasts {20 / speed:.3g} s);"
        " events carry the real time (Ctrl-C to stop)\n",
        flush=True,
    )
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        helpers.append(asyncio.create_task(routing.run()))
        if calls is None:
            helpers.append(asyncio.create_task(phones_come_and_go(server, ari, PHONE_CYCLE_S, say)))
            helpers.append(asyncio.create_task(routed_calls(ari, ROUTED_EVERY_S, seed, say)))
        placing = asyncio.create_task(place_calls(server, calls, speed, seed))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({placing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if placing.done():
            expected = placing.result()
            if len(seen) < expected:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_seen.wait(), 10)
            with contextlib.suppress(TimeoutError):  # every text sent and its receipt in, before the summary
                await asyncio.wait_for(texts_settled(service, text_back, run_started), SETTLE_S)
        else:
            placing.cancel()
            expected = None
    finally:
        await routing.stop()
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        await service.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stored = await store.count_calls()
        texts = await text_back.messages.list_messages(limit=10_000, since=run_started)
        await runner.cleanup()
        await store.close()
        await server.stop()
        cel_db.close()
        await smsc.stop()
        await ari.stop()
    outcomes = Counter(r.outcome.value for r in seen)
    missed = sum(1 for r in seen if r.missed)
    by_outcome = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    print(f"\n{len(seen)} inbound calls, {missed} missed: {by_outcome}")
    delivered = sum(1 for t in texts if t.state == "delivered")
    print(f"{len(texts)} texts sent to missed callers, {delivered} delivered")
    earlier = f" (and {stored_before} from earlier runs)" if stored_before else ""
    print(f"{stored - stored_before} calls stored in {config.storage.path}{earlier}; list them with:")
    print(f"  callbuddy-pbx calls --db {config.storage.path} --missed")
    print(f"  callbuddy-pbx messages --db {config.storage.path}")
    return 0 if expected is None or len(seen) == expected else 1


def main(args: argparse.Namespace) -> int:
    if (args.calls is not None and args.calls < 1) or args.speed <= 0 or not 0 <= args.port <= 65535:
        print("callbuddy-pbx demo: --calls must be at least 1, --speed positive, --port 0..65535", file=sys.stderr)
        return 2
    setup_logging("WARNING")
    seed = args.seed if args.seed is not None else int(time.time())
    # The default folder is the demo's own: a fresh database each run. A folder the user names is used as it is.
    fresh = Path(args.data_dir) == Path(DEFAULT_DATA_DIR)
    return asyncio.run(run_demo(Path(args.data_dir), args.calls, args.speed, seed, args.host, args.port, fresh=fresh))
