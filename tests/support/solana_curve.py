"""The curve program (programs/curve) on a LiteSVM of its own, for contract tests.

:class:`CurveChain` loads the committed ``curve.so``, initialises the platform config and
launches tokens the way the launch transaction will (a Token-2022 mint, the whole supply
minted to the curve PDA's vault, the mint authority revoked, then ``create_curve``), and
sends buys, sells and claims. Instruction builders follow the layout in the program's
header comment."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tests.support.sbf import PROGRAMS
from tokenforge.chains.solana import market
from tokenforge.chains.solana.embedded import restore_float_environment
from tokenforge.chains.solana.instructions import (
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    associated_token_address,
    create_associated_token_account_idempotent,
    initialize_mint2,
    mint_to_checked,
    set_authority,
)

PROGRAM_ID = market.CURVE_PROGRAM_ID
ERRORS = market.ERRORS
POOL_FEE_BPS = market.POOL_FEE_BPS
TOKEN_ERRORS = {1: "InsufficientFunds", 3: "MintMismatch", 4: "OwnerMismatch", 17: "AccountFrozen"}
CURVE_LEN = market.CURVE_LEN


def Terms(fee_recipient: Pubkey, **overrides: int) -> market.ConfigTerms:
    """pump.fun's terms (30 SOL virtual, 0.95 % + 0.30 %) unless overridden."""
    values = {
        "virtual_native0": 30 * 10**9,
        "migration_fee": 15 * 10**6,
        "platform_fee_bps": 95,
        "creator_fee_bps": 30,
        "max_launch_fee_bps": 9900,
        "max_window_s": 3600,
        "max_window_slots": 300,
    }
    return market.ConfigTerms(fee_recipient, **{**values, **overrides})


@dataclass(frozen=True)
class Launched:
    mint: Pubkey
    curve: Pubkey
    vault: Pubkey
    creator: Keypair
    supply: int
    decimals: int


class Failed(Exception):
    def __init__(self, name: str, result: object) -> None:
        super().__init__(f"{name}: {result}")
        self.name = name
        self.result = result


config_address = market.config_address
curve_address = market.curve_address
pool_address = market.pool_address
lp_mint_address = market.lp_mint_address
lp_account_address = market.lp_account_address


def swap_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """The pool's constant-product output (the fee stays in the pool)."""
    net = amount_in * (10_000 - POOL_FEE_BPS) // 10_000
    return net * reserve_out // (reserve_in + net)


@dataclass(frozen=True)
class PoolAccount:
    mint: Pubkey
    vault: Pubkey
    lp_mint: Pubkey
    native_reserve: int
    token_reserve: int
    lp_burnt: int
    fee_bps: int


def with_account(ix: Instruction, index: int, key: Pubkey) -> Instruction:
    """``ix`` with its account ``index`` replaced by ``key`` (same signer/writable flags)."""
    metas = list(ix.accounts)
    metas[index] = AccountMeta(key, metas[index].is_signer, metas[index].is_writable)
    return Instruction(ix.program_id, ix.data, metas)


class CurveChain:
    def __init__(self, terms: market.ConfigTerms | None = None, *, init: bool = True) -> None:
        self.svm = LiteSVM()
        self.svm.add_program(PROGRAM_ID, (PROGRAMS / "curve.so").read_bytes())
        self.admin = Keypair()
        self.svm.airdrop(self.admin.pubkey(), 10**12)
        self.fee_recipient = Keypair().pubkey()
        self.svm.airdrop(self.fee_recipient, 10**9)  # rent-exempt before it receives fees
        self.terms = terms or Terms(self.fee_recipient)
        if init:
            self.ok(self.send([self.init_config_ix(self.admin.pubkey(), self.terms)], self.admin))

    # ------------------------------------------------------------------ sending

    def send(self, instructions: list[Instruction], payer: Keypair, *signers: Keypair):
        message = Message.new_with_blockhash(instructions, payer.pubkey(), self.svm.latest_blockhash())
        result = self.svm.send_transaction(VersionedTransaction(message, [payer, *signers]))
        self.svm.expire_blockhash()
        restore_float_environment()  # LiteSVM leaves it changed (see the embedded chain)
        return result

    @staticmethod
    def error(result) -> str | None:
        """None on success; else the curve program's error name (``Slippage``…), the token
        program's (``token:InsufficientFunds``) when a CPI into it failed, or the runtime's text."""
        if not isinstance(result, FailedTransactionMetadata):
            return None
        for line in result.meta().logs():  # the innermost program that failed comes first
            if " failed: custom program error: 0x" in line:
                program = line.split()[1]
                code = int(line.rsplit("0x", 1)[1], 16)
                if program == str(PROGRAM_ID):
                    return ERRORS.get(code, f"Custom({code})")
                if program == str(TOKEN_2022_PROGRAM_ID):
                    return "token:" + TOKEN_ERRORS.get(code, str(code))
                return f"{program}:{code}"
        return str(result.err())

    def ok(self, result):
        name = self.error(result)
        if name is not None:
            raise Failed(name, result)
        return result

    def wallet(self, lamports: int = 10**12) -> Keypair:
        kp = Keypair()
        self.svm.airdrop(kp.pubkey(), lamports)
        return kp

    def warp_seconds(self, seconds: int) -> None:
        clock = self.svm.get_clock()
        clock.unix_timestamp += seconds
        self.svm.set_clock(clock)

    # ------------------------------------------------------------------ instructions

    @staticmethod
    def init_config_ix(admin: Pubkey, terms: market.ConfigTerms, config: Pubkey | None = None) -> Instruction:
        ix = market.init_config(admin, terms)
        return ix if config is None else with_account(ix, 1, config)

    @staticmethod
    def set_config_ix(admin: Pubkey, new_admin: Pubkey, terms: market.ConfigTerms) -> Instruction:
        return market.set_config(admin, new_admin, terms)

    @staticmethod
    def create_curve_ix(
        payer: Pubkey,
        creator: Pubkey,
        mint: Pubkey,
        *,
        launch_fee_bps: int = 0,
        window: int = 0,
        in_slots: bool = False,
        curve: Pubkey | None = None,
        vault: Pubkey | None = None,
        config: Pubkey | None = None,
    ) -> Instruction:
        ix = market.create_curve(payer, creator, mint, launch_fee_bps=launch_fee_bps, window=window, in_slots=in_slots)
        for index, key in ((3, curve), (4, vault), (5, config)):  # attacks name other accounts
            if key is not None:
                ix = with_account(ix, index, key)
        return ix

    def trade_accounts(
        self, launched: Launched, trader: Pubkey, token_account: Pubkey | None = None
    ) -> list[AccountMeta]:
        return [
            AccountMeta(trader, True, True),
            AccountMeta(launched.curve, False, True),
            AccountMeta(launched.vault, False, True),
            AccountMeta(token_account or associated_token_address(trader, launched.mint), False, True),
            AccountMeta(launched.mint, False, False),
            AccountMeta(self.terms.fee_recipient, False, True),
            AccountMeta(TOKEN_2022_PROGRAM_ID, False, False),
        ]

    def buy_ix(
        self,
        launched: Launched,
        buyer: Pubkey,
        native_in: int,
        min_out: int = 0,
        deadline: int = 0,
        accounts: list[AccountMeta] | None = None,
    ) -> Instruction:
        if accounts is None:  # what TokenForge builds (its first instruction creates the ATA)
            return market.buy(launched.mint, buyer, self.terms.fee_recipient, native_in, min_out, deadline)[1]
        return Instruction(PROGRAM_ID, b"\x03" + struct.pack("<QQq", native_in, min_out, deadline), accounts)

    def sell_ix(
        self,
        launched: Launched,
        seller: Pubkey,
        tokens_in: int,
        min_out: int = 0,
        deadline: int = 0,
        accounts: list[AccountMeta] | None = None,
    ) -> Instruction:
        if accounts is None:
            return market.sell(launched.mint, seller, self.terms.fee_recipient, tokens_in, min_out, deadline)
        return Instruction(PROGRAM_ID, b"\x04" + struct.pack("<QQq", tokens_in, min_out, deadline), accounts)

    @staticmethod
    def claim_ix(launched: Launched, creator: Pubkey) -> Instruction:
        return market.claim(launched.mint, creator)

    def graduate_ixs(self, launched: Launched, payer: Pubkey, **replace: Pubkey) -> list[Instruction]:
        """Creating the pool's vault (an ATA of the pool PDA), then ``graduate``; ``replace``
        swaps named accounts (for attacks)."""
        if not replace:
            return market.graduate(launched.mint, payer, self.terms.fee_recipient)
        pool = pool_address(launched.mint)
        named = {
            "payer": payer,
            "curve": launched.curve,
            "curve_vault": launched.vault,
            "mint": launched.mint,
            "pool": pool,
            "pool_vault": associated_token_address(pool, launched.mint),
            "lp_mint": lp_mint_address(launched.mint),
            "lp_account": lp_account_address(launched.mint),
            "fee_recipient": self.terms.fee_recipient,
            "token_program": TOKEN_2022_PROGRAM_ID,
            "system": SYSTEM_PROGRAM_ID,
        }
        named.update(replace)
        readonly = {"mint", "token_program", "system"}
        metas = [AccountMeta(key, name == "payer", name not in readonly) for name, key in named.items()]
        vault = create_associated_token_account_idempotent(payer, pool, launched.mint)
        return [vault, Instruction(PROGRAM_ID, b"\x06", metas)]

    def swap_ix(
        self, launched: Launched, trader: Pubkey, is_buy: bool, amount_in: int, min_out: int = 0, deadline: int = 0
    ) -> Instruction:
        return market.swap(launched.mint, trader, is_buy, amount_in, min_out, deadline)

    # ------------------------------------------------------------------ flows

    def mint_setup(
        self, supply: int, decimals: int, *, owner_of_supply: Pubkey | None = None, revoke: bool = True
    ) -> tuple[Keypair, list[Instruction]]:
        """A Token-2022 mint with ``supply`` minted to ``owner_of_supply``'s ATA (default: the
        curve PDA's) and, when ``revoke``, no mint authority left."""
        mint = Keypair()
        payer = self.admin.pubkey()
        owner = owner_of_supply or curve_address(mint.pubkey())
        rent = self.svm.minimum_balance_for_rent_exemption(82)
        ixs = [
            create_account(
                CreateAccountParams(
                    from_pubkey=payer, to_pubkey=mint.pubkey(), lamports=rent, space=82, owner=TOKEN_2022_PROGRAM_ID
                )
            ),
            initialize_mint2(mint.pubkey(), decimals, payer, None),
            create_associated_token_account_idempotent(payer, owner, mint.pubkey()),
            mint_to_checked(mint.pubkey(), associated_token_address(owner, mint.pubkey()), payer, supply, decimals),
        ]
        if revoke:
            ixs.append(set_authority(mint.pubkey(), payer, 0, None))
        return mint, ixs

    def launch(self, supply: int = 10**18, decimals: int = 9, **fee) -> Launched:
        creator = self.wallet(10**9)
        mint, ixs = self.mint_setup(supply, decimals)
        ixs.append(self.create_curve_ix(self.admin.pubkey(), creator.pubkey(), mint.pubkey(), **fee))
        self.ok(self.send(ixs, self.admin, mint))
        curve = curve_address(mint.pubkey())
        return Launched(mint.pubkey(), curve, associated_token_address(curve, mint.pubkey()), creator, supply, decimals)

    def ensure_token_account(self, launched: Launched, owner: Pubkey) -> Pubkey:
        self.ok(
            self.send(
                [create_associated_token_account_idempotent(self.admin.pubkey(), owner, launched.mint)], self.admin
            )
        )
        return associated_token_address(owner, launched.mint)

    def buy(self, launched: Launched, buyer: Keypair, native_in: int, **kw):
        self.ensure_token_account(launched, buyer.pubkey())
        return self.send([self.buy_ix(launched, buyer.pubkey(), native_in, **kw)], buyer)

    def sell(self, launched: Launched, seller: Keypair, tokens_in: int, **kw):
        return self.send([self.sell_ix(launched, seller.pubkey(), tokens_in, **kw)], seller)

    # ------------------------------------------------------------------ reads

    def curve(self, launched: Launched) -> market.CurveAccount:
        curve = market.read_curve(bytes(self.svm.get_account(launched.curve).data))
        assert curve is not None
        return curve

    def pool(self, launched: Launched) -> PoolAccount:
        data = bytes(self.svm.get_account(pool_address(launched.mint)).data)
        assert data[0] == 3 and data[1] == 1
        native, tokens, lp = struct.unpack_from("<3Q", data, 104)
        return PoolAccount(
            Pubkey.from_bytes(data[8:40]),
            Pubkey.from_bytes(data[40:72]),
            Pubkey.from_bytes(data[72:104]),
            native,
            tokens,
            lp,
            struct.unpack_from("<H", data, 128)[0],
        )

    def mint_supply(self, mint: Pubkey) -> int:
        return struct.unpack_from("<Q", bytes(self.svm.get_account(mint).data), 36)[0]

    def lamports(self, address: Pubkey) -> int:
        account = self.svm.get_account(address)
        return 0 if account is None else account.lamports

    def token_balance(self, token_account: Pubkey) -> int:
        account = self.svm.get_account(token_account)
        return 0 if account is None else struct.unpack_from("<Q", bytes(account.data), 64)[0]

    def balance_of(self, launched: Launched, owner: Pubkey) -> int:
        return self.token_balance(associated_token_address(owner, launched.mint))
