"""Translation of web3 / node / transport exceptions into TokenForge errors.

Every EVM adapter call goes through :func:`translating`, so no vendor exception escapes
(habit 3). Node errors are matched on the message wording geth, Hardhat, Anvil and the
embedded chain share (Hardhat's own wordings are listed too); the matched
:class:`~tokenforge.errors.ErrorCode`'s kind makes it transient or permanent. Messages
never carry secrets: only the exception type and the node's own error text (which never
contains a private key) are kept.
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

from tokenforge.errors import ErrorCode, ErrorKind, PermanentError, TokenForgeError, TransientError

_MAX_DETAIL = 300

_C = ErrorCode
# (substring of the lower-cased node message, code) — first match wins. The code's kind
# decides between TransientError and PermanentError.
_NODE_MESSAGES: tuple[tuple[str, ErrorCode], ...] = (
    ("nonce too low", _C.NONCE_TOO_LOW),
    ("nonce has already been used", _C.NONCE_TOO_LOW),
    ("already known", _C.ALREADY_KNOWN),
    ("known transaction", _C.ALREADY_KNOWN),
    ("already imported", _C.ALREADY_KNOWN),
    ("replacement transaction underpriced", _C.UNDERPRICED),
    ("transaction underpriced", _C.UNDERPRICED),
    ("max fee per gas less than block base fee", _C.UNDERPRICED),
    ("insufficient funds", _C.INSUFFICIENT_FUNDS),
    ("doesn't have enough funds", _C.INSUFFICIENT_FUNDS),  # Hardhat
    ("is too low for the next block", _C.UNDERPRICED),  # Hardhat: maxFee below base fee
    ("nonce too high", _C.NONCE_TOO_HIGH),  # Hardhat with automine: a gap is refused
    ("execution reverted", _C.REVERTED),
    ("revert", _C.REVERTED),
    ("invalid chain id", _C.INVALID_TRANSACTION),
    ("invalid chainid", _C.INVALID_TRANSACTION),  # Hardhat
    ("gas but got", _C.INVALID_TRANSACTION),  # Hardhat: intrinsic gas too low
    ("intrinsic gas too low", _C.INVALID_TRANSACTION),
    ("exceeds block gas limit", _C.INVALID_TRANSACTION),
    ("invalid transaction", _C.INVALID_TRANSACTION),
    ("invalid sender", _C.INVALID_TRANSACTION),
    ("rate limit", _C.RATE_LIMITED),
    ("too many requests", _C.RATE_LIMITED),
    ("timeout", _C.RPC_TIMEOUT),
    ("timed out", _C.RPC_TIMEOUT),
    ("closed", _C.RPC_UNAVAILABLE),
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
        for needle, code in _NODE_MESSAGES:
            if needle in lowered:
                permanent = code.kind is ErrorKind.PERMANENT
                return PermanentError(detail, code=code) if permanent else TransientError(detail, code=code)
        # an RPC or transport failure we do not recognise: worth a bounded retry
        return TransientError(detail, code=ErrorCode.RPC_ERROR)
    if _is_http_client_error(exc):
        return TransientError(detail, code=ErrorCode.RPC_UNAVAILABLE)
    # Not a node's or a transport's answer: a bug or an untranslated failure, treated as
    # everywhere (errors.py): INTERNAL_ERROR, transient, bounded retries.
    return TransientError(detail, code=ErrorCode.INTERNAL_ERROR)


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
    except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
        raise translate(exc, action) from None
