"""AWS KMS as the master key of envelope encryption (``key_backend=aws-kms``).

:class:`AwsKmsMasterKey` implements :class:`~tokenforge.keys.envelope.MasterKey`: a data
key comes from ``GenerateDataKey`` (``AES_256``), is unwrapped with ``Decrypt`` and, when
a store is rotated onto this key, wrapped with ``Encrypt``. Every call carries the
record's associated data as its encryption context (``{"tokenforge": "sealed/v1",
"record": <record name>}``), so KMS refuses to unwrap a data key for another record and
CloudTrail names the record each call was for. The KMS key never leaves KMS; the
plaintext data key lives in memory only while a record is sealed or opened.

The calls are blocking (boto3). The key store is opened when a chain is opened (once per
chain and process), not per launch.

Errors are translated here: throttling, KMS 5xx and connection failures become
:class:`TransientError` ``kms_unavailable`` (after botocore's own retries); an invalid
ciphertext or a mismatched context becomes :class:`PermanentError` ``key_integrity``;
access denied, a disabled/missing key or missing credentials become
:class:`PermanentError` ``kms_refused``. Messages name the KMS error code and the key id,
never request or response bodies.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3  # type: ignore[import-untyped]  # boto3-stubs not installed
import botocore.exceptions  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from tokenforge.errors import ErrorCode, PermanentError, TransientError
from tokenforge.keys.envelope import KEY_BYTES

#: botocore logs request and response bodies (with the plaintext data key) at DEBUG.
_CHATTY_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.auth", "botocore.retryhandler")
for _name in _CHATTY_LOGGERS:
    logging.getLogger(_name).setLevel(logging.INFO)

_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "KMSInternalException",
        "InternalFailure",
        "ServiceUnavailable",
        "DependencyTimeoutException",
        "KeyUnavailableException",
    }
)
_INTEGRITY_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.HTTPClientError,
)
_CONTEXT_PREFIX = b"tokenforge/"


def encryption_context(aad: bytes) -> dict[str, str]:
    """The KMS encryption context for envelope associated data ``aad``.

    ``b"tokenforge/sealed/v1\\0" + name`` becomes ``{"tokenforge": "sealed/v1", "record":
    name}``; any other ``aad`` is carried whole (hex) so it still binds."""
    prefix, sep, name = aad.partition(b"\x00")
    if sep and prefix.startswith(_CONTEXT_PREFIX):
        try:
            return {"tokenforge": prefix[len(_CONTEXT_PREFIX) :].decode("ascii"), "record": name.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"tokenforge-aad": aad.hex()}


class AwsKmsMasterKey:
    """Data keys wrapped by the symmetric KMS key ``key_id`` (id, ARN or alias).

    ``key_id`` as given is what records carry in ``kek``. Credentials come from boto3's
    usual chain (environment, profile, instance role)."""

    def __init__(
        self,
        key_id: str,
        region: str,
        endpoint_url: str | None = None,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        if not key_id:
            raise PermanentError(
                "the KMS key id is empty (set TOKENFORGE_KMS_KEY_ID)", code=ErrorCode.MISSING_MASTER_KEY
            )
        self.key_id = key_id
        self._region = region
        self._endpoint_url = endpoint_url
        self._client = boto3.session.Session().client(
            "kms",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                retries={"mode": "standard", "max_attempts": max_attempts},
            ),
        )

    def __repr__(self) -> str:
        return f"AwsKmsMasterKey(key_id={self.key_id!r}, region={self._region!r})"

    def new_data_key(self, aad: bytes) -> tuple[bytes, bytes]:
        answer = self._call(
            "GenerateDataKey", KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=encryption_context(aad)
        )
        return self._plaintext(answer), bytes(answer["CiphertextBlob"])

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        answer = self._call("Encrypt", KeyId=self.key_id, Plaintext=data_key, EncryptionContext=encryption_context(aad))
        return bytes(answer["CiphertextBlob"])

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        answer = self._call(
            "Decrypt", KeyId=self.key_id, CiphertextBlob=blob, EncryptionContext=encryption_context(aad)
        )
        return self._plaintext(answer)

    def _plaintext(self, answer: dict[str, Any]) -> bytes:
        plaintext = answer.get("Plaintext")
        if not isinstance(plaintext, bytes) or len(plaintext) != KEY_BYTES:
            raise PermanentError(
                f"KMS key {self.key_id!r} returned a data key of the wrong size", code=ErrorCode.KEY_FORMAT
            )
        return plaintext

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        method = {"GenerateDataKey": "generate_data_key", "Encrypt": "encrypt", "Decrypt": "decrypt"}[operation]
        try:
            return getattr(self._client, method)(**params)
        except botocore.exceptions.ClientError as exc:
            raise translate_client_error(exc, operation, self.key_id) from None
        except _CONNECTION_ERRORS as exc:
            raise TransientError(
                f"KMS {operation} for key {self.key_id!r}: cannot reach KMS ({type(exc).__name__})",
                code=ErrorCode.KMS_UNAVAILABLE,
            ) from None
        except botocore.exceptions.NoCredentialsError:
            raise PermanentError(
                f"KMS {operation} for key {self.key_id!r}: no AWS credentials found", code=ErrorCode.KMS_REFUSED
            ) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise PermanentError(
                f"KMS {operation} for key {self.key_id!r} failed: {type(exc).__name__}", code=ErrorCode.KMS_REFUSED
            ) from None


def translate_client_error(
    exc: botocore.exceptions.ClientError, operation: str, key_id: str
) -> TransientError | PermanentError:
    """The TokenForge error for a KMS error answer (by its code and HTTP status)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    where = f"KMS {operation} for key {key_id!r}"
    if code in _TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientError(f"{where}: {code} (HTTP {status})", code=ErrorCode.KMS_UNAVAILABLE)
    if code in _INTEGRITY_CODES:
        return PermanentError(
            f"{where}: {code}: the wrapped data key failed authentication (tampered, swapped or another key)",
            code=ErrorCode.KEY_INTEGRITY,
        )
    return PermanentError(f"{where}: {code} (HTTP {status})", code=ErrorCode.KMS_REFUSED)
