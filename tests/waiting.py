"""Waiting in async tests for something the component under test does on its own time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(predicate: Callable[[], bool], within: float = 5.0, step: float = 0.005) -> None:
    """Return once `predicate()` holds; fail the test if it does not within `within` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(step)


async def wait_until_async(predicate: Callable[[], Awaitable[bool]], within: float = 5.0, step: float = 0.01) -> None:
    """`wait_until` for a condition that must be read with I/O (a database query, a request)."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(step)
