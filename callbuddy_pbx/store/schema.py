"""The database schema as ordered migrations, tracked with `PRAGMA user_version` (= how many have been applied)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import aiosqlite

# Append only: a released migration is never edited, since databases in the field have already applied it.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE calls (
        linkedid            TEXT    NOT NULL PRIMARY KEY,
        business            TEXT,
        did                 TEXT    NOT NULL,
        caller              TEXT,
        caller_raw          TEXT    NOT NULL,
        caller_name         TEXT,
        outcome             TEXT    NOT NULL,
        missed              INTEGER NOT NULL CHECK (missed IN (0, 1)),
        answered_by         TEXT,
        started_at          REAL    NOT NULL,
        ring_at             REAL,
        answered_at         REAL,
        ended_at            REAL    NOT NULL,
        hangup_cause        INTEGER,
        observed_from_start INTEGER NOT NULL CHECK (observed_from_start IN (0, 1)),
        recorded_at         REAL    NOT NULL
    );
    CREATE INDEX calls_ended_at ON calls (ended_at);
    CREATE INDEX calls_missed_ended_at ON calls (missed, ended_at);
    CREATE TABLE call_legs (
        linkedid     TEXT    NOT NULL REFERENCES calls (linkedid) ON DELETE CASCADE,
        seq          INTEGER NOT NULL,
        channel      TEXT    NOT NULL,
        endpoint     TEXT    NOT NULL,
        dial_status  TEXT,
        hangup_cause INTEGER,
        answered     INTEGER NOT NULL CHECK (answered IN (0, 1)),
        started_at   REAL    NOT NULL,
        ended_at     REAL,
        PRIMARY KEY (linkedid, seq)
    );
    """,
    # 2: text-back. One outbox row per text (key = the call's linkedid for a missed-call text), the policy's
    # verdict for every call, opt-outs per business, inbound texts, and receipts that arrived before their send
    # was recorded.
    """
    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY,
        key         TEXT    NOT NULL UNIQUE,
        kind        TEXT    NOT NULL,
        linkedid    TEXT    REFERENCES calls (linkedid),
        business    TEXT,
        to_number   TEXT    NOT NULL,
        sender      TEXT    NOT NULL,
        gateway     TEXT    NOT NULL,
        body        TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        send_at     REAL    NOT NULL,
        created_at  REAL    NOT NULL,
        updated_at  REAL    NOT NULL,
        sent_at     REAL,
        done_at     REAL,
        message_id  TEXT,
        error       TEXT
    );
    CREATE INDEX messages_due ON messages (state, send_at);
    CREATE INDEX messages_by_gateway_id ON messages (gateway, message_id);
    CREATE INDEX messages_by_recipient ON messages (to_number, business, created_at);
    CREATE TABLE text_decisions (
        linkedid    TEXT    NOT NULL PRIMARY KEY REFERENCES calls (linkedid),
        send        INTEGER NOT NULL CHECK (send IN (0, 1)),
        reason      TEXT    NOT NULL,
        decided_at  REAL    NOT NULL
    );
    CREATE TABLE opt_outs (
        number      TEXT    NOT NULL,
        business    TEXT    NOT NULL,
        opted_out   INTEGER NOT NULL CHECK (opted_out IN (0, 1)),
        changed_at  REAL    NOT NULL,
        PRIMARY KEY (number, business)
    );
    CREATE TABLE inbound_messages (
        id          INTEGER PRIMARY KEY,
        gateway     TEXT    NOT NULL,
        sender      TEXT    NOT NULL,
        to_number   TEXT    NOT NULL,
        business    TEXT,
        body        TEXT    NOT NULL,
        keyword     TEXT    NOT NULL,
        received_at REAL    NOT NULL
    );
    CREATE TABLE early_reports (
        gateway     TEXT    NOT NULL,
        message_id  TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        error_code  TEXT,
        detail      TEXT    NOT NULL,
        received_at REAL    NOT NULL
    );
    CREATE INDEX early_reports_by_id ON early_reports (gateway, message_id);
    """,
    # 3: click tracking. A tracked text links to {public_url}/r/<token>; the token maps to the business's booking
    # page and the call it answers, and each visit (GET) is one row of link_clicks.
    """
    CREATE TABLE link_tokens (
        token       TEXT    NOT NULL PRIMARY KEY,
        linkedid    TEXT    REFERENCES calls (linkedid),
        business    TEXT,
        url         TEXT    NOT NULL,
        created_at  REAL
    );
    CREATE INDEX link_tokens_by_call ON link_tokens (linkedid);
    CREATE TABLE link_clicks (
        id          INTEGER PRIMARY KEY,
        token       TEXT    NOT NULL REFERENCES link_tokens (token),
        clicked_at  REAL    NOT NULL,
        user_agent  TEXT
    );
    CREATE INDEX link_clicks_by_token ON link_clicks (token);
    """,
    # 4: the dashboard. Login sessions (only a hash of the cookie's value is stored), alerts and digests sent (one
    # row per key, so a restart never sends one twice), indexes for the live feed (rows changed since a cursor) and
    # for searching calls by number or business. Four indexes are widened with the columns the overview's figures
    # read, so a month of calls is counted from indexes alone (300 ms -> 50 ms over 50,000 calls); their names and
    # leading columns stay, so every plan that used a narrow one uses the wide one.
    """
    CREATE TABLE web_sessions (
        id_hash     TEXT    NOT NULL PRIMARY KEY,
        user_name   TEXT    NOT NULL,
        csrf_token  TEXT    NOT NULL,
        created_at  REAL    NOT NULL,
        expires_at  REAL    NOT NULL
    );
    CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
    CREATE TABLE notifications (
        key         TEXT    NOT NULL PRIMARY KEY,
        kind        TEXT    NOT NULL,
        business    TEXT,
        body        TEXT    NOT NULL,
        created_at  REAL    NOT NULL,
        sent_at     REAL,
        error       TEXT
    );
    CREATE INDEX calls_recorded_at ON calls (recorded_at);
    CREATE INDEX calls_business_ended_at ON calls (business, ended_at);
    CREATE INDEX calls_caller ON calls (caller);
    CREATE INDEX messages_updated_at ON messages (updated_at);
    CREATE INDEX messages_by_call ON messages (linkedid, kind, state, sent_at);
    DROP INDEX calls_ended_at;
    CREATE INDEX calls_ended_at ON calls (ended_at, business, outcome, missed);
    DROP INDEX calls_missed_ended_at;
    CREATE INDEX calls_missed_ended_at ON calls (missed, ended_at, business, linkedid);
    DROP INDEX link_tokens_by_call;
    CREATE INDEX link_tokens_by_call ON link_tokens (linkedid, token);
    """,
    # 5: calls that could not be stored (the database refused that one call while it took others): kept with the
    # error and the call as JSON, so one bad call never stops the others and none is silently lost.
    """
    CREATE TABLE set_aside_calls (
        linkedid      TEXT    NOT NULL PRIMARY KEY,
        error         TEXT    NOT NULL,
        record        TEXT    NOT NULL,
        set_aside_at  REAL    NOT NULL
    );
    """,
    # 6: reconciliation from Asterisk's CEL: calls judged from its rows are marked, and how far each CEL source has
    # been read (every call that ended at or before `last_id` is stored or was never ours).
    """
    ALTER TABLE calls ADD COLUMN from_cel INTEGER NOT NULL DEFAULT 0 CHECK (from_cel IN (0, 1));
    CREATE TABLE cel_progress (
        source      TEXT    NOT NULL PRIMARY KEY,
        last_id     INTEGER NOT NULL,
        updated_at  REAL    NOT NULL
    );
    """,
    # 7: a reply from a phone is stored once, however often its gateway delivers it. `message_id` is the gateway's
    # id of it (Twilio's MessageSid, Kannel's %I, the generic webhook's `id`; none over SMPP), `dedupe_key` its
    # identity (recovery.keys.inbound_key: that id, or its sender, number, words and arrival period), unique per
    # gateway. Rows stored before have neither: duplicates among them are left as they are (the index is partial),
    # so the upgrade never fails on them.
    """
    ALTER TABLE inbound_messages ADD COLUMN message_id TEXT;
    ALTER TABLE inbound_messages ADD COLUMN dedupe_key TEXT;
    CREATE UNIQUE INDEX inbound_messages_once ON inbound_messages (gateway, dedupe_key) WHERE dedupe_key IS NOT NULL;
    """,
    # 8: a receipt kept for a text whose send was not recorded yet remembers the number it names (an SMPP receipt's
    # source address), so that when a gateway reuses message ids it is given only to a text sent to that number.
    # Rows kept before have none: they match any text with their id, as before.
    """
    ALTER TABLE early_reports ADD COLUMN recipient TEXT;
    """,
    # 9: conversations (store/conversations.py). A thread is (caller number, business); it is read once a user of
    # that business opened it after its newest reply (`read_at`: one row per thread, shared by the business's users,
    # like a shared inbox). A business's answer is an outbox row of kind 'answer'; `message_authors` says who wrote
    # it. Replies are read per thread, so they get the index texts already have.
    """
    CREATE TABLE thread_reads (
        number      TEXT    NOT NULL,
        business    TEXT    NOT NULL,
        read_at     REAL    NOT NULL,
        read_by     TEXT    NOT NULL,
        PRIMARY KEY (number, business)
    );
    CREATE TABLE message_authors (
        message_id  INTEGER NOT NULL PRIMARY KEY REFERENCES messages (id),
        author      TEXT    NOT NULL
    );
    CREATE INDEX inbound_by_sender ON inbound_messages (sender, business, received_at);
    CREATE INDEX inbound_received_at ON inbound_messages (received_at);
    """,
    # 10: recovery (store/recovery.py). Answered calls a desk phone placed to an outside number (a call back), and
    # for each missed call the first sign the business got the caller back: how (called_back, called_again,
    # replied, booked), when, and what showed it (`source`: the answering call's linkedid, r<reply id>, k<click id>).
    # One row per missed call, only ever moved to an earlier sign: replays and re-judged calls never add one.
    """
    CREATE TABLE outbound_calls (
        linkedid     TEXT    NOT NULL PRIMARY KEY,
        business     TEXT,
        endpoint     TEXT    NOT NULL,
        number       TEXT    NOT NULL,
        answered_at  REAL    NOT NULL,
        recorded_at  REAL    NOT NULL
    );
    CREATE INDEX outbound_calls_by_number ON outbound_calls (number, business, answered_at);
    CREATE TABLE recoveries (
        linkedid     TEXT    NOT NULL PRIMARY KEY REFERENCES calls (linkedid),
        business     TEXT,
        how          TEXT    NOT NULL CHECK (how IN ('called_back', 'called_again', 'replied', 'booked')),
        recovered_at REAL    NOT NULL,
        source       TEXT    NOT NULL,
        marked_at    REAL    NOT NULL
    );
    CREATE INDEX calls_by_caller_business ON calls (caller, business, started_at);
    """,
    # 11: replies forwarded to the owner (store/forwards.py). One row per (reply, target), inserted in the
    # transaction that stores the reply and keyed by both (`key`, recovery/forward_rules.forward_key), so a reply
    # delivered twice or replayed after a restart has one forward per target. A row is marked 'sending' (committed)
    # before it is sent; `next_attempt_at` is when a row waiting for its server is tried again.
    """
    CREATE TABLE reply_forwards (
        id              INTEGER PRIMARY KEY,
        key             TEXT    NOT NULL UNIQUE,
        inbound_id      INTEGER NOT NULL REFERENCES inbound_messages (id),
        business        TEXT    NOT NULL,
        channel         TEXT    NOT NULL CHECK (channel IN ('sms', 'email', 'webhook')),
        target          TEXT    NOT NULL,
        state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL    NOT NULL,
        created_at      REAL    NOT NULL,
        updated_at      REAL    NOT NULL,
        sent_at         REAL,
        last_error      TEXT
    );
    CREATE INDEX reply_forwards_due ON reply_forwards (state, next_attempt_at);
    CREATE INDEX reply_forwards_by_reply ON reply_forwards (inbound_id);
    """,
    # 12: push bindings kept across restarts (store/push_bindings.py): a softphone asleep registers again only when
    # pushed, so the binding its last registration carried is all that can wake it after a restart. One row per
    # device ("PJSIP/103"), its binding as push/binding.binding_json writes it; an ended binding's row is deleted.
    """
    CREATE TABLE push_bindings (
        device      TEXT    NOT NULL PRIMARY KEY,
        binding     TEXT    NOT NULL,
        updated_at  REAL    NOT NULL
    );
    """,
    # 13: several CallBuddy instances on one database (issue 16). A text being sent names the instance that claimed
    # it (`claimed_by`, store/instance.py) and until when its claim holds (`lease_until`, renewed while the send is in
    # flight): another instance settles it `unknown` only once the lease ran out, never while its owner is sending.
    # Rows claimed before have neither: any instance may settle them, as a restart always did.
    """
    ALTER TABLE messages ADD COLUMN claimed_by TEXT;
    ALTER TABLE messages ADD COLUMN lease_until REAL;
    """,
    # 14: several Asterisk servers (asterisk.nodes, issue 16). The server a call rang on, shown and filtered by; its
    # key (`linkedid`) already names it (`<linkedid>@<node>`). '' : the only Asterisk, as every call before.
    """
    ALTER TABLE calls ADD COLUMN node TEXT NOT NULL DEFAULT '';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(Exception):
    """The database cannot be used (not a database, newer than this code, missing...); the message says which."""


def statements(script: str) -> Iterator[str]:
    """Split a script into statements, so they can run inside our own transaction (executescript would commit)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:60]!r}")


async def user_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(conn: aiosqlite.Connection, where: str) -> int:
    """Apply the migrations this database lacks, each in its own transaction; return the schema version.

    The connection must be in autocommit mode (isolation_level=None) so that BEGIN/COMMIT here are the only ones.
    """
    version = await user_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {version}, but this callbuddy-pbx only knows up to {SCHEMA_VERSION}: "
            "upgrade callbuddy-pbx to use it"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our write lock: read again under the lock.
            if await user_version(conn) < target:
                for statement in statements(MIGRATIONS[target - 1]):
                    await conn.execute(statement)
                # PRAGMA takes no parameters; `target` is an int from this module, never data.
                await conn.execute(f"PRAGMA user_version = {int(target)}")
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
