"""API keys through /v1/ops/api-keys: only operators manage them, the secret is shown once,
a revoked key stops working at once, and every issue and revocation is audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.support.auth import bearer, container_key
from tests.support.stack import running_stack
from tokenforge.auth.principal import Role
from tokenforge.store.models import AuditRow

WALLET = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.fixture
async def stack(settings):
    async with running_stack(settings, start=False) as (container, client):
        yield container, client


async def test_an_operator_issues_a_key_that_is_shown_once_and_works(stack):
    container, client = stack
    resp = await client.post("/v1/ops/api-keys", json={"role": "creator", "wallet": WALLET.lower(), "label": "ci"})
    assert resp.status_code == 201, resp.text
    issued = resp.json()
    assert issued["key"].startswith(f"tfk_{issued['id']}_")
    assert issued["wallet"] == WALLET  # stored in its EIP-55 form
    assert resp.headers["cache-control"] == "no-store"

    # the new key authenticates, but a creator's may not manage keys
    as_creator = bearer(issued["key"])
    refused = await client.get("/v1/ops/api-keys", headers=as_creator)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "operator" in refused.json()["detail"]

    listing = await client.get("/v1/ops/api-keys")
    assert listing.status_code == 200
    assert issued["key"] not in listing.text  # the secret is never listed
    secret = issued["key"].split("_", 2)[2]
    assert secret not in listing.text
    mine = [k for k in listing.json()["items"] if k["id"] == issued["id"]]
    assert mine and mine[0]["prefix"] == f"tfk_{issued['id']}" and mine[0]["role"] == "creator"
    assert mine[0]["last_used_at"] is not None  # the refused request above still used the key
    assert "key" not in mine[0]

    async with container.sessions() as session:
        entries = (await session.execute(select(AuditRow).order_by(AuditRow.seq))).scalars().all()
    issued_entries = [e for e in entries if e.action == "api_key.issued" and e.subject == f"api_key:{issued['id']}"]
    assert len(issued_entries) == 1
    assert issued_entries[0].actor.startswith("api_key:")  # the operator key that asked
    assert secret not in str([e.details for e in entries])


async def test_a_revoked_key_is_refused_at_once_and_shows_as_revoked(stack):
    _, client = stack
    issued = (await client.post("/v1/ops/api-keys", json={"role": "operator", "expires_in_s": 3600})).json()
    assert issued["expires_at"] is not None
    assert (await client.get("/v1/ops/api-keys", headers=bearer(issued["key"]))).status_code == 200

    assert (await client.delete(f"/v1/ops/api-keys/{issued['id']}")).status_code == 204
    after = await client.get("/v1/ops/api-keys", headers=bearer(issued["key"]))
    assert after.status_code == 401
    assert after.json()["type"] == "/problems/credential-revoked"

    active = (await client.get("/v1/ops/api-keys")).json()["items"]
    assert issued["id"] not in {k["id"] for k in active}
    everything = (await client.get("/v1/ops/api-keys", params={"include_revoked": "true"})).json()["items"]
    assert [k["revoked_at"] is not None for k in everything if k["id"] == issued["id"]] == [True]

    again = await client.delete(f"/v1/ops/api-keys/{issued['id']}")
    assert again.status_code == 404
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_anonymous_callers_get_401_and_creators_403_on_every_key_route(stack):
    container, client = stack
    creator = bearer(await container_key(container, Role.CREATOR, WALLET))
    anonymous = {"Authorization": ""}
    calls = [
        ("POST", "/v1/ops/api-keys", {"role": "operator"}),
        ("GET", "/v1/ops/api-keys", None),
        ("DELETE", "/v1/ops/api-keys/0123456789abcdef", None),
    ]
    for method, path, body in calls:
        none = await client.request(method, path, json=body, headers=anonymous)
        assert none.status_code == 401, (method, path, none.text)
        assert none.headers["www-authenticate"].lower().startswith("bearer")
        assert none.json()["type"] == "/problems/auth-required"
        refused = await client.request(method, path, json=body, headers=creator)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["type"] == "/problems/forbidden"
    # nothing was issued by the refused POSTs: only the fixture's two keys exist
    assert len((await client.get("/v1/ops/api-keys")).json()["items"]) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "creator"}, "wallet"),  # a creator key needs its wallet
        ({"role": "owner"}, "role"),
        ({"role": "operator", "wallet": "0xnot-an-address"}, "wallet"),
        ({"role": "operator", "expires_at": "2001-01-01T00:00:00Z"}, "expires"),
        ({"role": "operator", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no offset
        ({"role": "operator", "expires_in_s": 0}, "expires_in_s"),
        ({"role": "operator", "secret": "mine"}, "secret"),
    ],
)
async def test_bad_key_requests_are_refused_naming_the_field(stack, body, field):
    _, client = stack
    resp = await client.post("/v1/ops/api-keys", json=body)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
