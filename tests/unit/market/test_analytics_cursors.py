"""Cursors of the market reads: a cursor this API did not make is a 400 naming the cursor,
never a server error (non-ASCII digits, values beyond a 64-bit column)."""

from __future__ import annotations

import pytest

from tokenforge.errors import ValidationFailed
from tokenforge.market.analytics import encode_cursor, list_cursor, parse_list_cursor, trade_cursor


def test_trade_cursor_round_trips() -> None:
    assert trade_cursor(encode_cursor(12, 3, "0xab")) == (12, 3, "0xab")


@pytest.mark.parametrize(
    "parts",
    [("²", 1, "0xab"), (1, "٣", "0xab"), (2**63, 1, "0xab"), (10**30, 1, "0xab"), (1, 2, "")],
)
def test_trade_cursor_refuses_what_the_api_never_made(parts: tuple[object, ...]) -> None:
    with pytest.raises(ValidationFailed) as err:
        trade_cursor(encode_cursor(*parts))
    assert err.value.field == "query.cursor"


def test_list_cursor_round_trips() -> None:
    assert parse_list_cursor(list_cursor("progress", 7, 5000), "progress") == (5000, 7)
    assert parse_list_cursor(list_cursor("market_cap", 7, 1.5), "market_cap") == (1.5, 7)


@pytest.mark.parametrize(
    "parts",
    [("progress", "²", 1), ("progress", "1.5", 1), ("progress", 2**70, 1), ("market_cap", "1.0", 2**63)],
)
def test_list_cursor_refuses_what_the_api_never_made(parts: tuple[object, ...]) -> None:
    with pytest.raises(ValidationFailed):
        parse_list_cursor(encode_cursor(*parts), str(parts[0]))
