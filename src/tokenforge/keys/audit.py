"""Key events into the audit log.

The key store is file based and sync; it keeps its events (:class:`~tokenforge.keys.local.
KeyEvent`) for the caller, which writes them here in a transaction of their own. Subjects
name a key by chain and address (``key:<chain>/<address>``), never by its material.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit.log import AuditEvent, record
from tokenforge.chains.registry import DeployerFactory
from tokenforge.keys.local import KeyEvent, LocalKeyStore


async def record_key_events(sessions: async_sessionmaker[AsyncSession], events: list[KeyEvent], *, actor: str) -> None:
    """Append ``events`` (oldest first) to the audit log as done by ``actor``."""
    if events:
        await record(sessions, *(AuditEvent(actor, e.action, e.subject, e.details) for e in events))


def audited_factories(
    factories: dict[str, DeployerFactory],
    keystore: object,
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: str = "system:worker",
) -> dict[str, DeployerFactory]:
    """``factories`` that, once a chain is opened, audit the keys its opening created
    (keys are created on first use, when a chain opens). A store without events (a test
    double) is passed through."""
    if not isinstance(keystore, LocalKeyStore):
        return factories

    def wrap(factory: DeployerFactory) -> DeployerFactory:
        async def opened():
            try:
                return await factory()
            finally:
                await record_key_events(sessions, keystore.drain_events(), actor=actor)

        return opened

    return {chain: wrap(factory) for chain, factory in factories.items()}
