"""After a full run on the embedded default (launches on an EVM chain and on Solana, an API
key, a sign-in session, a webhook), no secret appears anywhere TokenForge wrote or
answered: the database and its WAL, every file of the data directory but the master
keyfile, the logs (stdlib and structlog), every HTTP response (bodies and headers, error
answers included) and /metrics. Secrets: the deployer keys, the Solana payer seed and
keypair, the platform secret, the master key, API key and session tokens, the webhook
secret."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from eth_account import Account
from solders.keypair import Keypair
from sqlalchemy import select

from tests.support.auth import bearer, issue_key
from tests.support.secrets_scan import SecretScan
from tests.support.stack import running_stack, wait_final
from tokenforge.audit.actions import Action
from tokenforge.auth import sessions as auth_sessions
from tokenforge.auth.principal import Role
from tokenforge.keys.local import LocalKeyStore
from tokenforge.store.models import AuditRow

pytestmark = pytest.mark.slow


def _structlog_capture(settings) -> tuple[logging.Handler, io.StringIO]:
    """A root handler rendering every record the way TokenForge's JSON logs do."""
    from tokenforge.observability import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    settings.log_json = True
    configure_logging(settings)
    formatter = root.handlers[0].formatter
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.setLevel(logging.DEBUG)
    return handler, out


async def test_no_secret_anywhere_after_a_full_run(settings, caplog, capfd):
    settings.chains = {"ethereum": "embedded", "solana": "embedded"}
    settings.outbound_allowed_networks = ["127.0.0.0/8"]
    caplog.set_level(logging.DEBUG)
    handler, structlog_out = _structlog_capture(settings)
    logging.getLogger().addHandler(handler)
    scan = SecretScan()
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            await response.aread()
        seen.append(response)

    try:
        async with running_stack(settings) as (container, client):
            client.event_hooks["response"].append(keep)
            scan.add_secret("operator API key", client.headers["Authorization"].removeprefix("Bearer "))
            creator = Account.create()
            creator_key = await issue_key(container.sessions, Role.CREATOR, creator.address)
            scan.add_secret("creator API key", creator_key)
            async with container.sessions() as s:
                issued = await auth_sessions.issue(
                    s, wallet=creator.address, family="evm", role=Role.CREATOR, ttl_s=600
                )
                await s.commit()
            scan.add_secret("session token", issued.token)

            hook = await client.post(
                "/v1/webhooks",
                json={"url": "http://127.0.0.1:9/hook", "events": ["confirmed"]},
                headers=bearer(issued.token),
            )
            if hook.status_code == 201:
                scan.add_secret("webhook secret", hook.json()["secret"])

            bodies = [
                {"chain": "ethereum", "name": "Scan Coin", "symbol": "SCAN", "supply": 7, "creator": creator.address},
                {
                    "chain": "solana",
                    "name": "Scan Coin",
                    "symbol": "SCAN",
                    "supply": 7,
                    "creator": str(Keypair().pubkey()),
                },
            ]
            for body in bodies:
                accepted = await client.post("/v1/tokens", json=body)
                assert accepted.status_code == 202, accepted.text
                job = await wait_final(client, accepted.json()["job"]["id"])
                assert job["status"] == "confirmed", job
                await client.get(f"/v1/tokens/{job['token_id']}")
            session_launch = await client.post(
                "/v1/tokens", json={k: v for k, v in bodies[0].items() if k != "creator"}, headers=bearer(issued.token)
            )
            assert session_launch.status_code in (202, 422), session_launch.text
            # refusals: a wrong credential, a bad body, an unknown job
            await client.post("/v1/tokens", json=bodies[0], headers=bearer("tfk_" + "x" * 40))
            await client.post("/v1/tokens", json={**bodies[0], "symbol": "bad!"})
            await client.get("/v1/jobs/nope")
            await client.get("/v1/chains")
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            async with container.sessions() as s:  # keys made at chain open are audited
                created = (
                    (await s.execute(select(AuditRow).where(AuditRow.action == Action.KEY_CREATED))).scalars().all()
                )
            subjects = {row.subject for row in created}
            assert {row.actor for row in created} == {"system:worker"}
            assert "key:platform/solana-mint" in subjects and any(x.startswith("key:ethereum/0x") for x in subjects)
    finally:
        logging.getLogger().removeHandler(handler)

    keyfile = settings.master_keyfile or settings.data_dir / "master.key"
    store = LocalKeyStore(settings.data_dir, create_missing=False)
    for i, key in enumerate(store.evm_deployer_keys("ethereum", settings.chains["ethereum"].deployer_keys)):
        scan.add_secret(f"ethereum deployer key {i}", key)
    seed = store.solana_payer_key("solana")
    scan.add_secret("solana payer seed", seed)
    scan.add_secret("solana payer keypair", bytes(Keypair.from_seed(seed)))
    scan.add_secret("platform secret", store.platform_secret("solana-mint"))
    scan.add_secret("master key", keyfile.read_bytes())

    files = scan.add_tree(settings.data_dir, exclude=[keyfile])
    names = {p.name for p in files}
    assert "tokenforge.db" in names and "keys.json" in names
    scan.add_source("logs (caplog)", caplog.text)
    for record in caplog.records:
        scan.add_source("log records", repr(record.args) + record.getMessage())
    scan.add_source("logs (structlog JSON)", structlog_out.getvalue())
    captured = capfd.readouterr()
    scan.add_source("stdout/stderr", captured.out + captured.err)
    for response in seen:
        label = f"HTTP {response.request.method} {response.request.url.path} {response.status_code}"
        scan.add_source(label, "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()))
        if response is hook:
            continue  # the one answer meant to show the webhook secret, once
        try:
            scan.add_source(label, response.content)
        except httpx.ResponseNotRead:  # an SSE stream: its events are the jobs read above
            pass
    assert any(r.status_code == 401 for r in seen) and any(r.status_code == 422 for r in seen)
    assert len(scan.secrets) >= 10
    scan.assert_clean()
