"""Identifiers and time formats the way one Asterisk process hands them out.

An `IdSource` (one per simulated PBX) keeps a global counter for `Uniqueid` (`<unix>.<n>`, the unix part being the
second the channel was created), an 8-hex-digit counter for `PJSIP/...-XXXXXXXX` names, another for
`Local/...-XXXXXXXX;1/;2`, UUIDs for bridges and the SIP peers' Call-IDs. `call_templates.TemplateIds` hands out
placeholder tokens instead, so that one run of a script can be turned into a fast per-call template.
"""

from __future__ import annotations

import calendar
import random
import time

from callbuddy_pbx.sim.pbx_constants import LOCAL_IP


class IdSource:
    """Identifiers the way one Asterisk process hands them out (plus the SIP peers' Call-IDs)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        first_uniqueid: int = 59,
        first_pjsip: int = 0x3B,
        first_local: int = 6,
        sipp_pid: int = 21413,
    ) -> None:
        self.rng = rng
        self.next_uniqueid = first_uniqueid
        self.next_pjsip = first_pjsip
        self.next_local = first_local
        self.next_sipp_call = 1
        self.sipp_pid = sipp_pid

    def uniqueid(self, when: float) -> str:
        n = self.next_uniqueid
        self.next_uniqueid += 1
        return f"{int(when)}.{n}"

    def pjsip_suffix(self) -> str:
        n = self.next_pjsip
        self.next_pjsip += 1
        return f"{n:08x}"

    def local_suffix(self) -> str:
        n = self.next_local
        self.next_local += 1
        return f"{n:08x}"

    def uuid(self) -> str:
        return uuid_from_bits(self.rng.getrandbits(128))

    def sipp_call_id(self) -> str:
        """Call-ID of a call a SIP user agent (SIPp: the carrier, a desk placing a call) started."""
        n = self.next_sipp_call
        self.next_sipp_call += 1
        return f"{n}-{self.sipp_pid}@{LOCAL_IP}"

    def timestamp(self, when: float) -> str:
        return f"{when:.6f}"

    def cel_time(self, when: float) -> str:
        return cel_time(when)

    def event_tv(self, when: float) -> str:
        return event_tv(when)


def uuid_from_bits(bits: int) -> str:
    """A version-4 UUID string from 128 random bits (what Asterisk uses for bridge ids and its own Call-IDs)."""
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits & 3]}{h[17:20]}-{h[20:32]}"


_CEL_CACHE: dict[int, str] = {}


def cel_time(when: float) -> str:
    """CEL/Cdr time format of this PBX (UTC, whole seconds)."""
    second = int(when)
    text = _CEL_CACHE.get(second)
    if text is None:
        if len(_CEL_CACHE) > 4096:
            _CEL_CACHE.clear()
        text = _CEL_CACHE[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
    return text


def event_tv(when: float) -> str:
    """Security events' EventTV (`2026-11-21T09:53:43.830+0000`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when))) + f".{int(when * 1000) % 1000:03d}+0000"


def unix_of_cel_time(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S"))
