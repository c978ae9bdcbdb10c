"""The devices page for mobile softphones that wake by push: which phones do, their last wake-up (push sent ->
registered) and their last failure in an owner's words, and push tokens never shown whole."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx.asterisk.devices_model import Device, WakeFailure, WakeRecord, masked_contact
from callbuddy_pbx.commands.devices import device_to_dict, render_table
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.wake_words import FAILURES, wake_words
from tests.test_dashboard_helpers import DAY, NOW, make_app, make_context

TOKEN = "c0ffee" * 10 + "beef"
LINPHONE_TOKEN = "ab12" * 16
BINDING = PushBinding(Provider.APNS, TOKEN)
MOBILE_URI = f"sip:104@10.0.0.9:40001;transport=tcp;pn-provider=apns;pn-prid={TOKEN};pn-param=T.com.ex.voip"
DESK = Device("PJSIP/101", "101", "NOT_INUSE", True, ("sip:101@10.0.0.5:5060",))
ASLEEP = Device(  # woke at 15:05 UTC in 1.234 s, then did not wake at 15:07
    "PJSIP/103", "103", "UNAVAILABLE", False, push_binding=BINDING, push=True,
    wake=WakeRecord(1234.0, NOW - 1500, WakeFailure.DID_NOT_WAKE, NOW - 1380),
)  # fmt: skip
AWAKE = Device(  # a failure before its last wake-up is history; the wake-up two days ago shows its date
    "PJSIP/104", "104", "NOT_INUSE", True, (MOBILE_URI,), push_binding=BINDING, push=True,
    wake=WakeRecord(800.0, NOW - 2 * DAY, WakeFailure.SERVICE_BUSY, NOW - 3 * DAY),
)  # fmt: skip
SIGNED_OUT = Device(  # its token died (APNs 410): the binding is gone, the phone is still configured `push: true`
    "PJSIP/105", "105", "UNAVAILABLE", False, push=True, wake=WakeRecord(None, None, WakeFailure.UNREGISTERED, NOW - 60)
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    store = await CallStore.open(tmp_path / "calls.sqlite3")
    ctx = make_context(store, devices=lambda: (DESK, ASLEEP, AWAKE, SIGNED_OUT))
    async with store, TestClient(TestServer(make_app(ctx))) as test_client:
        yield test_client


def cell(html: str, device: str) -> str:
    row = re.search(rf'<tr data-device="{device}">(.*?)</tr>', html, re.S)
    assert row is not None
    wake = re.search(r'<td data-label="Push wake-up" class="wake">(.*?)</td>', row.group(1), re.S)
    assert wake is not None
    texts = (text.strip().replace("\u00a0", " ") for text in re.split(r"<[^>]+>", wake.group(1)))
    return "|".join(text for text in texts if text)


async def test_the_devices_page_says_which_phones_wake_by_push_and_how_they_did(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    response = await client.get("/devices", headers={"X-Test-User": "admin"})
    html = await response.text()
    assert response.status == 200 and "<th>Push wake-up</th>" in html
    assert cell(html, "PJSIP/101") == "–"  # a desk phone
    assert cell(html, "PJSIP/103") == "Wakes by push (asleep now)|Last woke in 1.2 s (15:05)|Did not wake (15:07)"
    assert cell(html, "PJSIP/104") == "Wakes by push|Last woke in 0.8 s (Mar 13 15:30)"
    assert cell(html, "PJSIP/105") == (
        "Wakes by push once its app has registered with push|Push refused: the app must be signed in again (15:29)"
    )
    assert TOKEN not in html and "pn-prid=c0ff...beef;pn-param" in html  # where it is, without its push token


def test_every_failure_has_owner_words_and_a_later_wake_up_clears_it() -> None:
    assert set(FAILURES) == set(WakeFailure)
    record = WakeRecord(500.0, NOW - 10, WakeFailure.CREDENTIALS_REJECTED, NOW - 20)
    device = Device("PJSIP/103", "103", "NOT_INUSE", True, push_binding=BINDING, push=True, wake=record)
    assert wake_words(device, "UTC", NOW).failure == ""
    later = WakeRecord(500.0, NOW - 20, WakeFailure.CREDENTIALS_REJECTED, NOW - 10)
    failed = wake_words(Device("PJSIP/103", "103", "NOT_INUSE", True, push=True, wake=later), "UTC", NOW)
    assert failed.failure == "Push refused: the push key was not accepted (the installer is alerted) (15:29)"
    assert wake_words(DESK, "UTC", NOW).summary == ""


def test_contacts_are_shown_with_their_push_tokens_masked() -> None:
    assert masked_contact("sip:101@10.0.0.5:5060") == "sip:101@10.0.0.5:5060"
    linphone = f"sip:103@10.0.0.9:5060;pn-type=apple;PN-TOK={LINPHONE_TOKEN};app-id=com.ex.prod.voip"
    assert masked_contact(linphone) == "sip:103@10.0.0.9:5060;pn-type=apple;PN-TOK=ab12...ab12;app-id=com.ex.prod.voip"
    assert TOKEN not in masked_contact(f"<{MOBILE_URI}>")


def test_the_json_view_of_a_device_masks_its_push_token() -> None:
    body = AWAKE.to_json()
    assert TOKEN not in json.dumps(body)
    assert body["push_binding"]["device_token"] == "c0ff...beef" and body["push_binding"]["provider"] == "apns"
    assert body["contacts"] == [masked_contact(MOBILE_URI)]
    assert body["wake"] == {
        "woke_ms": 800.0,
        "woke_at": NOW - 2 * DAY,
        "failure": "service_busy",
        "failed_at": NOW - 3 * DAY,
    }
    assert DESK.to_json()["push_binding"] is None


def test_the_devices_command_masks_push_tokens_too() -> None:
    assert TOKEN not in json.dumps(device_to_dict(AWAKE))
    short = dataclasses.replace(AWAKE, contacts=(f"sip:1@h;pn-prid={TOKEN}",))  # the token within the column
    assert TOKEN[:12] not in render_table([short]) and "pn-prid=c0ff...beef" in render_table([short])
