"""All settings in one object, read from ``TOKENFORGE_*`` environment variables.

Only :mod:`tokenforge.bootstrap` turns settings into adapters.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenforge.domain.chains import CHAINS, Network


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENFORGE_", extra="ignore", validate_assignment=True)

    #: Where the embedded default keeps its SQLite file, chain state and sealed keys.
    data_dir: Path = Path(".tokenforge")
    #: SQLAlchemy async URL; default: a SQLite file in ``data_dir``.
    database_url: str | None = None
    #: Master keyfile for envelope encryption; default ``data_dir/master.key``.
    master_keyfile: Path | None = None

    host: str = "127.0.0.1"
    port: int = 8000

    #: Queue backend: ``memory`` (in-process, the embedded default).
    queue_backend: str = "memory"
    #: Launches one worker process handles at once.
    worker_concurrency: int = Field(default=64, ge=1, le=1024)
    #: Attempts before a job is dead-lettered.
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    #: Delay between confirmation checks of a submitted transaction.
    confirm_poll_s: float = Field(default=0.2, gt=0)
    #: A job leased by a worker is not touched by another one for this long.
    job_lease_s: float = Field(default=60.0, gt=0)
    #: Relay poll interval when nothing in its own process wakes it (the API runs in
    #: another process and writes the outbox there).
    relay_poll_s: float = Field(default=0.05, gt=0)
    #: How often an SSE stream re-reads job events written by another process.
    event_poll_s: float = Field(default=0.25, gt=0)
    idempotency_ttl_h: int = Field(default=24, ge=24)

    #: Network each chain runs on, e.g. ``{"ethereum": "embedded", "solana": "embedded"}``.
    chains: dict[str, Network] = Field(
        default_factory=lambda: {name: Network.EMBEDDED for name in CHAINS}
    )

    #: Fault injection for crash tests only: the worker process exits abruptly at this
    #: point of a launch ("after_sign": signed tx recorded, not broadcast; "after_broadcast":
    #: broadcast, not confirmed). Never set it in production.
    fault_crash_point: Literal["after_sign", "after_broadcast"] | None = None

    #: Python's thread switch interval for server processes (default 5 ms is tuned for
    #: throughput of CPU-bound threads; the DB driver and chains need quick hand-overs).
    gil_switch_interval_s: float = Field(default=0.0005, gt=0, le=0.1)

    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("chains")
    @classmethod
    def _known_chains(cls, value: dict[str, Network]) -> dict[str, Network]:
        unknown = set(value) - set(CHAINS)
        if unknown:
            raise ValueError(f"unknown chains: {', '.join(sorted(unknown))}")
        return value

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tokenforge.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
