"""SmppGateway against SimulatedSmsc (smpp34's server behind a fault-injecting front door) over loopback TCP."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

import pytest

from callbuddy_pbx.config import GatewayConfig
from callbuddy_pbx.message_text import segments
from callbuddy_pbx.sim.smsc import ReceiptFormat, SimulatedSmsc
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState, InboundSms, OutgoingSms, SendStatus
from callbuddy_pbx.sms.smpp import SmppGateway, SmppTiming
from callbuddy_pbx.sms.smpp_receipts import parse_receipt

SYSTEM_ID = "callbuddy"
PASSWORD = "pw7Xq!9z"  # 8 characters: SMPP 3.4's limit
CALLER = "+15557654321"
BUSINESS = "+15550001000"
FAST = SmppTiming(
    connect_timeout_s=2.0,
    response_timeout_s=2.0,
    reconnect_min_s=0.05,
    reconnect_max_s=0.4,
    stable_s=5.0,
    throttle_pause_s=0.2,
    queue_full_pause_s=0.3,
)


@dataclass
class Recorder:
    reports: list[DeliveryReport] = field(default_factory=list)
    inbound: list[InboundSms] = field(default_factory=list)
    failures: int = 0  # the next reports the application fails to store

    async def on_report(self, report: DeliveryReport) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked")
        self.reports.append(report)

    async def on_inbound(self, sms: InboundSms) -> None:
        self.inbound.append(sms)


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def sms(text: str = "Sorry we missed your call!", to: str = CALLER) -> OutgoingSms:
    return OutgoingSms(key="call-1", to=to, sender=BUSINESS, text=text)


Connect = Callable[..., Awaitable[tuple[SmppGateway, Recorder]]]


@pytest.fixture
async def smsc() -> AsyncIterator[SimulatedSmsc]:
    server = SimulatedSmsc(system_id=SYSTEM_ID, password=PASSWORD, receipt_delay_s=None)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def connect(smsc: SimulatedSmsc) -> AsyncIterator[Connect]:
    gateways: list[SmppGateway] = []

    async def make(
        timing: SmppTiming = FAST, region: str | None = None, **overrides: object
    ) -> tuple[SmppGateway, Recorder]:
        config = GatewayConfig(
            name="smsc", kind="smpp", port=smsc.port, system_id=SYSTEM_ID, password=PASSWORD, window=10
        )
        gateway = SmppGateway(replace(config, **overrides), timing, default_region=region)  # type: ignore[arg-type]
        gateways.append(gateway)
        recorder = Recorder()
        await gateway.start(recorder.on_report, recorder.on_inbound)
        return gateway, recorder

    yield make
    for gateway in gateways:
        await gateway.close()


def accepted_binds(smsc: SimulatedSmsc) -> int:
    return sum(attempt.accepted for attempt in smsc.binds)


# -- binding and sending --------------------------------------------------------------------------------------------


async def test_send_is_accepted_and_reaches_the_smsc_once(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()
    assert gateway.bound

    result = await gateway.send(sms("Hi, this is Bella's Salon. Sorry we missed your call! Reply STOP to opt out."))

    assert result.status is SendStatus.ACCEPTED and result.message_id
    [record] = smsc.submits
    assert record.message_id == result.message_id
    assert record.text == "Hi, this is Bella's Salon. Sorry we missed your call! Reply STOP to opt out."
    assert (record.destination, record.source, record.data_coding, record.part) == (CALLER, BUSINESS, 0, None)
    assert record.registered_delivery & 0x01, "a delivery receipt must be requested"


async def test_wrong_password_is_a_clear_error_retried_with_growing_pauses(
    smsc: SimulatedSmsc, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway, _ = await connect(password="wrong-pw")

    result = await gateway.send(sms())
    await eventually(lambda: len(smsc.binds) >= 5)  # the 4th wait reaches the cap

    assert not gateway.bound
    assert result.status is SendStatus.DEFERRED and "bind rejected" in (result.error or "")
    assert "ESME_RINVPASWD" in (gateway.last_error or "")
    attempts = [bind.at for bind in smsc.binds[:5]]
    assert not any(bind.accepted for bind in smsc.binds)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # The k-th wait is min(cap, reconnect_min_s x 2**k) x 0.8-1.0: lower bounds a busy machine can only exceed (less
    # 1 ms of timer rounding). 0.32 s for the last gap, where waits that do not grow would give some 0.05 s.
    floors = [0.8 * min(FAST.reconnect_max_s, FAST.reconnect_min_s * 2**k) for k in range(len(gaps))]
    assert all(gap >= floor - 0.001 for gap, floor in zip(gaps, floors, strict=True)), f"backoff too short: {gaps}"
    assert any(r.levelno == logging.ERROR and "Invalid Password" in r.getMessage() for r in caplog.records)
    assert "wrong-pw" not in caplog.text and "wrong-pw" not in (result.error or "")


async def test_window_of_ten_500_sends_each_accepted_exactly_once(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect(window=10)

    results = await asyncio.gather(*(gateway.send(sms(f"text {n}")) for n in range(500)))

    assert all(result.accepted for result in results)
    assert len({result.message_id for result in results}) == 500
    assert sorted(record.text for record in smsc.submits) == sorted(f"text {n}" for n in range(500))
    assert 1 < smsc.max_in_flight <= 10


# -- long texts -----------------------------------------------------------------------------------------------------


async def test_200_character_gsm_text_arrives_as_two_joined_parts(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()
    text = (
        "Sorry we missed your call at Bella's Salon! Book online any time: https://bella.example/book @ 10% off. " * 2
    )[:200]

    result = await gateway.send(sms(text))

    assert result.accepted
    [message] = smsc.messages()
    assert message.complete and message.text == text and message.data_coding == 0
    assert len(message.parts) == 2 and all(part.esm_class & 0x40 for part in message.parts)
    assert result.message_id == message.parts[0].message_id


async def test_text_with_an_emoji_goes_as_ucs2_parts_without_a_broken_character(
    smsc: SimulatedSmsc, connect: Connect
) -> None:
    gateway, _ = await connect()
    text = "x" * 66 + "😀" + "y" * 33  # 100 characters; the emoji straddles smpplib's 134-byte cut

    result = await gateway.send(sms(text))

    assert result.accepted
    [message] = smsc.messages()
    assert message.complete and message.text == text and message.data_coding == 8
    assert len(message.parts) == 2
    assert all("\ufffd" not in part.text for part in message.parts), "a surrogate pair was split between parts"


@pytest.mark.parametrize("escaped", ["€", "{", "|"])
async def test_escaped_character_at_a_part_boundary_is_not_split(
    smsc: SimulatedSmsc, connect: Connect, escaped: str
) -> None:
    gateway, _ = await connect()
    text = "a" * 152 + escaped + "b" * 20  # the escape pair would take bytes 153 and 154: across smpplib's cut

    assert (await gateway.send(sms(text))).accepted

    [message] = smsc.messages()
    assert message.text == text and message.data_coding == 0
    assert [part.text for part in message.parts] == ["a" * 152, escaped + "b" * 20]
    assert all(not part.short_message.endswith(b"\x1b") for part in message.parts)


@pytest.mark.parametrize(
    ("text", "coding"),
    [
        ("Use code `SPRING`", 8),  # smpplib's GSM table would send the backtick as '§'
        ("§ 4 of our terms", 0),  # smpplib's GSM table lacks '§' and would send UCS-2
        ("Δ" * 307, 0),
        ("€" * 81, 0),
        ("😀" * 36, 8),
        ("Ça coûte 10 €, à bientôt! " * 7, 8),
    ],
)
async def test_text_arrives_intact_in_as_many_parts_as_billed(
    smsc: SimulatedSmsc, connect: Connect, text: str, coding: int
) -> None:
    gateway, _ = await connect()

    assert (await gateway.send(sms(text))).accepted

    [message] = smsc.messages()
    assert (message.text, message.data_coding) == (text, coding)
    assert len(message.parts) == segments(text), "the parts sent differ from the segments shown to the user"


# -- SMSC answers ---------------------------------------------------------------------------------------------------


async def test_throttled_is_deferred_then_sending_pauses_then_succeeds(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()
    smsc.throttle(1)

    throttled = await gateway.send(sms("one"))
    during_pause = await gateway.send(sms("two"))
    assert len(smsc.submits) == 1, "nothing reaches the SMSC during the pause"
    await asyncio.sleep(throttled.retry_after_s or 0)
    after = await gateway.send(sms("three"))

    assert throttled.status is SendStatus.DEFERRED and "ESME_RTHROTTLED" in (throttled.error or "")
    assert throttled.throttled and throttled.retry_after_s == pytest.approx(FAST.throttle_pause_s)
    assert during_pause.status is SendStatus.DEFERRED and during_pause.throttled
    assert 0 < (during_pause.retry_after_s or 0) <= FAST.throttle_pause_s
    assert after.accepted
    assert [record.text for record in smsc.accepted] == ["three"]
    assert accepted_binds(smsc) == 1, "an error response must not end the session"


async def test_queue_full_is_deferred_with_a_pause(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()
    smsc.queue_full(1)

    result = await gateway.send(sms())

    assert result.status is SendStatus.DEFERRED and result.throttled and "ESME_RMSGQFUL" in (result.error or "")
    assert result.retry_after_s == pytest.approx(FAST.queue_full_pause_s)
    await asyncio.sleep(FAST.queue_full_pause_s)
    assert (await gateway.send(sms())).accepted


async def test_invalid_destination_is_rejected_and_logged_masked(
    smsc: SimulatedSmsc, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _ = await connect()
    smsc.reject_destination("+15559990000")

    rejected = await gateway.send(sms(to="+15559990000"))
    other = await gateway.send(sms())

    assert rejected.status is SendStatus.REJECTED and "ESME_RINVDSTADR" in (rejected.error or "")
    assert other.accepted, "a bad number must not pause the gateway"
    assert "+155******00" in caplog.text and "15559990000" not in caplog.text


async def test_long_text_whose_second_part_is_throttled_waits_and_completes(
    smsc: SimulatedSmsc, connect: Connect
) -> None:
    gateway, _ = await connect()
    text = "Thanks for calling! " * 10  # 200 characters, two parts
    smsc.on_submit = lambda record: smsc.throttle(1) if record.part and record.part[2] == 1 else None

    result = await gateway.send(sms(text))

    assert result.accepted
    [message] = smsc.messages()
    assert message.complete and message.text == text
    assert len(smsc.submits) == 3, "part 1, part 2 throttled, part 2 again"


# -- link trouble ---------------------------------------------------------------------------------------------------


async def test_a_dropped_link_defers_then_binds_again_and_sends(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()
    assert (await gateway.send(sms("before"))).accepted

    await smsc.drop_connections(refuse_s=0.5)
    await eventually(lambda: not gateway.bound)
    during = await gateway.send(sms("during"))
    await eventually(lambda: gateway.bound)
    after = await gateway.send(sms("after"))

    assert during.status is SendStatus.DEFERRED and not during.throttled  # never written: nothing to doubt
    assert after.accepted
    assert [record.text for record in smsc.accepted] == ["before", "after"]
    assert accepted_binds(smsc) == 2


async def test_a_submit_cut_off_before_its_answer_is_unknown(smsc: SimulatedSmsc, connect: Connect) -> None:
    """The SMSC took the text and the link dropped before submit_sm_resp: the gateway cannot know; it says so."""
    gateway, _ = await connect()
    smsc.cut_after_accept(1)

    cut = await gateway.send(sms("cut off"))
    await eventually(lambda: gateway.bound)
    after = await gateway.send(sms("after"))

    assert cut.status is SendStatus.UNKNOWN and cut.message_id is None
    assert after.accepted
    assert [record.text for record in smsc.accepted] == ["cut off", "after"]  # the SMSC has both, once each


async def test_a_dropped_bind_is_back_within_two_seconds_of_the_smsc(smsc: SimulatedSmsc, connect: Connect) -> None:
    """With the default timings, however long the SMSC was away: the back-off is capped at 2 s."""
    gateway, _ = await connect(timing=SmppTiming(reconnect_min_s=0.25))  # the default cap, reached sooner
    await smsc.drop_connections(refuse_s=3.8)  # an uncapped back-off (0.25 s doubling) comes back 2.4-4 s late
    await eventually(lambda: not gateway.bound)
    back = time.monotonic() + 3.8
    await eventually(lambda: gateway.bound, timeout=15.0)
    assert time.monotonic() - back <= 2.5  # the promise: back within 2 s of the SMSC (0.5 s for a busy machine)


async def test_unanswered_enquire_link_drops_the_link_and_binds_again(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect(enquire_link_s=0.2)
    smsc.answer_enquire_link = False

    await eventually(lambda: accepted_binds(smsc) >= 2)
    smsc.answer_enquire_link = True
    await eventually(lambda: gateway.bound)

    assert smsc.enquire_links >= 1
    assert (await gateway.send(sms())).accepted


async def test_idle_link_with_answered_enquire_link_stays_up(smsc: SimulatedSmsc, connect: Connect) -> None:
    idle_s = 0.1
    gateway, _ = await connect(enquire_link_s=idle_s)

    await eventually(lambda: smsc.enquire_links >= 3)
    kept_up = time.monotonic() - smsc.binds[0].at

    assert gateway.bound and accepted_binds(smsc) == 1  # across three answered enquire_links
    assert kept_up >= 3 * idle_s - 0.001  # each after idle_s of silence, not at once: a lower bound load cannot beat


# -- receipts -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "stat", "options", "state"),
    [
        ("text", "DELIVRD", {}, DeliveryState.DELIVERED),
        ("tlv", "DELIVRD", {}, DeliveryState.DELIVERED),
        ("both", "UNDELIV", {"err": "001"}, DeliveryState.FAILED),
        ("data_sm", "EXPIRED", {}, DeliveryState.EXPIRED),
        ("text", "REJECTD", {}, DeliveryState.FAILED),
        ("text", "ACCEPTD", {}, DeliveryState.PENDING),
        ("text", "delivrd", {"key_case": "upper"}, DeliveryState.DELIVERED),
        ("text", "Expired", {"key_case": "title"}, DeliveryState.EXPIRED),
        (
            "text",
            "DELIVRD",
            {"omit": ("sub", "dlvrd", "submit date", "done date", "err", "text")},
            DeliveryState.DELIVERED,
        ),
    ],
)
async def test_receipt_forms_reach_on_report(
    smsc: SimulatedSmsc,
    connect: Connect,
    fmt: ReceiptFormat,
    stat: str,
    options: dict[str, object],
    state: DeliveryState,
) -> None:
    gateway, recorder = await connect()
    result = await gateway.send(sms("stat:DELIVRD id:999 is in the text on purpose"))
    assert result.message_id

    status = await smsc.deliver_receipt(result.message_id, stat, fmt=fmt, **options)  # type: ignore[arg-type]
    await eventually(lambda: bool(recorder.reports))

    assert status == 0, "every deliver_sm/data_sm is answered with success"
    [report] = recorder.reports
    assert (report.message_id, report.state) == (result.message_id, state)
    if "err" in options:
        assert report.error_code == options["err"]


@pytest.mark.parametrize(
    ("text", "tlv_id", "tlv_state", "expected"),
    [
        # stat missing: "stat:" in the free text field must not count
        ("id:77 sub:001 dlvrd:000 text:stat:DELIVRD", None, None, ("77", DeliveryState.PENDING)),
        # the typed TLVs win over a text that says otherwise
        ("id:77 stat:ENROUTE err:000", "77", 2, ("77", DeliveryState.DELIVERED)),
        ("ID:0a1B STAT:undeliv ERR:021", None, None, ("0a1B", DeliveryState.FAILED)),
        ("Id: 5 Stat: DELETED", None, None, ("5", DeliveryState.FAILED)),
        ("", "abc-1", 3, ("abc-1", DeliveryState.EXPIRED)),
        ("id:9 stat:SOMETHING", None, None, ("9", DeliveryState.PENDING)),
    ],
)
def test_receipt_parsing_tolerates_what_smscs_send(
    text: str, tlv_id: str | None, tlv_state: int | None, expected: tuple[str, DeliveryState]
) -> None:
    receipt = parse_receipt(text, tlv_id, tlv_state)

    assert receipt is not None and (receipt.message_id, receipt.state) == expected


def test_receipt_without_any_id_is_not_reported() -> None:
    assert parse_receipt("sub:001 dlvrd:001 stat:DELIVRD err:000") is None


async def test_receipt_the_application_fails_to_take_is_refused_for_redelivery(
    smsc: SimulatedSmsc, connect: Connect
) -> None:
    gateway, recorder = await connect()
    result = await gateway.send(sms())
    assert result.message_id
    recorder.failures = 1

    first = await smsc.deliver_receipt(result.message_id)
    again = await smsc.deliver_receipt(result.message_id)

    assert first == 0x64, "ESME_RX_T_APPN: the SMSC keeps the receipt and sends it again"
    assert again == 0 and [report.message_id for report in recorder.reports] == [result.message_id]
    assert gateway.bound


async def test_receipt_with_hex_id_is_reported_with_the_id_as_given(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, recorder = await connect()
    result = await gateway.send(sms())
    assert result.message_id

    await smsc.deliver_receipt(result.message_id, fmt="text", hex_id=True)
    await eventually(lambda: bool(recorder.reports))

    assert recorder.reports[0].message_id == format(int(result.message_id), "X")
    assert recorder.reports[0].state is DeliveryState.DELIVERED


async def test_automatic_receipts_arrive_for_every_text(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, recorder = await connect()
    smsc.receipt_delay_s = 0.05

    results = await asyncio.gather(*(gateway.send(sms(f"text {n}")) for n in range(20)))
    await eventually(lambda: len(recorder.reports) == 20)

    assert {report.message_id for report in recorder.reports} == {result.message_id for result in results}
    assert all(report.state is DeliveryState.DELIVERED for report in recorder.reports)


async def test_late_receipt_after_a_reconnect_is_reported(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, recorder = await connect()
    result = await gateway.send(sms())
    assert result.message_id

    await smsc.drop_connections(refuse_s=0.2)
    await eventually(lambda: accepted_binds(smsc) == 2 and gateway.bound)
    await smsc.deliver_receipt(result.message_id, "DELIVRD", fmt="both", late_s=0.1)
    await eventually(lambda: bool(recorder.reports))

    assert (recorder.reports[0].message_id, recorder.reports[0].state) == (result.message_id, DeliveryState.DELIVERED)


async def test_long_text_is_delivered_when_all_its_parts_are(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, recorder = await connect()
    result = await gateway.send(sms("Thanks for calling! " * 10))
    first, second = (record.message_id or "" for record in smsc.accepted)
    assert result.message_id == first

    await smsc.deliver_receipt(second, "DELIVRD", fmt="tlv")
    await eventually(lambda: len(recorder.reports) == 1)
    await smsc.deliver_receipt(first, "DELIVRD", fmt="text")
    await eventually(lambda: len(recorder.reports) == 2)

    assert [(report.message_id, report.state) for report in recorder.reports] == [
        (first, DeliveryState.PENDING),
        (first, DeliveryState.DELIVERED),
    ]


async def test_long_text_fails_when_one_part_fails(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, recorder = await connect()
    result = await gateway.send(sms("Thanks for calling! " * 10))
    second = smsc.accepted[1].message_id or ""

    await smsc.deliver_receipt(second, "UNDELIV", fmt="both", err="034")
    await eventually(lambda: bool(recorder.reports))

    [report] = recorder.reports
    assert (report.message_id, report.state, report.error_code) == (result.message_id, DeliveryState.FAILED, "034")


async def test_immediate_receipts_for_long_texts_map_to_the_first_part(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, recorder = await connect()
    smsc.receipt_delay_s = 0.0  # receipts may overtake the submit_sm_resp of their own part

    results = await asyncio.gather(*(gateway.send(sms(f"{n:03d} " + "long text " * 20)) for n in range(5)))
    await eventually(lambda: sum(r.state is DeliveryState.DELIVERED for r in recorder.reports) == 5)

    delivered = {r.message_id for r in recorder.reports if r.state is DeliveryState.DELIVERED}
    assert delivered == {result.message_id for result in results}
    assert {r.message_id for r in recorder.reports} == delivered, "no report under a later part's id"


# -- texts from phones ----------------------------------------------------------------------------------------------


async def test_stop_from_a_phone_reaches_on_inbound(smsc: SimulatedSmsc, connect: Connect) -> None:
    _, recorder = await connect()

    status = await smsc.send_mo(CALLER, BUSINESS, "STOP")
    await eventually(lambda: bool(recorder.inbound))

    assert status == 0
    [inbound] = recorder.inbound
    assert (inbound.sender, inbound.to, inbound.text) == (CALLER, BUSINESS, "STOP")
    assert recorder.reports == [], "a text from a phone is no delivery receipt"


async def test_unicode_text_from_a_phone_is_decoded(smsc: SimulatedSmsc, connect: Connect) -> None:
    _, recorder = await connect()

    await smsc.send_mo(CALLER, BUSINESS, "Stopp bitte 🙏 {ok} €")
    await smsc.send_mo(CALLER, BUSINESS, "Danke {ok} €5")
    await eventually(lambda: len(recorder.inbound) == 2)

    assert [sms.text for sms in recorder.inbound] == ["Stopp bitte 🙏 {ok} €", "Danke {ok} €5"]


async def test_national_number_from_a_phone_becomes_e164_with_the_region(smsc: SimulatedSmsc, connect: Connect) -> None:
    _, recorder = await connect(region="GB")

    await smsc.send_mo("07700900123", BUSINESS, "stop")
    await eventually(lambda: bool(recorder.inbound))

    assert recorder.inbound[0].sender == "+447700900123"


async def test_sender_id_that_smpp_cannot_carry_is_rejected_not_raised(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()

    result = await gateway.send(OutgoingSms(key="k", to=CALLER, sender="Bella’s", text="hi"))

    assert result.status is SendStatus.REJECTED and "cannot encode" in (result.error or "")
    assert gateway.bound and (await gateway.send(sms())).accepted


async def test_close_unbinds(smsc: SimulatedSmsc, connect: Connect) -> None:
    gateway, _ = await connect()
    await eventually(lambda: smsc.bound_sessions == 1)

    await gateway.close()

    await eventually(lambda: smsc.bound_sessions == 0)
    assert (await gateway.send(sms())).status is SendStatus.DEFERRED
