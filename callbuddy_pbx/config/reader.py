"""Reading YAML node trees into plain values, collecting every problem with its file, line and key path.

The configuration sections are built from these helpers; none of them stops at the first problem, and values read
from the environment or marked secret never appear in a message. Files are read bounded in size and nesting, so a
mistaken path (`/dev/zero`) or a hostile file gets a clear problem, never a hang or a traceback.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import zoneinfo
from collections.abc import Collection, Sequence
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import phonenumbers
import yaml

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
TIMESTAMP = "tag:yaml.org,2002:timestamp"

# `$${` is a literal `${`; `${...}` without its `}` is reported rather than kept verbatim.
_ENV_REF = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_ENV_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = ("true", "yes", "on")
MAX_FILE_BYTES = 1 << 20  # a configuration or users file larger than this is a mistake (or /dev/zero)
MAX_DEPTH = 40  # nesting of a YAML file; the deepest real configuration is under 10
_MIN_SCRUBBED_CHARS = 3  # environment values this long or longer are never repeated in a message


class FileTooLarge(OSError):
    """A file over MAX_FILE_BYTES; its `strerror` says so."""


def read_bounded(path: Path) -> str:
    """A UTF-8 text file of at most MAX_FILE_BYTES (FileTooLarge otherwise); read no further than that."""
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLarge(0, f"larger than {MAX_FILE_BYTES // 1024} KiB (is it the right file?)")
    return data.decode("utf-8")


def compose_bounded(text: str) -> yaml.Node | None:
    """yaml.compose, with nesting deeper than MAX_DEPTH refused as a MarkedYAMLError at the place it starts."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:  # nested so deep that composing it ran out of stack: far beyond MAX_DEPTH
        raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep") from None
    stack = [(root, 1)] if root is not None else []
    seen: set[int] = set()  # aliases share nodes: visit each once
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise yaml.MarkedYAMLError(
                problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=node.start_mark
            )
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((value, depth + 1) for _, value in node.value)
    return root


_FALSE = ("false", "no", "off")


def join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def shown(text: str) -> str:
    """A value quoted for a message, bounded so a huge value cannot flood the output."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def kind_of(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    names = {NULL: "nothing", BOOL: "true/false", INT: "a number", FLOAT: "a number", TIMESTAMP: "a date"}
    return names.get(node.tag, "a string")


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of: " + ", ".join(choices)


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL


def line_of(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def key_node(mapping: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(mapping, yaml.MappingNode):
        for key_node, _ in mapping.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return key_node
    return None


class Reader:
    """Generic values from nodes; every problem is kept as `file:line: key.path: what` and sorted by line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._found: list[tuple[int, str]] = []
        self._from_environment: dict[str, str] = {}  # a value read from the environment -> its variable's name

    @property
    def problems(self) -> list[str]:
        """In file order, whatever order the sections were checked in."""
        return [message for _, message in sorted(self._found, key=lambda found: found[0])]

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = line_of(node) if node is not None else 1
        where = f"{path}: " if path else ""
        self._found.append((line, f"{self.source}:{line}: {where}{self._scrubbed(message)}"))

    def _scrubbed(self, message: str) -> str:
        """The message with every value that came from the environment replaced by its variable's name: a value that
        fails a check (a password given where a port belongs) must not be printed."""
        for value, name in sorted(self._from_environment.items(), key=lambda item: -len(item[0])):
            for form in (shown(value), repr(value), value):
                message = message.replace(form, f"(the value of ${name})")
        return message

    def mapping(self, node: yaml.Node, path: str, known: Sequence[str]) -> dict[str, yaml.Node] | None:
        """Known keys → value nodes. Unknown and repeated keys are problems; an empty section (null) is {}."""
        if is_null(node) and path:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"expected a mapping of settings ({', '.join(known)}), got {kind_of(node)}")
            return None
        found: dict[str, yaml.Node] = {}
        for key, key_node, value_node in self.pairs(node, path):
            if key not in known:
                self.problem(key_node, join(path, key), f"unknown key ({did_you_mean(key, known)})")
                continue
            found[key] = value_node
        return found

    def pairs(self, node: yaml.MappingNode, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping with free keys; non-scalar and repeated keys are problems."""
        result: list[tuple[str, yaml.Node, yaml.Node]] = []
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, f"expected a key name, got {kind_of(key_node)}")
                continue
            key = str(key_node.value)
            if key in first_line:
                self.problem(key_node, join(path, key), f"given twice (first on line {first_line[key]})")
                continue
            first_line[key] = line_of(key_node)
            result.append((key, key_node, value_node))
        return result

    def expand(self, node: yaml.Node, path: str, text: str) -> str | None:
        """Replace ${VAR} and ${VAR:-default} from the environment. Values never appear in messages."""
        ok = True

        def substitute(match: re.Match[str]) -> str:
            nonlocal ok
            if match.group(0) == "$${":
                return "${"
            inner, closed = match.group(1), match.group(2)
            parsed = _ENV_INNER.fullmatch(inner) if closed else None
            if parsed is None:
                self.problem(
                    node, path, f"malformed {shown(match.group(0))} (expected ${{NAME}} or ${{NAME:-default}})"
                )
                ok = False
                return ""
            name, default = parsed.group(1), parsed.group(2)
            value = os.environ.get(name)
            if default is not None and not value:  # like the shell: the default also replaces an empty value
                return default
            if value is not None and len(value) >= _MIN_SCRUBBED_CHARS:
                self._from_environment[value] = name
            if value is None:
                self.problem(node, path, f"environment variable {name} is not set (or write ${{{name}:-default}})")
                ok = False
                return ""
            return value

        result = _ENV_REF.sub(substitute, text)
        return result if ok else None

    def text(self, node: yaml.Node, path: str, *, secret: bool = False) -> str | None:
        """A string. Unquoted numbers (`+15550001000`, `0123`) keep their exact text rather than YAML's reading."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL:
            self.problem(node, path, f"expected {'a secret string' if secret else 'a string'}, got {kind_of(node)}")
            return None
        if node.tag.startswith("!"):  # application tags mean nothing here; better said than silently ignored
            self.problem(node, path, f"unsupported YAML tag {shown(node.tag)} (expected a plain string)")
            return None
        value = str(node.value)
        return self.expand(node, path, value) if node.tag == STR else value

    def non_empty(self, node: yaml.Node, path: str, what: str) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        value = value.strip()
        if not value:
            self.problem(node, path, f"expected {what}, got an empty string")
            return None
        return value

    def secret(self, node: yaml.Node, path: str, what: str) -> str | None:
        """A non-empty secret kept exactly as written (spaces included); never quoted in a message."""
        value = self.text(node, path, secret=True)
        if value is None:
            return None
        if not value.strip():
            self.problem(node, path, f"expected {what}, got an empty string")
            return None
        return value

    def integer(self, node: yaml.Node, path: str, low: int, high: int) -> int | None:
        expected = f"expected a whole number from {low} to {high}"
        value: int | None = None
        if isinstance(node, yaml.ScalarNode) and node.tag == INT:
            value = yaml.SafeLoader("").construct_object(node)  # handles 0x.., 1_000
        elif isinstance(node, yaml.ScalarNode) and node.tag == STR:  # e.g. port: ${AMI_PORT}
            text = self.expand(node, path, str(node.value))
            if text is None:
                return None
            try:
                value = int(text.strip())
            except ValueError:
                self.problem(node, path, f"{shown(text)} is not a whole number ({expected})")
                return None
        else:
            self.problem(node, path, f"{expected}, got {kind_of(node)}")
            return None
        if not low <= value <= high:
            self.problem(node, path, f"{value} is out of range ({expected})")
            return None
        return value

    def number(self, node: yaml.Node, path: str, what: str, *, allow_zero: bool) -> float | None:
        """A finite number above zero (or from zero with allow_zero); `what` names its unit for messages."""
        expected = f"expected {'zero or ' if allow_zero else ''}a positive number of {what}"
        value: float | None = None
        if isinstance(node, yaml.ScalarNode) and node.tag in (INT, FLOAT):
            value = float(yaml.SafeLoader("").construct_object(node))
        elif isinstance(node, yaml.ScalarNode) and node.tag == STR:
            text = self.expand(node, path, str(node.value))
            if text is None:
                return None
            try:
                value = float(text.strip())
            except ValueError:
                self.problem(node, path, f"{shown(text)} is not a number ({expected})")
                return None
        else:
            self.problem(node, path, f"{expected}, got {kind_of(node)}")
            return None
        if not (math.isfinite(value) and (value > 0 or (allow_zero and value == 0))):
            self.problem(node, path, f"{value:g} is not allowed ({expected})")
            return None
        return value

    def positive(self, node: yaml.Node, path: str) -> float | None:
        return self.number(node, path, "seconds", allow_zero=False)

    def boolean(self, node: yaml.Node, path: str) -> bool | None:
        if isinstance(node, yaml.ScalarNode) and node.tag in (BOOL, STR):
            text = str(node.value) if node.tag == BOOL else self.expand(node, path, str(node.value))
            if text is None:
                return None
            word = text.strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            self.problem(node, path, f"{shown(text)} is not true or false")
            return None
        self.problem(node, path, f"expected true or false, got {kind_of(node)}")
        return None

    def day(self, node: yaml.Node, path: str) -> date | None:
        """A calendar date written YYYY-MM-DD (unquoted, YAML reads it as a date; quoted, as text)."""
        raw = str(node.value) if isinstance(node, yaml.ScalarNode) and node.tag == TIMESTAMP else None
        if raw is None:
            if not isinstance(node, yaml.ScalarNode) or node.tag != STR:
                self.problem(node, path, f"expected a date such as 2026-12-25, got {kind_of(node)}")
                return None
            raw = self.expand(node, path, str(node.value))
            if raw is None:
                return None
        text = raw.strip()
        try:
            if not _DATE.fullmatch(text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            self.problem(node, path, f"{shown(raw)} is not a date (expected YYYY-MM-DD, e.g. 2026-12-25)")
            return None

    def url(self, node: yaml.Node, path: str, what: str, *, quoted: bool = True) -> str | None:
        """An http(s) URL with a host. Unquoted in messages when it may carry a key (`?api_key=...`)."""
        value = self.non_empty(node, path, what)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname and not any(char.isspace() for char in value):
            return value
        said = f"{shown(value)} is not" if quoted else "not"
        self.problem(node, path, f"{said} an http(s) URL (expected {what}, e.g. https://example.com/...)")
        return None

    def items(self, node: yaml.Node, path: str) -> list[tuple[yaml.Node, str]] | None:
        """A list of values as (node, path) pairs, for per-item checks and messages."""
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, f"expected a list, got {kind_of(node)}")
            return None
        return [(item, f"{path}[{index}]") for index, item in enumerate(node.value)]

    def choice(self, node: yaml.Node, path: str, choices: Sequence[str], *, upper: bool) -> str | None:
        value = self.non_empty(node, path, "one of " + ", ".join(choices))
        if value is None:
            return None
        value = value.upper() if upper else value.lower()
        if value not in choices:
            self.problem(node, path, f"{shown(value)} is not allowed ({did_you_mean(value, choices)})")
            return None
        return value

    def region(self, node: yaml.Node, path: str) -> str | None:
        value = self.non_empty(node, path, "a two-letter region code")
        if value is None:
            return None
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            self.problem(node, path, f"{shown(value)} is not a region known to phonenumbers (expected e.g. US, GB, DE)")
            return None
        return value

    def timezone(self, node: yaml.Node, path: str) -> str | None:
        value = self.non_empty(node, path, "a time zone name")
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "expected e.g. America/New_York or Europe/London"
            self.problem(node, path, f"{shown(value)} is not a known time zone ({hint})")
            return None
        return value


def unknown_business(name: str, businesses: Collection[str] | None) -> str | None:
    """The problem with naming `name` as a business (None: it is configured, or the businesses are not known)."""
    if businesses is None or name in businesses:
        return None
    configured = sorted(businesses)
    hint = did_you_mean(name, configured) if configured else "no businesses are configured"
    return f"{shown(name)} is not a configured business ({hint})"
