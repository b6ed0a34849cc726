"""Translation of web3 / node / transport exceptions into TokenForge errors.

Every EVM adapter call goes through :func:`translating`, so no vendor exception escapes
(habit 3). Node errors are matched on the message wording geth, Hardhat, Anvil and the
embedded chain share (Hardhat's own wordings are listed too). Messages never carry secrets: only the exception type and the node's
own error text (which never contains a private key) are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    Web3Exception,
    Web3RPCError,
)

from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError

_MAX_DETAIL = 300

# (substring of the lower-cased node message, transient?, code) — first match wins.
_NODE_MESSAGES: tuple[tuple[str, bool, str], ...] = (
    ("nonce too low", True, "nonce_too_low"),
    ("nonce has already been used", True, "nonce_too_low"),
    ("already known", True, "already_known"),
    ("known transaction", True, "already_known"),
    ("already imported", True, "already_known"),
    ("replacement transaction underpriced", True, "underpriced"),
    ("transaction underpriced", True, "underpriced"),
    ("max fee per gas less than block base fee", True, "underpriced"),
    ("insufficient funds", False, "insufficient_funds"),
    ("doesn't have enough funds", False, "insufficient_funds"),  # Hardhat
    ("is too low for the next block", True, "underpriced"),  # Hardhat: maxFee below base fee
    ("nonce too high", True, "nonce_too_high"),  # Hardhat with automine: a gap is refused
    ("execution reverted", False, "reverted"),
    ("revert", False, "reverted"),
    ("invalid chain id", False, "invalid_transaction"),
    ("invalid chainid", False, "invalid_transaction"),  # Hardhat
    ("gas but got", False, "invalid_transaction"),  # Hardhat: intrinsic gas too low
    ("intrinsic gas too low", False, "invalid_transaction"),
    ("exceeds block gas limit", False, "invalid_transaction"),
    ("invalid transaction", False, "invalid_transaction"),
    ("invalid sender", False, "invalid_transaction"),
    ("rate limit", True, "rate_limited"),
    ("too many requests", True, "rate_limited"),
    ("timeout", True, "rpc_timeout"),
    ("timed out", True, "rpc_timeout"),
    ("closed", True, "rpc_unavailable"),
)


def node_message(exc: BaseException) -> str:
    """The node's error text for a JSON-RPC error, else ``str(exc)``."""
    if isinstance(exc, Web3RPCError) and isinstance(exc.rpc_response, dict):
        error = exc.rpc_response.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    if isinstance(exc, Web3RPCError) and isinstance(exc.message, str):
        return exc.message
    return str(exc)


def translate(exc: BaseException, action: str) -> TokenForgeError:
    """Maps any exception raised while doing ``action`` to a TokenForge error."""
    if isinstance(exc, TokenForgeError):
        return exc
    detail = f"{action}: {type(exc).__name__}: {node_message(exc)[:_MAX_DETAIL]}"
    if isinstance(exc, TooManyRequests):
        return TransientError(detail, code=ErrorCode.RATE_LIMITED)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, TimeExhausted)):
        return TransientError(detail, code=ErrorCode.RPC_TIMEOUT)
    if isinstance(exc, (ProviderConnectionError, ConnectionError)):
        return TransientError(detail, code=ErrorCode.RPC_UNAVAILABLE)
    if isinstance(exc, ContractLogicError):
        return PermanentError(detail, code=ErrorCode.REVERTED)
    lowered = node_message(exc).lower()
    if isinstance(exc, (Web3Exception, OSError)):
        for needle, transient, code in _NODE_MESSAGES:
            if needle in lowered:
                return TransientError(detail, code=code) if transient else PermanentError(detail, code=code)
        # an RPC or transport failure we do not recognise: worth a bounded retry
        return TransientError(detail, code=ErrorCode.RPC_ERROR)
    if _is_http_client_error(exc):
        return TransientError(detail, code=ErrorCode.RPC_UNAVAILABLE)
    return PermanentError(detail, code=ErrorCode.EVM_ADAPTER_ERROR)


def _is_http_client_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("aiohttp", "requests", "urllib3", "httpx", "websockets"))


@contextmanager
def translating(action: str) -> Iterator[None]:
    """``with translating("broadcast"): ...`` re-raises anything as a TokenForge error."""
    try:
        yield
    except TokenForgeError:
        raise
    except Exception as exc:
        raise translate(exc, action) from None
