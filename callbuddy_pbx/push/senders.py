"""The configured push services, picked by each binding's provider: what `service/` builds and hands the router.

A binding for a service that is not configured (a Linphone phone registering with APNs parameters on a site with
only FCM credentials) is answered BAD_REQUEST at once, without a request, so the router treats the phone as one
that cannot be woken and rings everything else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

from callbuddy_pbx.config.push import PushConfig
from callbuddy_pbx.push.apns import ApnsSender
from callbuddy_pbx.push.binding import Provider, PushBinding
from callbuddy_pbx.push.fcm import FCM_URL, FcmSender
from callbuddy_pbx.push.sender import CallPush, CancelReason, PushOutcome, PushResult, PushSender


class PushSenders:
    def __init__(self, senders: Mapping[Provider, PushSender]) -> None:
        self._senders = dict(senders)

    @classmethod
    def from_config(
        cls,
        config: PushConfig,
        *,
        verify: ssl.SSLContext | bool = True,
        apns_url: str | None = None,
        fcm_url: str = FCM_URL,
    ) -> PushSenders:
        """A client per configured service; the URLs and `verify` replace Apple's and Google's in tests."""
        senders: dict[Provider, PushSender] = {}
        if config.apns is not None:
            senders[Provider.APNS] = ApnsSender(config.apns, base_url=apns_url, verify=verify)
        if config.fcm is not None:
            senders[Provider.FCM] = FcmSender(config.fcm, base_url=fcm_url, verify=verify)
        return cls(senders)

    @property
    def providers(self) -> frozenset[Provider]:
        return frozenset(self._senders)

    def can_push(self, binding: PushBinding) -> bool:
        return binding.provider in self._senders

    def start_call(self, binding: PushBinding, call: CallPush) -> asyncio.Future[PushResult]:
        sender = self._senders.get(binding.provider)
        if sender is None:
            done: asyncio.Future[PushResult] = asyncio.get_running_loop().create_future()
            done.set_result(_not_configured(binding))
            return done
        return sender.start_call(binding, call)

    async def send_call(self, binding: PushBinding, call: CallPush) -> PushResult:
        return await self.start_call(binding, call)

    async def send_cancel(self, binding: PushBinding, call: CallPush, reason: CancelReason) -> PushResult:
        sender = self._senders.get(binding.provider)
        if sender is None:
            return _not_configured(binding)
        return await sender.send_cancel(binding, call, reason)

    async def close(self) -> None:
        await asyncio.gather(*(sender.close() for sender in self._senders.values()))


def _not_configured(binding: PushBinding) -> PushResult:
    return PushResult(PushOutcome.BAD_REQUEST, reason=f"no {binding.provider.value} credentials configured")
