"""Fault injection against the real `callbuddy-pbx run` process: simulators around it, calls through it, kills.

`fault_rig(tmp_path, ...)` starts the simulated Asterisk (AMI), the SMSC (SMPP) or the fake Twilio API on loopback,
writes a config into `tmp_path` and runs the service as a subprocess (stderr to `service.log`). The rig places
generated calls (`make_calls`: each with its own caller number and a known outcome), kills and restarts the service,
waits on the SQLite file read-only, and `check_exactly_once` judges a run from BOTH sides: what the database says
(calls, text rows and their states) and what the gateway received (the SMSC's accepted submits, the fake Twilio's
messages). The service's own view is never the only witness.

Calls are only started while the service is connected to the AMI; `kill_quietly` waits until no call is in progress
and every call placed is stored before it kills, so the kills here hit the texting side only (calls whose events the
service never saw are another suite's subject).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from callbuddy_pbx.model import Outcome
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.cel_db import SimulatedCelDb
from callbuddy_pbx.sim.http_gateway import FakeTwilioApi
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
from callbuddy_pbx.sim.scenario_model import (
    FOLLOW_ME_DID,
    HUNT_DID,
    MAIN_DID,
    QUEUE_DID,
    SALES_HUNT_DID,
    SINGLE_DESK_DID,
    VOICEMAIL_DID,
    Scenario,
)
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from tests.servers import free_port

EXE = Path(sys.executable).parent / "callbuddy-pbx"
AMI_SECRET = "s3cret"
SMSC_USER, SMSC_PASSWORD = "callbuddy", "smpp-pw"
BUSINESS = "Glow Salon"
# Every number the generated calls dial: all of them are the business's, so every inbound call counts.
BUSINESS_NUMBERS = (
    MAIN_DID,
    "15550002000",
    "15550003000",
    "15550004000",
    VOICEMAIL_DID,
    SINGLE_DESK_DID,
    HUNT_DID,
    SALES_HUNT_DID,
    QUEUE_DID,
    FOLLOW_ME_DID,
)
MISSED_OUTCOMES = frozenset(outcome.value for outcome in Outcome if outcome.missed)
FINAL_STATES = frozenset({"delivered", "failed", "expired", "cancelled"})
UNSETTLED_STATES = frozenset({"queued", "sending", "sent"})
AREA_CODES = ("212", "312", "415", "617", "202", "718", "305", "512")  # phonenumbers: FIXED_LINE_OR_MOBILE
POLL_S = 0.02


# ---- calls --------------------------------------------------------------------------------------------------------


def _missed(factory: ScenarioFactory, rng: random.Random, caller: str, start: float) -> Scenario:
    kind = rng.randrange(7)
    if kind == 0:
        return factory.ring_all_no_answer(caller, timeout=rng.choice((2, 3)), start=start)
    if kind == 1:
        return factory.busy(caller, start=start)
    if kind == 2:
        return factory.caller_hangs_up_while_ringing(caller, after=rng.uniform(1.0, 3.0), start=start)
    if kind == 3:
        return factory.voicemail(caller, timeout=2, message_s=rng.uniform(1.0, 3.0), start=start)
    if kind == 4:
        return factory.no_device_registered(caller, start=start)
    if kind == 5:
        return factory.queue_abandoned(caller, after=rng.uniform(1.0, 3.0), start=start)
    return factory.in_order_nobody_answers(caller, step_timeout=1, start=start)


def _answered(factory: ScenarioFactory, rng: random.Random, caller: str, start: float) -> Scenario:
    kind = rng.randrange(5)
    answer_after, talk = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0)
    if kind == 0:
        return factory.ring_all_answered(caller, answer_after=answer_after, talk=talk, start=start)
    if kind == 1:
        return factory.queue_answered(caller, answer_after=answer_after, talk=talk, start=start)
    if kind == 2:
        return factory.in_order_second_answers(
            caller, step_timeout=1, answer_after=answer_after, talk=talk, start=start
        )
    if kind == 3:
        return factory.follow_me_mobile_answers(caller, answer_after=answer_after, talk=talk, start=start)
    return factory.ring_all_one_declines_other_answers(caller, answer_after=answer_after, talk=talk, start=start)


def make_calls(
    count: int,
    seed: int,
    *,
    missed_share: float = 0.6,
    gap_s: tuple[float, float] = (0.3, 1.5),
    cel: bool = False,
) -> list[Scenario]:
    """`count` generated inbound calls (about `missed_share` of them missed), each from a caller number of its own,
    starting `gap_s` (call time) apart so that several are in progress at once. Deterministic for a seed, except
    the ids and Timestamps, which follow the clock (they are rewritten when placed anyway). `cel`: the calls carry
    Asterisk's CEL events too (the simulated PBX writes them to its CEL database)."""
    rng = random.Random(seed)
    factory = ScenarioFactory(start_time=time.time(), seed=seed, cel_cdr=cel)
    numbers = rng.sample(range(len(AREA_CODES) * 10_000), count)
    calls: list[Scenario] = []
    start = factory.clock
    for number in numbers:
        caller = f"1{AREA_CODES[number // 10_000]}555{number % 10_000:04d}"
        make = _missed if rng.random() < missed_share else _answered
        calls.append(make(factory, rng, caller, start))
        start += rng.uniform(*gap_s)
    return calls


def owed_text(scenario: Scenario) -> bool:
    """Whether the caller is owed one text: a missed inbound call from a real number (make_calls only makes those)."""
    return scenario.expected_outcome in MISSED_OUTCOMES and bool(scenario.caller and scenario.caller.isdigit())


def e164(caller: str | None) -> str:
    return "+" + (caller or "").lstrip("+")


# ---- the database, read-only --------------------------------------------------------------------------------------


def query(db: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """Rows from the service's database, opened read-only (never a writer next to the service); [] before it is
    created and migrated."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)) as conn:
            return list(conn.execute(sql, params))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


@dataclass(frozen=True, slots=True)
class TextRow:
    linkedid: str | None
    to: str
    state: str
    body: str
    message_id: str | None
    error: str | None


def text_rows(db: Path) -> list[TextRow]:
    rows = query(
        db, "SELECT linkedid, to_number, state, body, message_id, error FROM messages WHERE kind = 'missed_call'"
    )
    return [TextRow(*row) for row in rows]


def stored_calls(db: Path) -> dict[str, str]:
    """linkedid -> outcome of every stored call."""
    return {linkedid: outcome for linkedid, outcome in query(db, "SELECT linkedid, outcome FROM calls")}


# ---- a proxy that can hold the SMSC's answers -------------------------------------------------------------------


class HoldingProxy:
    """A TCP relay between the service and the SMSC. While `held`, nothing from the SMSC reaches the service (its
    submit_sm_resp and receipts wait in the relay), as an SMSC that took a submit and has not answered yet."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._released = asyncio.Event()
        self._released.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._released.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        self._writers |= {writer, up_writer}
        pumps = {
            asyncio.create_task(self._pump(reader, up_writer, hold=False)),
            asyncio.create_task(self._pump(up_reader, writer, hold=True)),
        }
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: bool) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if hold:
                    await self._released.wait()
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()


class ArmedTwilioApi(FakeTwilioApi):
    """FakeTwilioApi whose scripted failures can wait until it has accepted some messages (`fail_after`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._armed: list[tuple[int, int, int, str, str | None, int]] = []
        self._late: list[float] = []

    def fail_after(
        self, accepted: int, status: int, code: int, message: str, *, retry_after: str | None = None, times: int = 1
    ) -> None:
        """Like fail_next, for the requests that come once `accepted` messages have been accepted."""
        self._armed.append((accepted, status, code, message, retry_after, times))

    def answer_late(self, count: int, seconds: float) -> None:
        """The next `count` messages are taken (created, as Twilio would) but answered only after `seconds`: a
        client that gives up sooner cannot know whether they were."""
        self._late.extend([seconds] * count)

    async def _create_message(self, request: Any) -> Any:
        response = await super()._create_message(request)
        if self._late and response.status < 300:
            await asyncio.sleep(self._late.pop(0))
        return response

    def _answer(self, authorized: bool, form: dict[str, str]) -> Any:
        for armed in [a for a in self._armed if len(self.messages) >= a[0]]:
            self._armed.remove(armed)
            _, status, code, message, retry_after, times = armed
            self.fail_next(status, code, message, retry_after=retry_after, times=times)
        return super()._answer(authorized, form)


# ---- the rig ------------------------------------------------------------------------------------------------------


@dataclass
class FaultRig:
    tmp: Path
    ami: SimulatedAmiServer
    smsc: SimulatedSmsc | None
    twilio: ArmedTwilioApi | None
    proxy: HoldingProxy | None
    speed: float
    # False: calls go on while the service is down or cut off (the PBX does not wait for it); they must then be
    # found in the simulated PBX's CEL database (`cel=True` in fault_rig).
    calls_wait_for_service: bool = True
    config: Path = field(init=False)
    db: Path = field(init=False)
    log: Path = field(init=False)
    process: asyncio.subprocess.Process | None = None
    kills: int = 0
    starts: int = 0
    placed: list[Scenario] = field(default_factory=list)
    open_calls: int = 0
    _stderr: IO[bytes] | None = None
    _gate: asyncio.Event = field(default_factory=asyncio.Event)  # set: new calls may start
    _calls: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.config = self.tmp / "callbuddy.yaml"
        self.db = self.tmp / "calls.sqlite3"
        self.log = self.tmp / "service.log"

    # -- the service process ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start `callbuddy-pbx run` and wait until it has logged in to the AMI."""
        assert self.process is None or self.process.returncode is not None, "the service is running already"
        logins = self.ami.logins
        self._close_stderr()
        self._stderr = self.log.open("ab")
        self._stderr.write(f"---- start {self.starts + 1} at {time.time():.3f}\n".encode())
        self._stderr.flush()
        self.process = await asyncio.create_subprocess_exec(
            str(EXE),
            "run",
            "--config",
            str(self.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._stderr,
        )
        self.starts += 1
        await self.wait_for(lambda: self.ami.logins > logins and self.ami.clients > 0, 15, "the service to log in")
        self._gate.set()

    async def wait_smpp_bound(self) -> None:
        """Until the service says it is bound to the SMSC in this run (its bind response has reached it)."""
        marker = f"---- start {self.starts} at"

        def bound() -> bool:
            text = self.log_text()
            return "SMPP smsc: bound to" in text[text.rfind(marker) :]

        await self.wait_for(bound, 10, "the SMPP bind")

    async def kill(self) -> None:
        """SIGKILL the service and reap it; returns once the AMI simulator has seen its connection go."""
        assert self.process is not None and self.process.returncode is None, "the service is not running"
        self._gate.clear()
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        self.kills += 1
        self._close_stderr()
        await self.wait_for(lambda: self.ami.clients == 0, 5, "the AMI simulator to see the killed service go")

    async def restart(self, after_s: float = 0.3) -> None:
        await asyncio.sleep(after_s)
        await self.start()

    async def kill_quietly(self, restart_after_s: float = 0.3) -> None:
        """Kill at a moment with no call in progress and every placed call stored (a texting-side kill), then
        start again after `restart_after_s`. New calls wait meanwhile."""
        self._gate.clear()
        await self.wait_for(lambda: self.open_calls == 0, 30, "the calls in progress to end")
        inbound = {s.linkedid for s in self.placed if s.expected_outcome is not None}
        await self.wait_for(lambda: inbound <= stored_calls(self.db).keys(), 15, "every placed call to be stored")
        await self.kill()
        await self.restart(restart_after_s)

    async def stop(self) -> int | None:
        """SIGTERM and wait; the exit status (None when it had to be killed)."""
        process = self.process
        if process is None or process.returncode is not None:
            self._close_stderr()
            return process.returncode if process else None
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
            self._close_stderr()
            return None
        self._close_stderr()
        return process.returncode

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no service log)"

    # -- calls --------------------------------------------------------------------------------------------------

    async def place(self, scenarios: Sequence[Scenario], *, wait: bool = True, end_together: bool = False) -> None:
        """Play the calls over the AMI with their relative timing divided by `speed`; each event's Timestamp is
        the moment it is sent, so calls end "now". `end_together`: start them so that they all end at the same
        moment (their texts fall due in one burst). A call starts only while the service is connected (and no
        `kill_quietly` is under way); once started it plays to its end. `wait=False` returns at once."""
        if not scenarios:
            return
        base = scenarios[0].started_at
        longest = max(s.duration for s in scenarios)
        began = time.monotonic()
        for scenario in scenarios:
            if end_together:
                offset = (longest - scenario.duration) / self.speed
            else:
                offset = (scenario.started_at - base) / self.speed
            task = asyncio.create_task(self._play(scenario, began + offset))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
        if wait:
            await self.calls_done()

    async def calls_done(self) -> None:
        while self._calls:
            await asyncio.gather(*list(self._calls))

    async def _play(self, scenario: Scenario, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        while self.calls_wait_for_service and not (self._gate.is_set() and self.ami.clients > 0):
            await self._gate.wait()
            if self.ami.clients == 0:
                await asyncio.sleep(POLL_S)
        self.placed.append(scenario)
        self.open_calls += 1
        try:
            began = time.monotonic()
            for event in scenario.events:
                delay = began + event.at / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                message = dict(event.message)
                now = time.time()
                if "Timestamp" in message:
                    message["Timestamp"] = f"{now:.6f}"
                if "EventTime" in message:  # CEL: the row's time is this moment too, as Asterisk would write it
                    message["EventTime"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
                await self.ami.broadcast([message])
        finally:
            self.open_calls -= 1

    # -- waiting ------------------------------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `predicate` until true; after `timeout` s fail with what was awaited and the service's last lines."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.log_tail()}")
            if self.process is not None and self.process.returncode is not None and self._gate.is_set():
                raise AssertionError(f"the service exited ({self.process.returncode}) while waiting for {what}\n"
                                     f"{self.log_tail()}")  # fmt: skip
            await asyncio.sleep(POLL_S)

    async def wait_states(self, linkedids: Iterable[str], states: Iterable[str], timeout: float = 10.0) -> None:
        wanted, allowed = set(linkedids), set(states)

        def reached() -> bool:
            rows = {row.linkedid: row.state for row in text_rows(self.db)}
            return all(rows.get(linkedid) in allowed for linkedid in wanted)

        await self.wait_for(reached, timeout, f"texts of {sorted(wanted)} to be {sorted(allowed)}")

    async def settle(self, *, timeout: float = 20.0, unknown_ok: bool = False, quiet_s: float = 0.4) -> None:
        """Wait until every placed inbound call is stored and every text owed has a row in a final state (or
        `unknown`, when `unknown_ok`); then `quiet_s` more, so that a wrong second text has time to show."""
        await self.calls_done()
        inbound = {s.linkedid for s in self.placed if s.expected_outcome is not None}
        owed = {s.linkedid for s in self.placed if owed_text(s)}
        done = FINAL_STATES | ({"unknown"} if unknown_ok else set())

        def settled() -> bool:
            if not inbound <= stored_calls(self.db).keys():
                return False
            rows = text_rows(self.db)
            states = {row.linkedid: row.state for row in rows}
            return owed <= states.keys() and all(row.state in done for row in rows)

        await self.wait_for(settled, timeout, "every call stored and every text settled")
        await asyncio.sleep(quiet_s)

    # -- what the gateway received ------------------------------------------------------------------------------

    def gateway_texts(self) -> list[tuple[str, str]]:
        """(destination E.164, text) of every text the gateway took, as it records them (not as the service says)."""
        texts: list[tuple[str, str]] = []
        if self.smsc is not None:
            texts += [(e164(m.destination), m.text) for m in self.smsc.messages()]
        if self.twilio is not None:
            texts += [(e164(m.to), m.body) for m in self.twilio.messages]
        return texts


def write_config(
    rig: FaultRig,
    *,
    hold_off_s: float,
    smpp_port: int | None,
    resend_unknown_after_minutes: float | None = None,
    web_port: int,
    cel: Path | None = None,
) -> None:
    numbers = ", ".join(f'"+{n}"' for n in BUSINESS_NUMBERS)
    if smpp_port is not None:
        gateway = (
            f"{{name: smsc, kind: smpp, host: 127.0.0.1, port: {smpp_port}, system_id: {SMSC_USER},"
            f" password: {SMSC_PASSWORD}, rate_per_second: 0}}"
        )
    else:
        assert rig.twilio is not None
        gateway = (
            f"{{name: twilio, kind: twilio, account_sid: {rig.twilio.account_sid},"
            f' auth_token: {rig.twilio.auth_token}, url: "{rig.twilio.url}", rate_per_second: 0, timeout_seconds: 1}}'
        )
    outbox = ""
    if resend_unknown_after_minutes is not None:
        outbox = f"outbox: {{resend_unknown_after_minutes: {resend_unknown_after_minutes}}}\n"
    if cel is not None:
        outbox += f"cel: {{sqlite: {cel.name}, poll_seconds: 0.3}}\n"
    rig.config.write_text(
        f"""\
asterisk: {{host: 127.0.0.1, port: {rig.ami.port}, username: callbuddy, secret: {AMI_SECRET},
           reconnect_min_s: 0.1, reconnect_max_s: 0.5}}
businesses:
  - name: {BUSINESS}
    numbers: [{numbers}]
    booking_url: https://glow.example
    text_back:
      hold_off_seconds: {hold_off_s}
gateways:
  - {gateway}
web: {{host: 127.0.0.1, port: {web_port}, public_url: "http://127.0.0.1:{web_port}",
       webhook_token: 0123456789abcdef}}
storage: {{path: {rig.db.name}}}
logging: {{level: INFO}}
{outbox}"""
    )


@contextlib.asynccontextmanager
async def fault_rig(
    tmp_path: Path,
    *,
    gateway: str = "smpp",
    hold_off_s: float = 0.2,
    speed: float = 8.0,
    receipt_delay_s: float | None = 0.05,
    hold_link: bool = False,
    resend_unknown_after_minutes: float | None = None,
    cel: bool = False,
) -> AsyncIterator[FaultRig]:
    """The simulators, a config and the running service; everything stopped on exit (the service with SIGTERM,
    which must succeed). `cel`: the simulated PBX writes CEL rows to `master.db`, which the service reads, and calls
    go on whether or not the service is there."""
    cel_db = SimulatedCelDb(tmp_path / "master.db") if cel else None
    ami = SimulatedAmiServer(secret=AMI_SECRET, cel_db=cel_db)
    smsc = twilio = proxy = None
    await ami.start()
    try:
        if gateway == "smpp":
            smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, receipt_delay_s=receipt_delay_s)
            await smsc.start()
            if hold_link:
                proxy = HoldingProxy(smsc.port)
                await proxy.start()
        else:
            twilio = ArmedTwilioApi(auto_statuses=("sent", "delivered"))
            await twilio.start()
        rig = FaultRig(tmp_path, ami, smsc, twilio, proxy, speed, calls_wait_for_service=not cel)
        smpp_port = None if smsc is None else (proxy.port if proxy is not None else smsc.port)
        write_config(
            rig,
            hold_off_s=hold_off_s,
            smpp_port=smpp_port,
            resend_unknown_after_minutes=resend_unknown_after_minutes,
            web_port=free_port(),
            cel=None if cel_db is None else tmp_path / "master.db",
        )
        try:
            await rig.start()
            yield rig
        finally:
            for task in list(rig._calls):
                task.cancel()
            await asyncio.gather(*rig._calls, return_exceptions=True)
            status = await rig.stop()
            assert status == 0, f"the service did not stop cleanly ({status})\n{rig.log_tail()}"
    finally:
        if proxy is not None:
            await proxy.stop()
        if smsc is not None:
            await smsc.stop()
        if twilio is not None:
            await twilio.close()
        await ami.stop()
        if cel_db is not None:
            cel_db.close()


# ---- the invariant --------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """One run judged from both sides. Counts are of inbound calls placed, calls stored, texts the gateway took;
    duplicates/lost/false_texts per caller as the gateway saw them; unresolved = text rows not in a final state."""

    calls: int = 0
    stored: int = 0
    texted: int = 0
    duplicates: int = 0
    lost: int = 0
    unresolved: int = 0
    false_texts: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self, kills: int) -> str:
        return (
            f"faults calls={self.calls} stored={self.stored} texted={self.texted} duplicates={self.duplicates}"
            f" lost={self.lost} unresolved={self.unresolved} false_texts={self.false_texts} kills={kills}"
        )


def tally(
    rig: FaultRig,
    scenarios: Sequence[Scenario],
    *,
    rejected: Iterable[str] = (),
    unknown_ok: bool = False,
    texts_per_caller: int = 1,
) -> Tally:
    """Judge a run. The database: every inbound call stored once with its expected outcome, one text row per call
    owed one (to its caller), none for the others, each row final (`delivered`; `failed` for `rejected` callers;
    `unknown` too when `unknown_ok`, the documented state of a send with no answer). The gateway: exactly
    `texts_per_caller` texts (1) per caller owed one, whose words are the row's; none to anyone else."""
    t = Tally()
    refused = {e164(number) for number in rejected}
    inbound = [s for s in scenarios if s.expected_outcome is not None]
    owed = {e164(s.caller): s for s in inbound if owed_text(s) and e164(s.caller) not in refused}
    t.calls = len(inbound)
    calls = stored_calls(rig.db)
    placed_ids = {s.linkedid for s in scenarios}
    for s in inbound:
        outcome = calls.get(s.linkedid)
        if outcome is None:
            t.problems.append(f"call {s.linkedid} ({s.name}, {s.caller}) was not stored")
        elif outcome != s.expected_outcome:
            t.problems.append(f"call {s.linkedid} ({s.name}) stored as {outcome}, expected {s.expected_outcome}")
        else:
            t.stored += 1
    t.problems += [f"a call never placed was stored: {linkedid}" for linkedid in calls.keys() - placed_ids]

    rows = text_rows(rig.db)
    rows_by_call = Counter(row.linkedid for row in rows)
    by_id = {s.linkedid: s for s in scenarios}
    for row in rows:
        scenario = by_id.get(row.linkedid or "")
        if scenario is None or not owed_text(scenario):
            t.problems.append(f"text row for a call owed no text: {row}")
            continue
        if row.to != e164(scenario.caller):
            t.problems.append(f"text for {row.linkedid} addressed to {row.to}, not the caller {scenario.caller}")
        expected_state = "failed" if row.to in refused else "delivered"
        if row.state not in FINAL_STATES:
            t.unresolved += 1
        if row.state != expected_state and not (unknown_ok and row.state == "unknown"):
            t.problems.append(f"text to {row.to} ({row.linkedid}) is {row.state} ({row.error}), not {expected_state}")
    t.problems += [f"{n} text rows for call {linkedid}" for linkedid, n in rows_by_call.items() if n > 1]
    missing = [s for s in inbound if owed_text(s) and s.linkedid not in rows_by_call]
    t.problems += [f"no text row for the missed call {s.linkedid} from {s.caller}" for s in missing]

    received = rig.gateway_texts()
    t.texted = len(received)
    per_number = Counter(number for number, _ in received)
    bodies = {row.to: row.body for row in rows}
    for number, scenario in owed.items():
        got = per_number.get(number, 0)
        if got == 0:
            t.lost += 1
            state = next((row.state for row in rows if row.to == number), "no row")
            t.problems.append(f"{number} ({scenario.name}) got no text at the gateway (row: {state})")
        elif got != texts_per_caller:
            t.duplicates += got - 1 if got > 1 else 0
            t.problems.append(f"{number} ({scenario.name}) got {got} texts at the gateway")
    for number, got in per_number.items():
        if number not in owed:
            t.false_texts += got
            t.problems.append(f"{number} got {got} texts but is owed none")
    for number, text in received:
        if number in bodies and text != bodies[number]:
            t.problems.append(f"{number} got {text!r}, the stored text is {bodies[number]!r}")
    return t


def check_exactly_once(
    rig: FaultRig,
    scenarios: Sequence[Scenario] | None = None,
    *,
    rejected: Iterable[str] = (),
    unknown_ok: bool = False,
    texts_per_caller: int = 1,
) -> Tally:
    """`tally`, failing the test with every problem found (and the service's last log lines)."""
    result = tally(
        rig,
        rig.placed if scenarios is None else scenarios,
        rejected=rejected,
        unknown_ok=unknown_ok,
        texts_per_caller=texts_per_caller,
    )
    if result.problems:
        shown = "\n  ".join(result.problems[:30])
        raise AssertionError(f"{result.line(rig.kills)}\n  {shown}\n---- service log ----\n{rig.log_tail()}")
    return result
