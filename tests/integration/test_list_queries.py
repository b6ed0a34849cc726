"""No N+1: a list page costs the same few SQL statements whatever its size, on every database."""

from __future__ import annotations

import uuid

import pytest

from tests.support.bodies import SOL_CREATOR, fakes, launch_body
from tests.support.stack import running_stack
from tests.unit.cache.helpers import sql_statements
from tokenforge.domain.tokens import validate_launch
from tokenforge.store.db import utcnow
from tokenforge.store.group_commit import Changes, write_changes
from tokenforge.store.repositories import tokens as tokens_repo

pytestmark = pytest.mark.integration

PAGES = (
    "/v1/tokens?limit={n}",
    "/v1/tokens?limit={n}&chain=ethereum",
    "/v1/tokens?limit={n}&status=pending",
    "/v1/tokens?limit={n}&creator=" + SOL_CREATOR,
)


async def add_tokens(container, count: int) -> None:
    """``count`` tokens on two chains, written directly (the API's create path is not under test)."""
    now = utcnow()
    rows = []
    for i in range(count):
        body = launch_body(name=f"Token {i}") if i % 2 else launch_body(chain="solana", creator=SOL_CREATOR)
        rows.append(
            tokens_repo.new_token(
                validate_launch(**{"decimals": None, **body}),
                token_id=uuid.uuid4().hex,
                job_id=uuid.uuid4().hex,
                network="embedded",
                now=now,
            )
        )
    async with container.sessions() as session:
        await write_changes(session, [Changes(new_tokens=rows)])
        await session.commit()


async def statements_for(container, client, path: str) -> list[str]:
    with sql_statements(container.engine) as statements:
        resp = await client.get(path)
    assert resp.status_code == 200, resp.text
    return statements


def selects(statements: list[str]) -> int:
    return sum(s.lstrip().upper().startswith("SELECT") for s in statements)


async def test_list_pages_of_1_10_and_100_tokens_cost_the_same_statements(any_db_settings):
    any_db_settings.cache_url = "none://"  # every request reaches the database
    async with running_stack(any_db_settings, fakes(), start=False) as (container, client):
        await add_tokens(container, 220)
        await client.get("/v1/tokens?limit=1")  # connection set-up is not the page's cost
        for page in PAGES:
            counts = {}
            for n in (1, 10, 100):
                statements = await statements_for(container, client, page.format(n=n))
                assert selects(statements) == 1, statements
                counts[n] = len(statements)  # with the transaction's BEGIN where the driver sends one
            assert counts[1] == counts[10] == counts[100] <= 2, (page, counts)
        first = (await client.get("/v1/tokens?limit=100")).json()
        assert len(first["items"]) == 100 and first["next_cursor"]
        nxt = await statements_for(container, client, f"/v1/tokens?limit=100&cursor={first['next_cursor']}")
        detail = await statements_for(container, client, f"/v1/tokens/{first['items'][0]['id']}")
    assert selects(nxt) == 1 and selects(detail) == 1
    assert len(nxt) == len(detail) == counts[100]
