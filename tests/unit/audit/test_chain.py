"""The chain's rules on entries in memory and on exported lines: what ``verify`` and
``verify --file`` report for an intact, an edited, a shortened and a malformed chain."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tokenforge.audit.log import (
    GENESIS,
    ChainCheck,
    ExportedEntry,
    decode_cursor,
    encode_cursor,
    entry_hash,
    parse_line,
    row_out,
    verify_export,
)
from tokenforge.errors import ValidationFailed

T0 = datetime(2026, 12, 1, 15, 0, 0, 123456, tzinfo=UTC)


def chain(n: int) -> list[ExportedEntry]:
    """``n`` correctly chained entries."""
    out, prev = [], GENESIS
    for seq in range(1, n + 1):
        at, details = T0 + timedelta(seconds=seq), {"n": seq, "nested": {"b": [1, 2], "a": None}}
        digest = entry_hash(prev, seq, at, f"api_key:{seq}", "api_key.issued", f"api_key:k{seq}", details)
        out.append(ExportedEntry(seq, at, f"api_key:{seq}", "api_key.issued", f"api_key:k{seq}", details, prev, digest))
        prev = digest
    return out


def check(entries, expect_head=None):
    c = ChainCheck(expect_head=expect_head)
    for e in entries:
        if not c.add(e):
            break
    return c.result()


def lines(entries) -> list[bytes]:
    return [orjson.dumps(row_out(e)) + b"\n" for e in entries]


def test_an_intact_chain_is_ok_and_ends_at_the_newest_hash():
    entries = chain(5)
    result = check(entries)
    assert result.ok and result.entries == 5 and result.head == entries[-1].hash
    assert result.broken_seq is None and result.reason is None


def test_an_empty_chain_is_ok_at_genesis():
    assert check([]).ok and check([]).head == GENESIS


def test_an_edited_entry_is_named_with_the_entries_before_it():
    entries = chain(5)
    entries[2] = replace(entries[2], details={"n": 3, "forged": True})
    result = check(entries)
    assert not result.ok and result.broken_seq == 3 and result.entries == 2
    assert result.reason == "the entry's content does not match its hash"
    assert result.head == entries[1].hash


@pytest.mark.parametrize("field", ["at", "actor", "action", "subject"])
def test_every_field_is_covered_by_the_hash(field):
    entries = chain(3)
    value = T0 if field == "at" else "someone else"
    entries[1] = replace(entries[1], **{field: value})
    assert check(entries).broken_seq == 2


def test_a_deleted_entry_is_missing():
    entries = chain(5)
    del entries[2]
    result = check(entries)
    assert result.broken_seq == 3 and result.reason == "entry 3 is missing (the next entry is 4)"


def test_a_forged_entry_chained_in_its_place_breaks_the_next_one():
    entries = chain(5)
    e = entries[2]
    digest = entry_hash(e.prev_hash, 3, e.at, "forger", e.action, e.subject, e.details)
    entries[2] = replace(e, actor="forger", hash=digest)
    result = check(entries)
    assert result.broken_seq == 4 and "prev_hash does not match" in (result.reason or "")


def test_a_duplicated_seq_is_named():
    entries = chain(3)
    result = check([entries[0], entries[1], entries[1], entries[2]])
    assert result.broken_seq == 3 and "duplicated" in (result.reason or "")


def test_the_expected_head_is_found_in_a_chain_that_has_grown_since():
    entries = chain(6)
    result = check(entries, expect_head=entries[3].hash)
    assert result.ok and result.expected_head_seq == 4


def test_a_chain_shorter_than_the_expected_head_fails_at_the_first_missing_entry():
    entries = chain(6)
    result = check(entries[:4], expect_head=entries[5].hash)
    assert not result.ok and result.broken_seq == 5 and result.entries == 4
    assert entries[5].hash in (result.reason or "") and "removed" in (result.reason or "")


def test_an_export_round_trips_through_json_lines():
    entries = chain(4)
    assert [parse_line(line) for line in lines(entries)] == entries
    result = verify_export([*lines(entries), b"\n"])
    assert result.ok and result.entries == 4 and result.head == entries[-1].hash


def test_an_edited_export_line_is_named():
    raw = lines(chain(4))
    raw[1] = raw[1].replace(b'"n":2', b'"n":20')
    result = verify_export(raw)
    assert result.broken_seq == 2 and "does not match its hash" in (result.reason or "")


def test_an_export_that_does_not_start_at_the_first_entry_fails():
    result = verify_export(lines(chain(4))[2:])
    assert result.broken_seq == 1 and result.reason == "entry 1 is missing (the next entry is 3)"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"seq": true}', "seq is missing or not a JSON integer"),
        (b'{"seq": 2, "at": 5}', "at is missing or not a JSON string"),
        (orjson.dumps({**row_out(chain(2)[1]), "at": "yesterday"}), "at is not an ISO 8601 time"),
        (orjson.dumps({**row_out(chain(2)[1]), "details": []}), "details is missing or not a JSON object"),
    ],
)
def test_a_line_that_is_not_an_entry_breaks_the_chain_there(line, why):
    raw = lines(chain(2))
    result = verify_export([raw[0], line, raw[1]])
    assert result.broken_seq == 2 and result.entries == 1
    assert result.reason == f"line 2 is not an audit entry ({why})"


def test_a_time_without_offset_is_refused():
    entry = orjson.loads(lines(chain(1))[0])
    entry["at"] = "2026-12-01T15:00:01.123456"
    with pytest.raises(ValueError, match="UTC offset"):
        parse_line(orjson.dumps(entry))


def test_cursors_round_trip_and_others_are_refused_naming_the_field():
    assert decode_cursor(encode_cursor(812)) == 812
    for bad in ("", "abc", encode_cursor(1)[:-2], "YXVkaXQ6LTE"):  # "audit:-1"
        with pytest.raises(ValidationFailed) as info:
            decode_cursor(bad)
        assert info.value.field == "query.cursor"
