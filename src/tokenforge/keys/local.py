"""File-backed :class:`~tokenforge.keys.ports.KeyStore` with envelope-encrypted records.

Layout: ``data_dir/keys.json`` (mode 0600) holds ``{"version": 1, "records": {name:
sealed record}}`` with names ``evm_deployer/<chain>[:<index>]``,
``solana_payer/<chain>[:<index>]`` and ``platform_secret/<purpose>``. The master key is
given (:func:`tokenforge.keys.master.open_master_key`) or defaults to the keyfile
``master_keyfile`` / ``data_dir/master.key``. Writes go to a temporary file that is
renamed over ``keys.json``. A thread lock plus an ``flock`` on ``keys.lock`` make creation
safe across threads and processes: a key, once written, never changes.

Retired keys (``retired_at`` in the record) stay sealed for forensics and never sign
again: a chain's pool is made of its first non-retired keys by index, so retiring a key
brings the next index in (created on first use; fund it). The platform secret cannot be
retired (Solana mint addresses derive from it).

Key events (created, imported, retired, master rotated) are kept in order for the caller
to write to the audit log (:meth:`LocalKeyStore.drain_events`): the store is file based and
sync and never touches the database. Events name keys by chain and address only.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from solders.keypair import Keypair

from tokenforge.audit.actions import Action
from tokenforge.errors import ErrorCode, PermanentError, ValidationFailed
from tokenforge.keys.envelope import LocalMasterKey, MasterKey, open_sealed, rewrap, seal

log = logging.getLogger(__name__)

STORE_VERSION = 1
EVM_DEPLOYER, SOLANA_PAYER, PLATFORM_SECRET = "evm_deployer", "solana_payer", "platform_secret"
#: the highest key index a pool walks to (retirements move a pool to higher indices)
MAX_INDEX = 1023
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_INDEXED_RE = re.compile(r"(?P<chain>.+):(?P<index>\d+)")


def _new_secp256k1_key() -> bytes:
    while True:
        key = secrets.token_bytes(32)
        if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
            return key


def _new_32_bytes() -> bytes:
    return secrets.token_bytes(32)


def _valid_evm_key(key: bytes) -> bool:
    return isinstance(key, (bytes, bytearray)) and len(key) == 32 and 0 < int.from_bytes(key, "big") < _SECP256K1_N


def record_name(kind: str, chain: str, index: int = 0) -> str:
    """``evm_deployer/base`` for key 0, ``evm_deployer/base:3`` for key 3."""
    return f"{kind}/{chain}" if index == 0 else f"{kind}/{chain}:{index}"


def parse_name(name: str) -> tuple[str, str, int]:
    """``(kind, chain or purpose, index)`` of a record name."""
    kind, _, rest = name.partition("/")
    match = _INDEXED_RE.fullmatch(rest)
    if kind != PLATFORM_SECRET and match:
        return kind, match["chain"], int(match["index"])
    return kind, rest, 0


def public_id(kind: str, secret: bytes) -> str | None:
    """The address a key signs as (EVM checksummed address, Solana base58 public key)."""
    if kind == EVM_DEPLOYER:
        return Account.from_key(secret).address
    if kind == SOLANA_PAYER:
        return str(Keypair.from_seed(secret).pubkey())
    return None


def key_subject(name: str, secret: bytes | None = None) -> str:
    """How the audit log names a key: ``key:<chain>/<address>`` (``key:platform/<purpose>``)."""
    kind, chain, _ = parse_name(name)
    address = public_id(kind, secret) if secret is not None else None
    if address is None:
        return f"key:platform/{chain}" if kind == PLATFORM_SECRET else f"key:{chain}/{name}"
    return f"key:{chain}/{address}"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """Something the audit log should record: ``action`` (an :class:`Action`) on ``subject``."""

    action: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A record as ``keys list --all`` shows it (no key material)."""

    name: str
    kind: str
    chain: str
    index: int
    address: str | None
    retired_at: str | None


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
        self._master: MasterKey = master_key or LocalMasterKey.from_keyfile(
            master_keyfile or self._dir / "master.key", create=create_missing
        )
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {}
        self._events: list[KeyEvent] = []

    def __repr__(self) -> str:
        return f"LocalKeyStore(data_dir={str(self._dir)!r}, master={self._master!r})"

    @property
    def master_key_id(self) -> str:
        return self._master.key_id

    # -- KeyStore -------------------------------------------------------------------

    def evm_deployer_key(self, chain: str) -> bytes:
        """The first key of the chain's pool (the lowest non-retired index)."""
        return self.evm_deployer_keys(chain, 1)[0]

    def evm_deployer_keys(self, chain: str, count: int) -> list[bytes]:
        """The chain's first ``count`` non-retired deployer keys, by index."""
        return self._pool(EVM_DEPLOYER, chain, count, _new_secp256k1_key)

    def solana_payer_key(self, chain: str) -> bytes:
        return self._pool(SOLANA_PAYER, chain, 1, _new_32_bytes)[0]

    def platform_secret(self, purpose: str) -> bytes:
        name = f"{PLATFORM_SECRET}/{_checked(purpose, 'purpose')}"
        with self._lock:
            record = self._records.get(name) or self._load_or_create(name, _new_32_bytes)
        return self._open(name, record)

    # -- display ----------------------------------------------------------------------

    def evm_deployer_address(self, chain: str) -> str:
        """EIP-55 checksummed address of the chain's first deployer key."""
        return Account.from_key(self.evm_deployer_key(chain)).address

    def solana_payer_address(self, chain: str) -> str:
        """Base58 public key of the chain's fee payer."""
        return str(Keypair.from_seed(self.solana_payer_key(chain)).pubkey())

    # -- operator actions -------------------------------------------------------------

    def import_key(self, kind: str, chain: str, index: int, secret: bytes) -> str:
        """Seals an existing key as key ``index`` of ``chain``'s ``kind`` pool; returns its
        address. ``kind`` is ``evm_deployer`` (32-byte secp256k1 key) or ``solana_payer``
        (32-byte ed25519 seed).

        Importing the key already stored there is a no-op. Refused: a different key under
        that name (``key_exists``: a key, once written, never changes), a retired name
        (``key_retired``), and the same key at another index of the pool (two pool entries
        would share one nonce sequence)."""
        if kind == EVM_DEPLOYER and not _valid_evm_key(secret):
            raise ValidationFailed("private_key", "must be a 32-byte secp256k1 private key")
        if kind == SOLANA_PAYER and not (isinstance(secret, (bytes, bytearray)) and len(secret) == 32):
            raise ValidationFailed("private_key", "must be a 32-byte ed25519 seed")
        if kind not in (EVM_DEPLOYER, SOLANA_PAYER):
            raise ValidationFailed("kind", "must be evm_deployer or solana_payer")
        if not 0 <= index <= MAX_INDEX:
            raise ValidationFailed("index", f"must be between 0 and {MAX_INDEX}")
        name = record_name(kind, _checked(chain, "chain"), index)
        key = bytes(secret)
        with self._lock, self._file_lock():
            self._records = records = self._read()
            if name not in records:
                for other, record in records.items():
                    if parse_name(other)[:2] == (kind, chain) and self._open(other, record) == key:
                        raise PermanentError(f"this key is already {other}", code=ErrorCode.KEY_EXISTS)
                self._add(name, key, Action.KEY_IMPORTED, records)
        record = self._records[name]
        if record.get("retired_at"):
            raise PermanentError(f"{name} is retired; import under another index", code=ErrorCode.KEY_RETIRED)
        if self._open(name, record) != key:
            raise PermanentError(f"{name} already holds a different key", code=ErrorCode.KEY_EXISTS)
        return str(public_id(kind, key))

    def import_evm_deployer_key(self, chain: str, index: int, private_key: bytes) -> str:
        """:meth:`import_key` for an EVM deployer key."""
        return self.import_key(EVM_DEPLOYER, chain, index, private_key)

    def retire(self, kind: str, chain: str, index: int) -> str:
        """Marks key ``index`` of the pool retired; returns its address. The key stays sealed
        (forensics) and is never handed out again; retiring a retired key is a no-op.
        Processes that opened the chain before keep using it until they restart."""
        if kind not in (EVM_DEPLOYER, SOLANA_PAYER):
            raise ValidationFailed("kind", "only deployer and payer keys can be retired")
        name = record_name(kind, _checked(chain, "chain"), index)
        with self._lock, self._file_lock():
            records = self._read()
            if name not in records:
                raise PermanentError(f"key {name!r} does not exist", code=ErrorCode.MISSING_KEY)
            address = str(public_id(kind, self._open(name, records[name])))
            if not records[name].get("retired_at"):
                at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                records = {**records, name: {**records[name], "retired_at": at}}
                self._write(records)
                self._events.append(KeyEvent(Action.KEY_RETIRED, f"key:{chain}/{address}", {"name": name}))
                log.info("retired key %s", name)
            self._records = records
        return address

    def rotate_master(self, new: MasterKey, progress: Callable[[int, int], None] | None = None) -> int:
        """Re-wraps every record's data key under ``new``; returns how many.

        ``nonce`` and ``ct`` of every record stay as they are (no secret is re-encrypted).
        Nothing is written until every record is re-wrapped: ``keys.json`` is then replaced
        in one rename, so a failure or crash midway leaves the old file, under the old
        master, intact. ``progress(done, total)`` is called after each record. Other
        processes on this store must be stopped and restarted with the new master."""
        old = self._master
        with self._lock, self._file_lock():
            records = self._read()
            total, out = len(records), {}
            for done, name in enumerate(sorted(records), start=1):
                out[name] = rewrap(old, new, name, records[name])
                if progress is not None:
                    progress(done, total)
            self._write(out)
            self._records, self._master = out, new
            details = {"from": old.key_id, "to": new.key_id, "records": total}
            self._events.append(KeyEvent(Action.MASTER_KEY_ROTATED, "key:master", details))
        log.info("re-wrapped %d records under master key %s", total, new.key_id)
        return total

    def opens_all(self) -> bool:
        """Whether this store's master key opens every record (True for an empty store)."""
        records = self._read()
        if any(r.get("kek") != self._master.key_id for r in records.values()):
            return False
        try:
            for name, record in records.items():
                open_sealed(self._master, name, record)
        except PermanentError:
            return False
        return True

    def infos(self) -> list[KeyInfo]:
        """Every record by name, with its address and retirement (opens each record)."""
        rows = []
        for name, record in sorted(self._read().items()):
            kind, chain, index = parse_name(name)
            address = public_id(kind, self._open(name, record))
            rows.append(KeyInfo(name, kind, chain, index, address, record.get("retired_at")))
        return rows

    def drain_events(self) -> list[KeyEvent]:
        """The key events since the last call, oldest first (for the audit log)."""
        with self._lock:
            events, self._events = self._events, []
        return events

    # -- internals --------------------------------------------------------------------

    def _pool(self, kind: str, chain: str, count: int, generate: Callable[[], bytes]) -> list[bytes]:
        _checked(chain, "chain")
        chosen: list[tuple[str, dict]] = []
        with self._lock:
            index = 0
            while len(chosen) < count:
                if index > MAX_INDEX:
                    raise PermanentError(
                        f"{kind}/{chain} has no key left below index {MAX_INDEX}", code=ErrorCode.MISSING_KEY
                    )
                name = record_name(kind, chain, index)
                record = self._records.get(name) or self._load_or_create(name, generate)
                if not record.get("retired_at"):
                    chosen.append((name, record))
                index += 1
        return [self._open(name, record) for name, record in chosen]

    def _open(self, name: str, record: dict) -> bytes:
        secret = open_sealed(self._master, name, record)
        if len(secret) != 32:
            raise PermanentError(f"key {name!r} has the wrong length", code=ErrorCode.KEY_FORMAT)
        return secret

    def _load_or_create(self, name: str, generate: Callable[[], bytes]) -> dict:
        with self._file_lock():
            records = self._read()
            if name not in records:
                if not self._create_missing:
                    raise PermanentError(
                        f"key {name!r} does not exist and creation is disabled", code=ErrorCode.MISSING_KEY
                    )
                self._add(name, generate(), Action.KEY_CREATED, records)
            else:
                self._records = records
            return self._records[name]

    def _add(self, name: str, secret: bytes, action: Action, records: dict[str, dict]) -> None:
        """Seal ``secret`` as ``name`` and write it (the caller holds both locks)."""
        self._check_master(records)
        records = {**records, name: seal(self._master, name, secret)}
        self._write(records)
        self._records = records
        kind, _, index = parse_name(name)
        details = {"name": name, "kind": kind, "index": index, "kek": self._master.key_id}
        self._events.append(KeyEvent(action, key_subject(name, secret), details))
        log.info("%s key %s", "created" if action is Action.KEY_CREATED else "imported", name)

    def _check_master(self, records: dict[str, dict]) -> None:
        """Refuse to add a record under a master key that no longer opens the store (a
        process started before a rotation): the store would end up under two masters."""
        if not records:
            return
        name = min(records)
        try:
            open_sealed(self._master, name, records[name])
        except PermanentError:
            raise PermanentError(
                f"{self._path} is not under this process's master key {self._master.key_id!r} (rotated?); "
                "restart with the current master key",
                code=ErrorCode.KEY_INTEGRITY,
            ) from None

    def _file_lock(self) -> _FileLock:
        return _FileLock(self._dir / "keys.lock")

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


class _FileLock:
    """An exclusive ``flock`` on ``path`` for the ``with`` block. Not re-entrant: each
    entry opens the file anew, and a second flock in the same process would wait."""

    def __init__(self, path: pathlib.Path) -> None:
        self._path = path
        self._file: Any = None

    def __enter__(self) -> None:
        self._file = open(self._path, "a")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def _checked(value: str, field_name: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValidationFailed(field_name, "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
    return value
