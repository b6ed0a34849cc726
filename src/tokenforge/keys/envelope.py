"""Envelope encryption for secrets at rest.

Each secret is sealed with its own AES-256-GCM data key (random 96-bit nonce); the data
key is made and wrapped by a :class:`MasterKey` (``new_data_key``). The record's name is
bound in as associated data for both layers, so a record moved to another name fails to
open. :func:`rewrap` moves a record to another master key without touching ``nonce`` or
``ct``: master-key rotation never re-encrypts a secret.

Sealed record (version 1), JSON-serialisable, binary fields as standard base64::

    {"v": 1, "alg": "AES-256-GCM", "kek": "<master key id>",
     "nonce": "<12 bytes>", "ct": "<ciphertext + 16-byte tag>", "wrapped_key": "<...>"}

:class:`LocalMasterKey` keeps 32 bytes in a 0600 keyfile (or a secret environment
variable); :class:`tokenforge.keys.kms.AwsKmsMasterKey` asks AWS KMS (``GenerateDataKey``
/ ``Decrypt`` with the record name as encryption context). Records name their master key
in ``kek``.
"""

from __future__ import annotations

import base64
import binascii
import os
import pathlib
import secrets
import stat
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenforge.errors import ErrorCode, PermanentError

FORMAT_VERSION = 1
ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12


class MasterKey(Protocol):
    """Makes, wraps and unwraps 32-byte data keys. ``aad`` must match between the call
    that wrapped a key and :meth:`unwrap`. Errors are TokenForge errors only (an adapter
    translates its vendor's); none carries key material."""

    #: stable identifier written into each record (``"local"``, or the KMS key id).
    key_id: str

    def new_data_key(self, aad: bytes) -> tuple[bytes, bytes]:
        """A fresh random data key and the same key wrapped: ``(plaintext, wrapped)``."""
        ...

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        """``data_key`` wrapped (used when re-wrapping under a new master key)."""
        ...

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """Raise :class:`PermanentError` if ``blob`` or ``aad`` was altered."""
        ...


def _integrity_error(what: str) -> PermanentError:
    return PermanentError(
        f"{what} failed authentication (tampered, swapped or wrong master key)",
        code=ErrorCode.KEY_INTEGRITY,
    )


class LocalMasterKey:
    """AES-256-GCM key-encryption key held in memory; blob = nonce || ciphertext+tag."""

    key_id = "local"

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise PermanentError("master key must be 32 bytes", code=ErrorCode.BAD_MASTER_KEY)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"LocalMasterKey(key_id={self.key_id!r})"

    def new_data_key(self, aad: bytes) -> tuple[bytes, bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        return data_key, self.wrap(data_key, aad)

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise _integrity_error("wrapped data key") from None

    @classmethod
    def from_keyfile(cls, path: pathlib.Path, *, create: bool = True) -> LocalMasterKey:
        """Load the keyfile, creating it (32 random bytes, mode 0600) if absent and allowed.

        Creation is atomic and never replaces an existing file: the key is written to a
        temporary file and hard-linked into place. A keyfile with any group/other
        permission bits is refused.
        """
        path = pathlib.Path(path)
        if not path.exists():
            if not create:
                raise PermanentError(f"master keyfile {path} does not exist", code=ErrorCode.MISSING_MASTER_KEY)
            _create_keyfile(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermanentError(
                f"master keyfile {path} has mode {mode:04o}; it must not be accessible to "
                f"group or others (chmod 600 {path})",
                code=ErrorCode.INSECURE_MASTER_KEY,
            )
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise PermanentError(
                f"master keyfile {path} must hold exactly 32 bytes, found {len(key)}",
                code=ErrorCode.BAD_MASTER_KEY,
            )
        return cls(key)


def _create_keyfile(path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # never replaces: another process may have created it first
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _aad(name: str) -> bytes:
    return b"tokenforge/sealed/v1\x00" + name.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal(master: MasterKey, name: str, plaintext: bytes) -> dict[str, Any]:
    """Encrypt ``plaintext`` under a fresh data key; the record only opens under ``name``."""
    aad = _aad(name)
    data_key, wrapped = master.new_data_key(aad)
    if len(data_key) != KEY_BYTES:
        raise PermanentError(
            f"master key {master.key_id!r} made a data key of the wrong size", code=ErrorCode.KEY_FORMAT
        )
    nonce = secrets.token_bytes(NONCE_BYTES)
    return {
        "v": FORMAT_VERSION,
        "alg": ALGORITHM,
        "kek": master.key_id,
        "nonce": _b64(nonce),
        "ct": _b64(AESGCM(data_key).encrypt(nonce, plaintext, aad)),
        "wrapped_key": _b64(wrapped),
    }


def open_sealed(master: MasterKey, name: str, record: dict[str, Any]) -> bytes:
    """Decrypt a record made by :func:`seal` for the same ``name``.

    Raises :class:`PermanentError` on an unknown version, malformed fields, a different
    master key or any tampering.
    """
    nonce, ct, data_key = _open_data_key(master, name, record)
    return _decrypt(data_key, nonce, ct, name)


def rewrap(old: MasterKey, new: MasterKey, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its data key wrapped by ``new`` instead of ``old``.

    ``nonce`` and ``ct`` (and any other field, e.g. ``retired_at``) stay as they are. The
    record is opened first, so a tampered record is refused rather than carried over, and
    the new wrapping is unwrapped once to prove ``new`` opens it."""
    nonce, ct, data_key = _open_data_key(old, name, record)
    _decrypt(data_key, nonce, ct, name)  # authenticates the secret; the plaintext is dropped
    aad = _aad(name)
    wrapped = new.wrap(data_key, aad)
    if new.unwrap(wrapped, aad) != data_key:
        raise _integrity_error(f"re-wrapped data key of {name!r}")
    return {**record, "kek": new.key_id, "wrapped_key": _b64(wrapped)}


def _open_data_key(master: MasterKey, name: str, record: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    if not isinstance(record, dict) or record.get("v") != FORMAT_VERSION or record.get("alg") != ALGORITHM:
        raise PermanentError(f"sealed record {name!r} has an unsupported format", code=ErrorCode.KEY_FORMAT)
    if record.get("kek") != master.key_id:
        raise PermanentError(
            f"sealed record {name!r} is wrapped by master key {record.get('kek')!r}, not {master.key_id!r}",
            code=ErrorCode.KEY_FORMAT,
        )
    try:
        nonce, ct, wrapped = (base64.b64decode(record[f], validate=True) for f in ("nonce", "ct", "wrapped_key"))
    except (KeyError, TypeError, binascii.Error):
        raise PermanentError(f"sealed record {name!r} is malformed", code=ErrorCode.KEY_FORMAT) from None
    return nonce, ct, master.unwrap(wrapped, _aad(name))


def _decrypt(data_key: bytes, nonce: bytes, ct: bytes, name: str) -> bytes:
    try:
        return AESGCM(data_key).decrypt(nonce, ct, _aad(name))
    except (InvalidTag, ValueError):
        raise _integrity_error(f"sealed record {name!r}") from None
