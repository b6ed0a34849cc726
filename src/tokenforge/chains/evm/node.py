"""The JSON-RPC calls the EVM adapters make, each translated: no vendor exception escapes.

:class:`EvmNode` wraps a web3.py ``AsyncWeb3`` (over an RPC pool, a single HTTP endpoint
or the embedded chain's provider) and is what the deployer, the nonce keeper and the
factory set-up share. Every method raises only :class:`~tokenforge.errors.TokenForgeError`
subclasses (see :mod:`.rpc_errors`); "not found" answers are ``None`` / ``False``, never
errors. Receipts are returned as web3.py gives them (mapping access: ``receipt["status"]``).
Addresses are passed as EIP-55 checksummed hex (web3.py refuses others) and transaction ids
as 0x-prefixed hex.
"""

from __future__ import annotations

import time
from typing import Any

from eth_typing import ChecksumAddress, HexAddress, HexStr
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound
from web3.types import FilterParams, LogReceipt, TxParams

from .rpc_errors import translate, translating


def checksummed(address: str) -> ChecksumAddress:
    """``address`` (EIP-55 checksummed hex already) as the type web3.py's signatures ask for;
    nothing is converted or checked here (web3.py checks it)."""
    return ChecksumAddress(HexAddress(HexStr(address)))


class EvmNode:
    """One EVM chain as seen through JSON-RPC. See the module docstring."""

    #: One ``eth_blockNumber`` answer serves every depth check made within this long.
    HEAD_CACHE_S = 0.25

    def __init__(self, w3: AsyncWeb3) -> None:
        self.w3 = w3
        self._head: tuple[float, int] | None = None  # (read at, block number)

    async def chain_id(self) -> int:
        with translating("read chain id"):
            return int(await self.w3.eth.chain_id)

    async def pending_count(self, address: str) -> int:
        """The next nonce of ``address`` counting the node's pending transactions."""
        with translating("read nonce"):
            return int(await self.w3.eth.get_transaction_count(checksummed(address), "pending"))

    async def mined_count(self, address: str) -> int:
        """How many transactions of ``address`` are mined (its next nonce at ``latest``)."""
        with translating("read nonce"):
            return int(await self.w3.eth.get_transaction_count(checksummed(address), "latest"))

    async def balance_wei(self, address: str) -> int:
        with translating("read balance"):
            return int(await self.w3.eth.get_balance(checksummed(address)))

    async def head_number(self) -> int:
        """The newest block number, at most :attr:`HEAD_CACHE_S` old."""
        now = time.monotonic()
        if self._head is None or now - self._head[0] > self.HEAD_CACHE_S:
            with translating("read block number"):
                self._head = (now, int(await self.w3.eth.block_number))
        return self._head[1]

    def forget_head(self) -> None:
        """The next :meth:`head_number` asks the node again."""
        self._head = None

    async def code(self, address: str) -> bytes:
        with translating("read code"):
            return bytes(await self.w3.eth.get_code(checksummed(address)))

    async def call(self, to: str, data: bytes) -> bytes:
        with translating("call"):
            return bytes(await self.w3.eth.call({"to": to, "data": data}))

    async def estimate_gas(self, tx: TxParams) -> int:
        with translating("estimate gas"):
            return int(await self.w3.eth.estimate_gas(tx))

    async def receipt(self, tx_id: str) -> Any:
        """The receipt of ``tx_id``, or None while it is not mined (or unknown)."""
        try:
            return await self.w3.eth.get_transaction_receipt(HexStr(tx_id))
        except TransactionNotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            raise translate(exc, "read receipt") from None

    async def is_known(self, tx_id: str) -> bool:
        """True while the node knows ``tx_id`` (pending or mined)."""
        try:
            return await self.w3.eth.get_transaction(HexStr(tx_id)) is not None
        except TransactionNotFound:
            return False
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            raise translate(exc, "read transaction") from None

    async def send_raw(self, raw_tx: bytes, action: str = "broadcast") -> None:
        """``eth_sendRawTransaction``; a refusal raises the translated error (e.g. code
        ``already_known``, ``nonce_too_low``, ``insufficient_funds``)."""
        with translating(action):
            await self.w3.eth.send_raw_transaction(raw_tx)

    async def logs(self, log_filter: FilterParams) -> list[LogReceipt]:
        with translating("read logs"):
            return list(await self.w3.eth.get_logs(log_filter))

    async def set_balance(self, address: str, balance_wei: int) -> str | None:
        """``hardhat_setBalance`` (development nodes only: Hardhat, ``tokenforge devnet``).

        Returns None when the node set the balance, else the node's error message."""
        with translating("set balance"):
            answer = await self.w3.provider.make_request("hardhat_setBalance", [address, hex(balance_wei)])
        error = answer.get("error") if isinstance(answer, dict) else None
        if not error:
            return None
        return str(error.get("message", error) if isinstance(error, dict) else error)

    async def close(self) -> None:
        """Closes the provider's connections, if it has any (best effort)."""
        disconnect = getattr(self.w3.provider, "disconnect", None)
        if disconnect is not None:
            try:
                await disconnect()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
