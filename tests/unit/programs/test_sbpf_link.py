"""The post-linker (scripts/sbpf_link.py): a clang object becomes a program the loader runs,
and anything it cannot turn into one is refused with a message naming the problem."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tests.support.sbf import PROGRAMS, ROOT, compile_c, require_clang, script

link = script("sbpf_link")

MINIMAL = """
typedef unsigned long long u64;
void sol_log_(const char *message, u64 len);
static const char HELLO[] = "hello";
u64 entrypoint(unsigned char *input) { sol_log_(HELLO, 5); return input[0]; }
"""


def test_the_output_has_the_layout_the_loader_requires(tmp_path) -> None:
    program = link.link(compile_c(MINIMAL, tmp_path))
    elf = ELFFile(io.BytesIO(program))
    assert elf["e_type"] == "ET_DYN" and elf["e_machine"] == "EM_BPF" and elf["e_flags"] == 0
    names = [s.name for s in elf.iter_sections()]
    assert names.count(".text") == 1
    assert {".dynamic", ".dynsym", ".dynstr", ".rel.dyn", ".rodata"} <= set(names)
    for s in elf.iter_sections():
        if s["sh_flags"] & 2:  # allocated: its address is its file offset
            assert s["sh_addr"] == s["sh_offset"], s.name
    assert not [n for n in names if n.startswith((".data", ".bss"))]
    text = elf.get_section_by_name(".text")
    assert text["sh_addr"] <= elf["e_entry"] < text["sh_addr"] + text["sh_size"]
    # the syscall is a dynamic R_BPF_64_32 relocation of a call whose imm is -1
    rel = elf.get_section_by_name(".rel.dyn")
    dynsym = elf.get_section_by_name(".dynsym")
    (r,) = list(rel.iter_relocations())
    assert r["r_info_type"] == link.R_BPF_64_32
    assert dynsym.get_symbol(r["r_info_sym"]).name == "sol_log_"
    insn = program[r["r_offset"] : r["r_offset"] + 8]
    assert insn[0] == link.CALL_IMM and struct.unpack_from("<i", insn, 4)[0] == -1
    # the lddw of HELLO holds its final address: where the loader maps the file, + offset
    rodata = elf.get_section_by_name(".rodata")
    code = text.data()
    lddw = [i for i in range(0, len(code), 8) if code[i] == link.LDDW]
    assert lddw
    lo, hi = struct.unpack_from("<I", code, lddw[0] + 4)[0], struct.unpack_from("<I", code, lddw[0] + 12)[0]
    address = (hi << 32) | lo
    assert address - link.MM_PROGRAM_START == rodata["sh_offset"]
    assert program[rodata["sh_offset"] : rodata["sh_offset"] + 5] == b"hello"


def test_linking_is_reproducible(tmp_path) -> None:
    obj = compile_c(MINIMAL, tmp_path)
    assert link.link(obj) == link.link(obj)


@pytest.mark.parametrize(
    ("source", "flags", "message"),
    [
        (
            "unsigned long long counter;\nunsigned long long entrypoint(void *i) { return ++counter; }",
            (),
            "mutable global",
        ),
        (
            "static unsigned long long c = 3;\nunsigned long long entrypoint(void *i) { c += 1; return c; }",
            (),
            "mutable global",
        ),
        (
            "unsigned long long helper(void) { return 1; }\n"
            "unsigned long long entrypoint(void *i) { return helper(); }",
            ("-ffunction-sections",),
            "exactly one .text",
        ),
        (
            "void not_a_syscall(void);\nunsigned long long entrypoint(void *i) { not_a_syscall(); return 0; }",
            (),
            "unknown function 'not_a_syscall'",
        ),
        ("unsigned long long main(void *i) { return 0; }", (), "no 'entrypoint' function"),
        (
            "static unsigned long long one(void) { return 1; }\n"
            "static const void *const FUNCTIONS[] = {(const void *)one};\n"
            "unsigned long long entrypoint(unsigned char *i) { return (unsigned long long)FUNCTIONS[i[0] & 0]; }",
            (),
            "function pointers are not supported",
        ),
    ],
)
def test_an_object_the_loader_would_refuse_is_refused_by_name(tmp_path, source, flags, message) -> None:
    with pytest.raises(link.LinkError, match=message):
        link.link(compile_c(source, tmp_path, *flags))


def test_what_is_not_a_bpf_object_is_refused(tmp_path) -> None:
    with pytest.raises(link.LinkError, match="not a valid ELF"):
        link.link(b"\x7fELF not really")
    with pytest.raises(link.LinkError, match="not a 64-bit little-endian BPF object"):
        link.link(Path(sys.executable).read_bytes())  # an x86-64 executable
    linked = link.link(compile_c(MINIMAL, tmp_path))
    with pytest.raises(link.LinkError, match="relocatable object"):
        link.link(linked)  # already linked: ET_DYN


def test_the_command_line_reports_a_refusal_without_a_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.o"
    bad.write_bytes(b"junk")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sbpf_link.py"), str(bad), "-o", str(tmp_path / "out.so")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "bad.o: not a valid ELF object" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.so").exists()


def test_the_committed_programs_are_what_the_sources_build_to() -> None:
    require_clang()
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_programs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in PROGRAMS.glob("*.so")) == sorted(
        f"{p.name}.so" for p in (ROOT / "programs").iterdir() if (p / f"{p.name}.c").exists()
    )


def test_pointers_inside_const_data_get_their_final_address(tmp_path) -> None:
    source = (
        'static const char *const NAMES[] = {"alpha", "beta"};\n'
        "unsigned long long entrypoint(unsigned char *i) { return (unsigned long long)NAMES[i[0] & 1]; }"
    )
    program = link.link(compile_c(source, tmp_path))
    rodata = ELFFile(io.BytesIO(program)).get_section_by_name(".rodata")
    body = rodata.data()
    pointers = [struct.unpack_from("<Q", body, at)[0] for at in range(0, len(body) - 7, 8)]
    targets = {p - link.MM_PROGRAM_START - rodata["sh_offset"] for p in pointers if p > link.MM_PROGRAM_START}
    strings = {body.index(b"alpha\0"), body.index(b"beta\0")}
    assert strings <= targets
