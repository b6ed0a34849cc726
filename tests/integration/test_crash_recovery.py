"""Kill the real server between "signed" and "confirmed", restart it, and check on the
chain itself that the token exists exactly once.

The first run has the crash fault armed (TOKENFORGE_FAULT_CRASH_POINT): the process exits
abruptly right after recording the signed transaction, or right after broadcasting it.
The second run, on the same data directory, must resume the job from the database and
finish it without signing a second token.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.support.erc20 import ERC20_ABI
from tests.support.server import crash_and_resume
from tests.support.solana_decode import ata_of, curve_of, decode_mint, decode_token_account

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("crash_point", ["after_sign", "after_broadcast"])
@pytest.mark.parametrize("chain", ["ethereum", "solana"])
def test_killed_between_signed_and_confirmed_token_exists_exactly_once(tmp_path, chain, crash_point):
    data_dir = tmp_path / "data"
    creator = str(Keypair().pubkey()) if chain == "solana" else Account.create().address
    body = {
        "chain": chain,
        "name": "Crash Proof",
        "symbol": "CRASH",
        "decimals": 6,
        "supply": "777000",
        "creator": creator,
    }

    accepted, _job, _events, token = crash_and_resume(data_dir, chain, crash_point, body)
    job_id = accepted["job"]["id"]
    assert token["status"] == "live"
    supply_base_units = 777000 * 10**6

    # Read the chain's persisted state independently, with the server stopped.
    if chain == "ethereum":
        from tokenforge.chains.evm.codec import TOKEN_CREATED_TOPIC, curve_address, launch_salt
        from tokenforge.chains.evm.embedded import EmbeddedEvmChain

        evm = EmbeddedEvmChain(data_dir / "chains" / chain, 1337)
        try:
            w3 = evm.web3()
            erc20 = w3.eth.contract(address=token["address"], abi=ERC20_ABI)
            assert erc20.functions.totalSupply().call() == supply_base_units
            # the whole supply sits in the token's bonding curve
            assert erc20.functions.balanceOf(curve_address(token["address"])).call() == supply_base_units
            assert erc20.functions.balanceOf(creator).call() == 0
            created = w3.eth.get_logs(
                {"fromBlock": 0, "toBlock": "latest", "topics": [TOKEN_CREATED_TOPIC, None, None, launch_salt(job_id)]}
            )
            assert len(created) == 1, "exactly one token for the job"
        finally:
            evm.close()
    else:
        from tokenforge.chains.solana.embedded import EmbeddedSolanaChain

        sol = EmbeddedSolanaChain(data_dir / "chains" / chain)
        try:
            mint = Pubkey.from_string(token["address"])
            m = decode_mint(sol.get_account(mint).data)
            assert m.supply == supply_base_units and m.mint_authority is None
            _, _, amount, _ = decode_token_account(sol.get_account(ata_of(curve_of(mint), mint)).data)
            assert amount == supply_base_units
            landed = [s for s in sol.signatures_for_address(mint) if s.err is None]
            assert len(landed) == 1, "exactly one successful launch transaction for the mint"
        finally:
            sol.close()
