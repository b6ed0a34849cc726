"""Per-chain settings: shorthand, validation with clear messages, no secret echoed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tokenforge.config import Settings
from tokenforge.domain.chains import Network


def test_network_name_is_shorthand_and_endpoints_accept_strings(tmp_path):
    s = Settings(data_dir=tmp_path, chains={"solana": "embedded",
                                            "ethereum": {"network": "testnet", "endpoints": ["https://a.example/x"]}})
    assert s.chains["solana"].network is Network.EMBEDDED
    assert s.chains["ethereum"].endpoints[0].url == "https://a.example/x"
    assert s.chains["ethereum"].endpoints[0].weight == 1


@pytest.mark.parametrize("chains, field", [
    ({"ethereum": {"network": "testnet"}}, "endpoint"),
    ({"ethereum": {"network": "embedded", "endpoints": ["https://a.example"]}}, "embedded"),
    ({"ethereum": {"network": "mainnet", "endpoints": ["https://a.example"], "fee_bump_percent": 5}}, "fee_bump_percent"),
    ({"dogechain": "embedded"}, "unknown chains"),
    ({"solana": {"network": "mainnet", "endpoints": ["https://a.example"], "legacy_fees": True}}, "EVM chains only"),
])
def test_bad_chain_settings_are_refused_with_the_reason(tmp_path, chains, field):
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, chains=chains)
    assert field in str(err.value)


@pytest.mark.parametrize("chains", [
    {"ethereum": {"network": "testnet", "endpoints": ["wss://rpc.example/v3/SECRETKEY123"]}},
    {"ethereum": {"network": "testnet", "endpoints": [{"url": "https://rpc.example/v3/SECRETKEY123", "weight": 0}]}},
    {"notachain": {"network": "testnet", "endpoints": ["https://rpc.example/v3/SECRETKEY123"]}},
])
def test_configuration_errors_never_echo_an_endpoint_api_key(tmp_path, chains):
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, chains=chains)
    assert "SECRETKEY123" not in str(err.value)
