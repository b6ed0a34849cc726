"""One root error, split into transient and permanent, with every code in one registry.

Every error TokenForge raises on purpose carries an :class:`ErrorCode`. Each code has one
:class:`ErrorKind`, written next to it below, and the kind alone says what a code means
to the job machinery (``tokenforge.jobs.policy`` turns it into a decision):

* ``PERMANENT`` — retrying cannot help (invalid input, reverted, insufficient funds):
  the job fails at once.
* ``TRANSIENT`` — another moment or another endpoint may answer (timeouts, 5xx, rate
  limits): retried with backoff, each retry using one attempt.
* ``WAIT`` — a condition of the platform or the market, not of the launch (the database
  is down, no deployer key is funded, fees are above the cap): retried with backoff
  without using an attempt, for as long as it lasts.

:class:`TransientError` and :class:`PermanentError` name the split at the raise site; a
code of the wrong kind for its class is refused when the error is built, and a string
that is not a registered code is refused too, so adapters can only raise registered codes.
Adapters translate vendor exceptions (web3, solders, SQLAlchemy, ...) into these classes at
their boundary; no vendor exception escapes an adapter. An exception that is not a
``TokenForgeError`` reaching the job machinery is a bug or an untranslated failure: it is
treated everywhere as ``TransientError(INTERNAL_ERROR)`` (bounded retries, then dead).

Messages must never contain secrets (private keys, seeds, API keys, endpoint URLs).
"""

from __future__ import annotations

from enum import StrEnum
from typing import cast


class ErrorKind(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    WAIT = "wait"


_P, _T, _W = ErrorKind.PERMANENT, ErrorKind.TRANSIENT, ErrorKind.WAIT


class ErrorCode(StrEnum):
    """Every error code, with its kind (``ErrorCode.X.kind``). Codes are shown to users."""

    kind: ErrorKind

    def __new__(cls, value: str, kind: ErrorKind) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.kind = kind
        return member

    # -- generic -------------------------------------------------------------------------
    ERROR = "error", _P
    TRANSIENT = "transient", _T
    PERMANENT = "permanent", _P
    INVALID_PARAMETER = "invalid_parameter", _P
    NOT_FOUND = "not_found", _P
    CONFLICT = "conflict", _P
    #: the bonding curve sold out and graduated: the token trades on its AMM pool
    CURVE_GRADUATED = "curve_graduated", _P
    ILLEGAL_TRANSITION = "illegal_transition", _P
    #: an exception that is not a TokenForgeError (a bug, or an untranslated failure)
    INTERNAL_ERROR = "internal_error", _T

    # -- the platform: conditions that wait, not fail ----------------------------------
    DB_UNAVAILABLE = "db_unavailable", _W
    NO_FUNDED_KEY = "no_funded_key", _W
    FEE_ABOVE_CAP = "fee_above_cap", _W

    # -- the job machinery ----------------------------------------------------------------
    #: the chain no longer knows the transaction and it can never land: sign again
    TX_DROPPED = "tx_dropped", _T
    #: a submitted transaction not confirmed after many checks: re-broadcast the same bytes
    CONFIRM_TIMEOUT = "confirm_timeout", _T

    # -- endpoints and transports (any chain) ---------------------------------------------
    RPC_UNAVAILABLE = "rpc_unavailable", _T
    RPC_TIMEOUT = "rpc_timeout", _T
    RATE_LIMITED = "rate_limited", _T
    RPC_ERROR = "rpc_error", _T
    RPC_BAD_RESPONSE = "rpc_bad_response", _T
    RPC_HTTP_ERROR = "rpc_http_error", _T
    RPC_LAGGING = "rpc_lagging", _T
    RPC_INCOMPLETE = "rpc_incomplete", _T
    RPC_BUSY = "rpc_busy", _T
    RPC_INTERNAL_ERROR = "rpc_internal_error", _T
    RPC_BLOCK_CLEANED_UP = "rpc_block_cleaned_up", _T
    RPC_BLOCK_NOT_AVAILABLE = "rpc_block_not_available", _T
    RPC_NODE_UNHEALTHY = "rpc_node_unhealthy", _T
    RPC_SLOT_SKIPPED = "rpc_slot_skipped", _T
    RPC_NO_SNAPSHOT = "rpc_no_snapshot", _T
    RPC_HISTORY_UNAVAILABLE = "rpc_history_unavailable", _T
    RPC_BLOCK_STATUS_NOT_AVAILABLE = "rpc_block_status_not_available", _T
    RPC_MIN_CONTEXT_SLOT_NOT_REACHED = "rpc_min_context_slot_not_reached", _T
    RPC_EPOCH_REWARDS_PERIOD = "rpc_epoch_rewards_period", _T
    RPC_LONG_TERM_STORAGE_UNREACHABLE = "rpc_long_term_storage_unreachable", _T
    RPC_REQUEST_REJECTED = "rpc_request_rejected", _P
    RPC_METHOD_UNSUPPORTED = "rpc_method_unsupported", _P
    CHAIN_UNAVAILABLE = "chain_unavailable", _T
    CHAIN_CLOSED = "chain_closed", _T
    CHAIN_IN_USE = "chain_in_use", _T
    ADDRESS_UNAVAILABLE = "address_unavailable", _T

    # -- market data ------------------------------------------------------------------------
    #: no price of a native coin was ever obtained (every price provider failed so far)
    PRICE_UNAVAILABLE = "price_unavailable", _T

    # -- node answers about a transaction ------------------------------------------------
    NONCE_TOO_LOW = "nonce_too_low", _T
    NONCE_TOO_HIGH = "nonce_too_high", _T
    ALREADY_KNOWN = "already_known", _T
    UNDERPRICED = "underpriced", _T
    ALREADY_MINED = "already_mined", _P
    INSUFFICIENT_FUNDS = "insufficient_funds", _P
    REVERTED = "reverted", _P
    INVALID_TRANSACTION = "invalid_transaction", _P
    INVALID_SIGNATURE = "invalid_signature", _P
    TX_FAILED = "tx_failed", _P
    TX_REJECTED = "tx_rejected", _P
    PREFLIGHT_FAILED = "preflight_failed", _P
    UNEXPECTED_RECEIPT = "unexpected_receipt", _P
    INVALID_TX = "invalid_tx", _P
    INVALID_TX_ID = "invalid_tx_id", _P
    SIGN_FAILED = "sign_failed", _P
    EIP1559_UNSUPPORTED = "eip1559_unsupported", _P
    INVALID_COMPUTE_BUDGET = "invalid_compute_budget", _P
    INVALID_COMMITMENT = "invalid_commitment", _P

    # -- chain set-up and funding ---------------------------------------------------------
    CHAIN_ID_MISMATCH = "chain_id_mismatch", _P
    WRONG_CHAIN = "wrong_chain", _P
    CHAIN_DISABLED = "chain_disabled", _P
    EMBEDDED_CHAIN = "embedded_chain", _P
    FACTORY_MISSING = "factory_missing", _P
    FUND_FAILED = "fund_failed", _T
    DEV_FUNDING_REQUIRED = "dev_funding_required", _P
    AIRDROP_BUSY = "airdrop_busy", _T
    AIRDROP_FAILED = "airdrop_failed", _P
    AIRDROP_TIMEOUT = "airdrop_timeout", _T
    SCHEMA_NOT_MIGRATED = "schema_not_migrated", _P
    BROKER_UNAVAILABLE = "broker_unavailable", _T
    JOB_NOT_DEAD = "job_not_dead", _P
    #: the broker gave up on a job's message (its delivery limit was exceeded)
    DELIVERY_LIMIT = "delivery_limit", _P

    # -- keys -----------------------------------------------------------------------------
    INVALID_KEY = "invalid_key", _P
    UNKNOWN_SIGNER = "unknown_signer", _P
    INVALID_ADDRESS = "invalid_address", _P
    INVALID_PAYER_SEED = "invalid_payer_seed", _P
    INVALID_MINT_SECRET = "invalid_mint_secret", _P
    INVALID_JOB_ID = "invalid_job_id", _P
    KEY_INTEGRITY = "key_integrity", _P
    BAD_MASTER_KEY = "bad_master_key", _P
    MISSING_MASTER_KEY = "missing_master_key", _P
    INSECURE_MASTER_KEY = "insecure_master_key", _P
    KEY_FORMAT = "key_format", _P
    KEY_EXISTS = "key_exists", _P
    MISSING_KEY = "missing_key", _P
    #: a retired key is kept sealed for forensics and never signs again
    KEY_RETIRED = "key_retired", _P
    #: AWS KMS throttled, failed (5xx) or could not be reached: another moment may answer
    KMS_UNAVAILABLE = "kms_unavailable", _T
    #: AWS KMS refused the call (access denied, key disabled or missing, no credentials)
    KMS_REFUSED = "kms_refused", _P

    # -- requests -------------------------------------------------------------------------
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused", _P
    BODY_TOO_LARGE = "body_too_large", _P
    BODY_TOO_DEEP = "body_too_deep", _P
    #: a URL names a host that resolves to a loopback, private, link-local, multicast or
    #: metadata address (server-side request forgery)
    UNSAFE_URL = "unsafe_url", _P

    # -- who may do what (401: who are you; 403: you may not) ---------------------------
    AUTH_REQUIRED = "auth_required", _P
    CREDENTIAL_INVALID = "credential_invalid", _P
    CREDENTIAL_EXPIRED = "credential_expired", _P
    CREDENTIAL_REVOKED = "credential_revoked", _P
    SIGNIN_FAILED = "signin_failed", _P
    FORBIDDEN = "forbidden", _P
    CREATOR_MISMATCH = "creator_mismatch", _P
    RATE_LIMITED_CLIENT = "too_many_requests", _P

    # -- audit log --------------------------------------------------------------------------
    AUDIT_CONFLICT = "audit_conflict", _T


def _registered(code: ErrorCode | str) -> ErrorCode:
    """``code`` as a registered :class:`ErrorCode`; ``ValueError`` when it is not one.

    (The lookup ``ErrorCode(value)``, spelled out: type checkers read ``ErrorCode(...)`` as a
    call to the member constructor ``__new__(value, kind)``.)"""
    if isinstance(code, ErrorCode):
        return code
    member = ErrorCode._value2member_map_.get(code)
    if member is None:
        raise ValueError(f"{code!r} is not a valid {ErrorCode.__qualname__}")
    return cast(ErrorCode, member)


class TokenForgeError(Exception):
    """Root of every error TokenForge raises on purpose."""

    #: the code used when none is given
    code: ErrorCode = ErrorCode.ERROR

    def __init__(self, message: str, *, code: ErrorCode | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = _registered(code)
        if (self.code.kind is ErrorKind.PERMANENT) == self.is_transient():
            raise TypeError(f"{type(self).__name__} cannot carry the {self.code.kind} code {self.code.value!r}")

    @property
    def kind(self) -> ErrorKind:
        return self.code.kind

    def is_transient(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class TransientError(TokenForgeError):
    """Worth retrying (``TRANSIENT`` or ``WAIT`` codes): timeouts, 5xx, rate limits,
    a database outage, fees above the cap. ``retry_after_s`` is the source's own hint."""

    code = ErrorCode.TRANSIENT

    def __init__(
        self, message: str, *, code: ErrorCode | str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s

    def is_transient(self) -> bool:
        return True


class PermanentError(TokenForgeError):
    """Retrying cannot help: invalid parameters, insufficient funds, reverted."""

    code = ErrorCode.PERMANENT


class ValidationFailed(PermanentError):
    """A domain rule was broken. ``field`` names the offending input field."""

    code = ErrorCode.INVALID_PARAMETER

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class NotFound(PermanentError):
    code = ErrorCode.NOT_FOUND


class Conflict(PermanentError):
    code = ErrorCode.CONFLICT


class Unauthenticated(PermanentError):
    """No valid credential (HTTP 401). ``code`` says why: none given, invalid, expired,
    revoked, or a sign-in that did not verify."""

    code = ErrorCode.AUTH_REQUIRED


class Forbidden(PermanentError):
    """A valid credential that may not do this (HTTP 403): its role, or another creator."""

    code = ErrorCode.FORBIDDEN


class IllegalTransition(PermanentError):
    """A job state change the state machine does not allow."""

    code = ErrorCode.ILLEGAL_TRANSITION
