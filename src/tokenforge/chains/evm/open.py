"""Opening an EVM chain: endpoint checks, the embedded chain's lifecycle, the ready deployer.

* :func:`check_endpoint_chain_ids` — every configured endpoint must serve the expected
  chain id, not just the one a pool happens to pick first.
* :func:`open_rpc_evm_deployer` — a deployer over JSON-RPC (Hardhat, ``tokenforge devnet``,
  real networks): chain id checked, keys topped up on development nodes, factory found or
  deployed (:mod:`.setup`), key balances read.
* :func:`open_embedded_evm_deployer` — opens (or creates) the in-process py-evm chain,
  funds the keys from its faucet and returns a deployer that owns the chain.

py-evm and eth-tester are imported only inside :func:`open_embedded_evm_deployer`: a
process that reaches its chains over JSON-RPC never loads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from web3 import AsyncWeb3

from tokenforge.chains.rpc.endpoints import EndpointConfig, redact_url
from tokenforge.domain.curve import PlatformTerms
from tokenforge.errors import ErrorCode, PermanentError, TransientError

from .deployer import EvmDeployer
from .key_pool import account_from_key
from .node import EvmNode
from .rpc_errors import translate
from .setup import Dex, default_terms, ensure_factory, fund_dev_keys, read_factory, sync_terms, warn_on_terms

log = logging.getLogger(__name__)

EMBEDDED_DEPLOYER_BALANCE_WEI = 10**24  # 1,000,000 ETH on the embedded chain


async def check_endpoint_chain_ids(chain: str, endpoints: Sequence[EndpointConfig], expected_chain_id: int) -> None:
    """PermanentError ``chain_id_mismatch`` unless every endpoint serves ``expected_chain_id``.

    Each endpoint is asked on its own (``eth_chainId``); one unreachable at start is logged
    and left to its circuit breaker."""
    from tokenforge.chains.rpc.pool import RpcPool

    for endpoint in endpoints:
        single = RpcPool(chain, [EndpointConfig(url=endpoint.url, timeout_s=endpoint.timeout_s)])
        try:
            answer = await single.call("eth_chainId", [])
        except TransientError as err:
            log.warning(
                "%s: endpoint %s unreachable at start (%s); its chain id is not checked",
                chain,
                redact_url(endpoint.url),
                err.code,
            )
            continue
        finally:
            await single.close()
        try:
            served = int(answer["result"], 16)
        except (KeyError, TypeError, ValueError):
            raise PermanentError(
                f"{chain}: endpoint {redact_url(endpoint.url)} did not answer eth_chainId",
                code=ErrorCode.CHAIN_ID_MISMATCH,
            ) from None
        if served != expected_chain_id:
            raise PermanentError(
                f"{chain}: endpoint {redact_url(endpoint.url)} serves chain id {served}, expected {expected_chain_id}",
                code=ErrorCode.CHAIN_ID_MISMATCH,
            )


async def open_rpc_evm_deployer(
    chain: str,
    w3: AsyncWeb3,
    *,
    chain_id: int,
    deployer_keys: Sequence[bytes],
    factory_address: str | None = None,
    dev_fund_wei: int | None = None,
    terms: PlatformTerms | None = None,
    dex: Dex | None = None,
    sync: bool = True,
    **options: Any,
) -> EvmDeployer:
    """A deployer for a chain reached over JSON-RPC (Hardhat, the devnet, real networks).

    Checks that the node serves ``chain_id`` (PermanentError ``chain_id_mismatch``
    otherwise: a wrong endpoint must not get signed transactions). ``dev_fund_wei`` is for
    development networks only (``None`` elsewhere): a positive amount tops every key up
    with ``hardhat_setBalance``. The factory is the configured ``factory_address``, or the
    first key's nonce-0 deployment (made now if the key is fresh). A first key that cannot
    pay for that deployment stops the opening with one message naming the key: on a
    development network PermanentError ``dev_funding_required`` (set ``dev_fund_base_units``
    or fund the key), elsewhere ``insufficient_funds``. ``terms`` are the platform's curve
    terms (an empty ``fee_recipient`` means the first key), kept in step by
    :func:`~.setup.sync_terms` when ``sync`` (a development network: one process owns the
    key at start; elsewhere a difference is only logged, since other processes may be
    using the key's nonces); ``dex`` is the chain's Uniswap V2 (None: deployed with the
    factory, development networks only). ``options`` are passed on to :class:`EvmDeployer`.
    """
    node = EvmNode(w3)
    served = await node.chain_id()
    if served != chain_id:
        raise PermanentError(
            f"{chain}: the endpoint serves chain id {served}, expected {chain_id}", code=ErrorCode.CHAIN_ID_MISMATCH
        )
    addresses = [account_from_key(k).address for k in deployer_keys]
    if dev_fund_wei:
        await fund_dev_keys(node, addresses, dev_fund_wei)
    terms = _terms(terms, addresses[0])
    try:
        if factory_address is None:
            factory = await ensure_factory(
                node, deployer_keys[0], chain_id, terms=terms, dex=dex, fees=options.get("fees")
            )
        else:
            factory = await read_factory(node, factory_address)
        if sync:
            await sync_terms(node, deployer_keys[0], chain_id, factory.address, terms, fees=options.get("fees"))
        else:
            await warn_on_terms(node, factory.address, terms)
    except PermanentError as err:
        if err.code is not ErrorCode.INSUFFICIENT_FUNDS:
            raise
        raise _funding_error(chain, err.message, dev_fund_wei) from None
    deployer = EvmDeployer(
        chain=chain, w3=w3, chain_id=chain_id, deployer_keys=deployer_keys, factory=factory, **options
    )
    for address in addresses:  # the keeper keeps these current; read once so health shows them
        deployer.keys.record_balance(address, await deployer.node.balance_wei(address))
    return deployer


def _funding_error(chain: str, problem: str, dev_fund_wei: int | None) -> PermanentError:
    if dev_fund_wei is None:
        return PermanentError(f"{chain}: {problem}; fund the key", code=ErrorCode.INSUFFICIENT_FUNDS)
    if dev_fund_wei:
        hint = f"raise dev_fund_base_units of {chain} (now {dev_fund_wei}) or fund the key"
    else:
        hint = f"set dev_fund_base_units for {chain} (a local network tops its keys up at start) or fund the key"
    return PermanentError(f"{chain}: {problem}; {hint}", code=ErrorCode.DEV_FUNDING_REQUIRED)


def _terms(terms: PlatformTerms | None, first_key: str) -> PlatformTerms:
    if terms is None:
        return default_terms(first_key)
    return terms if terms.fee_recipient else dataclasses.replace(terms, fee_recipient=first_key)


def _keys(deployer_keys: bytes | Sequence[bytes]) -> list[bytes]:
    return [deployer_keys] if isinstance(deployer_keys, (bytes, bytearray)) else list(deployer_keys)


async def open_embedded_evm_deployer(
    chain: str,
    chain_id: int,
    state_dir: Path | None,
    deployer_keys: bytes | Sequence[bytes],
    *,
    terms: PlatformTerms | None = None,
    **options: Any,
) -> EvmDeployer:
    """Opens (or creates) the embedded chain, funds the deployer keys, ensures the factory.

    The returned deployer owns the chain: ``await deployer.close()`` closes it. The chain is
    reachable as ``deployer.embedded`` (e.g. ``deployer.embedded.web3()``). ``options`` are
    passed on to :class:`EvmDeployer`.
    """
    from .embedded import EmbeddedEvmChain  # py-evm: loaded only for the embedded chain

    keys = _keys(deployer_keys)
    accounts = [account_from_key(k) for k in keys]
    try:
        embedded = await asyncio.to_thread(EmbeddedEvmChain, state_dir, chain_id)
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - py-evm's failure, reported as the chain's
        raise PermanentError(
            f"cannot open embedded chain: {type(exc).__name__}: {exc}", code=ErrorCode.EMBEDDED_CHAIN
        ) from None
    try:
        for account in accounts:
            await embedded.run(embedded.fund, account.address, EMBEDDED_DEPLOYER_BALANCE_WEI)
        w3 = embedded.async_web3()
        node = EvmNode(w3)
        platform_terms = _terms(terms, accounts[0].address)
        factory = await ensure_factory(node, keys[0], chain_id, terms=platform_terms)
        await sync_terms(node, keys[0], chain_id, factory.address, platform_terms)
        return EvmDeployer(
            chain=chain, w3=w3, chain_id=chain_id, deployer_keys=keys, factory=factory, embedded=embedded, **options
        )
    except BaseException as exc:
        await asyncio.to_thread(embedded.close)
        if isinstance(exc, Exception):
            raise translate(exc, "open embedded chain") from None
        raise
