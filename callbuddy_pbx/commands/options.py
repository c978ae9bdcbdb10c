"""Options several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from callbuddy_pbx.config import StorageConfig, load_config


def database_path(args: argparse.Namespace) -> Path:
    """--db, else the database of --config, else the default path."""
    if args.db:
        return Path(args.db)
    if args.config:
        return load_config(args.config).storage.path
    return StorageConfig().path
