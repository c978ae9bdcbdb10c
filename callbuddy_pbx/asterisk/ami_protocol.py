"""AMI wire format, without I/O: split a byte stream into messages, parse a message, encode an action.

A message is `Key: Value` lines ended by an empty line (b"\\r\\n\\r\\n"). Framing is done on bytes and each complete
message is decoded on its own, so a UTF-8 character split across two TCP reads is never cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from callbuddy_pbx.phone import redact

AmiMessage = dict[str, str]

TERMINATOR = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"
MAX_MESSAGE_BYTES = 256 * 1024  # Asterisk's largest real messages (long Cdr/CEL, list items) stay far below this
MAX_VALUE_CHARS = 8 * 1024  # a longer header value is cut, so one bad field cannot blow up memory downstream

log = logging.getLogger(__name__)


class AmiProtocolError(ValueError):
    """A frame that breaks the AMI wire format; the message names what and where."""


def parse_message(block: bytes, *, where: str = "AMI") -> AmiMessage:
    """Parse one message (without its terminating blank line).

    Keys are split at the first ": "; a key seen twice (manager `channelvars` adds several `ChanVariable` lines)
    keeps every value, joined by "\\n". Lines without a colon are logged and skipped: the rest of the message is kept.
    """
    text = block.decode("utf-8", "replace")
    lines = text.split("\r\n")
    # Fast path for the common, well-formed message; anything unusual goes through the careful parser.
    message: AmiMessage = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            return _parse_lines(lines, where)
        message[key] = value
    if len(message) != len(lines) or len(text) > MAX_VALUE_CHARS:  # a repeated key, or a value that may be too long
        return _parse_lines(lines, where)
    return message


def _parse_lines(lines: list[str], where: str) -> AmiMessage:
    message: AmiMessage = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep:
                if line:
                    log.error("%s: skipped a line without 'Key: Value' in a message: %r", where, redact(line[:80]))
                continue
        if len(value) > MAX_VALUE_CHARS:
            log.error("%s: value of %r is %d characters, cut to %d", where, key[:40], len(value), MAX_VALUE_CHARS)
            value = value[:MAX_VALUE_CHARS]
        if key in message:
            message[key] = message[key] + "\n" + value
        else:
            message[key] = value
    return message


def encode_action(action: str, fields: Mapping[str, str | int | None]) -> bytes:
    """Encode an action. Values with CR or LF would inject extra headers, so they are refused."""
    if "\r" in action or "\n" in action:
        raise AmiProtocolError(f"AMI action name {action[:40]!r} contains a line break")
    lines = [f"Action: {action}"]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if "\r" in text or "\n" in text or "\r" in key or "\n" in key:
            raise AmiProtocolError(f"AMI action {action}: field {key!r} contains a line break")
        lines.append(f"{key}: {text}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class FrameSplitter:
    """Incremental splitter for a byte stream; keeps at most MAX_MESSAGE_BYTES of an unfinished message.

    An oversized message is discarded up to its terminator (logged), and the stream goes on after it.
    """

    def __init__(self, *, expect_banner: bool = True, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = bytearray()
        self._expect_banner = expect_banner
        self._max = max_message_bytes
        self._discarding = False
        self.banner: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete message blocks (without terminators) now available."""
        buf = self._buffer
        buf += data
        blocks: list[bytes] = []
        if self._expect_banner:
            end = buf.find(b"\r\n")
            if end < 0:
                return blocks
            if buf.startswith(BANNER_PREFIX):
                self.banner = buf[:end].decode("utf-8", "replace")
                del buf[: end + 2]
            self._expect_banner = False
        start = 0
        while True:
            end = buf.find(TERMINATOR, start)
            if end < 0:
                break
            if self._discarding:
                self._discarding = False
            elif end - start > self._max:
                log.error("AMI: dropped a message of %d bytes (limit %d)", end - start, self._max)
            elif end > start:
                blocks.append(bytes(buf[start:end]))
            start = end + 4
        del buf[:start]
        if len(buf) > self._max and not self._discarding:
            log.error("AMI: a message grew past %d bytes without ending; dropping it up to its end", self._max)
            self._discarding = True
        if self._discarding:
            # keep the last 3 bytes: the terminator may straddle the next read
            del buf[:-3]
        return blocks


def iter_stream(data: bytes, *, where: str = "AMI stream") -> Iterator[AmiMessage]:
    """Parse a whole recorded stream (an `ami.raw` file): optional banner, then messages."""
    splitter = FrameSplitter(expect_banner=data.startswith(BANNER_PREFIX))
    blocks = splitter.feed(data)
    tail = bytes(splitter._buffer).strip(b"\r\n")
    if tail:
        blocks.append(tail)  # a recording may end without the final blank line
    for index, block in enumerate(blocks, start=1):
        yield parse_message(block, where=f"{where} message {index}")
