"""Wallet sign-in through the API with real signatures (eth-account, solders): nonce →
signed message → session → launch as that wallet → sign out; and every refusal a user can
run into (replay, expiry, wrong domain, URI or chain, another key's signature), each
answered 401 ``signin-failed`` naming the part, and recorded in the audit log."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import to_canonical_address, to_checksum_address
from solders.keypair import Keypair
from sqlalchemy import select

from tests.support.auth import bearer
from tests.support.bodies import EVM_CREATOR, fakes, launch_body
from tests.support.eip1271_wallet import runtime_code
from tests.support.stack import running_stack
from tokenforge.audit import Action
from tokenforge.auth.messages import SignInMessage, format_message
from tokenforge.domain.chains import Family
from tokenforge.store.models import AuditRow

pytestmark = pytest.mark.integration

PUBLIC_URL = "http://tokenforge.test"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def signin_settings(settings):
    settings.public_url = PUBLIC_URL
    settings.chains = {"ethereum": "embedded", "solana": "embedded"}
    return settings


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_for(nonce: str, address: str, family: Family = Family.EVM, **over) -> str:
    now = datetime.now(UTC)
    fields = dict(
        family=family,
        domain="tokenforge.test",
        address=address,
        uri=f"{PUBLIC_URL}/launch",
        chain_id="1337" if family is Family.EVM else "localnet",
        nonce=nonce,
        issued_at=_iso(now),
        expiration_time=_iso(now + timedelta(minutes=5)),
        statement="Sign in to TokenForge",
    )
    fields.update(over)
    return format_message(SignInMessage(**fields))


def sign_evm(account, text: str) -> str:
    return "0x" + bytes(account.sign_message(encode_defunct(text=text)).signature).hex()


def sign_solana(keypair: Keypair, text: str) -> str:
    return str(keypair.sign_message(text.encode("utf-8")))


async def new_nonce(client) -> str:
    resp = await client.post("/v1/auth/nonce")
    assert resp.status_code == 200, resp.text
    return resp.json()["nonce"]


async def siwe(client, account, **over):
    nonce = over.pop("nonce", None) or await new_nonce(client)
    text = message_for(nonce, account.address, **over)
    return await client.post("/v1/auth/siwe", json={"message": text, "signature": sign_evm(account, text)})


async def audit_rows(container) -> list[AuditRow]:
    async with container.sessions() as db:
        return list((await db.execute(select(AuditRow).order_by(AuditRow.seq))).scalars())


def refused(resp, field: str, reason: str) -> dict:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_JSON
    problem = resp.json()
    assert problem["type"] == "/problems/signin-failed"
    assert f"({reason})" in problem["detail"], problem
    assert [e["field"] for e in problem["errors"]] == [field], problem
    return problem


@pytest.fixture
async def api(signin_settings):
    async with running_stack(signin_settings, fakes(), start=False, authorized=False) as stack:
        yield stack


async def test_nonce_says_what_to_sign_and_builds_the_message(api):
    _, client = api
    account = Account.create()
    resp = await client.post("/v1/auth/nonce", json={"address": account.address.lower(), "chain": "ethereum"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["domain"] == "tokenforge.test" and body["uri"] == f"{PUBLIC_URL}/"
    assert body["chain_ids"] == {"ethereum": 1337, "solana": "localnet"}
    assert len(body["nonce"]) >= 8 and body["nonce"].isalnum()
    assert f"Nonce: {body['nonce']}" in body["message"] and account.address in body["message"]
    signed = await client.post(
        "/v1/auth/siwe", json={"message": body["message"], "signature": sign_evm(account, body["message"])}
    )
    assert signed.status_code == 200, signed.text
    bad = await client.post("/v1/auth/nonce", json={"address": account.address, "chain": "solana"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "address"


async def test_evm_wallet_signs_in_launches_as_itself_and_signs_out(api):
    container, client = api
    account = Account.create()
    text = message_for(await new_nonce(client), account.address)
    signature = sign_evm(account, text)
    resp = await client.post("/v1/auth/siwe", json={"message": text, "signature": signature})
    assert resp.status_code == 200, resp.text
    signed_in = resp.json()
    session = signed_in["session"]
    assert (session["wallet"], session["family"], session["role"]) == (account.address, "evm", "creator")
    auth = bearer(signed_in["token"])

    me = await client.get("/v1/auth/session", headers=auth)
    assert me.status_code == 200 and me.json()["wallet"] == account.address and me.json()["kind"] == "session"

    launched = await client.post("/v1/tokens", json=launch_body(creator=None), headers=auth)
    assert launched.status_code == 202, launched.text
    assert launched.json()["token"]["creator"] == account.address
    lower = await client.post("/v1/tokens", json=launch_body(creator=account.address.lower()), headers=auth)
    assert lower.status_code == 202, lower.text

    other = await client.post("/v1/tokens", json=launch_body(creator=EVM_CREATOR), headers=auth)
    assert other.status_code == 403 and other.json()["type"] == "/problems/creator-mismatch"
    solana = await client.post("/v1/tokens", json=launch_body(chain="solana", creator=None), headers=auth)
    assert solana.status_code == 403 and solana.json()["type"] == "/problems/creator-mismatch"

    # the same signed message again: refused, its nonce is spent
    replay = await client.post("/v1/auth/siwe", json={"message": text, "signature": signature})
    refused(replay, "message.Nonce", "nonce_unknown")

    out = await client.delete("/v1/auth/session", headers=auth)
    assert out.status_code == 204
    after = await client.post("/v1/tokens", json=launch_body(creator=None), headers=auth)
    assert after.status_code == 401 and after.json()["type"] == "/problems/credential-revoked"
    assert (await client.get("/v1/auth/session", headers=auth)).json()["type"] == "/problems/credential-revoked"

    actions = [(e.action, e.subject) for e in await audit_rows(container)]
    assert (Action.SIGNIN_SUCCEEDED, account.address) in actions
    assert (Action.SESSION_REVOKED, f"session:{session['id']}") in actions
    assert (Action.SIGNIN_FAILED, account.address) in actions


async def test_solana_wallet_signs_in_and_may_not_launch_on_an_evm_chain(api):
    _, client = api
    keypair = Keypair()
    wallet = str(keypair.pubkey())
    text = message_for(await new_nonce(client), wallet, Family.SOLANA, chain_id="solana:localnet")
    resp = await client.post("/v1/auth/siws", json={"message": text, "signature": sign_solana(keypair, text)})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["session"]["wallet"], resp.json()["session"]["family"]) == (wallet, "solana")
    auth = bearer(resp.json()["token"])
    on_evm = await client.post("/v1/tokens", json=launch_body(creator=None), headers=auth)
    assert on_evm.status_code == 403 and on_evm.json()["type"] == "/problems/creator-mismatch"
    on_solana = await client.post("/v1/tokens", json=launch_body(chain="solana", creator=None), headers=auth)
    assert on_solana.status_code == 202 and on_solana.json()["token"]["creator"] == wallet

    # another key's signature, and an EVM message sent to the Solana endpoint
    forged = message_for(await new_nonce(client), wallet, Family.SOLANA)
    refused(
        await client.post("/v1/auth/siws", json={"message": forged, "signature": sign_solana(Keypair(), forged)}),
        "signature",
        "bad_signature",
    )
    account = Account.create()
    evm_text = message_for(await new_nonce(client), account.address)
    sig = sign_solana(keypair, evm_text)
    refused(await client.post("/v1/auth/siws", json={"message": evm_text, "signature": sig}), "message", "wrong_family")


def _now(**delta) -> timedelta:
    """A time this far from the moment the test runs (not from when it was collected)."""
    return timedelta(**delta)


REFUSALS = [
    ({"expiration_time": _now(seconds=-1)}, "message.Expiration Time", "expired"),
    ({"not_before": _now(minutes=3)}, "message.Not Before", "not_yet_valid"),
    ({"issued_at": _now(minutes=5)}, "message.Issued At", "issued_in_future"),
    ({"issued_at": _now(minutes=-10)}, "message.Issued At", "too_old"),
    ({"domain": "evil.example"}, "message.domain", "wrong_domain"),
    ({"domain": "tokenforge.test:8080"}, "message.domain", "wrong_domain"),
    ({"scheme": "https"}, "message.scheme", "wrong_domain"),
    ({"uri": "http://evil.example/tokenforge.test"}, "message.URI", "wrong_uri"),
    ({"chain_id": "1"}, "message.Chain ID", "wrong_chain"),
    ({"nonce": "neverissued1"}, "message.Nonce", "nonce_unknown"),
    ({"nonce": "short"}, "message.Nonce", "malformed"),
]


@pytest.mark.parametrize(("over", "field", "reason"), REFUSALS, ids=[r for _, _, r in REFUSALS])
async def test_refused_sign_in_names_why_and_is_audited(api, over, field, reason):
    container, client = api
    account = Account.create()
    over = {k: _iso(datetime.now(UTC) + v) if isinstance(v, timedelta) else v for k, v in over.items()}
    resp = await siwe(client, account, **over)
    problem = refused(resp, field, reason)
    assert problem["errors"][0]["message"]
    failures = [e for e in await audit_rows(container) if e.action == Action.SIGNIN_FAILED]
    expected_subject = "unknown" if reason == "malformed" else account.address
    assert [(f.actor, f.subject, f.details["reason"]) for f in failures] == [("anonymous", expected_subject, reason)]


async def test_another_keys_signature_is_refused_and_never_recorded(api):
    container, client = api
    claimed, signer = Account.create(), Account.create()
    text = message_for(await new_nonce(client), claimed.address)
    signature = sign_evm(signer, text)
    refused(
        await client.post("/v1/auth/siwe", json={"message": text, "signature": signature}), "signature", "bad_signature"
    )
    rows = await audit_rows(container)
    recorded = str([(e.actor, e.action, e.subject, e.details) for e in rows]).lower()
    assert rows and signature[2:].lower() not in recorded


async def test_refresh_rotates_the_token_and_operator_wallets_get_the_operator_role(signin_settings):
    operator = Account.create()
    signin_settings.operator_wallets = [operator.address.lower()]
    async with running_stack(signin_settings, fakes(), start=False, authorized=False) as (_, client):
        resp = await siwe(client, operator)
        assert resp.status_code == 200 and resp.json()["session"]["role"] == "operator"
        old = bearer(resp.json()["token"])
        rotated = await client.post("/v1/auth/session/refresh", headers=old)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["session"]["id"] != resp.json()["session"]["id"]
        assert rotated.json()["session"]["wallet"] == operator.address
        assert rotated.json()["session"]["expires_at"] == resp.json()["session"]["expires_at"], "never extended"
        new = bearer(rotated.json()["token"])
        assert (await client.get("/v1/auth/session", headers=new)).json()["role"] == "operator"
        signin_settings.operator_wallets = []  # taken off the list: the next refresh drops the role
        demoted = await client.post("/v1/auth/session/refresh", headers=new)
        assert demoted.json()["session"]["role"] == "creator"
        new = bearer(demoted.json()["token"])
        assert (await client.get("/v1/auth/session", headers=old)).json()["type"] == "/problems/credential-revoked"
        assert (await client.post("/v1/auth/session/refresh", headers=old)).status_code == 401
        assert (await client.get("/v1/auth/session")).status_code == 401


async def test_one_message_signs_in_once_under_concurrent_requests(any_db_settings):
    any_db_settings.public_url = PUBLIC_URL
    any_db_settings.chains = {"ethereum": "embedded", "solana": "embedded"}
    async with running_stack(any_db_settings, fakes(), start=False, authorized=False) as (_, client):
        account = Account.create()
        text = message_for(await new_nonce(client), account.address)
        body = {"message": text, "signature": sign_evm(account, text)}
        answers = await asyncio.gather(*(client.post("/v1/auth/siwe", json=body) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7


async def test_contract_wallet_signs_in_through_eip1271_on_the_embedded_chain(signin_settings):
    signin_settings.chains = {"ethereum": "embedded"}
    owner, stranger = Account.create(), Account.create()
    wallet = to_checksum_address(os.urandom(20))
    async with running_stack(signin_settings, start=False, authorized=False) as (container, client):
        deployer = await container.deployers.get("ethereum")
        code = runtime_code(owner.address)
        await asyncio.to_thread(
            deployer.embedded.seal_state_change, lambda state: state.set_code(to_canonical_address(wallet), code)
        )
        text = message_for(await new_nonce(client), wallet)
        resp = await client.post("/v1/auth/siwe", json={"message": text, "signature": sign_evm(owner, text)})
        assert resp.status_code == 200, resp.text
        assert resp.json()["session"]["wallet"] == wallet
        launched = await client.post("/v1/tokens", json=launch_body(creator=None), headers=bearer(resp.json()["token"]))
        assert launched.status_code == 202 and launched.json()["token"]["creator"] == wallet

        text = message_for(await new_nonce(client), wallet)
        resp = await client.post("/v1/auth/siwe", json={"message": text, "signature": sign_evm(stranger, text)})
        refused(resp, "signature", "bad_signature")
        rows = await audit_rows(container)
    methods = [e.details.get("method") for e in rows if e.action == Action.SIGNIN_SUCCEEDED]
    assert methods == ["eip1271"]
