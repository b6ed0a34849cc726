"""The JSON depth gauge: the depth a parser would recurse to, from raw bytes fed in chunks."""

from __future__ import annotations

import json
import sys

from hypothesis import given
from hypothesis import strategies as st

from tokenforge.api.limits import RECURSION_LIMIT, JsonDepthGauge, cap_recursion_limit

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from('[]{}"\\ax\n')),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\k'), inner, max_size=3),
    max_leaves=40,
)


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def fits(raw: bytes, max_depth: int, cuts: list[int] = ()) -> bool:
    gauge = JsonDepthGauge(max_depth)
    return all(gauge.feed(chunk) for chunk in split(raw, list(cuts)))


@given(JSON_VALUES, st.lists(st.integers(min_value=0), max_size=6), st.integers(min_value=0, max_value=6))
def test_a_json_text_fits_exactly_when_its_nesting_does(value, cuts, max_depth):
    raw = json.dumps(value).encode()
    assert fits(raw, max_depth, cuts) == (depth_of(value) <= max_depth)


def test_brackets_and_escaped_quotes_inside_strings_do_not_count():
    raw = json.dumps({"name": "[[[[{{{{" * 10 + '\\"[[[' + '"]]]]', "x": ["\\", "[["]}).encode()
    assert fits(raw, 2)
    assert not fits(raw, 1)


def test_an_escape_split_across_chunks_is_still_an_escape():
    raw = b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'
    at = raw.index(b"\\")
    assert fits(raw, 1, [at + 1])  # the chunk ends right after the backslash


def test_closing_brackets_cannot_pay_for_openers():
    assert not fits(b"]" * 100 + b"[" * 40, 32)


def test_unterminated_nesting_counts_as_it_arrives():
    assert not fits(b"[" * 33, 32)
    assert fits(b"[" * 32, 32)


def test_the_recursion_limit_is_capped_after_a_library_raises_it():
    before = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(100_000)  # what py_ecc sets at import
        assert cap_recursion_limit() == RECURSION_LIMIT
        sys.setrecursionlimit(1_000)
        assert cap_recursion_limit() == 1_000  # never raised
    finally:
        sys.setrecursionlimit(before)
