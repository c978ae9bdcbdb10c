"""The simulated mobile softphone: it registers with its push Contact URI, sleeps, and registers again from a new
port a while after a VoIP push (never after an alert push, nor when set never to wake)."""

from __future__ import annotations

import asyncio

from callbuddy_pbx.push.binding import parse_contact
from callbuddy_pbx.sim.mobile_phones import MobilePhones, MobileSoftphone

TOKEN = "ab" * 32


def phones() -> tuple[MobilePhones, list[tuple[str, str, str]]]:
    seen: list[tuple[str, str, str]] = []
    mobiles = MobilePhones(lambda r, u: seen.append(("register", r, u)), lambda r, u: seen.append(("gone", r, u)))
    return mobiles, seen


async def test_it_sleeps_and_wakes_from_a_new_port_after_a_voip_push_only() -> None:
    mobiles, seen = phones()
    phone = mobiles.add(MobileSoftphone("103", TOKEN, "TEAM123456.com.ex.app.voip", wake_after_s=0.02))
    first = phone.uri
    binding = parse_contact(first)
    assert binding is not None and binding.device_token == TOKEN  # what the service will read from it
    mobiles.sleep(phone)
    mobiles.push_received(TOKEN, "alert")  # a cancel push: shown, no registration
    mobiles.push_received("cd" * 32, "voip")  # someone else's token
    await asyncio.sleep(0.05)
    assert seen == [("register", "103", first), ("gone", "103", first)]
    mobiles.push_received(TOKEN, "voip")
    mobiles.push_received(TOKEN, "voip")  # a second call's push while it wakes: one registration
    await asyncio.sleep(0.05)
    assert seen[2:] == [("register", "103", phone.uri)] and phone.uri != first and ":40001;" in phone.uri
    assert (phone.pushes, phone.wakes, phone.awake) == (2, 1, True)


async def test_one_set_never_to_wake_stays_asleep() -> None:
    mobiles, seen = phones()
    phone = mobiles.add(MobileSoftphone("103", TOKEN, "com.ex.app.voip", wake_after_s=None), awake=False)
    mobiles.push_received(TOKEN, "voip")
    await asyncio.sleep(0.02)
    assert seen == [] and phone.pushes == 1 and not phone.awake
