"""Fixtures shared by many test files."""

from tests.config_files import write  # noqa: F401 (a fixture: YAML config files in tmp_path)
