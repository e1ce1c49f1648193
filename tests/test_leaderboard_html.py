"""The leaderboard pages a person reads in a browser: Markdown of notes, footers and findings is rendered (no
literal markers in the visible text), wide tables scroll in their own box, and spec text cannot inject HTML."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from geneval.leaderboard.markdown import blocks, inline

TABLES = Path(__file__).resolve().parents[1] / "leaderboards" / "tables"


class VisibleText(HTMLParser):
    """The text a browser shows: everything outside <script> and <style>."""

    def __init__(self):
        super().__init__()
        self.hidden, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag):
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def visible_text(page: Path) -> str:
    parser = VisibleText()
    parser.feed(page.read_text(encoding="utf-8"))
    return "".join(parser.parts)


PAGES = sorted(TABLES.glob("*.html"))


def test_every_committed_table_has_a_page():
    assert len(PAGES) >= 10 and (TABLES / "index.html") in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_literal_markdown_in_visible_text(page):
    text = visible_text(page)
    assert "**" not in text, f"{page.name}: literal ** in the visible text"
    assert "`" not in text, f"{page.name}: literal backtick in the visible text"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name != "index.html"], ids=lambda p: p.name)
def test_tables_scroll_inside_their_box(page):
    source = page.read_text(encoding="utf-8")
    assert '<div class="scroll"><table>' in source and ".scroll{overflow-x:auto" in source


def test_inline_markup():
    assert inline("**Protocol.** Row `a|b` is *new*") == \
        "<strong>Protocol.</strong> Row <code>a|b</code> is <em>new</em>"
    assert inline("`**not bold**`") == "<code>**not bold**</code>"  # code spans are literal
    assert inline("σ = 2 * 3 and 4 * 5") == "σ = 2 * 3 and 4 * 5"  # a lone * is multiplication, not emphasis
    assert inline("[ref](https://x.org/a?b=1&c=2)") == '<a href="https://x.org/a?b=1&amp;c=2">ref</a>'


def test_spec_text_cannot_inject_html():
    assert inline("<script>alert(1)</script> & `<b>`") == \
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>&lt;b&gt;</code>"


def test_blocks_paragraphs_and_bullets_with_continuation_lines():
    text = "First line\nsecond line.\n\n- one\n  continued\n- two **b**\n\nLast."
    assert blocks(text) == ("<p>First line second line.</p>\n<ul><li>one continued</li><li>two <strong>b</strong>"
                            "</li></ul>\n<p>Last.</p>")
