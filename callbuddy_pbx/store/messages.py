"""MessageStore: the durable outbox of texts, the policy's verdicts, opt-outs, inbound texts and receipts.

Every write is one transaction on the CallStore's connection, so a call, its verdict and its text are stored
together or not at all: a crash can neither lose a decided text nor let a replayed call create a second one
(the text's key is the call's linkedid, UNIQUE in the table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from callbuddy_pbx.model import CallRecord
from callbuddy_pbx.sms.gateway import DeliveryReport, DeliveryState
from callbuddy_pbx.store import claims
from callbuddy_pbx.store.db import CallStore, insert_calls, scope_param
from callbuddy_pbx.store.engine import Connection, Row, per_dialect
from callbuddy_pbx.store.forwards import NewForward, insert_forwards
from callbuddy_pbx.store.instance import this_process
from callbuddy_pbx.store.links import NewLink, insert_links
from callbuddy_pbx.store.locks import lock_recipient

# States of a text. `unknown`: the process died while the gateway had it; it is never re-sent blindly.
QUEUED, SENDING, SENT, DELIVERED, FAILED, EXPIRED, UNKNOWN, CANCELLED = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "expired",
    "unknown",
    "cancelled",
)
MESSAGE_STATES: tuple[str, ...] = (QUEUED, SENDING, SENT, DELIVERED, FAILED, EXPIRED, UNKNOWN, CANCELLED)
FINAL_STATES = frozenset({DELIVERED, FAILED, EXPIRED, CANCELLED})
EARLY_REPORT_KEEP_S = 7 * 86400.0  # a receipt for no known text is kept this long, in case its text turns up
# How long after its send a text may still get a receipt. Message ids are not unique for ever: an SMSC or provider
# numbers its messages from a counter that wraps or restarts (the demo's SMSC starts at 1000001 each run), so a
# receipt goes to the newest text with its id (and its number, when the receipt names one) sent within this window,
# never to an older one. A text lives at most its validity period at the SMSC: we set none, so it is the SMSC's
# default, 24 to 72 h at the SMSCs and providers we know of (72 h is the usual maximum), after which the SMSC sends
# its last receipt (EXPIRED). One day on top covers receipts that arrive late (queued at the SMSC, a link down).
RECEIPT_WINDOW_S = 72 * 3600.0 + 86400.0
# Texts that count toward "one text per caller per window" (a failed or cancelled one did not reach the caller).
_LAST_TEXT = """
    SELECT MAX(created_at) FROM messages
    WHERE to_number = ? AND business = ? AND kind = 'missed_call' AND created_at >= ?
      AND state IN ('queued', 'sending', 'sent', 'delivered', 'unknown')
"""
TEXTED_IN_WINDOW = "already_texted_in_window"  # policy.Reason.ALREADY_TEXTED_IN_WINDOW (store/ imports no policy)
MAX_WINDOWS_KEPT = 10_000
_REPORT_STATES = {
    DeliveryState.DELIVERED: DELIVERED,
    DeliveryState.FAILED: FAILED,
    DeliveryState.EXPIRED: EXPIRED,
}


@dataclass(frozen=True, slots=True)
class NewText:
    key: str  # idempotency key: the call's linkedid, or for an answer the reply it answers (recovery.keys)
    kind: str  # "missed_call" | "opt_out_confirmation" | "help"
    to: str
    sender: str
    gateway: str
    body: str
    send_at: float
    business: str | None = None
    linkedid: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    linkedid: str
    send: bool
    reason: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    kind: str
    linkedid: str | None
    business: str | None
    to: str
    sender: str
    gateway: str
    body: str
    state: str
    attempts: int
    send_at: float
    created_at: float
    updated_at: float
    sent_at: float | None
    done_at: float | None
    message_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class SendUpdate:
    """What one send attempt changed: the new state, and when to try again for a retry."""

    id: int
    state: str
    attempts: int
    send_at: float
    message_id: str | None
    error: str | None
    at: float


@dataclass(frozen=True, slots=True)
class ReplyEffect:
    """What a reply from a phone does for one business: set its opt-out (True: STOP, False: START, None: leave
    it), and queue `text`; with `only_if_changed`, only when the opt-out changed (a STOP is confirmed once)."""

    business: str
    opted_out: bool | None = None
    text: NewText | None = None
    only_if_changed: bool = False


@dataclass(frozen=True, slots=True)
class RecipientFacts:
    opted_out: bool
    last_text_at: float | None


_INSERT_TEXT = """
    INSERT INTO messages (key, kind, linkedid, business, to_number, sender, gateway, body, state, attempts,
                          send_at, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)
    ON CONFLICT (key) DO NOTHING
"""
_SELECT_ROWS = f"SELECT {claims.OUTBOX_COLUMNS} FROM messages"  # noqa: S608 (fixed text)


_LIST = per_dialect(
    lambda d: (
        _SELECT_ROWS
        + f"""
    WHERE (CAST(:state AS TEXT) IS NULL OR state = :state)
      AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR created_at >= :since)
      AND (CAST(:linkedid AS TEXT) IS NULL OR linkedid = :linkedid) AND {d.in_scope("business")}
    ORDER BY created_at DESC, id DESC LIMIT :limit
"""
    )
)
# An `unknown` text a receipt names by its number and the start of its words (no id recorded for it yet).
_UNKNOWN_BY_WORDS = per_dialect(
    lambda d: (
        "SELECT id FROM messages WHERE gateway = ? AND state = 'unknown' AND message_id IS NULL"  # noqa: S608
        f" AND ltrim(to_number, '+') = ltrim(?, '+') AND {d.position('body', '?')} = 1"
        " ORDER BY updated_at, id LIMIT 1"
    )
)


def _row(row: Row) -> OutboxRow:
    return OutboxRow(*row)


def same_number(a: str, b: str) -> bool:
    """Whether two spellings name one phone number: the same digits, or one the other's national form (the longer
    ends with the shorter, of at least 7 digits). Receipts give E.164 as a rule; some SMSCs drop the `+` or the
    country code."""
    x, y = "".join(c for c in a if c.isdigit()), "".join(c for c in b if c.isdigit())
    if x == y:
        return bool(x)
    short, long = sorted((x, y), key=len)
    return len(short) >= 7 and long.endswith(short)


class MessageStore:
    """`instance` names this process in the texts it claims (store/instance.py; another name only in tests that run
    several instances in one process)."""

    def __init__(self, calls: CallStore, *, instance: str | None = None) -> None:
        self._calls = calls
        self.instance = instance if instance is not None else this_process()
        # (number, business) -> the window start `facts` was asked with: the policy decided on what it read, and
        # save_calls_with_texts checks again, under the pair's lock, that no other instance texted inside it since.
        self._windows: dict[tuple[str, str], float] = {}

    # ---- decisions ------------------------------------------------------------------------------------------

    async def save_calls_with_texts(
        self,
        records: Sequence[CallRecord],
        verdicts: Sequence[Verdict],
        texts: Sequence[NewText],
        cancel_for: Sequence[tuple[str, str, float]] = (),
        now: float = 0.0,
        *,
        links: Sequence[NewLink] = (),
    ) -> list[CallRecord]:
        """Store calls, and for the calls that are new their verdicts and texts; cancel texts still waiting for
        (number, business) pairs a person answered on a call started at or after the missed call ended (a call found
        late in Asterisk's records cancels nothing it came before). One transaction. Returns the new calls.

        `links` are the tracked-link tokens of `texts`: each is stored only when its text is (so a replayed call
        makes no second token, and the link in a stored text always resolves)."""
        async with self._calls.transaction() as conn:
            new = await insert_calls(conn, records)
            fresh = {record.linkedid for record in new}
            texts = [t for t in texts if t.linkedid is None or t.linkedid in fresh]
            late = await self._texted_since_decided(conn, texts)
            await conn.executemany(
                "INSERT INTO text_decisions (linkedid, send, reason, decided_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (linkedid) DO NOTHING",
                [
                    (v.linkedid, *((0, TEXTED_IN_WINDOW) if v.linkedid in late else (int(v.send), v.reason)), now)
                    for v in verdicts
                    if v.linkedid in fresh
                ],
            )
            stored = await self._insert_new_texts(conn, [t for t in texts if t.linkedid not in late], now)
            if links:
                await insert_links(conn, links, stored, now)
            await conn.executemany(
                "UPDATE messages SET state = 'cancelled', updated_at = ?, done_at = ?,"
                " error = 'answered on a later call'"
                " WHERE to_number = ? AND business = ? AND state = 'queued' AND kind = 'missed_call'"
                " AND linkedid IN (SELECT linkedid FROM calls WHERE ended_at <= ?)",
                [(now, now, number, business, started_at) for number, business, started_at in cancel_for],
            )
        return new

    async def _texted_since_decided(self, conn: Connection, texts: Sequence[NewText]) -> set[str]:
        """The calls among `texts`' whose caller got a missed-call text from this business inside the window the
        policy read (`facts`) after it read it: stored by another instance (on another Asterisk server's call) in
        between. Checked under each pair's lock (taken in one order, so two instances never wait on each other in a
        circle), so of two instances texting one caller at once the second sees the first's text."""
        asked = {
            (t.to, t.business): t.linkedid
            for t in texts
            if t.kind == "missed_call" and t.business is not None and t.linkedid is not None
        }
        late: set[str] = set()
        for (number, business), linkedid in sorted(asked.items()):
            window_start = self._windows.pop((number, business), None)
            if window_start is None:
                continue  # not decided on `facts` read here: nothing to check again
            await lock_recipient(conn, business, number)
            async with conn.execute(_LAST_TEXT, (number, business, window_start)) as cursor:
                row = await cursor.fetchone()
            # The policy's rule: a text exactly a window old no longer counts (now - last < window).
            if row is not None and row[0] is not None and row[0] > window_start:
                late.add(linkedid)
        return late

    async def enqueue(self, texts: Sequence[NewText], now: float) -> int:
        async with self._calls.transaction() as conn:
            return await self._insert_texts(conn, texts, now)

    @staticmethod
    async def _insert_texts(conn: Connection, texts: Sequence[NewText], now: float) -> int:
        return len(await MessageStore._insert_new_texts(conn, texts, now))

    @staticmethod
    async def _insert_new_texts(conn: Connection, texts: Sequence[NewText], now: float) -> set[str]:
        """Insert the texts whose key is not stored yet; return the keys of those inserted."""
        added: set[str] = set()
        for t in texts:
            row = (t.key, t.kind, t.linkedid, t.business, t.to, t.sender, t.gateway, t.body, t.send_at, now, now)
            async with conn.execute(_INSERT_TEXT, row) as cursor:
                if cursor.rowcount > 0:
                    added.add(t.key)
        return added

    async def facts(self, number: str, business: str, window_start: float) -> RecipientFacts:
        if len(self._windows) >= MAX_WINDOWS_KEPT:  # asked and never stored (the batch failed): forget the oldest
            del self._windows[next(iter(self._windows))]
        self._windows[(number, business)] = window_start
        conn = self._calls.connection
        async with conn.execute(
            "SELECT opted_out FROM opt_outs WHERE number = ? AND business = ?", (number, business)
        ) as cursor:
            row = await cursor.fetchone()
        opted_out = bool(row and row[0])
        async with conn.execute(_LAST_TEXT, (number, business, window_start)) as cursor:
            row = await cursor.fetchone()
        return RecipientFacts(opted_out, row[0] if row and row[0] is not None else None)

    # ---- the outbox -----------------------------------------------------------------------------------------

    async def recover_after_crash(self, now: float) -> int:
        """Texts left `sending` by a process that died: the gateway may or may not have them. Never re-send.
        At start: this instance's own leftovers and expired claims (on SQLite: every `sending` row; store/claims)."""
        return await claims.recover_at_start(self._calls, self.instance, now)

    async def settle_expired_claims(self, now: float) -> int:
        """Texts another instance was sending when it died (its claim's lease ran out): `unknown`, never re-sent."""
        return await claims.settle_expired(self._calls, self.instance, now)

    async def renew_claims(self, ids: Sequence[int], until: float) -> int:
        """Keep this instance's claims on the texts it is still sending until `until`."""
        return await claims.renew(self._calls, ids, self.instance, until)

    async def requeue_unknown(self, before: float, now: float) -> int:
        """Queue again the texts left `unknown` (sent, no answer) since before `before` that no receipt settled."""
        async with (
            self._calls.transaction() as conn,
            conn.execute(
                "UPDATE messages SET state = 'queued', send_at = ?, updated_at = ?,"
                " error = 'no answer and no receipt: sent again' WHERE state = 'unknown' AND updated_at < ?",
                (now, now, before),
            ) as cursor,
        ):
            return cursor.rowcount

    async def due(self, now: float, limit: int) -> list[OutboxRow]:
        async with self._calls.connection.execute(
            _SELECT_ROWS + " WHERE state = 'queued' AND send_at <= ? ORDER BY send_at, id LIMIT ?", (now, limit)
        ) as cursor:
            return [_row(r) for r in await cursor.fetchall()]

    async def next_due_at(self) -> float | None:
        async with self._calls.connection.execute("SELECT MIN(send_at) FROM messages WHERE state = 'queued'") as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def claim(self, ids: Sequence[int], now: float, lease_s: float = claims.LEASE_S) -> list[int]:
        """Mark queued texts as `sending` by this instance (only those still queued: a cancel may have won the race)."""
        if not ids:
            return []
        async with self._calls.transaction() as conn:
            return await claims.claim_rows(conn, ids, self.instance, now, lease_s)

    async def claim_due(
        self, now: float, limit: int, choose: Callable[[list[OutboxRow]], list[int]], lease_s: float = claims.LEASE_S
    ) -> list[int]:
        """Claim, among up to `limit` due texts no other instance is claiming, those `choose` picks (no I/O in it);
        returns the ids claimed. One transaction (store/claims)."""
        return await claims.claim_due(
            self._calls, self.instance, now, limit, lambda rows: choose([_row(r) for r in rows]), lease_s
        )

    async def apply_send_results(self, updates: Sequence[SendUpdate]) -> None:
        """Record send attempts; receipts that arrived before their send was recorded are applied now."""
        async with self._calls.transaction() as conn:
            await conn.executemany(
                "UPDATE messages SET state = ?, attempts = ?, send_at = ?, message_id = COALESCE(?, message_id),"
                " error = ?, updated_at = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,"
                " done_at = CASE WHEN ? IN ('failed', 'expired', 'delivered') THEN ? ELSE done_at END"
                # Only this instance's own claim: a text another instance claimed since (after our lease ran out
                # and it was settled and queued again) is not ours to write. `unknown` too: settled so because our
                # lease ran out while we were sending, the gateway's real answer beats that guess.
                " WHERE id = ? AND claimed_by = ? AND state IN ('sending', 'unknown')",
                [
                    (
                        *(u.state, u.attempts, u.send_at, u.message_id, u.error, u.at),
                        *(u.state, u.at, u.state, u.at, u.id, self.instance),
                    )
                    for u in updates
                ],
            )
            async with conn.execute("SELECT EXISTS (SELECT 1 FROM early_reports)") as cursor:
                row = await cursor.fetchone()
            if not (row and row[0]):
                return
            for u in updates:
                if not u.message_id:
                    continue
                # Kept receipts with this text's id, number (when they name one) and from after it was made: a
                # receipt for an older text that had the same id (ids are reused) is not this text's.
                async with conn.execute(
                    "SELECT e.state, e.error_code, e.detail, e.received_at, e.recipient, m.to_number"
                    " FROM early_reports AS e"
                    " JOIN messages AS m ON m.gateway = e.gateway AND m.message_id = e.message_id"
                    " WHERE m.id = ? AND e.received_at >= m.created_at ORDER BY e.received_at",
                    (u.id,),
                ) as cursor:
                    reports = await cursor.fetchall()
                for state, error_code, detail, at, recipient, to_number in reports:
                    if recipient is None or same_number(recipient, to_number):
                        await self._settle_text(conn, u.id, state, error_code, detail, at)

    # ---- receipts -------------------------------------------------------------------------------------------

    async def apply_report(self, gateway: str, report: DeliveryReport) -> bool:
        """Apply a delivery receipt to its text; False when no text has that id yet (kept for when it has, for
        EARLY_REPORT_KEEP_S). A text whose send went unanswered (`unknown`, no id) is found by the number and the
        start of the text the receipt names, and settled by it: any receipt says the gateway had it."""
        state = _REPORT_STATES.get(report.state)
        if state is None and not (report.recipient and report.text_start):
            return True  # an intermediate report (en route, accepted) that cannot settle an unknown text
        async with self._calls.transaction() as conn:

            async def apply(final: str) -> bool:
                return await self._apply_report(
                    conn,
                    gateway,
                    report.message_id,
                    final,
                    report.error_code,
                    report.detail,
                    report.at,
                    recipient=report.recipient,
                )

            if state is not None and await apply(state):
                return True
            matched = await self._settle_unknown(conn, gateway, report)
            if state is None:
                return True  # nothing else changes
            if matched:
                return await apply(state)
            stale = report.at - EARLY_REPORT_KEEP_S
            await conn.execute("DELETE FROM early_reports WHERE received_at < ?", (stale,))
            await conn.execute(
                "INSERT INTO early_reports (gateway, message_id, state, error_code, detail, received_at, recipient)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (gateway, report.message_id, state, report.error_code, report.detail, report.at, report.recipient),
            )
        return False

    @staticmethod
    async def _settle_unknown(conn: Connection, gateway: str, report: DeliveryReport) -> bool:
        """Give the receipt's id to the oldest `unknown` text it can only mean (same gateway, number and start of
        text, no id yet) and mark it sent; True when one was found."""
        if not report.recipient or not report.text_start:
            return False
        if await MessageStore._find_text(conn, gateway, report.message_id, report.recipient, report.at) is not None:
            return False  # the receipt's own text is known by its id
        async with conn.execute(_UNKNOWN_BY_WORDS, (gateway, report.recipient, report.text_start)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return False
        await conn.execute(
            "UPDATE messages SET state = 'sent', message_id = ?, sent_at = COALESCE(sent_at, ?), updated_at = ?,"
            " error = NULL WHERE id = ?",
            (report.message_id, report.at, report.at, row[0]),
        )
        return True

    @staticmethod
    async def _find_text(
        conn: Connection, gateway: str, message_id: str, recipient: str | None, at: float
    ) -> tuple[int, str] | None:
        """The text a receipt received at `at` is about: (id, state), or None.

        Its gateway and message id, its number when the receipt names one, sent within RECEIPT_WINDOW_S before the
        receipt; the newest such text, and one still waiting for its receipt before one already settled (a second
        receipt for a settled text changes nothing, so it must not take the receipt from a newer text)."""
        async with conn.execute(
            "SELECT id, state, to_number FROM messages WHERE gateway = ? AND message_id = ?"
            " AND COALESCE(sent_at, updated_at) >= ? AND created_at <= ?"
            " ORDER BY COALESCE(sent_at, updated_at) DESC, id DESC",
            (gateway, message_id, at - RECEIPT_WINDOW_S, at),
        ) as cursor:
            rows = [
                (row[0], row[1])
                for row in await cursor.fetchall()
                if recipient is None or same_number(recipient, row[2])
            ]
        waiting = [row for row in rows if row[1] not in FINAL_STATES]
        best = waiting or rows
        return best[0] if best else None

    @staticmethod
    async def _apply_report(
        conn: Connection,
        gateway: str,
        message_id: str,
        state: str,
        error_code: str | None,
        detail: str,
        at: float,
        *,
        recipient: str | None = None,
    ) -> bool:
        found = await MessageStore._find_text(conn, gateway, message_id, recipient, at)
        if found is None:
            return False
        text_id, text_state = found
        if text_state in FINAL_STATES and await MessageStore._in_flight(conn, gateway, recipient):
            # Settled already, and a text to the same number is being sent: this receipt may be that text's (its id
            # reused) arriving before its send was recorded. Kept for it rather than dropped as a duplicate.
            return False
        await MessageStore._settle_text(conn, text_id, state, error_code, detail, at)
        return True

    @staticmethod
    async def _in_flight(conn: Connection, gateway: str, recipient: str | None) -> bool:
        """Whether a text of this gateway (to `recipient`, when known) is being sent with no id recorded yet."""
        async with conn.execute(
            "SELECT to_number FROM messages WHERE gateway = ? AND state = 'sending' AND message_id IS NULL",
            (gateway,),
        ) as cursor:
            numbers = [row[0] for row in await cursor.fetchall()]
        return any(recipient is None or same_number(recipient, number) for number in numbers)

    @staticmethod
    async def _settle_text(
        conn: Connection, text_id: int, state: str, error_code: str | None, detail: str, at: float
    ) -> None:
        # Only forward: a late "failed" after "delivered" (duplicated receipt) changes nothing.
        error = None if state == DELIVERED else (detail or state) + (f" (error {error_code})" if error_code else "")
        await conn.execute(
            "UPDATE messages SET state = ?, done_at = ?, updated_at = ?, error = COALESCE(?, error)"
            " WHERE id = ? AND state NOT IN ('delivered', 'failed', 'expired', 'cancelled')",  # FINAL_STATES
            (state, at, at, error, text_id),
        )

    # ---- opt-outs and inbound texts -------------------------------------------------------------------------

    async def set_opt_out(self, number: str, business: str, opted_out: bool, now: float) -> bool:
        """Record STOP (True) or START (False); returns whether this changed anything."""
        async with self._calls.transaction() as conn:
            return await self._set_opt_out(conn, number, business, opted_out, now)

    @staticmethod
    async def _set_opt_out(conn: Connection, number: str, business: str, opted_out: bool, now: float) -> bool:
        # The pair's lock: an answer another instance is queueing now either sees this opt-out or is cancelled by it.
        await lock_recipient(conn, business, number)
        async with conn.execute(
            "SELECT opted_out FROM opt_outs WHERE number = ? AND business = ?", (number, business)
        ) as cursor:
            row = await cursor.fetchone()
        if bool(row and row[0]) == opted_out:
            return False
        await conn.execute(
            "INSERT INTO opt_outs (number, business, opted_out, changed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (number, business) DO UPDATE SET opted_out = excluded.opted_out,"
            " changed_at = excluded.changed_at",
            (number, business, int(opted_out), now),
        )
        if opted_out:  # texts still waiting for this number (an answer held for quiet hours too) are not sent
            await conn.execute(
                "UPDATE messages SET state = 'cancelled', updated_at = ?, done_at = ?, error = 'opted out'"
                " WHERE to_number = ? AND business = ? AND state = 'queued' AND kind IN ('missed_call', 'answer')",
                (now, now, number, business),
            )
        return True

    async def record_inbound(
        self,
        gateway: str,
        sender: str,
        to: str,
        business: str | None,
        body: str,
        keyword: str,
        at: float,
        *,
        key: str | None = None,
        message_id: str | None = None,
        same_keys: Sequence[str] = (),
        within_s: float = 0.0,
        effects: Sequence[ReplyEffect] = (),
        forwards: Sequence[NewForward] = (),
    ) -> int | None:
        """Store a reply and apply its `effects`, in one transaction (a crash keeps both or neither, so a gateway
        that delivers it again after one finds it new). A reply already stored does nothing at all: None.
        Otherwise returns how many texts it queued.

        A reply is already stored when a row of the same gateway has its `key` (recovery.keys.inbound_key), or one
        of `same_keys` and came in less than `within_s` from `at`. Without a `key` the reply is always new (as rows
        stored before keys were). Its `forwards` to the owner are stored with it (store/forwards.py)."""
        async with self._calls.transaction() as conn:
            if key is not None and same_keys:
                marks = ",".join("?" * len(same_keys))  # placeholders only; the values are bound
                async with conn.execute(
                    f"SELECT 1 FROM inbound_messages WHERE gateway = ? AND dedupe_key IN ({marks})"  # noqa: S608
                    " AND received_at > ? AND received_at < ? LIMIT 1",
                    (gateway, *same_keys, at - within_s, at + within_s),
                ) as cursor:
                    if await cursor.fetchone() is not None:
                        return None
            async with conn.execute(
                "INSERT INTO inbound_messages (gateway, sender, to_number, business, body, keyword, received_at,"
                " message_id, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (gateway, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id",
                (gateway, sender, to, business, body, keyword, at, message_id, key),
            ) as cursor:
                stored = await cursor.fetchone()  # RETURNING, not lastrowid: PostgreSQL has no lastrowid
            if stored is None:
                return None
            inbound_id = int(stored[0])
            if forwards:
                await insert_forwards(conn, inbound_id, forwards, at)
            queued: list[NewText] = []
            for effect in effects:
                changed = effect.opted_out is not None and await self._set_opt_out(
                    conn, sender, effect.business, effect.opted_out, at
                )
                if effect.text is not None and (changed or not effect.only_if_changed):
                    queued.append(effect.text)
            return await self._insert_texts(conn, queued, at)

    # ---- reading --------------------------------------------------------------------------------------------

    async def list_messages(
        self,
        *,
        limit: int = 100,
        state: str | None = None,
        since: float | None = None,
        linkedid: str | None = None,
        businesses: Sequence[str] | None = None,
    ) -> list[OutboxRow]:
        """Texts newest first; `businesses` (None: all), `linkedid`, `state` and `since` narrow the choice."""
        params = {
            "state": state,
            "since": since,
            "linkedid": linkedid,
            "businesses": scope_param(businesses),
            "limit": limit,
        }
        async with self._calls.connection.execute(_LIST, params) as cursor:
            return [_row(r) for r in await cursor.fetchall()]

    async def verdict(self, linkedid: str) -> Verdict | None:
        async with self._calls.connection.execute(
            "SELECT linkedid, send, reason FROM text_decisions WHERE linkedid = ?", (linkedid,)
        ) as cursor:
            row = await cursor.fetchone()
        return Verdict(row[0], bool(row[1]), row[2]) if row else None
