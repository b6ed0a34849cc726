"""Credentials for tests: API keys issued straight into a container's or a data
directory's database, and the ``Authorization`` header that carries them."""

from __future__ import annotations

import asyncio

from tokenforge.auth import api_keys
from tokenforge.auth.principal import Role


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def issue_key(sessions, role: Role = Role.OPERATOR, wallet: str | None = None, label: str = "test") -> str:
    """A new API key's token (operator by default: it may launch for any creator)."""
    issued = await api_keys.create(sessions, role=role, wallet=wallet, label=label, actor="test:fixture")
    return issued.token


async def container_key(container, role: Role = Role.OPERATOR, wallet: str | None = None) -> str:
    return await issue_key(container.sessions, role, wallet)


def settings_key(settings, role: Role = Role.OPERATOR, wallet: str | None = None) -> str:
    """Issue a key in the (already migrated) database ``settings`` name, from sync code:
    e.g. for a ``tokenforge serve`` child process started by the test."""
    from tokenforge.store.db import make_engine, make_sessionmaker

    async def run() -> str:
        engine = make_engine(settings.resolved_database_url)
        try:
            return await issue_key(make_sessionmaker(engine), role, wallet)
        finally:
            await engine.dispose()

    return asyncio.run(run())
