"""The launch page's vendored browser cryptography is exactly what ``scripts/vendor_web.js``
makes from the pinned npm ``@noble/curves`` (and the ``@noble/hashes`` it depends on) in
``node_modules``, and every module it imports is there. Without Node or ``node_modules``
it skips locally and fails under ``CI=true``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CI

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "src" / "tokenforge" / "api" / "static"
VENDOR = STATIC / "vendor"

pytestmark = pytest.mark.integration


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if CI:
        pytest.fail(f"{why} (required under CI=true)")
    pytest.skip(why)


def test_committed_vendor_files_match_a_fresh_copy_from_node_modules(tmp_path):
    node = shutil.which("node")
    _require(node is not None, "node is not installed")
    _require((ROOT / "node_modules" / "@noble" / "curves").is_dir(), "node_modules is missing: run `npm ci`")
    result = subprocess.run(
        [node, str(ROOT / "scripts" / "vendor_web.js"), str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    fresh = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in VENDOR.iterdir()}
    assert sorted(committed) == sorted(fresh), "run `make vendor` and commit src/tokenforge/api/static/vendor"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale vendored files {stale}: run `make vendor`"


def test_every_module_the_page_loads_is_served_from_its_own_origin():
    """Each import of the page's scripts names a file in static/ (no bare specifier, no
    other origin), so the browser needs no import map and the CSP's script-src 'self' holds."""
    specifier = re.compile(r"""^(?:import|export)\b[^'"\n]*?(?:from\s*)?["']([^"']+)["'];?\s*$""", re.MULTILINE)
    scripts = list(STATIC.glob("*.js")) + list(VENDOR.glob("*.js"))
    seen = 0
    for script in scripts:
        for target in specifier.findall(script.read_text("utf-8")):
            assert target.startswith("./"), f"{script.name} imports {target}"
            assert (script.parent / target).is_file(), f"{script.name} imports missing {target}"
            seen += 1
    assert seen > 20
    page = (STATIC / "index.html").read_text("utf-8")
    assert '<script type="module" src="/static/app.js"></script>' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "no inline script: the CSP allows 'self' only"
    assert not re.search(r"\son[a-z]+\s*=", page), "no inline event handlers"
