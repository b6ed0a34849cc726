"""Args encoding, salt rule and CREATE2 prediction for EVM launches (no chain needed)."""

from __future__ import annotations

import pytest
from eth_utils import keccak, to_checksum_address

from tokenforge.chains.evm import codec
from tokenforge.errors import PermanentError, ValidationFailed

IMPL = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
FACTORY = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
JOB = "0123456789abcdef0123456789abcdef"


def test_args_layout_is_decimals_namelen_name_symbol():
    args = codec.encode_token_args("Pepe", "PEPE", 18)
    assert args == bytes([18, 4]) + b"Pepe" + b"PEPE"
    assert codec.decode_token_args(args) == ("Pepe", "PEPE", 18)


def test_args_name_is_utf8_and_length_counts_bytes():
    name = "ünï🚀" * 8  # 32 characters: 2 + 1 + 2 + 4 bytes each group
    args = codec.encode_token_args(name, "A1", 6)
    assert args[1] == len(name.encode("utf-8")) == 8 * 9
    assert codec.decode_token_args(args) == (name, "A1", 6)
    widest = "🚀" * 32  # the longest name: 128 bytes still fits the uint8 length
    assert codec.encode_token_args(widest, "A", 0)[1] == 128


@pytest.mark.parametrize(
    ("name", "symbol", "decimals", "field"),
    [
        ("", "ABC", 18, "name"),
        ("x" * 33, "ABC", 18, "name"),
        (" padded", "ABC", 18, "name"),
        ("Ok", "", 18, "symbol"),
        ("Ok", "abc", 18, "symbol"),
        ("Ok", "ABCDEFGHIJK", 18, "symbol"),
        ("Ok", "AB-C", 18, "symbol"),
        ("Ok", "ABC", 19, "decimals"),
        ("Ok", "ABC", -1, "decimals"),
        ("Ok", "ABC", True, "decimals"),
    ],
)
def test_args_validation_names_the_field(name, symbol, decimals, field):
    with pytest.raises(ValidationFailed) as info:
        codec.encode_token_args(name, symbol, decimals)
    assert info.value.field == field
    assert isinstance(info.value, PermanentError)


def test_salt_is_keccak_of_raw_job_id_bytes():
    assert codec.launch_salt(JOB) == keccak(bytes.fromhex(JOB))
    assert codec.launch_salt(JOB) != keccak(text=JOB)


@pytest.mark.parametrize("job_id", ["", "0123", JOB.upper(), JOB + "00", "g" * 32, None])
def test_salt_rejects_malformed_job_ids(job_id):
    with pytest.raises(ValidationFailed):
        codec.launch_salt(job_id)


@pytest.mark.parametrize(
    ("deployer", "salt", "init_code", "expected"),
    [  # EIP-1014 examples
        ("0x0000000000000000000000000000000000000000", "00" * 32, "00", "0x4D1A2e2bB4F88F0250f26Ffff098B0b30B26BF38"),
        (
            "0xdeadbeef00000000000000000000000000000000",
            "000000000000000000000000feed000000000000000000000000000000000000",
            "00",
            "0xD04116cDd17beBE565EB2422F2497E06cC1C9833",
        ),
        (
            "0x00000000000000000000000000000000deadbeef",
            "00000000000000000000000000000000000000000000000000000000cafebabe",
            "deadbeef",
            "0x60f3f640a8508fC6a86d45DF051962668E1e8AC7",
        ),
    ],
)
def test_create2_matches_eip1014_vectors(deployer, salt, init_code, expected):
    assert codec.create2_address(deployer, bytes.fromhex(salt), bytes.fromhex(init_code)) == expected


def test_create_address_matches_known_vector():
    # the first contract deployed by Hardhat's default account 0
    assert codec.create_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", 0) == IMPL


def test_clone_init_code_deploys_exactly_the_runtime_code():
    args = codec.encode_token_args("Token", "TKN", 18)
    init = codec.clone_init_code(IMPL, args)
    runtime = codec.clone_runtime_code(IMPL, args)
    assert len(runtime) == codec.CLONE_CODE_LEN + len(args)
    # PUSH2 <len>, RETURNDATASIZE, DUP2, PUSH1 0x0a, RETURNDATASIZE, CODECOPY, RETURN, then the runtime
    assert init[:1] == b"\x61" and int.from_bytes(init[1:3], "big") == len(runtime)
    assert init[3:10] == bytes.fromhex("3d81600a3d39f3")
    assert init[10:] == runtime


TERMS = codec.LaunchTerms(IMPL, 10**27)


def test_prediction_depends_on_job_args_terms_and_factory():
    args = codec.encode_token_args("Token", "TKN", 18)
    a = codec.predict_token_address(FACTORY, IMPL, JOB, args, TERMS)
    assert a == to_checksum_address(a)
    assert a == codec.predict_token_address(FACTORY, IMPL, JOB, args, TERMS)  # deterministic
    assert a != codec.predict_token_address(FACTORY, IMPL, "f" * 32, args, TERMS)
    assert a != codec.predict_token_address(FACTORY, IMPL, JOB, codec.encode_token_args("Token", "TKN", 6), TERMS)
    assert a != codec.predict_token_address(IMPL, IMPL, JOB, args, TERMS)
    # a copy of the launch with other terms (creator, supply, launch fee) gets another address
    for other in (
        codec.LaunchTerms(FACTORY, 10**27),
        codec.LaunchTerms(IMPL, 10**27 + 1),
        codec.LaunchTerms(IMPL, 10**27, 5000, 10),
        codec.LaunchTerms(IMPL, 10**27, 5000, 10, True),
    ):
        assert a != codec.predict_token_address(FACTORY, IMPL, JOB, args, other)


def test_create_token_calldata_round_trips():
    from eth_abi import decode

    args = codec.encode_token_args("Token", "TKN", 18)
    salt = codec.launch_salt(JOB)
    types = ["bytes32", "bytes", "address", "uint256", "uint16", "uint32", "bool"]
    data = codec.encode_create_token(salt, args, IMPL, 10**27)
    assert data[:4] == keccak(text="createToken(bytes32,bytes,address,uint256,uint16,uint32,bool)")[:4]
    assert decode(types, data[4:]) == (salt, args, IMPL.lower(), 10**27, 0, 0, False)
    fee = codec.encode_create_token(
        salt, args, IMPL, 10**27, launch_fee_bps=5000, launch_window=10, window_in_blocks=True
    )
    assert decode(types, fee[4:]) == (salt, args, IMPL.lower(), 10**27, 5000, 10, True)


@pytest.mark.parametrize(
    ("creator", "supply", "field"),
    [
        ("0x" + "00" * 20, 1, "creator"),
        ("not-an-address", 1, "creator"),
        (IMPL, 0, "supply_base_units"),
        (IMPL, 2**256, "supply_base_units"),
    ],
)
def test_create_token_calldata_validation(creator, supply, field):
    with pytest.raises(ValidationFailed) as info:
        codec.encode_create_token(b"\x00" * 32, b"\x12\x01AB", creator, supply)
    assert info.value.field == field
