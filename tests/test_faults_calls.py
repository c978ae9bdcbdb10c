"""Call-side faults against the real `callbuddy-pbx run`: the service killed, the AMI link dropped, gone half-open or
Asterisk restarting while calls ring, are answered and end. The simulated PBX goes on taking calls and writes its CEL
rows (as Asterisk's cel_sqlite3_custom does); the service must find in them every call it did not see through.

Each case checks the invariant from both sides (tests/faults.py `check_exactly_once`): every inbound call stored once
with the outcome it was made with, every missed caller texted exactly once at the SMSC, no text for an answered call,
every text settled. Seeded: the same calls and the same fault moments on every run.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.faults import check_exactly_once, fault_rig, make_calls, stored_calls


async def test_calls_that_start_and_end_while_the_service_is_down_are_found_and_texted_once(tmp_path: Path) -> None:
    calls = make_calls(14, seed=1201, missed_share=0.6, gap_s=(0.2, 0.8), cel=True)
    async with fault_rig(tmp_path, cel=True, speed=8) as rig:
        await rig.place(calls[:4])
        await rig.kill()
        await rig.place(calls[4:10])  # rung, answered or missed, and over, while nobody listened on AMI
        await rig.restart(after_s=0.2)
        await rig.place(calls[10:])
        await rig.settle(timeout=30, unknown_ok=True)  # a kill during a send leaves it unknown, never sent twice
        check_exactly_once(rig, calls, unknown_ok=True)


async def test_sigkill_at_random_moments_while_calls_ring_and_talk(tmp_path: Path) -> None:
    rng = random.Random(1202)
    calls = make_calls(20, seed=1202, missed_share=0.6, gap_s=(0.2, 1.0), cel=True)
    async with fault_rig(tmp_path, cel=True, speed=8) as rig:
        await rig.place(calls, wait=False)
        for _ in range(3):
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            await rig.kill()
            await rig.restart(after_s=rng.uniform(0.1, 1.0))
        await rig.settle(timeout=40, unknown_ok=True)  # a kill during a send leaves it unknown, never sent twice
        check_exactly_once(rig, calls, unknown_ok=True)
        assert rig.kills == 3


async def test_ami_link_dropped_at_random_moments_during_calls(tmp_path: Path) -> None:
    rng = random.Random(1203)
    calls = make_calls(18, seed=1203, missed_share=0.5, gap_s=(0.2, 0.9), cel=True)
    async with fault_rig(tmp_path, cel=True, speed=8) as rig:
        await rig.place(calls, wait=False)
        for _ in range(4):
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            rig.ami.drop_clients()  # a network drop: the service reconnects in 0.1-0.5 s
        await rig.settle(timeout=40)
        check_exactly_once(rig, calls)


async def test_a_half_open_ami_link_during_calls_loses_nothing(tmp_path: Path) -> None:
    """Asterisk's side goes silent with TCP still open: the service notices within ~6 s and reconnects; the calls
    that came and went meanwhile are in CEL."""
    calls = make_calls(12, seed=1204, missed_share=0.6, gap_s=(0.3, 0.9), cel=True)
    async with fault_rig(tmp_path, cel=True, speed=8) as rig:
        await rig.place(calls[:3])
        logins = rig.ami.logins
        rig.ami.ignore_pings = True  # this connection now hears nothing and is heard by nobody
        await rig.place(calls[3:9])
        await rig.wait_for(lambda: rig.ami.logins > logins, 15, "the service to notice and log in again")
        await rig.place(calls[9:])
        await rig.settle(timeout=30)
        check_exactly_once(rig, calls)


async def test_asterisk_restarting_between_calls_loses_nothing(tmp_path: Path) -> None:
    calls = make_calls(12, seed=1205, missed_share=0.6, gap_s=(0.2, 0.8), cel=True)
    async with fault_rig(tmp_path, cel=True, speed=8) as rig:
        await rig.place(calls[:4])
        logins = rig.ami.logins
        await rig.ami.shutdown_clients(restart=True)  # `core restart now`: Shutdown, then every connection closes
        await rig.place(calls[4:8])
        await rig.wait_for(lambda: rig.ami.logins > logins, 10, "the service to log in again")
        await rig.place(calls[8:])
        await rig.settle(timeout=30)
        check_exactly_once(rig, calls)
        assert set(stored_calls(rig.db)) >= {s.linkedid for s in calls if s.expected_outcome is not None}
