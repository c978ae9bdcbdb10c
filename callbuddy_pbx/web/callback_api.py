"""Call back in the JSON API, behind the same per-business bearer tokens (added by web/api.py):

- POST /api/v1/conversations/{thread}/call-back, JSON `{"phone": "100"}` (one of the thread's business's phones):
  202 with the call back (`id`, `stage`, `in_progress`, `words`, `phone`) when started, 200 with the one already on
  its way for this token and caller, 400 a phone that is not the business's, a number that cannot be called, or a
  bad body; 503 when call back is not available (no AMI link, or Asterisk refuses Originate: see `words`).
- GET /api/v1/call-backs/{id}: how far it got.

A token limited to some businesses calls back only their callers with their phones; another's thread or call back
is the 404 of none.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from callbuddy_pbx.asterisk.callback import Stage
from callbuddy_pbx.asterisk.callbacks import NO_NUMBER, CallBackRefused
from callbuddy_pbx.config.web import ApiToken
from callbuddy_pbx.store.conversations import find_thread
from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.web import callback_words
from callbuddy_pbx.web.api_json import Handler, Scoped, json_answer, json_object, token_scope
from callbuddy_pbx.web.callback import CALL_BACK_ID, call_backs_of, progress
from callbuddy_pbx.web.conversations import THREAD_PATH

MAX_JSON_BYTES = 1024
_UNAVAILABLE = frozenset({Stage.REFUSED, Stage.UNAVAILABLE})


_json = json_answer


def _allows(token: ApiToken, business: str) -> bool:
    return not token.businesses or business in token.businesses


def call_back_api_routes(app: web.Application, store: CallStore, authorised: Callable[[Scoped], Handler]) -> None:
    async def start(request: web.Request, token: ApiToken) -> web.StreamResponse:
        thread = await find_thread(store, request.match_info["thread"], token_scope(token))
        if thread is None:
            return _json({"error": "no such conversation"}, 404)
        body = await json_object(request, MAX_JSON_BYTES)
        if isinstance(body, web.Response):
            return body
        phone = body.get("phone")
        if not isinstance(phone, str):
            return _json({"error": 'expected {"phone": "<extension>"}'}, 400)
        call_backs = call_backs_of(request.app)
        if call_backs is None:
            return _json({"error": callback_words.progress_words(Stage.UNAVAILABLE, "the phone")}, 503)
        try:
            call_back, started = await call_backs.start(thread.business, thread.number, phone, f"api:{token.name}")
        except CallBackRefused as refused:
            words = callback_words.NO_NUMBER if refused.reason == NO_NUMBER else callback_words.NO_PHONE
            return _json({"error": words, "reason": refused.reason}, 400)
        if call_back.stage in _UNAVAILABLE:
            return _json({**progress(call_back), "error": progress(call_back)["words"]}, 503)
        return _json(progress(call_back), 202 if started else 200)

    async def status(request: web.Request, token: ApiToken) -> web.StreamResponse:
        call_backs = call_backs_of(request.app)
        found = call_backs.get(request.match_info["id"]) if call_backs is not None else None
        if found is None or not _allows(token, found.business):
            return _json({"error": "no such call back"}, 404)
        return _json(progress(found))

    app.router.add_post("/api/v1" + THREAD_PATH + "/call-back", authorised(start))
    app.router.add_get("/api/v1/call-backs/{id:" + CALL_BACK_ID + "}", authorised(status))
