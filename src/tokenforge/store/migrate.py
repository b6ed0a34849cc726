"""Apply Alembic migrations (SQLite and PostgreSQL) from inside the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenforge.errors import ErrorCode, PermanentError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there."""

    def _upgrade(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at (None: never migrated)."""

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def require_head(engine: AsyncEngine) -> None:
    """Refuse to run on a database whose schema is not the newest: processes of a cluster
    never migrate on their own (two at once would race, and an old process must not meet a
    new schema unannounced); ``tokenforge migrate`` does it once."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        state = "has no TokenForge schema" if current is None else f"is at schema revision {current}"
        raise PermanentError(
            f"the database {state}; this version needs revision {head}: run `tokenforge migrate` first",
            code=ErrorCode.SCHEMA_NOT_MIGRATED,
        )
