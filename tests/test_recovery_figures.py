"""The recovery figures agree on the overview, `callbuddy-pbx stats` and /api/v1/stats for one database, and each is
scoped to its viewer's businesses. One missed call per way of getting a caller back, one never got back, and one of
another business."""

from __future__ import annotations

import asyncio
import json
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callbuddy_pbx import cli
from callbuddy_pbx.asterisk.outbound import OutboundAnswer
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.model import Outcome
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.links import LinkStore, NewLink, insert_links
from callbuddy_pbx.store.messages import MessageStore, NewText
from callbuddy_pbx.store.recovery import RecoveryStore
from callbuddy_pbx.web.api import api_routes
from callbuddy_pbx.web.server import create_app
from tests.test_dashboard_helpers import BOLT, GLOW, NOW, figures, make_app, make_context
from tests.test_recovery_marks import call

NY = ZoneInfo("America/New_York")  # Glow Salon's clock in the dashboard helpers
FIRST, LAST = "2024-03-11", "2024-03-13"
SINCE = datetime(2024, 3, 11, tzinfo=NY).timestamp()
UNTIL = datetime(2024, 3, 14, tzinfo=NY).timestamp()
T0 = datetime(2024, 3, 12, 10, 0, tzinfo=NY).timestamp()
GLOW_TOKEN = "g" * 30
# A missed call (caller, minutes after T0 it ends) per way of getting it back, and seconds to that sign.
JANE, BOB, CAROL, DAN, EVE = (f"+1555765432{n}" for n in range(5))
WAITS = {"called_back": 600.0, "called_again": 905.0, "replied": 300.0, "booked": 400.0}
STEPS = ("missed", "texted", "delivered", "replied", "clicked", "called_back", "recovered")


async def fill(store: CallStore) -> None:
    calls = [call(f"m.{n}", Outcome.NO_ANSWER, T0 - 30, caller=c) for n, c in enumerate((JANE, BOB, CAROL, DAN, EVE))]
    calls.append(call("m.bolt", Outcome.NO_ANSWER, T0 - 30, caller=CAROL, business=BOLT))
    calls.append(call("bob.again", Outcome.ANSWERED, T0 + 900, caller=BOB))  # answered 5 s after it started
    await store.save_calls(calls)
    messages = MessageStore(store)
    texts = [NewText(f"m.{n}", "missed_call", c, "+15550001000", "sim", "Sorry", T0, GLOW, f"m.{n}")
             for n, c in ((2, CAROL), (3, DAN), (4, EVE))]  # fmt: skip
    await messages.enqueue(texts, T0)
    async with store.transaction() as conn:
        await insert_links(conn, [NewLink("m.3", "tok-dan", "https://book.example", "m.3", GLOW)], {"m.3"}, T0)
    await LinkStore(store).record_click("tok-dan", T0 + WAITS["booked"])
    for business in (GLOW, BOLT):
        await messages.record_inbound("sim", CAROL, "+15550001000", business, "Can I come at 3?", "other",
                                      T0 + WAITS["replied"], key=f"reply-{business}")  # fmt: skip
    # Jane replies after the desk called her back: a second "replied", still got back by the call back.
    await messages.record_inbound("sim", JANE, "+15550001000", GLOW, "Thanks!", "other", T0 + 700, key="jane")
    recovery = RecoveryStore(store)
    await recovery.record_outbound([OutboundAnswer("out.1", GLOW, "PJSIP/101", JANE, T0 + WAITS["called_back"])], T0)
    await recovery.mark_calls(calls, T0 + 1000)
    await recovery.sweep(NOW)


def funnel_of(body: dict[str, Any]) -> dict[str, int]:
    return {step: body["funnel"][step]["count"] for step in STEPS}


async def api_stats(store: CallStore) -> dict[str, Any]:
    app = create_app(
        webhook_gateways={}, extra_routes=lambda app: api_routes(app, store, [ApiToken("glow", GLOW_TOKEN, (GLOW,))])
    )
    async with TestClient(TestServer(app)) as client:
        params = {"since": datetime.fromtimestamp(SINCE, NY).isoformat(), "until": datetime.fromtimestamp(UNTIL, NY)
                  .isoformat(), "tz": "America/New_York"}  # fmt: skip
        response = await client.get("/api/v1/stats", params=params, headers={"Authorization": f"Bearer {GLOW_TOKEN}"})
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def overview(store: CallStore, user: str) -> tuple[dict[str, float | None], str]:
    async with TestClient(TestServer(make_app(make_context(store)))) as client:
        params = {"period": "dates", "from": FIRST, "to": LAST} | ({"business": GLOW} if user == "both" else {})
        response = await client.get("/", params=params, headers={"X-Test-User": user})
        assert response.status == 200
        html = await response.text()
        return figures(html), html


async def pages_and_api(db: Path) -> tuple[dict[str, Any], dict[str, float | None], str, dict[str, float | None]]:
    async with await CallStore.open(db) as store:
        await fill(store)
        body = await api_stats(store)
        glow, html = await overview(store, "glow")
        admin, _ = await overview(store, "admin")
    return body, glow, html, admin


def test_overview_command_and_api_give_the_same_recovery_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "calls.sqlite3"
    body, page, html, every = asyncio.run(pages_and_api(db))
    period = ["--since", datetime.fromtimestamp(SINCE, NY).isoformat(), "--until",
              datetime.fromtimestamp(UNTIL, NY).isoformat(), "--tz", "America/New_York"]  # fmt: skip
    assert cli.main(["stats", "--db", str(db), *period, "--business", GLOW, "--json"]) == 0
    command = json.loads(capsys.readouterr().out)

    want = {"missed": 5, "texted": 3, "delivered": 0, "replied": 2, "clicked": 1, "called_back": 1, "recovered": 4}
    assert funnel_of(body) == funnel_of(command) == want
    assert {step: page[f"funnel_{step}"] for step in STEPS} == want
    by_how = {how: 1 for how in WAITS}
    assert body["recovered_by"] == command["recovered_by"] == by_how
    assert {how: page[f"recovered_by_{how}"] for how in WAITS} == by_how
    median = statistics.median(WAITS.values())
    assert body["recovery_median_s"] == command["recovery_median_s"] == page["recovery_median_s"] == median
    assert page["recovered"] == 4 and page["funnel_recovered_pct"] == 80.0
    for words in ("Got back", "Called back", "Replied", "Booked", "Called again and got through"):
        assert f'<th scope="row">{words}</th>' in html
    assert every["recovered"] == 5 and every["funnel_replied"] == 3  # the admin sees Bolt's reply too

    assert cli.main(["stats", "--db", str(db), *period, "--business", GLOW]) == 0
    text = capsys.readouterr().out
    assert "Got back 4: called_back 1, called_again 1, replied 1, booked 1; median time to get back 500.0 s" in text
    recovered_line = next(line for line in text.splitlines() if line.strip().startswith("recovered"))
    assert recovered_line.split()[1:] == ["4", "80.0%"]
