"""EVM token launches through the TokenForge factory, over web3.py ``AsyncWeb3``.

:class:`EvmDeployer` implements :class:`~tokenforge.chains.ports.ChainDeployer` (and
``abandon`` of :class:`~tokenforge.chains.ports.ReleasableDeployer`). It talks JSON-RPC
only (``eth_sendRawTransaction``, ``eth_getTransactionReceipt``, ``eth_getCode``, ...), so
it can serve Hardhat and public networks as well; today only the embedded chain is wired
up (``bootstrap.py``) and tested.

* Each launch is one ``createToken(salt, args, creator, supply)`` call on the factory; the
  token is a clone at a CREATE2 address computed locally from the job id (see
  :mod:`.codec`), known before anything is signed.
* Transactions are signed locally with eth-account (EIP-1559). Nonces are allocated per
  signer in process (:mod:`.nonces`), so one key pipelines many launches.
* The private key is held only by the eth-account object; it is never logged, formatted
  into a message or returned.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import to_canonical_address, to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.errors import PermanentError, TransientError

from . import codec
from .artifacts import factory_artifact
from .embedded import EmbeddedEvmChain
from .nonces import NonceAllocator
from .rpc_errors import translate, translating

#: A launch measures ~125-135 k gas; a fixed limit saves an eth_estimateGas per launch.
DEFAULT_LAUNCH_GAS_LIMIT = 200_000
EMBEDDED_DEPLOYER_BALANCE_WEI = 10**24  # 1,000,000 ETH on the embedded chain


def _account(deployer_key: bytes) -> Any:
    if not isinstance(deployer_key, (bytes, bytearray)) or len(deployer_key) != 32:
        raise PermanentError("deployer key must be 32 bytes", code="invalid_key")
    try:
        return Account.from_key(bytes(deployer_key))
    except Exception:
        raise PermanentError("deployer key is not a valid secp256k1 private key", code="invalid_key") from None


@dataclass(frozen=True, slots=True)
class FactoryInfo:
    address: str
    implementation: str


async def ensure_factory(w3: AsyncWeb3, deployer_key: bytes, chain_id: int, *, timeout_s: float = 120.0) -> FactoryInfo:
    """Deploys the factory once per chain and returns where it is. Idempotent across restarts.

    The factory lives at the deployer's nonce-0 CREATE address: if code is there, it is
    reused; if the deployer has never sent a transaction, the factory is deployed with
    nonce 0 and awaited. A deployer whose nonce 0 went elsewhere cannot own a factory this
    way (PermanentError ``factory_missing``).
    """
    account = _account(deployer_key)
    address = codec.create_address(account.address, 0)
    with translating("ensure factory"):
        if not await w3.eth.get_code(address):
            latest = await w3.eth.get_transaction_count(account.address, "latest")
            if latest > 0:
                raise PermanentError(
                    f"deployer {account.address} used nonce 0 for something other than the factory",
                    code="factory_missing",
                )
            if await w3.eth.get_transaction_count(account.address, "pending") == 0:
                artifact = factory_artifact()
                block = await w3.eth.get_block("latest")
                tip = await w3.eth.max_priority_fee
                tx = {
                    "type": 2,
                    "chainId": chain_id,
                    "nonce": 0,
                    "data": artifact.bytecode,
                    "value": 0,
                    "maxPriorityFeePerGas": tip,
                    "maxFeePerGas": 2 * block["baseFeePerGas"] + tip,
                }
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
            raise TransientError(f"factory deployment at {address} not mined in time", code="rpc_timeout")
        await asyncio.sleep(delay)  # JSON-RPC has no push for this; poll with backoff
        delay = min(delay * 2, 1.0)


class EvmDeployer:
    """Launches tokens on one EVM chain. See :mod:`tokenforge.chains.ports` for the contract."""

    #: A pending tx the node knew about is asked after again only after this long.
    KNOWN_RECHECK_S = 5.0

    def __init__(
        self,
        *,
        chain: str,
        w3: AsyncWeb3,
        chain_id: int,
        deployer_key: bytes,
        factory: FactoryInfo,
        gas_limit: int | None = DEFAULT_LAUNCH_GAS_LIMIT,
        priority_fee_wei: int | None = None,
        fee_cache_s: float = 2.0,
        logs_from_block: int = 0,
        embedded: EmbeddedEvmChain | None = None,
    ) -> None:
        self.chain = chain
        self.chain_id = chain_id
        self.factory = factory
        self.embedded = embedded
        self._seen_pending: dict[str, float] = {}  # tx id -> when the node last knew it
        self._w3 = w3
        self._account = _account(deployer_key)
        self.address: str = self._account.address
        self._gas_limit = gas_limit
        self._priority_fee_wei = priority_fee_wei
        self._fee_cache_s = fee_cache_s
        self._fees: tuple[float, int, int] | None = None  # (fetched_at, max_fee, tip)
        self._fee_lock = asyncio.Lock()
        self._logs_from_block = logs_from_block
        self._nonces = NonceAllocator(self._pending_count)

    def __repr__(self) -> str:
        return f"EvmDeployer(chain={self.chain!r}, signer={self.address}, factory={self.factory.address})"

    # ------------------------------------------------------------------ helpers

    async def _pending_count(self, signer: str) -> int:
        with translating("read nonce"):
            return await self._w3.eth.get_transaction_count(signer, "pending")

    def predict(self, req: LaunchRequest) -> tuple[bytes, bytes, str]:
        """``(salt, args, token_address)`` for ``req``; no I/O. Raises ValidationFailed."""
        args = codec.encode_token_args(req.name, req.symbol, req.decimals)
        token = codec.predict_token_address(self.factory.address, self.factory.implementation, req.job_id, args)
        return codec.launch_salt(req.job_id), args, token

    async def _fee_params(self) -> tuple[int, int]:
        """``(max_fee_per_gas, max_priority_fee_per_gas)``, fetched at most once per ``fee_cache_s``."""
        async with self._fee_lock:  # one fetch serves every launch signed meanwhile
            now = time.monotonic()
            if self._fees is None or now - self._fees[0] > self._fee_cache_s:
                with translating("read fees"):
                    block = await self._w3.eth.get_block("latest")
                    tip = self._priority_fee_wei
                    if tip is None:
                        tip = await self._w3.eth.max_priority_fee
                self._fees = (now, 2 * int(block["baseFeePerGas"]) + tip, tip)
            return self._fees[1], self._fees[2]

    async def _receipt(self, tx_id: str) -> Any:
        try:
            return await self._w3.eth.get_transaction_receipt(tx_id)
        except TransactionNotFound:
            return None
        except Exception as exc:
            raise translate(exc, "read receipt") from None

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
            raise PermanentError(f"launch transaction {tx_id} reverted", code="reverted")
        created = self._token_created(receipt, token_address)
        if created is None:
            raise PermanentError(f"transaction {tx_id} did not create token {token_address}", code="unexpected_receipt")
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

    # ------------------------------------------------------------------ port

    async def find_existing(self, req: LaunchRequest) -> LaunchReceipt | None:
        _, _, token = self.predict(req)
        with translating("find existing token"):
            if not await self._w3.eth.get_code(token):
                return None
            logs = await self._w3.eth.get_logs(
                {
                    "fromBlock": self._logs_from_block,
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
                f"request for chain {req.chain!r} sent to the {self.chain!r} deployer", code="wrong_chain"
            )
        salt, args, token = self.predict(req)
        data = codec.encode_create_token(salt, args, req.creator, req.supply_base_units)
        max_fee, tip = await self._fee_params()
        gas = self._gas_limit
        if gas is None:
            with translating("estimate gas"):
                gas = int(
                    await self._w3.eth.estimate_gas({"from": self.address, "to": self.factory.address, "data": data})
                    * 1.25
                )
        nonce = await self._nonces.allocate(self.address)
        try:
            tx = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": self.factory.address,
                "value": 0,
                "data": data,
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
            # ~1 ms of CPU (more without coincurve): off the event loop
            signed = await asyncio.to_thread(self._account.sign_transaction, tx)
        except Exception as exc:
            await self._nonces.release(self.address, nonce)
            raise PermanentError(f"signing failed: {type(exc).__name__}", code="sign_failed") from None
        return SignedLaunch(
            tx_id=_hex(signed.hash),
            raw_tx=bytes(signed.raw_transaction),
            token_address=token,
            signer=self.address,
            nonce=nonce,
        )

    async def broadcast(self, signed: SignedLaunch) -> None:
        try:
            await self._w3.eth.send_raw_transaction(signed.raw_tx)
            self._seen_pending[signed.tx_id] = time.monotonic()  # the node just took it
        except Exception as exc:
            err = translate(exc, "broadcast")
            if err.code == "already_known":
                self._seen_pending[signed.tx_id] = time.monotonic()
                return
            if err.code == "nonce_too_low":
                if await self._receipt(signed.tx_id) is not None:
                    return  # our own transaction was already included
                await self._nonces.resync(signed.signer)
                raise TransientError(
                    f"nonce {signed.nonce} of {signed.signer} is used by another transaction", code="tx_dropped"
                ) from None
            raise err from None

    async def confirm(self, signed: SignedLaunch) -> LaunchReceipt | None:
        receipt = await self._receipt(signed.tx_id)
        if receipt is not None:
            self._seen_pending.pop(signed.tx_id, None)
            return self._to_launch_receipt(signed.token_address, receipt)
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
        with translating("confirm"):
            used = await self._w3.eth.get_transaction_count(signed.signer, "latest")
        if signed.nonce is not None and used > signed.nonce:
            receipt = await self._receipt(signed.tx_id)  # it may have landed meanwhile
            if receipt is not None:
                return self._to_launch_receipt(signed.token_address, receipt)
            await self._nonces.resync(signed.signer)
            raise TransientError(
                f"transaction {signed.tx_id} was dropped: nonce {signed.nonce} is used by another transaction",
                code="tx_dropped",
            )
        await self.broadcast(signed)  # the node forgot it (e.g. restarted): send it again
        return None

    async def abandon(self, signed: SignedLaunch) -> None:
        if signed.nonce is not None:
            await self._nonces.release(signed.signer, signed.nonce)

    async def close(self) -> None:
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


async def open_embedded_evm_deployer(
    chain: str, chain_id: int, state_dir: Path | None, deployer_key: bytes
) -> EvmDeployer:
    """Opens (or creates) the embedded chain, funds the deployer, ensures the factory.

    The returned deployer owns the chain: ``await deployer.close()`` closes it. The chain is
    reachable as ``deployer.embedded`` (e.g. ``deployer.embedded.web3()``).
    """
    account = _account(deployer_key)
    try:
        embedded = await asyncio.to_thread(EmbeddedEvmChain, state_dir, chain_id)
    except PermanentError:
        raise
    except Exception as exc:
        raise PermanentError(
            f"cannot open embedded chain: {type(exc).__name__}: {exc}", code="embedded_chain"
        ) from None
    try:
        await embedded.run(embedded.fund, account.address, EMBEDDED_DEPLOYER_BALANCE_WEI)
        w3 = embedded.async_web3()
        factory = await ensure_factory(w3, deployer_key, chain_id)
        return EvmDeployer(
            chain=chain, w3=w3, chain_id=chain_id, deployer_key=deployer_key, factory=factory, embedded=embedded
        )
    except BaseException as exc:
        await asyncio.to_thread(embedded.close)
        if isinstance(exc, Exception):
            raise translate(exc, "open embedded chain") from None
        raise
