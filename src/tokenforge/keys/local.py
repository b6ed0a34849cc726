"""File-backed :class:`~tokenforge.keys.ports.KeyStore` with envelope-encrypted records.

Layout: ``data_dir/keys.json`` (mode 0600) holds ``{"version": 1, "records": {name:
sealed record}}`` with names ``evm_deployer/<chain>``, ``solana_payer/<chain>`` and
``platform_secret/<purpose>``. The master key comes from ``master_keyfile`` (default
``data_dir/master.key``; keep it elsewhere in production). Writes go to a temporary file
that is renamed over ``keys.json``. A thread lock plus an ``flock`` on ``keys.lock`` make
creation safe across threads and processes: a key, once written, never changes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pathlib
import re
import secrets
import threading
from collections.abc import Callable

from eth_account import Account
from solders.keypair import Keypair

from tokenforge.errors import ErrorCode, PermanentError, ValidationFailed
from tokenforge.keys.envelope import LocalMasterKey, MasterKey, open_sealed, seal

log = logging.getLogger(__name__)

STORE_VERSION = 1
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def _new_secp256k1_key() -> bytes:
    while True:
        key = secrets.token_bytes(32)
        if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            return key


def _new_32_bytes() -> bytes:
    return secrets.token_bytes(32)


class LocalKeyStore:
    """Keys created on first use (if ``create_missing``), sealed at rest, stable across restarts."""

    def __init__(
        self,
        data_dir: pathlib.Path,
        *,
        master_keyfile: pathlib.Path | None = None,
        create_missing: bool = True,
        master_key: MasterKey | None = None,
    ) -> None:
        self._dir = pathlib.Path(data_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._path = self._dir / "keys.json"
        self._create_missing = create_missing
        self._master = master_key or LocalMasterKey.from_keyfile(
            master_keyfile or self._dir / "master.key", create=create_missing
        )
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"LocalKeyStore(data_dir={str(self._dir)!r}, master={self._master!r})"

    # -- KeyStore -------------------------------------------------------------------

    def evm_deployer_key(self, chain: str) -> bytes:
        return self._get("evm_deployer", "chain", chain, _new_secp256k1_key)

    def evm_deployer_keys(self, chain: str, count: int) -> list[bytes]:
        """The chain's first ``count`` deployer keys; key 0 is :meth:`evm_deployer_key`."""
        return [self.evm_deployer_key(chain)] + [
            self._get("evm_deployer", "chain", f"{chain}:{i}", _new_secp256k1_key) for i in range(1, count)
        ]

    def import_evm_deployer_key(self, chain: str, index: int, private_key: bytes) -> str:
        """Seals an existing key as deployer key ``index`` of ``chain``; returns its address.

        Refuses to overwrite a different key already stored under that name (a key, once
        written, never changes)."""
        if (
            not isinstance(private_key, (bytes, bytearray))
            or len(private_key) != 32
            or not (0 < int.from_bytes(private_key, "big") < _SECP256K1_N)
        ):
            raise ValidationFailed("private_key", "must be a 32-byte secp256k1 private key")
        name = f"evm_deployer/{chain}" if index == 0 else f"evm_deployer/{chain}:{index}"
        key = bytes(private_key)
        with self._lock:
            record = self._load_or_create(name, lambda: key)
        if open_sealed(self._master, name, record) != key:
            raise PermanentError(f"{name} already holds a different key", code=ErrorCode.KEY_EXISTS)
        return Account.from_key(key).address

    def solana_payer_key(self, chain: str) -> bytes:
        return self._get("solana_payer", "chain", chain, _new_32_bytes)

    def platform_secret(self, purpose: str) -> bytes:
        return self._get("platform_secret", "purpose", purpose, _new_32_bytes)

    # -- display ----------------------------------------------------------------------

    def evm_deployer_address(self, chain: str) -> str:
        """EIP-55 checksummed address of the chain's deployer."""
        return Account.from_key(self.evm_deployer_key(chain)).address

    def solana_payer_address(self, chain: str) -> str:
        """Base58 public key of the chain's fee payer."""
        return str(Keypair.from_seed(self.solana_payer_key(chain)).pubkey())

    # -- internals --------------------------------------------------------------------

    def _get(self, kind: str, field: str, value: str, generate: Callable[[], bytes]) -> bytes:
        if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
            raise ValidationFailed(field, "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
        name = f"{kind}/{value}"
        with self._lock:
            record = self._records.get(name)
            if record is None:
                record = self._load_or_create(name, generate)
        secret = open_sealed(self._master, name, record)
        if len(secret) != 32:
            raise PermanentError(f"key {name!r} has the wrong length", code=ErrorCode.KEY_FORMAT)
        return secret

    def _load_or_create(self, name: str, generate: Callable[[], bytes]) -> dict:
        with open(self._dir / "keys.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            self._records = self._read()
            if name not in self._records:
                if not self._create_missing:
                    raise PermanentError(
                        f"key {name!r} does not exist and creation is disabled", code=ErrorCode.MISSING_KEY
                    )
                records = {**self._records, name: seal(self._master, name, generate())}
                self._write(records)
                self._records = records
                log.info("created key %s", name)
            return self._records[name]

    def _read(self) -> dict[str, dict]:
        try:
            doc = json.loads(self._path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PermanentError(f"cannot read {self._path}: {type(exc).__name__}", code=ErrorCode.KEY_FORMAT) from None
        if not isinstance(doc, dict) or doc.get("version") != STORE_VERSION or not isinstance(doc.get("records"), dict):
            raise PermanentError(f"{self._path} has an unsupported format", code=ErrorCode.KEY_FORMAT)
        return doc["records"]

    def _write(self, records: dict[str, dict]) -> None:
        data = json.dumps({"version": STORE_VERSION, "records": records}, indent=2, sort_keys=True).encode()
        tmp = self._path.with_name(f".keys.json.{secrets.token_hex(8)}.tmp")
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
