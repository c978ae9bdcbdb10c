"""SQLite storage of finished calls."""

from callbuddy_pbx.store.db import CallStore
from callbuddy_pbx.store.schema import SCHEMA_VERSION, StoreError

__all__ = ["SCHEMA_VERSION", "CallStore", "StoreError"]
