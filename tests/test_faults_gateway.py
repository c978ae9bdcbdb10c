"""Fault injection on the texting side of the REAL `callbuddy-pbx run` process: the SMS gateway misbehaves, or the
service is SIGKILLed at each state of a text; every missed caller is still texted exactly once.

Each test places generated calls (a distinct caller each, known outcome) through the simulated Asterisk while the
service is connected, and judges the run from the database AND from what the gateway received (tests/faults.py).
Call-side faults (events the service never saw) are another suite's subject.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from callbuddy_pbx.sim.scenario_model import Scenario
from callbuddy_pbx.sim.smsc import ESME_RMSGQFUL, ESME_RTHROTTLED, SubmitRecord
from tests.faults import check_exactly_once, e164, fault_rig, make_calls, owed_text, text_rows


def owed(calls: Sequence[Scenario]) -> list[Scenario]:
    return [s for s in calls if owed_text(s)]


async def test_smsc_down_while_missed_calls_come_in_texts_each_once_when_it_is_back(tmp_path: Path) -> None:
    calls = make_calls(14, seed=101)
    async with fault_rig(tmp_path) as rig:
        assert rig.smsc is not None
        await rig.wait_for(lambda: rig.smsc is not None and rig.smsc.bound_sessions > 0, 5, "the SMPP bind")
        assert await rig.smsc.drop_connections(refuse_s=2.0) == 1
        down_until = time.monotonic() + 2.0
        await rig.place(calls)
        assert time.monotonic() < down_until, "the calls should all end while the SMSC is down"
        assert rig.smsc.accepted == []  # nothing got through while it was down
        assert {row.state for row in text_rows(rig.db)} <= {"queued"}
        await rig.settle(timeout=15)
        result = check_exactly_once(rig, calls)
    assert result.texted == len(owed(calls)) > 5


async def test_smsc_throttling_and_a_full_queue_slow_texts_down_but_send_each_once(tmp_path: Path) -> None:
    """The calls end together: their texts go in a burst. Once 5 are accepted, the SMSC answers the next 3
    ESME_RTHROTTLED and 1 more ESME_RMSGQFUL; every text still goes once, none fails. (The outbox halves its rate
    at most once a second and then adds ~0.1 text/s per accepted text: refusals spread over several seconds would
    make this test take 20 s, hence all of them in the first burst.)"""
    calls = make_calls(16, seed=202, missed_share=0.9)
    assert len(owed(calls)) >= 5 + 3 + 1 + 1
    async with fault_rig(tmp_path, speed=20) as rig:
        smsc = rig.smsc
        assert smsc is not None

        def arm(record: SubmitRecord) -> None:
            if record.status == 0 and len(smsc.accepted) == 5:
                smsc.throttle(3)
                smsc.queue_full(1)

        smsc.on_submit = arm
        await rig.place(calls, end_together=True)
        await rig.settle(timeout=40)
        result = check_exactly_once(rig, calls)
        statuses = [record.status for record in smsc.submits]
    assert result.texted == len(owed(calls))
    assert (statuses.count(ESME_RTHROTTLED), statuses.count(ESME_RMSGQFUL)) == (3, 1)  # each refusal was met


async def test_smsc_cutting_the_link_after_accepting_never_makes_a_second_text(tmp_path: Path) -> None:
    """The SMSC took the text but the link dropped before its answer: the text is `unknown` and never sent again
    blindly (resend_unknown_after is off by default); the receipt that follows on the next bind settles it."""
    calls = make_calls(12, seed=303, missed_share=0.7)
    async with fault_rig(tmp_path) as rig:
        assert rig.smsc is not None
        rig.smsc.cut_after_accept(2)
        await rig.place(calls)
        await rig.settle(timeout=15, unknown_ok=True, quiet_s=1.0)
        result = check_exactly_once(rig, calls, unknown_ok=True)
        rows = text_rows(rig.db)
    assert result.texted == len(owed(calls))
    assert len(rig.smsc.submits) == len(owed(calls))  # no second submit for the texts whose answer was lost
    assert sum(bind.accepted for bind in rig.smsc.binds) == 3  # two cuts, two binds again
    assert rig.log_text().count("sent, but no answer came") == 2  # the cut submits went through `unknown`...
    assert all(row.state == "delivered" for row in rows)  # ...and their receipts settled them


async def test_http_gateway_429_500_and_503_defer_texts_and_each_goes_once(tmp_path: Path) -> None:
    """Once 5 texts are accepted, the API answers 429 (Retry-After: 1), 500 and 503 once each: every text still
    goes once, none fails."""
    calls = make_calls(14, seed=404, missed_share=0.85)
    assert len(owed(calls)) >= 5 + 3 + 1
    async with fault_rig(tmp_path, gateway="twilio", speed=20) as rig:
        assert rig.twilio is not None
        rig.twilio.fail_after(5, 429, 20429, "Too Many Requests", retry_after="1")
        rig.twilio.fail_after(5, 500, 20500, "Internal Server Error")
        rig.twilio.fail_after(5, 503, 20503, "Service Unavailable")
        await rig.place(calls, end_together=True)
        await rig.settle(timeout=20)
        result = check_exactly_once(rig, calls)
        statuses = [request.status for request in rig.twilio.requests]
    assert result.texted == len(owed(calls))
    assert (statuses.count(429), statuses.count(500), statuses.count(503)) == (1, 1, 1)


async def test_http_gateway_answering_too_late_never_makes_a_second_text(tmp_path: Path) -> None:
    """Twilio takes two texts but answers after the client's timeout (1 s here): each is `unknown`, never sent
    again (it may have been taken, and it was); the others go as usual."""
    calls = make_calls(8, seed=606, missed_share=0.9)
    assert len(owed(calls)) >= 4
    async with fault_rig(tmp_path, gateway="twilio", speed=20) as rig:
        assert rig.twilio is not None
        rig.twilio.answer_late(2, seconds=2.5)
        await rig.place(calls)
        await rig.settle(timeout=20, unknown_ok=True, quiet_s=1.0)
        result = check_exactly_once(rig, calls, unknown_ok=True)
        states = Counter(row.state for row in text_rows(rig.db))
    assert result.texted == len(owed(calls))
    assert states["unknown"] == 2


async def test_a_rejected_destination_fails_only_its_own_text(tmp_path: Path) -> None:
    calls = make_calls(14, seed=505)
    refused = owed(calls)[1].caller
    assert refused is not None
    async with fault_rig(tmp_path) as rig:
        assert rig.smsc is not None
        rig.smsc.reject_destination(e164(refused))
        await rig.place(calls)
        await rig.settle(timeout=15)
        result = check_exactly_once(rig, calls, rejected=[refused])
        failed = [row for row in text_rows(rig.db) if row.state == "failed"]
    assert [row.to for row in failed] == [e164(refused)]
    assert result.texted == len(owed(calls)) - 1


async def test_kill_while_a_text_waits_for_its_hold_off(tmp_path: Path) -> None:
    calls = make_calls(6, seed=606, missed_share=0.7)
    texted = [s.linkedid for s in owed(calls)]
    async with fault_rig(tmp_path, hold_off_s=1.5, speed=12) as rig:
        assert rig.smsc is not None
        await rig.place(calls)
        await rig.wait_states(texted, {"queued"})
        await rig.kill()
        assert rig.smsc.submits == []
        await rig.restart()
        await rig.settle(timeout=15)
        check_exactly_once(rig, calls)


async def test_kill_while_the_smsc_holds_a_submit_unanswered(tmp_path: Path) -> None:
    """The SMSC took the submits, its answers are held back; kill -9: on restart the texts are `unknown`, never
    sent again; the receipts, delivered on the next bind, settle them."""
    calls = make_calls(8, seed=707, missed_share=0.7)
    texted = owed(calls)
    async with fault_rig(tmp_path, hold_link=True) as rig:
        assert rig.smsc is not None and rig.proxy is not None
        await rig.wait_smpp_bound()  # the bind response must not be held
        rig.proxy.hold()
        await rig.place(calls)
        await rig.wait_for(lambda: rig.smsc is not None and len(rig.smsc.accepted) == len(texted), 10, "the submits")
        await rig.wait_states([s.linkedid for s in texted], {"sending"})
        await rig.kill()
        rig.proxy.release()
        await rig.restart()
        await rig.settle(timeout=15, unknown_ok=True, quiet_s=1.5)
        check_exactly_once(rig, calls, unknown_ok=True)
        rows = text_rows(rig.db)
    assert len(rig.smsc.submits) == len(texted)
    assert all(row.state == "delivered" for row in rows), [(row.to, row.state, row.error) for row in rows]


async def test_kill_while_more_texts_are_due_than_the_smpp_window_holds(tmp_path: Path) -> None:
    """More texts due at once than the SMPP window (10) takes: the SMSC has the first 10 (answers held back); the
    others are not even claimed (`queued`, never `sending`: a text is handed to a gateway only when it can write it
    out at once). kill -9: on restart those are sent, and the 10 settled by their receipts, each once."""
    calls = make_calls(16, seed=717, missed_share=0.9)
    texted = owed(calls)
    assert len(texted) >= 13
    async with fault_rig(tmp_path, hold_link=True, speed=20) as rig:
        assert rig.smsc is not None and rig.proxy is not None
        await rig.wait_smpp_bound()  # the bind response must not be held
        rig.proxy.hold()
        await rig.place(calls, end_together=True)
        await rig.wait_for(lambda: rig.smsc is not None and len(rig.smsc.accepted) == 10, 10, "a full window")
        await asyncio.sleep(0.3)  # nothing more leaves: the window is full
        assert len(rig.smsc.submits) == 10
        states = Counter(row.state for row in text_rows(rig.db))
        assert states == {"sending": 10, "queued": len(texted) - 10}
        await rig.kill()
        rig.proxy.release()
        await rig.restart()
        await rig.settle(timeout=15, unknown_ok=True, quiet_s=1.0)
        check_exactly_once(rig, calls, unknown_ok=True)


async def test_kill_after_sent_before_the_receipt(tmp_path: Path) -> None:
    calls = make_calls(8, seed=808, missed_share=0.7)
    texted = owed(calls)
    async with fault_rig(tmp_path, receipt_delay_s=None) as rig:
        assert rig.smsc is not None
        await rig.place(calls)
        await rig.wait_states([s.linkedid for s in texted], {"sent"})
        await rig.kill()
        await rig.restart()
        for record in rig.smsc.accepted:  # the receipts come after the restart, to the new bind
            assert record.message_id is not None
            assert await rig.smsc.deliver_receipt(record.message_id) == 0
        await rig.settle(timeout=10)
        check_exactly_once(rig, calls)
    assert len(rig.smsc.submits) == len(texted)


async def test_random_kills_during_a_burst_of_calls(tmp_path: Path) -> None:
    rng = random.Random(909)
    calls = make_calls(20, seed=909, gap_s=(0.1, 0.6))
    async with fault_rig(tmp_path, speed=10) as rig:
        burst_s = (calls[-1].started_at - calls[0].started_at) / rig.speed
        kill_at = sorted(rng.uniform(0.2, burst_s + 0.5) for _ in range(rng.randint(3, 5)))
        placing = asyncio.create_task(rig.place(calls))
        began = time.monotonic()
        for at in kill_at:
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            await rig.kill_quietly(restart_after_s=0.3)
        await placing
        # A kill can land while texts are on the wire: those are `unknown` (never sent again) and settle only if
        # their receipts reach the new bind; either way each caller must have got exactly one text at the SMSC.
        await rig.settle(timeout=20, unknown_ok=True)
        check_exactly_once(rig, calls, unknown_ok=True)
    assert rig.kills == len(kill_at) >= 3
