"""The compiled TokenForge contracts and Uniswap V2's published ones, shipped as package data.

The JSON files under ``artifacts/`` are written by ``npm run compile``
(``scripts/compile_contracts.js``) and committed, so running TokenForge never needs Node.
``tests/integration/test_contract_artifacts.py`` recompiles and fails on any difference.
``artifacts/uniswap/`` holds ``UniswapV2Factory``, ``UniswapV2Pair``, ``WETH9`` and
``UniswapV2Router02`` as npm publishes them (copied, not recompiled): the pair's init code
hash is the published :data:`UNISWAP_V2_PAIR_INIT_CODE_HASH`.
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


#: keccak256 of UniswapV2Pair's creation code as published (the pair-address formula's constant).
UNISWAP_V2_PAIR_INIT_CODE_HASH = bytes.fromhex("96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f")


@cache
def load_artifact(name: str) -> Artifact:
    """Loads ``TokenForgeToken``, ``TokenForgeCurve`` or ``TokenForgeFactory``."""
    text = resources.files(__package__).joinpath("artifacts", f"{name}.json").read_text("utf-8")
    data = json.loads(text)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
        compiler_version=data["compiler"]["version"],
    )


@cache
def uniswap_artifact(name: str) -> Artifact:
    """Loads ``UniswapV2Factory``, ``UniswapV2Pair``, ``WETH9`` or ``UniswapV2Router02``."""
    text = resources.files(__package__).joinpath("artifacts", "uniswap", f"{name}.json").read_text("utf-8")
    data = json.loads(text)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        deployed_bytecode=b"",
        compiler_version=data["source"],
    )


def factory_artifact() -> Artifact:
    return load_artifact("TokenForgeFactory")


def curve_artifact() -> Artifact:
    return load_artifact("TokenForgeCurve")


def token_artifact() -> Artifact:
    return load_artifact("TokenForgeToken")
