"""Which characters a token's name and description may hold: emoji sequences yes, invisible
formatting that can disguise a name no (``hidden_character``)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenforge.domain.tokens import hidden_character, validate_launch
from tokenforge.errors import ValidationFailed

EVM_CREATOR = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"

EMOJI_SEQUENCES = {
    "family (ZWJ)": "👨\u200d👩\u200d👧",
    "family of four": "👨\u200d👩\u200d👧\u200d👦",
    "technologist with skin tone": "👩🏽\u200d💻",
    "rainbow flag (VS16 + ZWJ)": "🏳\ufe0f\u200d🌈",
    "heart on fire": "❤\ufe0f\u200d🔥",
    "polar bear": "🐻\u200d❄\ufe0f",
    "flag of Ukraine": "🇺🇦",
    "skin tone": "👍🏿",
    "keycap one": "1\ufe0f\u20e3",
    "keycap hash": "#\ufe0f\u20e3",
    "flag of England (tags)": "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    "Devanagari half form (ZWJ)": "क्\u200dष",
    "Persian with ZWNJ": "می\u200cخواهم",
}

HIDDEN = {
    "NUL": "\x00",
    "unit separator": "\x1f",
    "DEL": "\x7f",
    "C1 NEL": "\x85",
    "C1 CSI": "\x9b",
    "right-to-left override": "\u202e",
    "left-to-right embedding": "\u202a",
    "right-to-left isolate": "\u2067",
    "pop directional isolate": "\u2069",
    "left-to-right mark": "\u200e",
    "right-to-left mark": "\u200f",
    "arabic letter mark": "\u061c",
    "zero-width space": "\u200b",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "no-break space": "\u00a0",
    "private use": "\ue000",
    "unassigned": "\U000e0000",
    "lone surrogate": "\ud800",
}


def launch(**over):
    kwargs = {
        "chain": "ethereum",
        "name": "Forge Coin",
        "symbol": "FORGE",
        "decimals": None,
        "supply": 1,
        "creator": EVM_CREATOR,
    }
    return validate_launch(**(kwargs | over))


@pytest.mark.parametrize("sequence", EMOJI_SEQUENCES.values(), ids=EMOJI_SEQUENCES.keys())
def test_emoji_and_script_sequences_are_accepted_in_names_and_descriptions(sequence):
    name = f"Forge {sequence}"
    assert launch(name=name).name == name
    assert launch(description=f"We are {sequence}\nfor real").description == f"We are {sequence}\nfor real"


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_invisible_and_control_characters_are_refused_anywhere(char, where):
    name = {"start": char + "Forge", "middle": "For" + char + "ge", "end": "Forge" + char}[where]
    if char.isspace() and where != "middle":
        assert launch(name=name).name == "Forge"  # names are trimmed of whitespace first
    else:
        with pytest.raises(ValidationFailed) as refused:
            launch(name=name)
        assert refused.value.field == "name"
        assert f"U+{ord(char):04X}" in refused.value.detail
    with pytest.raises(ValidationFailed) as refused:
        launch(description=name)
    assert refused.value.field == "description"


@pytest.mark.parametrize(
    "name",
    [
        "\u200dForge",  # leading joiner
        "Forge\u200d",  # trailing joiner
        "For\u200dge",  # between ASCII letters: looks exactly like "Forge"
        "For\u200cge",
        "👨\u200d\u200d👩",  # doubled
        "👨 \u200d👩",  # next to a space
        "Forge\U000e0067\U000e007f",  # tags without the black flag
        "🏴\U000e0067\U000e0062",  # tags never closed
        "🏴\U000e007f",  # a cancel tag with no tag before it
        "🏴\U000e0067 \U000e007f",  # a space inside the tag run
    ],
)
def test_joiners_and_tags_outside_their_sequences_are_refused(name):
    with pytest.raises(ValidationFailed) as refused:
        launch(name=name)
    assert refused.value.field == "name"


def test_descriptions_keep_line_breaks_and_tabs_but_names_do_not():
    assert launch(description="line one\r\nline two\ttabbed").description == "line one\r\nline two\ttabbed"
    with pytest.raises(ValidationFailed):
        launch(name="Forge\tCoin")


@given(st.text(max_size=40))
def test_any_text_with_a_forbidden_character_outside_a_sequence_is_refused(text):
    """A character that is neither printable nor a joiner or tag is refused wherever it is."""
    at = hidden_character(text)
    bad = [
        i
        for i, ch in enumerate(text)
        if not ch.isprintable() and ch not in "\u200c\u200d" and not "\U000e0020" <= ch <= "\U000e007f"
    ]
    if bad:
        assert at is not None and at <= bad[0]
    if at is not None:
        assert not text[at].isprintable()


@given(
    st.lists(
        st.sampled_from(sorted(EMOJI_SEQUENCES.values()))
        | st.text(
            alphabet=st.characters(
                categories=("L", "N", "P", "S", "Zs"),
                exclude_characters="\u00a0\u1680\u2000\u2001"
                "\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000",
            ),
            max_size=5,
        ),
        max_size=6,
    )
)
def test_printable_text_mixed_with_emoji_sequences_is_accepted(parts):
    text = " ".join(parts)
    assert hidden_character(text) is None, [f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in text]
