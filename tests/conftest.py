"""Fixtures shared by many test files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from callbuddy_pbx.store.db import CallStore
from tests.config_files import write  # noqa: F401 (a fixture: YAML config files in tmp_path)
from tests.pg import Cluster, running_cluster

ENGINES = ("sqlite", "postgresql")
OpenStore = Callable[..., Awaitable[CallStore]]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL for the whole session (tests/pg.py)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each store-level test runs once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def store_urls(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """The URL of the test's database `name` on its engine (the same name: the same database)."""
    urls: dict[str, str] = {}

    def url(name: str = "db") -> str:
        if name not in urls:
            if engine == "sqlite":
                urls[name] = f"sqlite:///{tmp_path / (name + '.sqlite3')}"
            else:
                cluster: Cluster = request.getfixturevalue("pg_cluster")
                urls[name] = cluster.fresh_url()
        return urls[name]

    return url


@pytest.fixture
def open_store(store_urls: Callable[[str], str]) -> OpenStore:
    """`await open_store()` opens the test's database on its engine (again: the same one, as after a restart)."""

    async def opened(name: str = "db", *, create: bool = True) -> CallStore:
        return await CallStore.open_url(store_urls(name), create=create)

    return opened
