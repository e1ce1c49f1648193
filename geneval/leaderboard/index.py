"""``tables/index.html``: one page over every table of a leaderboards folder.

For each spec in the specs folder that has records: its title and paper, how many of its (row, seed) pairs are
recorded, how its findings came out (reproduced / not reproduced / inconclusive / …), links to its sortable page,
Markdown and CSV, and its metrics plot. Like the tables, a function of the specs and the records only, so a
rebuild is byte-identical; ``build`` refreshes it whenever it writes a table.
"""

from __future__ import annotations

import html
from pathlib import Path

from geneval.atomic import write_text_atomic
from geneval.leaderboard.markdown import inline
from geneval.leaderboard.runner import records_path
from geneval.leaderboard.spec import load_spec

_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}section{margin-bottom:2.5em}"
          "img{max-width:100%;border:1px solid #ddd}.state{color:#555}")


def write_index(specs_dir: Path, *, records_dir: Path | None = None, tables_dir: Path) -> Path:
    from geneval.leaderboard.build import VERDICTS, tabulate, verdict_of

    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", "<title>geneval leaderboards</title>",
           f"<style>{_STYLE}</style></head><body>", "<h1>geneval leaderboards</h1>",
           "<p>Tables generated from training runs by <code>geneval leaderboard build</code>; every number carries "
           "its protocol on the table's page.</p>"]
    for spec_path in sorted(Path(specs_dir).glob("*.toml")):
        spec = load_spec(spec_path)
        if not records_path(spec, records_dir).is_file():
            continue  # a spec nobody has run yet
        table = tabulate(spec_path, records_dir=records_dir)
        kinds = [verdict_of(line) for line in table.findings]
        outcome = ", ".join(f"{kinds.count(v)} {v}" for v in VERDICTS if kinds.count(v))
        out += ["<section>", f"<h2><a href=\"{e(spec.name)}.html\">{e(spec.title)}</a></h2>"]
        if spec.paper:
            out.append(f"<p>Reproduces: {inline(spec.paper)}</p>")
        out.append(f"<p class=\"state\">{len(table.lines)} of {table.expected} (row, seed) recorded"
                   + (f"; findings: {e(outcome)}" if outcome else "") + ". "
                   f"<a href=\"{e(spec.name)}.md\">Markdown</a> · <a href=\"{e(spec.name)}.csv\">CSV</a> · "
                   f"spec <code>{e(spec_path.name)}</code></p>")
        out += [f"<p><a href=\"{e(spec.name)}.html\"><img src=\"{e(spec.name)}_metrics.png\" "
                f"alt=\"{e(spec.name)} metrics\"></a></p>", "</section>"]
    out.append("</body></html>\n")
    return write_text_atomic(Path(tables_dir) / "index.html", "\n".join(out))
