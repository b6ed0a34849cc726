"""What an EVM chain needs before the first launch: the factory, and funded keys on dev nodes.

* :func:`ensure_factory` deploys the TokenForge factory once per chain from the first
  deployer key and returns where it is; idempotent across restarts (see its docstring).
* :func:`read_factory` checks a configured factory address instead.
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

from eth_utils import to_checksum_address

from tokenforge.errors import ErrorCode, PermanentError, TransientError

from . import codec
from .artifacts import factory_artifact
from .fees import DEFAULT_FEE_CAP_WEI, FeeOracle
from .key_pool import DeployerKey, account_from_key
from .node import EvmNode
from .transactions import sign_tx, unsigned_tx

log = logging.getLogger(__name__)

#: Headroom over ``eth_estimateGas`` for the factory's deployment.
DEPLOY_GAS_MARGIN = 1.2


@dataclass(frozen=True, slots=True)
class FactoryInfo:
    address: str
    implementation: str


async def ensure_factory(
    node: EvmNode, deployer_key: bytes, chain_id: int, *, fees: FeeOracle | None = None, timeout_s: float = 120.0
) -> FactoryInfo:
    """Deploys the factory once per chain and returns where it is. Idempotent across restarts.

    The factory lives at the deployer's nonce-0 CREATE address: if code is there, it is
    reused; if the deployer has never sent a transaction, the factory is deployed with
    nonce 0 and awaited. A deployer whose nonce 0 went elsewhere cannot own a factory this
    way (PermanentError ``factory_missing``); one that cannot pay for the deployment gets
    PermanentError ``insufficient_funds`` and nothing is sent.
    """
    account = account_from_key(deployer_key)
    address = codec.create_address(account.address, 0)
    if not await node.code(address):
        if await node.mined_count(account.address) > 0:
            raise PermanentError(
                f"deployer {account.address} used nonce 0 for something other than the factory",
                code=ErrorCode.FACTORY_MISSING,
            )
        if await node.pending_count(account.address) == 0:
            key = DeployerKey(account, account.address)
            await _deploy(node, key, chain_id, fees or FeeOracle(node.w3, max_fee_per_gas_cap_wei=DEFAULT_FEE_CAP_WEI))
        await _await_code(node, address, timeout_s)
    return await read_factory(node, address, configured=False)


async def read_factory(node: EvmNode, address: str, *, configured: bool = True) -> FactoryInfo:
    """The factory at ``address`` and its token implementation; PermanentError
    ``factory_missing`` when no contract is there."""
    address = to_checksum_address(address)
    if configured and not await node.code(address):
        raise PermanentError(f"no contract at the configured factory address {address}", code=ErrorCode.FACTORY_MISSING)
    result = await node.call(address, codec.selector("implementation()"))
    return FactoryInfo(address=address, implementation=to_checksum_address(result[-20:]))


async def fund_dev_keys(node: EvmNode, addresses: Iterable[str], balance_wei: int) -> None:
    """Tops every address below ``balance_wei`` up to it (``hardhat_setBalance``). A node
    that refuses is logged; the funding check of the set-up then reports the key."""
    for address in addresses:
        if await node.balance_wei(address) >= balance_wei:
            continue
        refusal = await node.set_balance(address, balance_wei)
        if refusal is not None:
            log.warning("the node refused to fund deployer key %s: %s", address, refusal[:200])


async def _deploy(node: EvmNode, key: DeployerKey, chain_id: int, fees: FeeOracle) -> None:
    bytecode = factory_artifact().bytecode
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
    signed = await sign_tx(key, unsigned_tx(chain_id=chain_id, nonce=0, to=None, data=bytecode, gas=gas, fees=price))
    await node.send_raw(signed.raw_tx, "deploy factory")


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
