"""Start-up refuses placeholder secrets once a chain is on a testnet or mainnet
(``security_checks.refuse_placeholder_secrets``, called by ``build_container``)."""

from __future__ import annotations

import base64
import os

import pytest

from tokenforge.bootstrap import build_container
from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, PermanentError
from tokenforge.security_checks import refuse_placeholder_secrets

TESTNET = {"ethereum": {"network": "testnet", "endpoints": ["https://rpc.example/"]}, "solana": "embedded"}
MAINNET = {"solana": {"network": "mainnet", "endpoints": ["https://rpc.example/"]}}
GOOD_KEY = base64.b64encode(os.urandom(32)).decode()
PUBLIC = {"chains": TESTNET, "public_url": "https://forge.example"}


def _refusal(**overrides) -> str:
    with pytest.raises(PermanentError) as caught:
        refuse_placeholder_secrets(Settings(**{**PUBLIC, **overrides}))
    assert caught.value.code is ErrorCode.INVALID_PARAMETER
    return caught.value.message


def test_a_public_deployment_with_real_secrets_starts():
    refuse_placeholder_secrets(
        Settings(
            **PUBLIC,
            master_key=GOOD_KEY,
            database_url="postgresql+asyncpg://forge:Zq8v-3kLr9-PxW2@db.internal/forge",
            broker_url="amqps://forge:Tn4e-8sHx1-QmC7@mq.internal/forge",
            cache_url="rediss://:Vb6y-2dJk5-RfA3@cache.internal:6379/0",
        )
    )
    refuse_placeholder_secrets(Settings(chains=MAINNET, public_url="https://forge.example/"))


@pytest.mark.parametrize(
    "chains",
    [
        {"ethereum": "embedded", "solana": "embedded"},
        {"ethereum": {"network": "local", "endpoints": ["http://127.0.0.1:8545"]}},
    ],
)
def test_local_networks_keep_their_development_defaults(chains):
    refuse_placeholder_secrets(
        Settings(chains=chains, master_key="changeme", broker_url="amqp://guest:guest@localhost/", public_url=None)
    )


@pytest.mark.parametrize(
    ("master_key", "why"),
    [
        ("changeme", "placeholder"),
        ("secret", "placeholder"),
        ("password", "placeholder"),
        ("test", "placeholder"),
        ("example", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "placeholder"),
        (base64.b64encode(b"\x00" * 32).decode(), "placeholder"),
        (base64.b64encode(os.urandom(16)).decode(), "16 bytes"),
        (base64.b64encode(b"changeme-changeme-changeme-12345").decode(), "text"),
        (base64.b64encode(bytes(range(8)) * 4).decode(), "repeats"),
        ("not base64 at all!", "not base64"),
    ],
)
def test_a_placeholder_master_key_is_refused_naming_the_setting(master_key, why):
    message = _refusal(master_key=master_key)
    assert "TOKENFORGE_MASTER_KEY" in message and why in message
    assert len(master_key) < 8 or master_key not in message


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("broker_url", "amqp://guest:guest@mq.internal:5672/"),
        ("broker_url", "amqp://mq.internal:5672/"),
        ("broker_url", "amqps://forge@mq.internal/"),
        ("database_url", "postgresql+asyncpg://postgres:postgres@db.internal/forge"),
        ("database_url", "postgresql+asyncpg://forge:password@db.internal/forge"),
        ("database_url", "postgresql+asyncpg://forge:forge@db.internal/forge"),
        ("cache_url", "redis://:changeme@cache.internal:6379/0"),
        ("cache_url", "rediss://default:secret@cache.internal:6379/0"),
    ],
)
def test_a_well_known_default_password_is_refused_naming_the_setting(setting, url):
    message = _refusal(**{setting: url})
    assert f"TOKENFORGE_{setting.upper()}" in message
    password = url.split("@")[0].rsplit(":", 1)[-1]
    assert url not in message and (password.startswith("/") or f":{password}@" not in message)


@pytest.mark.parametrize(("public_url", "why"), [(None, "unset"), ("http://forge.example", "https")])
def test_a_public_deployment_needs_an_https_public_url(public_url, why):
    message = _refusal(public_url=public_url)
    assert "TOKENFORGE_PUBLIC_URL" in message and why in message


def test_every_problem_is_named_at_once():
    message = _refusal(master_key="changeme", broker_url="amqp://guest:guest@mq/", public_url=None)
    assert all(n in message for n in ("TOKENFORGE_MASTER_KEY", "TOKENFORGE_BROKER_URL", "TOKENFORGE_PUBLIC_URL"))


async def test_build_container_refuses_before_touching_anything(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", chains=MAINNET, public_url="http://forge.example")
    with pytest.raises(PermanentError, match="TOKENFORGE_PUBLIC_URL"):
        await build_container(settings)
    assert not (tmp_path / "data").exists()


# --- secrets in settings never show in repr, str or validation errors ------------------

PASSWORDS = ("DbSekret123", "MqSekret123", "CacheSekret123", "RpcKey123")


def _with_passwords() -> Settings:
    return Settings(
        database_url="postgresql+asyncpg://forge:DbSekret123@db.internal/forge",
        broker_url="amqp://forge:MqSekret123@mq.internal/",
        cache_url="redis://:CacheSekret123@cache.internal:6379/0",
        master_key=GOOD_KEY,
        chains={"ethereum": {"network": "testnet", "endpoints": ["https://rpc.example/v3/RpcKey123"]}},
    )


def test_repr_and_str_of_settings_show_no_password_key_or_endpoint_path():
    settings = _with_passwords()
    for text in (repr(settings), str(settings), repr(settings.chains), str(settings.chains["ethereum"].endpoints)):
        assert not [p for p in (*PASSWORDS, GOOD_KEY) if p in text], text
    assert "forge:***@db.internal" in repr(settings) and "https://rpc.example/…" in repr(settings.chains)
    assert settings.database_url.endswith("DbSekret123@db.internal/forge")  # the value itself is intact


def test_a_validation_error_does_not_echo_a_url_with_its_password():
    with pytest.raises(ValueError, match="broker_url") as caught:
        Settings(broker_url="kafka://forge:MqSekret123@mq.internal/")
    assert "MqSekret123" not in str(caught.value)
