"""Options several commands share."""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path

from callbuddy_pbx.config import StorageConfig, load_config


def database_path(args: argparse.Namespace) -> Path:
    """--db, else the database of --config, else the default path."""
    if args.db:
        return Path(args.db)
    if args.config:
        return load_config(args.config).storage.path
    return StorageConfig().path


def version() -> str:
    """The installed distribution's version (package metadata), or "unknown" when run from an uninstalled tree."""
    try:
        return importlib.metadata.version("callbuddy-pbx")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
