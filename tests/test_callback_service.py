"""Call back through the running service: the simulated Asterisk answers the Originate like Asterisk 22 (the desk
rings first, then the trunk leg to the caller), the progress follows, and an answered call back marks the missed
call `called_back` through the service's own path (outbound tracker -> recovery marker -> store)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.asterisk.callback import CALLBACK_CONTEXT, Stage
from callbuddy_pbx.asterisk.callbacks import NO_NUMBER, NO_PHONE, CallBack, CallBackRefused, CallBacks
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.sim.originate import ANSWER, BUSY, NO_ANSWER, UNAVAILABLE, OriginatePlan
from tests.callback_site import CallBackSite, call_back_site_fixture  # noqa: F401 (fixture)
from tests.conversations_site import GLOW_CALLER, missed, until
from tests.test_dashboard_e2e import DENTAL, GLOW, GLOW_DID


async def finished(site: CallBackSite, call_back: CallBack) -> Stage:
    await until(lambda: not call_back.progress.in_progress)
    return call_back.stage


async def marks(site: CallBackSite) -> dict[str, tuple[str, str]]:
    await site.service.ami.action("Ping")  # every event read: answered desk calls are queued for the marker
    await site.service.recovery.wait_idle()
    async with site.convo.store.connection.execute("SELECT linkedid, how, source FROM recoveries") as cursor:
        return {str(row[0]): (str(row[1]), str(row[2])) for row in await cursor.fetchall()}


async def test_an_answered_call_back_rings_the_desk_then_the_caller_and_is_got_back(site: CallBackSite) -> None:
    await site.convo.call(missed("1000.1", GLOW, GLOW_DID, GLOW_CALLER))
    call_back, started = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert started
    (sent,) = site.originates()
    assert (sent["Channel"], sent["Context"], sent["Exten"], sent["Priority"], sent["Async"]) == (
        "PJSIP/100", CALLBACK_CONTEXT, GLOW_CALLER, "1", "true"
    )  # fmt: skip
    assert await finished(site, call_back) is Stage.TALKED
    assert await marks(site) == {"1000.1": ("called_back", call_back.progress.channel_id)}
    # The desk's and the trunk leg's channels are no inbound call: nothing more is stored, nobody more is texted.
    await site.service.wait_stored()
    assert [c.linkedid for c in await site.convo.store.list_calls()] == ["1000.1"]
    await until(lambda: len(site.convo.gateway.sent) == 1)
    assert [sms.to for sms in site.convo.gateway.sent] == [GLOW_CALLER]


@pytest.mark.parametrize(
    ("desk", "caller", "stage"),
    [
        (NO_ANSWER, ANSWER, Stage.DESK_NO_ANSWER),
        (BUSY, ANSWER, Stage.DESK_BUSY),
        (UNAVAILABLE, ANSWER, Stage.DESK_UNREACHABLE),
        (ANSWER, NO_ANSWER, Stage.CALLER_NO_ANSWER),
        (ANSWER, BUSY, Stage.CALLER_BUSY),
    ],
)
async def test_a_call_back_nobody_answered_says_why_and_recovers_nothing(
    site: CallBackSite, desk: str, caller: str, stage: Stage
) -> None:
    await site.convo.call(missed("1000.1", GLOW, GLOW_DID, GLOW_CALLER))
    site.ami.originate_plan = OriginatePlan(desk=desk, caller=caller)
    call_back, _ = await site.service.call_backs.start(GLOW, GLOW_CALLER, "101", "glow")
    assert await finished(site, call_back) is stage
    assert await marks(site) == {}


async def test_asterisk_refusing_originate_tells_the_installer_once(
    site: CallBackSite, caplog: pytest.LogCaptureFixture
) -> None:
    site.ami.write_classes = {"reporting"}  # manager.conf as rendered before call back
    with caplog.at_level(logging.ERROR, logger="callbuddy_pbx.asterisk.callbacks"):
        first, _ = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
        second, _ = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert first is not second and first.stage is second.stage is Stage.REFUSED
    problem = site.service.call_backs.problem
    assert problem is not None and "manager.conf" in problem and "originate" in problem
    assert [r.getMessage() for r in caplog.records].count(f"call back refused by Asterisk: {problem}") == 1
    site.ami.write_classes = None  # re-rendered and reloaded: it works again, and the problem is gone
    third, _ = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert await finished(site, third) is Stage.TALKED and site.service.call_backs.problem is None


async def test_only_the_business_phones_and_an_e164_number(site: CallBackSite) -> None:
    for business, number, phone, reason in (
        (GLOW, GLOW_CALLER, "200", NO_PHONE),  # Dental's desk
        (DENTAL, GLOW_CALLER, "100", NO_PHONE),  # Glow's desk
        (GLOW, GLOW_CALLER, "999", NO_PHONE),
        (GLOW, "15557771111", "100", NO_NUMBER),
        (GLOW, "+1555\r\nAction: Logoff", "100", NO_NUMBER),
    ):
        with pytest.raises(CallBackRefused) as refused:
            await site.service.call_backs.start(business, number, phone, "glow")
        assert refused.value.reason == reason
    assert site.originates() == []


async def test_a_second_press_returns_the_call_back_on_its_way(site: CallBackSite) -> None:
    site.ami.originate_plan = OriginatePlan(desk_ring_s=0.5)
    first, started = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    again, started_again = await site.service.call_backs.start(GLOW, GLOW_CALLER, "101", "glow")
    assert started and not started_again and again is first
    other_user, started_other = await site.service.call_backs.start(GLOW, GLOW_CALLER, "101", "admin")
    assert started_other and other_user is not first
    assert len(site.originates()) == 2
    await finished(site, first)
    after, started_after = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert started_after and after is not first  # once it ended, a new one may start


async def test_a_lost_ami_link_ends_the_call_backs_on_their_way(site: CallBackSite) -> None:
    site.ami.originate_plan = OriginatePlan(desk_ring_s=5.0)
    call_back, _ = await site.service.call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    site.ami.drop_clients()
    assert await finished(site, call_back) is Stage.UNAVAILABLE


class _EarlyAnswerAmi:
    """An AMI whose OriginateResponse is read in the same TCP read as the action's answer: it reaches `feed`
    before `action` returns (the client's reader handles the whole read before the caller resumes)."""

    connected = True

    def __init__(self) -> None:
        self.call_backs: CallBacks | None = None

    async def action(self, name: str, fields: object = None, *, timeout: float | None = None) -> AmiMessage:
        assert self.call_backs is not None
        self.call_backs.feed({"Event": "OriginateResponse", "ActionID": "cb-7", "Response": "Failure", "Reason": "5",
                              "Uniqueid": "<unknown>"})  # fmt: skip
        return {"Response": "Success", "ActionID": "cb-7", "Message": "Originate successfully queued"}


async def test_an_originate_response_read_before_the_answer_is_not_lost() -> None:
    ami = _EarlyAnswerAmi()
    call_backs = CallBacks(ami, (Phone("100", "Front desk", GLOW),))
    ami.call_backs = call_backs
    call_back, _ = await call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert call_back.stage is Stage.DESK_BUSY


async def test_a_call_back_with_nothing_final_is_lost_and_no_longer_blocks() -> None:
    now = [time.monotonic()]

    class SilentAmi:
        connected = True

        async def action(self, name: str, fields: object = None, *, timeout: float | None = None) -> AmiMessage:
            return {"Response": "Success", "ActionID": "cb-1"}

    call_backs = CallBacks(SilentAmi(), (Phone("100", "Front desk", GLOW),), clock=lambda: now[0])
    first, _ = await call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert first.stage is Stage.RINGING_DESK
    now[0] += 3600
    assert call_backs.get(first.id) is first and first.stage is Stage.LOST
    second, started = await call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert started and second is not first
    await asyncio.sleep(0)


async def test_without_an_ami_link_call_back_is_not_available_and_nothing_is_sent() -> None:
    sent: list[str] = []

    class DownAmi:
        connected = False

        async def action(self, name: str, fields: object = None, *, timeout: float | None = None) -> AmiMessage:
            sent.append(name)
            return {"Response": "Success", "ActionID": "cb-1"}

    call_backs = CallBacks(DownAmi(), (Phone("100", "Front desk", GLOW),))
    call_back, _ = await call_backs.start(GLOW, GLOW_CALLER, "100", "glow")
    assert call_back.stage is Stage.UNAVAILABLE and sent == []
