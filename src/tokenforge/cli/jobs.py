"""``tokenforge jobs``: list jobs and dead letters, re-queue dead jobs.

By default they act on the configured database directly: the host's user is the operator,
audited as ``cli:<user>@<host>``. ``dead`` and ``retry`` with ``--api URL`` go through the
operator API (``/v1/ops``) instead, with an operator ``--api-key`` (``TOKENFORGE_API_KEY``),
audited under that key. ``list`` (any status) reads the database only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tokenforge.cli.running import run_on_database
from tokenforge.config import Settings
from tokenforge.store.models import JobRow

jobs_app = typer.Typer(help="Operate on jobs: dead letters and re-queue.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")

#: ``retry --all`` shows a progress bar from this many dead jobs on.
PROGRESS_FROM = 500

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="Go through this TokenForge API's /v1/ops (with an operator --api-key) instead of the database.",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TOKENFORGE_API_KEY",
        help="Operator API key for --api (sent as Authorization: Bearer).",
        show_default=False,
        show_envvar=True,
    ),
]


def _over_api(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` against the API; a refusal (401/403 naming why, 404, 409) or an
    unreachable API is printed in one line and exits with status 1."""
    from tokenforge.cli.client import ApiError

    try:
        return asyncio.run(coro)
    except ApiError as exc:
        err.print(f"[red]{exc.explain()}[/]", highlight=False)
    except httpx.TransportError as exc:
        err.print(f"[red]cannot reach the API ({type(exc).__name__})[/]", highlight=False)
    raise typer.Exit(1)


async def _api_dead(api: str, api_key: str | None, limit: int) -> list[dict]:
    from tokenforge.cli.client import api_client, dead_letters

    async with api_client(api, api_key) as client:
        return await dead_letters(client, limit)


async def _api_retry(api: str, api_key: str | None, job_ids: list[str] | None, progress) -> list[dict]:
    """Re-queue ``job_ids`` (None: every dead job, listed first) through the API."""
    from tokenforge.cli.client import api_client, dead_letters, retry_dead_job

    async with api_client(api, api_key) as client:
        if job_ids is None:
            job_ids = [d["job_id"] for d in await dead_letters(client, 1_000_000)]
            progress(len(job_ids), 0)
        done = []
        for job_id in job_ids:
            done.append(await retry_dead_job(client, job_id))
            progress(None, 1)
        return done


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

    rows = run_on_database(list_jobs(Settings(), status, limit))
    table = Table(title=f"{status} jobs")
    for col in ("job", "chain", "attempts", "error", "updated"):
        table.add_column(col)
    for row in rows:
        table.add_row(row.id, row.chain, str(row.attempts), _error(row), row.updated_at.isoformat(timespec="seconds"))
    console.print(table)


@jobs_app.command("dead")
def jobs_dead(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Show at most this many.")] = 50,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List dead jobs, most recently dead first: what died, why and when."""
    from tokenforge.cli.operations import dead_jobs

    table_rows: list[tuple[str, ...]]
    if api:
        items = _over_api(_api_dead(api, api_key, limit))
        title = f"{len(items)} dead jobs" + (" (newest)" if len(items) >= limit else "")
        table_rows = [
            (
                d["job_id"],
                d["chain"],
                d["token_id"],
                str(d["attempts"]),
                f"{(d.get('error') or {}).get('code') or ''} {(d.get('error') or {}).get('message') or ''}".strip()[
                    :80
                ],
                d.get("died_at") or "",
            )
            for d in items
        ]
    else:
        rows, total = run_on_database(dead_jobs(Settings(), limit))
        title = f"{total} dead jobs" + (f" (newest {len(rows)})" if total > len(rows) else "")
        table_rows = [(r.id, r.chain, r.token_id, str(r.attempts), _error(r), _when(r)) for r in rows]
    if not table_rows:
        console.print("no dead jobs")
        return
    table = Table(title=title)
    for col in ("job", "chain", "token", "attempts", "error", "died"):
        table.add_column(col, overflow="fold")
    for table_row in table_rows:
        table.add_row(*table_row)
    console.print(table)
    console.print("re-queue: tokenforge jobs retry JOB_ID | --all")


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str | None, typer.Argument(help="A dead job's id.", show_default=False)] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Re-queue every dead job.")] = False,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Send a dead job (or every one, with --all) back to the queue with a fresh attempt
    budget; a running relay publishes it."""
    from tokenforge.cli import operations

    if (job_id is None) == (not all_dead):
        err.print("[red]give a job id or --all (not both)[/]")
        raise typer.Exit(2)
    if api:
        _retry_over_api(api, api_key, job_id)
        return
    if job_id is not None:
        job = run_on_database(operations.retry_job(Settings(), job_id))
        console.print(f"re-queued {job.id} ({job.chain})")
        return
    with Progress(
        TextColumn("re-queueing dead jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("retry", total=None, visible=False)

        def on_total(total: int) -> None:
            progress.update(task, total=total, visible=total >= PROGRESS_FROM)

        count = run_on_database(
            operations.retry_all(Settings(), on_total=on_total, progress=lambda n: progress.advance(task, n))
        )
    console.print(f"re-queued {count} dead jobs")


def _retry_over_api(api: str, api_key: str | None, job_id: str | None) -> None:
    if job_id is not None:
        job = _over_api(_api_retry(api, api_key, [job_id], lambda total, n: None))[0]
        console.print(f"re-queued {job['id']} ({job['chain']})")
        return
    with Progress(
        TextColumn("re-queueing dead jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("retry", total=None, visible=False)

        def on_progress(total: int | None, n: int) -> None:
            if total is not None:
                progress.update(task, total=total, visible=total >= PROGRESS_FROM)
            progress.advance(task, n)

        jobs = _over_api(_api_retry(api, api_key, None, on_progress))
    console.print(f"re-queued {len(jobs)} dead jobs")
