"""EIP-4361 / Sign-In with Solana messages: the parser follows the ABNF, names the field of
anything malformed, and reads back exactly what the formatter writes."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair

from tokenforge.auth.messages import MessageError, SignInMessage, format_message, parse_message, timestamp
from tokenforge.domain.chains import Family

EVM_ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
SOL_ADDRESS = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"

FULL = """https://example.com:8443 wants you to sign in with your Ethereum account:
0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed

Sign in to TokenForge: launch tokens.

URI: https://example.com:8443/login?x=1
Version: 1
Chain ID: 1
Nonce: 32891756abcdef
Issued At: 2021-09-30T16:25:24.000Z
Expiration Time: 2021-10-30T16:25:24Z
Not Before: 2021-09-30T16:25:24+02:00
Request ID: req-1:a@b
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""


def _replace_line(text: str, prefix: str, line: str | None) -> str:
    """``text`` with its line starting ``prefix`` replaced by ``line`` (removed if None)."""
    out = []
    for current in text.split("\n"):
        if current.startswith(prefix):
            if line is not None:
                out.append(line)
        else:
            out.append(current)
    return "\n".join(out)


def test_a_full_message_parses_into_every_field():
    m = parse_message(FULL)
    assert m == SignInMessage(
        family=Family.EVM,
        scheme="https",
        domain="example.com:8443",
        address=EVM_ADDRESS,
        statement="Sign in to TokenForge: launch tokens.",
        uri="https://example.com:8443/login?x=1",
        version="1",
        chain_id="1",
        nonce="32891756abcdef",
        issued_at="2021-09-30T16:25:24.000Z",
        expiration_time="2021-10-30T16:25:24Z",
        not_before="2021-09-30T16:25:24+02:00",
        request_id="req-1:a@b",
        resources=(
            "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
            "https://example.com/my-web2-claim.json",
        ),
    )
    assert format_message(m) == FULL


def test_minimal_message_without_statement_round_trips_in_the_abnf_form():
    m = SignInMessage(
        family=Family.EVM,
        domain="localhost:8000",
        address=EVM_ADDRESS,
        uri="http://localhost:8000/",
        chain_id="1337",
        nonce="abcdefgh",
        issued_at="2025-01-01T00:00:00Z",
    )
    text = format_message(m)
    assert f"{EVM_ADDRESS}\n\n\nURI: " in text
    assert parse_message(text) == m


def test_solana_message_in_the_wallet_standard_form_parses():
    # @solana/wallet-standard-util writes two LFs when there is no statement
    text = (
        f"tokenforge.test wants you to sign in with your Solana account:\n{SOL_ADDRESS}\n\n"
        "URI: http://tokenforge.test/\nVersion: 1\nChain ID: solana:devnet\nNonce: 0123456789abcdef\n"
        "Issued At: 2025-01-01T00:00:00.123Z"
    )
    m = parse_message(text)
    assert (m.family, m.address, m.statement, m.chain_id) == (Family.SOLANA, SOL_ADDRESS, None, "solana:devnet")


def test_a_statement_that_looks_like_a_field_is_still_a_statement():
    m = parse_message(FULL.replace("Sign in to TokenForge: launch tokens.", "URI: not the uri"))
    assert m.statement == "URI: not the uri"
    assert m.uri == "https://example.com:8443/login?x=1"


def test_resources_header_without_entries_is_kept_apart_from_none():
    text = _replace_line(FULL, "- ", None)
    assert parse_message(text).resources == ()
    assert parse_message(_replace_line(text, "Resources:", None)).resources is None


# Every field, malformed: (what to replace, the line instead, the field the error names)
MALFORMED = [
    ("https://example.com", "example.com wants you to sign in with your Bitcoin account:", "message"),
    ("https://example.com", "exa mple.com wants you to sign in with your Ethereum account:", "domain"),
    ("https://example.com", "1http://example.com wants you to sign in with your Ethereum account:", "scheme"),
    ("0x5aAeb", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", "address"),  # 39 hex digits
    ("0x5aAeb", "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "address"),  # bad EIP-55 checksum
    ("0x5aAeb", SOL_ADDRESS, "address"),  # a Solana key in an Ethereum message
    ("Sign in to", "Sign in <to> TokenForge", "statement"),
    ("URI: ", "URI: not a uri", "URI"),
    ("URI: ", "Uri: https://example.com", "URI"),
    ("Version: ", "Version: 2", "Version"),
    ("Version: ", None, "Version"),
    ("Chain ID: ", "Chain ID: one", "Chain ID"),
    ("Chain ID: ", "Chain ID: " + "9" * 79, "Chain ID"),
    ("Nonce: ", "Nonce: 1234567", "Nonce"),  # 7 characters
    ("Nonce: ", "Nonce: 12345678-", "Nonce"),
    ("Nonce: ", None, "Nonce"),
    ("Issued At: ", "Issued At: 2021-09-30 16:25:24Z", "Issued At"),
    ("Issued At: ", "Issued At: 2021-09-30T16:25:24", "Issued At"),  # no time zone
    ("Issued At: ", "Issued At: 2021-02-30T16:25:24Z", "Issued At"),  # no such day
    ("Issued At: ", None, "Issued At"),
    ("Expiration Time: ", "Expiration Time: tomorrow", "Expiration Time"),
    ("Not Before: ", "Not Before: 2021-09-30T25:00:00Z", "Not Before"),
    ("Request ID: ", "Request ID: has space", "Request ID"),
    ("- https://", "- not a uri", "Resources"),
    ("Not Before: ", "Expiration Time: 2021-10-30T16:25:24Z", "Expiration Time"),  # twice
]


@pytest.mark.parametrize(("prefix", "line", "field"), MALFORMED, ids=[f"{f}:{line}" for _, line, f in MALFORMED])
def test_every_malformed_field_is_refused_by_name(prefix, line, field):
    text = _replace_line(FULL, prefix, line)
    with pytest.raises(MessageError) as caught:
        parse_message(text)
    assert caught.value.field == field, caught.value


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "message"),
        (FULL.replace("\n", "\r\n"), "message"),
        (FULL + "\n", "message"),  # no final LF in the grammar
        (FULL.replace(EVM_ADDRESS + "\n\n", EVM_ADDRESS + "\n"), "message"),
        (FULL.split("\n")[0], "address"),
        (FULL + "\nExtra: line", "message"),
        (FULL.replace("Chain ID: 1\nNonce", "Nonce: abcdefgh1\nChain ID: 1\nNonce"), "Chain ID"),  # order
    ],
)
def test_layout_errors_are_refused(text, field):
    with pytest.raises(MessageError) as caught:
        parse_message(text)
    assert caught.value.field == field


def test_solana_chain_id_must_be_a_cluster_name():
    text = (
        f"tokenforge.test wants you to sign in with your Solana account:\n{SOL_ADDRESS}\n\n\n"
        "URI: http://tokenforge.test/\nVersion: 1\nChain ID: 1\nNonce: 0123456789abcdef\n"
        "Issued At: 2025-01-01T00:00:00Z"
    )
    with pytest.raises(MessageError) as caught:
        parse_message(text)
    assert caught.value.field == "Chain ID"


def test_timestamp_reads_offsets_and_long_fractions():
    assert timestamp("2025-01-01T02:00:00.1234567+02:00") == datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


# -- property: parse(format(m)) == m ---------------------------------------------------------

_alnum = string.ascii_letters + string.digits
_uri_chars = _alnum + "-._~:/?#[]@!$&'()*+,;=%"
_statement_chars = _alnum + "-._~:/?#[]@!$&'()*+,;= "


def _uris():
    path = st.text(alphabet=_alnum + "-._~/!$&'()*+,;=:@", max_size=30)
    return st.builds(
        lambda s, h, p: f"{s}://{h}/{p}",
        st.sampled_from(["https", "http", "ipfs"]),
        st.text(_alnum, min_size=1, max_size=12),
        path,
    )


def _date_times():
    # hypothesis takes naive bounds and draws the zone
    zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])
    low, high = datetime(2000, 1, 1), datetime(2100, 1, 1)  # noqa: DTZ001
    moments = st.datetimes(min_value=low, max_value=high, timezones=zones)
    return st.builds(
        lambda d, ms: d.isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z"),
        moments,
        st.booleans(),
    )


def _addresses(family: Family):
    if family is Family.EVM:
        return st.binary(min_size=32, max_size=32).map(lambda k: Account.from_key(b"\x01" + k[1:]).address)
    return st.binary(min_size=32, max_size=32).map(lambda s: str(Keypair.from_seed(s).pubkey()))


@st.composite
def messages(draw) -> SignInMessage:
    family = draw(st.sampled_from(list(Family)))
    chain_id = draw(
        st.integers(1, 2**64).map(str)
        if family is Family.EVM
        else st.sampled_from(["mainnet", "devnet", "localnet", "solana:testnet"])
    )
    statement = draw(st.none() | st.text(_statement_chars, min_size=1, max_size=60))
    return SignInMessage(
        family=family,
        scheme=draw(st.none() | st.sampled_from(["https", "http"])),
        domain=draw(
            st.builds(
                lambda h, p: h + p,
                st.text(_alnum + "-.", min_size=1, max_size=20),
                st.sampled_from(["", ":8080", ":1"]),
            )
        ),
        address=draw(_addresses(family)),
        statement=statement,
        uri=draw(_uris()),
        chain_id=chain_id,
        nonce=draw(st.text(_alnum, min_size=8, max_size=40)),
        issued_at=draw(_date_times()),
        expiration_time=draw(st.none() | _date_times()),
        not_before=draw(st.none() | _date_times()),
        request_id=draw(st.none() | st.text(_alnum + "-._~!$&'()*+,;=:@", max_size=20)),
        resources=draw(st.none() | st.lists(_uris(), max_size=3).map(tuple)),
    )


@settings(max_examples=150, deadline=None)
@given(messages())
def test_parse_of_format_is_the_message(message):
    assert parse_message(format_message(message)) == message
