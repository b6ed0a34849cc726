"""The committed contract artifacts are exactly what the pinned compiler produces.

Recompiles ``contracts/`` with ``scripts/compile_contracts.js`` (pinned npm ``solc``,
OpenZeppelin from ``node_modules``; run ``npm ci`` first) into a temporary directory and
fails on any difference from ``src/tokenforge/chains/evm/artifacts``; the Uniswap V2 copies
under ``artifacts/uniswap`` must equal what the pinned npm packages publish. Without Node or
``node_modules`` it skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "src" / "tokenforge" / "chains" / "evm" / "artifacts"
CONTRACTS = ("TokenForgeToken", "TokenForgeCurve", "TokenForgeFactory")
#: copied from the published npm packages by the compile script, not recompiled
UNISWAP = ("UniswapV2Factory", "UniswapV2Pair", "WETH9", "UniswapV2Router02")
CI = os.environ.get("CI", "").lower() == "true"

pytestmark = pytest.mark.integration


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if CI:
        pytest.fail(f"{why} (required under CI=true)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def recompiled(tmp_path_factory) -> Path:
    node = shutil.which("node")
    _require(node is not None, "node is not installed")
    _require((ROOT / "node_modules" / "solc").is_dir(), "node_modules is missing: run `npm ci`")
    _require((ROOT / "node_modules" / "@openzeppelin" / "contracts").is_dir(), "node_modules is missing: run `npm ci`")
    out = tmp_path_factory.mktemp("artifacts")
    result = subprocess.run(
        [node, str(ROOT / "scripts" / "compile_contracts.js"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("name", CONTRACTS)
def test_committed_artifact_matches_a_fresh_compile(recompiled, name):
    committed = (ARTIFACTS / f"{name}.json").read_text("utf-8")
    fresh = (recompiled / f"{name}.json").read_text("utf-8")
    assert fresh == committed, f"{name}.json is stale: run `npm run compile` and commit the result"


def test_compiler_is_the_pinned_one(recompiled):
    package = json.loads((ROOT / "package.json").read_text("utf-8"))
    pinned = package["devDependencies"]["solc"]
    for name in CONTRACTS:
        artifact = json.loads((ARTIFACTS / f"{name}.json").read_text("utf-8"))
        assert artifact["compiler"]["version"].startswith(pinned + "+"), artifact["compiler"]
        assert artifact["settings"]["optimizer"] == {"enabled": True, "runs": 200}
        assert artifact["settings"]["evmVersion"] == "cancun"


@pytest.mark.parametrize("name", UNISWAP)
def test_committed_uniswap_copy_matches_the_published_package(recompiled, name):
    committed = (ARTIFACTS / "uniswap" / f"{name}.json").read_text("utf-8")
    fresh = (recompiled / "uniswap" / f"{name}.json").read_text("utf-8")
    assert fresh == committed, f"uniswap/{name}.json is stale: run `npm run compile` and commit the result"


def test_the_pair_init_code_hash_is_the_committed_pairs():
    from eth_utils import keccak

    from tokenforge.chains.evm.artifacts import UNISWAP_V2_PAIR_INIT_CODE_HASH, uniswap_artifact

    assert keccak(uniswap_artifact("UniswapV2Pair").bytecode) == UNISWAP_V2_PAIR_INIT_CODE_HASH


def test_no_other_artifacts_are_committed():
    assert sorted(p.stem for p in ARTIFACTS.glob("*.json")) == sorted(CONTRACTS)
    assert sorted(p.stem for p in (ARTIFACTS / "uniswap").glob("*.json")) == sorted(UNISWAP)
    assert sorted(p.name for p in ARTIFACTS.iterdir() if p.is_dir()) == ["uniswap"]
