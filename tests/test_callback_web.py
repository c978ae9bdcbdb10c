"""Call back on the dashboard and in the JSON API: who may call back whom with which phone (every route tried with
another business's thread, call, phone and call back), the status the page polls, a double click, a bad phone."""

from __future__ import annotations

import re

from callbuddy_pbx.asterisk.callback import Stage
from callbuddy_pbx.sim.originate import NO_ANSWER, OriginatePlan
from callbuddy_pbx.store.conversations import Thread
from tests.callback_site import CallBackSite, call_back_site_fixture  # noqa: F401 (fixture)
from tests.conversations_site import ALL_TOKEN, DENTAL_CALLER, GLOW_CALLER, GLOW_TOKEN, two_businesses, until
from tests.test_dashboard_e2e import DENTAL, GLOW


async def threads(site: CallBackSite) -> tuple[Thread, Thread]:
    await two_businesses(site.convo)
    return await site.convo.thread(GLOW_CALLER, GLOW), await site.convo.thread(DENTAL_CALLER, DENTAL)


def status_url(location: str) -> str:
    match = re.search(r"call_back=([0-9a-f]{16})", location)
    assert match is not None, location
    return f"/call-backs/{match.group(1)}"


async def test_a_user_calls_back_from_a_thread_and_follows_it(site: CallBackSite) -> None:
    glow, _ = await threads(site)
    await site.convo.log_in("glow")
    path = f"/conversations/{glow.id}"
    page = await (await site.convo.client.get(path)).text()
    assert 'action="/conversations/' in page and ">Front desk</option>" in page and ">Reception<" not in page
    form = {"csrf_token": await site.csrf(path), "phone": "101"}
    response = await site.convo.client.post(path + "/call-back", data=form, allow_redirects=False)
    assert response.status == 303 and response.cookies["cb_phone"].value == "101"
    location = response.headers["Location"]
    assert location.startswith(path + "?call_back=")
    (sent,) = site.originates()
    assert (sent["Channel"], sent["Exten"]) == ("PJSIP/101", GLOW_CALLER)

    shown = await (await site.convo.client.get(location)).text()
    assert "data-call-back-url" in shown and 'value="101" selected' in shown  # the last phone chosen comes first
    url = status_url(location)

    async def talked() -> bool:
        status = await (await site.convo.client.get(url)).json()
        return bool(status["stage"] == Stage.TALKED.value)

    await until(talked)
    status = await (await site.convo.client.get(url)).json()
    assert status == {"id": url.rsplit("/", 1)[1], "stage": "talked", "in_progress": False,
                      "words": "Back room talked with the caller.", "phone": "101"}  # fmt: skip
    assert GLOW_CALLER not in str(status)


async def test_a_missed_calls_page_calls_its_caller_back(site: CallBackSite) -> None:
    await threads(site)
    await site.convo.log_in("glow")
    site.ami.originate_plan = OriginatePlan(desk=NO_ANSWER)
    page = await (await site.convo.client.get("/calls/1000.1")).text()
    assert 'action="/calls/1000.1/call-back"' in page
    form = {"csrf_token": await site.csrf("/calls/1000.1"), "phone": "100"}
    response = await site.convo.client.post("/calls/1000.1/call-back", data=form, allow_redirects=False)
    assert response.status == 303
    (sent,) = site.originates()
    assert (sent["Channel"], sent["Exten"]) == ("PJSIP/100", GLOW_CALLER)
    url = status_url(response.headers["Location"])

    async def ended() -> bool:
        return not (await (await site.convo.client.get(url)).json())["in_progress"]

    await until(ended)
    assert (await (await site.convo.client.get(url)).json())["words"] == (
        "Front desk didn't answer, so the caller wasn't called."
    )


async def test_another_business_thread_call_phone_and_status_are_refused_on_every_route(site: CallBackSite) -> None:
    glow, dental = await threads(site)
    await site.convo.log_in("dental")
    dental_page = f"/conversations/{dental.id}"
    csrf = await site.csrf(dental_page)
    client = site.convo.client
    for path in (f"/conversations/{glow.id}/call-back", "/calls/1000.1/call-back"):  # Glow's thread and call
        refused = await client.post(path, data={"csrf_token": csrf, "phone": "200"}, allow_redirects=False)
        assert refused.status == 404, path
    for phone in ("100", "101", "999", ""):  # Glow's desks, none, nothing
        refused = await client.post(dental_page + "/call-back", data={"csrf_token": csrf, "phone": phone})
        assert refused.status == 400 and "Choose one of your business" in await refused.text()
    assert site.originates() == []

    await site.convo.log_in("glow")
    glow_page = f"/conversations/{glow.id}"
    started = await client.post(
        glow_page + "/call-back", data={"csrf_token": await site.csrf(glow_page), "phone": "100"},
        allow_redirects=False,
    )  # fmt: skip
    url = status_url(started.headers["Location"])
    await site.convo.log_in("dental")
    assert (await client.get(url)).status == 404  # Glow's call back is none of Dental's business
    assert "data-call-back-url" not in await (await client.get(f"{dental_page}?call_back={url[-16:]}")).text()
    await site.convo.log_in("admin")
    assert (await client.get(url)).status == 200  # an admin may follow any
    admin_page = await (await client.get(glow_page)).text()
    assert ">Front desk</option>" in admin_page and ">Reception<" not in admin_page  # Glow's phones only


async def test_a_double_click_starts_one_call_back(site: CallBackSite) -> None:
    glow, _ = await threads(site)
    await site.convo.log_in("glow")
    site.ami.originate_plan = OriginatePlan(desk_ring_s=1.0)
    path = f"/conversations/{glow.id}"
    form = {"csrf_token": await site.csrf(path), "phone": "100"}
    first = await site.convo.client.post(path + "/call-back", data=form, allow_redirects=False)
    second = await site.convo.client.post(path + "/call-back", data=form, allow_redirects=False)
    assert first.headers["Location"] == second.headers["Location"]
    assert len(site.originates()) == 1


async def test_the_api_calls_back_with_a_business_token(site: CallBackSite) -> None:
    glow, dental = await threads(site)
    client = site.convo.client
    glow_auth = {"Authorization": f"Bearer {GLOW_TOKEN}"}
    site.ami.originate_plan = OriginatePlan(desk_ring_s=0.5)
    started = await client.post(f"/api/v1/conversations/{glow.id}/call-back", json={"phone": "100"}, headers=glow_auth)
    assert started.status == 202
    body = await started.json()
    assert body["stage"] == "ringing_desk" and body["words"].startswith("Ringing Front desk")
    again = await client.post(f"/api/v1/conversations/{glow.id}/call-back", json={"phone": "100"}, headers=glow_auth)
    assert again.status == 200 and (await again.json())["id"] == body["id"]
    status = await client.get(f"/api/v1/call-backs/{body['id']}", headers=glow_auth)
    assert status.status == 200 and (await status.json())["id"] == body["id"]

    other = await client.post(f"/api/v1/conversations/{dental.id}/call-back", json={"phone": "200"}, headers=glow_auth)
    assert other.status == 404  # Dental's thread: none for a Glow token
    wrong = await client.post(f"/api/v1/conversations/{glow.id}/call-back", json={"phone": "200"}, headers=glow_auth)
    assert wrong.status == 400 and (await wrong.json())["reason"] == "no_phone"
    bad = await client.post(f"/api/v1/conversations/{glow.id}/call-back", json={"phone": 100}, headers=glow_auth)
    assert bad.status == 400
    anonymous = await client.post(f"/api/v1/conversations/{glow.id}/call-back", json={"phone": "100"})
    assert anonymous.status == 401
    assert len(site.originates()) == 1

    all_auth = {"Authorization": f"Bearer {ALL_TOKEN}"}
    dental_started = await client.post(
        f"/api/v1/conversations/{dental.id}/call-back", json={"phone": "200"}, headers=all_auth
    )
    assert dental_started.status == 202
    dental_id = (await dental_started.json())["id"]
    assert (await client.get(f"/api/v1/call-backs/{dental_id}", headers=glow_auth)).status == 404


async def test_refused_by_asterisk_the_owner_reads_call_back_is_not_available(site: CallBackSite) -> None:
    glow, _ = await threads(site)
    site.ami.write_classes = {"reporting"}
    await site.convo.log_in("glow")
    path = f"/conversations/{glow.id}"
    response = await site.convo.client.post(path + "/call-back", data={"csrf_token": await site.csrf(path),
                                                                        "phone": "100"})  # fmt: skip
    page = await response.text()
    assert response.status == 200 and "Call back isn&#39;t available" in page
    assert "manager.conf" not in page and "Originate" not in page
    api = await site.convo.client.post(
        f"/api/v1/conversations/{glow.id}/call-back", json={"phone": "101"},
        headers={"Authorization": f"Bearer {GLOW_TOKEN}"},
    )  # fmt: skip
    assert api.status == 503 and (await api.json())["stage"] == "refused"
    health = await (await site.convo.client.get("/healthz")).json()  # the installer's side of it
    assert "manager.conf" in health["call_back"]["problem"] and "originate" in health["call_back"]["problem"]
    site.ami.write_classes = None  # re-rendered: the next call back works, and health no longer says it
    await site.convo.client.post(path + "/call-back", data={"csrf_token": await site.csrf(path), "phone": "101"})
    assert "call_back" not in await (await site.convo.client.get("/healthz")).json()
