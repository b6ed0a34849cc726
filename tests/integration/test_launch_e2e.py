"""Launch through the HTTP API on the embedded default; verify every token independently.

EVM tokens are read with plain web3.py and the standard ERC-20 ABI (a launch mints the
whole supply to the token's bonding curve, the token's first CREATE); Solana mints are
decoded byte by byte from their accounts. Nothing here uses TokenForge's own readers.
"""

from __future__ import annotations

import asyncio

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.support.erc20 import ERC20_ABI
from tests.support.solana_decode import TOKEN_2022, ata_of, decode_mint, decode_token_account
from tests.support.solana_decode import curve_of as solana_curve_of
from tests.support.stack import running_stack, wait_final
from tokenforge.chains.solana.market import read_curve

pytestmark = pytest.mark.slow
#: the curve's buy(minTokensOut, deadline), written out by hand
BUY_ABI = [
    {
        "type": "function",
        "name": "buy",
        "stateMutability": "payable",
        "inputs": [{"name": "minTokensOut", "type": "uint256"}, {"name": "deadline", "type": "uint256"}],
        "outputs": [{"type": "uint256"}],
    }
]


def curve_of(token: str) -> str:
    """The address of the contract ``token`` created first (CREATE at nonce 1): its curve."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(token), 1]))[12:])


@pytest.fixture
def embedded_settings(settings):
    settings.chains = {"ethereum": "embedded", "base": "embedded", "solana": "embedded"}
    return settings


async def launch_all(client, bodies):
    accepted = [await client.post("/v1/tokens", json=b) for b in bodies]
    assert all(r.status_code == 202 for r in accepted), [r.text for r in accepted]
    jobs = await asyncio.gather(*(wait_final(client, r.json()["job"]["id"]) for r in accepted))
    assert [j["status"] for j in jobs] == ["confirmed"] * len(bodies), jobs
    return [(await client.get(f"/v1/tokens/{r.json()['token']['id']}")).json() for r in accepted]


async def test_evm_tokens_read_back_with_plain_web3(embedded_settings):
    holders = [Account.create() for _ in range(3)]
    bodies = [
        {
            "chain": chain,
            "name": f"Forge {chain} {i}",
            "symbol": f"F{i}",
            "decimals": 6 + i,
            "supply": str(1_000_000 * (i + 1)),
            "creator": holders[i].address,
        }
        for chain in ("ethereum", "base")
        for i in range(3)
    ]
    async with running_stack(embedded_settings) as (container, client):
        tokens = await launch_all(client, bodies)
        for token, body in zip(tokens, bodies, strict=True):
            assert token["status"] == "live"
            assert token["gas_used"] <= 200_000
            deployer = await container.deployers.get(token["chain"])
            w3 = deployer.embedded.web3()
            erc20 = w3.eth.contract(address=token["address"], abi=ERC20_ABI)
            supply_base_units = int(body["supply"]) * 10 ** body["decimals"]
            assert erc20.functions.name().call() == body["name"]
            assert erc20.functions.symbol().call() == body["symbol"]
            assert erc20.functions.decimals().call() == body["decimals"]
            assert erc20.functions.totalSupply().call() == supply_base_units
            assert erc20.functions.balanceOf(curve_of(token["address"])).call() == supply_base_units
            assert erc20.functions.balanceOf(body["creator"]).call() == 0
            assert token["supply_base_units"] == str(supply_base_units)

        # the supply is really for sale: a wallet buys from the curve, then transfers what it got
        token, buyer = tokens[0], Account.create()
        deployer = await container.deployers.get(token["chain"])
        await deployer.embedded.run(deployer.embedded.fund, buyer.address, 10**18)
        w3 = deployer.embedded.web3()
        erc20 = w3.eth.contract(address=token["address"], abi=ERC20_ABI)
        curve = w3.eth.contract(address=curve_of(token["address"]), abi=BUY_ABI)

        async def send(fn, value_wei: int = 0):
            tx = fn.build_transaction(
                {
                    "from": buyer.address,
                    "value": value_wei,
                    "nonce": w3.eth.get_transaction_count(buyer.address),
                    "gas": 200_000,
                    "maxFeePerGas": w3.eth.gas_price * 2,
                    "maxPriorityFeePerGas": 1,
                    "chainId": w3.eth.chain_id,
                }
            )
            tx_hash = w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction)
            return await asyncio.to_thread(w3.eth.wait_for_transaction_receipt, tx_hash, 30, 0.02)

        bought = await send(curve.functions.buy(1, 2**40), 10**15)
        assert bought.status == 1
        held = erc20.functions.balanceOf(buyer.address).call()
        assert held > 12345
        recipient = Account.create().address
        receipt = await send(erc20.functions.transfer(recipient, 12345))
        assert receipt.status == 1
        (event,) = erc20.events.Transfer().process_receipt(receipt)
        assert (event.args["from"], event.args["to"], event.args["value"]) == (buyer.address, recipient, 12345)
        assert erc20.functions.balanceOf(recipient).call() == 12345
        assert erc20.functions.balanceOf(buyer.address).call() == held - 12345


async def test_solana_mints_decode_independently(embedded_settings):
    creators = [Keypair().pubkey() for _ in range(4)]
    bodies = [
        {
            "chain": "solana",
            "name": f"Sol Forge {i}",
            "symbol": f"SF{i}",
            "decimals": 9 - i,
            "supply": str(10_000 * (i + 1)),
            "creator": str(creators[i]),
            "metadata_uri": f"https://meta.example.org/{i}.json",
        }
        for i in range(4)
    ]
    async with running_stack(embedded_settings) as (container, client):
        tokens = await launch_all(client, bodies)
        chain = (await container.deployers.get("solana")).embedded
        for token, body, creator in zip(tokens, bodies, creators, strict=True):
            supply_base_units = int(body["supply"]) * 10 ** body["decimals"]
            mint = Pubkey.from_string(token["address"])
            account = chain.get_account(mint)
            assert account.owner == TOKEN_2022
            m = decode_mint(account.data)
            assert (m.supply, m.decimals) == (supply_base_units, body["decimals"])
            assert m.mint_authority is None and m.freeze_authority is None
            assert m.pointer_address == mint
            assert (m.name, m.symbol, m.uri) == (body["name"], body["symbol"], body["metadata_uri"])
            curve = solana_curve_of(mint)  # the token's curve holds the supply
            vault = chain.get_account(ata_of(curve, mint))
            acct_mint, owner, amount, _ = decode_token_account(vault.data)
            assert (acct_mint, owner, amount) == (mint, curve, supply_base_units)
            assert str(read_curve(chain.get_account(curve).data).creator) == str(creator)
            assert int(token["fee_paid_base_units"]) > 0
