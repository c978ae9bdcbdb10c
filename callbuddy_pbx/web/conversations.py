"""Conversations on the dashboard: add them with `conversation_routes(app, ctx, answers)`.

    GET  /conversations                 threads newest activity first (?unread=1: unread only; ?business=)
    GET  /conversations/live            the list's changes as Server-Sent Events (web/conversations_live.py)
    GET  /conversations/{thread}        one thread: missed calls, texts with their receipts, replies, answers
    GET  /conversations/{thread}/live   the thread's new and changed entries as Server-Sent Events
    POST /conversations/{thread}/answer a business user's answer (form: body, token, csrf_token)
    POST /conversations/{thread}/call-back, /calls/{linkedid}/call-back, GET /call-backs/{id}: web/callback.py

A thread the viewer may not see is the same 404 as no thread. Opening a thread as a user of its business marks it
read up to the newest reply shown (an admin looking does not: the business has not read it). An answer goes to the
answerer (`Answering`, recovery/answers.Answers in the service): the form carries a token drawn when the page was
rendered, the answer's idempotency key, so a double click or a resent form stores one text; success is a redirect
(a reload of the result is a GET). A refusal shows the thread again with why, and the words typed.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol
from urllib.parse import urlencode

from aiohttp import web

from callbuddy_pbx.store.conversations import (
    DUPLICATE,
    QUEUED,
    REFUSED,
    AnswerOutcome,
    Thread,
    ThreadItem,
    list_threads,
    mark_read,
    thread_items,
)
from callbuddy_pbx.web import conversation_words, labels
from callbuddy_pbx.web.callback import call_back_routes, panel
from callbuddy_pbx.web.conversations_live import thread_list_stream, thread_stream, visible_thread
from callbuddy_pbx.web.dashboard_context import DashboardContext
from callbuddy_pbx.web.feed_query import business_choices, chosen_business
from callbuddy_pbx.web.live import LiveFeeds
from callbuddy_pbx.web.page import Handler, page, render
from callbuddy_pbx.web.viewer import Viewer

THREAD_PATH = "/conversations/{thread:[mr][0-9]{1,18}}"


class Answering(Protocol):
    """What the pages and the API need of the answerer (recovery.answers.Answers)."""

    def can_answer(self, business: str) -> bool: ...

    def quiet_until(self, business: str) -> float | None: ...

    async def answer(self, business: str, number: str, body: str, token: str, author: str) -> AnswerOutcome: ...


def item_values(zone: str) -> dict[str, Any]:
    """What the item partial needs besides the item and the viewer (also what the live stream renders with)."""
    return {"zone": zone, "words": conversation_words, "labels": labels}


def conversation_routes(app: web.Application, ctx: DashboardContext, answers: Answering | None) -> None:
    feeds = LiveFeeds()
    app.on_shutdown.append(feeds.stop)
    app.router.add_get("/conversations", list_handler(ctx))
    app.router.add_get("/conversations/live", thread_list_stream(ctx, feeds), allow_head=False)
    app.router.add_get(THREAD_PATH, thread_handler(ctx, answers))
    app.router.add_get(THREAD_PATH + "/live", thread_stream(ctx, feeds), allow_head=False)
    app.router.add_post(THREAD_PATH + "/answer", answer_handler(ctx, answers))
    call_back_routes(app, ctx, THREAD_PATH)


def list_handler(ctx: DashboardContext) -> Handler:
    async def conversations(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        business = chosen_business(ctx, viewer, request.query.get("business", ""))
        unread_only = request.query.get("unread") == "1"
        started = ctx.clock()  # the live stream starts before the read: a change meanwhile is sent, not lost
        threads = await list_threads(ctx.store, viewer.scope, business=business, unread_only=unread_only)
        zone = ctx.timezone_of(business) if business else ctx.common_timezone(viewer.scope)
        query = {"since": repr(started), "unread": "1" if unread_only else "", "business": business or ""}
        live = "/conversations/live?" + urlencode({key: value for key, value in query.items() if value})
        return render(
            request,
            "conversations.html",
            threads=threads,
            unread_only=unread_only,
            business=business or "",
            choices=business_choices(ctx, viewer),
            live_url=live,
            zone=zone,
        )

    return page(conversations)


def thread_handler(ctx: DashboardContext, answers: Answering | None) -> Handler:
    async def thread(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        found = await visible_thread(ctx, viewer, request.match_info["thread"])
        return await thread_page(request, ctx, viewer, found, answers)

    return page(thread)


async def thread_page(
    request: web.Request,
    ctx: DashboardContext,
    viewer: Viewer,
    thread: Thread,
    answers: Answering | None,
    *,
    status: int = 200,
    problem: str = "",
    typed: str = "",
) -> web.Response:
    started = ctx.clock()
    items = await thread_items(ctx.store, thread.number, thread.business)
    await read_up_to(ctx, viewer, thread, items)
    zone = ctx.timezone_of(thread.business)
    can_answer = answers is not None and answers.can_answer(thread.business)
    quiet_until = answers.quiet_until(thread.business) if answers is not None and can_answer else None
    return render(
        request,
        "thread.html",
        status=status,
        thread=thread,
        items=items,
        live_url=f"/conversations/{thread.id}/live?since={started!r}",
        can_answer=can_answer,
        quiet_note=conversation_words.quiet_note(quiet_until, zone) if quiet_until is not None else "",
        problem=problem,
        typed=typed,
        answer_token=secrets.token_urlsafe(18),
        opted_out_note=conversation_words.OPTED_OUT_NOTE,
        not_set_up=conversation_words.refusal("not_set_up")[1],
        call_back=panel(request, viewer, thread.business, thread.number, f"/conversations/{thread.id}/call-back"),
        **item_values(zone),
    )


async def read_up_to(ctx: DashboardContext, viewer: Viewer, thread: Thread, items: list[ThreadItem]) -> None:
    """A user of the thread's business saw these entries: the thread is read up to the newest reply among them."""
    replies = [item.at for item in items if item.kind == "reply"]
    if replies and not viewer.is_admin and thread.business in viewer.businesses:
        await mark_read(ctx.store, thread.number, thread.business, max(replies), viewer.name)


def answer_handler(ctx: DashboardContext, answers: Answering | None) -> Handler:
    async def answer(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        thread = await visible_thread(ctx, viewer, request.match_info["thread"])
        form = await request.post()  # bounded by the app's client_max_size; CSRF checked by the middleware
        body, token = form.get("body"), form.get("token")
        typed = body if isinstance(body, str) else ""  # the answerer bounds it; the page shows its first 640
        if answers is None:
            outcome = AnswerOutcome(REFUSED, "not_set_up")
        else:
            given = token if isinstance(token, str) else ""
            outcome = await answers.answer(thread.business, thread.number, typed, given, viewer.name)
        if outcome.status in (QUEUED, DUPLICATE):
            anchor = f"#text-{outcome.text_id}" if outcome.text_id is not None else ""
            raise web.HTTPSeeOther(f"/conversations/{thread.id}{anchor}")
        status, problem = conversation_words.refusal(outcome.reason)
        return await thread_page(request, ctx, viewer, thread, answers, status=status, problem=problem, typed=typed)

    return page(answer)
