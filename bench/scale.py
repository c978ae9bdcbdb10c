"""Scale: N simulated Asterisk servers at a total missed-call rate through 1 and then 2 `callbuddy-pbx run`
instances on one PostgreSQL, and one instance on SQLite for comparison.

What runs where (the machine this was written on has 2 cores; everything shares them):
- this process: starts and stops the rest, writes the configs, waits for /healthz, judges the run;
- one simulators' process (bench/scale_sims.py): the N simulated Asterisk servers (one AMI port each, named
  site-01, site-02, ...) placing the calls, and the simulated SMSC (smpp34, with its own threads) receiving the texts;
- one process per service instance: `.venv/bin/callbuddy-pbx run --config <generated yaml>` (logs in
  $TMPDIR/callbuddy-scale/<setup>/);
- PostgreSQL (setups pg1, pg2): a throwaway cluster from Debian's packages (tests/pg.py) run as the `postgres`
  user, its data under $TMPDIR/callbuddy-scale/; a fresh database per setup.

Each setup (`pg1`: 1 instance on PostgreSQL, `pg2`: 2 instances on the same PostgreSQL, `sqlite`: 1 instance on
SQLite) starts fresh simulators and instances, waits until every node has an AMI login and the SMSC as many binds as
instances, then places --calls missed calls (default: --rate x --seconds) at --rate calls/s in all, spread evenly
over the nodes, every caller with a number of its own across the whole run. Every call is missed and owed one text
(hold-off 0, no rate limit on the gateway).

Measured, all on the simulators' wall clock: hang-up (the write of the caller's Hangup event) -> submit_sm arriving
at the SMSC, p50/p99; texts/s sustained (texts received at the SMSC over the window from the first to the last);
duplicates (callers texted more than once, and numbers texted that were never called); lost (callers without a text
when --drain-s ran out after the last call). `calls_per_s` on the summary line is the missed calls texted per second
sustained (one text each: the texts/s), not the offered rate. The 2-instance / 1-instance ratio of texts/s only
measures scaling when --rate is above what one instance sustains; below it both follow the offered rate.

    python bench/scale.py [--nodes 10] [--rate 50] [--seconds 30 | --calls N] [--setups pg1,pg2,sqlite] [--drain-s 60]

Prints per setup a human line, an indented detail line (where the time went: hang-up -> text queued -> recorded
sent from the database's own times; texts sent by each instance, the Asterisk links each owns; CPU of each process
and of the machine, whose other users count too), then
`scale nodes=N instances=I calls_per_s=X p99_ms=X duplicates=0 lost=0`; at the end the pg2/pg1 texts/s ratio.
Exits 1 if any setup had duplicates or lost texts. Each call's hang-up and text times are left in
$TMPDIR/callbuddy-scale/<setup>/latency.csv, beside the instances' configs and logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/pg.py: the throwaway PostgreSQL cluster

from scale_sims import (  # noqa: E402 (bench/ is this script's folder)
    AMI_SECRET,
    AMI_USER,
    BUSINESS_NUMBERS,
    SMSC_PASSWORD,
    SMSC_USER,
    SimPlan,
    SimResult,
    node_name,
    simulator_process,
)

from tests.pg import Cluster, running_cluster  # noqa: E402

EXE = ROOT / ".venv" / "bin" / "callbuddy-pbx"
TMP = Path(tempfile.gettempdir()) / "callbuddy-scale"  # configs, logs, latency.csv, the cluster's data
SETUPS = {"pg1": ("postgresql", 1), "pg2": ("postgresql", 2), "sqlite": ("sqlite", 1)}
HEALTH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Stored:
    """What the database says after the run."""

    calls: int = -1
    sent_by: tuple[int, ...] = ()  # texts each instance sent (its claims), most first
    queued_ms: tuple[float, float] = (float("nan"), float("nan"))  # hang-up -> text queued, p50 and p99
    sent_ms: tuple[float, float] = (float("nan"), float("nan"))  # text queued -> recorded as sent, p50 and p99


@dataclass(frozen=True)
class Outcome:
    setup: str
    nodes: int
    instances: int
    placed: int
    offered_rate: float
    placed_rate: float
    texts: int
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    duplicates: int
    lost: int
    stored: Stored
    shared_linkedids: int
    late_p99_ms: float
    sim_cpu: float  # share of one core the simulators' process used
    instance_cpu: tuple[float, ...]  # share of one core each instance used over the same window
    postgres_cpu: float  # share of one core the PostgreSQL cluster used
    machine_busy: float  # share of all cores busy (every process on the machine, the bench's or not)
    roles: tuple[str, ...]
    load: float


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- configuration -----------------------------------------------------------------------------------------------


def asterisk_section(ami_ports: list[int]) -> str:
    nodes = "".join(
        f"    - {{name: {node_name(i)}, host: 127.0.0.1, port: {port}, username: {AMI_USER}, secret: {AMI_SECRET}}}\n"
        for i, port in enumerate(ami_ports)
    )
    return f"asterisk:\n  nodes:\n{nodes}"


def write_config(path: Path, ami_ports: list[int], smpp_port: int, web_port: int, storage: str) -> None:
    numbers = ", ".join(f'"+{n}"' for n in BUSINESS_NUMBERS)
    path.write_text(
        asterisk_section(ami_ports)
        + f"""\
businesses:
  - name: Glow Salon
    numbers: [{numbers}]
    booking_url: https://glow.example
    text_back:
      hold_off_seconds: 0
      min_ring_seconds: 0
gateways:
  - {{name: smsc, kind: smpp, host: 127.0.0.1, port: {smpp_port}, system_id: {SMSC_USER}, password: {SMSC_PASSWORD},
     rate_per_second: 0}}
web: {{host: 127.0.0.1, port: {web_port}, public_url: "http://127.0.0.1:{web_port}", webhook_token: 0123456789abcdef}}
storage: {storage}
logging: {{level: INFO}}
"""
    )


# -- CPU, from /proc ---------------------------------------------------------------------------------------------


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state first); [] once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def process_cpu_s(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) a process used so far; with `children`, also its reaped children's."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s() -> float:
    """CPU seconds used so far by the bench's PostgreSQL cluster (its postmaster, its live and ended backends)."""
    postmasters = set()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if command.startswith(b"/usr/lib/postgresql/") and f"-D {TMP}/".encode() in command:
                postmasters.add(int(entry.name))
            fields = _stat(entry.name)
            if fields:
                parents[int(entry.name)] = int(fields[1])
    total = sum(process_cpu_s(pid, children=True) for pid in postmasters)
    return total + sum(process_cpu_s(pid) for pid, parent in parents.items() if parent in postmasters)


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy so far (not idle, not waiting for I/O): everyone's, not only the bench's."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


# -- the service instances ---------------------------------------------------------------------------------------


class Instance:
    def __init__(self, folder: Path, name: str, web_port: int) -> None:
        self.name, self.web_port = name, web_port
        self.config = folder / f"{name}.yaml"
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(EXE), "run", "--config", str(self.config)], stdout=log, stderr=log)

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=1) as answer:
                body: dict[str, Any] = json.load(answer)
        except urllib.error.HTTPError as error:  # 503 says what is down
            body = json.load(error)
        except (OSError, ValueError):
            return {}
        return body

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not self.health().get("ok"):
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: /healthz never said ok: {self.health()}\n{self.tail()}")
            time.sleep(0.1)

    def cpu_s(self) -> float:
        return 0.0 if self.process is None else process_cpu_s(self.process.pid)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


# -- one setup ---------------------------------------------------------------------------------------------------


def role(health: dict[str, Any]) -> str:
    """What an instance does, from its /healthz: the Asterisk links it owns of several, else its role."""
    nodes: dict[str, Any] = health.get("nodes") or {}
    if nodes:
        owned = sum(node.get("leadership", {}).get("role", "owner") == "owner" for node in nodes.values())
        return f"owner of {owned}/{len(nodes)} links"
    return str(health.get("leadership", {}).get("role", "single box"))


def fresh_storage(setup: str, folder: Path, cluster: Cluster | None) -> tuple[str, str]:
    """(the config's `storage:` value, what to count the stored calls with)."""
    if cluster is None:
        return f'{{path: "{folder / "callbuddy.sqlite3"}"}}', str(folder / "callbuddy.sqlite3")
    database = f"scale_{setup}"
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database}")  # a name made here, not data
        conn.execute(f"CREATE DATABASE {database}")
    url = cluster.url(database)
    return f'{{url: "{url}"}}', url


_SENDERS = "SELECT count(*) FROM messages WHERE message_id IS NOT NULL GROUP BY claimed_by ORDER BY 1 DESC"
_STAGES = """SELECT m.created_at - c.ended_at, m.sent_at - m.created_at FROM messages m JOIN calls c USING (linkedid)
             WHERE m.kind = 'missed_call' AND m.sent_at IS NOT NULL"""


def stored(where: str) -> Stored:
    """Read after the run (the service's own clock: the Hangup's Timestamp header, its row's times)."""
    with contextlib.suppress(Exception):
        if where.startswith("postgresql://"):
            with psycopg.connect(where, autocommit=True) as conn:
                rows = [conn.execute(sql).fetchall() for sql in ("SELECT count(*) FROM calls", _SENDERS, _STAGES)]
        else:
            with contextlib.closing(sqlite3.connect(f"file:{where}?mode=ro", uri=True)) as db:
                rows = [db.execute(sql).fetchall() for sql in ("SELECT count(*) FROM calls", _SENDERS, _STAGES)]
        calls, senders, stages = rows
        queued = [float(row[0]) * 1000 for row in stages]
        sent = [float(row[1]) * 1000 for row in stages]
        return Stored(
            int(calls[0][0]),
            tuple(int(row[0]) for row in senders),
            (percentile(queued, 50), percentile(queued, 99)),
            (percentile(sent, 50), percentile(sent, 99)),
        )
    return Stored()


def run_setup(setup: str, args: argparse.Namespace, cluster: Cluster | None, first_caller: int) -> Outcome:
    engine, count = SETUPS[setup]
    folder = TMP / setup
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    calls = args.calls or round(args.rate * args.seconds)
    plan = SimPlan(args.nodes, args.rate, calls, first_caller, count, args.drain_s)
    context = multiprocessing.get_context("spawn")
    ports, go, stop, results = context.Queue(), context.Event(), context.Event(), context.Queue()
    simulators = context.Process(target=simulator_process, args=(plan, ports, go, stop, results), daemon=True)
    simulators.start()
    instances = [Instance(folder, f"{setup}-{n + 1}", free_port()) for n in range(count)]
    try:
        ami_ports, smpp_port = ports.get(timeout=60)
        storage, where = fresh_storage(setup, folder, cluster if engine == "postgresql" else None)
        for instance in instances:
            write_config(instance.config, ami_ports, smpp_port, instance.web_port, storage)
        for instance in instances:
            instance.start()
        for instance in instances:
            instance.wait_healthy()
        cpu_before = [instance.cpu_s() for instance in instances]
        pg_before, busy_before = postgres_cpu_s(), machine_busy_s()
        started = time.monotonic()
        go.set()
        result = wait_result(results, simulators, calls / args.rate + args.drain_s + 300)
        window = time.monotonic() - started
        if isinstance(result, str):
            raise RuntimeError(f"{setup}: the simulators failed: {result}")
        instance_cpu = tuple((i.cpu_s() - b) / window for i, b in zip(instances, cpu_before, strict=True))
        pg_cpu = (postgres_cpu_s() - pg_before) / window if engine == "postgresql" else 0.0
        busy = (machine_busy_s() - busy_before) / window / (os.cpu_count() or 1)
        roles = tuple(role(i.health()) for i in instances)
        for instance in instances:
            if instance.process is not None and instance.process.poll() is not None:
                print(f"{instance.name} exited ({instance.process.returncode}) during the run:\n{instance.tail()}")
        load = os.getloadavg()[0]
    finally:
        for instance in instances:
            instance.stop()
        stop.set()
        simulators.join(timeout=30)
        if simulators.is_alive():
            simulators.terminate()
    return judge(setup, plan, result, stored(where), (instance_cpu, pg_cpu, busy), roles, load)


def wait_result(results: Any, simulators: Any, timeout_s: float) -> SimResult | str:
    """The simulators' result (or their error's text), unless their process died without one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            answer: SimResult | str = results.get(timeout=1.0)
            return answer
        if not simulators.is_alive():
            return f"the simulators' process exited ({simulators.exitcode})"
    return "no result in time"


def judge(
    setup: str,
    plan: SimPlan,
    result: SimResult,
    facts: Stored,
    cpu: tuple[tuple[float, ...], float, float],
    roles: tuple[str, ...],
    load: float,
) -> Outcome:
    texted = Counter(number for number, _ in result.texts)
    first_text: dict[str, float] = {}
    for number, at in sorted(result.texts, key=lambda text: text[1]):
        first_text.setdefault(number, at)
    owed = set(result.node_of)  # every caller placed is owed one text
    strangers = sum(count for number, count in texted.items() if number not in owed)
    duplicates = sum(1 for number, count in texted.items() if number in owed and count > 1) + strangers
    lost = sum(first_text.get(number, float("inf")) > result.drained_at for number in owed)  # none by the deadline
    latencies = [(first_text[n] - result.hung_up[n]) * 1000 for n in owed if n in first_text and n in result.hung_up]
    with (TMP / setup / "latency.csv").open("w") as csv:  # one row per call, in hang-up order, for a closer look
        csv.write("node,caller,hung_up,texted,latency_ms\n")
        for number, at in sorted(result.hung_up.items(), key=lambda item: item[1]):  # every call hangs up
            text_at = first_text.get(number)
            columns = "," if text_at is None else f"{text_at:.6f},{(text_at - at) * 1000:.1f}"
            csv.write(f"{result.node_of[number]},{number},{at:.6f},{columns}\n")
    times = sorted(at for _, at in result.texts)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    placing = result.last_start - result.first_start
    window = (times[-1] if times else result.last_start) - result.first_start
    return Outcome(
        setup=setup,
        nodes=plan.nodes,
        instances=plan.instances,
        placed=result.placed,
        offered_rate=plan.rate,
        placed_rate=(result.placed - 1) / placing if placing > 0 else float("nan"),
        texts=len(result.texts),
        texts_per_s=(len(times) - 1) / span if span > 0 else float("nan"),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        duplicates=duplicates,
        lost=lost,
        stored=facts,
        shared_linkedids=result.shared_linkedids,
        late_p99_ms=percentile(result.late_ms, 99),
        sim_cpu=result.cpu_s / window if window > 0 else float("nan"),
        instance_cpu=cpu[0],
        postgres_cpu=cpu[1],
        machine_busy=cpu[2],
        roles=roles,
        load=load,
    )


def report(outcome: Outcome) -> None:
    engine = "PostgreSQL" if SETUPS[outcome.setup][0] == "postgresql" else "SQLite"
    facts = outcome.stored
    shares = zip(outcome.roles, outcome.instance_cpu, strict=True)
    cpu = ", ".join(f"instance {n} ({role}) {share:.0%}" for n, (role, share) in enumerate(shares, 1))
    postgres = f", PostgreSQL {outcome.postgres_cpu:.0%}" if SETUPS[outcome.setup][0] == "postgresql" else ""
    print(
        f"{outcome.setup}: {outcome.nodes} nodes -> {outcome.instances} instance(s) on {engine}:"
        f" {outcome.placed} missed calls at {outcome.offered_rate:g}/s, {outcome.texts} texts;"
        f" hang-up -> SMSC p50 {outcome.p50_ms:.1f} ms p99 {outcome.p99_ms:.1f} ms max {outcome.max_ms:.1f} ms;"
        f" {outcome.texts_per_s:.1f} texts/s sustained; {outcome.duplicates} duplicates, {outcome.lost} lost",
        flush=True,
    )
    print(
        f"  {outcome.setup} detail: placed at {outcome.placed_rate:.1f}/s (simulator late p99"
        f" {outcome.late_p99_ms:.1f} ms), {outcome.shared_linkedids} Linkedids on several nodes, {facts.calls} calls"
        f" stored, texts sent per instance {'/'.join(map(str, facts.sent_by))};"
        f" hang-up -> queued p50 {facts.queued_ms[0]:.1f} p99 {facts.queued_ms[1]:.1f} ms,"
        f" queued -> recorded sent p50 {facts.sent_ms[0]:.1f} p99 {facts.sent_ms[1]:.1f} ms;"
        f" CPU (of one core) simulators {outcome.sim_cpu:.0%}, {cpu}{postgres};"
        f" machine {outcome.machine_busy:.0%} busy of {os.cpu_count()} cores, load {outcome.load:.2f}",
        flush=True,
    )
    print(
        f"scale nodes={outcome.nodes} instances={outcome.instances} calls_per_s={outcome.texts_per_s:.1f}"
        f" p99_ms={outcome.p99_ms:.1f} duplicates={outcome.duplicates} lost={outcome.lost}",
        flush=True,
    )


@contextlib.contextmanager
def maybe_cluster(needed: bool) -> Iterator[Cluster | None]:
    if not needed:
        yield None
        return
    tempfile.tempdir = str(TMP)  # the cluster's data folder goes under TMP (readable by `postgres`)
    try:
        with running_cluster() as cluster:
            yield cluster
    finally:
        tempfile.tempdir = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10, help="simulated Asterisk servers")
    parser.add_argument("--rate", type=float, default=50.0, help="missed calls per second, all nodes together")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long calls are placed")
    parser.add_argument("--calls", type=int, default=0, help="calls per setup (instead of --rate x --seconds)")
    parser.add_argument("--setups", default="pg1,pg2,sqlite", help=f"comma-separated, of {', '.join(SETUPS)}")
    parser.add_argument("--drain-s", type=float, default=60.0, help="after the last call: wait this long for texts")
    args = parser.parse_args()
    setups = [name.strip() for name in args.setups.split(",") if name.strip()]
    if unknown := [name for name in setups if name not in SETUPS]:
        parser.error(f"unknown setup(s) {', '.join(unknown)}; choose from {', '.join(SETUPS)}")
    if args.nodes < 1 or args.rate <= 0:
        parser.error("--nodes must be at least 1 and --rate positive")
    TMP.mkdir(parents=True, exist_ok=True)
    TMP.chmod(0o755)
    outcomes: dict[str, Outcome] = {}
    calls = args.calls or round(args.rate * args.seconds)
    with maybe_cluster(any(SETUPS[name][0] == "postgresql" for name in setups)) as cluster:
        for index, setup in enumerate(setups):
            outcomes[setup] = run_setup(setup, args, cluster, first_caller=index * calls)
            report(outcomes[setup])
    if "pg1" in outcomes and "pg2" in outcomes and outcomes["pg1"].texts_per_s > 0:
        ratio = outcomes["pg2"].texts_per_s / outcomes["pg1"].texts_per_s
        print(f"scale ratio 2/1 instances texts_per_s={ratio:.2f}", flush=True)
    return 1 if any(o.duplicates or o.lost for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
