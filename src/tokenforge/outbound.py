"""Client-side call budgets for what TokenForge calls out to, so a provider never bans it.

A :class:`CallBudget` allows ``rate_per_s`` calls per second; :meth:`CallBudget.acquire`
returns at once while the budget has room and otherwise *waits its turn* (an
``asyncio.sleep`` until its slot: it never fails and never busy-spins). Callers are served
in the order they asked. Each RPC endpoint gets one (``EndpointSettings.max_rps``,
:class:`~tokenforge.chains.rpc.pool.RpcPool`); :class:`Budgets` hands out one per key, e.g.
per destination host of webhook deliveries::

    budgets = Budgets(rate_per_s=5.0)
    await budgets.for_key(host).acquire()   # then send

Why a small reservation bucket (GCRA) and not the ``limits`` library: ``limits`` answers
"may I, now?" and leaves waiting to the caller, which means polling (sleep, ask again,
lose the race to another waiter, sleep again) and no order among waiters. Here each call
reserves the next free slot synchronously (no ``await`` between reading and advancing the
schedule, so concurrent callers on one event loop never take the same slot) and sleeps
exactly until it: O(1), first come first served, no lock, nothing bound to one event loop.
A cancelled waiter gives its slot back when nobody reserved after it.

The guarantee: in any interval of ``T`` seconds at most ``burst + T * rate_per_s`` calls
start. ``burst`` defaults to 1 (strict spacing of ``1 / rate_per_s``), which is what
per-second provider limits need. Budgets are per process: N processes calling one
provider make N times the calls, so divide the provider's limit by the process count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Budgets", "CallBudget", "Unlimited"]


class CallBudget:
    """At most ``rate_per_s`` calls per second after an initial ``burst``; over it, wait."""

    __slots__ = ("_clock", "_interval_s", "_tat", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be > 0")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError("burst must be an integer >= 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self._interval_s = 1.0 / self.rate_per_s
        self._clock = clock
        self._tat = clock()  # theoretical arrival time of the next call at the steady rate

    def delay_s(self) -> float:
        """How long a call asking now would wait (0 while the budget has room)."""
        now = self._clock()
        return max(0.0, max(self._tat, now) - (self.burst - 1) * self._interval_s - now)

    def idle(self) -> bool:
        """True when no call is waiting and the budget has fully refilled (safe to forget)."""
        return self._tat <= self._clock()

    async def acquire(self) -> None:
        """Returns when this call may start: at once with room in the budget, otherwise after
        sleeping until its slot. Never raises (other than cancellation)."""
        now = self._clock()
        tat = max(self._tat, now)
        wait_s = tat - (self.burst - 1) * self._interval_s - now
        reserved = tat + self._interval_s
        self._tat = reserved
        if wait_s <= 0:
            return
        try:
            await asyncio.sleep(wait_s)
        except asyncio.CancelledError:
            if self._tat == reserved:  # nobody queued behind: the slot is free again
                self._tat = tat
            raise

    def __repr__(self) -> str:
        return f"CallBudget(rate_per_s={self.rate_per_s:g}, burst={self.burst})"


class Unlimited:
    """The budget of a call that has none (local networks): :meth:`acquire` returns at once."""

    __slots__ = ()
    rate_per_s = None

    async def acquire(self) -> None:
        return None

    def delay_s(self) -> float:
        return 0.0

    def __repr__(self) -> str:
        return "Unlimited()"


def budget(rate_per_s: float | None, *, burst: int = 1) -> CallBudget | Unlimited:
    """A :class:`CallBudget` for ``rate_per_s``, or :class:`Unlimited` for None."""
    return Unlimited() if rate_per_s is None else CallBudget(rate_per_s, burst=burst)


class Budgets:
    """One :class:`CallBudget` per key (a destination host, a provider), created on first use.

    Keys whose budget is idle are forgotten once more than ``max_keys`` exist, so many
    distinct destinations cost bounded memory without ever loosening a busy budget."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        burst: int = 1,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        CallBudget(rate_per_s, burst=burst)  # validate once, here
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._budgets: dict[str, CallBudget] = {}

    def for_key(self, key: str) -> CallBudget:
        """The budget of ``key`` (e.g. ``"hooks.example.com"``; normalise case yourself)."""
        found = self._budgets.get(key)
        if found is None:
            if len(self._budgets) >= self.max_keys:
                self._forget_idle()
            found = self._budgets[key] = CallBudget(self.rate_per_s, burst=self.burst, clock=self._clock)
        return found

    async def acquire(self, key: str) -> None:
        """Shorthand for ``for_key(key).acquire()``."""
        await self.for_key(key).acquire()

    def __len__(self) -> int:
        return len(self._budgets)

    def _forget_idle(self) -> None:
        for key in [k for k, b in self._budgets.items() if b.idle()]:
            del self._budgets[key]
