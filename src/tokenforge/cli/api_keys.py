"""``tokenforge api-keys``: issue, list and revoke API keys on the configured database.

An operator on the database's host acts directly (no API needed), audited as
``cli:<user>@<host>`` (:func:`tokenforge.cli.operations.cli_actor`). The database must be
migrated already (``tokenforge migrate``); these commands never migrate.

``create`` prints the key on standard output and nothing else there, so
``KEY=$(tokenforge api-keys create --role operator)`` works; what it says to a person goes to
standard error. The key is shown this once: only its SHA-256 is stored.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from tokenforge.auth.principal import Role
from tokenforge.cli.running import run_on_database
from tokenforge.config import Settings
from tokenforge.errors import TokenForgeError, ValidationFailed
from tokenforge.store.models import ApiKeyRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from tokenforge.api.startup import Asgi, Message, Receive, Scope, Send

api_keys_app = typer.Typer(help="API keys: create, list, revoke (on the database).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expires(text: str, *, now: datetime | None = None) -> datetime:
    """When ``--expires`` ends: a duration from now (``90m``, ``12h``, ``30d``, ``8w``) or a
    moment (``2027-01-01``, ``2027-01-01T00:00:00Z``; without an offset it is UTC).
    :class:`ValidationFailed` naming ``expires`` otherwise."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now + timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            "expires", "give a duration (30d, 12h, 90m, 8w) or a date/time such as 2027-01-01T00:00:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _when(moment: datetime | None, empty: str = "") -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else empty


@api_keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="creator: launches for its --wallet; operator: everything.")],
    wallet: Annotated[
        str | None,
        typer.Option(help="The wallet the key launches for (required for a creator key).", show_default=False),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            help="A duration (30d, 12h) or a moment (2027-01-01T00:00:00Z). Default: never.", show_default=False
        ),
    ] = None,
    label: Annotated[str, typer.Option(help="What the key is for (shown in listings).")] = "",
) -> None:
    """Issue an API key and print it once on standard output (send it as Authorization: Bearer)."""
    from tokenforge.auth import api_keys
    from tokenforge.cli.operations import cli_actor, database

    async def run() -> api_keys.IssuedKey:
        expires_at = parse_expires(expires) if expires is not None else None
        if len(label) > 128:
            raise ValidationFailed("label", "at most 128 characters")
        async with database(Settings()) as sessions:
            return await api_keys.create(
                sessions, role=role, actor=cli_actor(), wallet=wallet, label=label, expires_at=expires_at
            )

    issued = run_on_database(run())
    row = issued.row
    scope = f" for {row.wallet}" if row.wallet else ""
    until = f", expires {_when(row.expires_at)}" if row.expires_at else ""
    err.print(
        f"issued {row.role} key {row.prefix}{scope}{until}; shown this once, keep it secret",
        highlight=False,
    )
    typer.echo(issued.token)


@api_keys_app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """List API keys: id, role, wallet, label, when created, expires, last used, revoked (never the secret)."""
    from tokenforge.auth import api_keys
    from tokenforge.cli.operations import database

    async def run() -> list[ApiKeyRow]:
        async with database(Settings()) as sessions, sessions() as session:
            return await api_keys.list_keys(session, include_revoked=all_)

    rows = run_on_database(run())
    if not rows:
        console.print("no API keys" if all_ else "no active API keys")
        return
    table = Table(title=f"{len(rows)} API keys")
    for col in ("key", "role", "wallet", "label", "created", "expires", "last used", "revoked"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(
            row.prefix,
            row.role,
            row.wallet or "",
            row.label,
            _when(row.created_at),
            _when(row.expires_at, "never"),
            _when(row.last_used_at, "never"),
            _when(row.revoked_at),
        )
    console.print(table)


@api_keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (or its tfk_<id> prefix).")]) -> None:
    """Revoke an API key: every TokenForge process refuses it from its next request."""
    from tokenforge.auth import api_keys
    from tokenforge.cli.operations import cli_actor, database

    cid = key_id.removeprefix("tfk_").split("_", 1)[0]

    async def run() -> None:
        async with database(Settings()) as sessions:
            await api_keys.revoke(sessions, cid, actor=cli_actor())

    run_on_database(run())
    console.print(f"revoked tfk_{cid}", highlight=False)


#: The label and audit actor of the operator key ``tokenforge serve`` issues on the embedded default.
LOCAL_OPERATOR_LABEL = "local operator"
LOCAL_OPERATOR_ACTOR = "system:serve"


def is_embedded_default(settings: Settings) -> bool:
    """Every chain embedded and the database the SQLite file in the data directory."""
    from tokenforge.domain.chains import Network

    return settings.database_url is None and all(cs.network is Network.EMBEDDED for cs in settings.chains.values())


async def local_operator_key(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, str | None]:
    """The embedded default's operator key: ``(prefix, key)`` of a new one when the database
    has no active operator key (the key is for printing once, never for a log or a file),
    else ``(prefix, None)`` of the existing one (the local one first)."""
    from tokenforge.auth import api_keys
    from tokenforge.store.db import utcnow

    now = utcnow()
    async with sessions() as session:
        rows = await api_keys.list_keys(session)
    active = [r for r in rows if r.role == Role.OPERATOR.value and (r.expires_at is None or r.expires_at > now)]
    if active:
        active.sort(key=lambda r: r.label != LOCAL_OPERATOR_LABEL)
        return active[0].prefix, None
    issued = await api_keys.create(sessions, role=Role.OPERATOR, actor=LOCAL_OPERATOR_ACTOR, label=LOCAL_OPERATOR_LABEL)
    return issued.row.prefix, issued.token


def local_key_lines(prefix: str, key: str | None) -> list[str]:
    """What ``tokenforge serve`` prints about the local operator key."""
    if key is not None:
        return [
            f"operator key (shown once, keep it secret): {key}",
            f"  use it: export TOKENFORGE_API_KEY={key}   (tokenforge launch / jobs / demo --api read it)",
        ]
    return [f"operator key: {prefix}… (issued earlier; `tokenforge api-keys create --role operator` makes another)"]


def announce_local_operator_key(app: Asgi, state_of: Callable[[], Any], say: Callable[[str], None]) -> Asgi:
    """``app`` that, once its start-up has completed (the database is migrated), issues or
    names the local operator key and ``say``s it, before the server takes requests.
    ``state_of()`` is the application's state (holding ``container``)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def on_send(message: Message) -> None:
            if message.get("type") == "lifespan.startup.complete":
                try:
                    lines = local_key_lines(*await local_operator_key(state_of().container.sessions))
                except (TokenForgeError, SQLAlchemyError, OSError) as exc:
                    lines = [
                        f"no local operator key ({type(exc).__name__}): tokenforge api-keys create --role operator"
                    ]
                for line in lines:
                    say(line)
            await send(message)

        await app(scope, receive, on_send)

    return wrapped


@asynccontextmanager
async def in_process_key(sessions: async_sessionmaker[AsyncSession], purpose: str) -> AsyncIterator[str]:
    """An operator key for a command that runs the stack in-process on this host's database
    (``tokenforge demo`` without ``--api``): the host's user acts as operator, as with
    ``tokenforge jobs retry``. Issued under :func:`~tokenforge.cli.operations.cli_actor`,
    expiring within the hour, revoked when the command ends; never printed."""
    from tokenforge.auth import api_keys
    from tokenforge.cli.operations import cli_actor
    from tokenforge.store.db import utcnow

    actor = cli_actor()
    issued = await api_keys.create(
        sessions,
        role=Role.OPERATOR,
        actor=actor,
        label=f"tokenforge {purpose} (in-process)",
        expires_at=utcnow() + timedelta(hours=1),
    )
    try:
        yield issued.token
    finally:
        await api_keys.revoke(sessions, issued.row.id, actor=actor)
