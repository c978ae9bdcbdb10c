"""How fast to send through one gateway, learnt from the gateway itself (pure; the caller passes the time).

No limit until the gateway says it is throttled (ESME_RTHROTTLED, ESME_RMSGQFUL, HTTP 429). Then send at half the
rate it was taking, and speed up again a little with every text it accepts, until the limit is lifted: the
additive-increase / multiplicative-decrease that keeps TCP near what a link takes. And while the gateway cannot
take texts at all (link down, not bound, 5xx), hold it: after a short, growing pause one text goes as a probe,
and only its answer opens the gateway again. A down gateway costs one try per pause, not one per queued text,
and a gateway that is back is used within `max_hold_s`.
"""

from __future__ import annotations

from collections import deque

MIN_RATE = 0.5  # texts per second: never slower than this, however often the gateway throttles
UNLIMITED_ABOVE = 500.0  # a learnt rate grown past this is no limit at all
GROWTH = 0.05  # each accepted text raises the learnt rate by 5 % (at least 0.1 text/s)
MIN_HOLD_S = 0.25
MAX_HOLD_S = 2.0
MAX_ASKED_PAUSE_S = 60.0  # a pause the gateway asks for (Retry-After) is honoured up to this


class GatewayPace:
    def __init__(self, *, min_hold_s: float = MIN_HOLD_S, max_hold_s: float = MAX_HOLD_S) -> None:
        self.rate: float | None = None  # texts per second; None: no limit
        self._slowed_at = float("-inf")  # when the rate was last halved
        self._next_slot = 0.0
        self._accepted: deque[float] = deque()  # times of the texts accepted in the last second
        self._min_hold_s, self._max_hold_s = min_hold_s, max_hold_s
        self._hold_s = 0.0  # the pause after the next "cannot take texts"
        self.held_until = 0.0
        self.down = False  # the gateway said it cannot take texts, and has not taken one since
        self._probing = False  # while down: the one text sent to see whether it is back has no answer yet

    def wait_s(self, now: float) -> float:
        """How long until the next text may go (0: now)."""
        if self.down and self._probing:
            return self._max_hold_s  # the probe's answer comes first (and wakes the sender)
        return max(0.0, self.held_until - now, self._next_slot - now if self.rate is not None else 0.0)

    def take(self, now: float) -> bool:
        """Whether a text may go now; if so, its slot is taken."""
        if self.wait_s(now) > 0:
            return False
        if self.rate is not None:
            self._next_slot = max(now, self._next_slot) + 1.0 / self.rate
        self._probing = self.down
        return True

    def answered(self) -> None:
        """The gateway answered about a text (taken, refused, or no answer after it left): it is there."""
        self.down = self._probing = False
        self._hold_s = 0.0

    def accepted(self, now: float) -> None:
        self.answered()
        self._accepted.append(now)
        self._forget_before(now - 1.0)
        if self.rate is not None:
            self.rate += max(0.1, self.rate * GROWTH)
            if self.rate > UNLIMITED_ABOVE:
                self.rate = None

    def throttled(self, now: float, pause_s: float | None = None) -> None:
        """The gateway asked us to slow down: half the rate it took (the last second's, when no limit was set)."""
        self.answered()
        self._forget_before(now - 1.0)
        if now - self._slowed_at >= 1.0:  # once a second: the other texts of a burst say the same thing
            current = self.rate if self.rate is not None else max(float(len(self._accepted)), 2 * MIN_RATE)
            self.rate = max(MIN_RATE, current / 2)
            self._slowed_at = now
        assert self.rate is not None
        self._next_slot = max(self._next_slot, now + 1.0 / self.rate)
        if pause_s:
            self.held_until = max(self.held_until, now + min(pause_s, MAX_ASKED_PAUSE_S))

    def unavailable(self, now: float, pause_s: float | None = None) -> float:
        """The gateway cannot take texts now: hold it for the pause it asked for, else a growing one; return the
        time it is held until."""
        self.down, self._probing = True, False
        self._hold_s = min(self._max_hold_s, max(self._min_hold_s, self._hold_s * 2))
        pause = min(pause_s, MAX_ASKED_PAUSE_S) if pause_s is not None else self._hold_s
        self.held_until = max(self.held_until, now + pause)
        return self.held_until

    def _forget_before(self, moment: float) -> None:
        while self._accepted and self._accepted[0] <= moment:
            self._accepted.popleft()
