"""One line per mutated module from the results `mutmut run` left in mutants/:

    mutation module=callbuddy_pbx/recovery/policy.py killed=K survived=S score=X%

Killed counts mutants a test caught (a timeout counts as caught: the mutant hung the code). Mutants no selected test
runs ("no tests") count as survivors: code no test reaches holds no rule. `--survivors` lists the survivors' names
(`mutmut show NAME` prints the change). Exit 1 when a module scores below `--min-score`, or has no checked
mutant at all (mutmut stops before mutating when a selected test fails on the unmutated code).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KILLED = {1, 3, 24, -24, 36, 152, 255}  # failed, pytest internal error, timeouts
SURVIVED = {0, 5, 33}  # passed, or no test ran it


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants by name")
    parser.add_argument("--min-score", type=float, default=0.0, help="exit 1 when a module scores below this (%%)")
    args = parser.parse_args()
    metas = sorted(args.mutants.rglob("*.py.meta"))
    if not metas:
        print(f"mutation: no results under {args.mutants}/ (run `mutmut run` first)", file=sys.stderr)
        return 2
    low = False
    for meta in metas:
        results: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        killed = sum(1 for code in results.values() if code in KILLED)
        survivors = sorted(name for name, code in results.items() if code in SURVIVED)
        checked = killed + len(survivors)
        score = 100.0 * killed / checked if checked else 0.0  # none checked: the run failed, nothing was shown
        module = meta.relative_to(args.mutants).as_posix().removesuffix(".meta")
        print(f"mutation module={module} killed={killed} survived={len(survivors)} score={score:.1f}%")
        if args.survivors:
            for name in survivors:
                print(f"  {name}")
        if not checked:
            print(f"  no mutant of {module} was checked: did the selected tests pass on the unmutated code?")
        low = low or score < args.min_score or not checked
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
