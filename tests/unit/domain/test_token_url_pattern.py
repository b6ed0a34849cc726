"""The URL rule the API's schema states (``URL_PATTERN``) is never stricter than the server.

A client generated from /openapi.json validates URL fields with the pattern; the server
refuses what the pattern refuses (pydantic applies it, with Rust's regex engine) and a few
things it cannot say (a port above 65535, invisible characters). So for every string:
the domain accepts it ⇒ pydantic accepts it ⇒ a JSON Schema validator accepts it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Annotated

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from tokenforge.domain.tokens import URL_PATTERN, validate_launch
from tokenforge.errors import ValidationFailed

PYDANTIC = TypeAdapter(Annotated[str, Field(pattern=URL_PATTERN)])
SCHEMA = jsonschema_rs.validator_for({"type": "string", "pattern": URL_PATTERN})  # what schemathesis uses
URLISH = st.text(alphabet=st.sampled_from("hHtTpPsS:/?#@[]%.-_~1209aAfFxz é\t\n\x00\x7f\x85\u200b"), max_size=30)


def domain_accepts(url: str) -> bool:
    try:
        validate_launch(
            chain="ethereum",
            name="Forge",
            symbol="F",
            decimals=None,
            supply=1,
            creator="0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            website=url,
        )
    except ValidationFailed:
        return False
    return True


def pydantic_accepts(url: str) -> bool:
    try:
        PYDANTIC.validate_python(url)
    except ValidationError:
        return False
    return True


@given(st.one_of(URLISH, URLISH.map(lambda s: "https://" + s), URLISH.map(lambda s: "http://host" + s)))
@example("http://a@b@c/")
@example("http://[::1]:8080/x")
@example("http://[::1]x")
@example("https://example.org:99999/")
@example("http://h:1:2")
@example("http://a\n")
def test_the_server_never_accepts_what_the_schema_refuses(url):
    if domain_accepts(url):
        assert pydantic_accepts(url), url
    if pydantic_accepts(url):
        assert SCHEMA.is_valid(url), url
        assert re.search(URL_PATTERN, url), url  # Python's engine, which generates test data


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org",
        "HTTPS://EXAMPLE.ORG/a/b?c=d#e",
        "http://127.0.0.1:8080/x",
        "http://[::1]/",
        "https://medium.example/@forge",
        "https://host.example/?next=a@b#c@d",
        "https://例え.jp/パス",
        "",
    ],
)
def test_ordinary_urls_match_the_pattern_and_are_accepted(url):
    assert re.search(URL_PATTERN, url) and pydantic_accepts(url) and domain_accepts(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org",
        "https://",
        "https:///path",
        "https://host:abc/",
        "https://ho st/",
        "javascript:alert(1)",
        "x.com/forge",
        "https://host/\x85",
        "https://user:pw@host.example/",
        "https://user@host.example/",
        "https://trusted.example@evil.example/",
        "http://:@host/",
        "HTTP://u:p@[::1]:80/",
    ],
)
def test_urls_the_pattern_refuses_are_refused_by_the_server(url):
    assert not SCHEMA.is_valid(url) and not re.search(URL_PATTERN, url)
    assert not pydantic_accepts(url) and not domain_accepts(url)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pattern_is_a_valid_ecma_262_unicode_regex_with_the_same_answers():
    cases = [
        "https://example.org/a?b#c",
        "HTTP://x:80",
        "ftp://x",
        "http://a b",
        "",
        "http://[::1]:8080/x",
        "http://a@b@c/",
        "http://h:1:2",
        "https://host/\x85",
        "https://user:pw@host.example/",
        "https://host.example/@forge",
    ]
    script = (
        "const [p, cases] = JSON.parse(process.argv[1]); const r = new RegExp(p, 'u');"
        "console.log(JSON.stringify(cases.map((s) => r.test(s))));"
    )
    out = subprocess.run(
        ["node", "-e", script, json.dumps([URL_PATTERN, cases])], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(out) == [bool(re.search(URL_PATTERN, c)) for c in cases]


@pytest.mark.parametrize("field", ["image_url", "website", "twitter", "telegram", "metadata_uri"])
def test_credentials_in_any_url_field_are_refused_naming_the_field(field):
    with pytest.raises(ValidationFailed) as caught:
        validate_launch(
            chain="solana",
            name="Forge",
            symbol="F",
            decimals=None,
            supply=1,
            creator="9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
            **{field: "https://forge:hunter2@example.org/x"},
        )
    assert caught.value.field == field and "user name or password" in caught.value.detail
