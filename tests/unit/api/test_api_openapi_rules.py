"""/openapi.json states the rules the server enforces, so a generated client knows them."""

from __future__ import annotations

import re

import httpx
import pytest
from tests.support.bodies import fakes, launch_body
from tests.support.stack import running_stack

from tokenforge.api.app import create_app
from tokenforge.domain.tokens import URL_FIELDS, URL_PATTERN

DOCUMENT = create_app().openapi()
CREATE = DOCUMENT["components"]["schemas"]["CreateTokenRequest"]["properties"]


def string_branch(schema: dict) -> dict:
    """The string member of an ``X | None`` schema."""
    return next(s for s in schema.get("anyOf", [schema]) if s.get("type") == "string")


def parameter(path: str, method: str, name: str) -> dict:
    return next(p for p in DOCUMENT["paths"][path][method]["parameters"] if p["name"].lower() == name)


@pytest.mark.parametrize("field", URL_FIELDS)
def test_url_fields_state_their_pattern_length_and_rules(field):
    branch = string_branch(CREATE[field])
    assert branch["pattern"] == URL_PATTERN and branch["maxLength"] == 200
    assert "http or https" in CREATE[field]["description"]


def test_list_parameters_state_their_bounds():
    cursor = parameter("/v1/tokens", "get", "cursor")
    branch = string_branch(cursor["schema"])
    assert branch["maxLength"] == 64 and re.fullmatch(branch["pattern"], "czEyMw")
    assert not re.search(branch["pattern"], "czE=!") and "next_cursor" in cursor["description"]
    limit = parameter("/v1/tokens", "get", "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"], limit["schema"]["default"]) == (1, 200, 50)
    assert limit["description"]


def test_the_idempotency_key_header_states_its_length():
    key = string_branch(parameter("/v1/tokens", "post", "idempotency-key")["schema"])
    assert (key["minLength"], key["maxLength"]) == (1, 255)


def test_name_and_description_state_which_characters_are_refused():
    assert "zero-width joiners between emoji" in CREATE["name"]["description"]
    assert "invisible" in CREATE["description"]["description"]


@pytest.mark.parametrize("status", ["408", "413", "422", "503"])
def test_limit_and_outage_answers_are_documented(status):
    assert status in DOCUMENT["paths"]["/v1/tokens"]["post"]["responses"]


async def test_a_url_refused_by_the_pattern_is_named_in_plain_words(settings):
    async with running_stack(settings, fakes(), start=False) as (container, plain):
        transport = httpx.ASGITransport(app=create_app(container=container))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tokenforge.test", headers=plain.headers
        ) as client:
            resp = await client.post("/v1/tokens", json=launch_body(website="ftp://example.org"))
            assert resp.status_code == 422
            assert resp.json()["errors"] == [
                {
                    "field": "website",
                    "message": "must be an http(s) URL with a host, "
                    "without user:pass@, whitespace or control characters",
                }
            ]
            resp = await client.get("/v1/tokens", params={"cursor": "!!"})
            assert resp.json()["errors"] == [{"field": "query.cursor", "message": "is not a cursor this API returned"}]
