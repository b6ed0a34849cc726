"""Pure encoding rules for EVM launches: clone args, salt, addresses, calldata.

No I/O here. Everything is computed locally so a launch's token address is known before
anything is sent, and equals ``TokenForgeFactory.predictAddress`` on chain.

* **args** (kept in the clone's code, read by the token with ``Clones.fetchCloneArgs``)::

      abi.encodePacked(uint8 decimals, uint8 nameLen, bytes name, bytes symbol)

  ``name`` is UTF-8, 1–32 characters (at most 128 bytes); ``symbol`` is 1–10 of ``A–Z0–9``.
* **salt** = ``keccak256(bytes.fromhex(job_id))`` — the 16 raw bytes of the job id (a
  32-char lowercase hex UUID), not its ASCII text.
* **address salt** = ``keccak256(abi.encode(salt, creator, supply, launchFeeBps,
  launchWindow, windowInBlocks))``: the launch's terms are part of its address, so a copy
  of the transaction can only ever create that same launch.
* **token address** = CREATE2(factory, address salt, keccak256(init code)), where the init
  code is OpenZeppelin ``Clones`` immutable-args clone code for (implementation, args).
* **curve address** = CREATE(token, nonce 1): the token creates its curve first thing.
* **signed transactions** are decoded (:func:`decode_signed_tx`) to replace a stuck one
  with the same nonce and higher fees.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import rlp
from eth_abi import encode as abi_encode
from eth_utils import big_endian_to_int, keccak, to_canonical_address, to_checksum_address

from tokenforge.domain.chains import EVM_MAX_SUPPLY_BASE_UNITS
from tokenforge.domain.curve import CurveParams
from tokenforge.domain.tokens import NAME_MAX_CHARS, SYMBOL_RE
from tokenforge.errors import ValidationFailed

DECIMALS_MAX = 18
_JOB_ID_RE = re.compile(r"[0-9a-f]{32}")

# OpenZeppelin Clones._cloneCodeWithImmutableArgs (v5.2+), around the 20-byte implementation.
_CLONE_PREFIX = bytes.fromhex("3d81600a3d39f3363d3d373d3d3d363d73")
_CLONE_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
CLONE_CODE_LEN = 0x2D  # runtime proxy length before the args


def encode_token_args(name: str, symbol: str, decimals: int) -> bytes:
    """The immutable args of one token clone. Raises ValidationFailed on bad input."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_CHARS or name.strip() != name:
        raise ValidationFailed("name", f"must be 1-{NAME_MAX_CHARS} characters without surrounding spaces")
    name_bytes = name.encode("utf-8")
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise ValidationFailed("symbol", "must be 1-10 characters of A-Z and 0-9")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= DECIMALS_MAX:
        raise ValidationFailed("decimals", f"must be an integer from 0 to {DECIMALS_MAX}")
    return bytes([decimals, len(name_bytes)]) + name_bytes + symbol.encode("ascii")


def decode_token_args(args: bytes) -> tuple[str, str, int]:
    """Inverse of :func:`encode_token_args`: ``(name, symbol, decimals)``."""
    name_len = args[1]
    return args[2 : 2 + name_len].decode("utf-8"), args[2 + name_len :].decode("ascii"), args[0]


def launch_salt(job_id: str) -> bytes:
    """``keccak256`` of the job id's 16 raw bytes."""
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise ValidationFailed("job_id", "must be 32 lowercase hex characters")
    return keccak(bytes.fromhex(job_id))


def clone_init_code(implementation: str, args: bytes) -> bytes:
    """The init code OpenZeppelin deploys for a clone with immutable args."""
    return (
        b"\x61"
        + (len(args) + CLONE_CODE_LEN).to_bytes(2, "big")
        + _CLONE_PREFIX
        + to_canonical_address(implementation)
        + _CLONE_SUFFIX
        + args
    )


def clone_runtime_code(implementation: str, args: bytes) -> bytes:
    """The code a deployed clone has (what ``eth_getCode`` returns)."""
    return b"\x36\x3d\x3d\x37\x3d\x3d\x3d\x36\x3d\x73" + to_canonical_address(implementation) + _CLONE_SUFFIX + args


def create2_address(deployer: str, salt: bytes, init_code: bytes) -> str:
    digest = keccak(b"\xff" + to_canonical_address(deployer) + salt + keccak(init_code))
    return to_checksum_address(digest[12:])


def create_address(deployer: str, nonce: int) -> str:
    """The address a plain CREATE from ``deployer`` at ``nonce`` deploys to."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(deployer), nonce]))[12:])


@dataclass(frozen=True, slots=True)
class LaunchTerms:
    """What a launch binds into its token's address besides the job and the args."""

    creator: str
    supply_base_units: int
    launch_fee_bps: int = 0
    launch_window: int = 0
    window_in_blocks: bool = False


def address_salt(salt: bytes, terms: LaunchTerms) -> bytes:
    """The CREATE2 salt of a launch: its job salt bound to its terms (the factory's
    ``_addressSalt``). Raises ValidationFailed for terms no launch can have."""
    try:
        creator = to_canonical_address(terms.creator)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("creator", "must be a 0x-prefixed 20-byte address") from exc
    if not 0 <= terms.supply_base_units < 2**256:
        raise ValidationFailed("supply_base_units", "must be a non-negative integer below 2**256")
    if not 0 <= terms.launch_fee_bps < 2**16 or not 0 <= terms.launch_window < 2**32:
        raise ValidationFailed("launch_fee", "start_bps must fit uint16 and window uint32")
    return keccak(
        abi_encode(
            ["bytes32", "address", "uint256", "uint16", "uint32", "bool"],
            [
                salt,
                creator,
                terms.supply_base_units,
                terms.launch_fee_bps,
                terms.launch_window,
                terms.window_in_blocks,
            ],
        )
    )


def predict_token_address(factory: str, implementation: str, job_id: str, args: bytes, terms: LaunchTerms) -> str:
    """The checksummed address ``createToken(launch_salt(job_id), args, terms…)`` deploys to."""
    salt = address_salt(launch_salt(job_id), terms)
    return create2_address(factory, salt, clone_init_code(implementation, args))


@cache
def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def curve_address(token: str) -> str:
    """The checksummed address of ``token``'s bonding curve (the token's first CREATE)."""
    return create_address(token, 1)


CREATE_TOKEN_SIGNATURE = "createToken(bytes32,bytes,address,uint256,uint16,uint32,bool)"


def encode_create_token(
    salt: bytes,
    args: bytes,
    creator: str,
    supply_base_units: int,
    *,
    launch_fee_bps: int = 0,
    launch_window: int = 0,
    window_in_blocks: bool = False,
) -> bytes:
    """Calldata for ``createToken(bytes32,bytes,address,uint256,uint16,uint32,bool)``."""
    if (
        isinstance(supply_base_units, bool)
        or not isinstance(supply_base_units, int)
        or not 0 < supply_base_units <= EVM_MAX_SUPPLY_BASE_UNITS
    ):
        raise ValidationFailed(
            "supply_base_units",
            f"must be a positive integer of at most {EVM_MAX_SUPPLY_BASE_UNITS} (the factory's limit)",
        )
    try:
        creator_bytes = to_canonical_address(creator)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("creator", "must be a 0x-prefixed 20-byte address") from exc
    if creator_bytes == b"\x00" * 20:
        raise ValidationFailed("creator", "must not be the zero address")
    if not 0 <= launch_fee_bps < 2**16 or not 0 <= launch_window < 2**32:
        raise ValidationFailed("launch_fee", "start_bps must fit uint16 and window uint32")
    return selector(CREATE_TOKEN_SIGNATURE) + abi_encode(
        ["bytes32", "bytes", "address", "uint256", "uint16", "uint32", "bool"],
        [salt, args, creator_bytes, supply_base_units, launch_fee_bps, launch_window, window_in_blocks],
    )


#: ``TokenForgeCurve.params()``'s return tuple (token, creator, supply, virtualNative0,
#: platformFeeBps, creatorFeeBps, launchFeeBps, launchWindow, windowInBlocks, migrationFee,
#: launchedAt).
CURVE_PARAMS_TYPE = "(address,address,uint256,uint256,uint256,uint256,uint256,uint256,bool,uint256,uint256)"


def curve_params(p: Sequence[Any]) -> CurveParams:
    """The curve math's terms from the values ``TokenForgeCurve.params()`` returns."""
    return CurveParams(
        supply=p[2],
        virtual_native0=p[3],
        platform_fee_bps=p[4],
        creator_fee_bps=p[5],
        launch_fee_bps=p[6],
        launch_window=p[7],
        window_in_blocks=p[8],
        migration_fee=p[9],
        launched_at=p[10],
    )


TOKEN_CREATED_SIGNATURE = (
    "TokenCreated(address,address,bytes32,address,uint256,uint256,uint256,uint256,uint256,uint256,bool,uint256,uint256)"
)
TOKEN_CREATED_TOPIC = keccak(text=TOKEN_CREATED_SIGNATURE)
#: ``TokenCreated``'s data after the three indexed topics, in order.
TOKEN_CREATED_DATA = (
    "address",
    "uint256",
    "uint256",
    "uint256",
    "uint256",
    "uint256",
    "uint256",
    "bool",
    "uint256",
    "uint256",
)
#: TokenForgeFactory.Config, in field order.
FACTORY_CONFIG_TYPE = "(address,uint16,uint16,uint16,uint32,uint16,uint112,uint112)"


@dataclass(frozen=True, slots=True)
class DecodedTx:
    """The fields of a signed transaction TokenForge needs to replace it (same nonce)."""

    nonce: int
    gas: int
    to: str | None
    value: int
    data: bytes
    legacy: bool
    max_fee_per_gas_wei: int  # legacy: gasPrice
    max_priority_fee_per_gas_wei: int  # legacy: gasPrice


def decode_signed_tx(raw: bytes) -> DecodedTx:
    """Decodes a signed legacy or EIP-1559 (type 2) transaction. ValueError otherwise."""
    if raw and raw[0] == 2:
        fields = rlp.decode(raw[1:])
        _chain, nonce, tip, max_fee, gas, to, value, data = fields[:8]
        return DecodedTx(
            big_endian_to_int(nonce),
            big_endian_to_int(gas),
            _address_or_none(to),
            big_endian_to_int(value),
            bytes(data),
            False,
            big_endian_to_int(max_fee),
            big_endian_to_int(tip),
        )
    if raw and raw[0] >= 0xC0:
        nonce, gas_price, gas, to, value, data = rlp.decode(raw)[:6]
        price = big_endian_to_int(gas_price)
        return DecodedTx(
            big_endian_to_int(nonce),
            big_endian_to_int(gas),
            _address_or_none(to),
            big_endian_to_int(value),
            bytes(data),
            True,
            price,
            price,
        )
    raise ValueError("not a legacy or EIP-1559 transaction")


def _address_or_none(value: bytes) -> str | None:
    return to_checksum_address(value) if value else None
