"""Builds TokenForge's Solana programs: ``programs/<name>/<name>.c`` → ``<name>.so``.

Each program is compiled by Debian's ``clang-14 -target bpf`` (flags below) and linked by
``scripts/sbpf_link.py`` into ``src/tokenforge/chains/solana/programs/<name>.so``, which is
committed (the embedded chain and the devnet load it at start; nothing compiles at run
time). ``--check`` rebuilds into memory and fails when a committed ``.so`` differs (the
test suite runs it). ``make programs`` runs this script.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from sbpf_link import LinkError, link  # noqa: E402

SOURCES = ROOT / "programs"
OUTPUT = ROOT / "src" / "tokenforge" / "chains" / "solana" / "programs"
CLANG = "clang-14"
#: SBPFv0 has no 32-bit jumps (-mcpu=v2 at most); no libc; one .text (no -ffunction-sections)
CFLAGS = ["-target", "bpf", "-mcpu=v2", "-O2", "-fno-builtin", "-ffreestanding", "-Wall", "-Werror", "-std=c11"]


def programs() -> list[Path]:
    """Every program's main source: ``programs/<name>/<name>.c``."""
    return sorted(p / f"{p.name}.c" for p in SOURCES.iterdir() if (p / f"{p.name}.c").is_file())


def compile_object(source: Path, workdir: Path) -> bytes:
    """The relocatable object clang writes for ``source`` (compiled from the repository root
    with a relative path, so the object does not depend on where the checkout is)."""
    if shutil.which(CLANG) is None:
        raise SystemExit(f"{CLANG} is not installed (apt-get install clang-14)")
    obj = workdir / f"{source.stem}.o"
    done = subprocess.run([CLANG, *CFLAGS, "-c", str(source.relative_to(ROOT)), "-o", str(obj)], cwd=ROOT)
    if done.returncode != 0:
        raise LinkError(f"{CLANG} failed (exit {done.returncode}); its messages are above")
    return obj.read_bytes()


def build(source: Path) -> bytes:
    with tempfile.TemporaryDirectory() as workdir:
        return link(compile_object(source, Path(workdir)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed .so differs from a rebuild")
    args = parser.parse_args(argv)
    stale = []
    for source in programs():
        target = OUTPUT / f"{source.stem}.so"
        try:
            program = build(source)
        except LinkError as exc:
            sys.stderr.write(f"{source.relative_to(ROOT)}: {exc}\n")
            return 1
        if args.check:
            if not target.exists() or target.read_bytes() != program:
                stale.append(target.relative_to(ROOT))
            continue
        OUTPUT.mkdir(parents=True, exist_ok=True)
        target.write_bytes(program)
        sys.stdout.write(f"{target.relative_to(ROOT)}: {len(program)} bytes\n")
    if stale:
        sys.stderr.write("stale programs (run make programs): " + ", ".join(map(str, stale)) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
