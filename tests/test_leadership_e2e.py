"""Two real `callbuddy-pbx run` processes on one PostgreSQL database and one (then two) simulated Asterisk (with its CEL
database) and SMSC: only the owner is logged in to AMI; SIGKILL it while calls are ringing; the other logs in within
5 s, takes the calls still live from Asterisk's channel list and the ones that ended in the gap from CEL, and every
missed call placed before, during and after is stored once and texted once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.cel_db import SimulatedCelDb
from callbuddy_pbx.sim.scenario_model import Scenario
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from tests.faults import (
    AMI_SECRET,
    BUSINESS,
    BUSINESS_NUMBERS,
    EXE,
    SMSC_PASSWORD,
    SMSC_USER,
    e164,
    make_calls,
    owed_text,
)
from tests.pg import Cluster
from tests.servers import free_port

SPEED = 4.0  # call time runs this much faster than the scenarios' own clock
TAKEOVER_LIMIT_S = 5.0


def write_config(path: Path, *, ami_port: int, smpp_port: int, web_port: int, url: str) -> None:
    """The installation's config; the instances differ only in their web port (they share one host here)."""
    numbers = ", ".join(f'"+{n}"' for n in BUSINESS_NUMBERS)
    path.write_text(
        f"""\
asterisk: {{host: 127.0.0.1, port: {ami_port}, username: callbuddy, secret: {AMI_SECRET},
           reconnect_min_s: 0.1, reconnect_max_s: 0.5}}
businesses:
  - name: {BUSINESS}
    numbers: [{numbers}]
    booking_url: https://glow.example
    text_back:
      hold_off_seconds: 0.2
gateways:
  - {{name: smsc, kind: smpp, host: 127.0.0.1, port: {smpp_port}, system_id: {SMSC_USER}, password: {SMSC_PASSWORD},
     rate_per_second: 0}}
web: {{host: 127.0.0.1, port: {web_port}, public_url: "http://127.0.0.1:{web_port}", webhook_token: 0123456789abcdef}}
storage: {{url: "{url}"}}
cel: {{sqlite: master.db, poll_seconds: 0.3}}
logging: {{level: INFO}}
"""
    )


class Instance:
    def __init__(self, name: str, config: Path, web_port: int) -> None:
        self.name, self.config, self.web_port = name, config, web_port
        self.log = config.with_suffix(".log")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(EXE), "run", "--config", str(self.config), stdout=log, stderr=log
            )

    async def health(self) -> dict[str, Any]:
        """/healthz's body (503 too: it says what is down); {} while the web server is not up."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session,
                session.get(f"http://127.0.0.1:{self.web_port}/healthz") as answer,
            ):
                body: dict[str, Any] = await answer.json()
                return body
        except (aiohttp.ClientError, TimeoutError):
            return {}

    async def wait_health(self, want: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Until /healthz says `want` (its role, whether it is ok)."""
        deadline, body = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            body = await self.health()
            seen = {"role": body.get("leadership", {}).get("role"), "ok": body.get("ok")}
            if all(seen[key] == value for key, value in want.items()):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name}: /healthz never said {want}: {body}\n{self.tail()}")

    async def stop(self) -> None:
        """SIGTERM (killed after 15 s) if still running."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 15)
        if process.returncode is None:
            process.kill()
            await process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Player:
    """Plays generated calls into the simulated Asterisk in real time (as Asterisk would, listened to or not)."""

    def __init__(self, ami: SimulatedAmiServer) -> None:
        self.ami = ami
        self.placed: list[Scenario] = []
        self.open_calls = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def play(self, calls: list[Scenario], speed: float = SPEED) -> None:
        base, began = calls[0].started_at, time.monotonic()
        for call in calls:
            task = asyncio.create_task(self._play(call, began + (call.started_at - base) / speed, speed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def done(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def _play(self, call: Scenario, at: float, speed: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        self.placed.append(call)
        self.open_calls += 1
        try:
            began = time.monotonic()
            for event in call.events:
                await asyncio.sleep(max(0.0, began + event.at / speed - time.monotonic()))
                message, now = dict(event.message), time.time()
                if "Timestamp" in message:
                    message["Timestamp"] = f"{now:.6f}"
                if "EventTime" in message:  # the CEL row's time is this moment, as Asterisk writes it
                    message["EventTime"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
                await self.ami.broadcast([message])
        finally:
            self.open_calls -= 1

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def wait_for(predicate: object, timeout: float, what: str, *instances: Instance) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {i.name}\n{i.tail()}" for i in instances)
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{tails}")
        await asyncio.sleep(0.05)


def stored_calls(url: str) -> list[tuple[str, str, bool]]:
    """(linkedid, outcome, judged from CEL) of every stored call."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT linkedid, outcome, from_cel FROM calls").fetchall()
    return [(str(r[0]), str(r[1]), bool(r[2])) for r in rows]


async def settled(url: str, placed: dict[str, Scenario], smsc: SimulatedSmsc, instance: Instance) -> list[str]:
    """Wait until every placed call (by its stored key) is stored and the SMSC got as many texts as are owed, then
    a little more (time for a wrong second text, or a second store); return the owed numbers, sorted."""
    owed = sorted(e164(call.caller) for call in placed.values() if owed_text(call))

    def done() -> bool:
        stored = {linkedid for linkedid, _, _ in stored_calls(url)}
        return placed.keys() <= stored and len(smsc.messages()) >= len(owed)

    await wait_for(done, 30, "every call stored and every owed text sent", instance)
    await asyncio.sleep(2.0)
    return owed


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, url: str) -> AsyncIterator[tuple[SimulatedAmiServer, SimulatedSmsc, list[Instance]]]:
    cel_db = SimulatedCelDb(tmp_path / "master.db")
    ami = SimulatedAmiServer(secret=AMI_SECRET, cel_db=cel_db)
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, receipt_delay_s=0.05)
    await ami.start()
    await smsc.start()
    instances = []
    for name in ("a", "b"):
        port = free_port()
        config = tmp_path / f"{name}.yaml"
        write_config(config, ami_port=ami.port, smpp_port=smsc.port, web_port=port, url=url)
        instances.append(Instance(name, config, port))
    try:
        yield ami, smsc, instances
    finally:
        for instance in instances:
            await instance.stop()
        await smsc.stop()
        await ami.stop()
        cel_db.close()


async def test_the_owner_killed_mid_traffic_is_replaced_within_5_s_and_every_missed_call_is_texted_once(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    url = pg_cluster.fresh_url()
    async with rig(tmp_path, url) as (ami, smsc, (first, second)):
        most_clients = 0

        async def count_clients() -> None:
            nonlocal most_clients
            while True:
                most_clients = max(most_clients, ami.clients)
                await asyncio.sleep(0.01)

        counting = asyncio.create_task(count_clients())
        player = Player(ami)
        try:
            await first.start()
            await wait_for(lambda: ami.logins == 1, 15, "the first instance to log in", first)
            # On PostgreSQL, calls that wait for the database are kept on this machine (store/spool.py).
            assert (tmp_path / "data" / "callbuddy-spool.sqlite3").exists()
            await second.start()
            # A standby is healthy without Asterisk links; the owner says since when it owns them.
            standby = await second.wait_health({"role": "standby", "ok": True}, 15)
            assert standby["ami"]["connected"] is False
            owner = await first.wait_health({"role": "owner", "ok": True}, 5)
            assert owner["leadership"]["owner_since"] <= time.time()

            player.play(make_calls(8, seed=21, cel=True))  # before: the first instance's
            await player.done()
            await asyncio.sleep(1.0)
            # In real time: some end in the gap (found in CEL), some still ring when the other logs in (adopted from
            # Asterisk's channel list, completed from CEL).
            during = make_calls(8, seed=22, cel=True, gap_s=(0.3, 0.8))
            player.play(during, speed=1.0)
            await wait_for(lambda: player.open_calls >= 3, 10, "calls in progress", first)
            assert first.process is not None
            os.kill(first.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            await first.process.wait()
            await wait_for(lambda: ami.logins == 2, TAKEOVER_LIMIT_S, "the second instance to log in", second)
            takeover = time.monotonic() - killed
            print(f"takeover: AMI login {takeover:.2f} s after SIGKILL")
            await second.wait_health({"role": "owner"}, 5)
            await player.done()
            player.play(make_calls(8, seed=23, cel=True))  # after: the second instance's
            await player.done()

            placed = {call.linkedid: call for call in player.placed if call.expected_outcome is not None}
            owed = await settled(url, placed, smsc, second)
        finally:
            counting.cancel()
            await player.stop()

        calls = stored_calls(url)
        assert len(calls) == len({linkedid for linkedid, _, _ in calls})  # each stored once
        assert {linkedid: outcome for linkedid, outcome, _ in calls if linkedid in placed} == {
            linkedid: call.expected_outcome for linkedid, call in placed.items()
        }
        from_cel = {linkedid for linkedid, _, cel in calls if cel}
        assert from_cel and from_cel <= {call.linkedid for call in during}  # the gap, and only it, from CEL
        assert sorted(e164(m.destination) for m in smsc.messages()) == owed  # texted once, nobody twice
        assert most_clients == 1 and ami.logins == 2  # never two AMI links; one login each
        assert takeover < TAKEOVER_LIMIT_S
        assert second.process is not None
        second.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.process.wait(), 15) == 0, second.tail()


def write_nodes_config(path: Path, *, ami_ports: dict[str, int], smpp_port: int, web_port: int, url: str) -> None:
    """The same installation with two Asterisk servers, each with its CEL database."""
    nodes = "\n".join(
        f"    - {{name: {name}, host: 127.0.0.1, port: {port}, username: callbuddy, secret: {AMI_SECRET},\n"
        f"       reconnect_min_s: 0.1, reconnect_max_s: 0.5, cel: {{sqlite: {name}.db, poll_seconds: 0.3}}}}"
        for name, port in ami_ports.items()
    )
    write_config(path, ami_port=1, smpp_port=smpp_port, web_port=web_port, url=url)
    text = path.read_text()
    single = text[text.index("asterisk:") : text.index("businesses:")]
    text = text.replace(single, f"asterisk:\n  nodes:\n{nodes}\n")
    text = text.replace("cel: {sqlite: master.db, poll_seconds: 0.3}\n", "")  # each node has its own
    path.write_text(text)


async def test_two_instances_share_two_asterisk_servers_and_take_over_a_killed_ones_server(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    """Two instances started together on two simulated Asterisk servers: each server is followed by one of them;
    SIGKILL the instance that follows `north` mid-traffic: the other logs in to it within 5 s, and every call on both
    servers is stored once under its server's key and every missed caller texted once."""
    url = pg_cluster.fresh_url()
    names = ("north", "south")
    cels = {name: SimulatedCelDb(tmp_path / f"{name}.db") for name in names}
    amis = {name: SimulatedAmiServer(secret=AMI_SECRET, cel_db=cels[name]) for name in names}
    smsc = SimulatedSmsc(system_id=SMSC_USER, password=SMSC_PASSWORD, receipt_delay_s=0.05)
    for ami in amis.values():
        await ami.start()
    await smsc.start()
    instances: list[Instance] = []
    for name in ("a", "b"):
        port = free_port()
        config = tmp_path / f"{name}.yaml"
        ports = {node: ami.port for node, ami in amis.items()}
        write_nodes_config(config, ami_ports=ports, smpp_port=smsc.port, web_port=port, url=url)
        instances.append(Instance(name, config, port))
    players = {name: Player(ami) for name, ami in amis.items()}
    try:
        for instance in instances:
            await instance.start()
        await wait_for(lambda: all(ami.logins == 1 for ami in amis.values()), 20, "both servers followed", *instances)

        async def follower(node: str) -> Instance:
            for instance in instances:
                body = await instance.health()
                if body.get("nodes", {}).get(node, {}).get("leadership", {}).get("role") == "owner":
                    return instance
            raise AssertionError(f"nobody owns {node}")

        doomed = await follower("north")
        survivor = next(instance for instance in instances if instance is not doomed)
        # One simulated Asterisk process per server: its Linkedids never repeat (one generator for all its calls).
        calls = {name: make_calls(12, seed=31 + index, cel=True, gap_s=(0.3, 0.8)) for index, name in enumerate(names)}
        for name, player in players.items():
            player.play(calls[name][:6])
        await asyncio.gather(*(player.done() for player in players.values()))
        for name, player in players.items():
            player.play(calls[name][6:], speed=1.0)
        await wait_for(lambda: players["north"].open_calls >= 2, 10, "calls in progress", doomed)
        assert doomed.process is not None
        os.kill(doomed.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        await doomed.process.wait()
        await wait_for(lambda: amis["north"].logins == 2, TAKEOVER_LIMIT_S, "north taken over", survivor)
        takeover = time.monotonic() - killed
        await asyncio.gather(*(player.done() for player in players.values()))

        placed = {
            f"{call.linkedid}@{name}": call
            for name, player in players.items()
            for call in player.placed
            if call.expected_outcome is not None
        }
        assert len(placed) == sum(len(player.placed) for player in players.values())  # keys unique per server
        owed = await settled(url, placed, smsc, survivor)
    finally:
        for player in players.values():
            await player.stop()
        for instance in instances:
            await instance.stop()
        await smsc.stop()
        for name in names:
            await amis[name].stop()
            cels[name].close()

    calls = stored_calls(url)
    assert len(calls) == len({linkedid for linkedid, _, _ in calls})  # each stored once
    assert {linkedid: outcome for linkedid, outcome, _ in calls if linkedid in placed} == {
        key: call.expected_outcome for key, call in placed.items()
    }
    assert all(linkedid.rsplit("@", 1)[-1] in names for linkedid, _, _ in calls)  # every key names its server
    assert sorted(e164(m.destination) for m in smsc.messages()) == owed  # texted once, nobody twice
    assert takeover < TAKEOVER_LIMIT_S and amis["south"].logins in (1, 2)
