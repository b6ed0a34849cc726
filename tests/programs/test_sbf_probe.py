"""The probe program (programs/probe) on LiteSVM: the runtime features the Solana market
program is built on work from stock clang and TokenForge's post-linker — logs, return data,
128-bit math, PDAs found on chain, a system-program CPI signed by a PDA, and a Token-2022
``transfer_checked`` CPI whose authority is a PDA."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from tests.support.sbf import PROGRAMS
from tokenforge.chains.solana.embedded import restore_float_environment
from tokenforge.chains.solana.instructions import (
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    associated_token_address,
    create_associated_token_account_idempotent,
    initialize_mint2,
    mint_to_checked,
)

PROGRAM_ID = Pubkey.from_string("TFprobe111111111111111111111111111111111111")
U64 = 2**64 - 1


class Chain:
    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.svm.add_program(PROGRAM_ID, (PROGRAMS / "probe.so").read_bytes())
        self.payer = Keypair()
        self.svm.airdrop(self.payer.pubkey(), 10**11)

    def send(self, instructions: list[Instruction], *signers: Keypair):
        message = Message.new_with_blockhash(instructions, self.payer.pubkey(), self.svm.latest_blockhash())
        result = self.svm.send_transaction(VersionedTransaction(message, [self.payer, *signers]))
        self.svm.expire_blockhash()
        restore_float_environment()
        return result

    def probe(self, data: bytes, accounts: list[AccountMeta] | None = None):
        return self.send([Instruction(PROGRAM_ID, data, accounts or [])])


def custom_error(result) -> int | None:
    """The program's Custom(n) error code, None when the transaction succeeded."""
    if not isinstance(result, FailedTransactionMetadata):
        return None
    text = str(result.err())
    assert "Custom(" in text, text
    return int(text.split("Custom(")[1].split(")")[0])


@pytest.fixture(scope="module")
def chain() -> Chain:
    return Chain()


def test_return_data_and_logs(chain) -> None:
    result = chain.probe(b"\x00tokenforge")
    assert custom_error(result) is None
    assert bytes(result.return_data().data) == b"tokenforge"
    assert "Program log: probe: echo" in result.logs()


def test_an_unknown_instruction_is_a_custom_error(chain) -> None:
    assert custom_error(chain.probe(b"\x09")) == 1


@settings(max_examples=40, deadline=None)
@given(a=st.integers(0, U64), b=st.integers(0, U64), c=st.integers(1, U64))
def test_128_bit_mul_div_matches_python(chain, a, b, c) -> None:
    result = chain.probe(b"\x01" + struct.pack("<QQQ", a, b, c))
    expected = a * b // c
    if expected > U64:
        assert custom_error(result) == 3
    else:
        assert custom_error(result) is None
        assert struct.unpack("<Q", bytes(result.return_data().data))[0] == expected


def pda_of(payer: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([b"probe", bytes(payer)], PROGRAM_ID)[0]


def test_a_system_cpi_signed_by_the_programs_pda_creates_it() -> None:
    chain = Chain()
    pda = pda_of(chain.payer.pubkey())
    accounts = [
        AccountMeta(chain.payer.pubkey(), True, True),
        AccountMeta(pda, False, True),
        AccountMeta(SYSTEM_PROGRAM_ID, False, False),
    ]
    assert custom_error(chain.probe(b"\x02" + struct.pack("<Q", 10**7), accounts)) is None
    account = chain.svm.get_account(pda)
    assert account is not None and account.owner == PROGRAM_ID and len(account.data) == 8
    assert account.lamports == 10**7
    # any other address is refused before the CPI (it is not the PDA of this payer)
    impostor = Keypair().pubkey()
    accounts[1] = AccountMeta(impostor, False, True)
    assert custom_error(chain.probe(b"\x02" + struct.pack("<Q", 10**7), accounts)) == 2
    assert chain.svm.get_account(impostor) is None


def token_balance(chain: Chain, account: Pubkey) -> int:
    data = bytes(chain.svm.get_account(account).data)
    return struct.unpack_from("<Q", data, 64)[0]  # mint 32, owner 32, amount u64


def test_a_token_2022_transfer_checked_cpi_with_a_pda_as_the_authority() -> None:
    chain = Chain()
    payer = chain.payer.pubkey()
    mint = Keypair()
    authority = pda_of(payer)  # the PDA owns the source token account
    recipient = Keypair().pubkey()
    rent = chain.svm.minimum_balance_for_rent_exemption(82)
    setup = [
        create_account(
            CreateAccountParams(
                from_pubkey=payer, to_pubkey=mint.pubkey(), lamports=rent, space=82, owner=TOKEN_2022_PROGRAM_ID
            )
        ),
        initialize_mint2(mint.pubkey(), 6, payer, None),
        create_associated_token_account_idempotent(payer, authority, mint.pubkey()),
        create_associated_token_account_idempotent(payer, recipient, mint.pubkey()),
        mint_to_checked(mint.pubkey(), associated_token_address(authority, mint.pubkey()), payer, 1_000_000, 6),
    ]
    assert custom_error(chain.send(setup, mint)) is None
    source = associated_token_address(authority, mint.pubkey())
    destination = associated_token_address(recipient, mint.pubkey())

    def transfer(amount: int, authority_of: Pubkey, authority_key: Pubkey):
        accounts = [
            AccountMeta(source, False, True),
            AccountMeta(mint.pubkey(), False, False),
            AccountMeta(destination, False, True),
            AccountMeta(authority_key, False, False),
            AccountMeta(TOKEN_2022_PROGRAM_ID, False, False),
            AccountMeta(authority_of, False, False),
        ]
        return chain.probe(b"\x03" + struct.pack("<QB", amount, 6), accounts)

    assert custom_error(transfer(250_000, payer, authority)) is None
    assert token_balance(chain, source) == 750_000
    assert token_balance(chain, destination) == 250_000
    other = Keypair().pubkey()
    # an authority that is not the PDA of the payer named: the probe refuses before the CPI
    assert custom_error(transfer(1, payer, pda_of(other))) == 2
    # another payer's PDA signs, but it does not own the source: Token-2022's OwnerMismatch (4)
    assert custom_error(transfer(1, other, pda_of(other))) == 4
    # more than the source holds: the token program refuses (InsufficientFunds = 1)
    assert custom_error(transfer(10**7, payer, authority)) == 1
    assert token_balance(chain, source) == 750_000
