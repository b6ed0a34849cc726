"""A scriptable deployer for pipeline tests: a tiny in-memory 'chain' with fault injection.

It keeps the port's contract (``chains/ports.py``) the way the real adapters do, checked
by ``tests/contract/test_deployer_contract.py``: a deterministic address per job, an
idempotent broadcast, ``find_existing`` from any instance over the same chain, ``confirm``
answering ``None`` for a transaction the chain does not know while it can still land and
``tx_dropped`` only once it never can, a second creation for one job resolving to the
first one's token, and ``confirmations`` blocks of depth.

The chain state lives in a :class:`FakeLedger`; several deployers (e.g. one before and one
after a simulated restart) can share one. A broadcast transaction is mined when it is
confirmed more than ``pending_checks`` times, or by :meth:`FakeLedger.mine`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict, deque
from dataclasses import dataclass

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.errors import ErrorCode, PermanentError, TransientError

GAS_PER_LAUNCH = 120_000
GAS_PRICE_WEI = 10**9


@dataclass(frozen=True, slots=True)
class _Included:
    signed: SignedLaunch
    block: int
    created: bool  # False: a second creation of an existing token (reverted on chain)


class FakeLedger:
    """What exists 'on chain': blocks, a mempool, tokens; shared by deployer instances."""

    def __init__(self) -> None:
        self.height = 0
        self.pending: dict[str, SignedLaunch] = {}  # tx id -> broadcast, not mined
        self.included: dict[str, _Included] = {}  # tx id -> mined (created the token or reverted)
        self.tokens: dict[str, str] = {}  # token address -> the tx id that created it
        self.unlandable: set[str] = set()  # tx ids that can never land (nonce taken, blockhash expired)
        self._nonce = 0

    def next_nonce(self) -> int:
        self._nonce += 1
        return self._nonce

    def mine(self, tx_ids: list[str] | None = None) -> int:
        """Mines one block with ``tx_ids`` (default: every pending transaction); returns its number."""
        self.height += 1
        for tx_id in list(self.pending) if tx_ids is None else tx_ids:
            signed = self.pending.pop(tx_id)
            created = signed.token_address not in self.tokens
            if created:
                self.tokens[signed.token_address] = tx_id
            self.included[tx_id] = _Included(signed, self.height, created)
        return self.height

    def expire(self, signed: SignedLaunch) -> None:
        """``signed`` can never land any more (EVM: its nonce was used; Solana: its blockhash expired)."""
        if signed.tx_id in self.included:
            raise AssertionError(f"{signed.tx_id} is already mined")
        self.pending.pop(signed.tx_id, None)
        self.unlandable.add(signed.tx_id)

    def creations(self, token_address: str) -> list[str]:
        """The transactions that created ``token_address`` (a correct deployer makes one)."""
        return [
            tx_id for tx_id, inc in self.included.items() if inc.created and inc.signed.token_address == token_address
        ]

    def receipt(self, tx_id: str) -> LaunchReceipt:
        inc = self.included[tx_id]
        return LaunchReceipt(
            inc.signed.token_address,
            tx_id,
            block_number=inc.block,
            gas_used=GAS_PER_LAUNCH,
            fee_paid_base_units=GAS_PER_LAUNCH * GAS_PRICE_WEI,
        )


class FakeDeployer:
    def __init__(
        self,
        chain: str = "ethereum",
        *,
        pending_checks: int = 0,
        confirmations: int = 1,
        ledger: FakeLedger | None = None,
    ) -> None:
        self.chain = chain
        self.pending_checks = pending_checks  # confirm() answers None this many times per broadcast tx
        self.confirmations = confirmations  # blocks on top of the launch block, its own included
        self.ledger = FakeLedger() if ledger is None else ledger
        self.sign_calls = 0
        self.broadcast_calls = 0
        self._checks: dict[str, int] = defaultdict(int)
        self.faults: dict[str, deque[Exception]] = defaultdict(deque)
        self.signed_event = asyncio.Event()
        self.block_broadcast: asyncio.Event | None = None
        self.closed = False

    @property
    def tokens(self) -> dict[str, str]:
        """Token address -> creating tx id, for every token on the ledger."""
        return self.ledger.tokens

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
        tx_id = self.ledger.tokens.get(self.address_for(req.job_id))
        return None if tx_id is None else self.ledger.receipt(tx_id)

    async def sign(self, req: LaunchRequest) -> SignedLaunch:
        self._fault("sign")
        self.sign_calls += 1
        nonce = self.ledger.next_nonce()
        tx_id = f"0xtx{req.job_id}{nonce}"
        signed = SignedLaunch(
            tx_id=tx_id,
            raw_tx=tx_id.encode(),
            token_address=self.address_for(req.job_id),
            signer="0xdeployer",
            nonce=nonce,
        )
        self.signed_event.set()
        return signed

    async def broadcast(self, signed: SignedLaunch) -> None:
        if self.block_broadcast is not None:
            await self.block_broadcast.wait()
        self._fault("broadcast")
        self.broadcast_calls += 1
        ledger = self.ledger
        if signed.tx_id in ledger.included or signed.tx_id in ledger.unlandable:
            return  # known, or can never land: confirm reports which
        ledger.pending.setdefault(signed.tx_id, signed)

    async def confirm(self, signed: SignedLaunch) -> LaunchReceipt | None:
        self._fault("confirm")
        ledger = self.ledger
        if signed.tx_id in ledger.pending:
            self._checks[signed.tx_id] += 1
            if self._checks[signed.tx_id] <= self.pending_checks:
                return None
            ledger.mine([signed.tx_id])
        inc = ledger.included.get(signed.tx_id)
        if inc is None:
            if signed.tx_id in ledger.unlandable:
                raise TransientError(f"transaction {signed.tx_id} can never land", code=ErrorCode.TX_DROPPED)
            return None  # unknown to the chain (never broadcast) but it can still land
        if not inc.created:  # a second creation reverted: the job's token exists, made by another tx
            creator = ledger.tokens.get(signed.token_address)
            if creator is None:
                raise PermanentError(f"launch transaction {signed.tx_id} reverted", code=ErrorCode.REVERTED)
            return ledger.receipt(creator)
        if ledger.height - inc.block + 1 < self.confirmations:
            return None
        return ledger.receipt(signed.tx_id)

    async def close(self) -> None:
        self.closed = True
