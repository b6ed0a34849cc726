"""EVM token launches through the TokenForge factory: the :class:`EvmDeployer` port adapter.

:class:`EvmDeployer` implements :class:`~tokenforge.chains.ports.ChainDeployer` and the
optional ``abandon`` (:class:`~tokenforge.chains.ports.ReleasableDeployer`) and ``replace``
(:class:`~tokenforge.chains.ports.ReplaceableDeployer`). It talks JSON-RPC only (through
:class:`~.node.EvmNode`), so the same code serves the embedded chain and any node
(Hardhat, ``tokenforge devnet``, real networks through an
:class:`~tokenforge.chains.rpc.pool.RpcPool`); :mod:`.open` builds it for each, after
:mod:`.setup` found or deployed the factory.

* Each launch is one ``createToken(salt, args, creator, supply, launch fee)`` call on the
  factory; the token is a clone at a CREATE2 address computed locally from the job id (see
  :mod:`.codec`), known before anything is signed, and so is its bonding curve.
* Transactions are signed locally with eth-account (:mod:`.transactions`), EIP-1559 or
  legacy, with fees from :class:`~.fees.FeeOracle` (capped per chain). Launches are spread
  over a pool of deployer keys (:mod:`.key_pool`); nonces come from a
  :class:`~.nonces.NonceSource` (in process for the embedded chain, in the database when
  several workers share keys), so every key pipelines many launches.
* ``confirm`` accepts the receipt of the latest transaction or of any it replaced, once it
  has ``confirmations`` blocks; a transaction the node forgot is re-sent with its recorded
  bytes (same nonce); one whose nonce was taken by another is reported ``tx_dropped``.
* Private keys are held only by eth-account objects; they are never logged, formatted into
  a message or returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from eth_typing import Hash32
from eth_utils import to_canonical_address, to_checksum_address
from web3 import AsyncWeb3

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError
from tokenforge.observability.metrics import TX_REPLACEMENTS

from . import codec
from .fees import DEFAULT_FEE_CAP_WEI, FeeOracle, Fees
from .key_pool import KeyPool
from .node import EvmNode, checksummed
from .nonces import NonceAllocator, NonceSource
from .setup import FactoryInfo
from .transactions import hex_id, sign_tx, unsigned_tx

if TYPE_CHECKING:
    from .embedded import EmbeddedEvmChain

log = logging.getLogger(__name__)

#: A launch (token, curve, supply minted to the curve) measures ~200 k gas; a fixed limit
#: saves an eth_estimateGas per launch.
DEFAULT_LAUNCH_GAS_LIMIT = 300_000


class EvmDeployer:
    """Launches tokens on one EVM chain. See :mod:`tokenforge.chains.ports` for the contract."""

    #: A pending tx the node knew about is asked after again only after this long.
    KNOWN_RECHECK_S = 5.0
    #: How long a broadcast refused with "nonce too high" waits for the lower nonces.
    ORDERING_WAIT_S = 5.0

    def __init__(
        self,
        *,
        chain: str,
        w3: AsyncWeb3,
        chain_id: int,
        deployer_keys: Sequence[bytes],
        factory: FactoryInfo,
        fees: FeeOracle | None = None,
        nonces: Callable[[Callable[[str], Awaitable[int]]], NonceSource] = NonceAllocator,
        confirmations: int = 1,
        gas_limit: int = DEFAULT_LAUNCH_GAS_LIMIT,
        stuck_after_s: float = 60.0,
        fee_bump_percent: int = 15,
        min_balance_wei: int = 0,
        logs_from_block: int = 0,
        logs_window_blocks: int | None = None,
        embedded: EmbeddedEvmChain | None = None,
    ) -> None:
        self.chain = chain
        self.chain_id = chain_id
        self.factory = factory
        #: the embedded chain this deployer owns (closed with it), None over JSON-RPC
        self.embedded = embedded
        self.node = EvmNode(w3)
        self.keys = KeyPool(chain, deployer_keys, min_balance_wei=min_balance_wei)
        self.confirmations = confirmations
        self.stuck_after_s = stuck_after_s
        self.fee_bump_percent = fee_bump_percent
        self.fees = fees or FeeOracle(w3, max_fee_per_gas_cap_wei=DEFAULT_FEE_CAP_WEI)
        self.gas_limit = gas_limit
        self._seen_pending: dict[str, float] = {}  # tx id -> when the node last knew it
        self._logs_from_block = logs_from_block
        self._logs_window_blocks = logs_window_blocks  # RPC providers limit eth_getLogs ranges
        # the source is built here so it reads the node's counts through this deployer
        self.nonces: NonceSource = nonces(self.node.pending_count)
        self._background: list[asyncio.Task] = []
        self._sent_signal: dict[str, asyncio.Event] = {}  # signer -> set at its next broadcast

    def __repr__(self) -> str:
        return f"EvmDeployer(chain={self.chain!r}, signers={self.keys.addresses}, factory={self.factory.address})"

    def predict(self, req: LaunchRequest) -> tuple[bytes, bytes, str]:
        """``(salt, args, token_address)`` for ``req``; no I/O. Raises ValidationFailed."""
        args = codec.encode_token_args(req.name, req.symbol, req.decimals)
        terms = codec.LaunchTerms(
            req.creator, req.supply_base_units, req.launch_fee_bps, req.launch_fee_window, req.launch_fee_in_blocks
        )
        token = codec.predict_token_address(self.factory.address, self.factory.implementation, req.job_id, args, terms)
        return codec.launch_salt(req.job_id), args, token

    def tx(self, *, nonce: int, to: str, data: bytes, gas: int, fees: Fees, value: int = 0) -> dict:
        """The fields of a transaction on this chain."""
        return unsigned_tx(chain_id=self.chain_id, nonce=nonce, to=to, data=data, gas=gas, fees=fees, value=value)

    # ------------------------------------------------------------------ port

    async def find_existing(self, req: LaunchRequest) -> LaunchReceipt | None:
        _, _, token = self.predict(req)
        return await self._existing_receipt(token)

    async def sign(self, req: LaunchRequest) -> SignedLaunch:
        if req.chain != self.chain:
            raise PermanentError(
                f"request for chain {req.chain!r} sent to the {self.chain!r} deployer", code=ErrorCode.WRONG_CHAIN
            )
        salt, args, token = self.predict(req)
        data = codec.encode_create_token(
            salt,
            args,
            req.creator,
            req.supply_base_units,
            launch_fee_bps=req.launch_fee_bps,
            launch_window=req.launch_fee_window,
            window_in_blocks=req.launch_fee_in_blocks,
        )
        key = self.keys.next()
        fees = await self.fees.current()
        nonce = await self.nonces.allocate(key.address)
        try:
            signed = await sign_tx(
                key, self.tx(nonce=nonce, to=self.factory.address, data=data, gas=self.gas_limit, fees=fees)
            )
        except BaseException:
            await self.nonces.release(key.address, nonce)
            raise
        return SignedLaunch(
            tx_id=signed.tx_id, raw_tx=signed.raw_tx, token_address=token, signer=key.address, nonce=nonce
        )

    async def broadcast(self, signed: SignedLaunch) -> None:
        deadline = time.monotonic() + self.ORDERING_WAIT_S
        while True:
            try:
                await self._send(signed)
                return
            except TransientError as err:
                # A node that cannot queue future nonces (Hardhat with automine) refuses
                # nonce n+1 that overtook nonce n on the way: wait for this process's next
                # broadcast from the same key, then send the same bytes again.
                remaining = deadline - time.monotonic()
                if err.code is not ErrorCode.NONCE_TOO_HIGH or remaining <= 0:
                    raise
                sent = self._sent_signal.setdefault(signed.signer, asyncio.Event())
                try:
                    await asyncio.wait_for(sent.wait(), min(remaining, 0.25))
                except TimeoutError:
                    pass

    async def confirm(self, signed: SignedLaunch) -> LaunchReceipt | None:
        receipt = await self._first_receipt(signed)
        if receipt is not None:
            return await self._settled(signed, receipt)
        # Pending is the common answer; ask whether the node still knows the tx (to detect
        # drops) at most every KNOWN_RECHECK_S per transaction, not on every check.
        now = time.monotonic()
        seen = self._seen_pending.get(signed.tx_id)
        if seen is not None and now - seen < self.KNOWN_RECHECK_S:
            return None
        if await self.node.is_known(signed.tx_id):
            if len(self._seen_pending) > 100_000:
                self._seen_pending.clear()
            self._seen_pending[signed.tx_id] = now
            return None  # known to the node, still pending
        self._seen_pending.pop(signed.tx_id, None)
        return await self._confirm_unknown(signed)

    async def replace(self, signed: SignedLaunch) -> SignedLaunch | None:
        """A replacement for a stuck launch: same nonce, same call, fees raised by at least
        ``fee_bump_percent`` (and not below today's fees). ``None`` when it is mined (waiting
        for depth); ``TransientError(FEE_ABOVE_CAP)`` when a replacement would exceed the fee
        cap: the launch then waits at the fees it has."""
        key = self.keys.get(signed.signer)
        if await self._first_receipt(signed) is not None:
            return None  # mined, waiting for depth: nothing to replace
        try:
            old = codec.decode_signed_tx(signed.raw_tx)
        except Exception:  # noqa: BLE001 - an undecodable record, whatever the decoder raised
            raise PermanentError(
                f"recorded transaction {signed.tx_id} cannot be decoded", code=ErrorCode.INVALID_TX
            ) from None
        old_fees = Fees(old.max_fee_per_gas_wei, old.max_priority_fee_per_gas_wei, legacy=old.legacy)
        floor = await self.fees.current()  # FEE_ABOVE_CAP: the market is above what we may pay
        fees = self.fees.bump(old_fees, percent=self.fee_bump_percent, floor=floor)
        if fees is None:
            raise TransientError(
                f"a replacement of {signed.tx_id} would pay more than the cap of "
                f"{self.fees.max_fee_per_gas_cap_wei} wei per gas (it pays {old.max_fee_per_gas_wei})",
                code=ErrorCode.FEE_ABOVE_CAP,
            )
        tx = self.tx(
            nonce=old.nonce, to=old.to or self.factory.address, data=old.data, gas=old.gas, fees=fees, value=old.value
        )
        new = await sign_tx(key, tx)
        TX_REPLACEMENTS.labels(self.chain).inc()
        return replace(
            signed, tx_id=new.tx_id, raw_tx=new.raw_tx, replaced_tx_ids=(*signed.replaced_tx_ids, signed.tx_id)
        )

    async def abandon(self, signed: SignedLaunch) -> None:
        if signed.nonce is not None:
            await self.nonces.release(signed.signer, signed.nonce)

    def health(self) -> dict:
        return {"factory": self.factory.address, "keys": self.keys.health()}

    def run_in_background(self, coro: Any, name: str) -> None:
        """Runs ``coro`` (e.g. the nonce keeper) until the deployer is closed."""
        self._background.append(asyncio.create_task(coro, name=f"{self.chain}-{name}"))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.close)
        else:
            await self.node.close()

    # ------------------------------------------------------------------ broadcast

    async def _send(self, signed: SignedLaunch) -> None:
        try:
            await self.node.send_raw(signed.raw_tx)
        except TokenForgeError as err:
            await self._refused(signed, err)
            return
        self._seen_pending[signed.tx_id] = time.monotonic()  # the node just took it
        self._announce_sent(signed.signer)

    async def _refused(self, signed: SignedLaunch, err: TokenForgeError) -> None:
        """Returns when the node's refusal of ``signed`` means it is (or was) taken; raises otherwise."""
        code = err.code
        if code is ErrorCode.ALREADY_KNOWN:
            self._seen_pending[signed.tx_id] = time.monotonic()
            return
        if code is ErrorCode.UNDERPRICED and signed.replaced_tx_ids:
            log.info("replacement %s refused as underpriced; the earlier transaction stays pending", signed.tx_id)
            return
        if code is ErrorCode.INSUFFICIENT_FUNDS and len(self.keys.keys) > 1:
            # One drained key must not fail launches the other keys can pay for.
            self.keys.record_balance(signed.signer, await self.node.balance_wei(signed.signer), low=True)
            raise TransientError(
                f"deployer key {signed.signer} cannot pay for the launch; signing with another key",
                code=ErrorCode.TX_DROPPED,
            ) from None
        if code is ErrorCode.NONCE_TOO_LOW:
            if await self._first_receipt(signed) is not None:
                return  # one of our own transactions for this nonce was already included
            await self.nonces.resync(signed.signer)
            raise TransientError(
                f"nonce {signed.nonce} of {signed.signer} is used by another transaction", code=ErrorCode.TX_DROPPED
            ) from None
        if code is ErrorCode.REVERTED and await self._existing_receipt(signed.token_address) is not None:
            # a node that executes on send (Hardhat automine) reports the revert of a
            # second creation at once; the token exists: confirm reports its launch
            self._seen_pending[signed.tx_id] = time.monotonic()
            return
        raise err from None

    def _announce_sent(self, signer: str) -> None:
        event = self._sent_signal.pop(signer, None)
        if event is not None:
            event.set()  # wakes broadcasts of later nonces waiting for this one

    # ------------------------------------------------------------------ receipts

    async def _first_receipt(self, signed: SignedLaunch) -> Any:
        """The receipt of whichever of the job's transactions (latest or replaced) was mined."""
        for tx_id in (signed.tx_id, *signed.replaced_tx_ids):
            receipt = await self.node.receipt(tx_id)
            if receipt is not None:
                return receipt
        return None

    async def _settled(self, signed: SignedLaunch, receipt: Any) -> LaunchReceipt | None:
        """The launch receipt once ``receipt`` is ``confirmations`` deep, else None.

        A reverted transaction whose token exists anyway (a re-signed launch whose first
        transaction created the token meanwhile: CREATE2 cannot create it twice) is the
        launch of that first transaction, not a failure."""
        self._seen_pending.pop(signed.tx_id, None)
        if receipt["status"] != 1:
            existing = await self._existing_receipt(signed.token_address)
            if existing is not None:
                return existing
        elif self.confirmations > 1 and (
            await self.node.head_number() - int(receipt["blockNumber"]) + 1 < self.confirmations
        ):
            return None  # included, not yet deep enough
        return self._to_launch_receipt(signed.token_address, receipt)

    async def _confirm_unknown(self, signed: SignedLaunch) -> LaunchReceipt | None:
        used = await self.node.mined_count(signed.signer)
        if signed.nonce is not None and used > signed.nonce:
            receipt = await self._first_receipt(signed)  # it may have landed meanwhile
            if receipt is not None:
                return await self._settled(signed, receipt)
            await self.nonces.resync(signed.signer)
            raise TransientError(
                f"transaction {signed.tx_id} was dropped: nonce {signed.nonce} is used by another transaction",
                code=ErrorCode.TX_DROPPED,
            )
        for earlier in signed.replaced_tx_ids:
            if await self.node.is_known(earlier):
                return None  # the node refused the replacement but still has an earlier one
        # The node forgot it (dropped from its mempool, or restarted): send the same bytes again.
        log.info("transaction %s unknown to the node; re-sending it with nonce %s", signed.tx_id, signed.nonce)
        await self.broadcast(signed)
        return None

    async def _existing_receipt(self, token: str) -> LaunchReceipt | None:
        """The launch that created ``token``, if the token exists on chain."""
        if not await self.node.code(token):
            return None
        from_block = self._logs_from_block
        if self._logs_window_blocks is not None:
            from_block = max(from_block, await self.node.head_number() - self._logs_window_blocks)
        logs = await self.node.logs(
            {
                "fromBlock": from_block,
                "toBlock": "latest",
                "address": checksummed(self.factory.address),
                "topics": [Hash32(codec.TOKEN_CREATED_TOPIC), Hash32(b"\x00" * 12 + to_canonical_address(token))],
            }
        )
        if logs:
            receipt = await self.node.receipt(hex_id(logs[-1]["transactionHash"]))
            if receipt is not None:
                return self._to_launch_receipt(token, receipt)
        # the code is there but the log is out of the node's range: report what is known
        self.node.forget_head()
        head = await self.node.head_number()
        return LaunchReceipt(
            token, tx_id="", block_number=head, gas_used=None, fee_paid_base_units=0, extra={"log_found": False}
        )

    def _to_launch_receipt(self, token_address: str, receipt: Any) -> LaunchReceipt:
        tx_id = hex_id(receipt["transactionHash"])
        if receipt["status"] != 1:
            raise PermanentError(f"launch transaction {tx_id} reverted", code=ErrorCode.REVERTED)
        created = self._token_created(receipt, token_address)
        if created is None:
            raise PermanentError(
                f"transaction {tx_id} did not create token {token_address}", code=ErrorCode.UNEXPECTED_RECEIPT
            )
        gas_used = int(receipt["gasUsed"])
        return LaunchReceipt(
            token_address=token_address,
            tx_id=tx_id,
            block_number=int(receipt["blockNumber"]),
            gas_used=gas_used,
            fee_paid_base_units=gas_used * int(receipt.get("effectiveGasPrice") or 0),
            extra={"factory": self.factory.address, "creator": created, "curve": codec.curve_address(token_address)},
        )

    def _token_created(self, receipt: Any, token_address: str) -> str | None:
        """The creator from the receipt's TokenCreated log for ``token_address``, else None."""
        token_topic = b"\x00" * 12 + to_canonical_address(token_address)
        for entry in receipt["logs"]:
            topics = [bytes(t) for t in entry["topics"]]
            if (
                entry["address"].lower() == self.factory.address.lower()
                and len(topics) == 4
                and topics[0] == codec.TOKEN_CREATED_TOPIC
                and topics[1] == token_topic
            ):
                return to_checksum_address(topics[2][12:])
        return None
