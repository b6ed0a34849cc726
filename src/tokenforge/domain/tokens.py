"""Token launch parameters and their rules (pure code, no I/O).

``validate_launch`` is the single place the rules live; the HTTP layer, the CLI and the
worker all go through it. Every violation raises :class:`ValidationFailed` naming the
field as the API calls it.

Text (``name``, ``description``) may hold any printable character, emoji sequences
included; :func:`hidden_character` says which invisible characters are refused.
URL fields match :data:`URL_PATTERN` (the API's schema states the same pattern) and must
parse as an http(s) URL with a host and a valid port, and no user name or password.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
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

#: Characters no URL may contain: whitespace and C0/C1 controls (other invisible characters
#: are refused by the printable check in :func:`_check_url`).
_URL_CHAR = r"[^\s\x00-\x1f\x7f-\x9f"
#: An http(s) URL: scheme (any case), ``://``, a host name or IPv4 address or bracketed
#: IPv6 address, an optional numeric port, then path, query or fragment; or the empty
#: string (no URL). No userinfo (``user:pass@``): a published link must not carry
#: credentials, nor disguise its host (``https://trusted.example@evil.example/``).
#: Written for ECMA-262, Python and Rust regex alike.
URL_PATTERN = (
    r"^$|^[hH][tT][tT][pP][sS]?://"
    rf"({_URL_CHAR}/?#@\[\]:]+|\[[0-9A-Fa-f:.]+\])"
    r"(:[0-9]*)?"
    rf"([/?#]{_URL_CHAR}]*)?$"
)
_URL_RE = re.compile(URL_PATTERN)
_USERINFO_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")

_ZWNJ, _ZWJ = "\u200c", "\u200d"
_TAG_BASE, _TAG_END = "\U0001f3f4", "\U000e007f"  # 🏴 ... CANCEL TAG (subdivision flags)
_VS16 = "\ufe0f"


def _is_tag(ch: str) -> bool:
    return "\U000e0020" <= ch <= "\U000e007e"


def _joins(left: str, right: str) -> bool:
    """Whether a zero-width (non-)joiner between ``left`` and ``right`` is part of a
    sequence: emoji joined to emoji, or letters of a script that writes with joiners."""
    lcat, rcat = unicodedata.category(left), unicodedata.category(right)
    if rcat == "So" and (lcat in ("So", "Sk") or left == _VS16):
        return True  # 👨‍👩‍👧, 🏳️‍🌈, 👩🏽‍💻
    return lcat[0] in "LM" and rcat[0] in "LM" and not left.isascii() and not right.isascii() and left != _VS16


def hidden_character(text: str, allowed: str = "") -> int | None:
    """The index of the first character ``text`` may not contain, or None.

    Accepted: every printable character (``str.isprintable``: letters, marks, digits,
    symbols, emoji, their skin-tone modifiers, variation selectors and keycaps, the ASCII
    space), the characters in ``allowed``, and two invisible characters inside the
    sequences that need them:

    * U+200D ZERO WIDTH JOINER and U+200C ZERO WIDTH NON-JOINER directly between two
      emoji (the left one may end in a skin tone or U+FE0F), e.g. 👨‍👩‍👧 and 🏳️‍🌈, or
      between two non-ASCII letters or marks (Persian, Indic scripts);
    * tag characters U+E0020–U+E007E after 🏴 and closed by U+E007F CANCEL TAG (the
      flags of England, Scotland, Wales).

    Refused: C0 and C1 controls and DEL (U+0000–U+001F, U+007F–U+009F), every other
    format character — bidirectional overrides and marks (U+202A–U+202E, U+2066–U+2069,
    U+200E, U+200F, U+061C), U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF, the
    soft hyphen, a joiner anywhere else (leading, trailing, doubled, between ASCII
    letters, where it could make two names that look alike differ) — line and paragraph
    separators, spaces other than U+0020, private-use, surrogate and unassigned code
    points.
    """
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == _TAG_BASE:
            j = i + 1
            while j < n and _is_tag(text[j]):
                j += 1
            if j > i + 1 and j < n and text[j] == _TAG_END:
                i = j + 1
                continue
        if ch.isprintable() or ch in allowed:
            i += 1
            continue
        if ch in (_ZWJ, _ZWNJ) and 0 < i < n - 1 and _joins(text[i - 1], text[i + 1]):
            i += 1
            continue
        return i
    return None


def _check_text(field: str, text: str, allowed: str = "") -> None:
    at = hidden_character(text, allowed)
    if at is not None:
        raise ValidationFailed(
            field, f"must not contain control or invisible formatting characters (U+{ord(text[at]):04X} at {at})"
        )


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
    #: the curve's decaying launch fee (EVM): start fee, window, window in blocks (0, 0 = none)
    launch_fee_bps: int = 0
    launch_fee_window: int = 0
    launch_fee_in_blocks: bool = False

    @property
    def supply_base_units(self) -> int:
        # typeshed types ``int ** int`` as Any (a negative exponent gives a float); decimals >= 0
        scale: int = 10**self.decimals
        return self.supply * scale


def _check_url(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > URL_MAX_CHARS:
        raise ValidationFailed(field, f"must be at most {URL_MAX_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValidationFailed(field, "must not contain whitespace or control characters")
    if _USERINFO_RE.match(value):
        raise ValidationFailed(field, "must not carry a user name or password (user:pass@)")
    if not _URL_RE.fullmatch(value):
        raise ValidationFailed(field, "must be an http(s) URL with a host")
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
    return normalise_address(spec.family, creator)


def normalise_address(family: Family, address: str, field: str = "creator") -> str:
    """The canonical form of a wallet address of ``family`` (EIP-55 hex, or base58);
    :class:`ValidationFailed` naming ``field`` otherwise."""
    if family is Family.EVM:
        if not isinstance(address, str) or not address.startswith("0x") or not is_hex_address(address):
            raise ValidationFailed(field, "must be a 0x-prefixed 20-byte hex address")
        body = address[2:]
        mixed_case = body != body.lower() and body != body.upper()
        if mixed_case and not is_checksum_address(address):
            raise ValidationFailed(field, "has an invalid EIP-55 checksum")
        checksummed = to_checksum_address(address)
        if int(checksummed, 16) == 0:
            raise ValidationFailed(field, "must not be the zero address")
        return checksummed
    try:
        key = Pubkey.from_string(address)
    except (ValueError, TypeError):
        raise ValidationFailed(field, "must be a base58-encoded 32-byte public key") from None
    if str(key) != address:
        raise ValidationFailed(field, "must be a base58-encoded 32-byte public key")
    if key == Pubkey.default():
        raise ValidationFailed(field, "must not be the all-zero key")
    return address


def parse_supply(value: int | str) -> int:
    """Accept an integer or a string of decimal digits (JSON loses precision past 2**53)."""
    if isinstance(value, bool):
        raise ValidationFailed("supply", "must be a positive integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 80:
        return int(value)
    raise ValidationFailed("supply", "must be a positive integer or a string of digits")


LAUNCH_FEE_UNITS = ("seconds", "blocks")


def parse_launch_fee(family: Family, launch_fee: Mapping[str, object] | None) -> tuple[int, int, bool]:
    """``(start_bps, window, in_blocks)`` of a launch fee ``{start_bps, window, unit}`` (None:
    none). Only its shape is checked here; the chain's bounds are the platform's
    (:meth:`tokenforge.domain.curve.PlatformTerms.check_launch_fee`). Solana curves have no
    launch fee yet: there it is ignored (0, 0)."""
    if launch_fee is None or family is not Family.EVM:
        return 0, 0, False
    start, window = _whole(launch_fee, "start_bps"), _whole(launch_fee, "window")
    unit = launch_fee.get("unit", "seconds")
    if unit not in LAUNCH_FEE_UNITS:
        raise ValidationFailed("launch_fee.unit", "must be seconds or blocks")
    return start, window, unit == "blocks"


def _whole(launch_fee: Mapping[str, object], name: str) -> int:
    value = launch_fee.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed(f"launch_fee.{name}", "must be an integer >= 0")
    return value


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
    launch_fee: Mapping[str, object] | None = None,
) -> LaunchParams:
    spec = CHAINS.get(chain)
    if spec is None:
        raise ValidationFailed("chain", f"must be one of {', '.join(sorted(CHAINS))}")
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX_CHARS:
        raise ValidationFailed("name", f"must be 1-{NAME_MAX_CHARS} characters")
    _check_text("name", name)
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
        kind = "pool reserves (uint112 / 1.073)" if spec.family is Family.EVM else "curve reserves (u64 / 1.073)"
        raise ValidationFailed(
            "supply", f"supply × 10^decimals must fit the chain's {kind} ({spec.max_supply_base_units})"
        )
    description = description or ""
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_CHARS:
        raise ValidationFailed("description", f"must be at most {DESCRIPTION_MAX_CHARS} characters")
    _check_text("description", description, allowed="\n\r\t")
    given = (image_url, website, twitter, telegram, metadata_uri)
    urls = {f: _check_url(f, v) for f, v in zip(URL_FIELDS, given, strict=True)}
    fee_bps, fee_window, fee_in_blocks = parse_launch_fee(spec.family, launch_fee)
    return LaunchParams(
        chain=chain,
        name=name,
        symbol=symbol,
        decimals=decimals,
        supply=supply_int,
        creator=normalise_creator(spec, creator),
        description=description,
        **urls,
        launch_fee_bps=fee_bps,
        launch_fee_window=fee_window,
        launch_fee_in_blocks=fee_in_blocks,
    )
