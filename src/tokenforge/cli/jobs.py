"""``tokenforge jobs``: list jobs and dead letters, re-queue dead jobs (on the database)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from tokenforge.config import Settings
from tokenforge.errors import TokenForgeError
from tokenforge.store.models import JobRow

jobs_app = typer.Typer(help="Operate on jobs: dead letters and re-queue.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

#: ``retry --all`` shows a progress bar from this many dead jobs on.
PROGRESS_FROM = 500


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro``; a TokenForge error (unmigrated database, unknown job, ...) or an
    unreachable database is printed in one line (never the URL: it may hold a password) and
    exits with status 1."""
    try:
        return asyncio.run(coro)
    except TokenForgeError as exc:
        err.print(f"[red]{exc.message}[/]", highlight=False)
    except (OSError, SQLAlchemyError) as exc:
        err.print(f"[red]cannot use the database ({type(exc).__name__})[/]", highlight=False)
    raise typer.Exit(1)


def _when(row: JobRow) -> str:
    moment = row.finished_at or row.updated_at
    return moment.isoformat(timespec="seconds")


def _error(row: JobRow) -> str:
    return f"{row.error_code or ''} {row.error_message or ''}".strip()[:80]


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str, typer.Option(help="queued, submitting, submitted, confirmed, failed or dead.")] = "dead",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List the newest jobs in a state (default: dead) from the database."""
    from tokenforge.cli.operations import list_jobs

    rows = _run(list_jobs(Settings(), status, limit))
    table = Table(title=f"{status} jobs")
    for col in ("job", "chain", "attempts", "error", "updated"):
        table.add_column(col)
    for row in rows:
        table.add_row(row.id, row.chain, str(row.attempts), _error(row), row.updated_at.isoformat(timespec="seconds"))
    console.print(table)


@jobs_app.command("dead")
def jobs_dead(limit: Annotated[int, typer.Option(min=1, max=10_000, help="Show at most this many.")] = 50) -> None:
    """List dead jobs, most recently dead first: what died, why and when."""
    from tokenforge.cli.operations import dead_jobs

    rows, total = _run(dead_jobs(Settings(), limit))
    if not rows:
        console.print("no dead jobs")
        return
    table = Table(title=f"{total} dead jobs" + (f" (newest {len(rows)})" if total > len(rows) else ""))
    for col in ("job", "chain", "token", "attempts", "error", "died"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row.id, row.chain, row.token_id, str(row.attempts), _error(row), _when(row))
    console.print(table)
    console.print("re-queue: tokenforge jobs retry JOB_ID | --all")


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str | None, typer.Argument(help="A dead job's id.", show_default=False)] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Re-queue every dead job.")] = False,
) -> None:
    """Send a dead job (or every one, with --all) back to the queue with a fresh attempt
    budget; a running relay publishes it."""
    from tokenforge.cli import operations

    if (job_id is None) == (not all_dead):
        err.print("[red]give a job id or --all (not both)[/]")
        raise typer.Exit(2)
    if job_id is not None:
        job = _run(operations.retry_job(Settings(), job_id))
        console.print(f"re-queued {job.id} ({job.chain})")
        return
    with Progress(
        TextColumn("re-queueing dead jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("retry", total=None, visible=False)

        def on_total(total: int) -> None:
            progress.update(task, total=total, visible=total >= PROGRESS_FROM)

        count = _run(operations.retry_all(Settings(), on_total=on_total, progress=lambda n: progress.advance(task, n)))
    console.print(f"re-queued {count} dead jobs")
