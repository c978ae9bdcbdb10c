"""What the service knows of one device (a PJSIP endpoint) at a moment: shared by the registry and the pages."""

from __future__ import annotations

from dataclasses import dataclass

from callbuddy_pbx.push.binding import PushBinding


@dataclass(frozen=True, slots=True)
class Device:
    name: str  # Asterisk's device name, e.g. "PJSIP/100"
    endpoint: str  # the endpoint's own name, e.g. "100"
    state: str  # Asterisk device state: NOT_INUSE, INUSE, BUSY, RINGING, ONHOLD, UNAVAILABLE, INVALID, UNKNOWN, ...
    registered: bool | None  # at least one contact is reachable/registered (None: not known yet)
    contacts: tuple[str, ...] = ()  # contact URIs
    user_agent: str = ""  # from the contact (untrusted: the phone chooses it)
    person: str = ""  # who uses it, from the config's phones (pbx.phones)
    state_changed_at: float | None = None  # when `state` last changed (epoch seconds)
    last_call_at: float | None = None  # when it last rang or was in a call
    # The last push binding its registrations carried (RFC 8599 Contact parameters): kept after the contact goes,
    # since a sleeping softphone lets its contact expire and that is when a push must wake it. None: none known.
    push_binding: PushBinding | None = None
    push: bool = False  # wakes by push: `push: true` in pbx.phones, or a binding seen in a registration

    @property
    def sleeping(self) -> bool:
        """It has a push binding but no live contact: a push may wake it."""
        return self.push_binding is not None and self.registered is not True
