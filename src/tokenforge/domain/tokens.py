"""Token launch parameters and their rules (pure code, no I/O).

``validate_launch`` is the single place the rules live; the HTTP layer, the CLI and the
worker all go through it. Every violation raises :class:`ValidationFailed` naming the
field as the API calls it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from solders.pubkey import Pubkey

from tokenforge.domain.chains import CHAINS, ChainSpec, Family
from tokenforge.errors import ValidationFailed

NAME_MAX_CHARS = 32
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,10}$")
DESCRIPTION_MAX_CHARS = 1000
URL_MAX_CHARS = 200
URL_FIELDS = ("image_url", "website", "twitter", "telegram", "metadata_uri")


@dataclass(frozen=True, slots=True)
class LaunchParams:
    """A validated launch. ``supply`` is whole tokens; ``supply_base_units`` is scaled."""

    chain: str
    name: str
    symbol: str
    decimals: int
    supply: int
    creator: str  # normalised: EIP-55 checksummed hex, or base58 pubkey
    description: str = ""
    image_url: str | None = None
    website: str | None = None
    twitter: str | None = None
    telegram: str | None = None
    metadata_uri: str | None = None

    @property
    def supply_base_units(self) -> int:
        return self.supply * 10**self.decimals


def _check_url(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > URL_MAX_CHARS:
        raise ValidationFailed(field, f"must be at most {URL_MAX_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValidationFailed(field, "must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValidationFailed(field, "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(field, "must be an http(s) URL with a host")
    return value


def normalise_creator(spec: ChainSpec, creator: str) -> str:
    """Return the canonical form of ``creator`` for ``spec``'s family or raise."""
    if spec.family is Family.EVM:
        if not isinstance(creator, str) or not creator.startswith("0x") or not is_hex_address(creator):
            raise ValidationFailed("creator", "must be a 0x-prefixed 20-byte hex address")
        body = creator[2:]
        mixed_case = body != body.lower() and body != body.upper()
        if mixed_case and not is_checksum_address(creator):
            raise ValidationFailed("creator", "has an invalid EIP-55 checksum")
        address = to_checksum_address(creator)
        if int(address, 16) == 0:
            raise ValidationFailed("creator", "must not be the zero address")
        return address
    try:
        key = Pubkey.from_string(creator)
    except (ValueError, TypeError):
        raise ValidationFailed("creator", "must be a base58-encoded 32-byte public key") from None
    if str(key) != creator:
        raise ValidationFailed("creator", "must be a base58-encoded 32-byte public key")
    if key == Pubkey.default():
        raise ValidationFailed("creator", "must not be the all-zero key")
    return creator


def parse_supply(value: int | str) -> int:
    """Accept an integer or a string of decimal digits (JSON loses precision past 2**53)."""
    if isinstance(value, bool):
        raise ValidationFailed("supply", "must be a positive integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 80:
        return int(value)
    raise ValidationFailed("supply", "must be a positive integer or a string of digits")


def validate_launch(
    *,
    chain: str,
    name: str,
    symbol: str,
    decimals: int | None,
    supply: int | str,
    creator: str,
    description: str | None = None,
    image_url: str | None = None,
    website: str | None = None,
    twitter: str | None = None,
    telegram: str | None = None,
    metadata_uri: str | None = None,
) -> LaunchParams:
    spec = CHAINS.get(chain)
    if spec is None:
        raise ValidationFailed("chain", f"must be one of {', '.join(sorted(CHAINS))}")
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_CHARS:
        raise ValidationFailed("name", f"must be 1-{NAME_MAX_CHARS} characters")
    if any(not ch.isprintable() for ch in name):
        raise ValidationFailed("name", "must not contain control characters")
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise ValidationFailed("symbol", "must be 1-10 characters of A-Z and 0-9")
    if decimals is None:
        decimals = spec.max_decimals
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= spec.max_decimals:
        raise ValidationFailed("decimals", f"must be an integer from 0 to {spec.max_decimals} on {chain}")
    supply_int = parse_supply(supply)
    if supply_int <= 0:
        raise ValidationFailed("supply", "must be greater than 0")
    if supply_int * 10**decimals > spec.max_supply_base_units:
        kind = "uint256" if spec.family is Family.EVM else "u64"
        raise ValidationFailed(
            "supply", f"supply × 10^decimals must fit the chain's {kind} ({spec.max_supply_base_units})"
        )
    description = description or ""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_CHARS:
        raise ValidationFailed("description", f"must be at most {DESCRIPTION_MAX_CHARS} characters")
    if any(not ch.isprintable() and ch not in "\n\r\t" for ch in description):
        raise ValidationFailed("description", "must not contain control characters")
    urls = {f: _check_url(f, v) for f, v in zip(URL_FIELDS, (image_url, website, twitter, telegram, metadata_uri))}
    return LaunchParams(
        chain=chain,
        name=name,
        symbol=symbol,
        decimals=decimals,
        supply=supply_int,
        creator=normalise_creator(spec, creator),
        description=description,
        **urls,
    )
