"""The package's imports run one way, as docs/ARCHITECTURE.md draws them: no folder imports one above it, no circle,
and the pure core (tracker, policy, text rules, routing plans) imports no I/O."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "callbuddy_pbx"

# Small value modules at the top level, used everywhere; they import only each other.
VALUES = {"phone", "periods", "model", "serialize", "passwords", "untrusted", "message_text", "shipped", "db_url"}

# What each part may import (besides itself and the value modules). Lower layers come first.
ALLOWED: dict[str, set[str]] = {
    "values": set(),
    "config": set(),
    "push": {"config"},  # push wake-up: bindings, the APNs and FCM clients
    "asterisk": {"config", "push"},  # the device registry keeps each contact's push binding
    "sms": {"config"},
    "store": {"sms"},  # the receipt types it stores
    "routing": {"config", "asterisk", "push"},
    "recovery": {"config", "sms", "store"},
    "web": {"config", "asterisk", "push", "sms", "store"},
    "service": {"config", "asterisk", "push", "sms", "store", "routing", "recovery", "web"},
    "sim": {"asterisk", "sms"},  # the wire formats it speaks, nothing of the service
    "commands": {"config", "asterisk", "push", "sms", "store", "routing", "recovery", "web", "service", "sim"},
    "cli": {"config", "commands"},
    "healthcheck": {"config"},  # the container's HEALTHCHECK
    "__main__": {"cli"},
    "__init__": set(),
}

# Pure logic: decides from values, touches nothing outside the process.
PURE = (
    "asterisk/tracker.py",
    "asterisk/cel.py",
    "asterisk/inbound.py",
    "asterisk/ami_protocol.py",
    "recovery/policy.py",
    "recovery/schedule.py",
    "recovery/keys.py",
    "recovery/pacing.py",
    "recovery/forward_rules.py",
    "routing/plan.py",
    "push/binding.py",
    "message_text.py",
    "phone.py",
    "model.py",
)
IO_MODULES = ("asyncio", "aiohttp", "aiosqlite", "sqlite3", "socket", "ssl", "smpplib", "subprocess", "urllib", "os")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative ones resolved."""
    own = module_name(path).split(".")
    package = own if path.name == "__init__.py" else own[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:  # `from package import module` imports that module
                submodule = f"{base}.{alias.name}"
                yield node.lineno, submodule if is_module(submodule) else base


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def part_of(module: str) -> str:
    """The layer a callbuddy_pbx module belongs to: its folder, 'values', or a top-level module's own name."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    if parts[0] in VALUES:
        return "values"
    return parts[0]


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_is_placed() -> None:
    """A new folder or top-level module must be given its place in the table (and in docs/ARCHITECTURE.md)."""
    unplaced = {part_of(module_name(path)) for path in sources()} - set(ALLOWED)
    assert not unplaced, f"not in ALLOWED (nor docs/ARCHITECTURE.md): {sorted(unplaced)}"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path: Path) -> None:
    here = part_of(module_name(path))
    allowed = ALLOWED[here] | {here, "values"}
    upward = [
        f"line {line}: {module}"
        for line, module in imports_of(path)
        if module.startswith("callbuddy_pbx.") and part_of(module) not in allowed
    ]
    assert not upward, f"{here} may import only {sorted(allowed)}; {path.name} imports " + "; ".join(upward)


def test_no_import_circle() -> None:
    graph = {
        module_name(path): {m for _, m in imports_of(path) if m.startswith("callbuddy_pbx.")} for path in sources()
    }
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = [*trail[trail.index(module) :], module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if module in done or module not in graph:
            return
        for target in sorted(graph[module]):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize("relative", PURE)
def test_the_pure_core_does_no_io(relative: str) -> None:
    path = PACKAGE / relative
    found = [
        f"line {line}: {module}"
        for line, module in imports_of(path)
        if module.split(".")[0] in IO_MODULES
        or (module.startswith("callbuddy_pbx.") and part_of(module) in {"store", "sms", "service", "web"})
    ]
    assert not found, f"{relative} is pure logic but imports " + "; ".join(found)
