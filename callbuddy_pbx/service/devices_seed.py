"""What seeds the device registry after each AMI login: the PBX's phones, their contacts and their states."""

from __future__ import annotations

import logging
import time

from callbuddy_pbx.asterisk.ami import AmiActionError, AmiClient, AmiError, AmiNotConnected
from callbuddy_pbx.asterisk.devices import DeviceRegistry

log = logging.getLogger(__name__)

# After each login, what seeds the device registry (in this order: endpoints, then their contacts, then states).
DEVICE_ACTIONS = ("PJSIPShowEndpoints", "PJSIPShowContacts", "DeviceStateList")
# Registered by res_pjsip with the `system` class alone, which the rendered AMI user does not have (least privilege:
# `system` also allows GetConfig and Originate of System): refused, they are expected, not a problem.
SYSTEM_ONLY_ACTIONS = frozenset({"PJSIPShowEndpoints", "PJSIPShowContacts"})


async def seed_devices(client: AmiClient, registry: DeviceRegistry) -> list[str]:
    """Fill `registry` from the PBX's lists (DEVICE_ACTIONS); return what could not be asked, one line per action.

    Each action may fail on its own (an Asterisk without res_pjsip, an AMI user without the `system` or `reporting`
    class, a timeout): that is one warning, and the others still count. A lost connection raises AmiNotConnected.
    A SYSTEM_ONLY_ACTIONS action refused for want of `system` (as with the AMI user `render` writes) is logged at
    info: the phones' states then come from DeviceStateList and the DeviceStateChange and ContactStatus events."""
    failed: list[str] = []
    for action in DEVICE_ACTIONS:
        try:
            _, items = await client.list_action(action)
        except AmiNotConnected:
            raise
        except AmiError as exc:
            failed.append(f"{action}: {exc}")
            if action in SYSTEM_ONLY_ACTIONS and isinstance(exc, AmiActionError) and exc.permission_denied:
                log.info(
                    "devices: %s not allowed (the AMI user has no `system` write class, as rendered); phone states "
                    "come from device state and contact events",
                    action,
                )
            else:
                log.warning("devices: %s not answered (%s); phone states may be incomplete", action, exc)
            continue
        now = time.time()
        if action == "PJSIPShowEndpoints":
            registry.seed_endpoints(items, now)
        elif action == "PJSIPShowContacts":
            registry.seed_contacts(items)
        else:
            registry.seed_states(items, now)
    log.info("devices: %d phones known", len(registry))
    return failed
