"""Instruction encoders and the one-transaction Token-2022 launch.

The launch transaction, signed by the payer (fee payer) and the derived mint keypair::

    1. System  CreateAccount        mint: space for mint + MetadataPointer only, lamports
                                    for the final size incl. the token-metadata TLV
    2. Token22 MetadataPointer.Initialize   authority None, metadata address = the mint
    3. Token22 InitializeMint2      decimals, mint authority = payer, freeze authority None
    4. Token22 TokenMetadata.Initialize     name, symbol, uri; update authority = payer
                                    (Token-2022 reallocs the mint to hold the TLV)
    5. ATA     CreateIdempotent     the Token-2022 associated token account of the supply's
                                    owner: the curve PDA (its vault), or the creator
    6. Token22 MintToChecked        the whole supply to that account
    7. Token22 SetAuthority         MintTokens -> None: the supply is fixed for ever
    8. Curve   CreateCurve          the token's bonding curve over the whole supply (with
                                    a curve program: :mod:`tokenforge.chains.solana.market`)

With a priority fee (``compute_unit_price_micro_lamports > 0``) two ComputeBudget
instructions come first, SetComputeUnitLimit and SetComputeUnitPrice; a limit given without
a price prepends SetComputeUnitLimit alone. The fee is then ``5000`` lamports per signature
plus ``ceil(price * limit / 1_000_000)``: the price is paid on the requested limit, not on the
units used, so the default limit (:func:`launch_compute_unit_limit`) is computed per launch.
Code that maps a failed instruction index back to a step asks :func:`instruction_program`
instead of assuming positions.

Either all of it lands or none of it does. The encoders are written here because the
solana-py ``spl`` helpers do not cover the Token-2022 extensions; each one is a few bytes
of layout, unit-tested against the published program layouts.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from solders.compute_budget import ID as COMPUTE_BUDGET_PROGRAM_ID
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.transaction import Transaction

from tokenforge.domain.chains import U64_MAX
from tokenforge.domain.tokens import NAME_MAX_CHARS, SYMBOL_RE, URL_MAX_CHARS
from tokenforge.errors import ValidationFailed

TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
__all__ = [
    "ASSOCIATED_TOKEN_PROGRAM_ID",
    "COMPUTE_BUDGET_PROGRAM_ID",
    "MAX_COMPUTE_UNIT_LIMIT",
    "MAX_TX_BYTES",
    "SYSTEM_PROGRAM_ID",
    "TOKEN_2022_PROGRAM_ID",
    "LaunchParams",
    "build_launch_transaction",
    "instruction_program",
    "launch_compute_unit_limit",
]

MAX_TX_BYTES = 1232  # Solana packet limit for a serialized transaction
MAX_NAME_CHARS = NAME_MAX_CHARS  # the domain's rules (domain/tokens.py), checked again at the boundary
MAX_URI_CHARS = URL_MAX_CHARS

# --- Token-2022 account layout -------------------------------------------------------------
MINT_BASE_LEN = 82  # the SPL Token mint
ACCOUNT_BASE_LEN = 165  # extensions start after the (padded) token-account length ...
ACCOUNT_TYPE_LEN = 1  # ... and one AccountType byte (1 = Mint)
TLV_HEADER_LEN = 4  # u16 extension type + u16 length
METADATA_POINTER_LEN = 64  # authority (32) + metadata address (32), zeros = None
MINT_WITH_POINTER_LEN = ACCOUNT_BASE_LEN + ACCOUNT_TYPE_LEN + TLV_HEADER_LEN + METADATA_POINTER_LEN  # 234

# --- Compute budget -----------------------------------------------------------------------
MAX_COMPUTE_UNIT_LIMIT = 1_400_000  # per transaction
MAX_COMPUTE_UNIT_PRICE_MICRO_LAMPORTS = 2**64 - 1
# Measured on the embedded chain (LiteSVM's SPL programs), the two ComputeBudget
# instructions (150 units each) included: 26,047 units at most for the smallest launch
# (1-byte name and symbol, empty URI), 27,996 for the largest (128-byte name, 10-char
# symbol, 200-char URI), plus 1,500 for each bump seed the ATA program tries while deriving
# the creator's token account (it searches down from 255; ``find_program_address`` tells
# how many, so the count is known before signing). The base adds ~14% headroom for other
# program versions.
LAUNCH_BASE_COMPUTE_UNITS = 32_000
PDA_BUMP_ATTEMPT_COMPUTE_UNITS = 1_500
#: The curve program's create_curve without its PDA search (measured ~9,000; with room).
CURVE_CREATE_COMPUTE_UNITS = 16_000

# --- Instruction tags -------------------------------------------------------------------
_IX_SET_AUTHORITY = 6
_IX_MINT_TO_CHECKED = 14
_IX_INITIALIZE_MINT2 = 20
_IX_METADATA_POINTER_EXTENSION = 39
_METADATA_POINTER_INITIALIZE = 0
_ATA_CREATE_IDEMPOTENT = 1
AUTHORITY_MINT_TOKENS = 0
TOKEN_METADATA_INITIALIZE_DISCRIMINATOR = hashlib.sha256(b"spl_token_metadata_interface:initialize_account").digest()[
    :8
]


def _optional_nonzero_pubkey(key: Pubkey | None) -> bytes:
    """``OptionalNonZeroPubkey``: 32 bytes, all zeros meaning None."""
    return bytes(32) if key is None else bytes(key)


def _coption_pubkey(key: Pubkey | None) -> bytes:
    """``COption<Pubkey>`` as packed by token instructions: 0, or 1 followed by 32 bytes."""
    return b"\x00" if key is None else b"\x01" + bytes(key)


def _borsh_str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def token_metadata_value_len(name: str, symbol: str, uri: str) -> int:
    """Length of the packed ``TokenMetadata`` value (no additional metadata)."""
    # update_authority (32) + mint (32) + three borsh strings + empty Vec<(String, String)>
    return 32 + 32 + sum(4 + len(s.encode("utf-8")) for s in (name, symbol, uri)) + 4


def mint_account_final_len(name: str, symbol: str, uri: str) -> int:
    """Mint account size after TokenMetadata.Initialize has realloc'd it."""
    return MINT_WITH_POINTER_LEN + TLV_HEADER_LEN + token_metadata_value_len(name, symbol, uri)


def initialize_metadata_pointer(mint: Pubkey, authority: Pubkey | None, metadata_address: Pubkey) -> Instruction:
    data = (
        bytes([_IX_METADATA_POINTER_EXTENSION, _METADATA_POINTER_INITIALIZE])
        + _optional_nonzero_pubkey(authority)
        + _optional_nonzero_pubkey(metadata_address)
    )
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, is_signer=False, is_writable=True)])


def initialize_mint2(
    mint: Pubkey, decimals: int, mint_authority: Pubkey, freeze_authority: Pubkey | None
) -> Instruction:
    data = bytes([_IX_INITIALIZE_MINT2, decimals]) + bytes(mint_authority) + _coption_pubkey(freeze_authority)
    return Instruction(TOKEN_2022_PROGRAM_ID, data, [AccountMeta(mint, is_signer=False, is_writable=True)])


def initialize_token_metadata(
    metadata: Pubkey, update_authority: Pubkey, mint: Pubkey, mint_authority: Pubkey, name: str, symbol: str, uri: str
) -> Instruction:
    data = TOKEN_METADATA_INITIALIZE_DISCRIMINATOR + _borsh_str(name) + _borsh_str(symbol) + _borsh_str(uri)
    accounts = [
        AccountMeta(metadata, is_signer=False, is_writable=True),
        AccountMeta(update_authority, is_signer=False, is_writable=False),
        AccountMeta(mint, is_signer=False, is_writable=False),
        AccountMeta(mint_authority, is_signer=True, is_writable=False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def associated_token_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    """The owner's Token-2022 associated token account for ``mint``."""
    return get_associated_token_address(owner, mint, TOKEN_2022_PROGRAM_ID)


def create_associated_token_account_idempotent(payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    accounts = [
        AccountMeta(payer, is_signer=True, is_writable=True),
        AccountMeta(associated_token_address(owner, mint), is_signer=False, is_writable=True),
        AccountMeta(owner, is_signer=False, is_writable=False),
        AccountMeta(mint, is_signer=False, is_writable=False),
        AccountMeta(SYSTEM_PROGRAM_ID, is_signer=False, is_writable=False),
        AccountMeta(TOKEN_2022_PROGRAM_ID, is_signer=False, is_writable=False),
    ]
    return Instruction(ASSOCIATED_TOKEN_PROGRAM_ID, bytes([_ATA_CREATE_IDEMPOTENT]), accounts)


def mint_to_checked(mint: Pubkey, destination: Pubkey, authority: Pubkey, amount: int, decimals: int) -> Instruction:
    data = struct.pack("<BQB", _IX_MINT_TO_CHECKED, amount, decimals)
    accounts = [
        AccountMeta(mint, is_signer=False, is_writable=True),
        AccountMeta(destination, is_signer=False, is_writable=True),
        AccountMeta(authority, is_signer=True, is_writable=False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


def set_authority(
    account: Pubkey, current_authority: Pubkey, authority_type: int, new_authority: Pubkey | None
) -> Instruction:
    data = bytes([_IX_SET_AUTHORITY, authority_type]) + _coption_pubkey(new_authority)
    accounts = [
        AccountMeta(account, is_signer=False, is_writable=True),
        AccountMeta(current_authority, is_signer=True, is_writable=False),
    ]
    return Instruction(TOKEN_2022_PROGRAM_ID, data, accounts)


@dataclass(frozen=True, slots=True)
class LaunchParams:
    """Validated inputs of one launch. Build with :meth:`create`."""

    name: str
    symbol: str
    uri: str
    decimals: int
    supply_base_units: int
    creator: Pubkey

    @classmethod
    def create(
        cls, *, name: str, symbol: str, uri: str, decimals: int, supply_base_units: int, creator: str
    ) -> LaunchParams:
        """Validate the launch inputs; raises :class:`ValidationFailed` naming the field."""
        if not name or len(name) > MAX_NAME_CHARS or name != name.strip() or "\x00" in name:
            raise ValidationFailed("name", f"1 to {MAX_NAME_CHARS} characters, no surrounding spaces")
        if not SYMBOL_RE.fullmatch(symbol):
            raise ValidationFailed("symbol", "1 to 10 characters A-Z 0-9")
        if len(uri) > MAX_URI_CHARS or not uri.isascii() or any(c.isspace() or ord(c) < 0x20 for c in uri):
            raise ValidationFailed("metadata_uri", f"at most {MAX_URI_CHARS} printable ASCII characters")
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 255:
            raise ValidationFailed("decimals", "an integer from 0 to 255")
        if (
            isinstance(supply_base_units, bool)
            or not isinstance(supply_base_units, int)
            or not 0 < supply_base_units <= U64_MAX
        ):
            raise ValidationFailed("supply", "a positive integer that fits in 64 bits (base units)")
        try:
            creator_key = Pubkey.from_string(creator)
        except (ValueError, TypeError) as exc:
            raise ValidationFailed("creator", "a base58 Solana public key") from exc
        return cls(name, symbol, uri, decimals, supply_base_units, creator_key)


@dataclass(frozen=True, slots=True)
class CurveLaunch:
    """The curve a launch creates: the curve program and the launch's decaying fee."""

    program: Pubkey
    launch_fee_bps: int = 0
    launch_fee_window: int = 0
    window_in_slots: bool = False


def launch_instructions(
    payer: Pubkey, mint: Pubkey, params: LaunchParams, mint_lamports: int, curve: CurveLaunch | None = None
) -> list[Instruction]:
    """The launch instructions, in order (see the module docstring): seven, and the curve's
    creation when ``curve`` is given (the supply then goes to the curve's vault)."""
    from tokenforge.chains.solana import market  # it builds on this module

    owner = params.creator if curve is None else market.curve_address(mint, curve.program)
    ata = associated_token_address(owner, mint)
    steps = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer,
                to_pubkey=mint,
                lamports=mint_lamports,
                space=MINT_WITH_POINTER_LEN,
                owner=TOKEN_2022_PROGRAM_ID,
            )
        ),
        initialize_metadata_pointer(mint, authority=None, metadata_address=mint),
        initialize_mint2(mint, params.decimals, mint_authority=payer, freeze_authority=None),
        initialize_token_metadata(mint, payer, mint, payer, params.name, params.symbol, params.uri),
        create_associated_token_account_idempotent(payer, owner, mint),
        mint_to_checked(mint, ata, payer, params.supply_base_units, params.decimals),
        set_authority(mint, payer, AUTHORITY_MINT_TOKENS, new_authority=None),
    ]
    if curve is not None:
        steps.append(
            market.create_curve(
                payer,
                params.creator,
                mint,
                launch_fee_bps=curve.launch_fee_bps,
                window=curve.launch_fee_window,
                in_slots=curve.window_in_slots,
                program=curve.program,
            )
        )
    return steps


def launch_compute_unit_limit(params: LaunchParams, mint: Pubkey, curve: CurveLaunch | None = None) -> int:
    """A compute-unit limit that covers this launch (see ``LAUNCH_BASE_COMPUTE_UNITS``)."""
    if curve is None:
        owner, extra = params.creator, 0
    else:
        owner, curve_bump = Pubkey.find_program_address([b"curve", bytes(mint)], curve.program)
        extra = CURVE_CREATE_COMPUTE_UNITS + PDA_BUMP_ATTEMPT_COMPUTE_UNITS * (255 - curve_bump)
    _, bump = Pubkey.find_program_address(
        [bytes(owner), bytes(TOKEN_2022_PROGRAM_ID), bytes(mint)], ASSOCIATED_TOKEN_PROGRAM_ID
    )
    return LAUNCH_BASE_COMPUTE_UNITS + PDA_BUMP_ATTEMPT_COMPUTE_UNITS * (255 - bump) + extra


def compute_budget_instructions(
    compute_unit_limit: int | None, compute_unit_price_micro_lamports: int, *, default_limit: int
) -> list[Instruction]:
    """SetComputeUnitLimit and SetComputeUnitPrice for a priority fee; [] without one.

    ``default_limit`` is used when a price is given without a limit. A limit without a price
    yields SetComputeUnitLimit alone. Raises ``ValueError`` for out-of-range values.
    """
    price = compute_unit_price_micro_lamports
    if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= MAX_COMPUTE_UNIT_PRICE_MICRO_LAMPORTS:
        raise ValueError("compute_unit_price_micro_lamports must be an integer from 0 to 2**64-1")
    if compute_unit_limit is not None and (
        isinstance(compute_unit_limit, bool)
        or not isinstance(compute_unit_limit, int)
        or not 1 <= compute_unit_limit <= MAX_COMPUTE_UNIT_LIMIT
    ):
        raise ValueError(f"compute_unit_limit must be an integer from 1 to {MAX_COMPUTE_UNIT_LIMIT}")
    if price == 0:
        return [] if compute_unit_limit is None else [set_compute_unit_limit(compute_unit_limit)]
    limit = default_limit if compute_unit_limit is None else compute_unit_limit
    return [set_compute_unit_limit(limit), set_compute_unit_price(price)]


def build_launch_transaction(
    payer: Keypair,
    mint: Keypair,
    params: LaunchParams,
    recent_blockhash: Hash,
    mint_lamports: int,
    *,
    compute_unit_limit: int | None = None,
    compute_unit_price_micro_lamports: int = 0,
    curve: CurveLaunch | None = None,
) -> Transaction:
    """The signed launch transaction (payer pays fees and rent and signs first).

    With ``compute_unit_price_micro_lamports > 0`` the ComputeBudget instructions come first;
    the limit defaults to :func:`launch_compute_unit_limit`.
    """
    budget = compute_budget_instructions(
        compute_unit_limit,
        compute_unit_price_micro_lamports,
        default_limit=launch_compute_unit_limit(params, mint.pubkey(), curve) if compute_unit_limit is None else 0,
    )
    ixs = budget + launch_instructions(payer.pubkey(), mint.pubkey(), params, mint_lamports, curve)
    message = Message.new_with_blockhash(ixs, payer.pubkey(), recent_blockhash)
    return Transaction([payer, mint], message, recent_blockhash)


def instruction_program(raw_tx: bytes, index: int) -> Pubkey | None:
    """The program of instruction ``index`` in a serialized transaction; None if unknown."""
    if index < 0:
        return None
    try:
        message = Transaction.from_bytes(raw_tx).message
        return message.account_keys[message.instructions[index].program_id_index]
    except (ValueError, TypeError, IndexError):
        return None
