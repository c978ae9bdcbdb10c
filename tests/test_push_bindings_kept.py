"""A sleeping softphone is still woken after CallBuddy restarts: it registers again only when pushed, so the push
binding its last registration carried is kept in the store and restored on start."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from callbuddy_pbx.asterisk.devices import Device, DeviceRegistry
from callbuddy_pbx.config import AsteriskConfig, Config, InboundConfig, StorageConfig
from callbuddy_pbx.config.pbx import PbxConfig, Phone
from callbuddy_pbx.config.push import ApnsConfig, PushConfig
from callbuddy_pbx.push.binding import Provider, PushBinding, binding_from_json, binding_json, parse_contact
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.routing.service import RoutingService
from callbuddy_pbx.service import push_bindings
from callbuddy_pbx.service.app import CallService
from callbuddy_pbx.service.push_bindings import BindingKeeper
from callbuddy_pbx.sim.ami_server import SimulatedAmiServer, SimulatedEndpoint
from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.ari_server import SimulatedAriServer
from callbuddy_pbx.sim.mobile_phones import MobileSoftphone
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.push_bindings import PushBindingStore
from tests.conftest import OpenStore
from tests.push_servers import BUNDLE_ID, KEY_ID, TEAM_ID, apns_key, apns_server, ca, client_tls, pem
from tests.test_check_live import recorded_pjsip
from tests.test_push_router import DID, MOBILE, PARAM, PHONES, TOKEN, WAIT_S, group, legs_to
from tests.test_router import sim
from tests.test_sim_ari import config_for
from tests.waiting import wait_until

__all__ = ["apns_key", "apns_server", "ca", "client_tls", "sim"]  # fixtures

APNS = PushBinding(Provider.APNS, "ab" * 32, app="com.example.salon", team_id="TEAM123456", sandbox=True)
FCM = PushBinding(Provider.FCM, "f" * 152, app="salon-app-1234")
LINPHONE = PushBinding(Provider.APNS, "cd" * 32, app="org.linphone.phone", sandbox=False, dialect="linphone")
CONTACT_1 = f"sip:103@198.51.100.7:5060;pn-provider=apns;pn-prid={'ab' * 32};pn-param={TEAM_ID}.{BUNDLE_ID}.voip"
CONTACT_2 = f"sip:103@198.51.100.7:5062;pn-provider=apns;pn-prid={'ef' * 32};pn-param={TEAM_ID}.{BUNDLE_ID}.voip"


@pytest.mark.parametrize("binding", [APNS, FCM, LINPHONE])
def test_a_kept_binding_reads_back_as_it_was(binding: PushBinding) -> None:
    assert binding_from_json(binding_json(binding)) == binding


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '{"provider": "carrier-pigeon", "token": "' + "ab" * 32 + '"}',
        '{"provider": "apns", "token": "not hex"}',
        '{"provider": "apns", "token": "' + "ab" * 32 + '", "app": 7}',
        '{"provider": "apns", "token": "' + "ab" * 32 + '", "sandbox": "yes"}',
        '{"provider": "apns", "token": "' + "ab" * 32 + '", "dialect": "made-up"}',
        '{"provider": "apns", "token": "' + "ab" * 5000 + '"}',
        "[" * 100_000,
    ],
)
def test_a_kept_binding_that_is_not_right_is_left_out(text: str) -> None:
    assert binding_from_json(text) is None


def mobile(service: RoutingService) -> Device | None:
    return service.registry.get(MOBILE)


def registry() -> DeviceRegistry:
    return DeviceRegistry({"PJSIP/100": "Ana desk", "PJSIP/103": "Ana mobile"}, push_phones=("PJSIP/104",))


def contact(uri: str, status: str = "Reachable") -> dict[str, str]:
    return {"Event": "ContactStatus", "EndpointName": "103", "URI": uri, "ContactStatus": status}


def test_the_registry_reports_each_change_of_a_binding_once() -> None:
    devices = registry()
    changes: list[tuple[str, PushBinding | None]] = []
    devices.on_binding = lambda name, binding: changes.append((name, binding))
    devices.feed(contact(CONTACT_1), 1.0)
    devices.feed(contact(CONTACT_1, "Removed"), 2.0)  # asleep: the binding stays, nothing to report
    devices.feed(contact(CONTACT_1), 3.0)  # the same registration again
    first = parse_contact(CONTACT_1)
    assert changes == [("PJSIP/103", first)]
    devices.feed(contact(CONTACT_2), 4.0)
    second = parse_contact(CONTACT_2)
    assert changes[-1] == ("PJSIP/103", second)
    assert second is not None and devices.end_binding("PJSIP/103", second)
    assert changes[-1] == ("PJSIP/103", None)
    assert len(changes) == 3


def test_restored_bindings_go_to_configured_phones_without_one() -> None:
    devices = registry()
    devices.feed(contact(CONTACT_2), 1.0)  # registered before the kept bindings were read: its own one wins
    reported: list[str] = []
    devices.on_binding = lambda name, binding: reported.append(name)
    restored = devices.restore_bindings({"PJSIP/103": APNS, "PJSIP/104": FCM, "PJSIP/999": LINPHONE})
    assert restored == 1
    assert devices.get("PJSIP/103").push_binding == parse_contact(CONTACT_2)  # type: ignore[union-attr]
    assert devices.get("PJSIP/104").push_binding == FCM  # type: ignore[union-attr]
    assert devices.get("PJSIP/999") is None  # no longer a phone of this config
    assert reported == []  # nothing new to keep


async def test_the_store_keeps_the_last_binding_per_device(open_store: OpenStore) -> None:
    store = await open_store()
    kept = PushBindingStore(store)
    await kept.save({"PJSIP/103": binding_json(APNS), "PJSIP/104": binding_json(FCM)}, 1.0)
    await kept.save({"PJSIP/103": binding_json(LINPHONE), "PJSIP/104": None}, 2.0)
    await store.close()
    store = await open_store()  # as after a restart
    assert await PushBindingStore(store).load() == {"PJSIP/103": binding_json(LINPHONE)}
    await store.close()


async def test_changes_wait_while_the_database_is_away_and_are_stored_after(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store()
    devices = registry()
    keeper = BindingKeeper(devices, store)
    monkeypatch.setattr(push_bindings, "RETRY_MIN_S", 0.05)
    saves = 0
    real_save = PushBindingStore.save

    async def away_twice(self: PushBindingStore, changes: dict[str, str | None], at: float) -> None:
        nonlocal saves
        saves += 1
        if saves <= 2:
            raise OSError("disk I/O error")  # what CallStore.is_outage calls the database being away
        await real_save(self, changes, at)

    monkeypatch.setattr(PushBindingStore, "save", away_twice)
    task = asyncio.create_task(keeper.run())
    devices.feed(contact(CONTACT_1), 1.0)
    await wait_until(lambda: saves >= 3 and keeper.waiting == 0, within=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await PushBindingStore(store).load() == {"PJSIP/103": binding_json(parse_contact(CONTACT_1))}  # type: ignore[arg-type]
    await store.close()


async def test_a_phone_asleep_since_before_a_restart_is_still_woken(
    sim: SimulatedAriServer,
    apns_server: ApnsServer,
    apns_key: ec.EllipticCurvePrivateKey,
    client_tls: ssl.SSLContext,
    open_store: OpenStore,
) -> None:
    apns_server.known_tokens.add(TOKEN)
    sim.wake_on(apns_server)
    push = PushConfig(apns=ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, pem(apns_key)), push_wait_s=WAIT_S)
    config = Config(
        pbx=PbxConfig(phones=PHONES, ring_groups=(group(("103",), ring_s=4),)), ari=config_for(sim), push=push
    )

    def senders(settings: PushConfig) -> PushSenders:
        return PushSenders.from_config(settings, verify=client_tls, apns_url=apns_server.url)

    async def running(store: CallStore) -> tuple[RoutingService, BindingKeeper, list[asyncio.Task[None]]]:
        devices = DeviceRegistry.from_config(config)
        keeper = BindingKeeper(devices, store)
        await keeper.restore()
        service = RoutingService(config, devices, push_factory=senders)
        tasks = [asyncio.create_task(service.run()), asyncio.create_task(keeper.run())]
        await wait_until(lambda: service.ready)
        return service, keeper, tasks

    async def stopped(service: RoutingService, tasks: list[asyncio.Task[None]]) -> None:
        await service.stop()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    store = await open_store()
    service, keeper, tasks = await running(store)
    phone = sim.mobile_softphone("103", TOKEN, PARAM, wake_after_s=0.05)
    sim.phone_answers_after("103", 0.05)
    await wait_until(lambda: keeper.waiting == 0 and mobile(service) is not None and mobile(service).push_binding)  # type: ignore[union-attr]
    sim.mobile_sleeps(phone)
    await wait_until(lambda: getattr(mobile(service), "registered", None) is False)
    await stopped(service, tasks)
    await store.close()

    store = await open_store()  # CallBuddy starts again; the phone sleeps on and has no contact at all
    service, keeper, tasks = await running(store)
    caller = sim.inbound_call(DID)
    await wait_until(lambda: bool(legs_to(sim, MOBILE)), within=5)
    assert [p.payload["call_id"] for p in apns_server.pushes if p.payload.get("type") == "call"] == [caller]
    await stopped(service, tasks)
    await store.close()


async def test_the_running_service_keeps_a_binding_and_restores_it_when_it_starts_again(tmp_path: Path) -> None:
    pjsip = recorded_pjsip()
    pjsip.endpoints.append(SimulatedEndpoint("103"))
    server = SimulatedAmiServer(secret="s3cret")
    server.pjsip = pjsip
    await server.start()
    config = Config(
        asterisk=AsteriskConfig(port=server.port, secret="s3cret", reconnect_min_s=0.05, reconnect_max_s=0.2),
        storage=StorageConfig(tmp_path / "calls.sqlite3"),
        inbound=InboundConfig(trunk_endpoints=("PJSIP/trunk",)),
        pbx=PbxConfig(phones=(Phone("100", "Ana desk", "Glow"), Phone("103", "Ana mobile", "Glow", push=True))),
    )

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[CallService]:
        store = await CallStore.open(config.storage.path)
        service = CallService(config, store)
        task = asyncio.create_task(service.run())
        try:
            await wait_until(lambda: service.devices.get("PJSIP/100") is not None)  # Asterisk was asked
            yield service
        finally:
            await service.stop()
            await asyncio.wait_for(task, 5)
            await store.close()

    try:
        async with running() as service:
            phone = server.mobile_softphone(MobileSoftphone("103", TOKEN, PARAM, wake_after_s=None))
            learnt = parse_contact(phone.uri)
            await wait_until(lambda: getattr(service.devices.get("PJSIP/103"), "push_binding", None) == learnt)
            server.mobile_sleeps(phone)
            await wait_until(lambda: service.push_bindings.waiting == 0)
        async with running() as service:  # the phone sleeps on: Asterisk lists no contact for it
            asleep = service.devices.get("PJSIP/103")
            assert asleep is not None and asleep.sleeping and asleep.push_binding == learnt
    finally:
        await server.stop()
