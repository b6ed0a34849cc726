"""Sign-in messages: EIP-4361 (Sign-In with Ethereum) and Sign-In with Solana, parsed and
formatted by hand against the EIP-4361 ABNF.

The text a wallet signs::

    [scheme "://"] domain " wants you to sign in with your Ethereum account:" LF
    address LF
    LF
    [statement LF]
    LF
    "URI: " uri LF
    "Version: 1" LF
    "Chain ID: " chain-id LF
    "Nonce: " nonce LF
    "Issued At: " date-time
    [LF "Expiration Time: " date-time]
    [LF "Not Before: " date-time]
    [LF "Request ID: " *pchar]
    [LF "Resources:" *(LF "- " uri)]

Sign-In with Solana is the same layout with ``Solana account:``, a base58 public key as the
address and a network name as the chain id (``mainnet``, ``testnet``, ``devnet``,
``localnet``, optionally prefixed ``solana:``). Lines end with LF only; there is no final LF.

Where the grammar leaves room, this module decides:

* without a statement, both the ABNF form (three LFs after the address) and the form the
  Solana wallet standard writes (two LFs) are read; :func:`format_message` writes the ABNF
  form. An empty statement is written by leaving it out.
* an EVM address must carry its EIP-55 checksum (a mixed-case address).
* an EVM chain id has at most 78 digits (it is a uint256).
* date-times are RFC 3339 with a time zone; they are kept as written (the signed text)
  and read with :func:`timestamp`.

:func:`parse_message` raises :class:`MessageError` naming the field (``"Nonce"``,
``"Issued At"``, ...) for anything that does not follow the grammar, so
``parse_message(format_message(m)) == m`` for every well-formed ``m``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from eth_utils import is_checksum_address
from solders.pubkey import Pubkey

from tokenforge.domain.chains import Family

HEADERS = {
    Family.EVM: " wants you to sign in with your Ethereum account:",
    Family.SOLANA: " wants you to sign in with your Solana account:",
}
VERSION = "1"
NONCE_MIN_CHARS = 8

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
#: authority = [userinfo "@"] host [":" port] (RFC 3986 3.2); host is an IP literal or a
#: non-empty reg-name / IPv4 address.
_AUTHORITY = re.compile(
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"
    rf"(?:\[[0-9A-Fa-f:.]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})+)"
    r"(?::[0-9]*)?"
)
#: An absolute URI: a scheme, ":" and RFC 3986 characters (reserved, unreserved, %XX).
_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:(?:[{_UNRESERVED}:/?#\[\]@{_SUB_DELIMS}]|{_PCT})*")
#: statement = *( reserved / unreserved / " " ), at least one character here.
_STATEMENT = re.compile(rf"[{_UNRESERVED}:/?#\[\]@{_SUB_DELIMS} ]+")
_REQUEST_ID = re.compile(rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})*")
_NONCE = re.compile(rf"[A-Za-z0-9]{{{NONCE_MIN_CHARS},}}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
#: 1*DIGIT, bounded by uint256 (78 digits): an EIP-155 chain id is a uint256.
_EVM_CHAIN_ID = re.compile(r"[0-9]{1,78}")
_SOLANA_CHAIN_ID = re.compile(r"(?:solana:)?(?:mainnet|testnet|devnet|localnet)")
_DATE_TIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class MessageError(ValueError):
    """A sign-in message that does not follow the grammar; ``field`` names the part
    (``"message"`` for the layout itself)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignInMessage:
    """One sign-in message, its parts as written. ``resources`` is None without a
    ``Resources:`` line and ``()`` for one with no entries."""

    family: Family
    domain: str
    address: str
    uri: str
    chain_id: str
    nonce: str
    issued_at: str
    statement: str | None = None
    version: str = VERSION
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None
    scheme: str | None = None


def timestamp(value: str, field: str = "Issued At") -> datetime:
    """An RFC 3339 date-time (with its offset) as an aware datetime; :class:`MessageError`
    naming ``field`` otherwise. Fractions past microseconds are cut."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        raise MessageError(field, "must be an RFC 3339 date-time with a time zone, e.g. 2025-01-31T12:00:00Z")
    date, time, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{time}{(fraction or '')[:7]}{offset}")
    except ValueError:
        raise MessageError(field, "is not a valid date and time") from None


def _check(pattern: re.Pattern[str], value: str, field: str, reason: str) -> str:
    if pattern.fullmatch(value) is None:
        raise MessageError(field, reason)
    return value


def _check_address(family: Family, address: str) -> str:
    if family is Family.EVM:
        _check(_EVM_ADDRESS, address, "address", "must be 0x followed by 40 hex digits")
        if not is_checksum_address(address):
            raise MessageError("address", "must carry its EIP-55 checksum (mixed case)")
        return address
    try:
        key = Pubkey.from_string(address)
    except (ValueError, TypeError):
        raise MessageError("address", "must be a base58-encoded 32-byte Solana public key") from None
    if str(key) != address:
        raise MessageError("address", "must be a base58-encoded 32-byte Solana public key")
    return address


def _check_chain_id(family: Family, chain_id: str) -> str:
    if family is Family.EVM:
        return _check(_EVM_CHAIN_ID, chain_id, "Chain ID", "must be a decimal EVM chain id")
    return _check(
        _SOLANA_CHAIN_ID, chain_id, "Chain ID", "must be mainnet, testnet, devnet or localnet (optionally solana:…)"
    )


def _header(line: str) -> tuple[Family, str | None, str]:
    family = next((f for f, suffix in HEADERS.items() if line.endswith(suffix)), None)
    if family is None:
        raise MessageError(
            "message", "the first line must be '<domain> wants you to sign in with your Ethereum|Solana account:'"
        )
    origin = line[: -len(HEADERS[family])]
    scheme: str | None = None
    if "://" in origin:
        scheme, origin = origin.split("://", 1)
        _check(_SCHEME, scheme, "scheme", "must be a URI scheme such as https")
    _check(_AUTHORITY, origin, "domain", "must be an RFC 3986 authority: host[:port]")
    return family, scheme, origin


class _Lines:
    """The message's lines with a cursor; each ``take`` names the field it expects."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.at = 0

    def peek(self, ahead: int = 0) -> str | None:
        index = self.at + ahead
        return self.lines[index] if index < len(self.lines) else None

    def done(self) -> bool:
        return self.at >= len(self.lines)

    def blank(self, after: str) -> None:
        if self.peek() != "":
            raise MessageError("message", f"expected an empty line after the {after}")
        self.at += 1

    def field(self, label: str) -> str:
        line = self.peek()
        prefix = f"{label}: "
        if line is None or not line.startswith(prefix):
            raise MessageError(label, f"missing: expected a line '{prefix}…' here")
        self.at += 1
        return line[len(prefix) :]

    def optional(self, label: str) -> str | None:
        line = self.peek()
        return self.field(label) if line is not None and line.startswith(f"{label}: ") else None


def parse_message(text: str) -> SignInMessage:
    """The parts of a sign-in message; :class:`MessageError` naming the field otherwise."""
    if not isinstance(text, str) or not text:
        raise MessageError("message", "is empty")
    if "\r" in text:
        raise MessageError("message", "lines must end with LF only, not CR LF")
    lines = _Lines(text)
    family, scheme, domain = _header(lines.lines[0])
    lines.at = 1
    address = lines.peek()
    if address is None:
        raise MessageError("address", "missing: expected the address on the second line")
    address = _check_address(family, address)
    lines.at += 1
    lines.blank("address")
    statement: str | None = None
    if lines.peek() == "":  # ABNF form without a statement
        lines.at += 1
    elif lines.peek(1) == "":
        statement = _check(
            _STATEMENT, lines.peek() or "", "statement", "may hold only RFC 3986 reserved or unreserved characters"
        )
        lines.at += 1
        lines.blank("statement")
    uri = _check(_URI, lines.field("URI"), "URI", "must be an absolute RFC 3986 URI")
    version = lines.field("Version")
    if version != VERSION:
        raise MessageError("Version", "must be 1")
    chain_id = _check_chain_id(family, lines.field("Chain ID"))
    nonce = _check(_NONCE, lines.field("Nonce"), "Nonce", f"must be at least {NONCE_MIN_CHARS} letters or digits")
    issued_at = lines.field("Issued At")
    timestamp(issued_at, "Issued At")
    expiration_time = lines.optional("Expiration Time")
    if expiration_time is not None:
        timestamp(expiration_time, "Expiration Time")
    not_before = lines.optional("Not Before")
    if not_before is not None:
        timestamp(not_before, "Not Before")
    request_id = lines.optional("Request ID")
    if request_id is not None:
        _check(_REQUEST_ID, request_id, "Request ID", "may hold only RFC 3986 path characters")
    resources: tuple[str, ...] | None = None
    if lines.peek() == "Resources:":
        lines.at += 1
        found = []
        while (line := lines.peek()) is not None and line.startswith("- "):
            found.append(_check(_URI, line[2:], "Resources", "each entry must be '- ' and an absolute RFC 3986 URI"))
            lines.at += 1
        resources = tuple(found)
    if not lines.done():
        line = lines.peek() or ""
        label = line.split(":", 1)[0] if ":" in line else "message"
        raise MessageError(label if label in _KNOWN_LABELS else "message", f"unexpected line {line[:80]!r}")
    return SignInMessage(
        family=family,
        domain=domain,
        address=address,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        statement=statement,
        version=version,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=resources,
        scheme=scheme,
    )


_KNOWN_LABELS = frozenset(
    {"URI", "Version", "Chain ID", "Nonce", "Issued At", "Expiration Time", "Not Before", "Request ID", "Resources"}
)


def format_message(message: SignInMessage) -> str:
    """The text to sign for ``message`` (the ABNF layout above). The parts are not checked
    here: :func:`parse_message` of the result checks them."""
    origin = f"{message.scheme}://{message.domain}" if message.scheme else message.domain
    lines = [origin + HEADERS[message.family], message.address, ""]
    if message.statement:
        lines.append(message.statement)
    lines += [
        "",
        f"URI: {message.uri}",
        f"Version: {message.version}",
        f"Chain ID: {message.chain_id}",
        f"Nonce: {message.nonce}",
        f"Issued At: {message.issued_at}",
    ]
    if message.expiration_time is not None:
        lines.append(f"Expiration Time: {message.expiration_time}")
    if message.not_before is not None:
        lines.append(f"Not Before: {message.not_before}")
    if message.request_id is not None:
        lines.append(f"Request ID: {message.request_id}")
    if message.resources is not None:
        lines.append("Resources:")
        lines += [f"- {uri}" for uri in message.resources]
    return "\n".join(lines)
