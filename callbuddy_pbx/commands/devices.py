"""`callbuddy-pbx devices --config F [--json]`: the phones the PBX knows, registered or not, and what they are doing.

One short AMI session (events off): the same three list actions the service seeds its device registry with.
Everything shown came from the PBX (or from a phone: the user agent), so it is escaped before printing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence

from callbuddy_pbx.asterisk.ami import PERMISSION_DENIED, AmiAuthError, AmiClient, AmiError, AmiMessage
from callbuddy_pbx.asterisk.devices import DeviceRegistry
from callbuddy_pbx.asterisk.devices_model import Device, masked_contact
from callbuddy_pbx.commands.display import format_table
from callbuddy_pbx.config import SECRET_ENV_VAR, Config, load_config
from callbuddy_pbx.service.devices_seed import DEVICE_ACTIONS, SYSTEM_ONLY_ACTIONS, seed_devices
from callbuddy_pbx.untrusted import printable

PROG = "callbuddy-pbx devices"
CONNECT_TIMEOUT_S = 5.0  # a command should answer quickly when the PBX is not there
ACTION_TIMEOUT_S = 10.0


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    where = f"{config.asterisk.host}:{config.asterisk.port}"
    if not config.asterisk.secret:
        print(f"{PROG}: no AMI secret (set asterisk.secret or {SECRET_ENV_VAR})", file=sys.stderr)
        return 1
    try:
        devices, failed = asyncio.run(fetch_devices(config))
    except AmiAuthError as exc:
        print(f"{PROG}: the PBX at {where} refused the AMI login: {printable(str(exc), 200)}", file=sys.stderr)
        return 1
    except AmiError as exc:
        print(f"{PROG}: cannot reach the PBX over AMI at {where}: {printable(str(exc), 200)}", file=sys.stderr)
        return 1
    for failure in failed:
        action = failure.split(":", 1)[0]
        if action in SYSTEM_ONLY_ACTIONS and failure.endswith(PERMISSION_DENIED):
            # As rendered: the AMI user has no `system` write class, on purpose.
            print(f"{PROG}: note: {action} not allowed to this AMI user (no `system` class)", file=sys.stderr)
        else:
            print(f"{PROG}: warning: {printable(failure, 200)}", file=sys.stderr)
    if len(failed) == len(DEVICE_ACTIONS):
        print(f"{PROG}: the PBX at {where} answered none of {', '.join(DEVICE_ACTIONS)}", file=sys.stderr)
        return 1
    if args.json:
        for device in devices:
            print(json.dumps(device_to_dict(device)))  # ensure_ascii: terminal-safe
    elif not devices:
        print("No phones on the PBX.")
    else:
        print(render_table(devices))
    return 0


async def fetch_devices(config: Config) -> tuple[list[Device], list[str]]:
    """The phones as the registry sees them right after seeding, and the list actions that failed."""
    ami = dataclasses.replace(
        config.asterisk,
        connect_timeout_s=min(config.asterisk.connect_timeout_s, CONNECT_TIMEOUT_S),
        action_timeout_s=min(config.asterisk.action_timeout_s, ACTION_TIMEOUT_S),
        ping_interval_s=0.0,  # one short session: no keepalive
    )
    client = AmiClient(ami, on_event=_ignore, events="off")
    registry = DeviceRegistry.from_config(config)
    try:
        await client.connect()
        failed = await seed_devices(client, registry)
    finally:
        await client.close()
    return registry.snapshot(), failed


def _ignore(message: AmiMessage, received_at: float) -> None:
    """Events are off; the list items arrive as responses to the actions."""


def device_to_dict(device: Device) -> dict[str, object]:
    return device.to_json()  # push tokens masked


def _registered(device: Device) -> str:
    return "?" if device.registered is None else "yes" if device.registered else "no"


def render_table(devices: Sequence[Device]) -> str:
    rows: list[tuple[str, ...]] = [("Device", "Person", "Registered", "State", "Contacts", "User agent")]
    for device in devices:
        rows.append(
            (
                printable(device.name, 30),
                printable(device.person, 30) or "-",
                _registered(device),
                printable(device.state, 12),
                printable(", ".join(map(masked_contact, device.contacts)), 60) or "-",
                printable(device.user_agent, 40) or "-",
            )
        )
    return format_table(rows)
