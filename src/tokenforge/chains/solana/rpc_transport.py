"""The Solana JSON-RPC transport: :class:`SolanaTransport` over solana-py's ``AsyncClient``.

:class:`RpcSolanaTransport` speaks to one RPC endpoint through ``AsyncClient.send_rpc_request``
(plain JSON-RPC; the typed helpers of solana-py turn error codes they do not know into bare
integers and drop the node's message). Every node answer is read at one commitment level,
``"confirmed"`` unless configured otherwise; ``getTransaction`` and
``getSignaturesForAddress`` do not serve ``"processed"``, so they are asked at
``"confirmed"`` then.

Per call:

* ``send_raw_transaction`` sends with ``skipPreflight`` (the launch is deterministic; a
  preflight would cost a simulation per launch). ``ACCEPTED`` when the node takes it,
  ``ALREADY_PROCESSED`` / ``BLOCKHASH_NOT_FOUND`` when the node says so (structured preflight
  error or the message text).
* ``get_transaction_status`` is ``None`` until the signature has reached the commitment,
  then one ``getTransaction`` supplies the fee and the error (failed instruction index,
  custom program error code). ``None`` too while ``getTransaction`` still answers null
  (the node indexes the transaction a moment after its status).
* ``signatures_for_address`` returns the address's transactions oldest first, ending with
  the first successful one (the creating transaction, which is what the deployer looks
  for): each entry costs a ``getTransaction`` for its fee, so later ones are not fetched.
  Empty when the address has more than ``SIGNATURES_MAX_PAGES`` pages of history.

Errors: TokenForge errors raised by the client's HTTP layer pass through unchanged;
everything else is translated (see :func:`~.rpc_errors.translate_rpc_failure`). Transport trouble,
rate limits, unhealthy or lagging nodes are :class:`TransientError`; definite rejections
(bad signature, undecodable transaction, payer cannot pay, malformed request) are
:class:`PermanentError`. Messages carry the RPC method and the node's own message, never the
endpoint URL (it may hold an API key), and vendor exceptions that carry the URL are not chained.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, Literal

from solana.rpc.async_api import AsyncClient
from solana.rpc.jsonrpc import JsonRpcRequest
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.chains.solana.rpc_errors import (
    chainable,
    parse_transaction_error,
    reading,
    send_outcome,
    translate_rpc_failure,
)
from tokenforge.chains.solana.transport import AccountInfo, SendOutcome, TxStatus
from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError

__all__ = ["Commitment", "RpcSolanaTransport", "parse_transaction_error", "translate_rpc_failure"]

log = logging.getLogger(__name__)

Commitment = Literal["processed", "confirmed", "finalized"]
_COMMITMENT_RANK: dict[str, int] = {"processed": 0, "confirmed": 1, "finalized": 2}

SIGNATURES_PAGE_LIMIT = 1000  # the node's maximum for getSignaturesForAddress
SIGNATURES_MAX_PAGES = 10


class RpcSolanaTransport:
    """:class:`~tokenforge.chains.solana.transport.SolanaTransport` over a JSON-RPC node.

    Owns ``client``: :meth:`close` closes it. Stateless otherwise (no blockhash or rent
    cache; the deployer caches rent per data length and wants a fresh blockhash per sign).
    """

    def __init__(self, client: AsyncClient, *, commitment: Commitment = "confirmed") -> None:
        if commitment not in _COMMITMENT_RANK:
            raise PermanentError(
                f"commitment must be one of {sorted(_COMMITMENT_RANK)}, not {commitment!r}",
                code=ErrorCode.INVALID_COMMITMENT,
            )
        self.client = client
        self.commitment: Commitment = commitment
        # getTransaction / getSignaturesForAddress accept "confirmed" at the lowest.
        self._history_commitment: Commitment = "confirmed" if commitment == "processed" else commitment

    # ------------------------------------------------------------------ SolanaTransport
    async def latest_blockhash(self) -> tuple[Hash, int]:
        result = await self._call("getLatestBlockhash", [{"commitment": self.commitment}])
        with reading("getLatestBlockhash"):
            value = result["value"]
            return Hash.from_string(value["blockhash"]), int(value["lastValidBlockHeight"])

    async def send_raw_transaction(self, raw_tx: bytes) -> SendOutcome:
        config = {"encoding": "base64", "skipPreflight": True, "preflightCommitment": self.commitment}
        try:
            await self._request("sendTransaction", [base64.b64encode(raw_tx).decode("ascii"), config])
        except TokenForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            outcome = send_outcome(exc)
            if outcome is not None:
                return outcome
            raise translate_rpc_failure(exc, "sendTransaction") from chainable(exc)
        return SendOutcome.ACCEPTED

    async def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        result = await self._call("getSignatureStatuses", [[str(signature)], {"searchTransactionHistory": True}])
        with reading("getSignatureStatuses"):
            entry = result["value"][0]
            if entry is None or not self._reached(entry):
                return None
        return await self._included(signature)

    async def block_height(self) -> int:
        result = await self._call("getBlockHeight", [{"commitment": self.commitment}])
        with reading("getBlockHeight"):
            return int(result)

    async def get_account(self, address: Pubkey) -> AccountInfo | None:
        result = await self._call(
            "getAccountInfo", [str(address), {"encoding": "base64", "commitment": self.commitment}]
        )
        with reading("getAccountInfo"):
            value = result["value"]
            if value is None or int(value["lamports"]) == 0:
                return None
            data, encoding = value["data"]
            if encoding != "base64":
                raise ValueError(f"account data in {encoding!r}, asked for base64")
            return AccountInfo(
                lamports=int(value["lamports"]),
                owner=Pubkey.from_string(value["owner"]),
                data=base64.b64decode(data, validate=True),
            )

    async def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Transactions that wrote ``address``, oldest first, up to the first successful one."""
        newest_first: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(SIGNATURES_MAX_PAGES):
            config: dict[str, Any] = {"limit": SIGNATURES_PAGE_LIMIT, "commitment": self._history_commitment}
            if before is not None:
                config["before"] = before
            page = await self._call("getSignaturesForAddress", [str(address), config])
            with reading("getSignaturesForAddress"):
                newest_first.extend(page)
                if len(page) < SIGNATURES_PAGE_LIMIT:
                    break
                before = page[-1]["signature"]
        else:
            log.warning(
                "solana address history too long to find its first transaction",
                extra={"address": str(address), "pages": SIGNATURES_MAX_PAGES},
            )
            return []
        statuses: list[TxStatus] = []
        for entry in reversed(newest_first):
            with reading("getSignaturesForAddress"):
                signature = Signature.from_string(entry["signature"])
            status = await self._included(signature)
            if status is None:  # listed by the node, not yet served by getTransaction
                raise TransientError(
                    f"the node lists {signature} for {address} but does not serve it yet", code=ErrorCode.RPC_LAGGING
                )
            statuses.append(status)
            if status.err is None:
                break
        return statuses

    async def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        result = await self._call("getMinimumBalanceForRentExemption", [data_len, {"commitment": self.commitment}])
        with reading("getMinimumBalanceForRentExemption"):
            return int(result)

    async def get_balance(self, address: Pubkey) -> int:
        result = await self._call("getBalance", [str(address), {"commitment": self.commitment}])
        with reading("getBalance"):
            return int(result["value"])

    async def request_airdrop(self, address: Pubkey, lamports: int) -> Signature:
        """Ask the node's faucet for lamports (local and test clusters only)."""
        result = await self._call("requestAirdrop", [str(address), lamports, {"commitment": self.commitment}])
        with reading("requestAirdrop"):
            return Signature.from_string(result)

    async def close(self) -> None:
        try:
            await self.client.close()
        except TokenForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            raise translate_rpc_failure(exc, "close") from chainable(exc)

    # ------------------------------------------------------------------ helpers
    def _reached(self, entry: dict[str, Any]) -> bool:
        level = entry.get("confirmationStatus")
        if level is None:  # nodes before 1.5.5: null confirmations means rooted
            level = "finalized" if entry.get("confirmations", 0) is None else "processed"
        return _COMMITMENT_RANK[level] >= _COMMITMENT_RANK[self.commitment]

    async def _included(self, signature: Signature) -> TxStatus | None:
        tx = await self._call(
            "getTransaction",
            [
                str(signature),
                {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": self._history_commitment},
            ],
        )
        if tx is None:
            return None
        with reading("getTransaction"):
            meta = tx["meta"]
            slot = int(tx["slot"])
        if meta is None:
            raise TransientError(f"the node has no status metadata for {signature}", code=ErrorCode.RPC_INCOMPLETE)
        with reading("getTransaction"):
            text, index, custom = parse_transaction_error(meta["err"])
            return TxStatus(signature, slot, int(meta["fee"]), text, index, custom)

    async def _request(self, method: str, params: list[Any]) -> Any:
        return await self.client.send_rpc_request(JsonRpcRequest(method=method, params=params), Any)

    async def _call(self, method: str, params: list[Any]) -> Any:
        try:
            return await self._request(method, params)
        except TokenForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            raise translate_rpc_failure(exc, method) from chainable(exc)
