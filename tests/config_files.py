"""YAML configuration files for the config tests, and the problems loading one reports."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from callbuddy_pbx.config import ConfigError, load_config

Write = Callable[..., Path]


def yaml_writer(folder: Path) -> Write:
    """`write(text, name="site.yaml")`: the dedented text in folder/name, whose path it returns."""

    def _write(text: str, name: str = "site.yaml") -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def write(tmp_path: Path) -> Write:
    return yaml_writer(tmp_path)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems
