"""Conversations in the JSON API, behind the same per-business bearer tokens (added by web/api.py):

- GET  /api/v1/conversations?business=NAME&unread=1&limit=100: threads, newest activity first.
- GET  /api/v1/conversations/{thread}: one thread with its entries (calls, texts and their states, replies).
- POST /api/v1/conversations/{thread}/answers, JSON `{"text": "...", "idempotency_key": "..."}` (or the
  `Idempotency-Key` header): the business's answer, with the dashboard's rules. 201 queued, 200 the same key was
  sent before (nothing new is sent), 409 the caller opted out, 429 too many answers, 400 a bad request.

A token limited to some businesses sees and answers only their threads; another's thread is the 404 of no thread.
Reading a thread through the API does not mark it read: a tool polling it must not hide replies from the owner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.store.conversations import (
    DUPLICATE,
    MAX_THREADS,
    QUEUED,
    Thread,
    find_thread,
    list_threads,
    thread_items,
)
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web.api_json import Handler, Scoped, json_answer, json_object, token_scope
from callbuddy_pbx.web.conversation_words import refusal
from callbuddy_pbx.web.conversations import THREAD_PATH, Answering

MAX_JSON_BYTES = 8192  # an answer is at most 640 characters
_json, _scope = json_answer, token_scope


def thread_dict(thread: Thread) -> dict[str, Any]:
    return asdict(thread)


def conversation_api_routes(
    app: web.Application, store: CallStore, authorised: Callable[[Scoped], Handler], answers: Answering | None
) -> None:
    async def threads(request: web.Request, token: ApiToken) -> web.StreamResponse:
        business = request.query.get("business") or None
        if business is not None and token.businesses and business not in token.businesses:
            return _json({"error": "this token may not read that business"}, 403)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_THREADS:
            return _json({"error": f"limit: expected a whole number from 1 to {MAX_THREADS}"}, 400)
        found = await list_threads(
            store, _scope(token), business=business, unread_only=request.query.get("unread") == "1", limit=limit
        )
        return _json({"conversations": [thread_dict(thread) for thread in found]})

    async def thread(request: web.Request, token: ApiToken) -> web.StreamResponse:
        found = await find_thread(store, request.match_info["thread"], _scope(token))
        if found is None:  # never there, or another business's: the same answer
            return _json({"error": "no such conversation"}, 404)
        items = await thread_items(store, found.number, found.business)
        return _json({**thread_dict(found), "items": [asdict(item) for item in items]})

    async def answer(request: web.Request, token: ApiToken) -> web.StreamResponse:
        found = await find_thread(store, request.match_info["thread"], _scope(token))
        if found is None:
            return _json({"error": "no such conversation"}, 404)
        body = await json_object(request, MAX_JSON_BYTES)
        if isinstance(body, web.Response):
            return body
        text = body.get("text")
        key = request.headers.get("Idempotency-Key") or body.get("idempotency_key")
        if not isinstance(text, str) or not isinstance(key, str):
            return _json({"error": 'expected {"text": "...", "idempotency_key": "..."}'}, 400)
        if answers is None:
            status, message = refusal("not_set_up")
            return _json({"error": message, "reason": "not_set_up"}, status)
        outcome = await answers.answer(found.business, found.number, text, key, f"api:{token.name}")
        if outcome.status in (QUEUED, DUPLICATE):
            reply = {"status": outcome.status, "text_id": outcome.text_id, "send_at": outcome.send_at}
            return _json(reply, 201 if outcome.status == QUEUED else 200)
        status, message = refusal(outcome.reason)
        return _json({"error": message, "reason": outcome.reason}, status)

    api_thread = "/api/v1" + THREAD_PATH
    app.router.add_get("/api/v1/conversations", authorised(threads))
    app.router.add_get(api_thread, authorised(thread))
    app.router.add_post(api_thread + "/answers", authorised(answer))
