"""Which desk phones exist, whether they are registered and what they are doing: kept live from AMI, without I/O.

Seeded after each login from three list actions, then kept current by three events (shapes as in
shared/traces/asterisk: actions/pjsipshow*.raw, actions/devicestatelist*.raw and 33-ari-endpoint-and-contact-events):

- `PJSIPShowEndpoints` (`EndpointList`): every PJSIP endpoint, its `Contacts:` ("aor/uri," each; empty for a phone
  that is not registered) and its `DeviceState` in words ("Not in use", "Unavailable", "Ringing", "In use").
- `PJSIPShowContacts` (`ContactList`): each contact's `Status` (NonQualified, Avail/Reachable, Unavail/Unreachable,
  Unknown) and the phone's `UserAgent`.
- `DeviceStateList` (`DeviceStateChange` items): every device's state as a token (NOT_INUSE, RINGING, UNAVAILABLE...),
  queues, MWI boxes and trunks included; only phone-like devices are kept.
- Events: `ContactStatus` (a contact Created/NonQualified/Reachable/Updated, or Unreachable/Removed), `PeerStatus`
  (the endpoint Reachable/Registered or Unreachable/Unregistered; chan_sip too) and `DeviceStateChange`.

Asterisk sends these in no fixed order (trace 33: unregistering is PeerStatus Unreachable, DeviceStateChange
UNAVAILABLE, then ContactStatus Removed), so every event moves `registered` to what it says and the last one wins.
Everything kept is bounded: the number of devices, contacts per device and the length of each string from the PBX.

The same registry can be fed from ARI (`feed_ari`, `seed_ari_endpoints`; the call router's source): the events
EndpointStateChange (online/offline), PeerStatusChange, ContactStatusChange and DeviceStateChanged carry the same
facts as their AMI namesakes (trace 33) and are applied the same way. ARI cannot tell a trunk from a phone (its
endpoint list has no `Auths`), so it only updates devices already known (from AMI) or configured (pbx.phones).

Push bindings: a contact whose URI carries RFC 8599 push parameters (push/binding.parse_contact) gives its device a
push binding. The binding outlives the contact: a sleeping softphone lets its registration expire (ContactStatus
Removed) and that is exactly when the router needs the binding to wake it. A later registration with another binding
replaces it; only the push service saying the token is dead (`end_binding`) ends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from callbuddy_pbx.asterisk.ami_protocol import AmiMessage
from callbuddy_pbx.asterisk.devices_model import Device, WakeFailure, WakeRecord
from callbuddy_pbx.config import Config
from callbuddy_pbx.push.binding import PushBinding, parse_contact

MAX_DEVICES = 2000  # a small business has tens; a PBX listing thousands is not one we can show usefully anyway
MAX_CONTACTS = 10  # per device (a phone registers one or two; max_contacts on an aor is usually 1-5)
MAX_NAME_CHARS = 80
MAX_URI_CHARS = 512  # Asterisk's limit; a push softphone's Contact URI with its token gets near it
MAX_USER_AGENT_CHARS = 120

# The channel technologies whose devices are phones (or softphones). Queue:, MWI:, Custom:, Local/, confbridge:,
# Park: and the like are Asterisk's own devices, not something a person picks up.
PHONE_TECHS: tuple[str, ...] = ("PJSIP/", "SIP/", "IAX2/")

# The events `feed` understands; CallService dispatches on this set (one lookup per event on the hot path).
DEVICE_EVENTS = frozenset({"DeviceStateChange", "ContactStatus", "PeerStatus"})
# The ARI events `feed_ari` understands (an app subscribed to endpoint:PJSIP and deviceState:PJSIP/<ext>, trace 33).
ARI_DEVICE_EVENTS = frozenset({"EndpointStateChange", "PeerStatusChange", "ContactStatusChange", "DeviceStateChanged"})

UNAVAILABLE = "UNAVAILABLE"
UNKNOWN = "UNKNOWN"
# A device in one of these states is ringing or in a call (its last_call_at moves).
CALL_STATES = frozenset({"RINGING", "RINGINUSE", "INUSE", "BUSY", "ONHOLD"})
# States that mean the device is reachable (PJSIP: its endpoint is online; chan_sip: the peer is registered).
_ONLINE_STATES = CALL_STATES | {"NOT_INUSE"}
# `EndpointList`'s DeviceState is ast_devstate_str() (words); events and DeviceStateList use ast_devstate2str().
_STATE_WORDS = {
    "not in use": "NOT_INUSE",
    "in use": "INUSE",
    "busy": "BUSY",
    "invalid": "INVALID",
    "unavailable": UNAVAILABLE,
    "ringing": "RINGING",
    "ring+inuse": "RINGINUSE",
    "on hold": "ONHOLD",
    "unknown": UNKNOWN,
}
# Contact statuses (ContactStatus events, ContactList `Status`). Unknown: qualify has not answered yet, but the
# contact exists (the phone registered). Anything else unrecognised is treated as registered too: a contact that
# Asterisk still lists is one it will try to call.
_CONTACT_DOWN = frozenset({"unreachable", "unavail", "removed"})
_PEER_UP = frozenset({"registered", "reachable", "lagged"})
_PEER_DOWN = frozenset({"unregistered", "unreachable", "rejected"})


def normalise_state(text: str) -> str:
    """A device state as the DeviceStateChange token ("Not in use" -> NOT_INUSE); unknown words stay upper-cased."""
    word = text.strip()
    return _STATE_WORDS.get(word.lower(), word.upper().replace(" ", "_")[:20] or UNKNOWN)


def is_phone_device(name: str) -> bool:
    """`PJSIP/100` yes; `Queue:sales_avail`, `MWI:100@default`, `Local/100@queue-members`, `PJSIP/123@trunk` no."""
    if not name.startswith(PHONE_TECHS) or len(name) > MAX_NAME_CHARS:
        return False
    endpoint = name.split("/", 1)[1]
    return bool(endpoint) and endpoint.isprintable() and not any(char in endpoint for char in "/@ ")


@dataclass(slots=True)
class _Contact:
    reachable: bool | None  # None: listed by the endpoint, status not known yet
    user_agent: str = ""
    binding: PushBinding | None = None  # the push binding in its URI


@dataclass(slots=True)
class _State:
    """One device, mutable; `snapshot` turns it into a Device."""

    name: str
    endpoint: str
    state: str = UNKNOWN
    registered: bool | None = None
    contacts: dict[str, _Contact] = field(default_factory=dict)  # URI -> contact, in arrival order
    state_changed_at: float | None = None
    last_call_at: float | None = None
    binding: PushBinding | None = None  # the last push binding a contact carried (kept while it sleeps)
    wake: WakeRecord = field(default_factory=WakeRecord)


class DeviceRegistry:
    """The phones Asterisk knows, fed by `seed_*` after each login and by `feed` for every device event.

    `people` maps a device (`PJSIP/100`) to who uses it; `trunks` are devices that are not phones (e.g. `PJSIP/trunk`,
    from inbound.trunk_endpoints and pbx.trunks). An endpoint without inbound `Auths` is a trunk as well: a phone
    must authenticate to register, a carrier matched by its address does not.
    """

    def __init__(
        self,
        people: Mapping[str, str] | None = None,
        trunks: Iterable[str] = (),
        *,
        max_devices: int = MAX_DEVICES,
        push_phones: Iterable[str] = (),
    ) -> None:
        self._people = dict(people or {})
        self._trunks = set(trunks)
        self._push_phones = frozenset(push_phones)  # devices configured `push: true`
        self._max = max_devices
        self._devices: dict[str, _State] = {}
        self.dropped = 0  # devices not kept because the registry was full
        # Told of every change of a device's push binding (a new one, or None: ended), to keep it across restarts.
        self.on_binding: Callable[[str, PushBinding | None], None] | None = None

    @classmethod
    def from_config(cls, config: Config) -> DeviceRegistry:
        """People from pbx.phones; trunks from inbound.trunk_endpoints and pbx.trunks."""
        people = {f"PJSIP/{phone.extension}": phone.name for phone in config.pbx.phones if phone.name}
        trunks = {*config.inbound.trunk_endpoints, *(f"PJSIP/{trunk.name}" for trunk in config.pbx.trunks)}
        push_phones = (f"PJSIP/{phone.extension}" for phone in config.pbx.phones if phone.push)
        return cls(people, trunks, push_phones=push_phones)

    def __len__(self) -> int:
        return len(self._devices)

    # -- seeding (list actions) ---------------------------------------------------------------------------------------

    def seed_endpoints(self, items: Iterable[AmiMessage], at: float | None = None) -> None:
        """`PJSIPShowEndpoints` items: the whole list of PJSIP endpoints, so PJSIP devices not listed are dropped."""
        listed: set[str] = set()
        for item in items:
            if item.get("Event") != "EndpointList" or item.get("ObjectType", "endpoint") != "endpoint":
                continue
            endpoint = item.get("ObjectName", "")
            name = f"PJSIP/{endpoint}"
            if not endpoint or not is_phone_device(name):
                continue
            if not item.get("Auths", "").strip():  # identified by address: a trunk, not a phone
                self._trunks.add(name)
                self._devices.pop(name, None)
                continue
            device = self._device(name)
            if device is None:
                continue
            listed.add(name)
            raw_uris = [part.split("/", 1)[-1].strip() for part in item.get("Contacts", "").split(",")]
            previous = device.contacts
            device.contacts = {}
            for raw in filter(None, raw_uris):
                uri = _bounded(raw, MAX_URI_CHARS)
                if len(device.contacts) < MAX_CONTACTS:
                    device.contacts[uri] = previous.get(uri) or self._new_contact(device, raw, None)
            self._set_state(device, normalise_state(item.get("DeviceState", "")), at, from_list=True)
            self._recompute(device)
        for name in [name for name in self._devices if name.startswith("PJSIP/") and name not in listed]:
            del self._devices[name]

    def seed_contacts(self, items: Iterable[AmiMessage]) -> None:
        """`PJSIPShowContacts` items: every registered (or static) contact with its status and user agent."""
        seen: dict[str, dict[str, _Contact]] = {}
        for item in items:
            if item.get("Event") != "ContactList":
                continue
            endpoint = item.get("Endpoint", "")
            uri = _bounded(item.get("Uri", ""), MAX_URI_CHARS)
            name = f"PJSIP/{endpoint}"
            if not endpoint or not uri or name in self._trunks or not is_phone_device(name):
                continue
            contacts = seen.setdefault(name, {})
            if len(contacts) < MAX_CONTACTS:
                status = item.get("Status", "").strip().lower()
                agent = _bounded(item.get("UserAgent", ""), None)
                contacts[uri] = _Contact(status not in _CONTACT_DOWN, agent, parse_contact(item.get("Uri", "").strip()))
        for name, contacts in seen.items():
            device = self._device(name)
            if device is None:
                continue
            for contact in contacts.values():
                if contact.binding is not None:
                    self._set_binding(device, contact.binding)
            # Contacts the endpoint listed but PJSIPShowContacts did not are static (an aor's `contact =`): kept
            # with their unknown status, which follows the device state.
            for uri, contact in device.contacts.items():
                if uri not in contacts and len(contacts) < MAX_CONTACTS:
                    contacts[uri] = contact
            device.contacts = contacts
            self._recompute(device)

    def seed_states(self, items: Iterable[AmiMessage], at: float | None = None) -> None:
        """`DeviceStateList` items (`DeviceStateChange` events carrying the action's ActionID)."""
        for item in items:
            if item.get("Event") != "DeviceStateChange":
                continue
            name = item.get("Device", "")
            if not is_phone_device(name) or name in self._trunks:
                continue
            device = self._device(name)
            if device is not None:
                self._set_state(device, normalise_state(item.get("State", "")), at, from_list=True)
                self._apply_state_to_registration(device)

    # -- events --------------------------------------------------------------------------------------------------------

    def feed(self, event: AmiMessage, received_at: float) -> bool:
        """Apply one DeviceStateChange, ContactStatus or PeerStatus event; True when a phone's state changed."""
        name = event.get("Event")
        if name == "DeviceStateChange":
            return self._device_state(event, received_at)
        if name == "ContactStatus":
            return self._contact_status(event)
        if name == "PeerStatus":
            return self._peer_status(event)
        return False

    def _device_state(self, event: AmiMessage, at: float) -> bool:
        name = event.get("Device", "")
        if not is_phone_device(name) or name in self._trunks:
            return False
        device = self._device(name)
        if device is None:
            return False
        before = (device.state, device.registered, device.last_call_at)
        self._set_state(device, normalise_state(event.get("State", "")), at, from_list=False)
        self._apply_state_to_registration(device)
        return before != (device.state, device.registered, device.last_call_at)

    def _contact_status(self, event: AmiMessage) -> bool:
        endpoint = event.get("EndpointName") or event.get("AOR") or ""
        name = f"PJSIP/{endpoint}"
        uri = _bounded(event.get("URI", ""), MAX_URI_CHARS)
        if not endpoint or not uri or name in self._trunks or not is_phone_device(name):
            return False
        device = self._device(name)
        if device is None:
            return False
        before = (device.registered, tuple(device.contacts), device.binding)
        status = event.get("ContactStatus", "").strip().lower()
        if status == "removed":  # the contact ends; its device's binding stays (a sleeping phone is woken by it)
            device.contacts.pop(uri, None)
        elif uri in device.contacts:
            device.contacts[uri].reachable = status not in _CONTACT_DOWN
        elif len(device.contacts) < MAX_CONTACTS:
            reachable = status not in _CONTACT_DOWN
            device.contacts[uri] = self._new_contact(device, event.get("URI", "").strip(), reachable)
        self._recompute(device, contact_event=True)
        return before != (device.registered, tuple(device.contacts), device.binding)

    def _new_contact(self, device: _State, raw_uri: str, reachable: bool | None) -> _Contact:
        """A contact first seen; its binding (read from the URI as Asterisk gave it, never a cut one) becomes the
        device's. A contact without one leaves the device's last binding alone."""
        binding = parse_contact(raw_uri)
        if binding is not None:
            self._set_binding(device, binding)
        return _Contact(reachable, binding=binding)

    # -- push bindings -------------------------------------------------------------------------------------------------

    def end_binding(self, name: str, binding: PushBinding) -> bool:
        """The push service said this binding's token is dead (APNs 410, FCM UNREGISTERED): forget it, unless the
        device has registered with a new binding meanwhile. True when a binding was ended."""
        device = self._devices.get(name)
        if device is None:
            return False
        for contact in device.contacts.values():
            if contact.binding == binding:
                contact.binding = None
        if device.binding != binding:
            return False
        self._set_binding(device, None)
        return True

    def restore_bindings(self, bindings: Mapping[str, PushBinding]) -> int:
        """Bindings kept from before a restart, for the configured phones that have none yet (a phone asleep now
        registers again only when pushed). Returns how many were restored; none is reported to `on_binding`."""
        restored = 0
        for name, binding in bindings.items():
            if name not in self._people and name not in self._push_phones:
                continue  # no longer a phone of this config
            device = self._device(name)
            if device is not None and device.binding is None:
                device.binding = binding
                restored += 1
        return restored

    def _set_binding(self, device: _State, binding: PushBinding | None) -> None:
        if binding == device.binding:
            return
        device.binding = binding
        if self.on_binding is not None:
            self.on_binding(device.name, binding)

    def push_woke(self, name: str, wake_ms: float, at: float) -> None:
        """A push woke the device: it registered `wake_ms` after the push was sent (routing/wake reports it)."""
        device = self._devices.get(name)
        if device is not None:
            device.wake = replace(device.wake, woke_ms=wake_ms, woke_at=at)

    def push_failed(self, name: str, failure: WakeFailure, at: float) -> None:
        """A push did not bring the device to a call."""
        device = self._devices.get(name)
        if device is not None:
            device.wake = replace(device.wake, failure=failure, failed_at=at)

    def _peer_status(self, event: AmiMessage) -> bool:
        name = event.get("Peer", "")
        status = event.get("PeerStatus", "").strip().lower()
        if not is_phone_device(name) or name in self._trunks or status not in _PEER_UP | _PEER_DOWN:
            return False
        device = self._device(name)
        if device is None:
            return False
        before = device.registered
        device.registered = status in _PEER_UP
        return before != device.registered

    # -- ARI ---------------------------------------------------------------------------------------------------------

    def seed_ari_endpoints(self, endpoints: Iterable[Mapping[str, Any]], at: float | None = None) -> int:
        """`GET /ari/endpoints` (trace 33: `{"technology", "resource", "state": "online"|"offline", "channel_ids"}`).

        ARI lists no device states (`GET /ari/deviceStates` only has app-made ones), so the state is inferred:
        offline -> UNAVAILABLE, online with channels -> INUSE (a more precise call state already known is kept),
        online without -> NOT_INUSE. Returns how many phones were updated."""
        updated = 0
        for item in endpoints:
            if not isinstance(item, Mapping):
                continue
            name = f"{item.get('technology', '')}/{item.get('resource', '')}"
            status = item.get("state")
            device = self._ari_device(name)
            if device is None or status not in ("online", "offline"):
                continue
            busy = bool(item.get("channel_ids"))
            if status == "offline":
                state = UNAVAILABLE
            elif busy:
                state = device.state if device.state in CALL_STATES else "INUSE"
            else:
                state = "NOT_INUSE"
            device.registered = status == "online"
            self._set_state(device, state, at, from_list=True)
            updated += 1
        return updated

    def feed_ari(self, event: Mapping[str, Any], received_at: float) -> bool:
        """Apply one ARI device event (ARI_DEVICE_EVENTS); True when a phone's state changed."""
        kind = event.get("type")
        if kind == "DeviceStateChanged":
            state = event.get("device_state")
            name = str(state.get("name", "")) if isinstance(state, Mapping) else ""
            if not isinstance(state, Mapping) or self._ari_device(name) is None:
                return False
            return self._device_state({"Device": name, "State": str(state.get("state", ""))}, received_at)
        endpoint = event.get("endpoint")
        if not isinstance(endpoint, Mapping):
            return False
        technology, resource = str(endpoint.get("technology", "")), str(endpoint.get("resource", ""))
        name = f"{technology}/{resource}"
        device = self._ari_device(name)
        if device is None:
            return False
        if kind == "EndpointStateChange":
            status = endpoint.get("state")
            if status not in ("online", "offline"):
                return False
            before = device.registered
            device.registered = status == "online"
            return before != device.registered
        if kind == "PeerStatusChange":
            peer = event.get("peer")
            status = str(peer.get("peer_status", "")) if isinstance(peer, Mapping) else ""
            return self._peer_status({"Peer": name, "PeerStatus": status})
        if kind == "ContactStatusChange" and technology == "PJSIP":
            info = event.get("contact_info")
            if not isinstance(info, Mapping):
                return False
            uri, status = str(info.get("uri", "")), str(info.get("contact_status", ""))
            return self._contact_status({"EndpointName": resource, "URI": uri, "ContactStatus": status})
        return False

    def _ari_device(self, name: str) -> _State | None:
        """A phone ARI may update: known already or configured; never a trunk (ARI cannot tell them apart)."""
        device = self._devices.get(name)
        if device is not None:
            return device
        if name not in self._people or name in self._trunks or not is_phone_device(name):
            return None
        return self._device(name)

    # -- reading -------------------------------------------------------------------------------------------------------

    def snapshot(self) -> list[Device]:
        """Every phone, sorted by device name (numerically for numbered extensions: 9 before 10)."""
        return [self._public(device) for device in sorted(self._devices.values(), key=_sort_key)]

    def get(self, name: str) -> Device | None:
        device = self._devices.get(name)
        return None if device is None else self._public(device)

    def _public(self, device: _State) -> Device:
        agents = [contact.user_agent for contact in device.contacts.values() if contact.user_agent]
        return Device(
            name=device.name,
            endpoint=device.endpoint,
            state=device.state,
            registered=device.registered,
            contacts=tuple(device.contacts),
            user_agent=agents[0] if agents else "",
            person=self._people.get(device.name, ""),
            state_changed_at=device.state_changed_at,
            last_call_at=device.last_call_at,
            push_binding=device.binding,
            push=device.binding is not None or device.name in self._push_phones,
            wake=device.wake,
        )

    # -- internals -----------------------------------------------------------------------------------------------------

    def _device(self, name: str) -> _State | None:
        device = self._devices.get(name)
        if device is None:
            if len(self._devices) >= self._max:
                self.dropped += 1
                return None
            device = self._devices[name] = _State(name, name.split("/", 1)[1])
        return device

    @staticmethod
    def _set_state(device: _State, state: str, at: float | None, *, from_list: bool) -> None:
        if state != device.state:
            # A list after a (re)login says what the state is, not when it changed: only a change we can place in
            # time (an event, or a list that differs from what we knew) gets a time.
            if at is not None and not (from_list and device.state == UNKNOWN):
                device.state_changed_at = at
            device.state = state
            if at is not None and state in CALL_STATES:
                device.last_call_at = at

    @staticmethod
    def _apply_state_to_registration(device: _State) -> None:
        """UNAVAILABLE: no reachable contact (PJSIP) / not registered (chan_sip); any other known state: online."""
        if device.state == UNAVAILABLE:
            device.registered = False
        elif device.state in _ONLINE_STATES:
            device.registered = True

    @staticmethod
    def _recompute(device: _State, *, contact_event: bool = False) -> None:
        """From the contacts: registered if any is reachable; with only unknown ones, as the device state says."""
        statuses = [contact.reachable for contact in device.contacts.values()]
        if any(status is True for status in statuses):
            device.registered = True
        elif None in statuses:
            device.registered = device.state != UNAVAILABLE if device.state != UNKNOWN else None
        elif statuses or contact_event or device.state != UNKNOWN:
            device.registered = False  # listed with no contact, or every contact unreachable or removed


def _bounded(text: str, limit: int | None) -> str:
    """Text from the PBX (or a phone: the user agent), stripped and cut, without control characters."""
    limit = MAX_USER_AGENT_CHARS if limit is None else limit
    cleaned = "".join(char for char in text.strip()[: limit * 2] if char.isprintable())
    return cleaned[:limit]


def _sort_key(device: _State) -> tuple[str, int, str]:
    tech = device.name.split("/", 1)[0]
    endpoint = device.endpoint
    return (tech, int(endpoint) if endpoint.isdigit() and len(endpoint) < 12 else 1 << 62, endpoint)


__all__ = [
    "ARI_DEVICE_EVENTS",
    "CALL_STATES",
    "DEVICE_EVENTS",
    "MAX_DEVICES",
    "PHONE_TECHS",
    "Device",
    "DeviceRegistry",
    "is_phone_device",
    "normalise_state",
]
