"""Who may launch: every write needs a live credential of the right role, the creator is
the credential's wallet, and what was done is in the audit log. Reads stay public."""

from __future__ import annotations

from datetime import timedelta

from solders.keypair import Keypair
from sqlalchemy import select, update

from tests.support.auth import bearer, issue_key
from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack
from tokenforge.audit.log import verify
from tokenforge.auth import api_keys
from tokenforge.auth.principal import Role
from tokenforge.store.db import utcnow
from tokenforge.store.models import ApiKeyRow, AuditRow, TokenRow

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"
OTHER = "0x8617E340B3D01FA5F11F306F4090FD50E238070D"


def launch(chain: str = "ethereum", **extra) -> dict:
    return {"chain": chain, "name": "Guarded", "symbol": "GRD", "supply": 1000, **extra}


def problem(resp, status: int, kind: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"] == f"/problems/{kind}", body
    return body


async def test_writes_need_a_live_credential_and_reads_stay_public(settings):
    deployers = {"ethereum": FakeDeployer(), "solana": FakeDeployer()}
    async with running_stack(settings, deployers, start=False, authorized=False) as (container, client):
        anonymous = await client.post("/v1/tokens", json=launch(creator=WALLET))
        body = problem(anonymous, 401, "auth-required")
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="tokenforge"'
        assert "api key" in body["detail"].lower() or "sign in" in body["detail"].lower()

        malformed = await client.post("/v1/tokens", json=launch(), headers=bearer("not-a-key"))
        problem(malformed, 401, "credential-invalid")
        assert 'error="invalid_token"' in malformed.headers["www-authenticate"]
        unknown = "tfk_0123456789abcdef_" + "A" * 43
        problem(await client.post("/v1/tokens", json=launch(), headers=bearer(unknown)), 401, "credential-invalid")

        issued = await api_keys.create(container.sessions, role=Role.CREATOR, wallet=WALLET, actor="test")
        async with container.sessions() as s:  # the key's expiry passes
            await s.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == issued.row.id).values(expires_at=utcnow() - timedelta(1))
            )
            await s.commit()
        expired = await client.post("/v1/tokens", json=launch(), headers=bearer(issued.token))
        problem(expired, 401, "credential-expired")

        revoked = await api_keys.create(container.sessions, role=Role.CREATOR, wallet=WALLET, actor="test")
        assert (await client.post("/v1/tokens", json=launch(), headers=bearer(revoked.token))).status_code == 202
        await api_keys.revoke(container.sessions, revoked.row.id, actor="test")
        problem(
            await client.post("/v1/tokens", json=launch(), headers=bearer(revoked.token)), 401, "credential-revoked"
        )

        assert (await client.get("/v1/tokens")).status_code == 200
        assert (await client.get("/v1/chains")).status_code == 200


async def test_the_creator_is_the_credentials_wallet(settings):
    deployers = {"ethereum": FakeDeployer(), "solana": FakeDeployer()}
    async with running_stack(settings, deployers, start=False, authorized=False) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, wallet=WALLET.lower()))
        implied = await client.post("/v1/tokens", json=launch(), headers=creator)
        assert implied.status_code == 202, implied.text
        assert implied.json()["token"]["creator"] == WALLET, "the key's wallet, EIP-55"
        same = await client.post("/v1/tokens", json=launch(creator=WALLET.lower()), headers=creator)
        assert same.status_code == 202 and same.json()["token"]["creator"] == WALLET

        other = problem(
            await client.post("/v1/tokens", json=launch(creator=OTHER), headers=creator), 403, "creator-mismatch"
        )
        assert WALLET in other["detail"]
        wrong_family = await client.post("/v1/tokens", json=launch("solana"), headers=creator)
        assert "solana wallet" in problem(wrong_family, 403, "creator-mismatch")["detail"]

        operator = bearer(await issue_key(container.sessions, Role.OPERATOR))
        unnamed = problem(await client.post("/v1/tokens", json=launch(), headers=operator), 422, "invalid-parameter")
        assert unnamed["errors"][0]["field"] == "creator"
        for_someone = await client.post("/v1/tokens", json=launch(creator=OTHER), headers=operator)
        assert for_someone.status_code == 202 and for_someone.json()["token"]["creator"] == OTHER

        creator_key = await client.get("/v1/ops/dead-letters", headers=creator)
        assert "operator" in problem(creator_key, 403, "forbidden")["detail"]
        assert (await client.get("/v1/ops/dead-letters", headers=operator)).status_code == 200


async def test_idempotency_keys_belong_to_their_caller(settings):
    async with running_stack(settings, {"solana": FakeDeployer()}, start=False, authorized=False) as (
        container,
        client,
    ):
        first, second = (str(Keypair().pubkey()) for _ in range(2))
        keys = [bearer(await issue_key(container.sessions, Role.CREATOR, wallet=w)) for w in (first, second)]
        idem = {"Idempotency-Key": "same-key"}
        a = await client.post("/v1/tokens", json=launch("solana"), headers={**keys[0], **idem})
        b = await client.post("/v1/tokens", json=launch("solana", name="Other"), headers={**keys[1], **idem})
        assert a.status_code == b.status_code == 202, (a.text, b.text)
        assert a.json()["token"]["id"] != b.json()["token"]["id"], "another caller's key is not a replay"
        again = await client.post("/v1/tokens", json=launch("solana"), headers={**keys[0], **idem})
        assert again.headers["idempotent-replayed"] == "true" and again.json() == a.json()


async def test_launches_and_keys_are_in_the_audit_log_with_who_did_them(settings):
    async with running_stack(settings, {"ethereum": FakeDeployer()}, start=False, authorized=False) as (
        container,
        client,
    ):
        issued = await api_keys.create(container.sessions, role=Role.CREATOR, wallet=WALLET, actor="cli:ops@host")
        token_id = (await client.post("/v1/tokens", json=launch(), headers=bearer(issued.token))).json()["token"]["id"]
        async with container.sessions() as s:
            rows = (await s.execute(select(AuditRow).order_by(AuditRow.seq))).scalars().all()
            token = (await s.execute(select(TokenRow).where(TokenRow.id == token_id))).scalar_one()
            key_row = (await s.execute(select(ApiKeyRow).where(ApiKeyRow.id == issued.row.id))).scalar_one()
        assert (await verify(container.sessions)).ok
        actor = f"api_key:{issued.row.id}/{WALLET}"
        by_action = {r.action: r for r in rows}
        assert by_action["api_key.issued"].actor == "cli:ops@host"
        assert by_action["api_key.issued"].subject == f"api_key:{issued.row.id}"
        requested = by_action["launch.requested"]
        assert requested.actor == actor and requested.subject == f"token:{token_id}"
        assert requested.details["creator"] == WALLET and requested.details["chain"] == "ethereum"
        assert token.requested_by == actor
        assert key_row.last_used_at is not None, "last use is kept"
        assert key_row.secret_hash != issued.token and issued.token not in str([r.details for r in rows])
