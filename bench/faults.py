"""Soak: generated missed and answered calls through the real `callbuddy-pbx run` process while it is SIGKILLed
(and started again ~0.3 s later) and the simulated SMSC drops the link, throttles, and cuts the link right after
accepting a submit. Judged from the SMSC's side and the database (tests/faults.py `tally`): each missed caller
texted exactly once, nobody else texted.

By default the simulated PBX writes its CEL rows and goes on taking calls whatever the service does: kills land at
any moment (calls ring, talk and end while it is down) and the AMI link is dropped too (`--ami-drops`); the service
must find those calls in CEL. With `--texting-side-only` (no CEL) calls start only while the service is connected
and kills wait until no call is in progress and every call placed is stored.

    python bench/faults.py [--calls 2000] [--seed 1] [--kills 10] [--ami-drops 10] [--smsc-faults 12] [--speed 20]

Prints one line: `faults calls=N stored=N texted=N duplicates=0 lost=0 unresolved=0 false_texts=0 kills=K`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/faults.py: the rig and the judge

from tests.faults import FaultRig, fault_rig, make_calls, tally


async def smsc_fault(rig: FaultRig, rng: random.Random) -> str:
    smsc = rig.smsc
    assert smsc is not None
    kind = rng.choice(("drop", "throttle", "cut"))
    if kind == "drop":
        await smsc.drop_connections(refuse_s=rng.uniform(0.2, 2.0))
    elif kind == "throttle":
        smsc.throttle(rng.randint(1, 4))
    else:
        smsc.cut_after_accept(rng.randint(1, 2))
    return kind


async def soak(
    calls: int, seed: int, kills: int, ami_drops: int, smsc_faults: int, speed: float, keep: bool, cel: bool
) -> str:
    rng = random.Random(seed)
    scenarios = make_calls(calls, seed, gap_s=(0.02, 0.4), cel=cel)
    with tempfile.TemporaryDirectory(delete=not keep) if sys.version_info >= (3, 12) else _kept(keep) as tmp:
        if keep:
            print(f"database and service log kept in {tmp}", file=sys.stderr)
        async with fault_rig(Path(tmp), speed=speed, cel=cel) as rig:
            span = (scenarios[-1].started_at - scenarios[0].started_at) / speed
            events = [(rng.uniform(0.1, span), "kill") for _ in range(kills)]
            events += [(rng.uniform(0.1, span), "smsc") for _ in range(smsc_faults)]
            events += [(rng.uniform(0.1, span), "ami") for _ in range(ami_drops if cel else 0)]
            events.sort()
            placing = asyncio.create_task(rig.place(scenarios))
            began = time.monotonic()
            for at, what in events:
                await asyncio.sleep(max(0.0, began + at - time.monotonic()))
                if what == "kill" and cel:
                    await rig.kill()
                    await rig.restart(after_s=rng.uniform(0.1, 2.0))
                elif what == "kill":
                    await rig.kill_quietly(restart_after_s=0.3)
                elif what == "ami":
                    rig.ami.drop_clients()
                else:
                    await smsc_fault(rig, rng)
            await placing
            try:
                await rig.settle(timeout=120 + calls * 0.05, unknown_ok=True, quiet_s=2.0)
            except AssertionError as exc:  # judged below all the same: what is left unsettled is counted
                print(str(exc).splitlines()[0], file=sys.stderr)
            result = tally(rig, scenarios, unknown_ok=True)
            for problem in result.problems[:20]:
                print(problem, file=sys.stderr)
            return result.line(rig.kills)


def _kept(keep: bool) -> contextlib.AbstractContextManager[str]:
    """TemporaryDirectory(delete=False) before Python 3.12."""
    return contextlib.nullcontext(tempfile.mkdtemp(prefix="faults-")) if keep else tempfile.TemporaryDirectory()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the service during the run")
    parser.add_argument("--ami-drops", type=int, default=10, help="AMI link drops during calls (with CEL)")
    parser.add_argument("--smsc-faults", type=int, default=12, help="link drops, throttling, cuts after accept")
    parser.add_argument("--texting-side-only", action="store_true", help="no CEL: kills only between calls")
    parser.add_argument("--speed", type=float, default=20.0, help="how much faster than the calls' real timing")
    parser.add_argument("--keep", action="store_true", help="keep the database and the service's log")
    args = parser.parse_args()
    cel = not args.texting_side_only
    line = soak(args.calls, args.seed, args.kills, args.ami_drops, args.smsc_faults, args.speed, args.keep, cel)
    print(asyncio.run(line))


if __name__ == "__main__":
    main()
