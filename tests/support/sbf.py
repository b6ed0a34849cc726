"""Solana program build helpers for tests: the post-linker and clang-14 objects."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "src" / "tokenforge" / "chains" / "solana" / "programs"


def script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the build tools are scripts, not package code)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def require_clang() -> str:
    path = shutil.which("clang-14")
    require_tool("clang-14", path, "apt-get install clang-14")
    assert path is not None
    return path


def compile_c(source: str, tmp_path: Path, *extra: str) -> bytes:
    """The clang-14 BPF object of C ``source`` (the build's flags plus ``extra``)."""
    clang = require_clang()
    build = script("build_programs")
    src = tmp_path / "program.c"
    src.write_text(source)
    obj = tmp_path / "program.o"
    subprocess.run([clang, *build.CFLAGS, *extra, "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
    return obj.read_bytes()
