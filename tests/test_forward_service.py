"""Replies forwarded to the owner, run for real: a SQLite file, text-back with the simulated gateway, the outbox, the
forwarder, a real SMTP server (aiosmtpd) and a real webhook receiver (aiohttp) on loopback. Only the clock is the
test's, so retries can be brought forward without waiting for them.

What the owner sees: each reply in words once per target (by text through the outbox, by e-mail, by a signed
webhook), even when the gateway delivers it twice or the service restarts; never a STOP, START or HELP; a server
that is down delays a forward, never loses it; a definite refusal fails that forward alone."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from callbuddy_pbx.config import Business, Config, GatewayConfig, StorageConfig, TextBack
from callbuddy_pbx.config.forwarding import ForwardTarget, SmtpConfig
from callbuddy_pbx.recovery.forward_rules import forward_key, message_id
from callbuddy_pbx.recovery.keys import inbound_key
from callbuddy_pbx.recovery.textback import TextBackService
from callbuddy_pbx.service.forwards import TROUBLE_AFTER_S, ReplyForwarder
from callbuddy_pbx.service.supervisor import Supervisor
from callbuddy_pbx.sms.simulated import SimulatedGateway
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.forwards import ForwardResult, ForwardStore
from tests.forward_peers import Hook, Mailbox
from tests.waiting import wait_until

JANE = "+15557654321"
GLOW_LINE = "+15550001000"
BOLT_LINE = "+15550002000"
OWNER_MOBILE = "+15550109999"
OWNER_MAIL = "owner@glow.example"
BOLT_MAIL = "boss@bolt.example"
FROM = "callbuddy@glow.example"
SECRET = "whsec-glow-0123456789"
GATEWAY = "sim"


@dataclass
class Clock:
    now: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    db: Path
    store: CallStore
    text_back: TextBackService
    gateway: SimulatedGateway
    clock: Clock
    mailbox: Mailbox
    hook: Hook
    config: Config
    forwarder: ReplyForwarder | None = None
    _task: asyncio.Task[None] | None = None

    async def reply(self, text: str, *, to: str = GLOW_LINE, sender: str = JANE, sid: str | None = None) -> None:
        await self.gateway.receive(sender, to, text, sid)

    def start_forwarder(self, sweep_s: float = 0.05) -> ReplyForwarder:
        self.forwarder = ReplyForwarder(self.config, self.store, self.text_back, clock=self.clock, sweep_s=sweep_s)
        self._task = asyncio.create_task(self.forwarder.run())
        return self.forwarder

    async def stop_forwarder(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def later(self, seconds: float) -> None:
        """The test's clock moves on, and the forwarder looks at once (as its sweep would, a moment later)."""
        self.clock.now += seconds
        if self.forwarder is not None:
            self.forwarder.wake()

    def rows(self) -> list[tuple[str, str, str, str, int, str | None]]:
        """(business, channel, target, state, attempts, last_error) of every forward, read from the file."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    "SELECT business, channel, target, state, attempts, last_error FROM reply_forwards ORDER BY id"
                )
            ]

    def states(self) -> list[str]:
        return [row[3] for row in self.rows()]

    def texts(self, kind: str = "forward") -> list[tuple[str, str | None, str, str, str, str]]:
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    "SELECT key, business, to_number, sender, body, state FROM messages WHERE kind = ? ORDER BY id",
                    (kind,),
                )
            ]

    async def quiet(self, seconds: float = 0.3) -> None:
        """Time for a wrong second send (the forwarder sweeps every 0.05 s here)."""
        await asyncio.sleep(seconds)


def salon(*targets: ForwardTarget) -> Business:
    return Business(
        name="Glow Salon",
        numbers=(GLOW_LINE,),
        timezone="America/New_York",
        booking_url="https://glow.example/book",
        text_back=TextBack(gateway=GATEWAY),
        forward_to=targets,
    )


def barber(*targets: ForwardTarget) -> Business:
    return Business(
        name="Bolt Barbers",
        numbers=(BOLT_LINE,),
        timezone="America/New_York",
        text_back=TextBack(gateway=GATEWAY, enabled=False),
        forward_to=targets,
    )


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path,
    *businesses: Business,
    forwarding: bool = True,
    mailbox: Mailbox | None = None,
    hook: Hook | None = None,
    hooked: Callable[[str], tuple[Business, ...]] | None = None,
) -> AsyncIterator[Rig]:
    """Everything running on tmp_path/calls.sqlite3; the SMTP server and webhook are started here unless given
    (running) by the test, which then keeps them across two rigs (a restart). `hooked`: the businesses, made from
    the webhook's URL (known once it listens)."""
    db = tmp_path / "calls.sqlite3"
    own_peers = mailbox is None
    mailbox = mailbox or Mailbox(refuse=frozenset({"gone@glow.example"}))
    hook = hook or Hook()
    if own_peers:
        await mailbox.start()
        await hook.start()
    if hooked is not None:
        businesses = hooked(hook.url)
    config = Config(
        businesses=businesses or (salon(ForwardTarget("email", OWNER_MAIL)),),
        gateways=(GatewayConfig(name=GATEWAY, kind="simulated", rate_per_s=0),),
        storage=StorageConfig(db),
        smtp=SmtpConfig("127.0.0.1", FROM, mailbox.port, "none", timeout_s=5.0),
    )
    store = await CallStore.open(db)
    gateway = SimulatedGateway(GATEWAY, receipt_delay_s=-1)
    clock = Clock()
    text_back = TextBackService(config, store, {GATEWAY: gateway}, clock=clock)
    await text_back.start()
    outbox = asyncio.create_task(text_back.outbox.run())
    running = Rig(db, store, text_back, gateway, clock, mailbox, hook, config)
    if forwarding:
        running.start_forwarder()
    try:
        yield running
    finally:
        await running.stop_forwarder()
        outbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outbox
        await text_back.close()
        await store.close()
        if own_peers:
            await mailbox.stop()
            await hook.stop()


def key_of(business: str, sid: str, target: ForwardTarget) -> str:
    """The forward's key as the test derives it: the reply's identity (the gateway's id) and the target."""
    return forward_key(business, GATEWAY, inbound_key(sid, "", "", "", 0.0), target)


# -- by text ------------------------------------------------------------------------------------------------------


async def test_a_reply_is_texted_to_the_owners_mobile_once_through_the_outbox(tmp_path: Path) -> None:
    mobile = ForwardTarget("sms", OWNER_MOBILE)
    async with rig(tmp_path, salon(mobile)) as r:
        await r.reply("Can I come at 3?", sid="SM1")
        await r.reply("Can I come at 3?", sid="SM1")  # the gateway delivers it again
        await wait_until(lambda: len(r.gateway.sent) == 1)
        await r.quiet()
        assert [(sms.to, sms.sender, sms.text) for sms in r.gateway.sent] == [
            (OWNER_MOBILE, GLOW_LINE, f"Reply from {JANE}: Can I come at 3?")
        ]
        key = key_of("Glow Salon", "SM1", mobile)
        assert r.gateway.sent[0].key == key
        # An outbox row of its own kind, of no business: not a conversation with the owner's number.
        assert r.texts() == [(key, None, OWNER_MOBILE, GLOW_LINE, f"Reply from {JANE}: Can I come at 3?", "sent")]
        assert r.rows() == [("Glow Salon", "sms", OWNER_MOBILE, "sent", 1, None)]


async def test_the_same_reply_without_a_gateway_id_delivered_twice_is_forwarded_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.reply("Running 10 min late")
        r.clock.now += 5  # a second delivery a few seconds later, as an SMSC's retry
        await r.reply("Running 10 min late")
        await wait_until(lambda: len(r.mailbox.messages) == 1)
        await r.quiet()
        assert len(r.mailbox.messages) == 1 and r.states() == ["sent"]
        await r.reply("Running 10 min late, sorry")  # other words: another reply, another forward
        await wait_until(lambda: len(r.mailbox.messages) == 2)


# -- by e-mail ----------------------------------------------------------------------------------------------------


async def test_an_email_reaches_the_smtp_server_with_a_message_id_made_from_the_reply(tmp_path: Path) -> None:
    target = ForwardTarget("email", OWNER_MAIL)
    async with rig(tmp_path, salon(target)) as r:
        await r.reply("Can I come at 3?", sid="SM42")
        await wait_until(lambda: len(r.mailbox.messages) == 1)
        message = r.mailbox.messages[0]
        assert r.mailbox.recipients == [[OWNER_MAIL]]
        assert (message["From"], message["To"]) == (FROM, OWNER_MAIL)
        assert message["Subject"] == f"Reply from {JANE} to Glow Salon"
        assert message["Message-ID"] == message_id(key_of("Glow Salon", "SM42", target), FROM)
        assert message["Message-ID"].endswith("@glow.example>")
        assert message["Auto-Submitted"] == "auto-generated"
        body = message.get_content()
        assert f"{JANE} replied to Glow Salon ({GLOW_LINE})" in body
        assert "Can I come at 3?" in body
        await wait_until(lambda: r.states() == ["sent"])
        assert r.rows() == [("Glow Salon", "email", OWNER_MAIL, "sent", 1, None)]


async def test_a_stored_reply_wakes_the_forwarder_at_once(tmp_path: Path) -> None:
    async with rig(tmp_path, forwarding=False) as r:
        forwarder = r.start_forwarder(sweep_s=3600.0)  # no sweep will come: only the wake-up can send it
        await wait_until(lambda: forwarder.passes == 1)
        await r.reply("Can I come at 3?")
        await wait_until(lambda: len(r.mailbox.messages) == 1, within=2.0)


async def test_the_row_is_marked_sending_and_committed_before_the_message_leaves(tmp_path: Path) -> None:
    async with rig(tmp_path, forwarding=False) as r:
        seen: list[list[str]] = []
        r.mailbox.on_data = lambda _message: seen.append(r.states())  # read from the file by another connection
        r.start_forwarder()
        await r.reply("Can I come at 3?")
        await wait_until(lambda: r.states() == ["sent"])
        assert seen == [["sending"]]


async def test_smtp_down_defers_reports_trouble_then_sends_once_when_it_is_back(tmp_path: Path) -> None:
    supervisor = Supervisor()  # as the service runs it: health shows what the supervisor says is down
    async with rig(tmp_path, forwarding=False) as r:
        await r.mailbox.stop()
        forwarder = ReplyForwarder(r.config, r.store, r.text_back, clock=r.clock, sweep_s=0.05)
        forwarder.on_trouble = functools.partial(supervisor.report, "reply-forwards")
        r.forwarder = forwarder
        supervisor.start("reply-forwards", forwarder.run)
        await r.reply("Can I come at 3?")
        await wait_until(lambda: r.rows()[0][4] == 1)
        *_, state, attempts, error = r.rows()[0]
        assert (state, attempts) == ("pending", 1)
        assert error is not None and "not reachable" in error and "ConnectError" in error
        assert forwarder.trouble is None  # a moment's trouble is no news
        for _ in range(3):  # each try fails, and is tried again later: never dropped
            r.later(TROUBLE_AFTER_S)
            attempts_before = r.rows()[0][4]
            await wait_until(lambda before=attempts_before: r.rows()[0][4] == before + 1)
        assert r.states() == ["pending"]
        await wait_until(lambda: forwarder.trouble is not None)
        assert "1 forwarded replies waiting for their server" in (forwarder.trouble or "")
        assert "1 forwarded replies waiting for their server" in supervisor.down()["reply-forwards"]
        assert "not reachable" in supervisor.down()["reply-forwards"]
        await r.mailbox.start()  # back, on the same port
        r.later(3600)
        await wait_until(lambda: len(r.mailbox.messages) == 1)
        await wait_until(lambda: forwarder.trouble is None)
        await r.quiet()
        assert len(r.mailbox.messages) == 1
        assert r.rows() == [("Glow Salon", "email", OWNER_MAIL, "sent", 5, None)]
        assert supervisor.down() == {}
        await supervisor.stop()


async def test_a_refused_recipient_fails_its_forward_alone(tmp_path: Path) -> None:
    gone, owner = ForwardTarget("email", "gone@glow.example"), ForwardTarget("email", OWNER_MAIL)
    mobile = ForwardTarget("sms", OWNER_MOBILE)
    async with rig(tmp_path, salon(gone, owner, mobile)) as r:
        await r.reply("Can I come at 3?")
        await wait_until(lambda: "pending" not in r.states() and "sending" not in r.states())
        await wait_until(lambda: len(r.gateway.sent) == 1)
        rows = r.rows()
        assert [row[:5] for row in rows] == [
            ("Glow Salon", "email", "gone@glow.example", "failed", 1),
            ("Glow Salon", "email", OWNER_MAIL, "sent", 1),
            ("Glow Salon", "sms", OWNER_MOBILE, "sent", 1),
        ]
        assert rows[0][5] == "SMTP 550: 5.1.1 no such mailbox here"
        assert r.mailbox.recipients == [[OWNER_MAIL]]
        r.later(3600)  # a failed forward is never tried again
        await r.quiet()
        assert r.states()[0] == "failed" and len(r.mailbox.messages) == 1


# -- by webhook ---------------------------------------------------------------------------------------------------


async def test_a_webhook_gets_the_reply_signed_and_keyed_and_a_5xx_or_429_is_tried_again(tmp_path: Path) -> None:
    async with rig(tmp_path, forwarding=False, hooked=lambda url: (salon(ForwardTarget("webhook", url, SECRET)),)) as r:
        target = r.config.businesses[0].forward_to[0]
        r.hook.statuses.extend([503, 429])
        r.start_forwarder()
        await r.reply("Can I come at 3?", sid="SM7")
        await wait_until(lambda: len(r.hook.requests) == 1)
        await wait_until(lambda: r.rows()[0][3] == "pending")
        assert r.rows()[0][5] == "HTTP 503"
        r.later(600)
        await wait_until(lambda: len(r.hook.requests) == 2)
        r.later(600)
        await wait_until(lambda: r.states() == ["sent"])
        assert len(r.hook.requests) == 3
        key = key_of("Glow Salon", "SM7", target)
        for request in r.hook.requests:  # every try: the same bytes, signature and key
            expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
            assert request.headers["X-CallBuddy-Signature"] == f"sha256={expected}"
            assert request.headers["Idempotency-Key"] == key
            assert request.body == r.hook.requests[0].body
        payload = r.hook.requests[0].json()
        assert payload["business"] == "Glow Salon"
        assert payload["caller"] == JANE
        assert payload["text"] == "Can I come at 3?"
        assert payload["to"] == GLOW_LINE
        assert payload["forward_id"] == key
        assert isinstance(payload["reply_id"], int)
        assert payload["received_at"].endswith("+00:00")
        assert r.rows() == [("Glow Salon", "webhook", r.hook.url, "sent", 3, None)]


async def test_a_webhook_4xx_fails_that_forward_and_the_others_are_sent(tmp_path: Path) -> None:
    mail = ForwardTarget("email", OWNER_MAIL)
    async with rig(
        tmp_path, forwarding=False, hooked=lambda url: (salon(ForwardTarget("webhook", url, SECRET), mail),)
    ) as r:
        r.hook.statuses.append(404)
        r.start_forwarder()
        await r.reply("Can I come at 3?")
        await wait_until(lambda: sorted(r.states()) == ["failed", "sent"])
        assert [row[1:5] for row in r.rows()] == [
            ("webhook", r.hook.url, "failed", 1),
            ("email", OWNER_MAIL, "sent", 1),
        ]
        r.later(3600)
        await r.quiet()
        assert len(r.hook.requests) == 1


# -- what is forwarded, and to whom -------------------------------------------------------------------------------


async def test_stop_start_help_and_blank_replies_are_not_forwarded(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        for text in ("STOP", "Start", "help", "  ", "stop texting me", "UNSUBSCRIBE"):
            await r.reply(text)
            r.clock.now += 60
        await r.quiet()
        assert r.rows() == [] and r.mailbox.messages == []
        await r.reply("Thanks, see you at 3")
        await wait_until(lambda: len(r.mailbox.messages) == 1)
        assert r.mailbox.messages[0].get_content().count("Thanks, see you at 3") == 1


async def test_each_business_forwards_its_own_replies_to_its_own_targets(tmp_path: Path) -> None:
    glow = salon(ForwardTarget("email", OWNER_MAIL))
    bolt = barber(ForwardTarget("email", BOLT_MAIL))
    async with rig(tmp_path, glow, bolt) as r:
        await r.reply("Do you do fades?", to=BOLT_LINE)
        await wait_until(lambda: len(r.mailbox.messages) == 1)
        await r.reply("Hello?", to="+15550003000")  # a number of no business: stored, not forwarded
        await r.quiet()
        assert r.mailbox.recipients == [[BOLT_MAIL]]
        assert r.mailbox.messages[0]["Subject"] == f"Reply from {JANE} to Bolt Barbers"
        assert [row[:3] for row in r.rows()] == [("Bolt Barbers", "email", BOLT_MAIL)]


# -- across a restart ---------------------------------------------------------------------------------------------


async def test_a_reply_recorded_before_a_restart_is_forwarded_once_after_it(tmp_path: Path) -> None:
    mailbox, hook = Mailbox(), Hook()
    await mailbox.start()
    await hook.start()
    try:
        async with rig(tmp_path, forwarding=False, mailbox=mailbox, hook=hook) as r:
            await r.reply("Can I come at 3?", sid="SM9")  # stored with its forward; the service stops
            assert r.states() == ["pending"]
        async with rig(tmp_path, mailbox=mailbox, hook=hook) as r:
            await wait_until(lambda: len(mailbox.messages) == 1)
            await r.reply("Can I come at 3?", sid="SM9")  # and the gateway delivers it once more
            await r.quiet()
        async with rig(tmp_path, mailbox=mailbox, hook=hook) as r:  # and again: nothing left to send
            await r.quiet()
            assert r.states() == ["sent"]
        assert len(mailbox.messages) == 1
    finally:
        await mailbox.stop()
        await hook.stop()


async def test_a_send_cut_off_by_a_stop_is_sent_again_with_the_same_message_id(tmp_path: Path) -> None:
    """The server had the message when the service stopped, its answer never came: whether it left is unknown, and
    the forward is sent again rather than lost, under the same Message-ID, which is how the owner's mail sees a
    repeat."""
    async with rig(tmp_path, forwarding=False) as r:
        r.mailbox.stall.set()
        r.start_forwarder()
        await r.reply("Can I come at 3?")
        await wait_until(lambda: len(r.mailbox.messages) == 1)
        await r.stop_forwarder()
        assert r.states() == ["sending"]
        r.mailbox.stall.clear()
        forwarder = r.start_forwarder()
        await wait_until(lambda: r.states() == ["sent"])
        assert forwarder.stats["resumed"] == 1
        ids = [message["Message-ID"] for message in r.mailbox.messages]
        assert len(ids) == 2 and ids[0] == ids[1]


async def test_a_text_forward_resumed_after_a_crash_is_queued_in_the_outbox_once(tmp_path: Path) -> None:
    """The crash came after the forward's text was queued and before the forward was marked sent: sent again, it
    finds its outbox row already there (the outbox key is the forward's), and the owner gets one text."""
    async with rig(tmp_path, salon(ForwardTarget("sms", OWNER_MOBILE))) as r:
        await r.reply("Can I come at 3?")
        await wait_until(lambda: len(r.gateway.sent) == 1 and r.states() == ["sent"])
        await r.stop_forwarder()
        async with r.store.transaction() as conn:  # not a blocking sqlite3 write: the loop must go on meanwhile
            await conn.execute("UPDATE reply_forwards SET state = 'sending'")  # as the crash left it
        forwarder = r.start_forwarder()
        await wait_until(lambda: r.states() == ["sent"])
        await r.quiet()
        assert forwarder.stats["resumed"] == 1
        assert len(r.gateway.sent) == 1 and len(r.texts()) == 1


class SlowFinish(ForwardStore):
    """Records results only once the test lets it (`go`): a stop can come while a result is being recorded."""

    def __init__(self, store: CallStore) -> None:
        super().__init__(store)
        self.entered, self.go = asyncio.Event(), asyncio.Event()

    async def finish(self, results: Sequence[ForwardResult], now: float) -> None:
        self.entered.set()
        await self.go.wait()
        await super().finish(results, now)


async def test_a_stop_while_a_result_is_recorded_lets_the_write_finish(tmp_path: Path) -> None:
    async with rig(tmp_path, forwarding=False) as r:
        slow = SlowFinish(r.store)
        r.forwarder = ReplyForwarder(r.config, r.store, r.text_back, clock=r.clock, sweep_s=0.05, rows=slow)
        r._task = asyncio.create_task(r.forwarder.run())
        await r.reply("Can I come at 3?")
        await asyncio.wait_for(slow.entered.wait(), 5)
        stopping = asyncio.create_task(r.stop_forwarder())
        await asyncio.sleep(0.05)
        assert not stopping.done()  # the stop waits for the write under way
        slow.go.set()
        await asyncio.wait_for(stopping, 5)
        assert r.states() == ["sent"] and len(r.mailbox.messages) == 1  # recorded: not sent again on start
        async with r.store.transaction() as conn:  # and the shared connection is free for the other writers
            await conn.execute("SELECT 1")


# -- health ---------------------------------------------------------------------------------------------------------


async def test_the_supervisor_shows_a_tasks_reported_trouble_until_it_clears() -> None:
    supervisor = Supervisor()
    supervisor.start("reply-forwards", asyncio.Event().wait)
    try:
        supervisor.report("reply-forwards", "2 forwarded replies waiting for their server")
        assert supervisor.down() == {"reply-forwards": "2 forwarded replies waiting for their server"}
        supervisor.report("reply-forwards", None)
        assert supervisor.down() == {}
        supervisor.report("not-running", "x")  # only a supervised task reports
        assert supervisor.down() == {}
    finally:
        await supervisor.stop()


async def test_a_late_result_does_not_overwrite_a_row_another_run_took_back(tmp_path: Path) -> None:
    """A second process that started meanwhile (and resumed the row) owns it: the first one's answer is not
    recorded over it, so it cannot mark sent what the second is about to send, nor failed what it retries."""
    async with rig(tmp_path, forwarding=False) as r:
        await r.reply("Can I come at 3?")
        rows = ForwardStore(r.store)
        (due,) = await rows.due(r.clock.now, 10)
        assert await rows.claim([due.id], r.clock.now) == [due.id]
        assert await rows.claim([due.id], r.clock.now) == []  # claimed once
        assert await rows.resume_after_crash(r.clock.now) == 1  # the other run, starting
        await rows.finish([ForwardResult(due.id, "failed", 1, r.clock.now, "HTTP 404")], r.clock.now)
        assert r.states() == ["pending"]
