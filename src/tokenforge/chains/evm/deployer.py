"""EVM token launches through the TokenForge factory, over web3.py ``AsyncWeb3``.

:class:`EvmDeployer` implements :class:`~tokenforge.chains.ports.ChainDeployer` and the
optional ``abandon`` (:class:`~tokenforge.chains.ports.ReleasableDeployer`) and ``replace``
(:class:`~tokenforge.chains.ports.ReplaceableDeployer`). It talks JSON-RPC only, so the
same code serves the embedded chain (:func:`open_embedded_evm_deployer`) and any node
(:func:`open_rpc_evm_deployer`: Hardhat, ``tokenforge devnet``, real networks through an
:class:`~tokenforge.chains.rpc.pool.RpcPool`).

* Each launch is one ``createToken(salt, args, creator, supply)`` call on the factory; the
  token is a clone at a CREATE2 address computed locally from the job id (see
  :mod:`.codec`), known before anything is signed.
* Transactions are signed locally with eth-account, EIP-1559 or legacy, with fees from
  :class:`~.fees.FeeOracle` (capped per chain). Launches are spread over a pool of deployer
  keys (:mod:`.key_pool`); nonces come from a :class:`~.nonces.NonceSource` (in process for
  the embedded chain, in the database when several workers share keys), so every key
  pipelines many launches.
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eth_utils import to_canonical_address, to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.errors import ErrorCode, PermanentError, TransientError

from . import codec
from .artifacts import factory_artifact
from .embedded import EmbeddedEvmChain
from .fees import FeeOracle, Fees
from .key_pool import DeployerKey, KeyPool, account_from_key
from .nonces import NonceAllocator, NonceSource
from .rpc_errors import translate, translating

log = logging.getLogger(__name__)

#: A launch measures ~125-135 k gas; a fixed limit saves an eth_estimateGas per launch.
DEFAULT_LAUNCH_GAS_LIMIT = 200_000
EMBEDDED_DEPLOYER_BALANCE_WEI = 10**24  # 1,000,000 ETH on the embedded chain
DEFAULT_FEE_CAP_WEI = 500 * 10**9  # 500 gwei


@dataclass(frozen=True, slots=True)
class FactoryInfo:
    address: str
    implementation: str


async def ensure_factory(
    w3: AsyncWeb3, deployer_key: bytes, chain_id: int, *, fees: FeeOracle | None = None, timeout_s: float = 120.0
) -> FactoryInfo:
    """Deploys the factory once per chain and returns where it is. Idempotent across restarts.

    The factory lives at the deployer's nonce-0 CREATE address: if code is there, it is
    reused; if the deployer has never sent a transaction, the factory is deployed with
    nonce 0 and awaited. A deployer whose nonce 0 went elsewhere cannot own a factory this
    way (PermanentError ``factory_missing``).
    """
    account = account_from_key(deployer_key)
    address = codec.create_address(account.address, 0)
    with translating("ensure factory"):
        if not await w3.eth.get_code(address):
            latest = await w3.eth.get_transaction_count(account.address, "latest")
            if latest > 0:
                raise PermanentError(
                    f"deployer {account.address} used nonce 0 for something other than the factory",
                    code=ErrorCode.FACTORY_MISSING,
                )
            if await w3.eth.get_transaction_count(account.address, "pending") == 0:
                artifact = factory_artifact()
                price = await (fees or FeeOracle(w3, max_fee_per_gas_cap_wei=DEFAULT_FEE_CAP_WEI)).current()
                tx = {"chainId": chain_id, "nonce": 0, "data": artifact.bytecode, "value": 0, **price.tx_fields()}
                if not price.legacy:
                    tx["type"] = 2
                tx["gas"] = int(await w3.eth.estimate_gas({"from": account.address, "data": artifact.bytecode}) * 1.2)
                await w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
            await _await_code(w3, address, timeout_s)
        result = await w3.eth.call({"to": address, "data": codec.selector("implementation()")})
    implementation = to_checksum_address(bytes(result)[-20:])
    return FactoryInfo(address=address, implementation=implementation)


async def _await_code(w3: AsyncWeb3, address: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while not await w3.eth.get_code(address):
        if time.monotonic() > deadline:
            raise TransientError(f"factory deployment at {address} not mined in time", code=ErrorCode.RPC_TIMEOUT)
        await asyncio.sleep(delay)  # JSON-RPC has no push for this; poll with backoff
        delay = min(delay * 2, 1.0)


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
        self.embedded = embedded
        self.keys = KeyPool(chain, deployer_keys, min_balance_wei=min_balance_wei)
        self.confirmations = confirmations
        self.stuck_after_s = stuck_after_s
        self.fee_bump_percent = fee_bump_percent
        self._seen_pending: dict[str, float] = {}  # tx id -> when the node last knew it
        self._w3 = w3
        self._gas_limit = gas_limit
        self.fees = fees or FeeOracle(w3, max_fee_per_gas_cap_wei=DEFAULT_FEE_CAP_WEI)
        self._logs_from_block = logs_from_block
        self._logs_window_blocks = logs_window_blocks  # RPC providers limit eth_getLogs ranges
        # the source is built here so it reads the node's counts through this deployer
        self.nonces: NonceSource = nonces(self.pending_count)
        self._head: tuple[float, int] | None = None  # (read at, block number)
        self._background: list[asyncio.Task] = []
        self._sent_signal: dict[str, asyncio.Event] = {}  # signer -> set at its next broadcast

    def __repr__(self) -> str:
        return f"EvmDeployer(chain={self.chain!r}, signers={self.keys.addresses}, factory={self.factory.address})"

    # ------------------------------------------------------------------ helpers

    async def pending_count(self, signer: str) -> int:
        with translating("read nonce"):
            return await self._w3.eth.get_transaction_count(signer, "pending")

    async def mined_count(self, signer: str) -> int:
        with translating("read nonce"):
            return await self._w3.eth.get_transaction_count(signer, "latest")

    async def balance_wei(self, address: str) -> int:
        with translating("read balance"):
            return int(await self._w3.eth.get_balance(address))

    def predict(self, req: LaunchRequest) -> tuple[bytes, bytes, str]:
        """``(salt, args, token_address)`` for ``req``; no I/O. Raises ValidationFailed."""
        args = codec.encode_token_args(req.name, req.symbol, req.decimals)
        token = codec.predict_token_address(self.factory.address, self.factory.implementation, req.job_id, args)
        return codec.launch_salt(req.job_id), args, token

    async def _head_number(self) -> int:
        now = time.monotonic()
        if self._head is None or now - self._head[0] > 0.25:  # one read serves every check meanwhile
            with translating("read block number"):
                self._head = (now, int(await self._w3.eth.block_number))
        return self._head[1]

    async def _receipt(self, tx_id: str) -> Any:
        try:
            return await self._w3.eth.get_transaction_receipt(tx_id)
        except TransactionNotFound:
            return None
        except Exception as exc:
            raise translate(exc, "read receipt") from None

    async def _first_receipt(self, signed: SignedLaunch) -> Any:
        """The receipt of whichever of the job's transactions (latest or replaced) was mined."""
        for tx_id in (signed.tx_id, *signed.replaced_tx_ids):
            receipt = await self._receipt(tx_id)
            if receipt is not None:
                return receipt
        return None

    async def _is_known(self, tx_id: str) -> bool:
        try:
            return await self._w3.eth.get_transaction(tx_id) is not None
        except TransactionNotFound:
            return False
        except Exception as exc:
            raise translate(exc, "read transaction") from None

    def _to_launch_receipt(self, token_address: str, receipt: Any) -> LaunchReceipt:
        tx_id = _hex(receipt["transactionHash"])
        if receipt["status"] != 1:
            raise PermanentError(f"launch transaction {tx_id} reverted", code=ErrorCode.REVERTED)
        created = self._token_created(receipt, token_address)
        if created is None:
            raise PermanentError(f"transaction {tx_id} did not create token {token_address}", code=ErrorCode.UNEXPECTED_RECEIPT)
        gas_used = int(receipt["gasUsed"])
        return LaunchReceipt(
            token_address=token_address,
            tx_id=tx_id,
            block_number=int(receipt["blockNumber"]),
            gas_used=gas_used,
            fee_paid_base_units=gas_used * int(receipt.get("effectiveGasPrice") or 0),
            extra={"factory": self.factory.address, "creator": created},
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

    async def _sign_tx(self, key: DeployerKey, tx: dict) -> Any:
        try:
            # ~1 ms of CPU (more without coincurve): off the event loop
            return await asyncio.to_thread(key.account.sign_transaction, tx)
        except Exception as exc:
            raise PermanentError(f"signing failed: {type(exc).__name__}", code=ErrorCode.SIGN_FAILED) from None

    def _tx(self, *, nonce: int, to: str, data: bytes, gas: int, fees: Fees, value: int = 0) -> dict:
        tx = {"chainId": self.chain_id, "nonce": nonce, "to": to, "value": value, "data": data, "gas": gas}
        if not fees.legacy:
            tx["type"] = 2
        tx.update(fees.tx_fields())
        return tx

    # ------------------------------------------------------------------ port

    async def find_existing(self, req: LaunchRequest) -> LaunchReceipt | None:
        _, _, token = self.predict(req)
        return await self._existing_receipt(token)

    async def _existing_receipt(self, token: str) -> LaunchReceipt | None:
        """The launch that created ``token``, if the token exists on chain."""
        with translating("find existing token"):
            if not await self._w3.eth.get_code(token):
                return None
            from_block = self._logs_from_block
            if self._logs_window_blocks is not None:
                from_block = max(from_block, await self._head_number() - self._logs_window_blocks)
            logs = await self._w3.eth.get_logs(
                {
                    "fromBlock": from_block,
                    "toBlock": "latest",
                    "address": self.factory.address,
                    "topics": [codec.TOKEN_CREATED_TOPIC, b"\x00" * 12 + to_canonical_address(token)],
                }
            )
            if logs:
                receipt = await self._w3.eth.get_transaction_receipt(logs[-1]["transactionHash"])
                return self._to_launch_receipt(token, receipt)
            head = await self._w3.eth.block_number
        # the code is there but the log is out of the node's range: report what is known
        return LaunchReceipt(
            token, tx_id="", block_number=int(head), gas_used=None, fee_paid_base_units=0, extra={"log_found": False}
        )

    async def sign(self, req: LaunchRequest) -> SignedLaunch:
        if req.chain != self.chain:
            raise PermanentError(
                f"request for chain {req.chain!r} sent to the {self.chain!r} deployer", code=ErrorCode.WRONG_CHAIN
            )
        salt, args, token = self.predict(req)
        data = codec.encode_create_token(salt, args, req.creator, req.supply_base_units)
        key = self.keys.next()
        fees = await self.fees.current()
        nonce = await self.nonces.allocate(key.address)
        try:
            tx = self._tx(nonce=nonce, to=self.factory.address, data=data, gas=self._gas_limit, fees=fees)
            signed = await self._sign_tx(key, tx)
        except BaseException:
            await self.nonces.release(key.address, nonce)
            raise
        return SignedLaunch(
            tx_id=_hex(signed.hash),
            raw_tx=bytes(signed.raw_transaction),
            token_address=token,
            signer=key.address,
            nonce=nonce,
        )

    async def replace(self, signed: SignedLaunch) -> SignedLaunch | None:
        """A replacement for a stuck launch: same nonce, same call, fees raised by at least
        ``fee_bump_percent`` (and not below today's fees). ``None`` when that would exceed
        the fee cap: the launch then waits at the fees it has."""
        key = self.keys.get(signed.signer)
        if await self._first_receipt(signed) is not None:
            return None  # mined, waiting for depth: nothing to replace
        try:
            old = codec.decode_signed_tx(signed.raw_tx)
        except Exception:
            raise PermanentError(f"recorded transaction {signed.tx_id} cannot be decoded", code=ErrorCode.INVALID_TX) from None
        old_fees = Fees(old.max_fee_per_gas_wei, old.max_priority_fee_per_gas_wei, legacy=old.legacy)
        try:
            floor = await self.fees.current()
        except TransientError as err:
            if err.code != "fee_above_cap":
                raise
            return None  # the market is above the cap: keep waiting at the fees it has
        fees = self.fees.bump(old_fees, percent=self.fee_bump_percent, floor=floor)
        if fees is None:
            return None
        tx = self._tx(nonce=old.nonce, to=old.to or self.factory.address, data=old.data, gas=old.gas, fees=fees, value=old.value)
        new = await self._sign_tx(key, tx)
        return replace(signed, tx_id=_hex(new.hash), raw_tx=bytes(new.raw_transaction),
                       replaced_tx_ids=(*signed.replaced_tx_ids, signed.tx_id))

    async def send_noop(self, signer: str, nonce: int) -> str:
        """Fills nonce ``nonce`` of ``signer`` with a 0-value transfer to itself (gap filling)."""
        key = self.keys.get(signer)
        fees = await self.fees.current()
        signed = await self._sign_tx(key, self._tx(nonce=nonce, to=key.address, data=b"", gas=21_000, fees=fees))
        with translating("send no-op"):
            await self._w3.eth.send_raw_transaction(signed.raw_transaction)
        return _hex(signed.hash)

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
                if err.code != "nonce_too_high" or remaining <= 0:
                    raise
                sent = self._sent_signal.setdefault(signed.signer, asyncio.Event())
                try:
                    await asyncio.wait_for(sent.wait(), min(remaining, 0.25))
                except TimeoutError:
                    pass

    async def _send(self, signed: SignedLaunch) -> None:
        try:
            await self._w3.eth.send_raw_transaction(signed.raw_tx)
            self._seen_pending[signed.tx_id] = time.monotonic()  # the node just took it
            self._announce_sent(signed.signer)
        except Exception as exc:
            err = translate(exc, "broadcast")
            if err.code == "already_known":
                self._seen_pending[signed.tx_id] = time.monotonic()
                return
            if err.code == "underpriced" and signed.replaced_tx_ids:
                log.info("replacement %s refused as underpriced; the earlier transaction stays pending", signed.tx_id)
                return
            if err.code == "insufficient_funds" and len(self.keys.keys) > 1:
                # One drained key must not fail launches the other keys can pay for.
                self.keys.record_balance(signed.signer, await self.balance_wei(signed.signer), low=True)
                raise TransientError(
                    f"deployer key {signed.signer} cannot pay for the launch; signing with another key",
                    code=ErrorCode.TX_DROPPED,
                ) from None
            if err.code == "nonce_too_low":
                if await self._first_receipt(signed) is not None:
                    return  # one of our own transactions for this nonce was already included
                await self.nonces.resync(signed.signer)
                raise TransientError(
                    f"nonce {signed.nonce} of {signed.signer} is used by another transaction", code=ErrorCode.TX_DROPPED
                ) from None
            if err.code == "reverted" and await self._existing_receipt(signed.token_address) is not None:
                # a node that executes on send (Hardhat automine) reports the revert of a
                # second creation at once; the token exists: confirm reports its launch
                self._seen_pending[signed.tx_id] = time.monotonic()
                return
            raise err from None

    def _announce_sent(self, signer: str) -> None:
        event = self._sent_signal.pop(signer, None)
        if event is not None:
            event.set()  # wakes broadcasts of later nonces waiting for this one

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
        elif self.confirmations > 1:
            if await self._head_number() - int(receipt["blockNumber"]) + 1 < self.confirmations:
                return None  # included, not yet deep enough
        return self._to_launch_receipt(signed.token_address, receipt)

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
        if await self._is_known(signed.tx_id):
            if len(self._seen_pending) > 100_000:
                self._seen_pending.clear()
            self._seen_pending[signed.tx_id] = now
            return None  # known to the node, still pending
        self._seen_pending.pop(signed.tx_id, None)
        return await self._confirm_unknown(signed)

    async def _confirm_unknown(self, signed: SignedLaunch) -> LaunchReceipt | None:
        used = await self.mined_count(signed.signer)
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
            if await self._is_known(earlier):
                return None  # the node refused the replacement but still has an earlier one
        # The node forgot it (dropped from its mempool, or restarted): send the same bytes again.
        log.info("transaction %s unknown to the node; re-sending it with nonce %s", signed.tx_id, signed.nonce)
        await self.broadcast(signed)
        return None

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
            disconnect = getattr(self._w3.provider, "disconnect", None)
            if disconnect is not None:
                try:
                    await disconnect()
                except Exception:  # closing is best effort
                    pass


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _keys(deployer_keys: bytes | Sequence[bytes]) -> list[bytes]:
    return [deployer_keys] if isinstance(deployer_keys, (bytes, bytearray)) else list(deployer_keys)


async def open_embedded_evm_deployer(
    chain: str, chain_id: int, state_dir: Path | None, deployer_keys: bytes | Sequence[bytes], **options: Any
) -> EvmDeployer:
    """Opens (or creates) the embedded chain, funds the deployer keys, ensures the factory.

    The returned deployer owns the chain: ``await deployer.close()`` closes it. The chain is
    reachable as ``deployer.embedded`` (e.g. ``deployer.embedded.web3()``). ``options`` are
    passed on to :class:`EvmDeployer`.
    """
    keys = _keys(deployer_keys)
    accounts = [account_from_key(k) for k in keys]
    try:
        embedded = await asyncio.to_thread(EmbeddedEvmChain, state_dir, chain_id)
    except PermanentError:
        raise
    except Exception as exc:
        raise PermanentError(
            f"cannot open embedded chain: {type(exc).__name__}: {exc}", code=ErrorCode.EMBEDDED_CHAIN
        ) from None
    try:
        for account in accounts:
            await embedded.run(embedded.fund, account.address, EMBEDDED_DEPLOYER_BALANCE_WEI)
        w3 = embedded.async_web3()
        factory = await ensure_factory(w3, keys[0], chain_id)
        return EvmDeployer(
            chain=chain, w3=w3, chain_id=chain_id, deployer_keys=keys, factory=factory, embedded=embedded, **options
        )
    except BaseException as exc:
        await asyncio.to_thread(embedded.close)
        if isinstance(exc, Exception):
            raise translate(exc, "open embedded chain") from None
        raise


async def open_rpc_evm_deployer(
    chain: str,
    w3: AsyncWeb3,
    *,
    chain_id: int,
    deployer_keys: Sequence[bytes],
    factory_address: str | None = None,
    dev_fund_wei: int = 0,
    **options: Any,
) -> EvmDeployer:
    """A deployer for a chain reached over JSON-RPC (Hardhat, the devnet, real networks).

    Checks that the node serves ``chain_id`` (PermanentError ``chain_id_mismatch``
    otherwise: a wrong endpoint must not get signed transactions). ``dev_fund_wei`` (local
    networks only) tops every key up with ``hardhat_setBalance``. The factory is the
    configured ``factory_address``, or the first key's nonce-0 deployment (made now if the
    key is fresh). ``options`` are passed on to :class:`EvmDeployer`.
    """
    with translating("read chain id"):
        served = int(await w3.eth.chain_id)
    if served != chain_id:
        raise PermanentError(
            f"{chain}: the endpoint serves chain id {served}, expected {chain_id}", code=ErrorCode.CHAIN_ID_MISMATCH
        )
    accounts = [account_from_key(k) for k in deployer_keys]
    if dev_fund_wei:
        with translating("fund deployer keys"):
            for account in accounts:
                if int(await w3.eth.get_balance(account.address)) < dev_fund_wei:
                    await w3.provider.make_request("hardhat_setBalance", [account.address, hex(dev_fund_wei)])
    if factory_address is None:
        factory = await ensure_factory(w3, deployer_keys[0], chain_id, fees=options.get("fees"))
    else:
        factory = await _configured_factory(w3, to_checksum_address(factory_address))
    deployer = EvmDeployer(chain=chain, w3=w3, chain_id=chain_id, deployer_keys=deployer_keys, factory=factory, **options)
    for account in accounts:  # the keeper keeps these current; read once so health shows them
        deployer.keys.record_balance(account.address, await deployer.balance_wei(account.address))
    return deployer


async def _configured_factory(w3: AsyncWeb3, address: str) -> FactoryInfo:
    with translating("read factory"):
        if not await w3.eth.get_code(address):
            raise PermanentError(f"no contract at the configured factory address {address}", code=ErrorCode.FACTORY_MISSING)
        result = await w3.eth.call({"to": address, "data": codec.selector("implementation()")})
    return FactoryInfo(address=address, implementation=to_checksum_address(bytes(result)[-20:]))
