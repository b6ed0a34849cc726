import struct

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import Transaction
from spl.token.instructions import create_idempotent_associated_token_account, decode_mint_to_checked

from tokenforge.chains.solana import instructions as ix
from tokenforge.errors import ValidationFailed

MINT = Pubkey.from_string("9ABiJtMXMuQnDUJNmjXYzSrErqBtNtwbRRgT8cHJsnVP")
PAYER = Pubkey.from_string("3FXP3SmrfFX7UuADeLYSF6AoTXrySqo3vZSv52okZeQx")
OWNER = Pubkey.from_string("CmpNeggWJ4JaWJeJ8YKN1Zypmk7uvQq3PECGUCAEMbky")


def test_token_metadata_discriminator():
    assert bytes([210, 225, 30, 162, 88, 184, 77, 141]) == ix.TOKEN_METADATA_INITIALIZE_DISCRIMINATOR


def test_initialize_metadata_pointer_layout():
    i = ix.initialize_metadata_pointer(MINT, authority=None, metadata_address=MINT)
    assert i.program_id == ix.TOKEN_2022_PROGRAM_ID
    assert bytes(i.data) == bytes([39, 0]) + bytes(32) + bytes(MINT)
    assert [(a.pubkey, a.is_signer, a.is_writable) for a in i.accounts] == [(MINT, False, True)]
    with_auth = ix.initialize_metadata_pointer(MINT, authority=PAYER, metadata_address=MINT)
    assert bytes(with_auth.data)[2:34] == bytes(PAYER)


def test_initialize_mint2_layout():
    i = ix.initialize_mint2(MINT, 6, PAYER, None)
    assert bytes(i.data) == bytes([20, 6]) + bytes(PAYER) + b"\x00"
    assert bytes(ix.initialize_mint2(MINT, 9, PAYER, OWNER).data) == bytes([20, 9]) + bytes(PAYER) + b"\x01" + bytes(
        OWNER
    )
    assert [(a.pubkey, a.is_writable) for a in i.accounts] == [(MINT, True)]


def test_initialize_token_metadata_layout():
    i = ix.initialize_token_metadata(MINT, PAYER, MINT, PAYER, "Näme", "SYM", "https://u")
    data = bytes(i.data)
    expected = (
        ix.TOKEN_METADATA_INITIALIZE_DISCRIMINATOR
        + struct.pack("<I", 5)
        + "Näme".encode()
        + struct.pack("<I", 3)
        + b"SYM"
        + struct.pack("<I", 9)
        + b"https://u"
    )
    assert data == expected
    assert [(a.pubkey, a.is_signer, a.is_writable) for a in i.accounts] == [
        (MINT, False, True),
        (PAYER, False, False),
        (MINT, False, False),
        (PAYER, True, False),
    ]


def test_ata_matches_solana_py():
    mine = ix.create_associated_token_account_idempotent(PAYER, OWNER, MINT)
    theirs = create_idempotent_associated_token_account(PAYER, OWNER, MINT, ix.TOKEN_2022_PROGRAM_ID)
    assert mine == theirs


def test_mint_to_checked_matches_solana_py_decoder():
    i = ix.mint_to_checked(MINT, OWNER, PAYER, 123_456_789_000, 6)
    decoded = decode_mint_to_checked(i)
    assert (decoded.amount, decoded.decimals, decoded.mint, decoded.dest, decoded.mint_authority) == (
        123_456_789_000,
        6,
        MINT,
        OWNER,
        PAYER,
    )
    assert bytes(i.data) == bytes([14]) + (123_456_789_000).to_bytes(8, "little") + bytes([6])


def test_set_authority_revoke_layout():
    i = ix.set_authority(MINT, PAYER, ix.AUTHORITY_MINT_TOKENS, None)
    assert bytes(i.data) == bytes([6, 0, 0])
    assert [(a.pubkey, a.is_signer, a.is_writable) for a in i.accounts] == [(MINT, False, True), (PAYER, True, False)]


def test_sizes():
    assert ix.MINT_WITH_POINTER_LEN == 234
    # 234 + TLV header 4 + (32 + 32 + 4+4 + 4+3 + 4+9 + 4)
    assert ix.mint_account_final_len("Näme", "SYM", "https://u") == 234 + 4 + 32 + 32 + 9 + 7 + 13 + 4


def _params(**overrides):
    values = dict(
        name="Token",
        symbol="TOK",
        uri="https://example.com/t.json",
        decimals=6,
        supply_base_units=10**15,
        creator=str(OWNER),
    )
    values.update(overrides)
    return ix.LaunchParams.create(**values)


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("name", {"name": ""}),
        ("name", {"name": "x" * 33}),
        ("name", {"name": " padded"}),
        ("symbol", {"symbol": "abc"}),
        ("symbol", {"symbol": "A" * 11}),
        ("symbol", {"symbol": ""}),
        ("metadata_uri", {"uri": "h" * 201}),
        ("metadata_uri", {"uri": "https://ex.com/ä"}),
        ("metadata_uri", {"uri": "https://ex.com/a b"}),
        ("decimals", {"decimals": -1}),
        ("decimals", {"decimals": 256}),
        ("decimals", {"decimals": True}),
        ("supply", {"supply_base_units": 0}),
        ("supply", {"supply_base_units": 2**64}),
        ("creator", {"creator": "not-a-key"}),
        ("creator", {"creator": "0x" + "ab" * 20}),
    ],
)
def test_validation_names_the_field(field, overrides):
    with pytest.raises(ValidationFailed) as info:
        _params(**overrides)
    assert info.value.field == field


def test_launch_instruction_order_and_signers():
    payer, mint = Keypair(), Keypair()
    params = _params()
    ixs = ix.launch_instructions(payer.pubkey(), mint.pubkey(), params, 5_000_000)
    programs = [i.program_id for i in ixs]
    assert (
        programs
        == [SYSTEM_PROGRAM_ID]
        + [ix.TOKEN_2022_PROGRAM_ID] * 3
        + [ix.ASSOCIATED_TOKEN_PROGRAM_ID]
        + [ix.TOKEN_2022_PROGRAM_ID] * 2
    )
    create = bytes(ixs[0].data)
    # System CreateAccount: u32 tag 0, u64 lamports, u64 space, owner
    assert struct.unpack_from("<IQQ", create) == (0, 5_000_000, 234)
    assert create[20:] == bytes(ix.TOKEN_2022_PROGRAM_ID)
    tx = ix.build_launch_transaction(payer, mint, params, Hash.new_unique(), 5_000_000)
    assert tx.message.header.num_required_signatures == 2
    assert list(tx.message.account_keys[:2]) == [payer.pubkey(), mint.pubkey()]
    tx.verify()


def test_max_inputs_fit_in_one_packet():
    payer, mint = Keypair(), Keypair()
    params = ix.LaunchParams.create(
        name="\U0001f600" * 32,  # 32 chars, 128 UTF-8 bytes
        symbol="ABCDEFGHIJ",
        uri="https://" + "u" * 192,
        decimals=255,
        supply_base_units=2**64 - 1,
        creator=str(Keypair().pubkey()),
    )
    tx = ix.build_launch_transaction(payer, mint, params, Hash.new_unique(), 2**63)
    raw = bytes(tx)
    assert len(raw) == 956
    assert len(raw) <= ix.MAX_TX_BYTES
    assert Transaction.from_bytes(raw) == tx
