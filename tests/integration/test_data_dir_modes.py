"""The data directory and everything TokenForge writes in it are private to the service
user: on a fresh directory (a real ``tokenforge serve`` process that launched a token) and
on one left with loose modes (tightened at start, with a warning)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.support.bodies import SOL_CREATOR, launch_body
from tests.support.server import follow_until_final, operator_headers, serve, stop
from tokenforge.config import Settings
from tokenforge.data_dir import make_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _open_to_others(data_dir: Path) -> dict[str, str]:
    """Every path under ``data_dir`` (itself included) with group or other permission bits."""
    paths = [data_dir, *data_dir.rglob("*")]
    return {str(p.relative_to(data_dir)): oct(_mode(p)) for p in paths if not p.is_symlink() and _mode(p) & 0o077}


def _launch_one(data_dir: Path, *, launch: bool = True) -> str:
    """Start a server on ``data_dir``, launch one token to the end (if ``launch``), stop;
    returns its stderr."""
    proc, base = serve(data_dir, "solana")
    try:
        if launch:
            accepted = httpx.post(
                f"{base}/v1/tokens",
                json=launch_body(chain="solana", creator=SOL_CREATOR),
                headers=operator_headers(base),
                timeout=30,
            )
            assert accepted.status_code == 202, accepted.text
            job, _ = follow_until_final(base, accepted.json()["job"]["id"])
            assert job["status"] == "confirmed", job
    finally:
        stop(proc)
    return proc.stderr.read().decode()


@pytest.mark.slow
def test_a_fresh_data_dir_and_every_file_written_in_it_are_private(tmp_path):
    data_dir = tmp_path / "data"
    stderr = _launch_one(data_dir)
    written = {str(p.relative_to(data_dir)) for p in data_dir.rglob("*")}
    assert {"tokenforge.db", "keys.json"} <= written, written  # the database and the sealed keys
    assert any(p.startswith("chains/") for p in written), written  # embedded chain state
    assert _mode(data_dir) == 0o700
    assert _open_to_others(data_dir) == {}
    for name in ("tokenforge.db", "tokenforge.db-wal", "tokenforge.db-shm", "keys.json"):
        if (data_dir / name).exists():
            assert _mode(data_dir / name) == 0o600, name
    assert "open to other users" not in stderr  # nothing needed tightening


@pytest.mark.slow
def test_a_data_dir_left_with_loose_modes_is_made_private_at_start_with_a_warning(tmp_path):
    data_dir = tmp_path / "data"
    _launch_one(data_dir)
    data_dir.chmod(0o755)
    for path in data_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    loose = _open_to_others(data_dir)
    assert "tokenforge.db" in loose
    stderr = _launch_one(data_dir, launch=False)
    assert _open_to_others(data_dir) == {}
    assert _mode(data_dir / "tokenforge.db") == 0o600 and _mode(data_dir) == 0o700
    assert "open to other users" in stderr and f"made {len(loose)} paths private" in stderr


def test_make_private_creates_the_database_file_private_and_leaves_symlinks_alone(tmp_path):
    outside = tmp_path / "shared.txt"
    outside.write_text("not TokenForge's")
    outside.chmod(0o644)
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.symlink(outside, data_dir / "link")
    old = os.umask(0o022)
    try:
        tightened = make_private(Settings(data_dir=data_dir))
    finally:
        os.umask(old)
    assert tightened == [data_dir]
    assert _mode(data_dir) == 0o700 and _mode(data_dir / "tokenforge.db") == 0o600
    assert _mode(outside) == 0o644  # a link's target is not TokenForge's to change


def test_a_sqlite_database_outside_the_data_dir_is_private_too(tmp_path):
    database = tmp_path / "elsewhere" / "forge.db"
    database.parent.mkdir()
    database.write_bytes(b"")
    database.chmod(0o644)
    make_private(Settings(data_dir=tmp_path / "data", database_url=f"sqlite+aiosqlite:///{database}"))
    assert _mode(database) == 0o600 and _mode(tmp_path / "data") == 0o700
