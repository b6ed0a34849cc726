"""Master-key rotation on the local backend: same keys, new master, never half done."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from solders.keypair import Keypair

from tokenforge.audit.actions import Action
from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, PermanentError
from tokenforge.keys import rotation as rotation_module
from tokenforge.keys.envelope import LocalMasterKey
from tokenforge.keys.local import LocalKeyStore
from tokenforge.keys.rotation import rotate_to_keyfile, staged_keyfile


def _fill(data_dir) -> tuple[list[str], str, bytes]:
    store = LocalKeyStore(data_dir)
    evm = [Account.from_key(k).address for k in store.evm_deployer_keys("ethereum", 3)]
    payer = str(Keypair.from_seed(store.solana_payer_key("solana")).pubkey())
    return evm, payer, store.platform_secret("solana-mint")


def _state(store: LocalKeyStore) -> tuple[list[str], str, bytes]:
    evm = [Account.from_key(k).address for k in store.evm_deployer_keys("ethereum", 3)]
    return evm, str(Keypair.from_seed(store.solana_payer_key("solana")).pubkey()), store.platform_secret("solana-mint")


def _records(data_dir) -> dict:
    return json.loads((data_dir / "keys.json").read_text())["records"]


def test_in_place_rotation_keeps_addresses_and_locks_out_the_old_master(tmp_path):
    before = _fill(tmp_path)
    sealed = {n: (r["ct"], r["nonce"]) for n, r in _records(tmp_path).items()}
    old = LocalMasterKey.from_keyfile(tmp_path / "master.key", create=False)
    old_bytes = (tmp_path / "master.key").read_bytes()
    seen: list[tuple[int, int]] = []

    result = rotate_to_keyfile(Settings(data_dir=tmp_path), progress=lambda d, t: seen.append((d, t)))

    assert result.records == 5 and result.installed and result.keyfile == tmp_path / "master.key"
    assert seen == [(i, 5) for i in range(1, 6)]
    assert (tmp_path / "master.key").read_bytes() != old_bytes
    assert not staged_keyfile(tmp_path / "master.key").exists()
    assert {n: (r["ct"], r["nonce"]) for n, r in _records(tmp_path).items()} == sealed
    assert _state(LocalKeyStore(tmp_path, create_missing=False)) == before
    with pytest.raises(PermanentError) as info:
        LocalKeyStore(tmp_path, master_key=old, create_missing=False).evm_deployer_key("ethereum")
    assert info.value.code is ErrorCode.KEY_INTEGRITY
    events = result.store.drain_events()
    assert [e.action for e in events] == [Action.MASTER_KEY_ROTATED]
    assert events[0].details == {"from": "local", "to": "local", "records": 5}


def test_a_process_holding_the_old_master_cannot_add_keys_after_rotation(tmp_path):
    _fill(tmp_path)
    running = LocalKeyStore(tmp_path)  # started before the rotation
    rotate_to_keyfile(Settings(data_dir=tmp_path))
    with pytest.raises(PermanentError, match="restart"):
        running.evm_deployer_keys("base", 1)
    assert _state(LocalKeyStore(tmp_path, create_missing=False))[0]  # the store is intact


def test_failure_midway_leaves_the_old_file_and_master(tmp_path, monkeypatch):
    before = _fill(tmp_path)
    keys_json = (tmp_path / "keys.json").read_bytes()
    keyfile = (tmp_path / "master.key").read_bytes()
    calls = {"n": 0}
    real_wrap = LocalMasterKey.wrap

    def flaky_wrap(self, data_key, aad):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk gone")
        return real_wrap(self, data_key, aad)

    monkeypatch.setattr(LocalMasterKey, "wrap", flaky_wrap)
    with pytest.raises(OSError, match="disk gone"):
        rotate_to_keyfile(Settings(data_dir=tmp_path))
    monkeypatch.undo()
    assert (tmp_path / "keys.json").read_bytes() == keys_json
    assert (tmp_path / "master.key").read_bytes() == keyfile
    assert not list(tmp_path.glob(".keys.json.*.tmp"))
    assert _state(LocalKeyStore(tmp_path, create_missing=False)) == before
    # the staged key is reused by the next run, which completes
    assert rotate_to_keyfile(Settings(data_dir=tmp_path)).records == 5
    assert _state(LocalKeyStore(tmp_path, create_missing=False)) == before


def test_crash_before_installing_the_keyfile_is_finished_by_running_it_again(tmp_path, monkeypatch):
    before = _fill(tmp_path)

    def crash(staged, current):
        raise KeyboardInterrupt  # killed between replacing keys.json and the keyfile

    monkeypatch.setattr(rotation_module, "_install", crash)
    with pytest.raises(KeyboardInterrupt):
        rotate_to_keyfile(Settings(data_dir=tmp_path))
    monkeypatch.undo()
    staged = staged_keyfile(tmp_path / "master.key")
    assert staged.exists()
    assert _state(LocalKeyStore(tmp_path, master_keyfile=staged, create_missing=False)) == before

    again = rotate_to_keyfile(Settings(data_dir=tmp_path))
    assert again.records == 0 and again.installed and not staged.exists()
    assert _state(LocalKeyStore(tmp_path, create_missing=False)) == before


def test_rotation_to_a_new_keyfile_leaves_the_old_one_for_the_operator(tmp_path):
    before = _fill(tmp_path)
    target = tmp_path / "elsewhere" / "master.key"
    result = rotate_to_keyfile(Settings(data_dir=tmp_path), target)
    assert not result.installed and result.keyfile == target and target.stat().st_mode & 0o077 == 0
    assert _state(LocalKeyStore(tmp_path, master_keyfile=target, create_missing=False)) == before
    other = tmp_path / "other.key"
    LocalMasterKey.from_keyfile(other)
    with pytest.raises(PermanentError, match="already holds"):
        rotate_to_keyfile(Settings(data_dir=tmp_path, master_keyfile=target), other)


def test_rotation_from_a_master_key_in_the_environment(tmp_path):
    import base64
    import secrets

    secret = secrets.token_bytes(32)
    settings = Settings(data_dir=tmp_path, master_key=base64.b64encode(secret).decode())
    store = LocalKeyStore(tmp_path, master_key=LocalMasterKey(secret))
    address = store.evm_deployer_address("ethereum")
    with pytest.raises(PermanentError, match="--new-keyfile"):
        rotate_to_keyfile(settings)
    result = rotate_to_keyfile(settings, tmp_path / "new.key")
    assert LocalKeyStore(tmp_path, master_keyfile=result.keyfile).evm_deployer_address("ethereum") == address
    assert not (tmp_path / "master.key").exists()


def test_tampered_record_stops_rotation_before_anything_is_written(tmp_path):
    import base64

    _fill(tmp_path)
    doc = json.loads((tmp_path / "keys.json").read_text())
    rec = doc["records"]["solana_payer/solana"]
    raw = bytearray(base64.b64decode(rec["ct"]))
    raw[0] ^= 1
    rec["ct"] = base64.b64encode(bytes(raw)).decode()
    (tmp_path / "keys.json").write_text(json.dumps(doc))
    tampered = (tmp_path / "keys.json").read_bytes()
    with pytest.raises(PermanentError) as info:
        rotate_to_keyfile(Settings(data_dir=tmp_path))
    assert info.value.code is ErrorCode.KEY_INTEGRITY and "solana_payer/solana" in info.value.message
    assert (tmp_path / "keys.json").read_bytes() == tampered
