import base64
import json
import logging
import pathlib
import stat
import threading

import pytest
from eth_account import Account
from eth_utils import is_checksum_address
from solders.keypair import Keypair

from tokenforge.errors import PermanentError, ValidationFailed
from tokenforge.keys.local import LocalKeyStore

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def encodings(secret: bytes) -> list[bytes]:
    """Every form a 32-byte secret (or the Solana 64-byte keypair built on it) could leak in."""
    forms = []
    for raw in (secret, bytes(Keypair.from_seed(secret))):
        forms += [
            raw,
            raw.hex().encode(),
            raw.hex().upper().encode(),
            base64.b64encode(raw),
            base64.urlsafe_b64encode(raw),
            base64.b64encode(raw).rstrip(b"="),
            b58encode(raw).encode(),
            repr(raw).encode(),
            json.dumps(list(raw)).encode(),
        ]
    forms += [secret[:16], secret[16:]]  # halves of the raw bytes
    return forms


def assert_no_material(blob: bytes | str, secrets: list[bytes], where: str) -> None:
    if isinstance(blob, str):
        blob = blob.encode()
    for secret in secrets:
        for form in encodings(secret):
            assert form not in blob, f"key material found in {where}"


@pytest.fixture
def paths(tmp_path):
    data_dir, key_dir = tmp_path / "data", tmp_path / "secrets"
    key_dir.mkdir()
    return data_dir, key_dir / "master.key"


def make(paths, **kw) -> LocalKeyStore:
    data_dir, keyfile = paths
    return LocalKeyStore(data_dir, master_keyfile=keyfile, **kw)


def all_keys(store: LocalKeyStore) -> list[bytes]:
    return [
        store.evm_deployer_key("ethereum"),
        store.evm_deployer_key("base"),
        store.solana_payer_key("solana-devnet"),
        store.platform_secret("solana-mint"),
    ]


def test_round_trip_and_distinct_keys(paths):
    store = make(paths)
    keys = all_keys(store)
    assert all(isinstance(k, bytes) and len(k) == 32 for k in keys)
    assert len(set(keys)) == len(keys)
    assert all_keys(store) == keys
    # same chain name under another kind is another key
    assert store.solana_payer_key("ethereum") != store.evm_deployer_key("ethereum")


def test_addresses_match_keys(paths):
    store = make(paths)
    address = store.evm_deployer_address("base")
    assert is_checksum_address(address)
    assert address == Account.from_key(store.evm_deployer_key("base")).address
    seed = store.solana_payer_key("solana")
    assert store.solana_payer_address("solana") == str(Keypair.from_seed(seed).pubkey())


def test_stable_across_restart(paths):
    keys = all_keys(make(paths))
    addresses = (make(paths).evm_deployer_address("ethereum"), make(paths).solana_payer_address("solana-devnet"))
    assert all_keys(make(paths)) == keys
    assert all_keys(make(paths, create_missing=False)) == keys
    assert addresses == (
        make(paths).evm_deployer_address("ethereum"),
        make(paths).solana_payer_address("solana-devnet"),
    )


def test_missing_key_without_create_names_the_key(paths):
    make(paths).evm_deployer_key("ethereum")
    store = make(paths, create_missing=False)
    with pytest.raises(PermanentError, match=r"evm_deployer/bsc"):
        store.evm_deployer_key("bsc")
    with pytest.raises(PermanentError, match=r"platform_secret/other"):
        store.platform_secret("other")


def test_missing_keyfile_without_create(paths):
    with pytest.raises(PermanentError):
        make(paths, create_missing=False)


def test_no_plaintext_at_rest(paths):
    data_dir, keyfile = paths
    store = make(paths)
    keys = all_keys(store)
    store.evm_deployer_address("base")
    store.solana_payer_address("solana-devnet")
    files = [p for d in (data_dir, keyfile.parent) for p in d.rglob("*") if p.is_file()]
    assert data_dir / "keys.json" in files and keyfile in files
    for path in files:
        assert_no_material(path.read_bytes(), keys, str(path))
    # the master key itself only lives in its keyfile
    master = keyfile.read_bytes()
    for path in files:
        if path != keyfile:
            assert_no_material(path.read_bytes(), [master], str(path))


def test_repr_and_str_have_no_key_material(paths):
    store = make(paths)
    keys = all_keys(store)
    text = repr(store) + str(store) + repr(store._master) + repr(vars(store))
    assert_no_material(text, [*keys, paths[1].read_bytes()], "repr")


def test_logs_have_no_key_material(paths, caplog):
    caplog.set_level(logging.DEBUG)
    store = make(paths)
    keys = all_keys(store)
    store.evm_deployer_address("ethereum")
    store.solana_payer_address("solana-devnet")
    assert "evm_deployer/ethereum" in caplog.text  # creation is logged, by name
    assert_no_material(caplog.text, keys, "logs")
    for record in caplog.records:
        assert_no_material(repr(record.args) + record.getMessage(), keys, "log record")


def _edit_records(data_dir: pathlib.Path, edit) -> None:
    path = data_dir / "keys.json"
    doc = json.loads(path.read_text())
    edit(doc["records"])
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("field", ["ct", "nonce", "wrapped_key"])
def test_tampered_store_fails_without_leaking(paths, field):
    keys = all_keys(make(paths))

    def flip(records):
        rec = records["evm_deployer/ethereum"]
        raw = bytearray(base64.b64decode(rec[field]))
        raw[-1] ^= 0x80
        rec[field] = base64.b64encode(bytes(raw)).decode()

    _edit_records(paths[0], flip)
    with pytest.raises(PermanentError) as info:
        make(paths).evm_deployer_key("ethereum")
    assert_no_material(str(info.value) + repr(info.value), keys, "error")
    assert make(paths).evm_deployer_key("base") == keys[1]  # other records unaffected


def test_swapped_records_fail(paths):
    keys = all_keys(make(paths))

    def swap(records):
        a, b = "evm_deployer/ethereum", "evm_deployer/base"
        records[a], records[b] = records[b], records[a]

    _edit_records(paths[0], swap)
    store = make(paths)
    for chain in ("ethereum", "base"):
        with pytest.raises(PermanentError) as info:
            store.evm_deployer_key(chain)
        assert_no_material(str(info.value), keys, "error")


def test_permissions_0600(paths):
    data_dir, keyfile = paths
    all_keys(make(paths))
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "keys.json").stat().st_mode) == 0o600
    assert not list(data_dir.glob(".*.tmp"))


def test_world_readable_keyfile_refused(paths):
    make(paths).evm_deployer_key("ethereum")
    paths[1].chmod(0o644)
    with pytest.raises(PermanentError, match="0644"):
        make(paths)


def test_bad_names_rejected(paths):
    store = make(paths)
    for bad in ("", "a/b", "x" * 65, "eth\n", "../up"):
        with pytest.raises(ValidationFailed):
            store.evm_deployer_key(bad)


def test_concurrent_first_use_yields_one_key(paths):
    store = make(paths)
    other = make(paths)  # a second instance on the same files, as another process would be
    results: list[bytes] = []
    barrier = threading.Barrier(16)

    def worker(i):
        barrier.wait()
        s = store if i % 2 else other
        results.append(s.evm_deployer_key("ethereum"))
        s.platform_secret(f"p{i}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    restarted = make(paths, create_missing=False)
    assert restarted.evm_deployer_key("ethereum") == results[0]
    for i in range(16):  # no write lost another instance's key
        restarted.platform_secret(f"p{i}")


def test_evm_key_generation_skips_invalid_scalars(monkeypatch):
    from tokenforge.keys import local

    n = local._SECP256K1_N.to_bytes(32, "big")
    valid = (1).to_bytes(32, "big")
    draws = iter([bytes(32), n, b"\xff" * 32, valid])
    monkeypatch.setattr(local.secrets, "token_bytes", lambda size: next(draws))
    assert local._new_secp256k1_key() == valid
