"""Reconciliation from Asterisk's CEL: every call the AMI link did not see through is judged from Asterisk's records.

AMI has no replay. Whatever ended while the service was stopped, crashed or cut off from Asterisk is found here, in
the CEL rows Asterisk kept writing, and judged by the same rules from complete evidence (`asterisk.cel`). The sweep
runs on start, after every AMI reconnect and every `cel.poll_seconds`, so it also catches a call whose last events
AMI lost for any other reason. What it may judge at once and what it leaves to the AMI path:

- a call AMI is still following, or has judged and not yet stored, is left to AMI;
- a call AMI judged without seeing all of it (a gap) is held here and judged from CEL instead, as soon as its
  LINKEDID_END is written (or stored as AMI saw it, never texted, when CEL has nothing within HOLD_S);
- a call that ended before the latest (re)connect is judged at once; one that ended later is judged only when a
  second sweep still finds it unstored (AMI had its chance).

Progress is kept in the service's database as a CEL row id with a simple promise: every call whose rows all lie
after it is still to be handled. It never passes the first row of a call that is not over or not yet handled, so a
restart at any moment reads again exactly what might be missing; a call stored twice is harmless (keyed by Linkedid).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from callbuddy_pbx.asterisk.cel import LINKEDID_END, CelRow, judge
from callbuddy_pbx.asterisk.cel_source import CelSource, CelSourceError
from callbuddy_pbx.asterisk.cel_sqlite import CHUNK_ROWS, CelSqlite, judge_range
from callbuddy_pbx.asterisk.inbound import InboundMatcher
from callbuddy_pbx.config import CelConfig
from callbuddy_pbx.model import CallRecord

log = logging.getLogger(__name__)

HOLD_S = 10.0  # how long a call AMI judged from part of its events waits for its CEL rows
MAX_OPEN_S = 6 * 3600.0  # a call with no LINKEDID_END this long after its first row was cut off (Asterisk died)
WORKER_ROWS = 100_000  # more rows than this to read (a long gap): judged in worker processes
MAX_WORKERS = 4
JUDGE_BATCH = 50  # calls judged between two yields to the event loop: live AMI events never wait long
ERROR_PAUSE_MAX_S = 60.0


class CelProgressStore(Protocol):
    """What the reconciler needs of the store (CallStore, or one Asterisk server's view of it)."""

    async def known_calls(self, linkedids: Sequence[str]) -> set[str]: ...

    async def cel_progress(self, source: str) -> int | None: ...

    async def set_cel_progress(self, source: str, last_id: int, at: float) -> None: ...


@dataclass(slots=True)
class _Scan:
    """One sweep's working state: rows of calls not over yet, and the first row of each call left for later."""

    open_calls: dict[str, list[CelRow]] = field(default_factory=dict)
    pinned: dict[str, int] = field(default_factory=dict)  # linkedid -> first row id, for calls not handled yet
    judged: int = 0


class CelReconciler:
    """Sweeps one CEL source; `submit` puts a judged call on the store writer's queue (as AMI's calls go)."""

    def __init__(
        self,
        config: CelConfig,
        source: CelSource,
        matcher: InboundMatcher,
        store: CelProgressStore,
        *,
        submit: Callable[[CallRecord], None],
        followed: Callable[[str], bool],
        link_up: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._source = source
        self._matcher = matcher
        self._store = store
        self._submit = submit
        self._followed = followed  # the AMI side still has this call (tracking it, or judged and not yet stored)
        self._link_up = link_up  # AMI is connected and has read Asterisk's live channels
        self._unfollowed_open: set[str] = set()  # calls open in CEL that AMI did not have at the previous sweep
        self._clock = clock
        self._held: dict[str, tuple[CallRecord, float]] = {}  # AMI's partial verdicts waiting for CEL
        self._seen_ended: set[str] = set()  # ended calls left to AMI by the previous sweep
        self._settled_up_to = 0  # calls whose LINKEDID_END is at or before this row ended before we connected
        self._catch_up = True  # the next sweep starts by noting where CEL is: everything before has ended
        self._wake = asyncio.Event()
        self.sweeps = 0
        self.found = 0  # calls judged from CEL and handed to the writer
        self.last_error: str | None = None

    # ---- what the AMI side tells it -------------------------------------------------------------------------------

    def hold(self, record: CallRecord) -> None:
        """A call AMI judged without seeing all of it: judge it from CEL instead (or store it as is, after HOLD_S)."""
        self._held[record.linkedid] = (record, self._clock() + HOLD_S)
        self._wake.set()

    def connected(self) -> None:
        """AMI has (re)connected and read the live channels: everything CEL holds now ended before, or is followed."""
        self._catch_up = True
        self._wake.set()

    @property
    def held(self) -> int:
        return len(self._held)

    # ---- the loop -------------------------------------------------------------------------------------------------

    async def run(self) -> None:
        pause = self._config.poll_s
        while True:
            try:
                await self.sweep()
            except (CelSourceError, OSError) as exc:
                if self.last_error != str(exc):
                    log.error("cannot read Asterisk's CEL records: %s", exc)
                self.last_error = str(exc)
                self._release_held(expired_only=True)
                pause = min(max(pause * 2, self._config.poll_s), ERROR_PAUSE_MAX_S)
            else:
                if self.last_error is not None:
                    log.info("reading Asterisk's CEL records again")
                self.last_error = None
                pause = self._config.poll_s
            wait = min(pause, HOLD_S / 4) if self._held else pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def sweep(self) -> int:
        """Read CEL from the stored progress to its end; hand every call to judge to the writer. Returns how many."""
        name = self._source.name
        last = await asyncio.to_thread(self._source.last_id)
        progress = await self._store.cel_progress(name)
        if progress is None or progress > last:  # never read (nothing before us is ours), or a new CEL table
            if progress is not None:
                log.warning(
                    "the CEL table restarted (row %d, read to %d before); reading it from its start", last, progress
                )
            progress = last if progress is None else 0
            await self._store.set_cel_progress(name, progress, self._clock())
        if self._catch_up:
            self._settled_up_to, self._catch_up = last, False
        scan = _Scan()
        if (
            last - progress > WORKER_ROWS
            and isinstance(self._source, CelSqlite)  # workers open the SQLite file; PostgreSQL is read here
            and (os.cpu_count() or 1) > 1
            and await self._scan_in_workers(progress, last, scan)
        ):
            bounds = []
        else:
            # The next chunk is read (in a thread: SQLite and libpq work without the GIL) while this one is judged.
            bounds = [(start, min(last, start + CHUNK_ROWS)) for start in range(progress, last, CHUNK_ROWS)]
        reading = asyncio.ensure_future(asyncio.to_thread(self._source.rows, *bounds[0])) if bounds else None
        for index in range(len(bounds)):
            assert reading is not None
            rows = await reading
            if index + 1 < len(bounds):
                reading = asyncio.ensure_future(asyncio.to_thread(self._source.rows, *bounds[index + 1]))
            await self._scan(rows, scan)
        self._release_held(expired_only=True)
        self._pin_open_calls(scan)
        moved = min(scan.pinned.values(), default=last + 1) - 1
        if moved != progress:
            await self._store.set_cel_progress(name, moved, self._clock())
        self._seen_ended = {linkedid for linkedid in scan.pinned if linkedid not in scan.open_calls}
        self.sweeps += 1
        self.found += scan.judged
        return scan.judged

    def _pin_open_calls(self, scan: _Scan) -> None:
        """Keep progress before every call still open in CEL, except calls that are over without a LINKEDID_END:
        Asterisk stopped (crashed, restarted) while they ran. Such a call is one AMI, connected and caught up with
        Asterisk's live channels, did not have at two sweeps in a row (or, with AMI away, one open for MAX_OPEN_S)."""
        link_up = self._link_up()
        newest = max((rows[-1].time for rows in scan.open_calls.values() if rows), default=None)
        unfollowed: set[str] = set()
        for linkedid, rows in scan.open_calls.items():
            if link_up and not self._followed(linkedid) and linkedid not in self._held:
                unfollowed.add(linkedid)
                if linkedid in self._unfollowed_open:
                    continue  # gone from Asterisk without an end: nothing more will come
            if newest is not None and newest - rows[0].time > MAX_OPEN_S:
                log.warning("call %s has no end in CEL after %.0f h; no longer waited for", linkedid, MAX_OPEN_S / 3600)
                continue
            scan.pinned.setdefault(linkedid, rows[0].id)
        self._unfollowed_open = unfollowed

    async def _scan(self, rows: Sequence[CelRow], scan: _Scan) -> None:
        """Rows in id order: calls whose LINKEDID_END is among them are decided; the others wait in `scan`."""
        ended: dict[str, list[CelRow]] = {}
        for row in rows:
            call = scan.open_calls.setdefault(row.linkedid, [])
            call.append(row)
            if row.event == LINKEDID_END:
                ended[row.linkedid] = scan.open_calls.pop(row.linkedid)
        ended.pop("", None)
        spans = {linkedid: (call[0].id, call[-1].id) for linkedid, call in ended.items()}
        ready = await self._ready(spans, scan)
        items = [(linkedid, ended[linkedid]) for linkedid in ready]
        for start in range(0, len(items), JUDGE_BATCH):
            self._take(judge(dict(items[start : start + JUDGE_BATCH]), self._matcher), scan)
            await asyncio.sleep(0)

    async def _ready(self, spans: dict[str, tuple[int, int]], scan: _Scan) -> list[str]:
        """Of these ended calls (first and last row ids), the ones to judge now; the others are left to AMI
        (progress stays before them) or are stored already."""
        if not spans:
            return []
        stored = await self._store.known_calls(list(spans))
        ready: list[str] = []
        for linkedid, (first_id, end_id) in spans.items():
            if linkedid in stored:
                self._held.pop(linkedid, None)
            elif linkedid in self._held or self._may_judge(linkedid, end_id):
                ready.append(linkedid)
            else:
                scan.pinned[linkedid] = first_id
        return ready

    def _take(self, verdicts: Mapping[str, CallRecord | None], scan: _Scan) -> None:
        """Hand the judged calls to the writer (a call CEL cannot rebuild but AMI held: as AMI saw it)."""
        for linkedid, record in verdicts.items():
            held = self._held.pop(linkedid, None)
            if record is None and held is not None:
                record = held[0]  # AMI took it for ours but CEL cannot rebuild it: keep what AMI saw
            if record is not None:
                self._submit(record)
                scan.judged += 1

    async def _scan_in_workers(self, progress: int, last: int, scan: _Scan) -> bool:
        """A long stretch (a gap of hours): read and judged in slices by worker processes, one per core, while the
        event loop goes on with live calls. Calls cut by a slice's edges are joined and judged here. False (nothing
        done) when worker processes cannot run here: the sweep then reads it in this process."""
        workers = min(MAX_WORKERS, os.cpu_count() or 1)
        step = -(-(last - progress) // workers)
        bounds = [(start, min(last, start + step)) for start in range(progress, last, step)]
        loop = asyncio.get_running_loop()
        pool: ProcessPoolExecutor | None = None
        try:
            pool = ProcessPoolExecutor(len(bounds), mp_context=multiprocessing.get_context("spawn"))
            slices = await asyncio.gather(
                *(loop.run_in_executor(pool, judge_range, self._config, self._matcher, *bound) for bound in bounds)
            )
        except (CelSourceError, asyncio.CancelledError):
            raise
        except Exception as exc:  # no processes here (a locked-down host), a worker killed: not a reason to stop
            log.warning("CEL: worker processes failed (%s: %s); reading the gap here", type(exc).__name__, exc)
            return False
        finally:
            if pool is not None:
                pool.shutdown(wait=False)
        for part in slices:
            spans = {linkedid: (first_id, end_id) for linkedid, (_, first_id, end_id) in part.verdicts.items()}
            ready = await self._ready(spans, scan)
            for start in range(0, len(ready), JUDGE_BATCH * 10):
                self._take(
                    {linkedid: part.verdicts[linkedid][0] for linkedid in ready[start : start + JUDGE_BATCH * 10]}, scan
                )
                await asyncio.sleep(0)
        await self._scan(sorted((row for part in slices for row in part.leftover), key=lambda row: row.id), scan)
        return True

    def _may_judge(self, linkedid: str, end_id: int) -> bool:
        """Whether this ended call is ours to judge now rather than AMI's to finish."""
        if self._followed(linkedid):
            return False
        return end_id <= self._settled_up_to or linkedid in self._seen_ended

    def _release_held(self, *, expired_only: bool) -> None:
        now = self._clock()
        for linkedid, (record, deadline) in list(self._held.items()):
            if not expired_only or now >= deadline:
                del self._held[linkedid]
                log.warning("call %s: no CEL rows within %.0f s; stored as AMI saw it (not texted)", linkedid, HOLD_S)
                self._submit(record)

    def close(self) -> None:
        """Stop: held calls are stored as AMI saw them (never texted), not dropped."""
        self._release_held(expired_only=False)
        self._source.close()
