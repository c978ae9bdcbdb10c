"""Keeps push secrets out of the HTTP/2 library's own log lines, whatever level the installer turns them up to.

hpack logs every header it encodes or decodes at DEBUG, the provider token and the OAuth2 access token among them,
and an APNs path (which h2 may log) ends with the device token. Filters sit on those loggers themselves (records
are made there, so no handler set-up can forget them): hpack's records are dropped (they are of no use to an
installer), APNs paths in h2's are masked.
"""

from __future__ import annotations

import logging
import re

from callbuddy_pbx.push.binding import mask_token

_DEVICE_PATH = re.compile(r"(/3/device/)([0-9A-Za-z]+)")
_HPACK_LOGGERS = ("hpack", "hpack.hpack", "hpack.table")


class _MaskDevicePaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _DEVICE_PATH.sub(lambda match: match.group(1) + mask_token(match.group(2)), message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class _Drop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


_MASK = _MaskDevicePaths()
_DROP = _Drop()


def hide_push_secrets() -> None:
    """Installs the filters (once; calling again changes nothing)."""
    h2_logger = logging.getLogger("h2")
    if _MASK not in h2_logger.filters:
        h2_logger.addFilter(_MASK)
    for name in _HPACK_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP not in logger.filters:
            logger.addFilter(_DROP)
