"""A mobile softphone on the simulated AMI: the running service's device registry learns its push binding from
ContactStatus, keeps it while the phone sleeps, and sees the phone register again from a new port after a VoIP push
reaches the simulated APNs (what a router on a real Asterisk waits for)."""

from __future__ import annotations

import ssl
from pathlib import Path

from callbuddy_pbx.config.push import ApnsConfig, PushConfig
from callbuddy_pbx.push.binding import Provider, parse_contact
from callbuddy_pbx.push.sender import CallPush, PushOutcome
from callbuddy_pbx.push.senders import PushSenders
from callbuddy_pbx.sim.ami_server import SimulatedEndpoint
from callbuddy_pbx.sim.apns_server import ApnsServer
from callbuddy_pbx.sim.mobile_phones import MobileSoftphone
from tests.push_servers import BUNDLE_ID, KEY_ID, TEAM_ID, apns_key, apns_server, ca, client_tls, pem
from tests.test_check_live import recorded_pjsip
from tests.test_devices_service import service_on, until

__all__ = ["apns_key", "apns_server", "ca", "client_tls"]  # fixtures

TOKEN = "5e" * 32
PARAM = f"{TEAM_ID}.{BUNDLE_ID}.voip"


async def test_an_ami_mobile_sleeps_keeps_its_binding_and_wakes_on_a_voip_push(
    tmp_path: Path, apns_server: ApnsServer, apns_key: object, client_tls: ssl.SSLContext
) -> None:
    pjsip = recorded_pjsip()
    pjsip.endpoints.append(SimulatedEndpoint("103"))
    apns_server.known_tokens.add(TOKEN)
    async with service_on(tmp_path, pjsip) as (server, service, _):
        await until(lambda: service.devices.get("PJSIP/100") is not None)
        server.wake_on(apns_server)
        phone = server.mobile_softphone(MobileSoftphone("103", TOKEN, PARAM, wake_after_s=0.05))
        first_uri = phone.uri
        await until(lambda: getattr(service.devices.get("PJSIP/103"), "contacts", ()) == (first_uri,))
        mobile = service.devices.get("PJSIP/103")
        assert mobile is not None and mobile.push_binding is not None
        assert mobile.push_binding.device_token == TOKEN and mobile.push_binding.provider is Provider.APNS

        server.mobile_sleeps(phone)
        await until(lambda: getattr(service.devices.get("PJSIP/103"), "contacts", None) == ())
        asleep = service.devices.get("PJSIP/103")
        assert asleep is not None and asleep.sleeping and asleep.push_binding == mobile.push_binding

        binding = parse_contact(first_uri)
        assert binding is not None
        push = PushConfig(apns=ApnsConfig(KEY_ID, TEAM_ID, BUNDLE_ID, pem(apns_key)))  # type: ignore[arg-type]
        senders = PushSenders.from_config(push, verify=client_tls, apns_url=apns_server.url)
        try:
            result = await senders.send_call(binding, CallPush("call-1", "+15557654321", "Jane Caller"))
        finally:
            await senders.close()
        assert result.outcome is PushOutcome.SENT
        await until(lambda: bool(getattr(service.devices.get("PJSIP/103"), "contacts", ())))
        awake = service.devices.get("PJSIP/103")
        assert awake is not None and awake.contacts == (phone.uri,) and phone.uri != first_uri  # a new port
        assert not awake.sleeping and phone.wakes == 1
