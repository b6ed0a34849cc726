"""TokenForge's post-linker for Solana programs: a ``clang -target bpf`` object → an SBPFv0 ``.so``.

Stock ``ld.lld`` cannot produce what the Solana loader accepts (see
``docs/decisions/0016-solana-program-toolchain.md``), so this step builds the shared object
itself from the relocatable object clang writes:

* the object's single ``.text`` and its read-only data (every ``.rodata*`` section, merged
  into one ``.rodata``) are laid out so that each section's address equals its file offset;
* ``lddw`` of read-only data (``R_BPF_64_64``) gets its final address, ``0x1_0000_0000`` +
  the file offset (where the loader maps the file), written into the instruction;
* a pointer inside read-only data (``R_BPF_64_ABS64``, e.g. the template clang keeps for a
  local array of seeds) gets its final address the same way;
* a call to a function of ``.text`` that clang left to the linker (``R_BPF_64_32`` against
  a defined symbol) becomes pc-relative, as clang emits calls to static functions;
* a call to an undefined symbol (a syscall such as ``sol_log_``) keeps ``imm = -1`` and gets
  an ``R_BPF_64_32`` dynamic relocation against a ``.dynsym`` entry of that name: the loader
  resolves it by the murmur3 hash of the name;
* the output is ``ET_DYN``, ``EM_BPF``, ``e_flags`` 0, with ``.dynamic``, ``.dynsym``,
  ``.dynstr``, ``.rel.dyn`` and a ``PT_LOAD`` and ``PT_DYNAMIC`` program header, entry point
  the ``entrypoint`` symbol.

Anything else is refused with :class:`LinkError` naming the problem: another machine or
object type, no or several ``.text`` sections (``-ffunction-sections``), mutable globals
(``.data``/``.bss``), const data pointing
anywhere but const data, unknown relocations or syscalls.
The output depends only on the object's bytes (reproducible builds).

Usage: ``python scripts/sbpf_link.py program.o -o program.so``.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

EM_BPF = 247
ET_DYN = 3
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_32 = 10
MM_PROGRAM_START = 0x1_0000_0000
CALL_IMM = 0x85
LDDW = 0x18

#: The syscalls a TokenForge program may call (the loader refuses a name it does not know).
SYSCALLS = frozenset(
    {
        "abort",
        "sol_panic_",
        "sol_log_",
        "sol_log_64_",
        "sol_log_pubkey",
        "sol_log_compute_units_",
        "sol_log_data",
        "sol_invoke_signed_c",
        "sol_create_program_address",
        "sol_try_find_program_address",
        "sol_set_return_data",
        "sol_get_return_data",
        "sol_get_clock_sysvar",
        "sol_get_rent_sysvar",
        "sol_sha256",
        "sol_keccak256",
        "sol_memcpy_",
        "sol_memmove_",
        "sol_memset_",
        "sol_memcmp_",
    }
)

# ELF constants for the output
SHT_PROGBITS, SHT_STRTAB, SHT_DYNAMIC, SHT_REL, SHT_DYNSYM = 1, 3, 6, 9, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
PT_LOAD, PT_DYNAMIC = 1, 2
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT, DT_REL, DT_RELSZ, DT_RELENT = 0, 5, 6, 10, 11, 17, 18, 19
DT_TEXTREL, DT_FLAGS, DF_TEXTREL = 22, 30, 4
STB_GLOBAL, STT_NOTYPE, STT_FUNC = 1, 0, 2


class LinkError(Exception):
    """The object cannot become a Solana program; the message says why."""


@dataclass
class _Out:
    """The output file being laid out: bytes, and where each section went."""

    data: bytearray = field(default_factory=bytearray)
    sections: list[tuple[str, int, int, int, int, int, int, int]] = field(default_factory=list)

    def place(
        self, name: str, body: bytes, *, sh_type: int, flags: int, align: int, link: int = 0, entsize: int = 0
    ) -> int:
        while len(self.data) % align:
            self.data.append(0)
        offset = len(self.data)
        self.data += body
        self.sections.append((name, sh_type, flags, offset, len(body), link, align, entsize))
        return offset


def link(obj: bytes, *, entry: str = "entrypoint") -> bytes:
    """The ``.so`` for relocatable object ``obj`` (see the module docstring)."""
    try:
        elf = ELFFile(io.BytesIO(obj))
        return _link(elf, entry)
    except ELFError as exc:
        raise LinkError(f"not a valid ELF object: {exc}") from None


def _link(elf: ELFFile, entry: str) -> bytes:
    if elf["e_machine"] != "EM_BPF" or elf.elfclass != 64 or not elf.little_endian:
        raise LinkError(f"not a 64-bit little-endian BPF object (machine {elf['e_machine']})")
    if elf["e_type"] != "ET_REL":
        raise LinkError(f"expected a relocatable object from clang -c, got {elf['e_type']}")
    sections = list(elf.iter_sections())
    texts = [i for i, s in enumerate(sections) if s.name.startswith(".text") and s["sh_size"] > 0]
    if len(texts) != 1 or sections[texts[0]].name != ".text":
        names = ", ".join(sections[i].name for i in texts) or "none"
        raise LinkError(f"expected exactly one .text section, found {names} (compile without -ffunction-sections)")
    for s in sections:
        if s["sh_size"] and (s.name.startswith((".data", ".bss")) or (s["sh_flags"] & SHF_WRITE)):
            raise LinkError(f"mutable global data ({s.name}) is not allowed: the loader refuses writable sections")
    text_index = texts[0]
    rodata = [i for i, s in enumerate(sections) if s.name.startswith(".rodata") and s["sh_size"] > 0]
    symtab = next((s for s in sections if isinstance(s, SymbolTableSection)), None)
    if symtab is None:
        raise LinkError("the object has no symbol table")
    symbols = list(symtab.iter_symbols())

    out = _Out()
    out.data += bytes(64 + 2 * 56)  # ELF header and program headers, written last
    text = bytearray(sections[text_index].data())
    text_at = out.place(".text", bytes(text), sh_type=SHT_PROGBITS, flags=SHF_ALLOC | SHF_EXECINSTR, align=8)
    # read-only data, merged; each input section's place in the output
    ro_body = bytearray()
    ro_base: dict[int, int] = {}
    for i in rodata:
        s = sections[i]
        align = max(1, s["sh_addralign"])
        while len(ro_body) % align:
            ro_body.append(0)
        ro_base[i] = len(ro_body)
        ro_body += s.data()
    ro_at = 0
    if ro_body:
        while (len(out.data)) % 8:
            out.data.append(0)
        ro_at = len(out.data)

    syscalls: list[str] = []
    text_relocs: list[tuple[int, str]] = []  # (offset in .text, syscall)
    for reloc_section in sections:
        if not isinstance(reloc_section, RelocationSection) or reloc_section["sh_size"] == 0:
            continue
        target = reloc_section["sh_info"]
        if target in ro_base:  # a pointer inside read-only data: its final address, in place
            for r in reloc_section.iter_relocations():
                sym = symbols[r["r_info_sym"]]
                where = sym["st_shndx"]
                if r["r_info_type"] != R_BPF_64_ABS64 or not isinstance(where, int) or where not in ro_base:
                    raise LinkError(
                        f"{sections[target].name}+{r['r_offset']:#x} points at {sym.name or where!r}: "
                        "const data may point only into const data (function pointers are not supported)"
                    )
                at = ro_base[target] + r["r_offset"]
                addend = struct.unpack_from("<q", ro_body, at)[0]
                address = MM_PROGRAM_START + ro_at + ro_base[where] + sym["st_value"] + addend
                struct.pack_into("<Q", ro_body, at, address)
            continue
        if target != text_index:
            continue  # debug info and the like
        for r in reloc_section.iter_relocations():
            offset, kind, sym = r["r_offset"], r["r_info_type"], symbols[r["r_info_sym"]]
            if offset + 8 > len(text) or offset % 8:
                raise LinkError(f"relocation at .text+{offset:#x} is outside the code")
            if kind == R_BPF_64_64:
                if text[offset] != LDDW:
                    raise LinkError(f"R_BPF_64_64 at .text+{offset:#x} is not on an lddw instruction")
                where = sym["st_shndx"]
                if where == text_index:
                    raise LinkError(
                        f"lddw at .text+{offset:#x} loads the address of code: function pointers are not supported"
                    )
                if not isinstance(where, int) or where not in ro_base:
                    raise LinkError(
                        f"lddw at .text+{offset:#x} loads {sym.name or where!r}, which is not read-only data"
                    )
                addend = struct.unpack_from("<i", text, offset + 4)[0]
                address = MM_PROGRAM_START + ro_at + ro_base[where] + sym["st_value"] + addend
                struct.pack_into("<I", text, offset + 4, address & 0xFFFFFFFF)
                struct.pack_into("<I", text, offset + 12, address >> 32)
            elif kind == R_BPF_64_32:
                if text[offset] != CALL_IMM:
                    raise LinkError(f"R_BPF_64_32 at .text+{offset:#x} is not on a call instruction")
                if sym["st_shndx"] == text_index:  # a call clang left to the linker: pc-relative
                    delta = (sym["st_value"] - (offset + 8)) // 8
                    struct.pack_into("<i", text, offset + 4, delta)
                    text[offset + 1] = (text[offset + 1] & 0x0F) | 0x10  # src = 1: a local call
                elif sym["st_shndx"] == "SHN_UNDEF":
                    if sym.name not in SYSCALLS:
                        raise LinkError(f"call to unknown function {sym.name!r}: not defined and not a syscall")
                    struct.pack_into("<i", text, offset + 4, -1)
                    if sym.name not in syscalls:
                        syscalls.append(sym.name)
                    text_relocs.append((offset, sym.name))
                else:
                    raise LinkError(f"call at .text+{offset:#x} to {sym.name!r} outside .text")
            else:
                raise LinkError(f"unsupported relocation type {kind} at .text+{offset:#x} (symbol {sym.name!r})")

    entry_symbol = next((s for s in symbols if s.name == entry and s["st_shndx"] == text_index), None)
    if entry_symbol is None:
        raise LinkError(f"no {entry!r} function in .text")
    out.data[text_at : text_at + len(text)] = text
    if ro_body:
        out.place(".rodata", bytes(ro_body), sh_type=SHT_PROGBITS, flags=SHF_ALLOC, align=8)

    # dynamic symbols: null, the entry point, then each syscall (undefined)
    dynstr = bytearray(b"\0")
    names: dict[str, int] = {}
    for name in [entry, *syscalls]:
        names[name] = len(dynstr)
        dynstr += name.encode() + b"\0"
    dynsym = bytearray(24)
    sym_index: dict[str, int] = {}
    dynsym += struct.pack(
        "<IBBHQQ",
        names[entry],
        (STB_GLOBAL << 4) | STT_FUNC,
        0,
        1,
        text_at + entry_symbol["st_value"],
        entry_symbol["st_size"],
    )
    for name in syscalls:
        sym_index[name] = len(dynsym) // 24
        dynsym += struct.pack("<IBBHQQ", names[name], (STB_GLOBAL << 4) | STT_NOTYPE, 0, 0, 0, 0)
    rel = bytearray()
    for offset, name in text_relocs:
        rel += struct.pack("<QQ", text_at + offset, (sym_index[name] << 32) | R_BPF_64_32)

    # .dynamic's entries point at sections placed after it: reserve, then fill in
    dynamic_size = 16 * 10
    dynsym_index = len(out.sections) + 2  # .dynamic, .dynsym, .dynstr, .rel.dyn (after the null section)
    dynamic_at = out.place(
        ".dynamic",
        bytes(dynamic_size),
        sh_type=SHT_DYNAMIC,
        flags=SHF_ALLOC | SHF_WRITE,
        align=8,
        link=dynsym_index + 1,
        entsize=16,
    )
    dynsym_at = out.place(
        ".dynsym", bytes(dynsym), sh_type=SHT_DYNSYM, flags=SHF_ALLOC, align=8, link=dynsym_index + 1, entsize=24
    )
    dynstr_at = out.place(".dynstr", bytes(dynstr), sh_type=SHT_STRTAB, flags=SHF_ALLOC, align=1)
    rel_at = out.place(".rel.dyn", bytes(rel), sh_type=SHT_REL, flags=SHF_ALLOC, align=8, link=dynsym_index, entsize=16)
    dynamic = b"".join(
        struct.pack("<QQ", tag, value)
        for tag, value in [
            (DT_FLAGS, DF_TEXTREL),
            (DT_REL, rel_at),
            (DT_RELSZ, len(rel)),
            (DT_RELENT, 16),
            (DT_SYMTAB, dynsym_at),
            (DT_SYMENT, 24),
            (DT_STRTAB, dynstr_at),
            (DT_STRSZ, len(dynstr)),
            (DT_TEXTREL, 0),
            (DT_NULL, 0),
        ]
    )
    out.data[dynamic_at : dynamic_at + dynamic_size] = dynamic
    loaded_end = len(out.data)

    shstrtab = bytearray(b"\0")
    name_at: dict[str, int] = {}
    for name in [s[0] for s in out.sections] + [".shstrtab"]:
        name_at[name] = len(shstrtab)
        shstrtab += name.encode() + b"\0"
    shstrtab_at = len(out.data)
    out.data += shstrtab
    while len(out.data) % 8:
        out.data.append(0)
    shoff = len(out.data)
    headers = bytearray(64)  # the null section
    for name, sh_type, flags, offset, size, link_to, align, entsize in out.sections:
        headers += struct.pack(
            "<IIQQQQIIQQ", name_at[name], sh_type, flags, offset, offset, size, link_to, 0, align, entsize
        )
    headers += struct.pack(
        "<IIQQQQIIQQ", name_at[".shstrtab"], SHT_STRTAB, 0, 0, shstrtab_at, len(shstrtab), 0, 0, 1, 0
    )
    out.data += headers
    shnum = len(out.sections) + 2

    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    out.data[0:64] = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        ET_DYN,
        EM_BPF,
        1,
        text_at + entry_symbol["st_value"],
        64,
        shoff,
        0,
        64,
        56,
        2,
        64,
        shnum,
        shnum - 1,
    )
    out.data[64:120] = struct.pack("<IIQQQQQQ", PT_LOAD, PF_R | PF_X, 0, 0, 0, loaded_end, loaded_end, 8)
    out.data[120:176] = struct.pack(
        "<IIQQQQQQ", PT_DYNAMIC, PF_R | PF_W, dynamic_at, dynamic_at, dynamic_at, dynamic_size, dynamic_size, 8
    )
    return bytes(out.data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Links a clang -target bpf object into an SBPFv0 Solana program.")
    parser.add_argument("object", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--entry", default="entrypoint")
    args = parser.parse_args(argv)
    try:
        program = link(args.object.read_bytes(), entry=args.entry)
    except LinkError as exc:
        sys.stderr.write(f"sbpf_link: {args.object}: {exc}\n")
        return 1
    args.output.write_bytes(program)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
