"""No private key, seed or platform secret appears in plaintext anywhere TokenForge writes:
the data directory (database, chain state, sealed keys) and the logs of a real launch run."""

from __future__ import annotations

import base64
import logging

import pytest
from eth_account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.support.stack import running_stack, wait_final
from tokenforge.keys.local import LocalKeyStore

pytestmark = pytest.mark.slow


def _base58(secret: bytes) -> bytes:
    if len(secret) == 64:
        return str(Keypair.from_bytes(secret)).encode()
    return str(Pubkey.from_bytes(secret)).encode()


def _forms(secret: bytes) -> list[bytes]:
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.b64encode(secret).rstrip(b"="),
        _base58(secret),
    ]


async def test_keys_never_appear_in_plaintext_on_disk_or_in_logs(settings, caplog):
    settings.chains = {"ethereum": "embedded", "solana": "embedded"}
    caplog.set_level(logging.DEBUG)
    async with running_stack(settings) as (_, client):
        bodies = [
            {
                "chain": "ethereum",
                "name": "Secret Safe",
                "symbol": "SAFE",
                "supply": 1,
                "creator": Account.create().address,
            },
            {
                "chain": "solana",
                "name": "Secret Safe",
                "symbol": "SAFE",
                "supply": 1,
                "creator": str(Keypair().pubkey()),
            },
        ]
        for body in bodies:
            job_id = (await client.post("/v1/tokens", json=body)).json()["job"]["id"]
            assert (await wait_final(client, job_id))["status"] == "confirmed"

    keys = LocalKeyStore(settings.data_dir, create_missing=False)
    secrets = [keys.evm_deployer_key("ethereum"), keys.solana_payer_key("solana"), keys.platform_secret("solana-mint")]
    solana_payer = Keypair.from_seed(keys.solana_payer_key("solana"))
    secrets.append(bytes(solana_payer))  # the 64-byte secret key form too
    needles = [form for secret in secrets for form in _forms(secret)]

    files = [p for p in settings.data_dir.rglob("*") if p.is_file()]
    assert any(p.name == "tokenforge.db" for p in files) and any(p.name == "keys.json" for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"plaintext key material in {path.relative_to(settings.data_dir)}"
    log_text = caplog.text.encode()
    for needle in needles:
        assert needle not in log_text, "plaintext key material in the logs"
