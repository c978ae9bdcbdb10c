"""Options several commands share."""

from __future__ import annotations

import importlib.metadata


def version() -> str:
    """The installed distribution's version (package metadata), or "unknown" when run from an uninstalled tree."""
    try:
        return importlib.metadata.version("callbuddy-pbx")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
