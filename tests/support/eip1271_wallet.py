"""A minimal EIP-1271 contract wallet for tests, assembled from EVM opcodes.

``isValidSignature(bytes32 hash, bytes signature)`` answers ``0x1626ba7e`` when
``signature`` is 65 bytes ``r ‖ s ‖ v`` and ``ecrecover(hash, v, r, s)`` is the owner
written into the code; ``0xffffffff`` for anything else (another selector, another length,
another signer). :func:`runtime_code` is what an account holds (set it with py-evm's
``state.set_code``); no compiler is needed.
"""

from __future__ import annotations

OPS = {
    "ADD": 0x01,
    "EQ": 0x14,
    "ISZERO": 0x15,
    "SHL": 0x1B,
    "SHR": 0x1C,
    "CALLDATALOAD": 0x35,
    "MLOAD": 0x51,
    "MSTORE": 0x52,
    "JUMPI": 0x57,
    "GAS": 0x5A,
    "JUMPDEST": 0x5B,
    "DUP1": 0x80,
    "RETURN": 0xF3,
    "STATICCALL": 0xFA,
}


def _assemble(program: list) -> bytes:
    """``program``: opcode names, ``("PUSH", bytes)``, ``("LABEL", name)`` and
    ``("JUMP_TO", name)`` (a PUSH2 of the label's offset)."""
    offsets: dict[str, int] = {}
    size = 0
    for item in program:  # first pass: label offsets
        if isinstance(item, str):
            size += 1
        elif item[0] == "PUSH":
            size += 1 + len(item[1])
        elif item[0] == "JUMP_TO":
            size += 3
        else:
            offsets[item[1]] = size
            size += 1  # the JUMPDEST
    code = bytearray()
    for item in program:
        if isinstance(item, str):
            code.append(OPS[item])
        elif item[0] == "PUSH":
            code.append(0x5F + len(item[1]))
            code += item[1]
        elif item[0] == "JUMP_TO":
            code.append(0x61)
            code += offsets[item[1]].to_bytes(2, "big")
        else:
            code.append(OPS["JUMPDEST"])
    return bytes(code)


def _b(value: int, size: int = 1) -> tuple[str, bytes]:
    return ("PUSH", value.to_bytes(size, "big"))


MAGIC = 0x1626BA7E


def runtime_code(owner: str) -> bytes:
    """The wallet's code for the EOA ``owner`` (0x-hex)."""
    answer = [_b(0x20), _b(0), "RETURN"]
    program = [
        # selector
        _b(0), "CALLDATALOAD", _b(0xE0), "SHR", _b(MAGIC, 4), "EQ", "ISZERO", ("JUMP_TO", "fail"), "JUMPI",
        # p = 4 + offset of the bytes argument: its length word; must be 65
        _b(0x24), "CALLDATALOAD", _b(0x04), "ADD",
        "DUP1", "CALLDATALOAD", _b(65), "EQ", "ISZERO", ("JUMP_TO", "fail"), "JUMPI",
        # ecrecover input at memory 0: hash, v, r, s
        _b(0x04), "CALLDATALOAD", _b(0x00), "MSTORE",
        "DUP1", _b(0x20), "ADD", "CALLDATALOAD", _b(0x40), "MSTORE",
        "DUP1", _b(0x40), "ADD", "CALLDATALOAD", _b(0x60), "MSTORE",
        _b(0x60), "ADD", "CALLDATALOAD", _b(0xF8), "SHR", _b(0x20), "MSTORE",
        # staticcall(gas, 1, 0, 128, 128, 32): the signer lands at memory 128 (zero if none)
        _b(0x20), _b(0x80), _b(0x80), _b(0x00), _b(0x01), "GAS", "STATICCALL",
        "ISZERO", ("JUMP_TO", "fail"), "JUMPI",
        _b(0x80), "MLOAD", ("PUSH", bytes.fromhex(owner.removeprefix("0x"))), "EQ", "ISZERO",
        ("JUMP_TO", "fail"), "JUMPI",
        _b(MAGIC, 4), _b(0xE0), "SHL", _b(0), "MSTORE", *answer,
        ("LABEL", "fail"),
        _b(0xFFFFFFFF, 4), _b(0xE0), "SHL", _b(0), "MSTORE", *answer,
    ]  # fmt: skip
    return _assemble(program)
