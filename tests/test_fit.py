"""news.render's fitting, which every long message goes through (briefs, weekly briefs, /ask
answers and lists, digests): Telegram's 4096 is counted as Telegram counts it, on the text the
HTML shows, in UTF-16 code units, and nothing is cut inside a tag or an entity."""

from __future__ import annotations

import pytest

from news.render import LIMIT, RLM, fit_lines, fit_sections, right_to_left, visible_length
from tests.fakes.telegram_html import parse_html, utf16_len


def shown(message: str) -> str:
    """The text Telegram shows, which must be within its limit (and the HTML well formed)."""
    text = parse_html(message)
    assert utf16_len(text) <= LIMIT, utf16_len(text)
    return text


@pytest.mark.parametrize(
    ("markup", "length"),
    [
        ("<b>SoftBank</b> &amp; <a href=\"https://x.test/?a=1&amp;b=2\">Arm</a>", 14),
        ("软银" * 3, 6),  # three bytes each in UTF-8, one unit each in UTF-16
        ("🚀 launch", 9),  # an emoji outside the BMP is a surrogate pair: two units
        ("&lt;b&gt;", 3),  # escaped markup is text
        ("", 0),
    ],
)
def test_visible_length_counts_the_shown_text_in_utf16_units(markup: str, length: int) -> None:
    assert visible_length(markup) == length == utf16_len(parse_html(markup))


@pytest.mark.parametrize(
    ("unit", "width"),
    [("y", 1), ("软", 1), ("&amp;", 1), ("<b>z</b>", 1), ("🚀", 2)],
)
def test_a_line_that_makes_exactly_4096_is_kept_and_one_unit_more_is_dropped(
    unit: str, width: int
) -> None:
    head = "h" * (LIMIT - 1 - 40 * width)  # the line's newline and 40 units fill the rest
    exact = fit_lines(head, [unit * 40])
    assert utf16_len(shown(exact)) == LIMIT
    over = fit_lines(head + "h", [unit * 40, "next"])
    assert shown(over) == head + "h", "a line that does not fit is left out whole"


def test_lines_are_kept_whole_in_order_and_the_rest_counted() -> None:
    lines = [f'• <a href="https://news.test/{n}">Story {n} &amp; more {"软" * 60}</a>'
             for n in range(200)]
    message = fit_lines("<b>Week</b>", lines, more=lambda left: f"• +{len(left)}")
    text = shown(message)
    kept = text.split("\n")[1:-1]
    assert kept == [f"• Story {n} & more {'软' * 60}" for n in range(len(kept))]
    assert text.split("\n")[-1] == f"• +{200 - len(kept)}"
    assert utf16_len(text) > LIMIT - 80, "as many as fit: one more line would not"
    assert "never" not in fit_lines("<b>Week</b>", lines[:3], more=lambda left: "never")


def test_right_to_left_marks_count_against_the_limit() -> None:
    lines = ["ي" * 99] * 60
    message = fit_lines("عنوان", lines, finish=right_to_left)
    text = shown(message)
    assert all(line.startswith(RLM) for line in text.split("\n"))
    assert len(text.split("\n")) == 1 + (LIMIT - 6) // 101  # each line: RLM, 99, newline


def test_a_head_too_long_alone_is_kept_as_it_is() -> None:
    assert fit_lines("x" * 5000, ["y"]) == "x" * 5000


@pytest.mark.parametrize("unit", ["&", "<", "软", "🚀", "é"])
def test_a_long_core_is_cut_before_escaping_never_inside_an_entity_or_a_pair(unit: str) -> None:
    core = unit * 6000
    message = fit_sections(["<b>Head</b>"], "<b>Core</b>\n{core}", core, ["<i>optional</i>"],
                           ["<b>Sources</b>\n• one"])
    text = shown(message)  # parses: no `&am` or half a surrogate pair left behind
    assert "optional" not in text, "the optional sections go before the core is cut"
    assert text.endswith("…\n\n" + "Sources\n• one"), "the tail is kept"
    assert utf16_len(text) >= LIMIT - 2, "cut to the longest that fits, not shorter"
    text.encode("utf-16-le")  # strict: a lone surrogate would raise


def test_sections_that_fit_are_left_alone() -> None:
    message = fit_sections(["H"], "{core}", "a & b", ["o1", "o2"], ["t"])
    assert message == "H\n\na &amp; b\n\no1\n\no2\n\nt"
