"""Several Asterisk servers in one config (asterisk.nodes): each followed over its own AMI link, its calls keyed by
(node, Linkedid), its businesses' numbers matched on it alone, its health shown on its own."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from callbuddy_pbx.config import (
    AsteriskConfig,
    AsteriskNode,
    Business,
    CelConfig,
    Config,
    GatewayConfig,
    StorageConfig,
    TextBack,
)
from callbuddy_pbx.model import CallRecord, node_key
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.healthz import service_health
from callbuddy_pbx.service.node_link import NodeCalls
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer
from callbuddy_pbx.sim.scenario_factory import ScenarioFactory
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.messages import MessageStore
from tests.test_cel_reconcile import empty_cel_table, write_cel_rows_shifted
from tests.test_store import make_call
from tests.traces import cel_traces
from tests.waiting import wait_until, wait_until_async

NORTH_DID, SOUTH_DID = "15550001000", "15550002000"
CALLER = "15557654321"


def business(name: str, did: str, node: str) -> Business:
    return Business(name, (f"+{did}",), node=node, text_back=TextBack(gateway="sim", hold_off_s=0.0))


def nodes_config(ports: dict[str, int], db: Path) -> Config:
    nodes = tuple(
        AsteriskNode(
            name,
            AsteriskConfig(port=port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.2, ping_interval_s=5),
        )
        for name, port in ports.items()
    )
    return Config(
        asterisk=nodes[0].ami,
        nodes=nodes,
        businesses=(business("North Salon", NORTH_DID, "north"), business("South Salon", SOUTH_DID, "south")),
        gateways=(GatewayConfig(name="sim", kind="simulated", rate_per_s=0),),
        storage=StorageConfig(db),
    )


@dataclass
class Sites:
    servers: dict[str, SimulatedAmiServer]
    service: CallService
    store: CallStore
    text_back: TextBackService
    gateway: SimulatedGateway
    calls: list[CallRecord]

    async def play(self, node: str, factory: ScenarioFactory, did: str) -> None:
        scenario = factory.ring_all_no_answer(caller=CALLER, did=did)
        await self.servers[node].broadcast([event.message for event in scenario.events])

    async def settle(self) -> None:
        for link in self.service.nodes:
            if link.ami.connected:
                await link.ami.action("Ping")
        await wait_until(lambda: all(link.tracker.active_calls == 0 for link in self.service.nodes), 5)
        await asyncio.wait_for(self.service.wait_stored(), 5)
        messages = self.text_back.messages
        await wait_until_async(lambda: _outbox_idle(messages), 5)


async def _outbox_idle(messages: MessageStore) -> bool:
    return await messages.next_due_at() is None and not await messages.list_messages(state="sending", limit=1)


@contextlib.asynccontextmanager
async def two_sites(tmp_path: Path, *, systemnames: dict[str, str] | None = None) -> AsyncIterator[Sites]:
    """North and south; with `systemnames`, each server says that name and the config expects `pbx-<node>`."""
    servers = {name: SimulatedAmiServer(secret="s3cret") for name in ("north", "south")}
    for name, server in servers.items():
        server.systemname = (systemnames or {}).get(name, "")
        await server.start()
    config = nodes_config({name: server.port for name, server in servers.items()}, tmp_path / "calls.sqlite3")
    if systemnames is not None:
        nodes = tuple(dataclasses.replace(node, systemname=f"pbx-{node.name}") for node in config.nodes)
        config = dataclasses.replace(config, nodes=nodes)
    store = await CallStore.open(config.storage.path)
    gateway = SimulatedGateway("sim")
    text_back = TextBackService(config, store, {gateway.name: gateway})
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append, text_back=text_back)
    task = asyncio.create_task(service.run())
    try:
        for link in service.nodes:
            if systemnames is None:
                await asyncio.wait_for(link.ready.wait(), 5)
        yield Sites(servers, service, store, text_back, gateway, calls)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()
        for server in servers.values():
            with contextlib.suppress(Exception):
                await server.stop()


async def test_the_same_linkedid_on_two_servers_is_two_calls_each_texted_once(tmp_path: Path) -> None:
    async with two_sites(tmp_path) as sites:
        # The same seed: both servers number their channels alike, as two Asterisks started together do.
        await sites.play("north", ScenarioFactory(seed=7), NORTH_DID)
        await sites.play("south", ScenarioFactory(seed=7), SOUTH_DID)
        await wait_until(lambda: len(sites.calls) == 2, 5)
        await sites.settle()
        north, south = sorted(sites.calls, key=lambda call: call.node)
        raw = north.linkedid.removesuffix("@north")
        assert raw and "@" not in raw
        assert (north.linkedid, north.node, north.business) == (f"{raw}@north", "north", "North Salon")
        assert (south.linkedid, south.node, south.business) == (f"{raw}@south", "south", "South Salon")
        stored = {call.linkedid: call for call in await sites.store.list_calls()}
        assert sorted(stored) == sorted([f"{raw}@north", f"{raw}@south"])
        assert {key: call.node for key, call in stored.items()} == {f"{raw}@north": "north", f"{raw}@south": "south"}
        # One text per call, each from its business.
        texts = sorted(sms.text.split("!")[0] for sms in sites.gateway.sent)
        assert texts == [
            "Hi, this is North Salon. Sorry we missed your call",
            "Hi, this is South Salon. Sorry we missed your call",
        ]
        rows = await sites.text_back.messages.list_messages()
        assert sorted(row.linkedid for row in rows) == sorted(stored)


async def test_a_business_number_counts_only_on_its_own_server(tmp_path: Path) -> None:
    async with two_sites(tmp_path) as sites:
        await sites.play("south", ScenarioFactory(seed=3), NORTH_DID)  # North's number, dialled on the south PBX
        await sites.play("north", ScenarioFactory(seed=4), NORTH_DID)
        await wait_until(lambda: len(sites.calls) == 1, 5)
        await sites.settle()
        assert [(call.node, call.business) for call in sites.calls] == [("north", "North Salon")]
        assert len(sites.gateway.sent) == 1


async def test_one_server_down_is_shown_by_name_and_the_other_goes_on(tmp_path: Path) -> None:
    async with two_sites(tmp_path) as sites:
        gateways = {"sim": sites.gateway}
        assert service_health(sites.service, gateways).ok
        await sites.servers["south"].stop()
        south = next(link for link in sites.service.nodes if link.name == "south")
        await wait_until(lambda: not south.ami.connected, 5)
        health = service_health(sites.service, gateways)
        body = health.to_json()
        assert not health.ok
        assert body["nodes"]["south"]["ok"] is False and body["nodes"]["south"]["ami"]["connected"] is False
        assert body["nodes"]["north"]["ok"] is True and body["nodes"]["north"]["ami"]["connected"] is True
        await sites.play("north", ScenarioFactory(seed=5), NORTH_DID)
        await wait_until(lambda: len(sites.calls) == 1, 5)
        await sites.settle()
        assert sites.calls[0].node == "north" and len(sites.gateway.sent) == 1


async def test_each_servers_cel_is_read_on_its_own_and_its_calls_keyed_by_it(tmp_path: Path) -> None:
    """Neither AMI link is up: both servers' calls are found in their own CEL files, with identical Linkedids."""
    recorded = next(trace for trace in cel_traces() if trace.name.startswith("01-")).path / "master.db"
    cel_paths = {name: tmp_path / f"{name}.db" for name in ("north", "south")}
    for path in cel_paths.values():
        empty_cel_table(recorded, path)
    config = nodes_config({"north": 1, "south": 2}, tmp_path / "calls.sqlite3")
    nodes = tuple(
        dataclasses.replace(node, cel=CelConfig(sqlite=cel_paths[node.name], timezone="UTC", poll_s=0.1))
        for node in config.nodes
    )
    both = Business("Glow Salon", (f"+{NORTH_DID}",))  # on both servers: the trace's number
    config = dataclasses.replace(config, nodes=nodes, cel=nodes[0].cel, businesses=(both,))
    store = await CallStore.open(config.storage.path)
    calls: list[CallRecord] = []
    service = CallService(config, store, on_call=calls.append)
    task = asyncio.create_task(service.run())
    try:
        await wait_until(lambda: all(node.cel is not None and node.cel.sweeps > 0 for node in service.nodes), 15)
        for path in cel_paths.values():
            write_cel_rows_shifted(recorded, path, ended_ago_s=60)
        await wait_until(lambda: len(calls) == 2, 15)
        keys = sorted(call.linkedid for call in calls)
        raw = keys[0].removesuffix("@north")
        assert keys == [f"{raw}@north", f"{raw}@south"] and all(call.from_cel for call in calls)
        progress = [await store.cel_progress(node_key(f"sqlite:{path}#cel", name)) for name, path in cel_paths.items()]
        assert all(value is not None and value > 0 for value in progress)
    finally:
        await service.stop()
        await asyncio.wait_for(task, 10)
        await store.close()


async def test_a_nodes_cel_sees_the_store_through_its_own_keys(tmp_path: Path) -> None:
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    try:
        north, south = NodeCalls(store, "north"), NodeCalls(store, "south")
        await store.save_calls([_record("1733.7@north", "north")])
        assert await north.known_calls(["1733.7", "1733.8"]) == {"1733.7"}
        assert await south.known_calls(["1733.7"]) == set()
        await north.set_cel_progress("sqlite:/var/log/asterisk/master.db#cel", 40, 1.0)
        assert await north.cel_progress("sqlite:/var/log/asterisk/master.db#cel") == 40
        assert await south.cel_progress("sqlite:/var/log/asterisk/master.db#cel") is None
    finally:
        await store.close()


def _record(key: str, node: str) -> CallRecord:
    return dataclasses.replace(make_call(key, 2.0), node=node)
