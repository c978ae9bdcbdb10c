"""Conversations: one thread per (caller number, business), read from what is stored already: the missed calls
from that number, the texts sent to it (`messages`, any kind) and its replies (`inbound_messages`).

A thread is named by an anchor row, `m<id>` (its first text) or `r<id>` (its first reply, when it has no text;
any of its rows names it too), never by the number: a page address must not show a number to a user who sees
numbers masked. A thread exists once the business texted the number or the number texted the business; a missed
call alone is not a conversation.

Read state is one row per thread (`thread_reads`), shared by the business's users, as in a shared inbox: the reply
one person read is read for the desk. A business answer is an outbox row of kind ANSWER (the durable outbox sends
it like any text), its author kept beside it (`message_authors`). Every value is bound; the SQL text is fixed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callbuddy_pbx.store.db import CallStore, scope_param
from callbuddy_pbx.store.engine import Connection, Dialect, Row, Sql, per_dialect
from callbuddy_pbx.store.locks import lock_recipient
from callbuddy_pbx.store.messages import NewText

ANSWER = "answer"  # the outbox kind of a business's answer from a thread
MAX_THREADS = 200
MAX_ITEMS = 300  # the newest items of a thread shown; older ones are in the call pages and the CSV
MAX_AUTHOR_CHARS = 64
ANSWERS_PER_MINUTE = 10  # per thread: a stuck script or a held-down key cannot flood a caller
QUEUED, DUPLICATE, REFUSED = "queued", "duplicate", "refused"
OPTED_OUT, TOO_MANY = "opted_out", "too_many"
_THREAD_ID = re.compile(r"([mr])([0-9]{1,18})")

# Which rows a query reads, per table, by what picks them: every row in scope (the list), one thread's rows (by
# the indexes on number and business), or the rows of the threads with a row changed since a moment (the live list).
# The fragments are fixed text, chosen by the caller of `_threads_sql`, never built from data.
_PICK: dict[str, tuple[str, str, str]] = {
    "all": ("1 = 1", "1 = 1", "1 = 1"),
    "one": (
        "to_number = :number AND business = :business",
        "sender = :number AND business = :business",
        "caller = :number AND business = :business",
    ),
    "changed": (
        "(to_number, business) IN (SELECT number, business FROM changed)",
        "(sender, business) IN (SELECT number, business FROM changed)",
        "(caller, business) IN (SELECT number, business FROM changed)",
    ),
}


# The threads (number, business) with a row changed at or after :changed_since (empty without one). `+missed`
# (here and below: `unindexed`) keeps SQLite on the indexes of the change time and of the caller, not of `missed`
# (most calls).
def _changed(d: Dialect) -> str:
    return f"""
    changed (number, business) AS (
        SELECT to_number, business FROM messages WHERE updated_at >= :changed_since
        UNION SELECT sender, business FROM inbound_messages WHERE received_at >= :changed_since
        UNION SELECT caller, business FROM calls WHERE recorded_at >= :changed_since AND {d.unindexed("missed")} = 1
    ),
"""  # noqa: S608 (fixed text; every value is bound)


def _threads_sql(pick: str, d: Dialect) -> str:
    """Threads newest activity first: grouped and cut to :limit first, then only those are described (unread
    count, caller name, opt-out, last words), so a list costs one pass over the rows plus :limit lookups."""
    texts, replies, calls = _PICK[pick]
    scoped = d.in_scope("business")
    return f"""
    WITH {_changed(d)}
    events AS (
        SELECT to_number AS number, business, created_at AS at, updated_at AS changed_at, 'text' AS what,
               id AS text_id, NULL AS reply_id
        FROM messages WHERE business IS NOT NULL AND {scoped} AND {texts}
        UNION ALL
        SELECT sender, business, received_at, received_at, 'reply', NULL, id
        FROM inbound_messages WHERE business IS NOT NULL AND {scoped} AND {replies}
        UNION ALL
        SELECT caller, business, ended_at, recorded_at, 'call', NULL, NULL
        FROM calls
        WHERE {d.unindexed("missed")} = 1 AND caller IS NOT NULL AND business IS NOT NULL AND {scoped} AND {calls}
    ),
    threads AS (
        SELECT number, business, MAX(at) AS last_at, MAX(changed_at) AS changed_at,
               MIN(text_id) AS first_text, MIN(reply_id) AS first_reply,
               COUNT(*) FILTER (WHERE what = 'call') AS missed_calls,
               MAX(CASE WHEN what = 'reply' THEN at END) AS last_reply_at
        FROM events
        WHERE (CAST(:business AS TEXT) IS NULL OR business = :business)
        GROUP BY number, business
        HAVING MIN(text_id) IS NOT NULL OR MIN(reply_id) IS NOT NULL
    ),
    picked AS (
        SELECT t.*, r.read_at FROM threads AS t
        LEFT JOIN thread_reads AS r ON r.number = t.number AND r.business = t.business
        WHERE (:unread_only = 0 OR t.last_reply_at > COALESCE(r.read_at, 0))
        ORDER BY t.last_at DESC, t.number, t.business
        LIMIT :limit
    )
    SELECT p.*,
        (SELECT COUNT(*) FROM inbound_messages AS i WHERE i.sender = p.number AND i.business = p.business
           AND i.received_at > COALESCE(p.read_at, 0)) AS unread,
        -- `+c.business`: by the caller's index (a few calls), not the business's (all its calls, newest first).
        (SELECT caller_name FROM calls AS c WHERE c.caller = p.number AND {d.unindexed("c.business")} = p.business
           AND COALESCE(c.caller_name, '') != '' ORDER BY c.ended_at DESC LIMIT 1) AS caller_name,
        COALESCE((SELECT o.opted_out FROM opt_outs AS o WHERE o.number = p.number AND o.business = p.business),
                 0) AS opted_out,
        (SELECT who || ':' || body FROM (
            SELECT 'reply' AS who, body, received_at AS at FROM inbound_messages
            WHERE sender = p.number AND business = p.business
            UNION ALL
            SELECT 'text', body, created_at FROM messages WHERE to_number = p.number AND business = p.business
         ) AS said ORDER BY at DESC LIMIT 1) AS last_said
    FROM picked AS p
    ORDER BY p.last_at DESC, p.number, p.business
    """  # noqa: S608 (fixed text; every value is bound)


_THREADS: dict[str, Sql] = {pick: per_dialect(functools.partial(_threads_sql, pick)) for pick in _PICK}
_CALLS = """
    SELECT linkedid, outcome, caller_name, ended_at, recorded_at FROM calls
    WHERE caller = ? AND business = ? AND missed = 1 AND recorded_at >= ? ORDER BY ended_at DESC LIMIT ?
"""
_TEXTS = """
    SELECT m.id, m.kind, m.body, m.state, m.created_at, m.updated_at, m.send_at, m.sent_at, m.done_at, m.error,
           a.author, m.sender
    FROM messages AS m LEFT JOIN message_authors AS a ON a.message_id = m.id
    WHERE m.to_number = ? AND m.business = ? AND m.updated_at >= ? ORDER BY m.created_at DESC, m.id DESC LIMIT ?
"""
_REPLIES = """
    SELECT id, body, keyword, received_at, to_number FROM inbound_messages
    WHERE sender = ? AND business = ? AND received_at >= ? ORDER BY received_at DESC, id DESC LIMIT ?
"""
_INSERT_ANSWER = """
    INSERT INTO messages (key, kind, linkedid, business, to_number, sender, gateway, body, state, attempts,
                          send_at, created_at, updated_at)
    VALUES (?, ?, NULL, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)
    ON CONFLICT (key) DO NOTHING
    RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Thread:
    id: str  # m<id> | r<id>: the anchor row (see the module's docstring)
    number: str
    business: str
    last_at: float  # newest call, text or reply
    changed_at: float  # newest change of any of its rows (a receipt too): the live list's cursor
    missed_calls: int
    unread: int  # replies after the thread was last read by the business
    caller_name: str | None
    opted_out: bool
    last_from: str  # "reply" | "text": who said the last words
    last_words: str


@dataclass(frozen=True, slots=True)
class ThreadItem:
    """One entry of a thread: a missed call, a text sent, or a reply; the fields of the other kinds are None."""

    kind: str  # "call" | "text" | "reply"
    ref: str  # unique in the thread: call-<linkedid>, text-<id>, reply-<id> (the page's element id)
    at: float  # when it happened: the thread's order
    changed_at: float  # when its row last changed (a text's receipt): the live stream's cursor
    body: str = ""
    text_kind: str | None = None  # missed_call | help | opt_out_confirmation | answer
    state: str | None = None  # a text's state, or a call's outcome
    send_at: float | None = None
    sent_at: float | None = None
    done_at: float | None = None
    error: str | None = None
    author: str | None = None  # who answered (answers only)
    keyword: str | None = None  # a reply's: opt_out | opt_in | help | other
    caller_name: str | None = None
    our_number: str | None = None  # a reply: the number it was sent to; a text: the number it came from


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """What became of an answer: QUEUED (in the outbox, going out at `send_at`), DUPLICATE (this answer was
    queued before: a double submit), or REFUSED with `reason` (OPTED_OUT, TOO_MANY, or the answerer's own)."""

    status: str
    reason: str | None = None
    send_at: float | None = None
    text_id: int | None = None


def _thread(row: Row) -> Thread:
    anchor = f"m{row['first_text']}" if row["first_text"] is not None else f"r{row['first_reply']}"
    who, _, words = str(row["last_said"] or "text:").partition(":")
    return Thread(
        id=anchor,
        number=row["number"],
        business=row["business"],
        last_at=float(row["last_at"]),
        changed_at=float(row["changed_at"]),
        missed_calls=int(row["missed_calls"]),
        unread=int(row["unread"]),
        caller_name=row["caller_name"],
        opted_out=bool(row["opted_out"]),
        last_from=who,
        last_words=words,
    )


async def list_threads(
    store: CallStore,
    scope: Sequence[str] | None,
    *,
    business: str | None = None,
    unread_only: bool = False,
    changed_since: float | None = None,
    limit: int = MAX_THREADS,
) -> list[Thread]:
    """Threads in `scope` (None: every business), newest activity first; `business`, `unread_only` and
    `changed_since` (any row of the thread changed at or after it) narrow the choice, never widen it."""
    if not 0 <= limit <= MAX_THREADS:
        raise ValueError(f"limit must be 0..{MAX_THREADS}, not {limit}")
    params = _thread_params(scope, business=business, number=None)
    params |= {"unread_only": int(unread_only), "changed_since": changed_since, "limit": limit}
    sql = _THREADS["all" if changed_since is None else "changed"]
    async with store.connection.execute(sql, params) as cursor:
        return [_thread(row) for row in await cursor.fetchall()]


async def find_thread(store: CallStore, thread_id: str, scope: Sequence[str] | None) -> Thread | None:
    """The thread an id names, if the scope may see it (another business's thread is None, like no thread). Any of
    its texts or replies names it: an address stays valid when a first text makes `m<id>` the thread's anchor."""
    match = _THREAD_ID.fullmatch(thread_id)
    if match is None:
        return None
    table, column = ("messages", "to_number") if match[1] == "m" else ("inbound_messages", "sender")
    async with store.connection.execute(
        f"SELECT {column}, business FROM {table} WHERE id = ?",  # noqa: S608 (two fixed names; the id is bound)
        (int(match[2]),),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row[1] is None:
        return None
    params = _thread_params(scope, business=row[1], number=row[0])
    params |= {"unread_only": 0, "changed_since": None, "limit": 1}
    async with store.connection.execute(_THREADS["one"], params) as cursor:
        found = await cursor.fetchone()
    return _thread(found) if found is not None else None


def _thread_params(scope: Sequence[str] | None, *, business: str | None, number: str | None) -> dict[str, Any]:
    return {"businesses": scope_param(scope), "business": business, "number": number}


async def thread_items(
    store: CallStore, number: str, business: str, *, changed_since: float = 0.0, limit: int = MAX_ITEMS
) -> list[ThreadItem]:
    """The thread's calls, texts and replies (those changed at or after `changed_since`), oldest first: the
    newest `limit` of them."""
    conn = store.connection
    items: list[ThreadItem] = []
    async with conn.execute(_CALLS, (number, business, changed_since, limit)) as cursor:
        for row in await cursor.fetchall():
            items.append(
                ThreadItem(
                    "call",
                    f"call-{row['linkedid']}",
                    row["ended_at"],
                    row["recorded_at"],
                    state=row["outcome"],
                    caller_name=row["caller_name"],
                )
            )
    async with conn.execute(_TEXTS, (number, business, changed_since, limit)) as cursor:
        for row in await cursor.fetchall():
            items.append(
                ThreadItem(
                    "text",
                    f"text-{row['id']}",
                    row["created_at"],
                    row["updated_at"],
                    body=row["body"],
                    text_kind=row["kind"],
                    state=row["state"],
                    send_at=row["send_at"],
                    sent_at=row["sent_at"],
                    done_at=row["done_at"],
                    error=row["error"],
                    author=row["author"],
                    our_number=row["sender"],
                )
            )
    async with conn.execute(_REPLIES, (number, business, changed_since, limit)) as cursor:
        for row in await cursor.fetchall():
            items.append(
                ThreadItem(
                    "reply",
                    f"reply-{row['id']}",
                    row["received_at"],
                    row["received_at"],
                    body=row["body"],
                    keyword=row["keyword"],
                    our_number=row["to_number"],
                )
            )
    items.sort(key=lambda item: (item.at, item.ref))
    return items[-limit:]


async def mark_read(store: CallStore, number: str, business: str, at: float, by: str) -> None:
    """The business read the thread up to `at` (a read mark never moves back: an older page opened late)."""
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO thread_reads (number, business, read_at, read_by) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (number, business) DO UPDATE SET read_at = excluded.read_at, read_by = excluded.read_by"
            " WHERE excluded.read_at > thread_reads.read_at",
            (number, business, at, by[:MAX_AUTHOR_CHARS]),
        )


async def number_texted(store: CallStore, number: str, business: str) -> str | None:
    """The business's number this caller last wrote to, else the one our last text came from: an answer goes
    out from it, so the caller sees one conversation on their phone."""
    for query in (
        "SELECT to_number FROM inbound_messages WHERE sender = ? AND business = ? ORDER BY received_at DESC LIMIT 1",
        "SELECT sender FROM messages WHERE to_number = ? AND business = ? ORDER BY created_at DESC LIMIT 1",
    ):
        async with store.connection.execute(query, (number, business)) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0]:
            return str(row[0])
    return None


async def queue_answer(store: CallStore, text: NewText, author: str, now: float) -> AnswerOutcome:
    """Queue a business's answer in the outbox, in one transaction with the checks that must hold when it is
    stored: not to a number that opted out of this business, not more than ANSWERS_PER_MINUTE to one thread, and
    once per key (the same form or API call sent twice is DUPLICATE, not a second text).

    Several instances on one PostgreSQL: the thread's lock (store/locks) makes the checks and the insert one step
    across them, and the key's unique index settles a double submit that reached two instances at once."""
    assert text.business is not None and text.kind == ANSWER
    async with store.transaction() as conn:
        await lock_recipient(conn, text.business, text.to)
        known = await _answer_by_key(conn, text.key)
        if known is not None:
            return known
        async with conn.execute(
            "SELECT opted_out FROM opt_outs WHERE number = ? AND business = ?", (text.to, text.business)
        ) as cursor:
            opt = await cursor.fetchone()
        if opt is not None and opt[0]:
            return AnswerOutcome(REFUSED, OPTED_OUT)
        async with conn.execute(
            "SELECT COUNT(*) FROM messages WHERE to_number = ? AND business = ? AND kind = ? AND created_at > ?",
            (text.to, text.business, ANSWER, now - 60.0),
        ) as cursor:
            recent = await cursor.fetchone()
        if recent is not None and recent[0] >= ANSWERS_PER_MINUTE:
            return AnswerOutcome(REFUSED, TOO_MANY)
        row = (text.key, ANSWER, text.business, text.to, text.sender, text.gateway, text.body, text.send_at, now, now)
        async with conn.execute(_INSERT_ANSWER, row) as cursor:
            inserted = await cursor.fetchone()
        if inserted is None:  # the same answer, stored by another instance since the look-up: that one stands
            return await _answer_by_key(conn, text.key) or AnswerOutcome(DUPLICATE)
        await conn.execute(
            "INSERT INTO message_authors (message_id, author) VALUES (?, ?)", (inserted[0], author[:MAX_AUTHOR_CHARS])
        )
    return AnswerOutcome(QUEUED, send_at=text.send_at, text_id=int(inserted[0]))


async def _answer_by_key(conn: Connection, key: str) -> AnswerOutcome | None:
    """DUPLICATE with the stored answer's id and time, when an answer with this key is stored."""
    async with conn.execute("SELECT id, send_at FROM messages WHERE key = ?", (key,)) as cursor:
        known = await cursor.fetchone()
    return None if known is None else AnswerOutcome(DUPLICATE, send_at=known[1], text_id=known[0])
