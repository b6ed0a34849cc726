"""The compiled TokenForge contracts, shipped as package data.

The JSON files under ``artifacts/`` are written by ``npm run compile``
(``scripts/compile_contracts.js``) and committed, so running TokenForge never needs Node.
``tests/integration/test_contract_artifacts.py`` recompiles and fails on any difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list
    bytecode: bytes  # creation code
    deployed_bytecode: bytes  # runtime code (immutables left as zero placeholders)
    compiler_version: str


@cache
def load_artifact(name: str) -> Artifact:
    """Loads ``TokenForgeToken`` or ``TokenForgeFactory``."""
    text = resources.files(__package__).joinpath("artifacts", f"{name}.json").read_text("utf-8")
    data = json.loads(text)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
        compiler_version=data["compiler"]["version"],
    )


def factory_artifact() -> Artifact:
    return load_artifact("TokenForgeFactory")
