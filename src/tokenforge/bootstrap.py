"""The only place where settings become adapters.

``build_container`` wires the database, queue, key store, chain deployers, relay and
worker; ``Container.start`` runs the background roles a process was asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tokenforge.cache import Cache, install_cache_invalidation, open_cache
from tokenforge.chains.health import ChainHealthReporter
from tokenforge.chains.registry import DeployerFactory, DeployerRegistry
from tokenforge.config import DEFAULT_PUBLIC_RPC_RPS, ChainSettings, Settings
from tokenforge.data_dir import make_private
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.errors import ErrorCode, PermanentError
from tokenforge.jobs.backends import open_queue
from tokenforge.jobs.backends.memory import MemoryQueue
from tokenforge.jobs.events import JobEventHub
from tokenforge.jobs.handlers.launch import LaunchHandler, launch_topic
from tokenforge.jobs.outbox import OutboxRelay
from tokenforge.jobs.policy import RetryPolicy
from tokenforge.jobs.ports import JobQueue
from tokenforge.jobs.sweeper import Sweeper, lease_owner_id
from tokenforge.jobs.worker import Worker
from tokenforge.keys.audit import audited_factories
from tokenforge.keys.master import open_keystore
from tokenforge.keys.ports import KeyStore
from tokenforge.market.price_feed import PriceFeed, open_price_feed
from tokenforge.market.streams import MarketStreams
from tokenforge.observability.job_metrics import install_job_metrics
from tokenforge.security_checks import refuse_placeholder_secrets
from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.group_commit import GroupCommitter
from tokenforge.store.migrate import require_head, upgrade_to_head
from tokenforge.store.notify import JOB_EVENTS_CHANNEL, MARKET_EVENTS_CHANNEL, OUTBOX_CHANNEL, PgListener
from tokenforge.webhooks import Webhooks, build_webhooks

if TYPE_CHECKING:
    from tokenforge.market.indexer.service import MarketIndexers

log = logging.getLogger(__name__)

#: The relay's fallback poll while PostgreSQL notifications wake it (``relay_poll_s`` when
#: they do not: SQLite, or the LISTEN connection is down).
RELAY_LISTEN_POLL_S = 1.0


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: JobQueue
    hub: JobEventHub
    relay: OutboxRelay
    keystore: KeyStore
    deployers: DeployerRegistry
    worker: Worker
    committer: GroupCommitter
    sweeper: Sweeper
    #: committed changes of this process, announced to caches, streams and metrics
    feed: ChangeFeed
    #: hot reads (token detail, lists, chains); invalidated through ``feed``
    cache: Cache
    #: writes the RPC endpoint and key health of this process's chains (worker role)
    health_reporter: ChainHealthReporter
    #: RPC pools of the chains this process opened, by chain (for health reports).
    pools: dict = field(default_factory=dict)
    #: PostgreSQL only: wake-ups from other processes (outbox rows, job events).
    listener: PgListener | None = None
    #: signed webhooks: the dispatcher and the delivery consumer run with the worker
    webhooks: Webhooks | None = None
    #: USD prices of the native coins (market reads)
    price_feed: PriceFeed | None = None
    #: wake-ups of this process's market SSE streams (market/streams.py)
    market_streams: MarketStreams = field(default_factory=MarketStreams)
    #: the market indexers this process runs (``start(indexer=True)``), else None
    indexers: MarketIndexers | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _relay_task: asyncio.Task | None = None
    _worker_started: bool = False

    def wake_relay(self) -> None:
        self.relay.notify()

    async def start(
        self,
        *,
        relay: bool = True,
        worker: bool = True,
        warm_chains: bool = True,
        sweeper: bool | None = None,
        job_events: bool = False,
        indexer: bool = False,
    ) -> None:
        """Start background roles. ``sweeper`` (default: with the worker) first re-enqueues
        unfinished jobs that nothing will advance (its start-up pass; only a worker on the
        in-process queue knows that queue is new and empty), then keeps sweeping
        periodically. ``job_events``: wake this process's SSE streams on job events of
        every process (PostgreSQL). ``indexer``: run the market indexers of the EVM chains
        (:mod:`tokenforge.market.indexer.service`): the JSON-RPC ones, and the embedded ones
        when this process also runs the worker (the process that opens an embedded chain is
        the only one that can read it)."""
        sweeper = worker if sweeper is None else sweeper
        self._listen(relay=relay, job_events=job_events)
        if worker and warm_chains:  # the chains this worker serves (``worker_chains``)
            served = self.settings.worker_prefetch()
            await asyncio.gather(*(self.deployers.get(c) for c in self.deployers.chains if c in served))
        if sweeper:
            await self.sweeper.sweep(queue_empty=worker and isinstance(self.queue, MemoryQueue))
        if worker:
            await self.worker.start()
            self._worker_started = True
            self._tasks.append(asyncio.create_task(self.health_reporter.run(), name="chain-health"))
            if self.webhooks is not None:
                await self.webhooks.start(self.queue, requeue_pending=isinstance(self.queue, MemoryQueue))
        if sweeper:
            self._tasks.append(asyncio.create_task(self.sweeper.run(), name="sweeper"))
        if relay:
            self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
            self._tasks.append(self._relay_task)
        if indexer and self.indexers is None:
            from tokenforge.market.indexer.service import MarketIndexers

            self.indexers = MarketIndexers(
                self.settings, self.sessions, self.deployers, self.keystore, leader_id=lease_owner_id(), embedded=worker
            )
            await self.indexers.start()

    def _listen(self, *, relay: bool, job_events: bool) -> None:
        """Subscribe the relay and the event hub to PostgreSQL notifications."""
        if self.listener is None or not (relay or job_events):
            return
        if relay:
            self.listener.listen(OUTBOX_CHANNEL, lambda _payload: self.relay.notify())
        if job_events:
            self.listener.listen(JOB_EVENTS_CHANNEL, self.hub.on_notification)
            self.listener.listen(MARKET_EVENTS_CHANNEL, self.market_streams.on_notification)

        def on_state(connected: bool) -> None:
            if relay:
                self.relay.set_listening(connected)
            if job_events:
                self.hub.set_cross_process(connected)
                self.market_streams.set_cross_process(connected)

        self.listener.on_state = on_state
        self.listener.start()

    async def drain(self, timeout_s: float) -> None:
        """Stop taking work and let in-flight work end (a graceful stop before ``close``):
        the worker stops its subscriptions, waits up to ``timeout_s`` for running steps
        (the rest are cancelled and handed back to the queue) and releases its leases; the
        relay finishes the batch it is publishing."""
        self.relay.stop()
        waits: list[Awaitable[object]] = []
        if self._worker_started:
            self._worker_started = False
            waits.append(self.worker.stop(timeout_s=timeout_s))
            if self.webhooks is not None:
                waits.append(self.webhooks.stop(timeout_s=timeout_s))
        if self._relay_task is not None:
            waits.append(asyncio.wait([self._relay_task], timeout=timeout_s))
        await asyncio.gather(*waits)

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        if self.indexers is not None:
            await self.indexers.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        if self._worker_started:
            await self.worker.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.queue.close()
        if self.price_feed is not None:
            await self.price_feed.close()
        await self.cache.close()  # sends the invalidations still pending (up to 1 s)
        await self.deployers.close()
        await self.engine.dispose()


def _state_dir(settings: Settings, chain: str):
    path = settings.data_dir / "chains" / chain
    path.mkdir(parents=True, exist_ok=True)
    return path


def _evm_options(cs: ChainSettings) -> dict:
    return {
        "confirmations": cs.confirmations,
        "gas_limit": cs.gas_limit,
        "stuck_after_s": cs.stuck_after_s,
        "fee_bump_percent": cs.fee_bump_percent,
        "min_balance_wei": cs.min_balance_base_units,
    }


def market_terms(chain: str, cs: ChainSettings):
    """The platform's curve terms on ``chain`` from its settings (an empty fee recipient
    means the chain's first deployer key)."""
    from tokenforge.domain.curve import CHAIN_DEFAULTS, PlatformTerms

    m, defaults = cs.market, CHAIN_DEFAULTS[chain]
    return PlatformTerms(
        fee_recipient=m.fee_recipient or "",
        platform_fee_bps=m.platform_fee_bps,
        creator_fee_bps=m.creator_fee_bps,
        max_launch_fee_bps=m.max_launch_fee_bps,
        max_launch_window_s=m.max_launch_window_s,
        max_launch_window_blocks=m.max_launch_window_blocks,
        virtual_native0=m.virtual_native_base_units or defaults.virtual_native0,
        migration_fee=defaults.migration_fee if m.migration_fee_base_units is None else m.migration_fee_base_units,
    )


def _dex(cs: ChainSettings):
    """The chain's configured Uniswap V2, or None on local networks (deployed with the factory)."""
    from tokenforge.chains.evm.setup import Dex

    m = cs.market
    if m.uniswap_factory is None or m.weth is None:
        if cs.network in (Network.TESTNET, Network.MAINNET):
            raise PermanentError(
                "a testnet or mainnet chain needs market.uniswap_factory and market.weth (its Uniswap V2)",
                code=ErrorCode.FACTORY_MISSING,
            )
        return None
    return Dex(m.uniswap_factory, m.weth, m.uniswap_router, bytes.fromhex(m.pair_init_code_hash.removeprefix("0x")))


def _fee_oracle(w3, cs: ChainSettings):
    from tokenforge.chains.evm.fees import FeeOracle

    return FeeOracle(
        w3, legacy=cs.legacy_fees, max_fee_per_gas_cap_wei=cs.max_fee_per_gas_wei, priority_fee_wei=cs.priority_fee_wei
    )


def _endpoints(cs: ChainSettings) -> list:
    """The chain's endpoints; each one's call budget is its ``max_rps``, else
    :data:`DEFAULT_PUBLIC_RPC_RPS` on testnets and mainnets and none on local networks."""
    from tokenforge.chains.rpc.endpoints import EndpointConfig

    default_rps = DEFAULT_PUBLIC_RPC_RPS if cs.network in (Network.TESTNET, Network.MAINNET) else None
    return [
        EndpointConfig(
            url=e.url, weight=e.weight, timeout_s=e.timeout_s, max_rps=default_rps if e.max_rps is None else e.max_rps
        )
        for e in cs.endpoints
    ]


def rpc_pool(chain: str, cs: ChainSettings):
    """The RPC endpoint pool for a chain reached over JSON-RPC."""
    from tokenforge.chains.rpc.pool import RpcPool

    return RpcPool(chain, _endpoints(cs), failure_threshold=cs.breaker_failures, reset_after_s=cs.breaker_reset_s)


async def check_evm_endpoints(chain: str, cs: ChainSettings, expected_chain_id: int) -> None:
    """Every endpoint must serve ``expected_chain_id``, not just the one a pool happens to pick.

    An endpoint unreachable at start is logged and left to its circuit breaker."""
    from tokenforge.chains.evm.open import check_endpoint_chain_ids

    await check_endpoint_chain_ids(chain, _endpoints(cs), expected_chain_id)


def deployer_factories(
    settings: Settings,
    keystore: KeyStore,
    sessions: async_sessionmaker[AsyncSession],
    pools: dict | None = None,
) -> dict[str, DeployerFactory]:
    """One opener per configured chain. Chains on a JSON-RPC network get an RPC pool (kept
    in ``pools`` for health reports); EVM ones share nonces through the database and run a
    nonce keeper; embedded chains run in process. Each opener imports its chain's modules
    when it runs: JSON-RPC chains never load py-evm or LiteSVM."""
    pools = {} if pools is None else pools
    factories: dict[str, DeployerFactory] = {}
    for chain, cs in settings.chains.items():
        spec = CHAINS[chain]
        network = cs.network
        if spec.family is Family.EVM and network is Network.EMBEDDED:

            async def open_evm(chain=chain, spec=spec, cs=cs):
                from tokenforge.chains.evm.open import open_embedded_evm_deployer

                return await open_embedded_evm_deployer(
                    chain,
                    spec.chain_id(Network.EMBEDDED),
                    _state_dir(settings, chain),
                    keystore.evm_deployer_keys(chain, cs.deployer_keys),
                    terms=market_terms(chain, cs),
                    **_evm_options(cs),
                )

            factories[chain] = open_evm
        elif spec.family is Family.EVM:

            async def open_evm_rpc(chain=chain, spec=spec, cs=cs, network=network):
                from web3 import AsyncWeb3

                from tokenforge.chains.evm.keeper import NonceKeeper
                from tokenforge.chains.evm.open import open_rpc_evm_deployer
                from tokenforge.chains.evm.pooled_provider import PooledAsyncProvider
                from tokenforge.store.nonce_cursors import SqlNonceSource

                chain_id = cs.chain_id or spec.chain_id(network)
                await check_evm_endpoints(chain, cs, chain_id)
                pool = rpc_pool(chain, cs)
                w3 = AsyncWeb3(PooledAsyncProvider(pool))

                try:
                    deployer = await open_rpc_evm_deployer(
                        chain,
                        w3,
                        chain_id=chain_id,
                        deployer_keys=keystore.evm_deployer_keys(chain, cs.deployer_keys),
                        factory_address=cs.factory_address,
                        dev_fund_wei=cs.dev_fund_base_units if network is Network.LOCAL else None,
                        terms=market_terms(chain, cs),
                        dex=_dex(cs),
                        sync=network is Network.LOCAL,
                        fees=_fee_oracle(w3, cs),
                        nonces=lambda pending_count, chain=chain: SqlNonceSource(sessions, chain, pending_count),
                        logs_window_blocks=10_000,
                        **_evm_options(cs),
                    )
                except BaseException:
                    await pool.close()
                    raise
                keeper = NonceKeeper(deployer, gap_after_s=cs.nonce_gap_s, interval_s=cs.keeper_interval_s)
                deployer.run_in_background(keeper.run(), "nonce-keeper")
                pools[chain] = pool
                return deployer

            factories[chain] = open_evm_rpc
        elif network is Network.EMBEDDED:

            async def open_solana(chain=chain, cs=cs):
                from tokenforge.chains.solana.open import open_embedded_solana_deployer

                return await open_embedded_solana_deployer(
                    chain,
                    _state_dir(settings, chain),
                    keystore.solana_payer_key(chain),
                    keystore.platform_secret("solana-mint"),
                    min_balance_lamports=cs.min_balance_base_units,
                    balance_interval_s=cs.keeper_interval_s,
                    market_terms=market_terms(chain, cs),
                )

            factories[chain] = open_solana
        else:

            async def open_solana_rpc(chain=chain, cs=cs, network=network):
                from tokenforge.chains.solana.market import CURVE_PROGRAM_ID
                from tokenforge.chains.solana.open import open_rpc_solana_deployer
                from tokenforge.chains.solana.pooled_provider import pooled_async_client

                pool = rpc_pool(chain, cs)
                dev_fund = cs.dev_fund_base_units if network is Network.LOCAL and cs.dev_fund_base_units else None
                try:
                    deployer = await open_rpc_solana_deployer(
                        chain,
                        pooled_async_client(pool, commitment=cs.commitment),
                        keystore.solana_payer_key(chain),
                        keystore.platform_secret("solana-mint"),
                        commitment=cs.commitment,
                        compute_unit_price_micro_lamports=cs.compute_unit_price_micro_lamports,
                        compute_unit_limit=cs.compute_unit_limit,
                        airdrop_below_lamports=dev_fund,
                        min_balance_lamports=cs.min_balance_base_units,
                        balance_interval_s=cs.keeper_interval_s,
                        # the devnet loads the curve program at its fixed id; on testnets and
                        # mainnets Solana launches carry no curve yet (no deployed program)
                        curve_program=CURVE_PROGRAM_ID if network is Network.LOCAL else None,
                        market_terms=market_terms(chain, cs),
                    )
                except BaseException:
                    await pool.close()
                    raise
                pools[chain] = pool
                return deployer

            factories[chain] = open_solana_rpc
    return factories


async def build_container(
    settings: Settings,
    *,
    deployers: DeployerRegistry | None = None,
    migrate: bool = True,
    broker_at_start: bool = True,
    sees_all_writes: bool = True,
) -> Container:
    """Wire every adapter from ``settings``; ``deployers`` overrides the chain adapters.

    ``migrate``: bring the schema to the newest revision first (the one-process embedded
    default); otherwise refuse to start unless ``tokenforge migrate`` has done it.
    ``broker_at_start``: connect to the broker now (relays, workers) or at first use (the
    API, which must accept launches into the outbox while the broker is down).
    ``sees_all_writes``: every write happens in this process (``tokenforge serve``), so a
    per-process ``memory://`` cache stays true; otherwise ``memory://`` caches nothing."""
    refuse_placeholder_secrets(settings)  # on testnets and mainnets (security_checks.py)
    make_private(settings)  # the data directory and the SQLite files: 0700 / 0600 (data_dir.py)
    engine = make_engine(settings.resolved_database_url)
    try:
        if migrate:
            await upgrade_to_head(engine)
        else:
            await require_head(engine)
        queue = await open_queue(
            settings.broker_url, delivery_limit=max(20, settings.max_attempts * 4), lazy=not broker_at_start
        )
    except BaseException:
        await engine.dispose()
        raise
    sessions = make_sessionmaker(engine)
    feed = ChangeFeed()
    hub = JobEventHub()
    feed.subscribe(hub.on_committed)
    install_job_metrics(feed)
    cache_url = settings.cache_url
    if cache_url.startswith("memory://") and not sees_all_writes:
        log.info("memory:// cache is per process and other processes write here: caching nothing")
        cache_url = "none://"
    cache = open_cache(cache_url)
    install_cache_invalidation(feed, cache)
    policy = RetryPolicy(
        max_attempts=settings.max_attempts,
        base_s=settings.retry_base_s,
        max_s=settings.retry_max_s,
        confirm_poll_s=settings.confirm_poll_s,
        max_confirm_checks=settings.max_confirm_checks,
        outage_max_s=settings.outage_max_s,
    )
    relay = OutboxRelay(
        sessions,
        queue,
        poll_s=settings.relay_poll_s,
        listen_poll_s=max(settings.relay_poll_s, RELAY_LISTEN_POLL_S),
        policy=policy,
    )
    keystore = open_keystore(settings)  # called at chain open (deployer_factories), never per launch
    pools: dict = {}
    if deployers is None:
        factories = deployer_factories(settings, keystore, sessions, pools)
        deployers = DeployerRegistry(audited_factories(factories, keystore, sessions))  # keys created: audited
    owner = lease_owner_id()
    committer = GroupCommitter(sessions, owner=owner, lease_s=settings.job_lease_s, feed=feed)
    handler = LaunchHandler(
        sessions,
        deployers,
        policy=policy,
        wake_relay=relay.notify,
        committer=committer,
        crash_point=settings.fault_crash_point,
    )
    worker = Worker(sessions, queue, handler, prefetch=settings.worker_prefetch(), policy=policy, owner=owner)
    sweeper = Sweeper(
        sessions,
        policy=policy,
        interval_s=settings.sweep_interval_s,
        stale_s=settings.sweep_stale_s,
        wake_relay=relay.notify,
        feed=feed,
        queue=queue,
        dead_letter_topics=[launch_topic(c) for c in settings.chains],
    )
    health_reporter = ChainHealthReporter(sessions, deployers, pools, interval_s=settings.chain_health_interval_s)
    listener = None if settings.is_sqlite else PgListener(settings.resolved_database_url)
    return Container(
        settings,
        engine,
        sessions,
        queue,
        hub,
        relay,
        keystore,
        deployers,
        worker,
        committer,
        sweeper,
        feed,
        cache,
        health_reporter,
        pools,
        listener,
        build_webhooks(settings, sessions, keystore, policy=policy, wake_relay=relay.notify, feed=feed),
        price_feed=open_price_feed(settings),
    )
