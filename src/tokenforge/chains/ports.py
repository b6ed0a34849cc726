"""The port every chain family implements: sign, broadcast, confirm one token launch.

The worker drives a launch through these calls::

    existing = await deployer.find_existing(req)      # re-run? the token may already exist
    signed   = await deployer.sign(req)               # persisted by the worker BEFORE broadcast
    await deployer.broadcast(signed)                  # idempotent, may be repeated
    receipt  = await deployer.confirm(signed)         # None while pending

Contract (tested on every adapter, and on the fake the pipeline tests use, by
``tests/contract/test_deployer_contract.py``; per-adapter details in
``tests/integration/test_evm_embedded.py``, ``tests/integration/test_solana_embedded.py``
and ``tests/unit/chains/``):

* ``sign`` never broadcasts. Its result holds everything needed to re-broadcast the very
  same transaction after a crash (``raw_tx``) and the token address the launch will have
  (``token_address``), which depends only on the request (job id), never on timing.
  Signing one job twice gives transactions for the SAME token address (Solana: the very
  same transaction within one slot), and at most one of them can create it (EVM: CREATE2
  salt from the job id; Solana: the job's mint keypair): any other fails on chain.
* ``broadcast`` is idempotent: re-sending a transaction the node already knows or already
  included is not an error, before or after confirmation. Broadcasting a transaction
  that can never land either returns (Solana: the node takes it and drops it) or raises
  ``TransientError`` code ``tx_dropped`` (EVM: its nonce is used); ``confirm`` reports it
  the same way.
* ``confirm`` answers, for the transaction ``signed`` (EVM: or any it replaced):

  - a :class:`LaunchReceipt` once it is included and final: EVM ``confirmations`` blocks
    deep (its own block counts), Solana at the configured commitment;
  - ``None`` while it is included but not yet final;
  - ``None`` while it is not included but can still land: pending in a mempool, or
    unknown to the node (never broadcast, dropped from a mempool, lost on the way) while
    its nonce is unused (EVM) or its blockhash is valid (Solana). The adapter may send
    the recorded ``raw_tx`` again then (EVM does: a node forgets transactions); callers
    broadcast before they confirm and do not rely on it;
  - ``TransientError`` code ``tx_dropped`` once it is not included and can never land
    (EVM: its nonce is used by another transaction; Solana: the block height passed
    ``last_valid_block_height``), and never before. The worker then calls
    ``find_existing`` and, if nothing exists, ``sign`` again (EVM: a new nonce; Solana: a
    fresh blockhash, same mint keypair);
  - for an included transaction that failed: the receipt of the job's token when that
    token exists anyway (a second creation for the job, created by the other
    transaction: ``tx_id`` is the creating one), else ``PermanentError`` (EVM code
    ``reverted``; Solana ``tx_failed`` or ``insufficient_funds``).
* ``find_existing`` returns a receipt when the token for ``req.job_id`` already exists on
  chain (launched by an earlier attempt, seen from any deployer instance, also after a
  restart), else ``None`` (e.g. signed but not yet broadcast). A re-run can therefore never
  create a second token for one job.
* No vendor exception escapes: everything raised is a ``TokenForgeError``.

Units are in the names: ``supply_base_units`` is the raw integer amount (already scaled by
``10**decimals``); ``fee_paid_base_units`` is wei on EVM chains and lamports on Solana.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    job_id: str  # UUID hex string (32 lowercase hex chars), unique per launch
    chain: str  # registry name: "ethereum", "bsc", "base", "solana"
    name: str
    symbol: str
    decimals: int
    supply_base_units: int
    creator: str  # EVM: checksummed 0x address; Solana: base58 pubkey
    metadata_uri: str = ""  # Solana token-metadata URI (may be empty)
    #: the curve's decaying launch fee: start fee and window (0, 0 = none)
    launch_fee_bps: int = 0
    launch_fee_window: int = 0
    launch_fee_in_blocks: bool = False  # window counted in blocks instead of seconds


@dataclass(frozen=True, slots=True)
class SignedLaunch:
    """A signed transaction, written to the database before it is broadcast."""

    tx_id: str  # EVM: 0x tx hash; Solana: base58 signature
    raw_tx: bytes  # the exact bytes to (re)broadcast
    token_address: str  # EVM: checksummed clone address; Solana: base58 mint
    signer: str  # deployer / payer address
    nonce: int | None = None  # EVM only
    #: EVM: earlier transactions of this launch with the same nonce, replaced by this one
    #: for higher fees; whichever of them is mined is the launch.
    replaced_tx_ids: tuple[str, ...] = ()
    recent_blockhash: str | None = None  # Solana only (base58)
    last_valid_block_height: int | None = None  # Solana only


@dataclass(frozen=True, slots=True)
class LaunchReceipt:
    """A launch that is final on chain."""

    token_address: str
    tx_id: str
    block_number: int  # EVM block number or Solana slot
    gas_used: int | None  # EVM only
    fee_paid_base_units: int  # wei or lamports
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class ChainDeployer(Protocol):
    """Launches tokens on one chain. See the module docstring for the contract."""

    chain: str

    async def find_existing(self, req: LaunchRequest) -> LaunchReceipt | None: ...

    async def sign(self, req: LaunchRequest) -> SignedLaunch: ...

    async def broadcast(self, signed: SignedLaunch) -> None: ...

    async def confirm(self, signed: SignedLaunch) -> LaunchReceipt | None: ...

    async def close(self) -> None: ...


@runtime_checkable
class ReplaceableDeployer(Protocol):
    """Optional extension: a deployer whose transactions can get stuck below the market fee.

    The worker calls ``replace(signed)`` once a launch has been submitted for
    ``stuck_after_s`` without being mined. It returns a transaction with the same nonce and
    higher fees (``replaced_tx_ids`` extended by the old id), which the worker records before
    broadcasting; ``None`` when there is nothing to replace (it is mined and waiting for
    depth). It raises ``TransientError(FEE_ABOVE_CAP)`` when the market or the bump is above
    the chain's fee cap: the job then stays submitted at the fees it has, says why, and uses
    no attempt (the transaction can still be mined).
    """

    stuck_after_s: float

    async def replace(self, signed: SignedLaunch) -> SignedLaunch | None: ...


class ReleasableDeployer(Protocol):
    """Optional extension: a deployer that allocates nonces can take one back.

    ``abandon(signed)`` tells the deployer that ``signed`` will never be broadcast (the
    worker could not persist it), so its nonce may be handed out again.
    """

    async def abandon(self, signed: SignedLaunch) -> None: ...
