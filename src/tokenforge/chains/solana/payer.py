"""The Solana payer as operators see it: its address, the last balance read, an alert.

The payer pays every launch (fees and rent). :class:`PayerAccount` keeps what was last
read of its balance and raises the alert the same way an EVM deployer key does (a
WARNING log line, the ``tokenforge_deployer_low_balance`` gauge and the entry in
``GET /v1/chains``): below ``min_balance_lamports``, or after the chain refused a launch
for lack of funds, until the balance rises above what it was then. It never stops
launches: a payer that cannot pay fails them with ``insufficient_funds``.
:func:`watch_balance` refreshes the balance periodically.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tokenforge.errors import TokenForgeError
from tokenforge.observability.metrics import DEPLOYER_BALANCE, DEPLOYER_LOW_BALANCE

log = logging.getLogger(__name__)


class PayerAccount:
    def __init__(self, chain: str, address: str, *, min_balance_lamports: int = 0) -> None:
        self.chain = chain
        self.address = address
        self.min_balance_lamports = min_balance_lamports
        self.balance_lamports: int | None = None
        #: Balance when the chain refused a launch for lack of funds; the alert ends above it.
        self.refused_at_lamports: int | None = None
        self.low = False

    def record_balance(self, balance_lamports: int, *, refused: bool = False) -> None:
        """Records a balance read; ``refused=True`` when the chain just refused a launch for
        lack of funds (the alert is raised whatever the minimum)."""
        self.balance_lamports = balance_lamports
        if refused:
            self.refused_at_lamports = balance_lamports
        elif self.refused_at_lamports is not None and balance_lamports > self.refused_at_lamports:
            self.refused_at_lamports = None  # funded since
        low = self.refused_at_lamports is not None or (
            self.min_balance_lamports > 0 and balance_lamports < self.min_balance_lamports
        )
        if low and not self.low:
            log.warning(
                "solana payer %s on %s holds %d lamports (minimum %d): fund it, launches fail without funds",
                self.address,
                self.chain,
                balance_lamports,
                self.min_balance_lamports,
            )
        elif not low and self.low:
            log.info("solana payer %s on %s is funded again (%d lamports)", self.address, self.chain, balance_lamports)
        self.low = low
        DEPLOYER_BALANCE.labels(self.chain, self.address).set(balance_lamports)
        DEPLOYER_LOW_BALANCE.labels(self.chain, self.address).set(1 if low else 0)

    def health(self) -> dict:
        """The payer in the shape of an EVM deployer key's entry (``role`` tells them apart)."""
        return {
            "address": self.address,
            "role": "payer",
            "balance_base_units": None if self.balance_lamports is None else str(self.balance_lamports),
            "enabled": True,
            "alert": "balance below minimum; fund this key" if self.low else None,
        }


async def watch_balance(read_balance: Callable[[], Awaitable[int]], payer: PayerAccount, interval_s: float) -> None:
    """Reads the payer's balance every ``interval_s`` into ``payer``, forever; a failed read
    is logged and retried at the next interval."""
    while True:
        await asyncio.sleep(interval_s)  # periodic by design: nothing to await
        try:
            payer.record_balance(await read_balance())
        except TokenForgeError as err:
            log.warning("solana payer balance on %s not read: %s", payer.chain, err)
