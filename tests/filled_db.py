"""A database filled once per test session and copied for each test: the same rows, at the cost of a file copy.

Filling a few hundred calls with their texts, receipts and clicks takes ~0.4 s; dozens of tests read the same
scenario, and each still gets its own file (a test may write to it)."""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from callbuddy_pbx.store.db import CallStore

S = TypeVar("S")
_templates: dict[Hashable, tuple[Path, Any]] = {}


async def filled_copy(key: Hashable, fill: Callable[[CallStore], Awaitable[S]], target: Path) -> tuple[CallStore, S]:
    """An open store at `target`, holding what `fill` put in a fresh database (filled on first use of `key`)."""
    if key not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="callbuddy-template-"))
        atexit.register(functools.partial(shutil.rmtree, folder, ignore_errors=True))
        async with await CallStore.open(folder / "calls.sqlite3") as store:
            scenario = await fill(store)
        _templates[key] = (folder / "calls.sqlite3", scenario)  # closed: the WAL is checkpointed into the file
    template, scenario = _templates[key]
    shutil.copyfile(template, target)
    return await CallStore.open(target), copy.deepcopy(scenario)
