"""Phones by the names the configuration gives them (`pbx.phones`), and device states in words, for the pages.

Asterisk names a phone by its endpoint (`PJSIP/100`, a channel `PJSIP/100-0000001f`); an owner knows it as
"Front desk", used by Mia. Every page that shows a device or an extension asks a `PhoneBook`.
"""

from __future__ import annotations

from collections.abc import Iterable

from callbuddy_pbx.config.pbx import Phone

# Asterisk's device states (AST_DEVICE_*) as an owner would say them.
DEVICE_STATES: dict[str, str] = {
    "NOT_INUSE": "Free",
    "INUSE": "On a call",
    "BUSY": "Busy",
    "RINGING": "Ringing",
    "RINGINUSE": "Ringing while on a call",
    "ONHOLD": "On hold",
    "UNAVAILABLE": "Not connected",
    "INVALID": "Not set up",
    "UNKNOWN": "Unknown",
}


def device_state(code: str) -> str:
    """A device state in words; a state Asterisk adds later is shown as it comes, in lower case."""
    return DEVICE_STATES.get(code.upper(), code.replace("_", " ").lower() or "Unknown")


def phone_label(phone: Phone) -> str:
    """ "Mia (Front desk)" when the phone has a person, else its name ("Front desk")."""
    if phone.person and phone.person != phone.name:
        return f"{phone.person} ({phone.name})"
    return phone.name


def extension_of(endpoint: str) -> str:
    """The endpoint's own name: `PJSIP/100` and the channel `PJSIP/100-0000001f` -> `100`."""
    resource = endpoint.split("/", 1)[-1]
    head, sep, suffix = resource.rpartition("-")
    if sep and len(suffix) == 8 and all(ch in "0123456789abcdef" for ch in suffix):  # a channel's sequence number
        return head
    return resource


class PhoneBook:
    """The configured phones by extension."""

    def __init__(self, phones: Iterable[Phone]) -> None:
        self._by_extension = {phone.extension: phone for phone in phones}

    def phone(self, endpoint: str) -> Phone | None:
        """The configured phone behind an endpoint or channel name (None: not a configured phone)."""
        if "@" in endpoint or endpoint.startswith("Local/"):
            return None
        return self._by_extension.get(extension_of(endpoint))

    def label(self, endpoint: str) -> str:
        """What to call a device: its configured name and person, else "phone 100" (or the name as Asterisk
        gave it, for a device that is not an extension)."""
        phone = self.phone(endpoint)
        if phone is not None:
            return phone_label(phone)
        extension = extension_of(endpoint)
        return f"phone {extension}" if extension.isdigit() else extension
