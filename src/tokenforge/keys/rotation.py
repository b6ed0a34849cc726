"""Master-key rotation: every record's data key re-wrapped under a new master key.

No secret is re-encrypted (``nonce`` and ``ct`` stay; deployer keys, payer seeds and the
platform secret are the same keys afterwards, at the same addresses). ``keys.json`` is
replaced in one rename once every record is re-wrapped
(:meth:`~tokenforge.keys.local.LocalKeyStore.rotate_master`).

Where the new master goes:

* **Local keyfile in place** (``key_backend=local`` from a keyfile, no ``--new-keyfile`` or
  the same path): the new key is staged next to the keyfile as ``<keyfile>.new`` (0600),
  the records are re-wrapped, then the staged file is renamed over the keyfile. The old key
  is gone. A crash before the rename leaves the staged key; running the command again
  finds that the records open under it and only does the rename (or, if the crash came
  before ``keys.json`` was replaced, re-wraps onto the staged key).
* **Another local keyfile** (``--new-keyfile PATH``, or the current master comes from
  ``TOKENFORGE_MASTER_KEY`` or KMS): a new key is created at ``PATH``, which must not
  exist yet unless the records already open under it (a finished rotation: nothing to do);
  the operator then points ``TOKENFORGE_MASTER_KEYFILE`` at it.
* **AWS KMS** (``--kms-key-id ID``): the records are wrapped by KMS key ``ID``; the
  operator then sets ``TOKENFORGE_KEY_BACKEND=aws-kms`` and ``TOKENFORGE_KMS_KEY_ID``.

Every process using the store must be stopped before and restarted after: one holding
the old master refuses to add keys to the rotated store (``key_integrity``).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, PermanentError
from tokenforge.keys.envelope import LocalMasterKey, MasterKey
from tokenforge.keys.local import LocalKeyStore
from tokenforge.keys.master import master_keyfile, open_master_key

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation did: ``records`` re-wrapped (0 when already done), from master
    ``old_kek`` to ``new_kek``; ``keyfile`` holds a new local master key; ``installed``:
    the configured settings already name the new master (nothing left to configure)."""

    records: int
    old_kek: str
    new_kek: str
    keyfile: pathlib.Path | None
    installed: bool
    store: LocalKeyStore


def staged_keyfile(keyfile: pathlib.Path) -> pathlib.Path:
    return keyfile.with_name(keyfile.name + ".new")


def _in_place(settings: Settings, new_keyfile: pathlib.Path | None) -> bool:
    if settings.key_backend != "local" or settings.master_key is not None:
        return False
    return new_keyfile is None or new_keyfile.resolve() == master_keyfile(settings).resolve()


def _rotate(settings: Settings, new: MasterKey, progress: Progress | None) -> tuple[int, str, LocalKeyStore]:
    """Re-wrap onto ``new`` unless the records already open under it."""
    done = LocalKeyStore(settings.data_dir, master_key=new, create_missing=False)
    old = open_master_key(settings, create=False)
    if done.opens_all() and (old.key_id != new.key_id or not _store(settings, old).opens_all()):
        return 0, old.key_id, done  # a rotation that had finished re-wrapping
    store = _store(settings, old)
    count = store.rotate_master(new, progress)
    return count, old.key_id, store


def _store(settings: Settings, master: MasterKey) -> LocalKeyStore:
    return LocalKeyStore(settings.data_dir, master_key=master, create_missing=False)


def rotate_to_keyfile(
    settings: Settings, new_keyfile: pathlib.Path | None = None, progress: Progress | None = None
) -> Rotation:
    """Rotate onto a new local keyfile (in place, or at ``new_keyfile``; module docstring)."""
    if _in_place(settings, new_keyfile):
        current = master_keyfile(settings)
        staged = staged_keyfile(current)
        new = LocalMasterKey.from_keyfile(staged, create=True)  # reused after a crash
        count, old_kek, store = _rotate(settings, new, progress)
        _install(staged, current)
        return Rotation(count, old_kek, new.key_id, current, True, store)
    if new_keyfile is None:
        raise PermanentError(
            "the master key does not come from a keyfile here: name the new one with --new-keyfile",
            code=ErrorCode.MISSING_MASTER_KEY,
        )
    existed = new_keyfile.exists()
    new = LocalMasterKey.from_keyfile(new_keyfile, create=True)
    if existed and not LocalKeyStore(settings.data_dir, master_key=new, create_missing=False).opens_all():
        raise PermanentError(
            f"{new_keyfile} already holds another key; name a file that does not exist", code=ErrorCode.KEY_EXISTS
        )
    count, old_kek, store = _rotate(settings, new, progress)
    return Rotation(count, old_kek, new.key_id, new_keyfile, False, store)


def rotate_to_kms(
    settings: Settings, key_id: str, progress: Progress | None = None, *, region: str | None = None
) -> Rotation:
    """Rotate onto KMS key ``key_id`` (region and endpoint from ``settings``)."""
    from tokenforge.keys.kms import AwsKmsMasterKey

    new = AwsKmsMasterKey(key_id, region or settings.kms_region, settings.kms_endpoint_url)
    count, old_kek, store = _rotate(settings, new, progress)
    installed = settings.key_backend == "aws-kms" and settings.kms_key_id == key_id
    return Rotation(count, old_kek, new.key_id, None, installed, store)


def _install(staged: pathlib.Path, current: pathlib.Path) -> None:
    """Rename the staged keyfile over the current one and make the rename durable."""
    os.replace(staged, current)
    dir_fd = os.open(current.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
