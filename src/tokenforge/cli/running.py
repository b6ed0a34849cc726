"""Running a command's work on the configured database, with one-line errors."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

T = TypeVar("T")


def run_on_database(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's ``coro``; a TokenForge error (an unmigrated database, bad input, an
    unknown key) or an unreachable database is printed in one line (never the URL: it may
    hold a password) and the command exits with status 1."""
    from sqlalchemy.exc import SQLAlchemyError

    from tokenforge.errors import TokenForgeError

    err = Console(stderr=True)
    try:
        return asyncio.run(coro)
    except TokenForgeError as exc:
        err.print(f"[red]{exc.message}[/]", highlight=False, soft_wrap=True)
    except (OSError, SQLAlchemyError) as exc:
        err.print(f"[red]cannot use the database ({type(exc).__name__})[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
