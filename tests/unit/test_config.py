"""Per-chain settings: shorthand, validation with clear messages, no secret echoed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tokenforge.config import Settings
from tokenforge.domain.chains import Network


def test_network_name_is_shorthand_and_endpoints_accept_strings(tmp_path):
    s = Settings(
        data_dir=tmp_path,
        chains={"solana": "embedded", "ethereum": {"network": "testnet", "endpoints": ["https://a.example/x"]}},
    )
    assert s.chains["solana"].network is Network.EMBEDDED
    assert s.chains["ethereum"].endpoints[0].url == "https://a.example/x"
    assert s.chains["ethereum"].endpoints[0].weight == 1


@pytest.mark.parametrize(
    ("chains", "field"),
    [
        ({"ethereum": {"network": "testnet"}}, "endpoint"),
        ({"ethereum": {"network": "embedded", "endpoints": ["https://a.example"]}}, "embedded"),
        (
            {"ethereum": {"network": "mainnet", "endpoints": ["https://a.example"], "fee_bump_percent": 5}},
            "fee_bump_percent",
        ),
        ({"dogechain": "embedded"}, "unknown chains"),
        (
            {"solana": {"network": "mainnet", "endpoints": ["https://a.example"], "legacy_fees": True}},
            "EVM chains only",
        ),
    ],
)
def test_bad_chain_settings_are_refused_with_the_reason(tmp_path, chains, field):
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, chains=chains)
    assert field in str(err.value)


@pytest.mark.parametrize(
    "chains",
    [
        {"ethereum": {"network": "testnet", "endpoints": ["wss://rpc.example/v3/SECRETKEY123"]}},
        {
            "ethereum": {
                "network": "testnet",
                "endpoints": [{"url": "https://rpc.example/v3/SECRETKEY123", "weight": 0}],
            }
        },
        {"notachain": {"network": "testnet", "endpoints": ["https://rpc.example/v3/SECRETKEY123"]}},
    ],
)
def test_configuration_errors_never_echo_an_endpoint_api_key(tmp_path, chains):
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, chains=chains)
    assert "SECRETKEY123" not in str(err.value)


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Runs ``tokenforge serve`` in process up to the point it starts listening; returns
    ``run(*args) -> (host, port, output)`` with the address uvicorn was asked to bind."""
    import sys

    import uvicorn
    from typer.testing import CliRunner

    import tokenforge.observability
    from tokenforge.cli.main import app

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(tokenforge.observability, "configure_logging", lambda settings: None)
    monkeypatch.setattr(sys, "setswitchinterval", lambda interval_s: None)
    monkeypatch.setenv("TOKENFORGE_DATA_DIR", str(tmp_path))
    for name in ("TOKENFORGE_HOST", "TOKENFORGE_PORT"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> tuple[str, int, str]:
        result = CliRunner().invoke(app, ["serve", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return calls[-1]["host"], calls[-1]["port"], result.output

    return run


def test_serve_listens_where_tokenforge_host_and_port_say(served, monkeypatch):
    assert served()[:2] == ("127.0.0.1", 8000)
    monkeypatch.setenv("TOKENFORGE_HOST", "0.0.0.0")
    monkeypatch.setenv("TOKENFORGE_PORT", "9123")
    host, port, output = served()
    assert (host, port) == ("0.0.0.0", 9123)
    assert "http://0.0.0.0:9123" in output


def test_serve_options_win_over_the_environment(served, monkeypatch):
    monkeypatch.setenv("TOKENFORGE_HOST", "0.0.0.0")
    monkeypatch.setenv("TOKENFORGE_PORT", "9123")
    assert served("--host", "127.0.0.2", "--port", "9200")[:2] == ("127.0.0.2", 9200)


def test_a_port_out_of_range_is_refused(tmp_path):
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, port=70000)
    assert "port" in str(err.value)
