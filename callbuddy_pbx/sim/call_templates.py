"""Fast per-call templates of a scenario script (what makes `mixed_call_stream` cheap).

`compile_template` runs a script once with `TemplateIds`, which hands out placeholder tokens instead of ids, times and
the caller's number, name and DID; it then generates (and compiles) a Python function that builds the same events
for one call from that call's values, with every string that holds no per-call value computed once, at compile time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from callbuddy_pbx.sim.call_ids import IdSource, cel_time, event_tv, uuid_from_bits
from callbuddy_pbx.sim.callgen import CallScript
from callbuddy_pbx.sim.scenario_model import Script, ScriptedEvent, ScriptMeta

_PLACEHOLDER = "\x00"


class TemplateIds(IdSource):
    """Hands out placeholder tokens; every token records how to compute its per-call value."""

    def __init__(self) -> None:
        super().__init__(random.Random(0))
        self.specs: list[tuple[str, int, float]] = []
        self.counts = {"uid": 0, "pjsip": 0, "local": 0, "uuid": 0, "callid": 0}

    def _token(self, kind: str, when: float = 0.0) -> str:
        index = len(self.specs)
        number = self.counts.get(kind, 0)
        if kind in self.counts:
            self.counts[kind] += 1
        self.specs.append((kind, number, when))
        return f"{_PLACEHOLDER}{index}{_PLACEHOLDER}"

    def param(self, name: str) -> str:
        index = len(self.specs)
        self.specs.append(("param:" + name, 0, 0.0))
        return f"{_PLACEHOLDER}{index}{_PLACEHOLDER}"

    def uniqueid(self, when: float) -> str:
        return self._token("uid", when)

    def pjsip_suffix(self) -> str:
        return self._token("pjsip")

    def local_suffix(self) -> str:
        return self._token("local")

    def uuid(self) -> str:
        return self._token("uuid")

    def sipp_call_id(self) -> str:
        return self._token("callid")

    def timestamp(self, when: float) -> str:
        return self._token("ts", when)

    def cel_time(self, when: float) -> str:
        return self._token("celtime", when)

    def event_tv(self, when: float) -> str:
        return self._token("tv", when)


_TemplateFn = Callable[..., tuple[str, tuple[ScriptedEvent, ...]]]


def _parts_expr(value: str) -> str:
    """Python expression for a string that contains tokens (`\\0<index>\\0`): literals and `v<index>` joined."""
    parts = value.split(_PLACEHOLDER)
    pieces = [repr(part) if i % 2 == 0 else f"v{part}" for i, part in enumerate(parts) if i % 2 == 1 or part]
    return pieces[0] if len(pieces) == 1 else " + ".join(pieces)


def _spec_expr(kind: str, number: int, when: float) -> str:
    if kind == "uid":
        return f'f"{{_int(t0 + {when!r})}}.{{n0 + {number}}}"'
    if kind == "pjsip":
        return f'f"{{h0 + {number}:08x}}"'
    if kind == "local":
        return f'f"{{l0 + {number}:08x}}"'
    if kind == "uuid":
        return "_uuid(_bits(128))"
    if kind == "callid":
        return f'f"{{c0 + {number}}}-{{pid}}@127.0.0.1"'
    if kind == "ts":  # "<seconds>.<microseconds>" from integer microseconds: cheaper than formatting a float
        return f'(_s := _str(u0 + {round(when * 1_000_000)}))[:-6] + "." + _s[-6:]'
    if kind == "celtime":
        return f"_cel_time(t0 + {when!r})"
    if kind == "tv":
        return f"_event_tv(t0 + {when!r})"
    if kind.startswith("param:"):
        return kind[len("param:") :]
    raise ValueError(kind)


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled script: what it says about its call, the per-call builder, and how many ids of each kind (counter
    values the factory must skip) one call uses."""

    meta: ScriptMeta
    build: _TemplateFn  # (call values) -> (linkedid, events)
    counts: dict[str, int]


def compile_template(script: Script, kwargs: dict[str, Any], *, timestamps: bool, cel_cdr: bool, boot: int) -> Template:
    ids = TemplateIds()
    tokens = [ids.param(p) for p in ("caller", "caller_name", "did")]
    s = CallScript(ids, 0.0, timestamps=timestamps, cel_cdr=cel_cdr, rng=random.Random(11), boot_time=boot)
    inbound = kwargs.pop("_inbound", True)
    meta = script(s, *tokens, **kwargs) if inbound else script(s, **kwargs)
    # Per call: every token's value once (v<i>), every string built from tokens once (w<j>), then the events as
    # dict displays referring to them.
    composite: dict[str, str] = {}

    def expr(value: str) -> str:
        if _PLACEHOLDER not in value:
            return repr(value)
        parts = _parts_expr(value)
        if " + " not in parts:
            return parts
        if value not in composite:
            composite[value] = f"w{len(composite)}"
        return composite[value]

    body_lines = [f"    return {expr(meta.linkedid)}, ("]
    for at, message in s.events:
        body = ", ".join(f"{key!r}: {expr(value)}" for key, value in message.items())
        body_lines.append(f"        _SE({at!r}, {{{body}}}),")
    body_lines.append("    )")
    head = "(t0, n0, h0, l0, c0, pid, _bits, caller, caller_name, did):"
    prologue = ["    u0 = _int(round(t0 * 1000000))"]
    prologue += [f"    v{i} = {_spec_expr(*spec)}" for i, spec in enumerate(ids.specs)]
    lines = ["def build" + head, *prologue]
    lines += [f"    {name} = {_parts_expr(value)}" for value, name in composite.items()]
    lines += body_lines
    namespace: dict[str, Any] = {
        "_SE": ScriptedEvent,
        "_str": str,
        "_int": int,
        "_uuid": uuid_from_bits,
        "_cel_time": cel_time,
        "_event_tv": event_tv,
    }
    code = compile("\n".join(lines), f"<scenario template {meta.name}>", "exec")
    exec(code, namespace)  # noqa: S102 - source generated above from our own script's events, no outside input
    return Template(meta, cast(_TemplateFn, namespace["build"]), dict(ids.counts))
