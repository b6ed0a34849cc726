"""Independent decoding of Token-2022 accounts (plain byte parsing, no TokenForge encoders)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.pubkey import Pubkey

TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
EXT_IMMUTABLE_OWNER, EXT_METADATA_POINTER, EXT_TOKEN_METADATA = 7, 18, 19
ACCOUNT_TYPE_MINT, ACCOUNT_TYPE_ACCOUNT = 1, 2


# ----------------------------------------------------------------------- independent decoding
def _coption_pubkey(data: bytes, offset: int) -> Pubkey | None:
    (tag,) = struct.unpack_from("<I", data, offset)
    assert tag in (0, 1)
    return Pubkey.from_bytes(data[offset + 4 : offset + 36]) if tag == 1 else None


def _tlv(data: bytes, expected_account_type: int) -> dict[int, bytes]:
    assert data[165] == expected_account_type
    entries, pos = {}, 166
    while pos + 4 <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, pos)
        if ext_type == 0:  # uninitialized (padding)
            break
        entries[ext_type] = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
    assert pos == len(data), "TLV entries must fill the account exactly"
    return entries


def _string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", data, pos)
    return data[pos + 4 : pos + 4 + n].decode("utf-8"), pos + 4 + n


@dataclass
class DecodedMint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None
    pointer_authority: Pubkey | None
    pointer_address: Pubkey | None
    update_authority: Pubkey | None
    metadata_mint: Pubkey
    name: str
    symbol: str
    uri: str
    additional: int


def decode_mint(data: bytes) -> DecodedMint:
    mint_authority = _coption_pubkey(data, 0)
    supply, decimals, initialized = struct.unpack_from("<QBB", data, 36)
    freeze_authority = _coption_pubkey(data, 46)
    assert data[82:165] == bytes(83)
    ext = _tlv(data, ACCOUNT_TYPE_MINT)
    assert set(ext) == {EXT_METADATA_POINTER, EXT_TOKEN_METADATA}
    pointer = ext[EXT_METADATA_POINTER]
    assert len(pointer) == 64

    def nonzero(raw: bytes) -> Pubkey | None:
        return None if raw == bytes(32) else Pubkey.from_bytes(raw)

    md = ext[EXT_TOKEN_METADATA]
    name, pos = _string(md, 64)
    symbol, pos = _string(md, pos)
    uri, pos = _string(md, pos)
    (additional,) = struct.unpack_from("<I", md, pos)
    assert pos + 4 == len(md)
    return DecodedMint(
        mint_authority,
        supply,
        decimals,
        bool(initialized),
        freeze_authority,
        nonzero(pointer[:32]),
        nonzero(pointer[32:]),
        nonzero(md[:32]),
        Pubkey.from_bytes(md[32:64]),
        name,
        symbol,
        uri,
        additional,
    )


def decode_token_account(data: bytes) -> tuple[Pubkey, Pubkey, int, int]:
    mint, owner = Pubkey.from_bytes(data[:32]), Pubkey.from_bytes(data[32:64])
    (amount,) = struct.unpack_from("<Q", data, 64)
    state = data[108]
    ext = _tlv(data, ACCOUNT_TYPE_ACCOUNT)
    assert EXT_IMMUTABLE_OWNER in ext
    return mint, owner, amount, state


def ata_of(owner: Pubkey, mint: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(TOKEN_2022), bytes(mint)], ATA_PROGRAM)[0]


def assert_launched_mint(m: DecodedMint, req, mint: Pubkey, payer: Pubkey) -> None:
    """What every launch's mint must be: supply and decimals as asked, mint and freeze
    authority none, metadata pointer and metadata on the mint itself, payer as update authority."""
    assert m.is_initialized
    assert (m.supply, m.decimals) == (req.supply_base_units, req.decimals)
    assert m.mint_authority is None, "mint authority must be revoked"
    assert m.freeze_authority is None
    assert m.pointer_address == mint and m.pointer_authority is None
    assert m.metadata_mint == mint and m.update_authority == payer
    assert (m.name, m.symbol, m.uri, m.additional) == (req.name, req.symbol, req.metadata_uri, 0)


def curve_of(mint: Pubkey) -> Pubkey:
    """The curve PDA of ``mint`` (TokenForge's curve program at its embedded/devnet id): the
    owner of the token account holding a launch's whole supply."""
    from tokenforge.chains.solana.market import curve_address

    return curve_address(mint)
