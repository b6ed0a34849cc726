"""A TokenForge market on an EVM chain for tests and benchmarks: launches, trades, wallets.

* :class:`MarketDriver` drives the contracts of a deployed factory over a synchronous
  web3.py client: :meth:`~MarketDriver.launch` sends one ``createToken`` and returns a
  :class:`Market` (token and curve addresses, launch block, the curve's terms as
  :class:`~tokenforge.domain.curve.CurveParams`); :meth:`~MarketDriver.buy`,
  :meth:`~MarketDriver.sell`, :meth:`~MarketDriver.transfer` and :meth:`~MarketDriver.call`
  send one transaction each and return its receipt (a reverted one is returned with
  ``status == 0``, not raised; ``receipt["gasUsed"]`` is its gas); :meth:`~MarketDriver.
  revert_name` names the custom error a call reverts with against the latest state.
  Without ``mine`` it waits for the node to mine (automine); with it (the embedded chain's
  ``mine_block``) every transaction is mined into its own block at once.
* :func:`open_embedded_market` opens an in-memory embedded chain (py-evm), deploys the
  factory and Uniswap V2 the way the application does (:func:`~tokenforge.chains.evm.setup.
  ensure_factory`), funds ``traders`` wallets and turns automine off; :func:`open_rpc_market`
  does the same on a development JSON-RPC node that automines (Hardhat). Both return a
  :class:`MarketChain` (``.driver``, ``.owner`` — the factory's owner and fee recipient —,
  ``.traders``, ``.close()``).

Everything but the opening is synchronous and blocking, so it runs from sync tests,
Hypothesis rules and scripts alike. Amounts are base units (wei, token base units).
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import AsyncWeb3, Web3
from web3.contract import Contract
from web3.logs import DISCARD

from tokenforge.chains.evm import codec
from tokenforge.chains.evm.artifacts import curve_artifact, factory_artifact, token_artifact, uniswap_artifact
from tokenforge.chains.evm.node import EvmNode
from tokenforge.chains.evm.setup import FactoryInfo, default_terms, ensure_factory
from tokenforge.domain.curve import CurveParams, CurveReserves, PlatformTerms

T = TypeVar("T")

WHOLE = 10**18  # one whole ETH (or one whole 18-decimals token) in base units
EMBEDDED_CHAIN_ID = 1337
#: what every wallet of an embedded market starts with (1,000,000 ETH)
TRADER_FUNDS_WEI = 10**24
#: enough for the graduating buy (~2.8 M gas); every trade gets this limit
TX_GAS = 3_500_000
MAX_FEE_PER_GAS_WEI = 200 * 10**9
PRIORITY_FEE_PER_GAS_WEI = 10**9
#: a deadline far in the future (block time in seconds)
NO_DEADLINE = 2**40
DEFAULT_SUPPLY = 10**9 * WHOLE


@dataclass(frozen=True, slots=True)
class Market:
    """One launched token and its bonding curve (checksummed addresses)."""

    token: str
    curve: str
    creator: str
    block_number: int
    params: CurveParams
    receipt: Any  # the launch's


class MarketDriver:
    """Launches and trades against the factory at ``factory_address``. See the module docstring."""

    def __init__(self, w3: Web3, chain_id: int, factory_address: str, *, mine: Callable[[], Any] | None = None) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.factory_address = Web3.to_checksum_address(factory_address)
        self._mine = mine
        self._token_abi = token_artifact().abi
        self._curve_abi = curve_artifact().abi
        self._launched = 0

    # ------------------------------------------------------------------ contracts and reads

    def contract(self, address: str, abi: list) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    @property
    def factory(self) -> Contract:
        return self.contract(self.factory_address, factory_artifact().abi)

    def token(self, market: Market) -> Contract:
        return self.contract(market.token, self._token_abi)

    def curve(self, market: Market) -> Contract:
        return self.contract(market.curve, self._curve_abi)

    def pair(self, address: str) -> Contract:
        return self.contract(address, uniswap_artifact("UniswapV2Pair").abi)

    def balance(self, market: Market, address: str) -> int:
        """``address``'s balance of the market's token."""
        return int(self.token(market).functions.balanceOf(Web3.to_checksum_address(address)).call())

    def native_balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def reserves(self, market: Market) -> tuple[int, int, int, int]:
        """``(virtual native, virtual token, native raised, tokens left)`` as the curve reports them."""
        virtual_native, virtual_token, raised, left = self.curve(market).functions.reserves().call()
        return int(virtual_native), int(virtual_token), int(raised), int(left)

    def state(self, market: Market) -> CurveReserves:
        """The curve's state read from the chain, as the domain model."""
        curve = self.curve(market).functions
        return CurveReserves(
            market.params, native_raised=curve.nativeRaised().call(), tokens_sold=curve.tokensSold().call()
        )

    def trades(self, market: Market, receipt: Any) -> list[Any]:
        """The market's decoded ``Trade`` events in ``receipt``."""
        events = self.curve(market).events.Trade().process_receipt(receipt, errors=DISCARD)
        return [e for e in events if e.address == market.curve]

    def block_time(self, receipt: Any) -> int:
        return int(self.w3.eth.get_block(receipt["blockNumber"])["timestamp"])

    # ------------------------------------------------------------------ transactions

    def launch(
        self,
        creator: LocalAccount | str,
        *,
        sender: LocalAccount | None = None,
        supply: int = DEFAULT_SUPPLY,
        decimals: int = 18,
        launch_fee_bps: int = 0,
        launch_window: int = 0,
        window_in_blocks: bool = False,
    ) -> Market:
        """Launches a token for ``creator`` (an account, or the address of e.g. a contract),
        sent by ``sender`` (default: ``creator``). AssertionError when it reverts."""
        creator_address = creator if isinstance(creator, str) else creator.address
        signer = sender or creator
        assert not isinstance(signer, str), "a launch for a bare address needs a sender"
        self._launched += 1
        args = codec.encode_token_args(f"Market {self._launched}", f"M{self._launched % 10**9}", decimals)
        data = codec.encode_create_token(
            codec.launch_salt(uuid.uuid4().hex),
            args,
            creator_address,
            supply,
            launch_fee_bps=launch_fee_bps,
            launch_window=launch_window,
            window_in_blocks=window_in_blocks,
        )
        receipt = self.send(signer, self.factory_address, data, gas=400_000)
        assert receipt["status"] == 1, "createToken reverted"
        created = [log for log in receipt["logs"] if bytes(log["topics"][0]) == codec.TOKEN_CREATED_TOPIC]
        token = Web3.to_checksum_address(bytes(created[0]["topics"][1])[-20:])
        p = self.contract(codec.curve_address(token), self._curve_abi).functions.params().call()
        params = codec.curve_params(p)
        return Market(token, codec.curve_address(token), creator_address, int(receipt["blockNumber"]), params, receipt)

    def buy(
        self, trader: LocalAccount, market: Market, native_in_wei: int, *, min_tokens_out: int = 0,
        deadline: int = NO_DEADLINE,
    ) -> Any:  # fmt: skip
        return self.call(trader, self.curve(market).functions.buy(min_tokens_out, deadline), native_in_wei)

    def sell(
        self, trader: LocalAccount, market: Market, tokens_in: int, *, min_native_out_wei: int = 0,
        deadline: int = NO_DEADLINE,
    ) -> Any:  # fmt: skip
        return self.call(trader, self.curve(market).functions.sell(tokens_in, min_native_out_wei, deadline))

    def transfer(self, sender: LocalAccount, market: Market, to: str, amount: int) -> Any:
        return self.call(sender, self.token(market).functions.transfer(Web3.to_checksum_address(to), amount))

    def call(self, sender: LocalAccount, fn: Any, value_wei: int = 0) -> Any:
        """Sends ``fn`` (a bound contract function) as ``sender``; returns the receipt."""
        return self.send(sender, fn.address, fn._encode_transaction_data(), value_wei)

    def send(
        self, sender: LocalAccount, to: str | None, data: bytes | str, value_wei: int = 0, *, gas: int = TX_GAS
    ) -> Any:
        """Signs and sends one transaction (``to=None`` deploys ``data``); returns its receipt."""
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
            "value": value_wei,
            "data": data,
            "gas": gas,
            "maxFeePerGas": MAX_FEE_PER_GAS_WEI,
            "maxPriorityFeePerGas": PRIORITY_FEE_PER_GAS_WEI,
        }
        if to is not None:
            tx["to"] = Web3.to_checksum_address(to)
        tx_hash = self.w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        if self._mine is not None:
            self._mine()
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)

    def deploy(self, sender: LocalAccount, abi: list, bytecode: bytes, *args: Any) -> Contract:
        """Deploys a contract; AssertionError when the deployment reverts."""
        init = self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args).data_in_transaction
        receipt = self.send(sender, None, init)
        assert receipt["status"] == 1, "deployment reverted"
        return self.contract(receipt["contractAddress"], abi)

    def revert_name(
        self, sender: str, fn: Any, value_wei: int = 0, *, errors: dict[bytes, str] | None = None
    ) -> str | None:
        """The custom error ``fn`` reverts with against the latest state, or None if it succeeds.

        Errors are named from TokenForge's ABIs and ``errors``; an unknown one is its
        selector (``0x…``), a revert without data ``""``."""
        call: dict[str, Any] = {"from": sender, "to": fn.address, "data": fn._encode_transaction_data()}
        call["value"] = value_wei if self._mine is not None else hex(value_wei)  # eth-tester takes ints
        reply = self.w3.provider.make_request("eth_call", [call, "latest"])  # type: ignore[arg-type]
        error = reply.get("error")
        if error is None:
            return None
        data = _revert_data(dict(error))
        names = {**ERROR_NAMES, **(errors or {})}
        return names.get(data[:4], "0x" + data[:4].hex()) if data else ""


@dataclass
class MarketChain:
    """A chain with the factory and Uniswap V2 deployed, a driver and funded wallets.

    ``owner`` deployed and owns the factory and receives the platform's fees."""

    driver: MarketDriver
    info: FactoryInfo
    owner: LocalAccount
    traders: list[LocalAccount]
    terms: PlatformTerms
    close: Callable[[], None] = lambda: None
    embedded: Any = None  # the EmbeddedEvmChain, when embedded
    _spare: list[LocalAccount] = field(default_factory=list, repr=False)

    def new_wallet(self, funds_wei: int = 1000 * WHOLE) -> LocalAccount:
        """A fresh wallet holding ``funds_wei`` (paid by ``owner``)."""
        account = Account.create()
        self.driver.send(self.owner, account.address, b"", funds_wei, gas=21_000)
        return account


def _revert_data(error: dict[str, Any]) -> bytes:
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    found = re.search(r"execution reverted: (b(['\"]).*\2)\s*$", str(error.get("message", "")))
    return ast.literal_eval(found.group(1)) if found else b""


def _error_names(*abis: list) -> dict[bytes, str]:
    names: dict[bytes, str] = {}
    for abi in abis:
        for item in abi:
            if item["type"] == "error":
                signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
                names[keccak(text=signature)[:4]] = item["name"]
    return names


#: custom error selector -> name, from TokenForge's contracts (OpenZeppelin's included)
ERROR_NAMES = _error_names(curve_artifact().abi, token_artifact().abi, factory_artifact().abi)


def _blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a coroutine to completion on its own loop, from sync or async callers alike."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


def open_embedded_market(*, traders: int = 4, terms: PlatformTerms | None = None) -> MarketChain:
    """An in-memory embedded chain with the factory, Uniswap V2 and ``traders`` funded wallets;
    automine off (each driver transaction mines its own block)."""
    from tokenforge.chains.evm.embedded import EmbeddedEvmChain

    chain = EmbeddedEvmChain(None, EMBEDDED_CHAIN_ID, block_time_s=0.0)
    try:
        owner = Account.from_key(os.urandom(32))
        wallets = [Account.create() for _ in range(traders)]
        for account in (owner, *wallets):
            chain.fund(account.address, TRADER_FUNDS_WEI)
        platform = terms or default_terms(owner.address)

        async def deploy() -> FactoryInfo:
            node = EvmNode(chain.async_web3())
            return await ensure_factory(node, bytes(owner.key), EMBEDDED_CHAIN_ID, terms=platform)

        info = _blocking(deploy)
        chain.automine = False
    except BaseException:
        chain.close()
        raise
    driver = MarketDriver(chain.web3(), EMBEDDED_CHAIN_ID, info.address, mine=chain.mine_block)
    return MarketChain(driver, info, owner, wallets, platform, close=chain.close, embedded=chain)


def open_rpc_market(url: str, chain_id: int, owner_key: bytes, *, traders: int = 4) -> MarketChain:
    """The same on a development JSON-RPC node that automines and funds ``owner_key``
    (Hardhat: one of its accounts); the traders are funded by the owner."""
    owner = Account.from_key(owner_key)
    platform = default_terms(owner.address)

    async def deploy() -> FactoryInfo:
        w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(url))
        try:
            return await ensure_factory(EvmNode(w3), owner_key, chain_id, terms=platform)
        finally:
            await w3.provider.disconnect()

    info = _blocking(deploy)
    market = MarketChain(MarketDriver(Web3(Web3.HTTPProvider(url)), chain_id, info.address), info, owner, [], platform)
    market.traders = [market.new_wallet(100 * WHOLE) for _ in range(traders)]
    return market
