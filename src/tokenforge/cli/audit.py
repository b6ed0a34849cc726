"""``tokenforge audit``: check the audit log's hash chain and export it as JSON lines.

Both work on the configured database directly and refuse one that is not migrated
(:func:`tokenforge.store.migrate.require_head`). ``verify`` exits 0 when the chain is
intact (printing how many entries and the head hash: keep it, and pass it back later as
``--expect-head`` to detect the newest entries being removed) and 1 naming the first
broken entry. ``verify --file`` checks an export with the same rules, without a database.
``export`` writes one entry per line in ``seq`` order and records the export in the log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from tokenforge.audit import Action, AuditEvent
from tokenforge.audit import log as audit_log
from tokenforge.cli.running import run_on_database
from tokenforge.config import Settings

audit_app = typer.Typer(help="The audit log: verify the chain, export entries.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

#: The audit log's name as the subject of an export entry.
SUBJECT = "audit_log"


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _progress(what: str, *, total_bytes: bool = False) -> Progress:
    count = DownloadColumn() if total_bytes else MofNCompleteColumn()
    return Progress(TextColumn(what), BarColumn(), count, TimeElapsedColumn(), console=err, transient=True)


async def _verify_database(settings: Settings, expect_head: str | None, progress: Progress) -> audit_log.Verification:
    from tokenforge.cli.operations import database

    async with database(settings) as sessions:
        total, _ = await audit_log.head(sessions)
        task = progress.add_task("verify", total=total)
        return await audit_log.verify(sessions, expect_head=expect_head, progress=lambda n: progress.advance(task, n))


def _verify_file(path: Path, expect_head: str | None, progress: Progress) -> audit_log.Verification:
    try:
        size = path.stat().st_size
        with path.open("rb") as lines:
            task = progress.add_task("verify", total=size)
            return audit_log.verify_export(lines, expect_head=expect_head, progress=lambda n: progress.advance(task, n))
    except OSError as exc:
        err.print(f"[red]cannot read {path} ({exc.strerror or type(exc).__name__})[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@audit_app.command("verify")
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="HASH",
            help="A head hash kept from an earlier verify: fail unless the chain still contains that entry "
            "(detects the newest entries being removed).",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", metavar="FILE", help="Check an export (tokenforge audit export) instead of the database."
        ),
    ] = None,
) -> None:
    """Walk the audit log's hash chain from the first entry; name the first entry that was
    edited, deleted or inserted (exit 1), or print the entry count and head hash (exit 0)."""
    if expect_head is not None and (len(expect_head) != 64 or any(c not in "0123456789abcdef" for c in expect_head)):
        err.print("[red]--expect-head: must be a head hash as verify prints it (64 hex digits)[/]")
        raise typer.Exit(2)
    where = str(file) if file is not None else "audit log"
    with _progress(f"verifying {where}", total_bytes=file is not None) as progress:
        if file is not None:
            result = _verify_file(file, expect_head, progress)
        else:
            result = run_on_database(_verify_database(Settings(), expect_head, progress))
    if not result.ok:
        err.print(
            f"[red]{where} broken at entry {result.broken_seq}: {result.reason}[/]", highlight=False, soft_wrap=True
        )
        err.print(
            f"{_entries(result.entries)} before it intact; their head is {result.head}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(f"{where} intact: {_entries(result.entries)}, head {result.head}", highlight=False, soft_wrap=True)
    if expect_head is not None and result.expected_head_seq is not None:
        since = result.entries - result.expected_head_seq
        console.print(f"the expected head is entry {result.expected_head_seq} ({_entries(since)} since)")


def _open_output(output: str) -> IO[bytes]:
    if output == "-":
        return sys.stdout.buffer
    try:  # private to the service user, like the data directory
        return os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    except OSError as exc:
        err.print(
            f"[red]cannot write {output} ({exc.strerror or type(exc).__name__})[/]", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None


async def _export(settings: Settings, output: str, since_seq: int, progress: Progress | None) -> tuple[int, int, str]:
    """Write the entries after ``since_seq`` up to the newest one now; record the export.
    Returns ``(entries written, last seq, its hash)``."""
    from tokenforge.cli.operations import cli_actor, database

    async with database(settings) as sessions:
        upto_seq, upto_hash = await audit_log.head(sessions)
        task = None if progress is None else progress.add_task("export", total=max(0, upto_seq - since_seq))
        written = 0
        sink = _open_output(output)
        try:
            async for rows in audit_log.batches(sessions, after_seq=since_seq, upto_seq=upto_seq):
                sink.write(b"".join(orjson.dumps(audit_log.row_out(row)) + b"\n" for row in rows))
                written += len(rows)
                if progress is not None and task is not None:
                    progress.advance(task, len(rows))
            sink.flush()
        finally:
            if sink is not sys.stdout.buffer:
                sink.close()
        to = "stdout" if output == "-" else output
        details = {"after_seq": since_seq, "upto_seq": upto_seq, "entries": written, "head": upto_hash, "to": to}
        await audit_log.record(sessions, AuditEvent(cli_actor(), Action.AUDIT_EXPORTED, SUBJECT, details))
        return written, upto_seq, upto_hash


@audit_app.command("export")
def export(
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE|-", help="Where to write (- for standard output).")
    ] = "-",
    since: Annotated[
        int,
        typer.Option(
            "--since",
            metavar="SEQ",
            min=0,
            help="Only entries after entry SEQ (the last one of an earlier export; its lines can be appended).",
        ),
    ] = 0,
) -> None:
    """Write the audit log as JSON lines, one entry per line in seq order, up to the newest
    entry when the export starts; the export itself is recorded in the log."""
    if output != "-":
        output = os.path.abspath(output)  # as the export's audit entry names it
    if output == "-":
        written, upto, head = run_on_database(_export(Settings(), output, since, None))
    else:
        with _progress(f"exporting to {output}") as progress:
            written, upto, head = run_on_database(_export(Settings(), output, since, progress))
    err.print(f"exported {_entries(written)} (up to entry {upto}, head {head})", highlight=False, soft_wrap=True)
