"""The configured master key (``key_backend``) and the key store built on it.

* ``local``: ``master_key`` (base64 of 32 bytes, a secret environment variable) if set,
  else the keyfile ``master_keyfile`` (default ``data_dir/master.key``; created with mode
  0600 on first use when ``create`` allows it).
* ``aws-kms``: :class:`~tokenforge.keys.kms.AwsKmsMasterKey` on ``kms_key_id`` in
  ``kms_region`` (``kms_endpoint_url`` for a VPC endpoint or a test server).
"""

from __future__ import annotations

import base64
import binascii
import pathlib

from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, PermanentError
from tokenforge.keys.envelope import KEY_BYTES, LocalMasterKey, MasterKey
from tokenforge.keys.local import LocalKeyStore


def master_keyfile(settings: Settings) -> pathlib.Path:
    """Where the local master keyfile is (or would be)."""
    return pathlib.Path(settings.master_keyfile or settings.data_dir / "master.key")


def local_master_from_secret(value: str) -> LocalMasterKey:
    """A local master key from its base64 text (``TOKENFORGE_MASTER_KEY``)."""
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise PermanentError("master_key must be the base64 of exactly 32 bytes", code=ErrorCode.BAD_MASTER_KEY)
    return LocalMasterKey(key)


def open_master_key(settings: Settings, *, create: bool = True) -> MasterKey:
    """The master key ``settings`` name; PermanentError naming the setting when it is
    missing or malformed (never its value)."""
    if settings.key_backend == "aws-kms":
        if not settings.kms_key_id:
            raise PermanentError(
                "key_backend is aws-kms but kms_key_id is not set (TOKENFORGE_KMS_KEY_ID)",
                code=ErrorCode.MISSING_MASTER_KEY,
            )
        from tokenforge.keys.kms import AwsKmsMasterKey  # boto3 only for this backend

        return AwsKmsMasterKey(settings.kms_key_id, settings.kms_region, settings.kms_endpoint_url)
    if settings.master_key is not None:
        return local_master_from_secret(settings.master_key.get_secret_value())
    return LocalMasterKey.from_keyfile(master_keyfile(settings), create=create)


def open_keystore(settings: Settings, *, create_missing: bool = True) -> LocalKeyStore:
    """The key store of ``settings.data_dir`` under the configured master key."""
    return LocalKeyStore(
        settings.data_dir, master_key=open_master_key(settings, create=create_missing), create_missing=create_missing
    )
