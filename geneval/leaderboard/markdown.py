"""The little Markdown the specs' notes, footers and findings use, as HTML for the tables' pages.

Spec authors write notes in Markdown because the ``.md`` tables show them as they are; the HTML pages render
the same text. Supported, and nothing else (so a rebuild is byte-identical with no library version in the
loop): paragraphs separated by blank lines, ``- `` bullet lists, inline ``code``, **bold**, *italic* and
[links](url). The text is HTML-escaped before any markup is added, so a spec cannot inject HTML.
"""

from __future__ import annotations

import html
import re

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)([^*]+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _link(match: re.Match) -> str:
    address = match.group(2).replace('"', "&quot;")
    return f'<a href="{address}">{match.group(1)}</a>'


def inline(text: str) -> str:
    """One line or paragraph of Markdown → HTML (escaped; code spans are not formatted further; a link's
    address is already escaped with its text, quotes are escaped for the attribute)."""
    pieces = _CODE.split(text)  # odd indices: the insides of code spans
    out = []
    for index, piece in enumerate(pieces):
        if index % 2:
            out.append(f"<code>{html.escape(piece)}</code>")
            continue
        piece = html.escape(piece, quote=False)
        piece = _LINK.sub(_link, piece)
        piece = _BOLD.sub(r"<strong>\1</strong>", piece)
        piece = _ITALIC.sub(r"<em>\1</em>", piece)
        out.append(piece)
    return "".join(out)


def blocks(text: str) -> str:
    """Paragraphs and bullet lists → HTML; lines of one paragraph (or of one bullet) are joined with spaces."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("- "):
            items: list[str] = []
            for line in lines:  # a line not starting with "- " continues the bullet above
                if line.startswith("- "):
                    items.append(line[2:])
                else:
                    items[-1] += " " + line
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
        else:
            out.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(out)
