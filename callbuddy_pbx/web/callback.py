"""Call back from the dashboard: a business user rings one of their business's phones, then the caller.

    POST /conversations/{thread}/call-back   form: phone, csrf_token; from a conversation
    POST /calls/{linkedid}/call-back         form: phone, csrf_token; from a missed call's page
    GET  /call-backs/{id}                    JSON: how far it got, in words (the page polls it while it goes on)

The caller calls the business's caller: a thread or a call the viewer may not see is the 404 of none, a phone that
is not one of that business's is refused, and only a thread's or a call's own number is ever called (never a number
from the request). The form's answer is a redirect to the page with the call back's status (`?call_back=<id>`); a
second press while one is on its way shows that one (asterisk/callbacks.py allows one per user and caller). The
last phone chosen is remembered in a cookie, for the next call back from this browser.

The call backs come from the running service under `CALL_BACKS_KEY` (service/site.py sets it); without it the
pages say call back is not available.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from callbuddy_pbx.asterisk.callback import Stage
from callbuddy_pbx.asterisk.callbacks import NO_NUMBER, CallBack, CallBackRefused
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.web import callback_words
from callbuddy_pbx.web.conversations_live import visible_thread
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.page import NOT_FOUND, Handler, PageError, page
from callbuddy_pbx.web.viewer import Viewer

PHONE_COOKIE = "cb_phone"
CALL_BACK_ID = "[0-9a-f]{16}"
MAX_LINKEDID_CHARS = 200
_NO_STORE = {"Cache-Control": "no-store"}


class CallingBack(Protocol):
    """What the pages and the API need of the call backs (asterisk/callbacks.CallBacks)."""

    def phones_of(self, business: str) -> list[Phone]: ...

    async def start(self, business: str, number: str, extension: str, user: str) -> tuple[CallBack, bool]: ...

    def get(self, call_back_id: str) -> CallBack | None: ...


CALL_BACKS_KEY = web.AppKey("call_backs", CallingBack)


def call_backs_of(app: web.Application) -> CallingBack | None:
    return app.get(CALL_BACKS_KEY)


def progress(call_back: CallBack) -> dict[str, Any]:
    """A call back as the status endpoint and the API give it: no number, no channel."""
    return {
        "id": call_back.id,
        "stage": call_back.stage.value,
        "in_progress": call_back.progress.in_progress,
        "words": callback_words.progress_words(call_back.stage, call_back.phone.name),
        "phone": call_back.phone.extension,
    }


def panel(request: web.Request, viewer: Viewer, business: str, number: str | None, action: str) -> dict[str, Any]:
    """What the "Call back" block of a thread or a call shows: the phones to ring (the last one chosen first), and
    the status of the call back `?call_back=` names, when it is this business's."""
    call_backs = call_backs_of(request.app)
    phones = call_backs.phones_of(business) if call_backs is not None else []
    shown = call_backs.get(request.query.get("call_back", "")) if call_backs is not None else None
    if shown is not None and shown.business != business:
        shown = None
    return {
        "action": action,
        "phones": phones if number else [],
        "chosen": request.cookies.get(PHONE_COOKIE, ""),
        "status": progress(shown) if shown is not None else None,
        "note": "" if number else callback_words.NO_NUMBER,
        "not_set_up": callback_words.NOT_SET_UP if not phones else "",
    }


def call_back_routes(app: web.Application, ctx: DashboardContext, thread_path: str) -> None:
    """Added by web/conversations.py (`thread_path`: its THREAD_PATH)."""
    app.router.add_post(thread_path + "/call-back", thread_call_back(ctx))
    app.router.add_post("/calls/{linkedid}/call-back", call_call_back(ctx))
    app.router.add_get("/call-backs/{id:" + CALL_BACK_ID + "}", status_handler())


def thread_call_back(ctx: DashboardContext) -> Handler:
    async def call_back(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        thread = await visible_thread(ctx, viewer, request.match_info["thread"])
        return await _start(request, viewer, thread.business, thread.number, f"/conversations/{thread.id}")

    return page(call_back)


def call_call_back(ctx: DashboardContext) -> Handler:
    async def call_back(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        linkedid = request.match_info["linkedid"]
        if len(linkedid) > MAX_LINKEDID_CHARS:
            raise PageError(404, NOT_FOUND)
        found = await ctx.store.list_calls(linkedid=linkedid, businesses=viewer.scope, limit=1)
        if not found or not viewer.may_see(found[0].business) or found[0].business is None:
            raise PageError(404, NOT_FOUND)
        record = found[0]
        return await _start(request, viewer, record.business or "", record.caller or "", f"/calls/{linkedid}")

    return page(call_back)


async def _start(request: web.Request, viewer: Viewer, business: str, number: str, back: str) -> web.StreamResponse:
    call_backs = call_backs_of(request.app)
    if call_backs is None:
        raise PageError(400, callback_words.progress_words(Stage.UNAVAILABLE, "the phone"))
    form = await request.post()  # CSRF checked by the middleware
    phone = form.get("phone")
    try:
        call_back, _ = await call_backs.start(business, number, phone if isinstance(phone, str) else "", viewer.name)
    except CallBackRefused as refused:
        words = callback_words.NO_NUMBER if refused.reason == NO_NUMBER else callback_words.NO_PHONE
        raise PageError(400, words) from None
    response = web.HTTPSeeOther(f"{back}?call_back={call_back.id}#call-back")
    response.set_cookie(
        PHONE_COOKIE, call_back.phone.extension, max_age=365 * 86400, httponly=True, samesite="Lax",
        secure=request.secure, path="/",
    )  # fmt: skip
    raise response


def status_handler() -> Handler:
    async def status(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        call_backs = call_backs_of(request.app)
        found = call_backs.get(request.match_info["id"]) if call_backs is not None else None
        if found is None or not viewer.may_see(found.business):  # another business's: the same as none
            return web.json_response({"error": "no such call back"}, status=404, headers=_NO_STORE)
        return web.json_response(progress(found), headers=_NO_STORE)

    return page(status)
