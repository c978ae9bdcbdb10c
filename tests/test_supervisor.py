"""Every long-running task is kept alive: a failure is logged with the task's name, reported down while it waits,
and the task starts again after a growing pause; a finished task is left finished."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callbuddy_pbx.service.supervisor import Supervisor
from callbuddy_pbx.web.health import AmiHealth, HealthStatus
from tests.waiting import wait_until


async def test_a_failing_task_is_logged_reported_down_and_started_again(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(min_backoff_s=0.2, max_backoff_s=1.0)
    runs: list[float] = []
    healthy = asyncio.Event()

    async def flaky() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) <= 2:
            raise RuntimeError(f"bad frame {len(runs)}")
        healthy.set()
        await asyncio.Event().wait()  # then runs for good

    supervisor.start("ari-listener", flaky)
    await wait_until(lambda: supervisor.down() == {"ari-listener": "RuntimeError: bad frame 1"})
    await asyncio.wait_for(healthy.wait(), 5)
    assert supervisor.down() == {} and supervisor.restarts["ari-listener"] == 2
    first_pause, second_pause = runs[1] - runs[0], runs[2] - runs[1]
    assert first_pause >= 0.2 and second_pause >= 0.4  # the pause doubles
    await supervisor.stop()
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "ari-listener" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)  # with the traceback, for the installer


async def test_a_task_that_finishes_is_not_started_again() -> None:
    supervisor = Supervisor(min_backoff_s=0.01)
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    supervisor.start("digests", once)
    await asyncio.sleep(0.1)
    assert runs == [1] and supervisor.down() == {}
    await supervisor.stop()


async def test_stop_ends_only_the_named_tasks() -> None:
    supervisor = Supervisor()
    started: set[str] = set()

    def forever(name: str):
        async def run() -> None:
            started.add(name)
            await asyncio.Event().wait()

        return run

    supervisor.start("alerts", forever("alerts"))
    supervisor.start("call-writer", forever("call-writer"))
    await wait_until(lambda: started == {"alerts", "call-writer"})
    await supervisor.stop("alerts")
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("call-writer", forever("call-writer"))
    supervisor.start("alerts", forever("alerts"))  # stopped: its name is free again
    await supervisor.stop()


def test_a_task_down_fails_health_and_says_which() -> None:
    status = HealthStatus(AmiHealth(True), tasks_down={"text-back": "OperationalError: disk I/O error"})
    assert status.ok is False
    assert status.to_json()["tasks"] == {"down": {"text-back": "OperationalError: disk I/O error"}}
    assert HealthStatus(AmiHealth(True)).ok is True
