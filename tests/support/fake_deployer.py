"""A scriptable deployer for pipeline tests: a tiny in-memory 'chain' with fault injection.

It keeps the port's contract (deterministic address per job, idempotent broadcast,
find_existing) so the worker's retry and crash handling can be tested without a chain.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict, deque

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.errors import PermanentError, TransientError


class FakeDeployer:
    def __init__(self, chain: str = "ethereum", *, pending_checks: int = 0) -> None:
        self.chain = chain
        self.pending_checks = pending_checks  # confirm() answers None this many times per tx
        self.tokens: dict[str, str] = {}  # address -> tx_id (what exists "on chain")
        self.mined: dict[str, LaunchReceipt] = {}
        self.sent: dict[str, SignedLaunch] = {}
        self.sign_calls = 0
        self.broadcast_calls = 0
        self._checks: dict[str, int] = defaultdict(int)
        self._nonce = 0
        self.faults: dict[str, deque[Exception]] = defaultdict(deque)
        self.signed_event = asyncio.Event()
        self.block_broadcast: asyncio.Event | None = None
        self.closed = False

    def fail_next(self, method: str, *errors: Exception) -> None:
        self.faults[method].extend(errors)

    def _fault(self, method: str) -> None:
        if self.faults[method]:
            raise self.faults[method].popleft()

    @staticmethod
    def address_for(job_id: str) -> str:
        return "0x" + hashlib.sha256(job_id.encode()).hexdigest()[:40]

    async def find_existing(self, req: LaunchRequest) -> LaunchReceipt | None:
        self._fault("find_existing")
        address = self.address_for(req.job_id)
        tx_id = self.tokens.get(address)
        return None if tx_id is None else self.mined[tx_id]

    async def sign(self, req: LaunchRequest) -> SignedLaunch:
        self._fault("sign")
        self.sign_calls += 1
        self._nonce += 1
        tx_id = f"0xtx{req.job_id}{self._nonce}"
        signed = SignedLaunch(tx_id=tx_id, raw_tx=tx_id.encode(), token_address=self.address_for(req.job_id),
                              signer="0xdeployer", nonce=self._nonce)
        self.signed_event.set()
        return signed

    async def broadcast(self, signed: SignedLaunch) -> None:
        if self.block_broadcast is not None:
            await self.block_broadcast.wait()
        self._fault("broadcast")
        self.broadcast_calls += 1
        if signed.token_address in self.tokens:  # CREATE2 collision: a 2nd tx would revert
            return
        self.sent[signed.tx_id] = signed

    async def confirm(self, signed: SignedLaunch) -> LaunchReceipt | None:
        self._fault("confirm")
        if signed.tx_id in self.mined:
            return self.mined[signed.tx_id]
        if signed.tx_id not in self.sent:
            raise TransientError("unknown transaction", code="tx_dropped")
        self._checks[signed.tx_id] += 1
        if self._checks[signed.tx_id] <= self.pending_checks:
            return None
        if signed.token_address in self.tokens:
            raise PermanentError("reverted: address already has code", code="reverted")
        receipt = LaunchReceipt(signed.token_address, signed.tx_id, block_number=len(self.mined) + 1,
                                gas_used=120_000, fee_paid_base_units=120_000 * 10**9)
        self.mined[signed.tx_id] = receipt
        self.tokens[signed.token_address] = signed.tx_id
        return receipt

    async def close(self) -> None:
        self.closed = True
