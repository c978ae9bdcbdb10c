"""The failed-login limiter (web/login_limit.py): five failures in fifteen minutes lock a key for a while."""

from __future__ import annotations

import pytest

from callbuddy_pbx.web.login_limit import LoginLimiter

T0 = 1_000_000.0
WINDOW = 15 * 60.0


def test_five_failures_lock_until_the_oldest_ages_out() -> None:
    limiter = LoginLimiter()
    for second in range(5):
        assert limiter.retry_after(["ann"], T0 + second) == 0
        limiter.failed(["ann"], T0 + second)
    assert limiter.retry_after(["ann"], T0 + 5) == WINDOW - 5
    assert limiter.retry_after(["ann"], T0 + 100.5) == 800  # whole seconds, rounded up
    assert limiter.retry_after(["ann"], T0 + WINDOW) == 0  # the first failure aged out: one more attempt
    limiter.failed(["ann"], T0 + WINDOW)
    assert limiter.retry_after(["ann"], T0 + WINDOW) == 1  # locked until the second failure ages out


def test_four_failures_do_not_lock() -> None:
    limiter = LoginLimiter()
    limiter.failed(["ann"], T0)
    for _ in range(3):
        limiter.failed(["ann"], T0 + 10)
    assert limiter.retry_after(["ann"], T0 + 11) == 0


def test_failures_spread_over_more_than_the_window_do_not_lock() -> None:
    limiter = LoginLimiter()
    for n in range(10):
        limiter.failed(["ann"], T0 + n * 250)  # never more than four inside 15 minutes
    assert limiter.retry_after(["ann"], T0 + 9 * 250) == 0


def test_keys_are_separate_and_the_longest_wait_counts() -> None:
    limiter = LoginLimiter(max_failures=2, window_s=100)
    limiter.failed(["10.0.0.1", "ann"], T0)
    limiter.failed(["10.0.0.1"], T0 + 50)
    assert limiter.retry_after(["ann"], T0 + 60) == 0
    assert limiter.retry_after(["10.0.0.1"], T0 + 60) == 40
    limiter.failed(["ann"], T0 + 70)
    assert limiter.retry_after(["10.0.0.1", "ann"], T0 + 70) == 30


def test_forget_clears_a_key() -> None:
    limiter = LoginLimiter(max_failures=1)
    limiter.failed(["ann", "10.0.0.1"], T0)
    limiter.forget("ann")
    limiter.forget("nobody")
    assert limiter.retry_after(["ann"], T0) == 0
    assert limiter.retry_after(["10.0.0.1"], T0) > 0


def test_memory_is_bounded_and_the_longest_quiet_keys_go_first() -> None:
    limiter = LoginLimiter(max_failures=1, max_keys=3)
    for n, key in enumerate(["a", "b", "c"]):
        limiter.failed([key], T0 + n)
    limiter.failed(["a"], T0 + 3)  # a failed again: now b is the one that failed longest ago
    limiter.failed(["d"], T0 + 4)
    assert len(limiter) == 3
    assert limiter.retry_after(["b"], T0 + 5) == 0
    assert all(limiter.retry_after([key], T0 + 5) > 0 for key in ("a", "c", "d"))
    for n in range(10_000):
        limiter.failed([f"flood-{n}"], T0 + 6)
    assert len(limiter) == 3


def test_old_keys_are_dropped_when_looked_at() -> None:
    limiter = LoginLimiter()
    limiter.failed(["ann"], T0)
    assert len(limiter) == 1
    assert limiter.retry_after(["ann"], T0 + WINDOW + 1) == 0
    assert len(limiter) == 0


def test_settings_must_make_sense() -> None:
    with pytest.raises(ValueError):
        LoginLimiter(max_failures=0)
    with pytest.raises(ValueError):
        LoginLimiter(window_s=0)


def test_cancel_takes_back_one_failure() -> None:
    limiter = LoginLimiter(max_failures=2)
    limiter.failed(["10.0.0.1"], T0)
    limiter.failed(["10.0.0.1"], T0 + 1)
    assert limiter.retry_after(["10.0.0.1"], T0 + 1) > 0
    limiter.cancel(["10.0.0.1"], T0 + 1)
    assert limiter.retry_after(["10.0.0.1"], T0 + 1) == 0
    limiter.cancel(["10.0.0.1", "unknown"], T0 + 5)  # nothing counted then: nothing happens
    limiter.cancel(["10.0.0.1"], T0)
    assert len(limiter) == 0
