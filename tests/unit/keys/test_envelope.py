import base64
import json
import os
import stat

import pytest

from tokenforge.errors import PermanentError
from tokenforge.keys.envelope import FORMAT_VERSION, LocalMasterKey, open_sealed, seal

SECRET = bytes(range(100, 132))


@pytest.fixture
def master() -> LocalMasterKey:
    return LocalMasterKey(os.urandom(32))


def _flip(b64: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_round_trip(master):
    record = seal(master, "evm_deployer/base", SECRET)
    assert open_sealed(master, "evm_deployer/base", record) == SECRET


def test_record_is_versioned_json_with_base64_fields_and_fresh_randomness(master):
    a = seal(master, "n", SECRET)
    b = seal(master, "n", SECRET)
    assert json.loads(json.dumps(a)) == a
    assert a["v"] == FORMAT_VERSION and a["alg"] == "AES-256-GCM" and a["kek"] == "local"
    assert len(base64.b64decode(a["nonce"], validate=True)) == 12
    for field in ("nonce", "ct", "wrapped_key"):
        assert a[field] != b[field]  # fresh data key and nonce per seal
    assert SECRET not in json.dumps(a).encode()
    assert SECRET.hex() not in json.dumps(a)


@pytest.mark.parametrize("field", ["ct", "nonce", "wrapped_key"])
@pytest.mark.parametrize("index", [0, -1])
def test_tampering_fails(master, field, index):
    record = seal(master, "n", SECRET)
    record[field] = _flip(record[field], index)
    with pytest.raises(PermanentError) as info:
        open_sealed(master, "n", record)
    assert SECRET.hex() not in str(info.value)


def test_record_bound_to_its_name(master):
    a = seal(master, "evm_deployer/a", SECRET)
    b = seal(master, "evm_deployer/b", os.urandom(32))
    with pytest.raises(PermanentError):
        open_sealed(master, "evm_deployer/b", a)
    with pytest.raises(PermanentError):
        open_sealed(master, "evm_deployer/a", b)
    # the wrapped data key alone is also bound: graft b's ciphertext under a's wrapped key
    mixed = dict(a, ct=b["ct"], nonce=b["nonce"])
    with pytest.raises(PermanentError):
        open_sealed(master, "evm_deployer/a", mixed)


def test_wrong_master_key_fails(master):
    record = seal(master, "n", SECRET)
    with pytest.raises(PermanentError):
        open_sealed(LocalMasterKey(os.urandom(32)), "n", record)


@pytest.mark.parametrize(
    "change",
    [{"v": 2}, {"alg": "AES-128-CBC"}, {"kek": "aws-kms:arn"}, {"ct": "not base64!"}, {"nonce": None}],
)
def test_malformed_records_fail(master, change):
    record = dict(seal(master, "n", SECRET), **change)
    with pytest.raises(PermanentError):
        open_sealed(master, "n", record)


def test_repr_has_no_key_material():
    key = os.urandom(32)
    text = repr(LocalMasterKey(key)) + str(LocalMasterKey(key))
    assert key.hex() not in text and base64.b64encode(key).decode() not in text
    assert "key_id" in repr(LocalMasterKey(key))


def test_keyfile_created_0600_and_reloaded(tmp_path):
    path = tmp_path / "secrets" / "master.key"
    old_umask = os.umask(0)
    try:
        first = LocalMasterKey.from_keyfile(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temp file left
    record = seal(first, "n", SECRET)
    assert open_sealed(LocalMasterKey.from_keyfile(path), "n", record) == SECRET


def test_existing_keyfile_is_not_replaced(tmp_path):
    path = tmp_path / "master.key"
    LocalMasterKey.from_keyfile(path)
    before = path.read_bytes()
    LocalMasterKey.from_keyfile(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_accessible_keyfile_refused(tmp_path, mode):
    path = tmp_path / "master.key"
    LocalMasterKey.from_keyfile(path)
    key = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(PermanentError) as info:
        LocalMasterKey.from_keyfile(path)
    message = str(info.value)
    assert "chmod 600" in message and f"{mode:o}" in message
    assert key.hex() not in message and base64.b64encode(key).decode() not in message
    assert repr(key) not in message


def test_missing_keyfile_without_create(tmp_path):
    with pytest.raises(PermanentError):
        LocalMasterKey.from_keyfile(tmp_path / "absent.key", create=False)
    assert not (tmp_path / "absent.key").exists()


def test_wrong_length_keyfile_refused(tmp_path):
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    path.chmod(0o600)
    with pytest.raises(PermanentError, match="32 bytes"):
        LocalMasterKey.from_keyfile(path)
