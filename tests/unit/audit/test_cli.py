"""``tokenforge audit`` arguments refused before any database is opened, and a file that
cannot be read."""

from __future__ import annotations

from typer.testing import CliRunner

from tokenforge.cli.main import app


def test_an_expected_head_that_is_not_a_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENFORGE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["audit", "verify", "--expect-head", "not-a-hash"])
    assert result.exit_code == 2 and "64 hex digits" in result.output
    assert list(tmp_path.iterdir()) == []  # no database was opened


def test_an_export_that_cannot_be_read_is_named(tmp_path):
    result = CliRunner().invoke(app, ["audit", "verify", "--file", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 1 and "cannot read" in result.output and "absent.jsonl" in result.output


def test_a_tampered_export_names_the_entry(tmp_path):
    from tests.unit.audit.test_chain import chain, lines

    raw = lines(chain(3))
    path = tmp_path / "audit.jsonl"
    path.write_bytes(raw[0] + raw[2])
    result = CliRunner().invoke(app, ["audit", "verify", "--file", str(path)])
    assert result.exit_code == 1
    assert "broken at entry 2: entry 2 is missing (the next entry is 3)" in result.output
    path.write_bytes(b"".join(raw))
    result = CliRunner().invoke(app, ["audit", "verify", "--file", str(path)])
    assert result.exit_code == 0 and f"intact: 3 entries, head {chain(3)[-1].hash}" in result.output
