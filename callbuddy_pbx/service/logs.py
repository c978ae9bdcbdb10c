"""Logging set-up: text or one JSON object per line.

Every line is safe whatever went into it: control characters and line breaks in a message are escaped (a caller
name or a webhook field cannot forge a log line), and phone numbers in other libraries' messages are masked (our
own code logs numbers only through `phone.mask`). Other libraries log at `library_level` (WARNING unless asked),
so the SQL parameters a database driver logs at DEBUG never reach the log. A request aiohttp cannot parse is one
WARNING line without traceback (`web.server.BadRequestRecords`, on aiohttp's own loggers).
"""

from __future__ import annotations

import json
import logging
import sys
import time

from callbuddy_pbx.phone import redact
from callbuddy_pbx.untrusted import printable
from callbuddy_pbx.web.server import quiet_bad_requests

OWN_LOGGER = "callbuddy_pbx"


class SafeRecords(logging.Filter):
    """Makes each record's message one escaped line, with numbers masked unless it comes from our own code; drops
    other libraries' records below `library_level`. (A filter on the handler rather than logger levels: nothing
    is set on the loggers themselves, so the set-up is replaced whole by the next one.)"""

    def __init__(self, library_level: int) -> None:
        super().__init__()
        self.library_level = library_level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == OWN_LOGGER or record.name.startswith(OWN_LOGGER + ".")
        if not own and record.levelno < self.library_level:
            return False
        message = record.getMessage()
        if not own:
            message = redact(message)
        record.msg, record.args = printable(message), None  # one record, one line
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text", library_level: str = "WARNING") -> None:
    own_level, others = (
        logging.getLevelNamesMapping()[level.upper()],
        logging.getLevelNamesMapping()[library_level.upper()],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SafeRecords(others))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        formatter.converter = time.localtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(min(own_level, others))
    quiet_bad_requests()  # create_app does it too; here so it holds from the first line logged
