"""The AWS KMS master key against moto's server mode (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from eth_account import Account

from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, PermanentError, TransientError
from tokenforge.keys.envelope import LocalMasterKey, open_sealed, seal
from tokenforge.keys.kms import AwsKmsMasterKey, encryption_context
from tokenforge.keys.local import LocalKeyStore
from tokenforge.keys.master import open_master_key
from tokenforge.keys.rotation import rotate_to_keyfile, rotate_to_kms

REGION = "us-east-1"

SECRET = bytes(range(1, 33))


@pytest.fixture
def kms(kms_endpoint, new_kms_key):
    return AwsKmsMasterKey(new_kms_key(), REGION, kms_endpoint)


def test_seal_open_round_trip_writes_the_key_id(kms):
    record = seal(kms, "evm_deployer/base", SECRET)
    assert record["kek"] == kms.key_id and kms.key_id.startswith("arn:aws:kms:")
    assert open_sealed(kms, "evm_deployer/base", record) == SECRET
    assert SECRET not in json.dumps(record).encode() and SECRET.hex() not in json.dumps(record)


def test_encryption_context_names_the_record():
    assert encryption_context(b"tokenforge/sealed/v1\x00evm_deployer/base") == {
        "tokenforge": "sealed/v1",
        "record": "evm_deployer/base",
    }


@pytest.mark.parametrize("field", ["wrapped_key", "ct"])
def test_tampered_record_refused(kms, field):
    record = seal(kms, "solana_payer/solana", SECRET)
    raw = bytearray(base64.b64decode(record[field]))
    raw[len(raw) // 2] ^= 0x01
    record[field] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(PermanentError) as info:
        open_sealed(kms, "solana_payer/solana", record)
    assert info.value.code is ErrorCode.KEY_INTEGRITY


def test_record_moved_to_another_name_refused_by_kms(kms):
    record = seal(kms, "evm_deployer/base", SECRET)
    with pytest.raises(PermanentError) as info:
        open_sealed(kms, "evm_deployer/ethereum", record)  # KMS sees another encryption context
    assert info.value.code is ErrorCode.KEY_INTEGRITY


def test_record_under_one_kms_key_does_not_open_under_another(kms, kms_endpoint, new_kms_key):
    other = AwsKmsMasterKey(new_kms_key(), REGION, kms_endpoint)
    record = seal(kms, "platform_secret/solana-mint", SECRET)
    with pytest.raises(PermanentError):
        open_sealed(other, "platform_secret/solana-mint", record)  # kek names the first key
    disguised = dict(record, kek=other.key_id)
    with pytest.raises(PermanentError) as info:
        open_sealed(other, "platform_secret/solana-mint", disguised)
    assert info.value.code in (ErrorCode.KEY_INTEGRITY, ErrorCode.KMS_REFUSED)


def test_unreachable_kms_is_transient(aws_env):
    from tests.support.server import free_port

    kms = AwsKmsMasterKey("alias/none", REGION, f"http://127.0.0.1:{free_port()}", max_attempts=1)
    with pytest.raises(TransientError) as info:
        kms.new_data_key(b"tokenforge/sealed/v1\x00x")
    assert info.value.code is ErrorCode.KMS_UNAVAILABLE


def test_missing_key_is_refused_permanently(kms_endpoint, aws_env):
    kms = AwsKmsMasterKey(
        "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000", REGION, kms_endpoint
    )
    with pytest.raises(PermanentError) as info:
        kms.new_data_key(b"tokenforge/sealed/v1\x00x")
    assert info.value.code is ErrorCode.KMS_REFUSED


def test_kms_calls_log_no_data_key_at_debug(kms, caplog):
    caplog.set_level(logging.DEBUG)
    data_key, wrapped = kms.new_data_key(b"tokenforge/sealed/v1\x00n")
    assert kms.unwrap(wrapped, b"tokenforge/sealed/v1\x00n") == data_key
    text = caplog.text.encode()
    for form in (
        data_key,
        data_key.hex().encode(),
        base64.b64encode(data_key),
        base64.b64encode(data_key).rstrip(b"="),
    ):
        assert form not in text


def test_keystore_on_kms_from_settings_holds_the_platform_secret(tmp_path, kms_endpoint, new_kms_key):
    settings = Settings(
        data_dir=tmp_path,
        key_backend="aws-kms",
        kms_key_id=new_kms_key(),
        kms_region=REGION,
        kms_endpoint_url=kms_endpoint,
    )
    master = open_master_key(settings)
    store = LocalKeyStore(tmp_path, master_key=master)
    secret, payer = store.platform_secret("solana-mint"), store.solana_payer_key("solana")
    doc = json.loads((tmp_path / "keys.json").read_text())
    assert {r["kek"] for r in doc["records"].values()} == {settings.kms_key_id}
    again = LocalKeyStore(tmp_path, master_key=open_master_key(settings), create_missing=False)
    assert (again.platform_secret("solana-mint"), again.solana_payer_key("solana")) == (secret, payer)
    assert not (tmp_path / "master.key").exists()  # no local keyfile with KMS


def test_rotate_local_to_kms_and_back_keeps_every_key(tmp_path, kms_endpoint, new_kms_key):
    settings = Settings(data_dir=tmp_path, kms_region=REGION, kms_endpoint_url=kms_endpoint)
    store = LocalKeyStore(tmp_path)
    before = (
        store.evm_deployer_keys("ethereum", 3),
        store.solana_payer_key("solana"),
        store.platform_secret("solana-mint"),
    )
    cts = {n: (r["ct"], r["nonce"]) for n, r in json.loads((tmp_path / "keys.json").read_text())["records"].items()}
    old_local = LocalMasterKey.from_keyfile(tmp_path / "master.key", create=False)

    key_id = new_kms_key()
    rotation = rotate_to_kms(settings, key_id)
    assert rotation.records == 5 and rotation.new_kek == key_id and not rotation.installed
    on_kms = Settings(
        data_dir=tmp_path, key_backend="aws-kms", kms_key_id=key_id, kms_region=REGION, kms_endpoint_url=kms_endpoint
    )
    kms_store = LocalKeyStore(tmp_path, master_key=open_master_key(on_kms), create_missing=False)
    after = (
        kms_store.evm_deployer_keys("ethereum", 3),
        kms_store.solana_payer_key("solana"),
        kms_store.platform_secret("solana-mint"),
    )
    assert after == before
    records = json.loads((tmp_path / "keys.json").read_text())["records"]
    assert {n: (r["ct"], r["nonce"]) for n, r in records.items()} == cts  # no secret re-encrypted
    with pytest.raises(PermanentError):
        LocalKeyStore(tmp_path, master_key=old_local, create_missing=False).evm_deployer_key("ethereum")

    back = rotate_to_keyfile(on_kms, tmp_path / "secrets" / "new.key")
    assert back.records == 5 and back.new_kek == "local" and back.keyfile == tmp_path / "secrets" / "new.key"
    local_again = LocalKeyStore(tmp_path, master_keyfile=back.keyfile, create_missing=False)
    assert [Account.from_key(k).address for k in local_again.evm_deployer_keys("ethereum", 3)] == [
        Account.from_key(k).address for k in before[0]
    ]
    assert local_again.platform_secret("solana-mint") == before[2]
    # running it again finds the work done
    assert rotate_to_keyfile(on_kms, back.keyfile).records == 0
