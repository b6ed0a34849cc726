"""Every exception crossing the EVM adapter becomes a TransientError or a PermanentError."""

from __future__ import annotations

import pytest
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TooManyRequests,
    TransactionNotFound,
    Web3RPCError,
)

from tokenforge.chains.evm.rpc_errors import node_message, translate, translating
from tokenforge.errors import PermanentError, TokenForgeError, TransientError


def rpc_error(message: str, code: int = -32000) -> Web3RPCError:
    return Web3RPCError(
        str({"code": code, "message": message}), rpc_response={"error": {"code": code, "message": message}}
    )


@pytest.mark.parametrize(
    ("message", "transient", "code"),
    [
        ("nonce too low: next nonce 5, tx nonce 3", True, "nonce_too_low"),
        ("already known", True, "already_known"),
        ("replacement transaction underpriced", True, "underpriced"),
        ("insufficient funds for gas * price + value: balance 0, tx cost 1", False, "insufficient_funds"),
        ("execution reverted: FailedDeployment()", False, "reverted"),
        ("invalid chain id 1, expected 31337", False, "invalid_transaction"),
        ("intrinsic gas too low", False, "invalid_transaction"),
        ("daily request count exceeded, request rate limited", True, "rate_limited"),
        ("header not found", True, "rpc_error"),
    ],
)
def test_node_messages(message, transient, code):
    err = translate(rpc_error(message), "broadcast")
    assert isinstance(err, TransientError if transient else PermanentError)
    assert err.code == code
    assert err.is_transient() is transient
    assert message[:50] in err.message and err.message.startswith("broadcast: ")


@pytest.mark.parametrize(
    ("exc", "transient", "code"),
    [
        (TimeoutError(), True, "rpc_timeout"),
        (TimeExhausted("waited"), True, "rpc_timeout"),
        (ConnectionRefusedError(111, "refused"), True, "rpc_unavailable"),
        (ProviderConnectionError("down"), True, "rpc_unavailable"),
        (TooManyRequests("slow down"), True, "rate_limited"),
        (ContractLogicError("execution reverted"), False, "reverted"),
        (TransactionNotFound("no receipt"), True, "rpc_error"),
        # not a node's answer: a bug, treated as everywhere (transient, bounded retries)
        (ValueError("bad value"), True, "internal_error"),
        (KeyError("x"), True, "internal_error"),
    ],
)
def test_exception_types(exc, transient, code):
    err = translate(exc, "confirm")
    assert err.is_transient() is transient
    assert err.code == code


def test_tokenforge_errors_pass_through_unchanged():
    original = PermanentError("nope", code="reverted")
    assert translate(original, "sign") is original


def test_translating_context_raises_only_tokenforge_errors_without_vendor_chain():
    with pytest.raises(TokenForgeError) as info, translating("read nonce"):
        raise rpc_error("nonce too low")
    assert info.value.code == "nonce_too_low"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_long_node_messages_are_truncated():
    err = translate(rpc_error("x" * 5000), "broadcast")
    assert len(err.message) < 400


def test_node_message_prefers_the_rpc_error_text():
    assert node_message(rpc_error("already known")) == "already known"
    assert node_message(ValueError("plain")) == "plain"
