"""One root error, split into transient and permanent.

The split alone decides retries: a :class:`TransientError` is retried with backoff, a
:class:`PermanentError` fails the job at once. Adapters translate vendor exceptions
(web3, solders, SQLAlchemy, ...) into these classes at their boundary; no vendor
exception escapes an adapter.

Messages must never contain secrets (private keys, seeds, API keys).
"""

from __future__ import annotations


class TokenForgeError(Exception):
    """Root of every error TokenForge raises on purpose."""

    #: short machine-readable code, e.g. ``"rpc_timeout"``; shown to users.
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def is_transient(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class TransientError(TokenForgeError):
    """Worth retrying: timeouts, 5xx, rate limits, nonce too low, blockhash expired."""

    code = "transient"

    def __init__(self, message: str, *, code: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s

    def is_transient(self) -> bool:
        return True


class PermanentError(TokenForgeError):
    """Retrying cannot help: invalid parameters, insufficient funds, reverted."""

    code = "permanent"


class ValidationFailed(PermanentError):
    """A domain rule was broken. ``field`` names the offending input field."""

    code = "invalid_parameter"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class NotFound(PermanentError):
    code = "not_found"


class Conflict(PermanentError):
    code = "conflict"


class IllegalTransition(PermanentError):
    """A job state change the state machine does not allow."""

    code = "illegal_transition"
