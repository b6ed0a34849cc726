"""Shared launch request bodies and fake chains for API tests."""

from __future__ import annotations

from tests.support.fake_deployer import FakeDeployer

EVM_CREATOR = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
SOL_CREATOR = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"


def launch_body(**over) -> dict:
    body = {"chain": "ethereum", "name": "Forge Coin", "symbol": "FORGE", "supply": "1000000", "creator": EVM_CREATOR}
    body.update(over)
    return body


def fakes() -> dict:
    return {"ethereum": FakeDeployer(), "solana": FakeDeployer("solana")}
