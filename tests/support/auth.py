"""Credentials for tests: API keys issued straight into a container's or a data
directory's database, and the ``Authorization`` header that carries them."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

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


def settings_key(settings, role: Role = Role.OPERATOR, wallet: str | None = None, *, migrate: bool = False) -> str:
    """Issue a key in the database ``settings`` name (migrating it first if asked), from
    sync code, e.g. for a ``tokenforge serve`` child process started by the test. Runs in
    a thread of its own, so it works from inside a running event loop too."""
    from tokenforge.store.db import make_engine, make_sessionmaker
    from tokenforge.store.migrate import upgrade_to_head

    async def run() -> str:
        engine = make_engine(settings.resolved_database_url)
        try:
            if migrate:
                await upgrade_to_head(engine)
            return await issue_key(make_sessionmaker(engine), role, wallet)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def env_key(env: dict, role: Role = Role.OPERATOR, wallet: str | None = None) -> str:
    """A key in the database of the deployment whose ``TOKENFORGE_*`` environment is ``env``
    (``TOKENFORGE_DATA_DIR``, and ``TOKENFORGE_DATABASE_URL`` when it is not the default)."""
    from tokenforge.config import Settings

    settings = Settings(data_dir=env["TOKENFORGE_DATA_DIR"], database_url=env.get("TOKENFORGE_DATABASE_URL"))
    return settings_key(settings, role, wallet)
