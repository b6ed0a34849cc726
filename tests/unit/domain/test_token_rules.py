"""The launch rules in ``validate_launch``: each violation names its field."""

from __future__ import annotations

import string

import pytest
from eth_utils import to_checksum_address
from hypothesis import assume, given
from hypothesis import strategies as st
from solders.pubkey import Pubkey

from tokenforge.domain.chains import EVM_MAX_SUPPLY_BASE_UNITS, SOLANA_MAX_SUPPLY_BASE_UNITS, U64_MAX
from tokenforge.domain.tokens import LaunchParams, validate_launch
from tokenforge.errors import ValidationFailed

EVM_CHAINS = ("ethereum", "bsc", "base")
EVM_CREATOR = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55 test vector
SOL_CREATOR = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
SYMBOL_CHARS = string.ascii_uppercase + string.digits

# The four mixed-case vectors published in EIP-55.
EIP55_VECTORS = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


def launch(**over) -> LaunchParams:
    chain = over.get("chain", "ethereum")
    kwargs = {
        "chain": chain,
        "name": "Forge Coin",
        "symbol": "FORGE",
        "decimals": None,
        "supply": 1_000_000,
        "creator": SOL_CREATOR if chain == "solana" else EVM_CREATOR,
    }
    kwargs.update(over)
    return validate_launch(**kwargs)


def refused(field: str, **over) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        launch(**over)
    assert info.value.field == field, f"expected a {field!r} error, got {info.value}"
    return info.value


def b58encode(raw: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = int.from_bytes(raw, "big")
    out = ""
    while n:
        n, rem = divmod(n, 58)
        out = alphabet[rem] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


# --- a valid launch -----------------------------------------------------------------------


def test_valid_evm_launch_keeps_every_field():
    params = launch(
        name="Forge Coin",
        symbol="FORGE",
        decimals=6,
        supply="2500",
        description="hello",
        image_url="https://img.example/x.png",
        website="http://example.org",
        twitter="https://x.com/forge",
        telegram="https://t.me/forge",
        metadata_uri="https://meta.example/forge.json",
    )
    assert params == LaunchParams(
        chain="ethereum",
        name="Forge Coin",
        symbol="FORGE",
        decimals=6,
        supply=2500,
        creator=EVM_CREATOR,
        description="hello",
        image_url="https://img.example/x.png",
        website="http://example.org",
        twitter="https://x.com/forge",
        telegram="https://t.me/forge",
        metadata_uri="https://meta.example/forge.json",
    )
    assert params.supply_base_units == 2500 * 10**6


def test_optional_fields_default_to_empty():
    params = launch(description=None)
    assert params.description == ""
    assert (params.image_url, params.website, params.twitter, params.telegram, params.metadata_uri) == (None,) * 5


def test_empty_url_fields_count_as_absent():
    params = launch(image_url="", website="", twitter="", telegram="", metadata_uri="")
    assert (params.image_url, params.website, params.twitter, params.telegram, params.metadata_uri) == (None,) * 5


# --- chain --------------------------------------------------------------------------------


@pytest.mark.parametrize("chain", ["dogecoin", "", "Ethereum", "solana "])
def test_unknown_chain_is_refused(chain):
    refused("chain", chain=chain)


# --- name ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "X",
        "x" * 32,
        "é" * 32,  # 32 characters, 64 UTF-8 bytes
        "🚀" * 32,  # 32 characters, 128 UTF-8 bytes
        "日本語のトークン",
    ],
)
def test_name_of_1_to_32_characters_is_accepted(name):
    assert launch(name=name).name == name


@pytest.mark.parametrize("name", ["", "x" * 33, "é" * 33, "🚀" * 33, "   ", "\t"])
def test_name_outside_1_to_32_characters_is_refused(name):
    refused("name", name=name)


def test_name_is_trimmed_before_counting():
    assert launch(name="  Forge  ").name == "Forge"
    assert launch(name=" " + "x" * 32 + " ").name == "x" * 32


@pytest.mark.parametrize("name", ["a\nb", "a\x00b", "bell\x07", "zero\u200bwidth"])
def test_name_with_control_characters_is_refused(name):
    refused("name", name=name)


def test_name_that_is_not_a_string_is_refused():
    refused("name", name=None)


@given(st.text(min_size=1, max_size=32).map(str.strip).filter(lambda s: s and s.isprintable()))
def test_any_printable_name_up_to_32_characters_is_accepted(name):
    assert launch(name=name).name == name


# --- symbol -------------------------------------------------------------------------------


@given(st.from_regex(r"[A-Z0-9]{1,10}", fullmatch=True))
def test_any_symbol_of_1_to_10_uppercase_letters_and_digits_is_accepted(symbol):
    assert launch(symbol=symbol).symbol == symbol


@given(st.text(min_size=1, max_size=10).filter(lambda s: any(ch not in SYMBOL_CHARS for ch in s)))
def test_any_symbol_with_a_character_outside_a_z_0_9_is_refused(symbol):
    refused("symbol", symbol=symbol)


@given(st.text(alphabet=SYMBOL_CHARS, min_size=11, max_size=40))
def test_symbol_longer_than_10_is_refused(symbol):
    refused("symbol", symbol=symbol)


@pytest.mark.parametrize("symbol", ["", "forge", "FORGE\n", " FORGE", "FOR GE", "ＦＯＲＧＥ", "Ä", None])
def test_bad_symbols_are_refused(symbol):
    refused("symbol", symbol=symbol)


# --- decimals -----------------------------------------------------------------------------


@pytest.mark.parametrize("chain", EVM_CHAINS)
def test_evm_decimals_default_to_18_and_accept_0_to_18(chain):
    assert launch(chain=chain).decimals == 18
    for decimals in range(19):
        assert launch(chain=chain, decimals=decimals).decimals == decimals


@pytest.mark.parametrize("chain", EVM_CHAINS)
@pytest.mark.parametrize("decimals", [-1, 19, 77, True, False, 6.0, "6"])
def test_evm_decimals_outside_0_to_18_are_refused(chain, decimals):
    refused("decimals", chain=chain, decimals=decimals)


def test_solana_decimals_default_to_9_and_accept_0_to_9():
    assert launch(chain="solana").decimals == 9
    for decimals in range(10):
        assert launch(chain="solana", decimals=decimals).decimals == decimals


@pytest.mark.parametrize("decimals", [-1, 10, 18, True])
def test_solana_decimals_outside_0_to_9_are_refused(decimals):
    refused("decimals", chain="solana", decimals=decimals)


# --- supply -------------------------------------------------------------------------------


@pytest.mark.parametrize("supply", [0, -1, "0", "000"])
def test_supply_must_be_greater_than_zero(supply):
    refused("supply", supply=supply)


@pytest.mark.parametrize(
    "supply", ["", " 1", "1 ", "+1", "-1", "1.0", "1e3", "1_000", "0x10", "١٢", "１２", "9" * 81, 1.0, True, None, [1]]
)
def test_supply_that_is_not_an_integer_or_digit_string_is_refused(supply):
    refused("supply", supply=supply)


@given(st.integers(min_value=1, max_value=EVM_MAX_SUPPLY_BASE_UNITS // 10**18))
def test_supply_as_digit_string_equals_supply_as_int(supply):
    assert launch(supply=str(supply)) == launch(supply=supply)


def test_supply_digit_string_with_leading_zeros_is_read_as_decimal():
    assert launch(supply="0010").supply == 10


@pytest.mark.parametrize("chain", EVM_CHAINS)
@pytest.mark.parametrize("decimals", [0, 1, 6, 9, 17, 18])
def test_evm_supply_boundary_is_the_pool_reserves_uint112(chain, decimals):
    largest = EVM_MAX_SUPPLY_BASE_UNITS // 10**decimals
    params = launch(chain=chain, decimals=decimals, supply=largest)
    assert params.supply_base_units <= EVM_MAX_SUPPLY_BASE_UNITS
    assert launch(chain=chain, decimals=decimals, supply=str(largest)).supply == largest
    error = refused("supply", chain=chain, decimals=decimals, supply=largest + 1)
    assert "uint112" in error.detail


def test_evm_supply_exactly_the_maximum_with_zero_decimals():
    assert EVM_MAX_SUPPLY_BASE_UNITS * 1073 // 1000 < 2**112  # the curve's virtual tokens fit uint112
    assert launch(decimals=0, supply=EVM_MAX_SUPPLY_BASE_UNITS).supply_base_units == EVM_MAX_SUPPLY_BASE_UNITS
    refused("supply", decimals=0, supply=EVM_MAX_SUPPLY_BASE_UNITS + 1)


def test_evm_supply_boundary_with_default_decimals():
    assert launch(supply=EVM_MAX_SUPPLY_BASE_UNITS // 10**18).decimals == 18
    refused("supply", supply=EVM_MAX_SUPPLY_BASE_UNITS // 10**18 + 1)


@pytest.mark.parametrize("decimals", range(10))
def test_solana_supply_boundary_leaves_the_curve_in_u64(decimals):
    assert SOLANA_MAX_SUPPLY_BASE_UNITS * 1073 // 1000 <= U64_MAX  # the curve's virtual tokens fit u64
    largest = SOLANA_MAX_SUPPLY_BASE_UNITS // 10**decimals
    assert launch(chain="solana", decimals=decimals, supply=largest).supply_base_units <= SOLANA_MAX_SUPPLY_BASE_UNITS
    error = refused("supply", chain="solana", decimals=decimals, supply=largest + 1)
    assert "u64" in error.detail


def test_solana_supply_boundary_with_default_decimals():
    assert launch(chain="solana", supply=17_191_746_573).supply_base_units == 17_191_746_573 * 10**9
    refused("supply", chain="solana", supply=17_191_746_574)


@given(chain=st.sampled_from(["ethereum", "solana"]), data=st.data())
def test_supply_accepted_exactly_when_base_units_fit(chain, data):
    limit = EVM_MAX_SUPPLY_BASE_UNITS if chain == "ethereum" else SOLANA_MAX_SUPPLY_BASE_UNITS
    decimals = data.draw(st.integers(0, 18 if chain == "ethereum" else 9), label="decimals")
    largest = limit // 10**decimals
    supply = data.draw(
        st.one_of(st.integers(1, largest), st.integers(largest - 3, largest + 3), st.integers(largest + 1, limit * 2)),
        label="supply",
    )
    assume(supply > 0)
    if supply * 10**decimals <= limit:
        assert launch(chain=chain, decimals=decimals, supply=supply).supply == supply
    else:
        refused("supply", chain=chain, decimals=decimals, supply=supply)


# --- description and URLs -----------------------------------------------------------------


def test_description_up_to_1000_characters_is_accepted():
    assert launch(description="é" * 1000).description == "é" * 1000


def test_description_over_1000_characters_is_refused():
    refused("description", description="x" * 1001)


URL_FIELDS = ["image_url", "website", "twitter", "telegram", "metadata_uri"]


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize(
    "url", ["http://example.org", "https://example.org/a/b?c=d#e", "https://127.0.0.1:8080/x", "HTTPS://EXAMPLE.ORG"]
)
def test_http_and_https_urls_are_accepted(field, url):
    assert getattr(launch(**{field: url}), field) == url


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/file",
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "file:///etc/passwd",
        "example.org",
        "//example.org/x",
        "https://",
        "http:///path-only",
        "https://exa mple.org",
        "https://example.org/\n",
        "http://[::1",
    ],
)
def test_non_http_urls_are_refused(field, url):
    refused(field, **{field: url})


@pytest.mark.parametrize("field", URL_FIELDS)
def test_url_length_limit_is_200(field):
    url = "https://example.org/" + "a" * 180
    assert len(url) == 200
    assert getattr(launch(**{field: url}), field) == url
    refused(field, **{field: url + "a"})


@pytest.mark.parametrize("url", ["https://example.org:99999/", "https://example.org:abc/"])
def test_url_with_invalid_port_is_refused(url):
    refused("website", website=url)


# --- creator: EVM -------------------------------------------------------------------------


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_checksummed_evm_creator_is_kept(address):
    assert launch(creator=address).creator == address


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_lowercase_or_uppercase_evm_creator_is_normalised_to_eip55(address):
    assert launch(creator=address.lower()).creator == address
    assert launch(creator="0x" + address[2:].upper()).creator == address


@pytest.mark.parametrize("address", EIP55_VECTORS)
def test_evm_creator_with_a_wrong_checksum_is_refused(address):
    # swap the case of the first letter: the mix no longer matches the hash
    i = next(i for i, ch in enumerate(address) if i >= 2 and ch.isalpha())
    broken = address[:i] + address[i].swapcase() + address[i + 1 :]
    error = refused("creator", creator=broken)
    assert "checksum" in error.detail


@pytest.mark.parametrize("address", ["0x" + "0" * 40, "0X" + "0" * 40])
def test_evm_zero_address_is_refused(address):
    refused("creator", creator=address)


@pytest.mark.parametrize(
    "creator",
    [
        "",
        "0x",
        "0x" + "a" * 39,
        "0x" + "a" * 41,
        "0x" + "g" * 40,
        " " + EVM_CREATOR,
        EVM_CREATOR + "\n",
        SOL_CREATOR,
        None,
        123,
    ],
)
def test_malformed_evm_creator_is_refused(creator):
    refused("creator", creator=creator)


@pytest.mark.parametrize("creator", [EVM_CREATOR[2:].lower(), EVM_CREATOR[2:].upper()])
def test_evm_creator_without_0x_prefix_is_refused(creator):
    refused("creator", creator=creator)


@given(st.binary(min_size=20, max_size=20).filter(any))
def test_any_nonzero_evm_address_in_any_accepted_spelling_normalises_to_eip55(raw):
    checksummed = to_checksum_address(raw)
    for spelling in (checksummed, checksummed.lower(), "0x" + checksummed[2:].upper()):
        assert launch(creator=spelling).creator == checksummed


@given(st.binary(min_size=20, max_size=20).filter(any), st.data())
def test_any_single_case_flip_breaks_the_checksum(raw, data):
    checksummed = to_checksum_address(raw)
    letters = [i for i, ch in enumerate(checksummed) if i >= 2 and ch.isalpha()]
    assume(letters and checksummed[2:] not in (checksummed[2:].lower(), checksummed[2:].upper()))
    i = data.draw(st.sampled_from(letters))
    broken = checksummed[:i] + checksummed[i].swapcase() + checksummed[i + 1 :]
    assume(broken[2:] not in (broken[2:].lower(), broken[2:].upper()))
    refused("creator", creator=broken)


# --- creator: Solana ----------------------------------------------------------------------


def test_solana_creator_is_kept_as_base58():
    assert launch(chain="solana").creator == SOL_CREATOR


@given(st.binary(min_size=32, max_size=32).filter(any))
def test_any_32_byte_base58_key_is_accepted(raw):
    key = str(Pubkey.from_bytes(raw))
    assert key == b58encode(raw)
    assert launch(chain="solana", creator=key).creator == key


@given(st.binary(min_size=1, max_size=64).filter(lambda b: len(b) != 32))
def test_base58_of_other_lengths_is_refused(raw):
    refused("creator", chain="solana", creator=b58encode(raw))


@pytest.mark.parametrize(
    "creator",
    [
        "",
        "11111111111111111111111111111111",  # the all-zero key (system program)
        EVM_CREATOR,
        SOL_CREATOR + " ",
        " " + SOL_CREATOR,
        SOL_CREATOR.replace("9", "0", 1),  # 0 is not a base58 digit
        SOL_CREATOR.replace("x", "l", 1),  # nor is l
        "1" + SOL_CREATOR,
        None,
    ],
)
def test_malformed_solana_creator_is_refused(creator):
    refused("creator", chain="solana", creator=creator)
