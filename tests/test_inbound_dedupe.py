"""A reply from a phone delivered twice by its gateway is stored, counted and acted on once.

Gateways deliver again routinely: a Twilio (or generic, or Kannel) webhook retried after a timeout, an SMPP deliver_sm
sent again after its deliver_sm_resp was lost. Each test drives the real path (the web server and the gateway's
webhook parser, or the SMPP gateway against the simulated SMSC) into the text-back service on a clock the test sets,
and looks at what is stored (inbound_messages), what the figures say (recovery_stats) and what is sent (the fake
Twilio API's messages, the SMSC's submits).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callbuddy_pbx.config import Business, Config, GatewayConfig, StorageConfig, TextBack, WebConfig
from callbuddy_pbx.recovery.keys import REPEAT_WINDOW_S
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.sim.http_gateway import FakeTwilioApi
from callbuddy_pbx.sim.smsc import SimulatedSmsc
from callbuddy_pbx.sms.gateway import SmsGateway
from callbuddy_pbx.sms.gateway_webhooks import WebhookGateway
from callbuddy_pbx.sms.http_generic import GenericHttpGateway
from callbuddy_pbx.sms.http_kannel import KannelGateway
from callbuddy_pbx.sms.http_twilio import TwilioGateway
from callbuddy_pbx.sms.smpp import SmppGateway, SmppTiming
from callbuddy_pbx.store import CallStore, schema
from callbuddy_pbx.store.messages import MessageStore
from callbuddy_pbx.store.stats import recovery_stats
from callbuddy_pbx.web.server import create_app, start_web
from tests.servers import free_port
from tests.waiting import wait_until_async

BUSINESS = "+15550001000"
CALLER = "+15557654321"
AUTH_TOKEN = "twilio-auth-token-9f8e7d6c5b4a"
WEBHOOK_TOKEN = "webhook-token-5e6f7a8b9c0d"
SYSTEM_ID, PASSWORD = "callbuddy", "pw7Xq!9z"
START = 1_800_000_000.0  # a whole second, and a multiple of the 45 s repeat window
HELP = "Glow Salon: missed-call texts. Book online: https://glow.example Reply STOP to opt out."
STOPPED = "Glow Salon: you will get no more texts from us. Reply START to undo."
FAST = SmppTiming(connect_timeout_s=2.0, response_timeout_s=2.0, reconnect_min_s=0.05, reconnect_max_s=0.4)


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class Desk:
    service: TextBackService
    store: CallStore
    clock: Clock
    base: str  # the web server, for webhooks

    def webhook(self, gateway: str) -> str:
        return f"{self.base}/webhooks/{gateway}/inbound"

    async def settled(self) -> None:
        """Every reply handled has had its answers sent (nothing queued or being sent)."""
        messages = self.service.messages

        async def idle() -> bool:
            return await messages.next_due_at() is None and not await messages.list_messages(state="sending", limit=1)

        await wait_until_async(idle)

    async def stored(self) -> list[tuple[str, str, str | None]]:
        """inbound_messages as (sender, body, message_id), read from the table itself."""
        async with self.store.connection.execute(
            "SELECT sender, body, message_id FROM inbound_messages ORDER BY id"
        ) as cursor:
            return [(row[0], row[1], row[2]) for row in await cursor.fetchall()]

    async def replies_figure(self) -> int:
        return (await recovery_stats(self.store, since=START - 3600, until=START + 3600)).replies

    async def answers(self) -> list[tuple[str, str, str]]:
        """The outbox's answers as (kind, to, state), oldest first."""
        rows = await self.service.messages.list_messages()
        return [(row.kind, row.to, row.state) for row in reversed(rows)]


@contextlib.asynccontextmanager
async def desk(tmp_path: Path, gateway_config: GatewayConfig, port: int, **gateways: SmsGateway) -> AsyncIterator[Desk]:
    """The text-back service with `gateways` (named), its outbox running, the web server on `port` for webhooks."""
    salon = Business(
        name="Glow Salon",
        numbers=(BUSINESS,),
        timezone="America/New_York",
        booking_url="https://glow.example",
        text_back=TextBack(gateway=gateway_config.name),
    )
    config = Config(
        businesses=(salon,),
        gateways=(dataclasses.replace(gateway_config, rate_per_s=0),),
        storage=StorageConfig(tmp_path / "calls.sqlite3"),
    )
    store = await CallStore.open(config.storage.path)
    clock = Clock()
    service = TextBackService(config, store, gateways, clock=clock)
    await service.start()
    outbox = asyncio.create_task(service.outbox.run())
    webhooks = {name: g for name, g in gateways.items() if isinstance(g, WebhookGateway)}
    runner = await start_web(create_app(webhook_gateways=webhooks), "127.0.0.1", port)
    try:
        yield Desk(service, store, clock, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
        outbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outbox
        await service.close()
        await store.close()


def web_config(port: int) -> WebConfig:
    return WebConfig(port=port, public_url=f"http://127.0.0.1:{port}", webhook_token=WEBHOOK_TOKEN)


# -- Twilio: a reply is its MessageSid --------------------------------------------------------------------------------


@dataclass
class TwilioDesk:
    desk: Desk
    api: FakeTwilioApi

    async def post(self, body: str, sid: str, sender: str = CALLER) -> None:
        """Twilio's inbound webhook, as it posts it (and posts it again, unchanged, when it retries)."""
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self.api.account_sid,
            "From": sender,
            "To": BUSINESS,
            "Body": body,
            "NumMedia": "0",
        }
        assert await self.api.post_signed(self.desk.webhook("twilio"), params) == 200

    def sent(self) -> list[tuple[str, str]]:
        return [(message.to, message.body) for message in self.api.messages]


@pytest.fixture
async def twilio(tmp_path: Path) -> AsyncIterator[TwilioDesk]:
    port = free_port()
    async with FakeTwilioApi(auth_token=AUTH_TOKEN) as api:
        config = GatewayConfig(
            name="twilio", kind="twilio", url=api.url, account_sid=api.account_sid, auth_token=AUTH_TOKEN
        )
        gateway = TwilioGateway(config, web_config(port), timeout_s=3.0)
        async with desk(tmp_path, config, port, twilio=gateway) as d:
            yield TwilioDesk(d, api)


async def test_a_twilio_stop_posted_twice_is_stored_counted_and_confirmed_once(twilio: TwilioDesk) -> None:
    d = twilio.desk
    await twilio.post("STOP", "SM0123456789abcdef0123456789abcdef")
    await d.settled()
    d.clock.now += 12  # Twilio's retry after our answer timed out on its side
    await twilio.post("STOP", "SM0123456789abcdef0123456789abcdef")
    await d.settled()
    assert await d.stored() == [(CALLER, "STOP", "SM0123456789abcdef0123456789abcdef")]
    assert await d.replies_figure() == 1
    assert await d.answers() == [("opt_out_confirmation", CALLER, "sent")]
    assert twilio.sent() == [(CALLER, STOPPED)]


async def test_a_stop_delivered_again_after_a_start_changes_nothing(twilio: TwilioDesk) -> None:
    d = twilio.desk
    await twilio.post("STOP", "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
    d.clock.now += 5
    await twilio.post("START", "SMcccccccccccccccccccccccccccccccc")  # she changed her mind
    d.clock.now += 15
    await twilio.post("STOP", "SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")  # Twilio's late retry of the first webhook
    await d.settled()
    assert not (await d.service.messages.facts(CALLER, "Glow Salon", 0.0)).opted_out
    assert twilio.sent() == [(CALLER, STOPPED)]
    assert [body for _, body, _ in await d.stored()] == ["STOP", "START"]


async def test_a_reply_whose_handling_failed_is_handled_in_full_when_delivered_again(
    twilio: TwilioDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply and its effects are one transaction: a failure keeps neither, so the retry is not a duplicate."""
    d = twilio.desk
    insert_texts = MessageStore._insert_texts
    failures = [RuntimeError("disk I/O error")]

    async def failing_once(*args: Any) -> int:
        if failures:
            raise failures.pop()
        return await insert_texts(*args)

    monkeypatch.setattr(MessageStore, "_insert_texts", staticmethod(failing_once))
    params = {"MessageSid": "SMdddddddddddddddddddddddddddddddd", "From": CALLER, "To": BUSINESS, "Body": "STOP"}
    assert await twilio.api.post_signed(d.webhook("twilio"), params) == 500  # Twilio will try again
    assert await d.stored() == [] and not (await d.service.messages.facts(CALLER, "Glow Salon", 0.0)).opted_out
    d.clock.now += 15
    await twilio.post("STOP", "SMdddddddddddddddddddddddddddddddd")
    await d.settled()
    assert await d.stored() == [(CALLER, "STOP", "SMdddddddddddddddddddddddddddddddd")]
    assert (await d.service.messages.facts(CALLER, "Glow Salon", 0.0)).opted_out
    assert twilio.sent() == [(CALLER, STOPPED)]


async def test_a_help_delivered_again_across_a_second_boundary_is_answered_once(twilio: TwilioDesk) -> None:
    d = twilio.desk
    d.clock.now = START + 0.8
    await twilio.post("HELP", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    d.clock.now = START + 1.3  # the retry lands in the next whole second
    await twilio.post("HELP", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    await d.settled()
    assert await d.answers() == [("help", CALLER, "sent")]
    assert twilio.sent() == [(CALLER, HELP)]
    assert await d.replies_figure() == 1


async def test_two_replies_alike_with_different_ids_are_both_stored_and_answered(twilio: TwilioDesk) -> None:
    d = twilio.desk
    await twilio.post("HELP", "SM11111111111111111111111111111111")
    await twilio.post("HELP", "SM22222222222222222222222222222222")  # the caller asked twice: two messages
    await twilio.post("Thanks", "SM33333333333333333333333333333333")
    await twilio.post("Thanks", "SM44444444444444444444444444444444")
    await d.settled()
    assert [(body, sid) for _, body, sid in await d.stored()] == [
        ("HELP", "SM11111111111111111111111111111111"),
        ("HELP", "SM22222222222222222222222222222222"),
        ("Thanks", "SM33333333333333333333333333333333"),
        ("Thanks", "SM44444444444444444444444444444444"),
    ]
    assert await d.replies_figure() == 4
    assert await d.answers() == [("help", CALLER, "sent")] * 2
    assert twilio.sent() == [(CALLER, HELP)] * 2


# -- SMPP: a text from a phone has no id; it is its sender, number, words and when it came ----------------------------


@dataclass
class SmppDesk:
    desk: Desk
    smsc: SimulatedSmsc

    def sent(self) -> list[tuple[str, str]]:
        return [(record.destination, record.text) for record in self.smsc.submits]

    async def deliver(self, text: str) -> None:
        """The SMSC delivers a text from the caller and waits for our deliver_sm_resp (so it is handled)."""
        assert await self.smsc.send_mo(CALLER, BUSINESS, text) == 0


@pytest.fixture
async def smpp(tmp_path: Path) -> AsyncIterator[SmppDesk]:
    smsc = SimulatedSmsc(system_id=SYSTEM_ID, password=PASSWORD, receipt_delay_s=None)
    await smsc.start()
    try:
        config = GatewayConfig(name="smsc", kind="smpp", port=smsc.port, system_id=SYSTEM_ID, password=PASSWORD)
        gateway = SmppGateway(config, FAST, default_region="US")
        async with desk(tmp_path, config, free_port(), smsc=gateway) as d:
            yield SmppDesk(d, smsc)
    finally:
        await smsc.stop()


async def test_an_smpp_stop_delivered_twice_is_stored_counted_and_confirmed_once(smpp: SmppDesk) -> None:
    d = smpp.desk
    await smpp.deliver("STOP")
    await d.settled()
    d.clock.now += 10  # the SMSC sends the deliver_sm again: its deliver_sm_resp was lost
    await smpp.deliver("STOP")
    await d.settled()
    assert await d.stored() == [(CALLER, "STOP", None)]
    assert await d.replies_figure() == 1
    assert smpp.sent() == [(CALLER, STOPPED)]


async def test_an_smpp_help_delivered_again_across_the_end_of_a_window_period_is_answered_once(
    smpp: SmppDesk,
) -> None:
    d = smpp.desk
    d.clock.now = START + 10 * REPEAT_WINDOW_S - 0.3  # just before a period's end: the retry comes just after it
    await smpp.deliver("HELP")
    d.clock.now += 1.0
    await smpp.deliver("HELP")
    await d.settled()
    assert smpp.sent() == [(CALLER, HELP)]
    assert await d.replies_figure() == 1


async def test_an_smpp_text_repeated_after_the_window_is_a_new_reply(smpp: SmppDesk) -> None:
    d = smpp.desk
    await smpp.deliver("HELP")
    await d.settled()
    d.clock.now += 60  # a minute later the caller asks again: a new text, not the gateway's retry
    await smpp.deliver("HELP")
    await d.settled()
    assert smpp.sent() == [(CALLER, HELP)] * 2
    assert await d.replies_figure() == 2


# -- the generic webhook (`id` when the provider gives one) and Kannel (%I) ------------------------------------------


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[tuple[Desk, aiohttp.ClientSession]]:
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}"  # no answer is sent in these tests: free text asks for none
    generic = GatewayConfig(name="acme", kind="generic", url=f"{nowhere}/send", body=(("to", "{to}"),))
    kannel = GatewayConfig(name="kannel", kind="kannel", url=f"{nowhere}/cgi-bin/sendsms", username="u", password="p")
    gateways: dict[str, SmsGateway] = {
        "acme": GenericHttpGateway(generic, web_config(port), timeout_s=1.0),
        "kannel": KannelGateway(kannel, web_config(port), timeout_s=1.0),
    }
    async with desk(tmp_path, generic, port, **gateways) as d, aiohttp.ClientSession() as client:
        yield d, client


async def post_generic(d: Desk, client: aiohttp.ClientSession, fields: dict[str, str]) -> None:
    headers = {"X-Webhook-Token": WEBHOOK_TOKEN}
    async with client.post(d.webhook("acme"), json=fields, headers=headers) as answer:
        assert answer.status == 200


async def get_kannel(d: Desk, client: aiohttp.ClientSession, fields: dict[str, str]) -> None:
    async with client.get(d.webhook("kannel"), params={"token": WEBHOOK_TOKEN, **fields}) as answer:
        assert answer.status == 200


async def test_generic_and_kannel_replies_delivered_twice_are_stored_once(
    http: tuple[Desk, aiohttp.ClientSession],
) -> None:
    d, client = http
    with_id = {"from": CALLER, "to": BUSINESS, "text": "See you at 3", "id": "acme-7"}
    kannel = {"from": CALLER, "to": BUSINESS, "text": "See you at 3", "id": "51b3f798-e2d9-489a-bddc-ae3f47f5fd8c"}
    without_id = {"from": "+15551112222", "to": BUSINESS, "text": "Running late"}
    for _ in range(2):
        await post_generic(d, client, with_id)
        await get_kannel(d, client, kannel)
        await post_generic(d, client, without_id)
        d.clock.now += 5
    await post_generic(d, client, {**with_id, "id": "acme-8"})  # the same words again, another message
    assert await d.stored() == [
        (CALLER, "See you at 3", "acme-7"),
        (CALLER, "See you at 3", "51b3f798-e2d9-489a-bddc-ae3f47f5fd8c"),  # another gateway: another message
        ("+15551112222", "Running late", None),
        (CALLER, "See you at 3", "acme-8"),
    ]
    assert await d.replies_figure() == 4


# -- the upgrade -----------------------------------------------------------------------------------------------------


def version_6_database(path: Path, rows: Sequence[tuple[str, str, str, str, float]]) -> None:
    """A database as the previous release left it, with duplicated replies already stored."""
    conn = sqlite3.connect(path)
    try:
        for script in schema.MIGRATIONS[:6]:
            conn.executescript(script)
        conn.executemany(
            "INSERT INTO inbound_messages (gateway, sender, to_number, business, body, keyword, received_at)"
            " VALUES (?, ?, ?, NULL, ?, 'other', ?)",
            rows,
        )
        conn.execute("PRAGMA user_version = 6")
        conn.commit()
    finally:
        conn.close()


async def test_the_upgrade_keeps_duplicates_already_stored_and_dedupes_from_then_on(tmp_path: Path) -> None:
    db = tmp_path / "calls.sqlite3"
    old = ("twilio", CALLER, BUSINESS, "STOP", START - 60)
    version_6_database(db, [old, old, old])
    store = await CallStore.open(db)  # migrates: a unique index over these rows would fail here
    try:
        messages = MessageStore(store)
        for _ in range(2):
            await messages.record_inbound(
                "twilio", CALLER, BUSINESS, None, "STOP", "opt_out", START, key="id:SM1", message_id="SM1"
            )
        async with store.connection.execute("SELECT COUNT(*), COUNT(dedupe_key) FROM inbound_messages") as cursor:
            assert tuple(await cursor.fetchone() or ()) == (4, 1)  # the old three kept, the new one once
        async with store.connection.execute("PRAGMA user_version") as cursor:
            assert tuple(await cursor.fetchone() or ()) == (schema.SCHEMA_VERSION,)
    finally:
        await store.close()
