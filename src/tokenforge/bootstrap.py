"""The only place where settings become adapters.

``build_container`` wires the database, queue, key store, chain deployers, relay and
worker; ``Container.start`` runs the background roles a process was asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tokenforge.chains.registry import DeployerFactory, DeployerRegistry
from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.errors import PermanentError
from tokenforge.jobs.backends.memory import MemoryQueue
from tokenforge.jobs.events import JobEventHub
from tokenforge.jobs.handlers.launch import LaunchHandler, RetryPolicy
from tokenforge.jobs.outbox import OutboxRelay
from tokenforge.jobs.ports import JobQueue
from tokenforge.jobs.worker import Worker, recover
from tokenforge.keys.local import LocalKeyStore
from tokenforge.keys.ports import KeyStore
from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.group_commit import GroupCommitter
from tokenforge.store.migrate import upgrade_to_head

log = logging.getLogger(__name__)


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
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _worker_started: bool = False

    def wake_relay(self) -> None:
        self.relay.notify()

    async def start(self, *, relay: bool = True, worker: bool = True, warm_chains: bool = True) -> None:
        """Start background roles. The single-process default runs both and recovers
        unfinished jobs left by an earlier run (it is the only worker, so stale leases
        can be dropped)."""
        if worker:
            if warm_chains:
                await asyncio.gather(*(self.deployers.get(c) for c in self.deployers.chains))
            await recover(self.sessions, self.queue, clear_leases=True)
            await self.worker.start()
            self._worker_started = True
        if relay:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))

    async def close(self) -> None:
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
        await self.queue.close()
        await self.deployers.close()
        await self.engine.dispose()


def _state_dir(settings: Settings, chain: str):
    path = settings.data_dir / "chains" / chain
    path.mkdir(parents=True, exist_ok=True)
    return path


def deployer_factories(settings: Settings, keystore: KeyStore) -> dict[str, DeployerFactory]:
    factories: dict[str, DeployerFactory] = {}
    for chain, network in settings.chains.items():
        spec = CHAINS[chain]
        if Network(network) is not Network.EMBEDDED:
            raise PermanentError(
                f"{chain}: network {network} needs JSON-RPC endpoints, which this version does not "
                "support yet; use 'embedded'",
                code="network_unsupported",
            )
        if spec.family is Family.EVM:

            async def open_evm(chain=chain, spec=spec):
                from tokenforge.chains.evm.deployer import open_embedded_evm_deployer

                return await open_embedded_evm_deployer(
                    chain, spec.chain_id(Network.EMBEDDED), _state_dir(settings, chain),
                    keystore.evm_deployer_key(chain),
                )

            factories[chain] = open_evm
        else:

            async def open_solana(chain=chain):
                from tokenforge.chains.solana.deployer import open_embedded_solana_deployer

                return await open_embedded_solana_deployer(
                    chain, _state_dir(settings, chain), keystore.solana_payer_key(chain),
                    keystore.platform_secret("solana-mint"),
                )

            factories[chain] = open_solana
    return factories


async def build_container(settings: Settings, *, deployers: DeployerRegistry | None = None) -> Container:
    """Wire every adapter from ``settings``; ``deployers`` overrides the chain adapters."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    await upgrade_to_head(engine)
    sessions = make_sessionmaker(engine)
    if settings.queue_backend != "memory":
        raise PermanentError(f"queue backend {settings.queue_backend!r} is not available", code="queue_unsupported")
    queue = MemoryQueue(delivery_limit=max(20, settings.max_attempts * 4))
    hub = JobEventHub()
    relay = OutboxRelay(sessions, queue, poll_s=settings.relay_poll_s)
    keystore = LocalKeyStore(settings.data_dir, master_keyfile=settings.master_keyfile)
    if deployers is None:
        deployers = DeployerRegistry(deployer_factories(settings, keystore))
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    committer = GroupCommitter(sessions, owner=owner, lease_s=settings.job_lease_s)
    handler = LaunchHandler(
        sessions,
        deployers,
        policy=RetryPolicy(
            max_attempts=settings.max_attempts,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
            confirm_poll_s=settings.confirm_poll_s,
        ),
        hub=hub,
        wake_relay=relay.notify,
        committer=committer,
        crash_point=settings.fault_crash_point,
    )
    worker = Worker(sessions, queue, handler, concurrency=settings.worker_concurrency)
    return Container(settings, engine, sessions, queue, hub, relay, keystore, deployers, worker, committer)
