"""TokenForge's Solana curve program, from the Python side: its id, accounts and instructions.

The program (``programs/curve/curve.c``, built into ``programs/curve.so`` next to this
module; decision 0016) keeps a platform config and one curve per mint, then a pool per
graduated mint. This module knows its account addresses (PDAs), packs its instructions
(the layouts are in the program's header comment) and reads its accounts:

* :data:`CURVE_PROGRAM_ID` — where the embedded chain and ``tokenforge devnet`` load it;
  on testnets and mainnets the address it was deployed at is a chain setting;
* :func:`config_address`, :func:`curve_address`, :func:`pool_address`, … — the PDAs;
* :func:`init_config`, :func:`create_curve`, :func:`buy`, :func:`sell`, :func:`claim`,
  :func:`graduate`, :func:`swap` — instructions; :class:`ConfigTerms` the config's terms;
* :func:`read_config`, :func:`read_curve` — decoded accounts;
* :func:`ensure_config` — initialises the platform config with the payer as admin, once.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from tokenforge.chains.solana.instructions import (
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    associated_token_address,
    create_associated_token_account_idempotent,
)
from tokenforge.domain.curve import CurveParams, CurveReserves, CurveState, PlatformTerms

log = logging.getLogger(__name__)

#: The curve program's id on the embedded chain and local devnets.
CURVE_PROGRAM_ID = Pubkey.from_string("TFcurve111111111111111111111111111111111111")
PROGRAMS_DIR = Path(__file__).with_name("programs")
CONFIG_LEN = 102  # kind, version, bump, 5 spare bytes, admin, terms (62)
CURVE_LEN = 208
POOL_LEN = 136
POOL_FEE_BPS = 25
#: The program's errors (``Custom(n)``), by code.
ERRORS = {
    1: "BadInput",
    2: "NotSigner",
    3: "NotWritable",
    4: "WrongAccount",
    5: "WrongOwner",
    6: "AlreadyInitialized",
    7: "BadTerms",
    8: "CurveComplete",
    9: "ZeroAmount",
    10: "Slippage",
    11: "Expired",
    12: "InsufficientReserve",
    13: "Overflow",
    14: "BadMint",
    15: "NotCreator",
    16: "NothingToClaim",
    17: "NotComplete",
    18: "AlreadyGraduated",
}


def program_bytes(name: str = "curve") -> bytes:
    """The committed SBPFv0 program ``name`` (``curve`` or ``probe``)."""
    return (PROGRAMS_DIR / f"{name}.so").read_bytes()


# ---------------------------------------------------------------------------- addresses


def config_address(program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    return Pubkey.find_program_address([b"config"], program)[0]


def _of_mint(prefix: bytes, mint: Pubkey, program: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([prefix, bytes(mint)], program)[0]


def curve_address(mint: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    return _of_mint(b"curve", mint, program)


def curve_vault(mint: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    """The curve's Token-2022 account (its associated token account) holding the supply."""
    return associated_token_address(curve_address(mint, program), mint)


def pool_address(mint: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    return _of_mint(b"pool", mint, program)


def pool_vault(mint: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    return associated_token_address(pool_address(mint, program), mint)


def lp_mint_address(mint: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    return _of_mint(b"lp", mint, program)


def lp_account_address(mint: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Pubkey:
    return _of_mint(b"lp-account", mint, program)


# ---------------------------------------------------------------------------- instructions


@dataclass(frozen=True, slots=True)
class ConfigTerms:
    """The platform's terms in the program's config (amounts in lamports)."""

    fee_recipient: Pubkey
    virtual_native0: int
    migration_fee: int
    platform_fee_bps: int
    creator_fee_bps: int
    max_launch_fee_bps: int
    max_window_s: int
    max_window_slots: int

    @classmethod
    def of(cls, terms: PlatformTerms, fee_recipient: Pubkey) -> ConfigTerms:
        return cls(
            fee_recipient,
            terms.virtual_native0,
            terms.migration_fee,
            terms.platform_fee_bps,
            terms.creator_fee_bps,
            terms.max_launch_fee_bps,
            terms.max_launch_window_s,
            terms.max_launch_window_blocks,
        )

    def pack(self) -> bytes:
        return bytes(self.fee_recipient) + struct.pack(
            "<QQHHHII",
            self.virtual_native0,
            self.migration_fee,
            self.platform_fee_bps,
            self.creator_fee_bps,
            self.max_launch_fee_bps,
            self.max_window_s,
            self.max_window_slots,
        )

    @classmethod
    def unpack(cls, data: bytes) -> ConfigTerms:
        vn0, migration, pf, cf, lf, ws, wslots = struct.unpack_from("<QQHHHII", data, 32)
        return cls(Pubkey.from_bytes(data[:32]), vn0, migration, pf, cf, lf, ws, wslots)


def _meta(key: Pubkey, *, signer: bool = False, writable: bool = False) -> AccountMeta:
    return AccountMeta(key, is_signer=signer, is_writable=writable)


def init_config(admin: Pubkey, terms: ConfigTerms, program: Pubkey = CURVE_PROGRAM_ID) -> Instruction:
    accounts = [
        _meta(admin, signer=True, writable=True),
        _meta(config_address(program), writable=True),
        _meta(SYSTEM_PROGRAM_ID),
    ]
    return Instruction(program, b"\x00" + terms.pack(), accounts)


def set_config(admin: Pubkey, new_admin: Pubkey, terms: ConfigTerms, program: Pubkey = CURVE_PROGRAM_ID) -> Instruction:
    accounts = [_meta(admin, signer=True), _meta(config_address(program), writable=True)]
    return Instruction(program, b"\x01" + bytes(new_admin) + terms.pack(), accounts)


def create_curve(
    payer: Pubkey,
    creator: Pubkey,
    mint: Pubkey,
    *,
    launch_fee_bps: int = 0,
    window: int = 0,
    in_slots: bool = False,
    program: Pubkey = CURVE_PROGRAM_ID,
) -> Instruction:
    """The curve of ``mint`` over its whole supply, which must already sit in
    :func:`curve_vault` with the mint authority revoked (the launch transaction does both)."""
    accounts = [
        _meta(payer, signer=True, writable=True),
        _meta(creator),
        _meta(mint),
        _meta(curve_address(mint, program), writable=True),
        _meta(curve_vault(mint, program)),
        _meta(config_address(program)),
        _meta(SYSTEM_PROGRAM_ID),
    ]
    return Instruction(program, b"\x02" + struct.pack("<HIB", launch_fee_bps, window, in_slots), accounts)


def _trade_accounts(mint: Pubkey, trader: Pubkey, fee_recipient: Pubkey, program: Pubkey) -> list[AccountMeta]:
    return [
        _meta(trader, signer=True, writable=True),
        _meta(curve_address(mint, program), writable=True),
        _meta(curve_vault(mint, program), writable=True),
        _meta(associated_token_address(trader, mint), writable=True),
        _meta(mint),
        _meta(fee_recipient, writable=True),
        _meta(TOKEN_2022_PROGRAM_ID),
    ]


def buy(
    mint: Pubkey,
    buyer: Pubkey,
    fee_recipient: Pubkey,
    native_in: int,
    min_tokens_out: int = 0,
    deadline: int = 0,
    program: Pubkey = CURVE_PROGRAM_ID,
) -> list[Instruction]:
    """The buyer's token account (created if missing, idempotent), then the buy."""
    accounts = [*_trade_accounts(mint, buyer, fee_recipient, program), _meta(SYSTEM_PROGRAM_ID)]
    data = b"\x03" + struct.pack("<QQq", native_in, min_tokens_out, deadline)
    return [create_associated_token_account_idempotent(buyer, buyer, mint), Instruction(program, data, accounts)]


def sell(
    mint: Pubkey,
    seller: Pubkey,
    fee_recipient: Pubkey,
    tokens_in: int,
    min_native_out: int = 0,
    deadline: int = 0,
    program: Pubkey = CURVE_PROGRAM_ID,
) -> Instruction:
    data = b"\x04" + struct.pack("<QQq", tokens_in, min_native_out, deadline)
    return Instruction(program, data, _trade_accounts(mint, seller, fee_recipient, program))


def claim(mint: Pubkey, creator: Pubkey, program: Pubkey = CURVE_PROGRAM_ID) -> Instruction:
    accounts = [_meta(creator, signer=True, writable=True), _meta(curve_address(mint, program), writable=True)]
    return Instruction(program, b"\x05", accounts)


def graduate(
    mint: Pubkey, payer: Pubkey, fee_recipient: Pubkey, program: Pubkey = CURVE_PROGRAM_ID
) -> list[Instruction]:
    """The pool's vault (an associated token account of the pool PDA), then ``graduate``."""
    pool = pool_address(mint, program)
    accounts = [
        _meta(payer, signer=True, writable=True),
        _meta(curve_address(mint, program), writable=True),
        _meta(curve_vault(mint, program), writable=True),
        _meta(mint),
        _meta(pool, writable=True),
        _meta(pool_vault(mint, program), writable=True),
        _meta(lp_mint_address(mint, program), writable=True),
        _meta(lp_account_address(mint, program), writable=True),
        _meta(fee_recipient, writable=True),
        _meta(TOKEN_2022_PROGRAM_ID),
        _meta(SYSTEM_PROGRAM_ID),
    ]
    return [create_associated_token_account_idempotent(payer, pool, mint), Instruction(program, b"\x06", accounts)]


def swap(
    mint: Pubkey,
    trader: Pubkey,
    is_buy: bool,
    amount_in: int,
    min_out: int = 0,
    deadline: int = 0,
    program: Pubkey = CURVE_PROGRAM_ID,
) -> Instruction:
    accounts = [
        _meta(trader, signer=True, writable=True),
        _meta(pool_address(mint, program), writable=True),
        _meta(pool_vault(mint, program), writable=True),
        _meta(associated_token_address(trader, mint), writable=True),
        _meta(mint),
        _meta(TOKEN_2022_PROGRAM_ID),
        _meta(SYSTEM_PROGRAM_ID),
    ]
    return Instruction(program, b"\x07" + struct.pack("<BQQq", is_buy, amount_in, min_out, deadline), accounts)


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class CurveAccount:
    """A curve as the program stores it (``state``: 0 trading, 1 sold out, 2 graduated)."""

    state: int
    decimals: int
    mint: Pubkey
    creator: Pubkey
    vault: Pubkey
    fee_recipient: Pubkey
    supply: int
    virtual_native0: int
    native_raised: int
    tokens_sold: int
    creator_fees: int
    migration_fee: int
    launched_at: int
    launch_window: int
    platform_fee_bps: int
    creator_fee_bps: int
    launch_fee_bps: int
    window_in_slots: bool

    def reserves(self) -> CurveReserves:
        """The curve as the domain's math sees it (quotes, checks against the program)."""
        params = CurveParams(
            supply=self.supply,
            virtual_native0=self.virtual_native0,
            platform_fee_bps=self.platform_fee_bps,
            creator_fee_bps=self.creator_fee_bps,
            launch_fee_bps=self.launch_fee_bps,
            launch_window=self.launch_window,
            window_in_blocks=self.window_in_slots,
            migration_fee=self.migration_fee,
            launched_at=self.launched_at,
        )
        state = CurveState.TRADING if self.state == 0 else CurveState.GRADUATED
        return CurveReserves(params, self.native_raised, self.tokens_sold, state)


def read_curve(data: bytes) -> CurveAccount | None:
    """The curve in account ``data``; None when it is not a curve of this layout."""
    if len(data) < CURVE_LEN or data[0] != 2 or data[1] != 1:
        return None
    supply, vn0, raised, sold, creator_fees, migration, launched_at = struct.unpack_from("<7Q", data, 136)
    window, pf, cf, lf = struct.unpack_from("<IHHH", data, 192)
    mint, creator, vault, recipient = (Pubkey.from_bytes(data[at : at + 32]) for at in (8, 40, 72, 104))
    return CurveAccount(
        state=data[2],
        decimals=data[5],
        mint=mint,
        creator=creator,
        vault=vault,
        fee_recipient=recipient,
        supply=supply,
        virtual_native0=vn0,
        native_raised=raised,
        tokens_sold=sold,
        creator_fees=creator_fees,
        migration_fee=migration,
        launched_at=launched_at,
        launch_window=window,
        platform_fee_bps=pf,
        creator_fee_bps=cf,
        launch_fee_bps=lf,
        window_in_slots=bool(data[4]),
    )


def read_config(data: bytes) -> tuple[Pubkey, ConfigTerms] | None:
    """``(admin, terms)`` of the config in account ``data``; None when it is not one."""
    if len(data) < CONFIG_LEN or data[0] != 1 or data[1] != 1:
        return None
    return Pubkey.from_bytes(data[8:40]), ConfigTerms.unpack(data[40:CONFIG_LEN])


# ---------------------------------------------------------------------------- set-up


class _Chain(Protocol):
    async def get_account(self, address: Pubkey): ...


async def ensure_config(
    chain: _Chain, send, admin: Pubkey, terms: ConfigTerms, program: Pubkey = CURVE_PROGRAM_ID
) -> bool:
    """Initialises the program's config with ``admin`` and ``terms`` when it has none;
    ``send(instructions)`` submits a transaction signed by ``admin`` and returns once it
    landed. True when it initialised it; an existing config with other terms is logged
    (the admin changes it with :func:`set_config`)."""
    account = await chain.get_account(config_address(program))
    if account is not None:
        existing = read_config(bytes(account.data))
        if existing is not None and existing[1] != terms:
            log.warning("the Solana curve program's config differs from the settings; it keeps its own terms")
        return False
    await send([init_config(admin, terms, program)])
    log.info("initialised the Solana curve program's config", extra={"program": str(program)})
    return True
