"""Importing and retiring keys (store and ``tokenforge keys`` commands), and their audit entries."""

from __future__ import annotations

import asyncio
import json

import pytest
from eth_account import Account
from solders.keypair import Keypair
from typer.testing import CliRunner

from tokenforge.audit.actions import Action
from tokenforge.errors import ErrorCode, PermanentError
from tokenforge.keys.local import EVM_DEPLOYER, SOLANA_PAYER, LocalKeyStore


def test_retired_key_leaves_the_pool_and_stays_sealed(tmp_path):
    store = LocalKeyStore(tmp_path)
    pool = store.evm_deployer_keys("ethereum", 3)
    store.drain_events()
    address = store.retire(EVM_DEPLOYER, "ethereum", 1)
    assert address == Account.from_key(pool[1]).address
    fresh = LocalKeyStore(tmp_path)
    now = fresh.evm_deployer_keys("ethereum", 3)
    assert now[:2] == [pool[0], pool[2]] and now[2] not in pool  # index 3 joins the pool
    assert pool[1] not in now
    record = json.loads((tmp_path / "keys.json").read_text())["records"]["evm_deployer/ethereum:1"]
    assert record["retired_at"].endswith("Z") and record["ct"]  # kept sealed
    [event] = store.drain_events()
    assert event.action == Action.KEY_RETIRED and event.subject == f"key:ethereum/{address}"
    assert [e.action for e in fresh.drain_events()] == [Action.KEY_CREATED]
    assert store.retire(EVM_DEPLOYER, "ethereum", 1) == address and store.drain_events() == []  # idempotent


def test_retired_solana_payer_is_replaced(tmp_path):
    store = LocalKeyStore(tmp_path)
    first = store.solana_payer_key("solana")
    store.retire(SOLANA_PAYER, "solana", 0)
    assert LocalKeyStore(tmp_path).solana_payer_key("solana") != first
    with pytest.raises(PermanentError) as info:
        store.import_key(SOLANA_PAYER, "solana", 0, first)
    assert info.value.code is ErrorCode.KEY_RETIRED


def test_import_rules(tmp_path):
    store = LocalKeyStore(tmp_path)
    key = Account.create().key
    assert store.import_key(EVM_DEPLOYER, "base", 2, key) == Account.from_key(key).address
    assert store.import_key(EVM_DEPLOYER, "base", 2, key) == Account.from_key(key).address  # same key: no-op
    with pytest.raises(PermanentError) as info:
        store.import_key(EVM_DEPLOYER, "base", 2, Account.create().key)
    assert info.value.code is ErrorCode.KEY_EXISTS
    with pytest.raises(PermanentError, match="already evm_deployer/base:2"):
        store.import_key(EVM_DEPLOYER, "base", 5, key)
    events = store.drain_events()
    assert [e.action for e in events] == [Action.KEY_IMPORTED]
    assert events[0].subject == f"key:base/{Account.from_key(key).address}"
    assert key.hex() not in json.dumps([e.details for e in events])


def test_retiring_a_key_that_does_not_exist(tmp_path):
    with pytest.raises(PermanentError) as info:
        LocalKeyStore(tmp_path).retire(EVM_DEPLOYER, "ethereum", 4)
    assert info.value.code is ErrorCode.MISSING_KEY


# -- the commands -------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    from tokenforge.store.db import make_engine
    from tokenforge.store.migrate import upgrade_to_head

    monkeypatch.setenv("TOKENFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TOKENFORGE_CHAINS", json.dumps({"ethereum": {"network": "embedded", "deployer_keys": 2}}))
    for name in (
        "TOKENFORGE_MASTER_KEY",
        "TOKENFORGE_MASTER_KEYFILE",
        "TOKENFORGE_KEY_BACKEND",
        "TOKENFORGE_DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)

    async def migrate() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'tokenforge.db'}")
        try:
            await upgrade_to_head(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return tmp_path


def _audit(data_dir) -> list[tuple[str, str, str]]:
    from sqlalchemy import select

    from tokenforge.store.db import make_engine, make_sessionmaker
    from tokenforge.store.models import AuditRow

    async def read():
        engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'tokenforge.db'}")
        try:
            async with make_sessionmaker(engine)() as s:
                rows = (await s.execute(select(AuditRow).order_by(AuditRow.seq))).scalars().all()
                return [(r.actor, r.action, r.subject) for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def _run(*args: str, stdin: str | None = None):
    from tokenforge.cli.main import app

    return CliRunner().invoke(app, ["keys", *args], input=stdin)


def test_commands_import_retire_rotate_and_audit(cli_env):
    imported = Account.create()
    done = _run("import", "--chain", "ethereum", "--index", "1", stdin=imported.key.hex() + "\n")
    assert done.exit_code == 0, done.output
    assert imported.address in done.output

    solana = Keypair()
    done = _run("import", "--chain", "solana", stdin=json.dumps(list(bytes(solana))) + "\n")
    assert done.exit_code == 0, done.output
    assert str(solana.pubkey()) in done.output

    assert _run("retire", "--chain", "ethereum", "--index", "0", "--yes").exit_code == 2  # owns the factory
    done = _run("retire", "--chain", "ethereum", "--index", "1", "--yes")
    assert done.exit_code == 0, done.output
    assert f"retired ethereum key 1: {imported.address}" in done.output

    store = LocalKeyStore(cli_env, create_missing=False)
    pool = [Account.from_key(k).address for k in store.evm_deployer_keys("ethereum", 2)]
    assert imported.address not in pool
    done = _run("rotate-master")
    assert done.exit_code == 0, done.output
    assert "re-wrapped 4 records" in done.output
    rotated = LocalKeyStore(cli_env, create_missing=False)
    assert [Account.from_key(k).address for k in rotated.evm_deployer_keys("ethereum", 2)] == pool
    with pytest.raises(PermanentError):
        store.evm_deployer_keys("base", 1)  # the old master no longer opens the store

    entries = _audit(cli_env)
    actions = [a for _, a, _ in entries]
    assert actions[:2] == [Action.KEY_IMPORTED, Action.KEY_IMPORTED]
    assert Action.KEY_RETIRED in actions and actions[-1] == Action.MASTER_KEY_ROTATED
    assert (Action.KEY_IMPORTED.value, f"key:solana/{solana.pubkey()}") in [(a, s) for _, a, s in entries]
    assert all(actor.startswith("cli:") for actor, _, _ in entries)
    assert imported.key.hex() not in json.dumps(entries)


def test_bad_input_is_refused_naming_the_problem(cli_env):
    bad = _run("import", "--chain", "ethereum", stdin="not hex\n")
    assert bad.exit_code == 2 and "private key" in bad.output
    unknown = _run("import", "--chain", "nochain", stdin="00\n")
    assert unknown.exit_code == 2 and "nochain" in unknown.output
    missing = _run("retire", "--chain", "ethereum", "--index", "9", "--yes")
    assert missing.exit_code == 2 and "evm_deployer/ethereum:9" in missing.output
