"""What an EVM chain needs before the first launch: the factory, its AMM, funded dev keys.

* :func:`ensure_factory` deploys the TokenForge factory once per chain from the first
  deployer key and returns where it is; idempotent across restarts (see its docstring).
  On development chains (no :class:`Dex` given) the same key deploys Uniswap V2 from its
  published artifacts right after: WETH9, UniswapV2Factory and UniswapV2Router02.
* :func:`read_factory` checks a configured factory address instead.
* :func:`sync_terms` keeps the factory's platform terms (fees, virtual reserve, launch-fee
  bounds) equal to the settings: new curves get the new terms, existing ones keep theirs.
* :func:`fund_dev_keys` tops keys up with ``hardhat_setBalance`` on development nodes
  (Hardhat, ``tokenforge devnet``); real networks are funded by their operators.

A key that cannot pay for the factory's deployment is reported before anything is sent:
``PermanentError`` code ``insufficient_funds`` naming the key's checksummed address, its
balance and about what the deployment costs (:mod:`.open` adds how to fund it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from tokenforge.domain.curve import PlatformTerms
from tokenforge.errors import ErrorCode, PermanentError, TransientError

from . import codec
from .artifacts import UNISWAP_V2_PAIR_INIT_CODE_HASH, factory_artifact, uniswap_artifact
from .fees import DEFAULT_FEE_CAP_WEI, FeeOracle
from .key_pool import DeployerKey, account_from_key
from .node import EvmNode
from .transactions import sign_tx, unsigned_tx

log = logging.getLogger(__name__)

#: Headroom over ``eth_estimateGas`` for the factory's deployment.
DEPLOY_GAS_MARGIN = 1.2


@dataclass(frozen=True, slots=True)
class Dex:
    """The Uniswap V2 deployment a chain's curves graduate to."""

    uniswap_factory: str
    weth: str
    router: str | None = None
    pair_init_code_hash: bytes = UNISWAP_V2_PAIR_INIT_CODE_HASH


@dataclass(frozen=True, slots=True)
class FactoryInfo:
    address: str
    implementation: str
    curve_implementation: str = ""
    dex: Dex | None = None


def dev_dex(deployer: str) -> Dex:
    """Where :func:`ensure_factory` deploys Uniswap V2 on a development chain: the
    deployer's nonces 1 (WETH9), 2 (UniswapV2Factory) and 3 (UniswapV2Router02)."""
    return Dex(
        uniswap_factory=codec.create_address(deployer, 2),
        weth=codec.create_address(deployer, 1),
        router=codec.create_address(deployer, 3),
    )


def default_terms(deployer: str, virtual_native0: int = 15 * 10**17, migration_fee: int = 5 * 10**15) -> PlatformTerms:
    """pump.fun's fees (0.95 % + 0.30 %), launch-fee bounds, fees to ``deployer``."""
    return PlatformTerms(deployer, 95, 30, 9000, 60, 30, virtual_native0, migration_fee)


async def ensure_factory(
    node: EvmNode,
    deployer_key: bytes,
    chain_id: int,
    *,
    terms: PlatformTerms | None = None,
    dex: Dex | None = None,
    fees: FeeOracle | None = None,
    timeout_s: float = 120.0,
) -> FactoryInfo:
    """Deploys the factory (and, without ``dex``, Uniswap V2) once per chain and returns
    where it is. Idempotent across restarts.

    The factory lives at the deployer's nonce-0 CREATE address; a development chain's
    Uniswap V2 at nonces 1-3 (:func:`dev_dex`). Each contract whose code is there is reused;
    one missing is deployed with its nonce if the deployer has not used it, and awaited. A
    deployer whose nonce went elsewhere cannot own these contracts (PermanentError
    ``factory_missing``); one that cannot pay gets PermanentError ``insufficient_funds`` and
    nothing is sent. ``terms`` are the factory's constructor terms (default
    :func:`default_terms`); :func:`sync_terms` keeps them current afterwards.
    """
    account = account_from_key(deployer_key)
    dex_used = dex or dev_dex(account.address)
    terms = terms or default_terms(account.address)
    plan = [("the factory", factory_artifact().bytecode + _factory_args(dex_used, terms))]
    if dex is None:
        plan += [
            ("WETH9", uniswap_artifact("WETH9").bytecode),
            (
                "UniswapV2Factory",
                uniswap_artifact("UniswapV2Factory").bytecode + abi_encode(["address"], [account.address]),
            ),
            (
                "UniswapV2Router02",
                uniswap_artifact("UniswapV2Router02").bytecode
                + abi_encode(["address", "address"], [dex_used.uniswap_factory, dex_used.weth]),
            ),
        ]
    key = DeployerKey(account, account.address)
    oracle = fees or FeeOracle(node.w3, max_fee_per_gas_cap_wei=DEFAULT_FEE_CAP_WEI)
    for nonce, (what, init_code) in enumerate(plan):
        address = codec.create_address(account.address, nonce)
        if await node.code(address):
            continue
        if await node.mined_count(account.address) > nonce:
            raise PermanentError(
                f"deployer {account.address} used nonce {nonce} for something other than {what}",
                code=ErrorCode.FACTORY_MISSING,
            )
        if await node.pending_count(account.address) == nonce:
            await _deploy(node, key, chain_id, oracle, init_code, nonce, what)
        await _await_code(node, address, timeout_s)
    return await read_factory(node, codec.create_address(account.address, 0), configured=False)


async def read_factory(node: EvmNode, address: str, *, configured: bool = True) -> FactoryInfo:
    """The factory at ``address``, its implementations and its AMM; PermanentError
    ``factory_missing`` when no contract is there or it predates bonding curves."""
    address = to_checksum_address(address)
    if configured and not await node.code(address):
        raise PermanentError(f"no contract at the configured factory address {address}", code=ErrorCode.FACTORY_MISSING)
    result = await node.call(address, codec.selector("implementation()"))
    try:
        curve = await node.call(address, codec.selector("curveImplementation()"))
        uni = await node.call(address, codec.selector("uniswapFactory()"))
        weth = await node.call(address, codec.selector("weth()"))
    except PermanentError:
        curve = b""
    if len(curve) < 32:
        raise PermanentError(
            f"the factory at {address} predates bonding curves; deploy a new one "
            "(a fresh data directory on the embedded chain, or a new deployer key)",
            code=ErrorCode.FACTORY_MISSING,
        )
    return FactoryInfo(
        address=address,
        implementation=to_checksum_address(result[-20:]),
        curve_implementation=to_checksum_address(curve[-20:]),
        dex=Dex(uniswap_factory=to_checksum_address(uni[-20:]), weth=to_checksum_address(weth[-20:])),
    )


async def read_terms(node: EvmNode, factory: str) -> PlatformTerms:
    """The factory's current ``config``."""
    raw = await node.call(factory, codec.selector("config()"))
    values = abi_decode(["address", "uint16", "uint16", "uint16", "uint32", "uint16", "uint112", "uint112"], raw)
    return PlatformTerms(to_checksum_address(values[0]), *values[1:])


async def sync_terms(
    node: EvmNode,
    deployer_key: bytes,
    chain_id: int,
    factory: str,
    terms: PlatformTerms,
    *,
    fees: FeeOracle | None = None,
    timeout_s: float = 120.0,
) -> bool:
    """Sets the factory's ``config`` to ``terms`` if it differs; True when it changed.

    Only the factory's owner may: another key's factory keeps its terms (logged)."""
    current = await read_terms(node, factory)
    if current == terms:
        return False
    account = account_from_key(deployer_key)
    owner = to_checksum_address((await node.call(factory, codec.selector("owner()")))[-20:])
    if owner != account.address:
        log.warning(
            "factory %s is owned by %s, not by deployer %s: its terms stay %s", factory, owner, account.address, current
        )
        return False
    data = codec.selector(f"setConfig({codec.FACTORY_CONFIG_TYPE})") + abi_encode(
        [codec.FACTORY_CONFIG_TYPE], [_config_tuple(terms)]
    )
    oracle = fees or FeeOracle(node.w3, max_fee_per_gas_cap_wei=DEFAULT_FEE_CAP_WEI)
    price = await oracle.current()
    nonce = await node.pending_count(account.address)
    signed = await sign_tx(
        DeployerKey(account, account.address),
        unsigned_tx(chain_id=chain_id, nonce=nonce, to=factory, data=data, gas=100_000, fees=price),
    )
    await node.send_raw(signed.raw_tx, "set factory terms")
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while await read_terms(node, factory) != terms:
        if time.monotonic() > deadline:
            raise TransientError(f"factory terms of {factory} not updated in time", code=ErrorCode.RPC_TIMEOUT)
        await asyncio.sleep(delay)  # JSON-RPC has no push for this; poll with backoff
        delay = min(delay * 2, 1.0)
    log.info("factory %s terms changed from %s to %s", factory, current, terms)
    return True


async def warn_on_terms(node: EvmNode, factory: str, terms: PlatformTerms) -> None:
    """Logs a warning when the factory's terms differ from ``terms`` (networks whose keys
    other processes use: the owner changes them with ``setConfig`` deliberately)."""
    current = await read_terms(node, factory)
    if current != terms:
        log.warning(
            "factory %s has terms %s; the settings say %s (new launches get the factory's)", factory, current, terms
        )


def _config_tuple(terms: PlatformTerms) -> tuple:
    return (
        terms.fee_recipient,
        terms.platform_fee_bps,
        terms.creator_fee_bps,
        terms.max_launch_fee_bps,
        terms.max_launch_window_s,
        terms.max_launch_window_blocks,
        terms.virtual_native0,
        terms.migration_fee,
    )


def _factory_args(dex: Dex, terms: PlatformTerms) -> bytes:
    return abi_encode(
        ["address", "address", "bytes32", codec.FACTORY_CONFIG_TYPE],
        [dex.uniswap_factory, dex.weth, dex.pair_init_code_hash, _config_tuple(terms)],
    )


async def fund_dev_keys(node: EvmNode, addresses: Iterable[str], balance_wei: int) -> None:
    """Tops every address below ``balance_wei`` up to it (``hardhat_setBalance``). A node
    that refuses is logged; the funding check of the set-up then reports the key."""
    for address in addresses:
        if await node.balance_wei(address) >= balance_wei:
            continue
        refusal = await node.set_balance(address, balance_wei)
        if refusal is not None:
            log.warning("the node refused to fund deployer key %s: %s", address, refusal[:200])


async def _deploy(
    node: EvmNode, key: DeployerKey, chain_id: int, fees: FeeOracle, bytecode: bytes, nonce: int, what: str
) -> None:
    balance_wei = await node.balance_wei(key.address)
    if balance_wei == 0:
        raise _cannot_pay(key.address, balance_wei, None)
    price = await fees.current()
    try:
        gas = int(await node.estimate_gas({"from": key.address, "data": bytecode}) * DEPLOY_GAS_MARGIN)
    except PermanentError as err:
        if err.code is ErrorCode.INSUFFICIENT_FUNDS:  # nodes that charge the estimate
            raise _cannot_pay(key.address, balance_wei, None) from None
        raise
    cost_wei = gas * price.max_fee_per_gas_wei
    if balance_wei < cost_wei:
        raise _cannot_pay(key.address, balance_wei, cost_wei)
    signed = await sign_tx(
        key, unsigned_tx(chain_id=chain_id, nonce=nonce, to=None, data=bytecode, gas=gas, fees=price)
    )
    await node.send_raw(signed.raw_tx, f"deploy {what}")


def _cannot_pay(address: str, balance_wei: int, cost_wei: int | None) -> PermanentError:
    needs = f" (about {cost_wei} wei at today's fees)" if cost_wei is not None else ""
    return PermanentError(
        f"deployer key {address} holds {balance_wei} wei, not enough to deploy the factory{needs}",
        code=ErrorCode.INSUFFICIENT_FUNDS,
    )


async def _await_code(node: EvmNode, address: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while not await node.code(address):
        if time.monotonic() > deadline:
            raise TransientError(f"factory deployment at {address} not mined in time", code=ErrorCode.RPC_TIMEOUT)
        await asyncio.sleep(delay)  # JSON-RPC has no push for this; poll with backoff
        delay = min(delay * 2, 1.0)
