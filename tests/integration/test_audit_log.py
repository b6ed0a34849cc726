"""The audit log on both databases as operators and forensics meet it: entries written by
real actions (API keys, a launch, a dead letter and its re-queue) read at /v1/ops/audit;
every edit, deletion and insertion made behind TokenForge's back found by verify and named
at the right entry; the newest entries removed found with an expected head; the triggers
refusing UPDATE and DELETE; one chain with no gaps or forks from concurrent processes;
and ``tokenforge audit verify|export`` exit codes and messages."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from tests.support.auth import bearer, container_key
from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.audit import Action
from tokenforge.audit.log import GENESIS, entry_hash, head, row_out, verify, verify_export
from tokenforge.auth import api_keys
from tokenforge.auth.principal import Role
from tokenforge.cli import audit as audit_cli
from tokenforge.errors import TokenForgeError, TransientError
from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.models import AuditRow, table

pytestmark = pytest.mark.integration

CREATOR = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
AUDIT = table(AuditRow)


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
async def db(any_db_settings):
    """A migrated database of ``any_db_settings``: ``(settings, engine, sessions)``."""
    engine = make_engine(any_db_settings.resolved_database_url)
    await upgrade_to_head(engine)
    try:
        yield any_db_settings, engine, make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def seed(sessions, keys: int = 3) -> None:
    """``2 * keys`` entries from real actions: each key issued, then revoked."""
    issued = [
        await api_keys.create(sessions, role=Role.CREATOR, wallet=CREATOR, label=f"k{i}", actor="test:seed")
        for i in range(keys)
    ]
    for key in issued:
        await api_keys.revoke(sessions, key.row.id, actor="test:seed")


async def rows(engine) -> list[dict]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(AUDIT).order_by(AUDIT.c.seq))]


async def allow_tampering(engine) -> None:
    """What someone with the database's owner rights can do: switch the triggers off."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            await conn.execute(text("DROP TRIGGER audit_log_no_update"))
            await conn.execute(text("DROP TRIGGER audit_log_no_delete"))


async def restore(engine, original: list[dict]) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(AUDIT))
        await conn.execute(insert(AUDIT), original)


def forged(prev_hash: str, seq: int, at, *, actor: str = "forger", digest: str | None = None) -> dict:
    """An entry chained onto ``prev_hash`` (its own hash right unless ``digest`` is given)."""
    details = {"role": "operator"}
    fields = dict(seq=seq, at=at, actor=actor, action=Action.API_KEY_ISSUED.value, subject="api_key:forged")
    digest = digest or entry_hash(prev_hash, details=details, **fields)
    return {**fields, "details": details, "prev_hash": prev_hash, "hash": digest}


def cli_env(settings) -> dict[str, str]:
    env = {**os.environ, "TOKENFORGE_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    env.pop("TOKENFORGE_DATABASE_URL", None)
    if settings.database_url:
        env["TOKENFORGE_DATABASE_URL"] = settings.database_url
    return env


async def cli(settings, *args: str) -> tuple[int, str, str]:
    """``tokenforge audit ...`` in its own process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tokenforge.cli.main",
        "audit",
        *args,
        env=cli_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


# -- entries written by real actions, read by operators -------------------------------------


async def test_real_actions_are_chained_and_operators_read_them(any_db_settings):
    settings = any_db_settings
    settings.max_attempts = 1
    fake = FakeDeployer()
    async with running_stack(settings, {"ethereum": fake}, authorized=False) as (container, client):
        op = bearer(await container_key(container, Role.OPERATOR))
        creator = bearer(await container_key(container, Role.CREATOR, wallet=CREATOR))
        fake.fail_next("sign", TransientError("rpc down", code="rpc_unavailable"))
        launch = {"chain": "ethereum", "name": "Audited", "symbol": "AUD", "supply": 5, "creator": CREATOR}
        resp = await client.post("/v1/tokens", json=launch, headers=op)
        assert resp.status_code == 202, resp.text
        job_id, token_id = resp.json()["job"]["id"], resp.json()["token"]["id"]
        assert (await wait_final(client, job_id))["status"] == "dead"
        assert (await client.post(f"/v1/ops/jobs/{job_id}/retry", headers=op)).status_code == 202
        assert (await wait_final(client, job_id))["status"] == "confirmed"

        resp = await client.get("/v1/ops/audit", params={"limit": 500}, headers=op)
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert [e["seq"] for e in items] == list(range(len(items), 0, -1)) and resp.json()["next_cursor"] is None
        by_action = {e["action"]: e for e in items}  # the oldest of each action (items: newest first)
        op_key = by_action[Action.API_KEY_ISSUED]["subject"]  # api_key:<id> of the operator key
        assert by_action[Action.LAUNCH_REQUESTED]["actor"] == op_key
        assert by_action[Action.LAUNCH_REQUESTED]["subject"] == f"token:{token_id}"
        assert by_action[Action.JOB_DEAD_LETTERED]["subject"] == f"job:{job_id}"
        assert by_action[Action.JOB_REQUEUED]["actor"] == op_key
        assert by_action[Action.KEY_USED_FOR_LAUNCH]["details"]["job_id"] == job_id
        assert items[-1]["prev_hash"] == GENESIS and all(
            newer["prev_hash"] == older["hash"] for newer, older in itertools.pairwise(items)
        )

        # filters
        resp = await client.get("/v1/ops/audit", params={"action": Action.JOB_REQUEUED.value}, headers=op)
        assert [(e["subject"], e["actor"]) for e in resp.json()["items"]] == [(f"job:{job_id}", op_key)]
        resp = await client.get("/v1/ops/audit", params={"subject": f"job:{job_id}", "order": "asc"}, headers=op)
        assert [e["action"] for e in resp.json()["items"]][:2] == [Action.JOB_DEAD_LETTERED, Action.JOB_REQUEUED]
        resp = await client.get("/v1/ops/audit", params={"actor": op_key}, headers=op)
        assert {e["action"] for e in resp.json()["items"]} == {Action.LAUNCH_REQUESTED, Action.JOB_REQUEUED}
        newest_at = items[0]["at"]
        resp = await client.get("/v1/ops/audit", params={"since": newest_at}, headers=op)
        assert [e["seq"] for e in resp.json()["items"]][-1] <= items[0]["seq"]
        assert all(e["at"] >= newest_at for e in resp.json()["items"])
        resp = await client.get("/v1/ops/audit", params={"until": items[-1]["at"]}, headers=op)
        assert resp.json()["items"] == []

        # pages: oldest first, two at a time, every entry once
        seen, cursor = [], None
        while True:
            params = {"order": "asc", "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/ops/audit", params=params, headers=op)).json()
            seen += [e["seq"] for e in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(1, len(items) + 1))

        resp = await client.get("/v1/ops/audit/verify", headers=op)
        assert resp.json() == {
            "ok": True,
            "entries": len(items),
            "head": items[0]["hash"],
            "broken_seq": None,
            "reason": None,
        }

        # who may read
        for path in ("/v1/ops/audit", "/v1/ops/audit/verify"):
            resp = await client.get(path, headers=creator)
            assert resp.status_code == 403 and resp.headers["content-type"] == "application/problem+json"
            assert "operator" in resp.json()["detail"]
            resp = await client.get(path)
            assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
        for params, field in (
            ({"cursor": "bm9wZQ"}, "query.cursor"),
            ({"since": "2026-12-01T15:00:00"}, "query.since"),
            ({"order": "sideways"}, "query.order"),
            ({"until": "0001-01-01T00:00:00+01:00"}, "query.until"),
            ({"actor": "ab\x00cd"}, "query.actor"),
        ):
            resp = await client.get("/v1/ops/audit", params=params, headers=op)
            assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == field, resp.text


# -- tampering ---------------------------------------------------------------------------------


async def test_every_edit_deletion_and_insertion_is_detected_at_its_entry(db):
    _, engine, sessions = db
    await seed(sessions)  # 6 entries
    result = await verify(sessions)
    assert result.ok and result.entries == 6
    original = await rows(engine)
    await allow_tampering(engine)
    e = {r["seq"]: r for r in original}

    async def tampered(*statements) -> object:
        async with engine.begin() as conn:
            for stmt in statements:
                await conn.execute(stmt)
        found = await verify(sessions)
        await restore(engine, original)
        assert (await verify(sessions)).ok
        return found

    # a row's details edited
    found = await tampered(update(AUDIT).where(AUDIT.c.seq == 3).values(details={"role": "operator"}))
    assert (found.broken_seq, found.reason) == (3, "the entry's content does not match its hash")
    assert found.entries == 2 and found.head == e[2]["hash"]
    # a row's details edited and its own hash recomputed: the next entry no longer follows
    redone = forged(e[2]["hash"], 3, e[3]["at"], actor=e[3]["actor"])
    found = await tampered(update(AUDIT).where(AUDIT.c.seq == 3).values(**redone))
    assert (found.broken_seq, found.reason) == (4, "prev_hash does not match the hash of the entry before it")
    # a middle row deleted
    found = await tampered(delete(AUDIT).where(AUDIT.c.seq == 3))
    assert (found.broken_seq, found.reason) == (3, "entry 3 is missing (the next entry is 4)")
    # a forged row inserted in the middle, the rows after it renumbered
    found = await tampered(
        update(AUDIT).where(AUDIT.c.seq >= 3).values(seq=AUDIT.c.seq + 1000),
        update(AUDIT).where(AUDIT.c.seq >= 1000).values(seq=AUDIT.c.seq - 999),
        insert(AUDIT).values(**forged(e[2]["hash"], 3, e[2]["at"] + timedelta(microseconds=1))),
    )
    assert (found.broken_seq, found.reason) == (4, "prev_hash does not match the hash of the entry before it")
    # a forged row in a deleted one's place, chained onto the entry before it, no renumbering
    found = await tampered(
        delete(AUDIT).where(AUDIT.c.seq == 4),
        insert(AUDIT).values(**forged(e[3]["hash"], 4, e[4]["at"])),
    )
    assert (found.broken_seq, found.reason) == (5, "prev_hash does not match the hash of the entry before it")
    # a forged row appended with a hash that is not its own
    found = await tampered(insert(AUDIT).values(**forged(e[6]["hash"], 7, e[6]["at"], digest="ab" * 32)))
    assert (found.broken_seq, found.reason) == (7, "the entry's content does not match its hash")
    # the newest rows removed: a valid shorter chain, unless the head kept elsewhere is asked for
    found = await tampered(delete(AUDIT).where(AUDIT.c.seq >= 5))
    assert found.ok and found.entries == 4
    async with engine.begin() as conn:
        await conn.execute(delete(AUDIT).where(AUDIT.c.seq >= 5))
    found = await verify(sessions, expect_head=e[6]["hash"])
    assert not found.ok and found.broken_seq == 5 and e[6]["hash"] in (found.reason or "")
    assert (await verify(sessions, expect_head=e[3]["hash"])).expected_head_seq == 3  # grown since: fine


async def test_the_triggers_refuse_update_and_delete(db):
    _, engine, sessions = db
    await seed(sessions, keys=1)
    before = await rows(engine)
    for stmt in (update(AUDIT).where(AUDIT.c.seq == 1).values(actor="someone else"), delete(AUDIT)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(stmt)
    assert await rows(engine) == before


# -- many writers ---------------------------------------------------------------------------

WRITER = """
import asyncio, sys, time
from tokenforge.audit.log import AuditEvent, record
from tokenforge.store.db import make_engine, make_sessionmaker

async def main(url, name, n):
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await session.connection()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.perf_counter()
    for i in range(n):
        await record(sessions, AuditEvent(name, "test.concurrent", f"{name}:{i}", {"i": i}))
    print(f"done {time.perf_counter() - started:.6f}", flush=True)
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


async def concurrent_writers(url: str, writers: int, each: int) -> list[float]:
    """``writers`` processes appending ``each`` entries at once; their times in seconds."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            url,
            f"writer-{w}",
            str(each),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for w in range(writers)
    ]
    try:
        for proc in procs:  # all connected before any writes
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), 120) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    assert all(proc.returncode == 0 for proc in procs)
    return [float(out.split()[1]) for out, _ in outputs]


@pytest.mark.slow
async def test_concurrent_processes_make_one_chain_without_gaps_or_forks(db):
    settings, engine, sessions = db
    writers = 4 if settings.database_url else 2  # SQLite: two processes on one file
    await concurrent_writers(settings.resolved_database_url, writers, 200)
    stored = await rows(engine)
    assert [r["seq"] for r in stored] == list(range(1, 200 * writers + 1))
    assert {r["subject"] for r in stored} == {f"writer-{w}:{i}" for w in range(writers) for i in range(200)}
    if settings.database_url:  # they really ran at once (PostgreSQL queues lock waiters in order)
        assert len({r["actor"] for r in stored[: 200 * writers // 2]}) == writers
    result = await verify(sessions)
    assert result.ok and result.entries == 200 * writers and result.head == stored[-1]["hash"]


# -- the CLI --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_cli_verifies_exports_and_names_the_broken_entry(db, tmp_path):
    settings, engine, sessions = db
    await seed(sessions)
    _, head_hash = await head(sessions)

    code, out, err = await cli(settings, "verify")
    assert code == 0, err
    assert f"audit log intact: 6 entries, head {head_hash}" in out

    export = tmp_path / "audit.jsonl"
    code, _, err = await cli(settings, "export", "--output", str(export))
    assert code == 0, err
    assert f"exported 6 entries (up to entry 6, head {head_hash})" in err
    assert [orjson.loads(line) for line in export.read_bytes().splitlines()] == [
        row_out(AuditRow(**r)) for r in (await rows(engine))[:6]
    ]
    assert export.stat().st_mode & 0o077 == 0
    exported = (await rows(engine))[-1]  # the export is itself in the log
    assert exported["seq"] == 7 and exported["action"] == Action.AUDIT_EXPORTED
    assert exported["actor"].startswith("cli:") and exported["details"]["head"] == head_hash

    await allow_tampering(engine)
    async with engine.begin() as conn:
        await conn.execute(update(AUDIT).where(AUDIT.c.seq == 3).values(actor="someone else"))
    code, out, err = await cli(settings, "verify")
    assert code == 1 and out == ""
    assert "audit log broken at entry 3: the entry's content does not match its hash" in err
    assert f"2 entries before it intact; their head is {(await rows(engine))[1]['hash']}" in err
    code, out, err = await cli(settings, "verify", "--file", str(export))  # the copy kept elsewhere holds
    assert code == 0 and f"intact: 6 entries, head {head_hash}" in out, err

    async with engine.begin() as conn:
        await conn.execute(delete(AUDIT).where(AUDIT.c.seq >= 3))  # the newest entries removed
    code, _, err = await cli(settings, "verify", "--expect-head", head_hash)
    assert code == 1 and "broken at entry 3" in err and f"the expected head {head_hash} is not in the chain" in err


async def test_export_since_writes_only_the_newer_entries_and_is_recorded(db, tmp_path):
    settings, engine, sessions = db
    await seed(sessions)
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    assert await audit_cli._export(settings, str(first), 0, None) == (6, 6, (await rows(engine))[5]["hash"])
    written, upto, _ = await audit_cli._export(settings, str(later), 6, None)  # the first export's entry
    assert (written, upto) == (1, 7)
    whole = first.read_bytes() + later.read_bytes()  # appended, the parts are the whole log
    result = verify_export(whole.splitlines(keepends=True))
    assert result.ok and result.entries == 7 and result.head == (await rows(engine))[6]["hash"]
    assert [(r["action"], r["details"]["after_seq"]) for r in (await rows(engine))[6:]] == [
        (Action.AUDIT_EXPORTED, 0),
        (Action.AUDIT_EXPORTED, 6),
    ]


@pytest.mark.slow
async def test_cli_refuses_an_unmigrated_database(tmp_path, settings):
    settings.data_dir = tmp_path / "fresh"
    code, _, err = await cli(settings, "verify")
    assert code == 1 and "tokenforge migrate" in err
    with pytest.raises(TokenForgeError, match="tokenforge migrate"):
        await audit_cli._export(settings, str(tmp_path / "x.jsonl"), 0, None)
    assert not (tmp_path / "x.jsonl").exists()
