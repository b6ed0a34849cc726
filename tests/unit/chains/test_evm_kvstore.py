"""The SQLite key-value store under the embedded chain: durable, atomic per transaction."""

from __future__ import annotations

import pytest

from tokenforge.chains.evm.kvstore import SqliteKV


def test_values_survive_reopening(tmp_path):
    db = SqliteKV(tmp_path / "chain.sqlite")
    with db.transaction():
        db[b"k"] = b"v"
    db.close()
    again = SqliteKV(tmp_path / "chain.sqlite")
    assert again[b"k"] == b"v" and b"k" in again and b"x" not in again
    with pytest.raises(KeyError):
        again[b"x"]
    again.close()


def _write_then_crash(db: SqliteKV) -> None:
    with db.transaction():
        db[b"keep"] = b"2"
        with db.transaction():  # nested: the outermost decides
            db[b"new"] = b"x"
        raise RuntimeError("crash in the middle of a block")


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    db = SqliteKV(tmp_path / "chain.sqlite")
    db[b"keep"] = b"1"
    with pytest.raises(RuntimeError, match="crash in the middle of a block"):
        _write_then_crash(db)
    assert db[b"keep"] == b"1" and b"new" not in db
    del db[b"keep"]
    assert b"keep" not in db
    with pytest.raises(KeyError):
        del db[b"keep"]
    db.close()


def test_a_rolled_back_write_is_not_served_from_the_read_cache(tmp_path):
    from tokenforge.chains.evm.kvstore import SqliteKV

    kv = SqliteKV(tmp_path / "kv.sqlite3")
    kv[b"k"] = b"committed"
    try:
        with kv.transaction():
            kv[b"k"] = b"rolled back"
            kv[b"new"] = b"rolled back"
            assert kv[b"k"] == b"rolled back"
            raise RuntimeError("block failed")
    except RuntimeError:
        pass
    assert kv[b"k"] == b"committed"
    assert not kv._exists(b"new")
    kv.close()


def test_a_second_process_cannot_open_a_state_file_in_use(tmp_path):
    import subprocess
    import sys

    from tokenforge.chains.evm.kvstore import SqliteKV

    kv = SqliteKV(tmp_path / "chain.sqlite")
    probe = (
        "import sys; from pathlib import Path\n"
        "from tokenforge.chains.evm.kvstore import SqliteKV\n"
        "from tokenforge.errors import TransientError\n"
        "try:\n    SqliteKV(Path(sys.argv[1]))\nexcept TransientError as e:\n    print(e.code)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "chain.sqlite")], capture_output=True, text=True)
    assert out.stdout.strip() == "chain_in_use", out.stderr
    kv.close()
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "chain.sqlite")], capture_output=True, text=True)
    assert out.stdout.strip() == "" and out.returncode == 0, out.stderr
