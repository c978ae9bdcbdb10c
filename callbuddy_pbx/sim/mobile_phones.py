"""Mobile softphones for the simulated PBX: apps that register with RFC 8599 push parameters in their Contact URI,
fall asleep (the registration is removed, as when iOS suspends the app and its contact expires), and register again
from a new port a while after their push service hands them a call push, or never: an APNs VoIP push (iOS), or an
FCM data message of type "call" (Android; the cancel is a data message too, and wakes nothing).

What Asterisk reports is the PBX's business (over ARI, AriPbx.register / unregister send the ContactStatusChange
and the rest, as trace 33 records them; over AMI, SimulatedAmiServer.register_phone / unregister_phone send
ContactStatus); this module only decides when a phone registers, from where, and with which URI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from callbuddy_pbx.sim.apns_server import ApnsServer, ReceivedPush
from callbuddy_pbx.sim.fcm_server import FcmServer, ReceivedMessage

BASE_PORT = 40000  # where the simulated apps register from; each wake-up takes the next port (a new socket)


@dataclass
class MobileSoftphone:
    resource: str  # its PJSIP endpoint, "103"
    token: str  # its device token (pn-prid): APNs hex, or an FCM registration token
    param: str  # pn-param: "<team id>.<bundle id>.voip" (APNs), the Firebase project id (FCM)
    wake_after_s: float | None = 0.05  # registers this long after a call push; None: never wakes
    padding: str = ""  # extra URI parameters (";x-foo=..."), to try Contact URIs near Asterisk's 512 characters
    port: int = BASE_PORT
    awake: bool = False
    pushes: int = 0  # call pushes it received
    wakes: int = 0  # times it registered after one
    woke_at: float | None = None  # the loop time it last registered after a push (benchmarks)
    provider: str = "apns"  # pn-provider: "apns" or "fcm"
    _pending: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        """The Contact URI as Asterisk keeps it (without the angle brackets of the header)."""
        return (
            f"sip:{self.resource}@127.0.0.1:{self.port};transport=tcp"
            f";pn-provider={self.provider};pn-prid={self.token};pn-param={self.param}{self.padding}"
        )


Register = Callable[[str, str], None]  # (endpoint resource, contact URI)


class MobilePhones:
    """The mobile softphones of one simulated PBX, by device token."""

    def __init__(self, register: Register, unregister: Register) -> None:
        self._register = register
        self._unregister = unregister
        self.by_token: dict[str, MobileSoftphone] = {}

    def add(self, phone: MobileSoftphone, *, awake: bool = True) -> MobileSoftphone:
        self.by_token[phone.token] = phone
        if awake:
            self._wake(phone)
        return phone

    def sleep(self, phone: MobileSoftphone) -> None:
        """The app is suspended and its registration goes: ContactStatusChange Removed for its contact."""
        if phone.awake:
            phone.awake = False
            self._unregister(phone.resource, phone.uri)

    def listen_to(self, service: ApnsServer | FcmServer) -> None:
        """The phones receive the pushes this simulated APNs or FCM takes."""
        if isinstance(service, ApnsServer):
            service.on_push = self.apns_push
        else:
            service.on_push = self.fcm_push

    def apns_push(self, push: ReceivedPush) -> None:
        """What the simulated APNs took: a VoIP push is a call; the cancel is an alert the app shows as it is."""
        self.push_received(push.device_token, push.headers.get("apns-push-type", ""))

    def fcm_push(self, received: ReceivedMessage) -> None:
        """What the simulated FCM took: a data message of type "call" wakes the app like a VoIP push."""
        message = received.message
        data = message.get("data")
        call = isinstance(data, dict) and data.get("type") == "call"
        self.push_received(str(message.get("token", "")), "voip" if call else "data")

    def push_received(self, token: str, push_type: str) -> None:
        """A push reached the phone with this token. Only a call push ("voip") wakes it; the cancel push is an
        ordinary notification the app shows without registering."""
        phone = self.by_token.get(token)
        if phone is None or push_type != "voip":
            return
        phone.pushes += 1
        if phone.awake or phone.wake_after_s is None or phone._pending is not None:
            return
        loop = asyncio.get_running_loop()
        phone._pending = loop.call_later(phone.wake_after_s, self._woken, phone)

    def cancel_all(self) -> None:
        for phone in self.by_token.values():
            if phone._pending is not None:
                phone._pending.cancel()
                phone._pending = None

    def _woken(self, phone: MobileSoftphone) -> None:
        phone._pending = None
        if phone.awake:
            return
        phone.port += 1  # a new socket after a wake-up: a new Contact, not a refresh of the old one
        phone.wakes += 1
        phone.woke_at = asyncio.get_running_loop().time()
        self._wake(phone)

    def _wake(self, phone: MobileSoftphone) -> None:
        phone.awake = True
        self._register(phone.resource, phone.uri)
