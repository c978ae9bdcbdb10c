"""What the service knows of one device (a PJSIP endpoint) at a moment: shared by the registry and the pages."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from callbuddy_pbx.push.binding import PushBinding, mask_token

_TOKEN_PARAM = re.compile(r"(;(?:pn-prid|pn-tok)=)([^;?>]*)", re.IGNORECASE)  # RFC 8599's and Linphone's token


class WakeFailure(StrEnum):
    """Why a push did not bring a sleeping phone to a call (the pages say it in an owner's words)."""

    DID_NOT_WAKE = "did_not_wake"  # the push was taken, the phone did not register in time
    UNREGISTERED = "unregistered"  # the token is dead: the app must register (sign in) again
    CREDENTIALS_REJECTED = "credentials_rejected"  # our push key or account was refused: the installer is alerted
    SERVICE_BUSY = "service_busy"  # throttled, failing or unreachable push service
    REFUSED = "refused"  # the service refused the push itself (or no credentials for its provider)


@dataclass(frozen=True, slots=True)
class WakeRecord:
    """What came of the pushes to one device: its last wake-up and its last failure (epoch seconds)."""

    woke_ms: float | None = None  # push sent -> registered again, in milliseconds
    woke_at: float | None = None
    failure: WakeFailure | None = None
    failed_at: float | None = None

    @property
    def failing(self) -> bool:
        """The last thing that happened was a failure (a later wake-up makes an older failure history)."""
        return self.failed_at is not None and (self.woke_at is None or self.failed_at > self.woke_at)


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
    wake: WakeRecord = WakeRecord()  # its push wake-ups (kept in memory: a restart forgets them)

    @property
    def sleeping(self) -> bool:
        """It has a push binding but no live contact: a push may wake it."""
        return self.push_binding is not None and self.registered is not True

    def to_json(self) -> dict[str, Any]:
        """The device for JSON views (API, `devices --json`): push tokens masked, in its binding and its contacts.
        A token is an address anyone holding the app's key could push to; the router alone needs it whole."""
        body = asdict(self)
        body["contacts"] = [masked_contact(contact) for contact in self.contacts]
        if self.push_binding is not None:
            body["push_binding"] |= {"device_token": self.push_binding.masked_token}
        return body


def masked_contact(uri: str) -> str:
    """A contact URI to show: its push token masked (`pn-prid=c0ff...beef`)."""
    return _TOKEN_PARAM.sub(lambda match: match.group(1) + mask_token(match.group(2)), uri)
