"""An in-process gateway (`kind: simulated`): accepts every text and reports it delivered shortly after.

For trying the service without an SMS provider, and for tests that script what the gateway answers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterable

from callbuddy_pbx.sms.gateway import (
    DeliveryReport,
    DeliveryState,
    InboundHandler,
    InboundSms,
    OutgoingSms,
    ReportHandler,
    SendResult,
    SendStatus,
)


class SimulatedGateway:
    def __init__(self, name: str = "simulated", *, receipt_delay_s: float = 0.05) -> None:
        self.name = name
        self.in_flight_limit = 200
        self.receipt_delay_s = receipt_delay_s  # negative: send no receipts
        self.sent: list[OutgoingSms] = []  # every text the gateway accepted, in order
        self.attempts: list[OutgoingSms] = []  # every call to send(), accepted or not
        self.scripted: deque[SendResult] = deque()  # answers to give before accepting again
        self._ids = itertools.count(1)
        self._on_report: ReportHandler | None = None
        self._on_inbound: InboundHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def script(self, results: Iterable[SendResult]) -> None:
        self.scripted.extend(results)

    async def start(self, on_report: ReportHandler, on_inbound: InboundHandler) -> None:
        self._on_report, self._on_inbound = on_report, on_inbound

    async def send(self, sms: OutgoingSms) -> SendResult:
        self.attempts.append(sms)
        if self.scripted:
            return self.scripted.popleft()
        self.sent.append(sms)
        message_id = f"sim-{next(self._ids)}"
        if self.receipt_delay_s >= 0 and self._on_report is not None:
            task = asyncio.create_task(self._receipt(message_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return SendResult(SendStatus.ACCEPTED, message_id=message_id)

    async def _receipt(self, message_id: str) -> None:
        await asyncio.sleep(self.receipt_delay_s)
        assert self._on_report is not None
        await self._on_report(DeliveryReport(message_id, DeliveryState.DELIVERED, time.time(), detail="DELIVRD"))

    async def receive(self, sender: str, to: str, text: str, message_id: str | None = None) -> None:
        """A phone texts us (e.g. STOP); `message_id` as a gateway that names its texts would give it."""
        assert self._on_inbound is not None, "start() first"
        await self._on_inbound(InboundSms(sender, to, text, time.time(), message_id))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
