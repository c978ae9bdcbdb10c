"""Which devices ring for one call, in which order and for how long: pure (no I/O, no clock), decided the moment
the call arrives from the ring group, the phones of the configuration and what the device registry knows.

A member extension stands for its person: every phone of that person (`Phone.person`; "" = the phone is its own
person) rings together with it, so a member's softphone and mobile app ring with the desk phone. Only usable devices
ring (`why_unusable`). Strategies:

- `ring_all`: one step, every usable device of every member person, for `ring_s`;
- `in_order`: one step per person in member order, `ring_s` each;
- `last_active_first`: one step per person, the most recently active first (the latest of its devices' last call,
  last state change, and the caller-supplied activity such as "answered a routed call"), then the persons with no
  known activity in member order.

Steps are capped by `total_s` (the last one is shortened, the rest dropped). A person with no usable device is left
out without using up time; nobody usable gives an empty plan, and the caller goes to the fallback at once.

A sleeping softphone (a push binding, no live contact: `Device.sleeping`) that the router can push to (`wakeable`)
counts as usable: it goes into its person's step as one to wake (`RingStep.wake`), beside the devices that ring at
once. A busy one or one in do-not-disturb is not woken.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from callbuddy_pbx.asterisk.devices_model import Device
from callbuddy_pbx.config.pbx import Phone, RingGroup

# Device states (ast_devstate2str) that mean the phone cannot take another call now. INUSE/BUSY/ONHOLD: someone is
# on it (a PJSIP phone with one line rejects a second INVITE with 486 anyway; one with call waiting would beep into a
# conversation). RINGING/RINGINUSE: it rings for another call already (the other call's caller has it first; ringing
# it for both lets one person's answer silently strand the other call).
BUSY_STATES = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGING", "RINGINUSE"})
# No contact to send an INVITE to: originate would answer 500 "Allocation failed" (trace 30) after costing a request.
# INVALID: the device does not exist in Asterisk (a configured extension missing from pjsip.conf).
UNUSABLE_STATES = frozenset({"UNAVAILABLE", "INVALID"})
# Any other state rings when the registry knows a live contact: NOT_INUSE, and UNKNOWN, which is what Asterisk says
# before it has computed a state (just after start, or a device no event has named yet): the state alone proves
# nothing either way, the registration does.
STRATEGIES = ("ring_all", "in_order", "last_active_first")


@dataclass(frozen=True, slots=True)
class RingStep:
    """Devices rung together (each an ARI endpoint such as "PJSIP/100") and for how long."""

    endpoints: tuple[str, ...]
    ring_s: int
    persons: tuple[str, ...]  # whose devices these are (for logs: extensions or person names from the config)
    wake: tuple[str, ...] = ()  # sleeping devices to wake by push; each rings once it registers again


@dataclass(frozen=True, slots=True)
class RingPlan:
    steps: tuple[RingStep, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (device, why it does not ring), for the log

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(endpoint for step in self.steps for endpoint in step.endpoints)

    @property
    def wake(self) -> tuple[str, ...]:
        return tuple(endpoint for step in self.steps for endpoint in step.wake)

    @property
    def ring_s(self) -> int:
        return sum(step.ring_s for step in self.steps)


@dataclass(frozen=True, slots=True)
class Person:
    """Who a member extension stands for, with all of their devices (the member's own first)."""

    key: str  # the configured person, or "ext:<extension>" for a phone that is its own person
    label: str  # for logs
    devices: tuple[str, ...]


def device_name(extension: str) -> str:
    return f"PJSIP/{extension}"


def why_unusable(device: Device | None, *, dnd: bool = False) -> str | None:
    """None when the device may ring now, else a short reason. Asterisk's device states have no do-not-disturb
    (a phone in DND usually answers 486/480, which the router treats like busy); `dnd` is for a source that knows."""
    if device is None:
        return "unknown to the registry"
    if dnd:
        return "do not disturb"
    if device.registered is not True:
        return "not registered" if device.registered is False else "registration unknown"
    if device.state in BUSY_STATES:
        return f"busy ({device.state})"
    if device.state in UNUSABLE_STATES:
        return f"unavailable ({device.state})"
    return None  # NOT_INUSE, or UNKNOWN with a live contact


CAUSE_BUSY = 17  # Q.850 user busy: what a busy phone's leg ends with


def all_busy(plan: RingPlan, rung_causes: Iterable[int | None]) -> bool:
    """After nobody answered: whether the caller should hear busy (486) rather than no answer (480). True when at
    least one phone was busy (skipped as busy, or its leg ended with cause 17) and none that rang went unanswered.
    Phones that could not ring at all (not registered) change nothing: the ones that could were busy."""
    causes = list(rung_causes)
    if any(cause != CAUSE_BUSY for cause in causes):
        return False
    return bool(causes) or any(why.startswith("busy") for _, why in plan.skipped)


def people_of(group: RingGroup, phones: Iterable[Phone]) -> tuple[Person, ...]:
    """The group's persons in member order, each once, with every device of theirs."""
    by_extension = {phone.extension: phone for phone in phones}
    devices_of: dict[str, list[str]] = {}
    for phone in by_extension.values():
        if phone.person:
            devices_of.setdefault(phone.person, []).append(device_name(phone.extension))
    people: list[Person] = []
    seen: set[str] = set()
    for extension in group.members:
        member = by_extension.get(extension)
        own = device_name(extension)
        if member is not None and member.person:
            key, label = member.person, member.person
            devices = [own, *(name for name in devices_of[member.person] if name != own)]
        else:
            key, label, devices = f"ext:{extension}", extension, [own]
        if key not in seen:
            seen.add(key)
            people.append(Person(key, label, tuple(devices)))
    return tuple(people)


def ring_plan(
    group: RingGroup,
    phones: Iterable[Phone],
    devices: Mapping[str, Device],
    activity: Mapping[str, float] | None = None,
    *,
    dnd: Collection[str] = (),
    people: Sequence[Person] | None = None,
    wakeable: Collection[str] = (),
) -> RingPlan:
    """The plan for one call to `group`. `devices`: what the registry knows, by device name ("PJSIP/100"; a device
    missing is unknown, so unusable); `activity`: extra last-activity times by device name (epoch seconds);
    `people`: people_of(group, phones) worked out beforehand (it only changes with the configuration);
    `wakeable`: sleeping devices the router can send a push to."""
    people = people_of(group, phones) if people is None else people
    skipped: list[tuple[str, str]] = []
    usable: dict[str, _Usable] = {}
    for person in people:
        ringable: list[str] = []
        waking: list[str] = []
        for name in person.devices:
            device = devices.get(name)
            why = why_unusable(device, dnd=name in dnd)
            if why is None:
                ringable.append(name)
            elif device is not None and _wakes(device, name, dnd, wakeable):
                waking.append(name)
            else:
                skipped.append((name, why))
        if ringable or waking:
            usable[person.key] = (tuple(ringable), tuple(waking))
    ringing = [person for person in people if person.key in usable]
    if not ringing:
        return RingPlan((), tuple(skipped))
    if group.strategy == "ring_all":
        endpoints = tuple(name for person in ringing for name in usable[person.key][0])
        wake = tuple(name for person in ringing for name in usable[person.key][1])
        groups = [(endpoints, wake, tuple(person.label for person in ringing))]
    else:
        if group.strategy == "last_active_first":
            ringing = _most_recent_first(ringing, devices, activity or {})
        groups = [(*usable[person.key], (person.label,)) for person in ringing]
    return RingPlan(_capped(groups, group.ring_s, group.total_s), tuple(skipped))


_Usable = tuple[tuple[str, ...], tuple[str, ...]]  # (devices that ring at once, devices to wake first)


def _wakes(device: Device, name: str, dnd: Collection[str], wakeable: Collection[str]) -> bool:
    """A sleeping device worth a push: the router can reach its push service, and nothing says it is taken."""
    return device.sleeping and name in wakeable and name not in dnd and device.state not in BUSY_STATES


def _most_recent_first(
    people: Sequence[Person], devices: Mapping[str, Device], activity: Mapping[str, float]
) -> list[Person]:
    def latest(person: Person) -> float | None:
        times: list[float] = []
        for name in person.devices:
            device = devices.get(name)
            if device is not None:
                times += [t for t in (device.last_call_at, device.state_changed_at) if t is not None]
            if name in activity:
                times.append(activity[name])
        return max(times) if times else None

    times = [(latest(person), index, person) for index, person in enumerate(people)]
    known = sorted(((when, index, person) for when, index, person in times if when is not None), key=_recent_key)
    return [person for _, _, person in known] + [person for when, _, person in times if when is None]


def _recent_key(item: tuple[float, int, Person]) -> tuple[float, int]:
    return -item[0], item[1]  # most recent first; ties keep member order


def _capped(
    groups: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]], ring_s: int, total_s: int
) -> tuple[RingStep, ...]:
    steps: list[RingStep] = []
    left = total_s
    for endpoints, wake, persons in groups:
        seconds = min(ring_s, left)
        if seconds <= 0:
            break
        steps.append(RingStep(endpoints, seconds, persons, wake))
        left -= seconds
    return tuple(steps)


__all__ = [
    "BUSY_STATES",
    "STRATEGIES",
    "UNUSABLE_STATES",
    "Person",
    "RingPlan",
    "RingStep",
    "device_name",
    "people_of",
    "ring_plan",
    "why_unusable",
]
