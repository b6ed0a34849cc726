"""The chains the deployer contract suite runs on, each behind one small interface.

A :class:`ChainUnderTest` opens deployers the way the application does (the fake aside:
``tokenforge.bootstrap.deployer_factories`` from ``Settings`` and a ``LocalKeyStore``) and
offers what the suite needs around the port: mine a block or wait for the next slot,
make a signed launch unable to land, and read from the chain, without the adapter, which
transactions created a token.

* fake: ``tests/support/fake_deployer.py``, every instance over one :class:`FakeLedger`;
* EVM (embedded, ``tokenforge devnet``, Hardhat): blocks are mined with ``evm_mine`` (the
  embedded chain's ``mine_block``); a launch becomes unable to land when a plain transfer
  signed with the same deployer key takes its nonce, the way the nonce keeper fills a gap;
  creations are the factory's ``TokenCreated`` logs, read with plain web3.py;
* Solana (embedded, ``tokenforge devnet``): a launch becomes unable to land when the
  block height passes its ``last_valid_block_height``; creations are the mint's
  successful signatures, read with solana-py (embedded: from the chain object).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from solders.keypair import Keypair
from web3 import Web3

from tests.support.fake_deployer import FakeDeployer, FakeLedger
from tokenforge.chains.evm import codec
from tokenforge.chains.ports import ChainDeployer, LaunchRequest, SignedLaunch

#: The factory's ``TokenCreated``: topic 1 is the token, topic 2 its creator, topic 3 the salt.
TOKEN_CREATED_TOPIC = "0x" + codec.TOKEN_CREATED_TOPIC.hex()
ADVANCE_TIMEOUT_S = 10.0
EVM_DEV_FUND_WEI = 10**21
SOLANA_DEV_FUND_LAMPORTS = 10**13


def evm_request(job_id: str | None = None) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id or uuid.uuid4().hex,
        chain="ethereum",
        name="Contract Token",
        symbol="CTK",
        decimals=18,
        supply_base_units=10**27,
        creator=Account.create().address,
    )


def solana_request(job_id: str | None = None) -> LaunchRequest:
    return LaunchRequest(
        job_id=job_id or uuid.uuid4().hex,
        chain="solana",
        name="Contract Mint",
        symbol="CMT",
        decimals=6,
        supply_base_units=5000 * 10**6,
        creator=str(Keypair().pubkey()),
        metadata_uri="https://example.com/contract.json",
    )


class ChainUnderTest:
    """One chain and the deployers a case opened on it (closed by :meth:`close`)."""

    name: str
    family: str  # "evm" or "solana"

    def __init__(self) -> None:
        self._deployers: list[ChainDeployer] = []
        self._last_options: dict = {}

    @property
    def has_depth(self) -> bool:
        """``open(confirmations=N)`` makes ``confirm`` wait for N blocks (EVM, the fake)."""
        return self.family == "evm"

    def request(self, job_id: str | None = None) -> LaunchRequest:
        return evm_request(job_id) if self.family == "evm" else solana_request(job_id)

    async def open(self, *, confirmations: int = 1, commitment: str = "confirmed") -> ChainDeployer:
        """A new deployer instance over the same chain state and keys."""
        self._last_options = {"confirmations": confirmations, "commitment": commitment}
        deployer = await self._open(confirmations=confirmations, commitment=commitment)
        self._deployers.append(deployer)
        return deployer

    async def restart(self, deployer: ChainDeployer) -> ChainDeployer:
        """The deployer's process ends without warning; a new instance takes over."""
        self._deployers.remove(deployer)
        await deployer.close()
        return await self.open(**self._last_options)

    async def close(self) -> None:
        for deployer in self._deployers:
            await deployer.close()
        self._deployers.clear()

    # -- per chain -----------------------------------------------------------------------

    async def _open(self, *, confirmations: int, commitment: str) -> ChainDeployer:
        raise NotImplementedError

    async def advance(self, deployer: ChainDeployer) -> None:
        """One more block (EVM: mined now, with whatever is pending) or slot (Solana)."""
        raise NotImplementedError

    async def make_unlandable(self, deployer: ChainDeployer, signed: SignedLaunch) -> None:
        """From now on ``signed`` (never broadcast) can never land."""
        raise NotImplementedError

    async def creations(self, deployer: ChainDeployer, token_address: str) -> list[str]:
        """Ids of the transactions that created ``token_address``, read from the chain."""
        raise NotImplementedError

    async def head(self, deployer: ChainDeployer) -> int:
        """EVM: the newest block number."""
        raise NotImplementedError

    async def block_of(self, deployer: ChainDeployer, tx_id: str) -> int | None:
        """EVM: the block that included ``tx_id``, None while it is not included."""
        raise NotImplementedError


# ---------------------------------------------------------------- fake


class FakeChain(ChainUnderTest):
    name, family = "fake", "evm"

    def __init__(self) -> None:
        super().__init__()
        self.ledger = FakeLedger()

    async def _open(self, *, confirmations: int, commitment: str) -> ChainDeployer:
        return FakeDeployer("ethereum", confirmations=confirmations, ledger=self.ledger)

    async def advance(self, deployer) -> None:
        self.ledger.mine()

    async def make_unlandable(self, deployer, signed) -> None:
        self.ledger.expire(signed)

    async def creations(self, deployer, token_address) -> list[str]:
        return self.ledger.creations(token_address)

    async def head(self, deployer) -> int:
        return self.ledger.height

    async def block_of(self, deployer, tx_id) -> int | None:
        included = self.ledger.included.get(tx_id)
        return None if included is None else included.block


# ---------------------------------------------------------------- real adapters


@dataclass(eq=False)
class SettingsChain(ChainUnderTest):
    """An adapter opened from settings, the way ``tokenforge`` opens it."""

    name: str
    family: str
    chain: str  # registry name: "ethereum" or "solana"
    data_dir: Path  # keys, embedded chain state, database
    url: str | None = None  # JSON-RPC endpoint (network "local"); None: embedded
    chain_settings: dict = field(default_factory=dict)
    _engine: Any = None
    _sessions: Any = None
    _keystore: Any = None

    def __post_init__(self) -> None:
        ChainUnderTest.__init__(self)

    def via(self, url: str) -> SettingsChain:
        """The same chain, keys and database reached through another endpoint (a proxy)."""
        other = dataclasses.replace(self, url=url)
        other._engine = None  # the engine stays owned (and disposed) by self
        return other

    async def _prepare(self) -> None:
        from tokenforge.keys.local import LocalKeyStore

        if self._keystore is None:
            self._keystore = LocalKeyStore(self.data_dir)
        if self._sessions is None and self.url is not None and self.family == "evm":
            from tokenforge.store.db import make_engine, make_sessionmaker
            from tokenforge.store.migrate import upgrade_to_head

            # EVM nonces over JSON-RPC are kept in the database, as with several workers
            self._engine = make_engine(f"sqlite+aiosqlite:///{(self.data_dir / 'tokenforge.db').resolve()}")
            await upgrade_to_head(self._engine)
            self._sessions = make_sessionmaker(self._engine)

    async def _open(self, *, confirmations: int, commitment: str) -> ChainDeployer:
        from tokenforge.bootstrap import deployer_factories
        from tokenforge.config import Settings

        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self._prepare()
        cs: dict = dict(self.chain_settings)
        if self.family == "evm":
            cs["confirmations"] = confirmations
        else:
            cs["commitment"] = commitment
        if self.url is not None:
            fund = EVM_DEV_FUND_WEI if self.family == "evm" else SOLANA_DEV_FUND_LAMPORTS
            cs.update(network="local", endpoints=[self.url], dev_fund_base_units=fund)
        settings = Settings(data_dir=self.data_dir, chains={self.chain: cs})
        return await deployer_factories(settings, self._keystore, self._sessions)[self.chain]()

    async def close(self) -> None:
        await super().close()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._sessions = None

    # -- EVM -----------------------------------------------------------------------------

    def _web3(self, deployer) -> Web3:
        if self.url is None:
            return deployer.embedded.web3()  # a plain synchronous client over the embedded chain
        return Web3(Web3.HTTPProvider(self.url))

    async def _rpc(self, method: str, params: list) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = (
                await client.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            ).json()
        if "error" in reply:
            raise AssertionError(f"{method} failed: {reply['error']}")
        return reply["result"]

    async def head(self, deployer) -> int:
        return int(await asyncio.to_thread(lambda: self._web3(deployer).eth.block_number))

    async def block_of(self, deployer, tx_id) -> int | None:
        from web3.exceptions import TransactionNotFound

        def read() -> int | None:
            try:
                return int(self._web3(deployer).eth.get_transaction_receipt(tx_id)["blockNumber"])
            except TransactionNotFound:
                return None

        return await asyncio.to_thread(read)

    async def _mine(self, deployer) -> None:
        if self.url is None:
            await deployer.embedded.run(deployer.embedded.mine_block)
        else:
            await self._rpc("evm_mine", [])

    async def _evm_creations(self, deployer, token_address: str) -> list[str]:
        token_topic = "0x" + "00" * 12 + token_address[2:].lower()
        query = {"fromBlock": 0, "toBlock": "latest", "topics": [TOKEN_CREATED_TOPIC, token_topic]}
        logs = await asyncio.to_thread(self._web3(deployer).eth.get_logs, query)
        return ["0x" + bytes(entry["transactionHash"]).hex() for entry in logs]

    async def _take_nonce(self, deployer, signed: SignedLaunch) -> None:
        """A 0-value transfer signed with the launch's key and nonce, mined now."""
        keys = self._keystore.evm_deployer_keys(self.chain, self.chain_settings.get("deployer_keys", 1))
        account = next(a for a in map(Account.from_key, keys) if a.address == signed.signer)
        w3 = self._web3(deployer)

        def send() -> bytes:
            tx = {
                "chainId": w3.eth.chain_id,
                "nonce": signed.nonce,
                "to": account.address,
                "value": 0,
                "gas": 21_000,
                "gasPrice": 2 * w3.eth.gas_price + 10**9,
            }
            return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)

        tx_id = "0x" + bytes(await asyncio.to_thread(send)).hex()
        for _ in range(10):
            if await self.block_of(deployer, tx_id) is not None:
                return
            await self._mine(deployer)
        raise AssertionError(f"the transfer taking nonce {signed.nonce} was not mined")

    # -- Solana --------------------------------------------------------------------------

    async def _block_height(self, deployer) -> int:
        if self.url is None:
            return await asyncio.to_thread(deployer.embedded.block_height)
        return int(await self._rpc("getBlockHeight", [{"commitment": "processed"}]))

    async def _height_above(self, deployer, height: int) -> None:
        deadline = time.monotonic() + ADVANCE_TIMEOUT_S
        while await self._block_height(deployer) <= height:
            if time.monotonic() > deadline:
                raise AssertionError(f"block height did not pass {height} in {ADVANCE_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.02)  # slots pass with wall time: nothing to await but the clock

    async def _solana_creations(self, deployer, token_address: str) -> list[str]:
        from solders.pubkey import Pubkey

        mint = Pubkey.from_string(token_address)
        if self.url is None:
            found = await asyncio.to_thread(deployer.embedded.signatures_for_address, mint)
            return [str(s.signature) for s in found if s.err is None]
        from solana.rpc.async_api import AsyncClient

        async with AsyncClient(self.url) as client:
            found = (await client.get_signatures_for_address(mint, commitment="confirmed")).value
        return [str(s.signature) for s in found if s.err is None]

    # -- the interface -------------------------------------------------------------------

    async def advance(self, deployer) -> None:
        if self.family == "evm":
            await self._mine(deployer)
        else:
            await self._height_above(deployer, await self._block_height(deployer))

    async def make_unlandable(self, deployer, signed) -> None:
        if self.family == "evm":
            await self._take_nonce(deployer, signed)
        elif self.url is None:
            await asyncio.to_thread(deployer.embedded.expire_blockhash)
        else:
            await self._height_above(deployer, signed.last_valid_block_height)

    async def creations(self, deployer, token_address) -> list[str]:
        if self.family == "evm":
            return await self._evm_creations(deployer, token_address)
        return await self._solana_creations(deployer, token_address)
