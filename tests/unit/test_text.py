"""Text hygiene (streams.text): no control, format or tag character survives; cleaning is idempotent."""

from __future__ import annotations

import html
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.text import clean_text, is_hidden, one_line

HOSTILE = "\u202e\u200b\x07\x1b\x00\x7f\x9b\ufeff\u00ad\u2066\u2069\U000e0041\U000e007f\U000e0000"

# Every code point, weighted towards the ones that matter here.
any_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, categories=None),
        st.sampled_from(HOSTILE + "\n\r\t\v\f\x1c\x85\u2028\u2029 \u00a0"),
        st.characters(min_codepoint=0xE0000, max_codepoint=0xE007F),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    )
)


def hidden_left(text: str) -> list[str]:
    return [
        c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") or 0xE0000 <= ord(c) <= 0xE007F
    ]


@given(any_text)
def test_no_control_format_surrogate_or_tag_character_survives(text: str) -> None:
    assert hidden_left(clean_text(text)) == []
    assert hidden_left(one_line(text)) == []


@given(any_text)
def test_cleaning_is_idempotent(text: str) -> None:
    once = clean_text(text)
    assert clean_text(once) == once
    line = one_line(text)
    assert one_line(line) == line and clean_text(line) == line


@given(any_text)
def test_only_hidden_characters_are_touched(text: str) -> None:
    visible = "".join(c for c in text if not is_hidden(c))
    assert clean_text(text).replace(" ", "") == visible.replace(" ", "")


@given(any_text)
def test_one_line_has_no_line_break_and_no_edge_or_double_space(text: str) -> None:
    line = one_line(text)
    assert line == line.strip() and "  " not in line
    assert not any(c in line for c in "\n\r\t\v\f\x85\u2028\u2029")


@given(st.text())
def test_html_escaping_after_cleaning_leaves_no_tag_open(text: str) -> None:
    escaped = html.escape(one_line(text), quote=False)
    assert "<" not in escaped and ">" not in escaped
    assert html.unescape(escaped) == one_line(text)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Ann\u202eevil", "Annevil"),
        ("zero\u200bwidth", "zerowidth"),
        ("bell\x07 esc\x1b[31m", "bell esc[31m"),
        ("tag\U000e0041\U000e0042s", "tags"),
        ("no\nonions\r\n\tplease", "no onions please"),
        ("para\u2029graph", "para graph"),
        ("Ünïcödé, emoji 🍲 and <b>&", "Ünïcödé, emoji 🍲 and <b>&"),
    ],
)
def test_examples(raw: str, clean: str) -> None:
    assert one_line(raw) == clean


def test_printable_text_is_returned_as_it_is() -> None:
    text = "Borscht with sour cream"
    assert clean_text(text) is text
