"""`check`'s part on push wake-up: the push settings in a few lines (never a key), what is missing, and which phones
are push-capable, from the YAML and from what the PBX says right now.

What the PBX lists (PJSIPShowContacts) are the registered contacts: a phone registered with RFC 8599 (or Linphone)
push parameters shows there. A phone asleep has no contact: its binding is known only to the running service, which
learnt it from the phone's last registration and keeps it in memory (shown on its devices page). `check` cannot ask
the service for it and says so rather than guess.
"""

from __future__ import annotations

from callbuddy_pbx.config import Config
from callbuddy_pbx.config.pbx import Phone
from callbuddy_pbx.push.binding import Provider, parse_contact
from callbuddy_pbx.service.pbx_status import PbxStatus

_SERVICE_NAMES = {Provider.APNS: "APNs", Provider.FCM: "FCM"}
SLEEPING_NOTE = (
    "phones asleep now have no contact on the PBX: their push bindings are known only to the running service "
    "(dashboard > Devices)"
)


def push_phones(config: Config) -> list[Phone]:
    return [phone for phone in config.pbx.phones if phone.push]


def _phone_name(phone: Phone) -> str:
    return f"{phone.extension} ({phone.name})" if phone.name else phone.extension


def push_lines(config: Config) -> list[str]:
    """The `Push:` lines of the summary: each service's identifiers (the key only by where it comes from), the
    wait, and the phones configured `push: true`. None when push is neither configured nor asked for."""
    push = config.push
    phones = push_phones(config)
    if not push.enabled and not phones:
        return []
    lines: list[str] = []
    if push.apns is not None:
        apns = push.apns
        where = "sandbox (development builds)" if apns.sandbox else "production"
        lines.append(
            f"APNs key {apns.key_id} of team {apns.team_id}, app {apns.bundle_id} (VoIP topic {apns.bundle_id}.voip), "
            f"{where}; key from {apns.key_source or 'the configuration'}"
        )
    if push.fcm is not None:
        fcm = push.fcm
        lines.append(
            f"FCM project {fcm.project_id} as {fcm.client_email}; service account from "
            f"{fcm.key_source or 'the configuration'}"
        )
    if push.enabled:
        lines.append(f"a call waits up to {push.push_wait_s:g} s for a woken phone (at most half its ring time)")
    else:
        lines.append("no push credentials (push.apns, push.fcm): sleeping softphones cannot be woken")
    named = ", ".join(_phone_name(phone) for phone in phones) or "none (phones registering with push are found)"
    lines.append(f"phones that wake by push (push: true): {named}")
    return ["Push:       " + lines[0], *("            " + line for line in lines[1:])]


def push_warnings(config: Config) -> list[str]:
    """What keeps configured push wake-up from working."""
    warnings: list[str] = []
    phones = push_phones(config)
    if phones and not config.push.enabled:
        names = ", ".join(_phone_name(phone) for phone in phones)
        warnings.append(
            f"push: true on phone {names} but no push credentials are configured (push.apns or push.fcm): "
            "asleep, it is not rung"
        )
    routed = [group for group in config.pbx.ring_groups if group.routing == "callbuddy"]
    if (phones or config.push.enabled) and not routed:
        warnings.append(
            "push wake-up works for calls CallBuddy routes only: no ring group has routing: callbuddy, so no call "
            "wakes a sleeping softphone"
        )
    wait_s = config.push.push_wait_s
    for group in routed if config.push.enabled else ():
        if wait_s > group.ring_s / 2:  # the router keeps half of each step for the woken phone to ring
            warnings.append(
                f"push.push_wait_seconds {wait_s:g} is more than half of {group.number}'s {group.ring_s} s ring time: "
                f"its calls wait {group.ring_s / 2:g} s for a woken phone"
            )
    return warnings


def push_live_lines(config: Config, status: PbxStatus) -> list[str]:
    """Which phones are registered with push parameters on the PBX now, and with a service not configured."""
    if status.contacts is None:
        if not (config.push.enabled or push_phones(config)):
            return []
        return ["Push-capable now: not known (the PBX did not list its contacts to this AMI user)"]
    found: dict[str, set[Provider]] = {}
    for contact in status.contacts:
        binding = parse_contact(contact.uri)
        if binding is not None and contact.endpoint:
            found.setdefault(contact.endpoint, set()).add(binding.provider)
    if not found and not (config.push.enabled or push_phones(config)):
        return []
    configured = {Provider.APNS} if config.push.apns is not None else set()
    configured |= {Provider.FCM} if config.push.fcm is not None else set()
    names = {phone.extension: phone for phone in config.pbx.phones}
    lines: list[str] = []
    for endpoint, providers in sorted(found.items()):
        phone = names.get(endpoint)
        label = _phone_name(phone) if phone is not None else endpoint
        services = ", ".join(sorted(_SERVICE_NAMES[provider] for provider in providers))
        missing = sorted(_SERVICE_NAMES[provider] for provider in providers - configured)
        trouble = f": WARNING no {' or '.join(missing)} credentials configured, it cannot be woken" if missing else ""
        lines.append(f"  phone {label} by {services}{trouble}")
    head = "Push-capable now (registered with push parameters):" if lines else "Push-capable now: none registered"
    return [head, *lines, f"  ({SLEEPING_NOTE})"]
