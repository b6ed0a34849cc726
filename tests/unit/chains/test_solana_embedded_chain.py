import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from tokenforge.chains.solana import embedded
from tokenforge.chains.solana.embedded import BLOCKHASH_VALID_SLOTS, EmbeddedSolanaChain
from tokenforge.chains.solana.transport import SendOutcome
from tokenforge.errors import PermanentError, TransientError

SOL = 1_000_000_000


def _transfer(payer: Keypair, to, lamports: int, blockhash: Hash) -> bytes:
    msg = Message.new_with_blockhash(
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))],
        payer.pubkey(),
        blockhash,
    )
    return bytes(Transaction([payer], msg, blockhash))


@pytest.fixture
def chain():
    c = EmbeddedSolanaChain(None)
    yield c
    c.close()


def test_slot_advances_with_time_and_never_backwards(chain, monkeypatch):
    monkeypatch.setattr(embedded, "SLOT_DURATION_S", 0.001)
    seen = [chain.slot() for _ in range(50)]
    assert seen == sorted(seen)
    import time

    time.sleep(0.02)
    before = chain.slot()
    assert before > seen[-1]
    height = chain.block_height()
    assert before <= height <= chain.slot()  # block height follows the slot (read between two slots)


def test_blockhash_window(chain):
    blockhash, last_valid = chain.latest_blockhash()
    assert last_valid == chain.slot() + BLOCKHASH_VALID_SLOTS
    assert chain.is_blockhash_valid(blockhash)
    assert not chain.is_blockhash_valid(Hash.new_unique())
    before = chain.slot()
    chain.expire_blockhash()
    assert chain.slot() > last_valid >= before
    assert not chain.is_blockhash_valid(blockhash)
    fresh, _ = chain.latest_blockhash()
    assert fresh != blockhash and chain.is_blockhash_valid(fresh)


def test_send_outcomes(chain):
    payer = Keypair()
    chain.airdrop(payer.pubkey(), 10 * SOL)
    to = Keypair().pubkey()
    blockhash, _ = chain.latest_blockhash()
    raw = _transfer(payer, to, SOL, blockhash)
    assert chain.send_raw_transaction(raw) is SendOutcome.ACCEPTED
    assert chain.send_raw_transaction(raw) is SendOutcome.ALREADY_PROCESSED
    sig = Transaction.from_bytes(raw).signatures[0]
    status = chain.get_transaction_status(sig)
    assert status is not None and status.err is None and status.fee_lamports == 5000
    assert chain.get_balance(to) == SOL
    assert [s.signature for s in chain.signatures_for_address(to)] == [sig]
    # unknown blockhash: nothing happens
    stale = _transfer(payer, to, SOL, Hash.new_unique())
    assert chain.send_raw_transaction(stale) is SendOutcome.BLOCKHASH_NOT_FOUND
    assert chain.get_balance(to) == SOL
    # payer that does not exist: rejected, not included
    with pytest.raises(PermanentError) as info:
        chain.send_raw_transaction(_transfer(Keypair(), to, 1, blockhash))
    assert info.value.code == "insufficient_funds"
    with pytest.raises(PermanentError):
        chain.send_raw_transaction(b"\x01garbage")


def test_failed_execution_is_recorded_with_fee(chain):
    payer = Keypair()
    chain.airdrop(payer.pubkey(), SOL)
    blockhash, _ = chain.latest_blockhash()
    raw = _transfer(payer, Keypair().pubkey(), 5 * SOL, blockhash)  # more than it has
    assert chain.send_raw_transaction(raw) is SendOutcome.ACCEPTED
    status = chain.get_transaction_status(Transaction.from_bytes(raw).signatures[0])
    assert status.err is not None and status.instruction_index == 0 and status.custom_code == 1
    assert chain.get_balance(payer.pubkey()) == SOL - 5000


def test_state_survives_reopen(tmp_path):
    payer, to = Keypair(), Keypair().pubkey()
    c = EmbeddedSolanaChain(tmp_path)
    c.airdrop(payer.pubkey(), 10 * SOL)
    blockhash, _ = c.latest_blockhash()
    raw = _transfer(payer, to, 2 * SOL, blockhash)
    assert c.send_raw_transaction(raw) is SendOutcome.ACCEPTED
    c.expire_blockhash()
    slot_before = c.slot()
    c.close()
    with pytest.raises(TransientError):
        c.slot()

    c2 = EmbeddedSolanaChain(tmp_path)
    try:
        assert c2.slot() > slot_before
        assert c2.get_balance(to) == 2 * SOL
        assert c2.get_balance(payer.pubkey()) == 8 * SOL - 5000
        assert c2.send_raw_transaction(raw) is SendOutcome.ALREADY_PROCESSED
        assert c2.get_transaction_status(Transaction.from_bytes(raw).signatures[0]).err is None
        fresh, _ = c2.latest_blockhash()
        assert c2.send_raw_transaction(_transfer(payer, to, SOL, fresh)) is SendOutcome.ACCEPTED
        assert c2.get_balance(to) == 3 * SOL
    finally:
        c2.close()


def test_blockhash_issued_before_restart_stays_valid(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(embedded, "SLOT_DURATION_S", 0.001)
    c = EmbeddedSolanaChain(tmp_path)
    time.sleep(0.01)  # a later slot than anything stored so far
    blockhash, last_valid = c.latest_blockhash()
    issued_slot = last_valid - BLOCKHASH_VALID_SLOTS
    assert issued_slot > 0
    c.close()
    c2 = EmbeddedSolanaChain(tmp_path)
    try:
        assert c2.slot() > issued_slot
        assert c2.is_blockhash_valid(blockhash)
    finally:
        c2.close()


def test_state_dir_is_owned_by_one_chain_at_a_time(tmp_path):
    c = EmbeddedSolanaChain(tmp_path)
    try:
        with pytest.raises(TransientError) as info:
            EmbeddedSolanaChain(tmp_path)
        assert info.value.code == "chain_in_use"
    finally:
        c.close()
    EmbeddedSolanaChain(tmp_path).close()  # free again after close
