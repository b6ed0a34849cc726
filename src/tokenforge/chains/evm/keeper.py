"""Keeps an EVM chain's deployer keys usable: nonce gaps, nonce drift and balances.

Every ``interval_s`` (and whenever a test calls :meth:`NonceKeeper.sweep`) it looks at
each deployer key:

* **Balance.** Read and handed to the key pool, which disables a key below its minimum and
  raises the alert (:mod:`.key_pool`).
* **Drift.** The node's ``pending`` count ahead of the shared cursor means the key was
  used elsewhere: the cursor moves forward to it.
* **Gaps.** The node's ``pending`` count *behind* the cursor means nonces were handed out
  but never reached the node. A nonce that a recorded, unfinished launch holds is that
  launch's business (its worker re-sends it). Any other nonce in the range that stays
  unsent for ``gap_after_s`` (with the cursor unchanged meanwhile, so a nonce handed out
  moments ago and not yet recorded is never taken for one) is a gap that would stall every later launch of the key:
  it is filled with a 0-value transfer to the key itself. If *no* launch holds anything in
  the range, the cursor is simply moved back instead (compare-and-set; it fails if
  anybody allocated meanwhile), which costs no gas.

Several worker processes may run a keeper for the same keys: two fillers of one nonce
compete like any two transactions with one nonce and only one is mined.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tokenforge.errors import ErrorCode, TokenForgeError
from tokenforge.observability.metrics import NONCE_GAPS_FILLED as GAPS_FILLED
from tokenforge.observability.metrics import NONCE_RESYNCS

from .transactions import sign_tx

if TYPE_CHECKING:
    from .deployer import EvmDeployer

log = logging.getLogger(__name__)

#: Answers to a gap filler meaning something else took the nonce meanwhile.
_NONCE_TAKEN = frozenset({ErrorCode.NONCE_TOO_LOW, ErrorCode.ALREADY_KNOWN, ErrorCode.UNDERPRICED})


@dataclass
class SweepReport:
    filled: list[tuple[str, int]] = field(default_factory=list)  # (signer, nonce)
    advanced: list[tuple[str, int]] = field(default_factory=list)  # (signer, new cursor)
    rewound: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class NonceKeeper:
    def __init__(
        self,
        deployer: EvmDeployer,
        *,
        gap_after_s: float = 30.0,
        interval_s: float = 5.0,
        max_fill_per_sweep: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deployer = deployer
        self._gap_after_s = gap_after_s
        self.interval_s = interval_s
        self._max_fill = max_fill_per_sweep
        self._clock = clock
        self._gap_seen: dict[tuple[str, int], float] = {}  # (signer, nonce) -> first seen missing
        self._last_cursor: dict[str, int] = {}  # signer -> cursor at the previous sweep

    async def run(self) -> None:
        """Sweep forever; a failing sweep is logged and retried next interval."""
        while True:
            try:
                report = await self.sweep()
            except Exception:  # e.g. the database is briefly unavailable: try again next time
                log.exception("nonce keeper on %s: sweep failed", self._deployer.chain)
            else:
                for error in report.errors:
                    log.warning("nonce keeper on %s: %s", self._deployer.chain, error)
            await asyncio.sleep(self.interval_s)  # periodic by design: nothing to await

    async def sweep(self) -> SweepReport:
        report = SweepReport()
        for address in self._deployer.keys.addresses:
            try:
                await self._sweep_key(address, report)
            except TokenForgeError as err:
                report.errors.append(f"{address}: {err.code}: {err.message}")
        return report

    async def _sweep_key(self, address: str, report: SweepReport) -> None:
        d = self._deployer
        d.keys.record_balance(address, await d.node.balance_wei(address))
        cursor = await d.nonces.cursor(address)
        if cursor is None:
            return  # never used by this deployment
        if self._last_cursor.get(address) != cursor:
            # Somebody allocated or moved the cursor since the last look: a nonce just handed
            # out is not a gap yet, so every candidate starts its wait afresh.
            self._forget(address)
            self._last_cursor[address] = cursor
        pending = await d.node.pending_count(address)
        chain = d.chain
        if pending > cursor:
            if await d.nonces.advance(address, pending):
                log.warning(
                    "%s: nonce cursor of %s was %d, the node is at %d: moved forward", chain, address, cursor, pending
                )
                NONCE_RESYNCS.labels(chain, "forward").inc()
                report.advanced.append((address, pending))
            self._forget(address, below=pending)
            return
        self._forget(address, below=pending)
        if pending == cursor:
            return
        held = await d.nonces.held(address, pending)
        now = self._clock()
        missing = [n for n in range(pending, cursor) if n not in held]
        for n in missing:
            self._gap_seen.setdefault((address, n), now)
        for n in range(pending, cursor):
            if n in held:
                self._gap_seen.pop((address, n), None)
        due = [n for n in missing if now - self._gap_seen[(address, n)] >= self._gap_after_s]
        if not due:
            return
        if not held and len(due) == len(missing):
            if await d.nonces.rewind(address, cursor, pending):
                log.warning(
                    "%s: nonces %d..%d of %s were never sent and nothing holds them: cursor moved back to %d",
                    chain,
                    pending,
                    cursor - 1,
                    address,
                    pending,
                )
                NONCE_RESYNCS.labels(chain, "back").inc()
                report.rewound.append((address, pending))
                self._forget(address, below=cursor)
            return
        for n in due[: self._max_fill]:
            try:
                tx_id = await self._fill(address, n)
            except TokenForgeError as err:
                if err.code in _NONCE_TAKEN:
                    self._gap_seen.pop((address, n), None)  # something else took the nonce
                    continue
                raise
            log.warning("%s: nonce %d of %s was a gap; filled with no-op transaction %s", chain, n, address, tx_id)
            GAPS_FILLED.labels(chain).inc()
            report.filled.append((address, n))
            self._gap_seen.pop((address, n), None)

    async def _fill(self, signer: str, nonce: int) -> str:
        """Fills nonce ``nonce`` of ``signer`` with a 0-value transfer to itself; returns its id."""
        d = self._deployer
        key = d.keys.get(signer)
        fees = await d.fees.current()
        signed = await sign_tx(key, d.tx(nonce=nonce, to=key.address, data=b"", gas=21_000, fees=fees))
        await d.node.send_raw(signed.raw_tx, "send no-op")
        return signed.tx_id

    def _forget(self, address: str, *, below: int | None = None) -> None:
        """Drops gap timers of ``address`` (those below nonce ``below``, or all)."""
        for key in [k for k in self._gap_seen if k[0] == address and (below is None or k[1] < below)]:
            del self._gap_seen[key]
