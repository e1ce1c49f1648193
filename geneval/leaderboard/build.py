"""``geneval leaderboard build``: records → one table per spec, without training.

Per row: mean ± std over the training seeds (sample std, ddof = 1) of every metric of the final and the best
checkpoint, Δ% of the mean against the baseline row, how many seeds collapsed, and the row's switches (flags as
✓/✗), parameters and iterations. A row measured with one seed shows the bootstrap CI half-width instead when
its record has one, else the metric's own ± (IS: std over splits; bits/dim: standard error over test
examples), marked †. Under the table: the provenance of every number (extractor and weights hash, sample
counts, reference split, geneval version and commits), then the papers' findings with a verdict computed from
the records, then the spec's notes.

Outputs ``tables/<name>.{md,csv,html}`` and ``tables/<name>_metrics.png`` (+ ``_tradeoff.png``), and refreshes
``tables/index.html`` (every table of the specs folder, ``index.py``); all of them are functions of the specs
and the records only (no dates, no absolute paths), so a rebuild is byte-identical.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import math
from pathlib import Path

import pandas as pd

from geneval import family
from geneval.atomic import write_bytes_atomic, write_text_atomic
from geneval.leaderboard import records as rec
from geneval.leaderboard.markdown import blocks, inline
from geneval.leaderboard.runner import plan, records_path
from geneval.leaderboard.spec import Spec, load_spec, metric_label
from geneval.metrics.base import better_side

# Labels of the keys every line has (records.py); a family labels its own switches and options.
ARROWS = {True: " ↑", False: " ↓", None: ""}  # by higher_is_better; None: no better side (rarity)
LABELS = {"params_m.total": "Params (M)", "iterations_k": "Itr ×10³", "model": "Model", "trainer": "Family"}


def column_labels(spec: Spec) -> dict[str, str]:
    """Core labels, then each of the spec's families' labels (its options' too), then the spec's own."""
    labels = dict(LABELS)
    for name in dict.fromkeys(r.trainer for r in spec.rows):
        owner = family.get(name)
        for key, label in {**{o.name: o.label for o in owner.eval_options}, **owner.labels}.items():
            labels.setdefault(key, label)
    return {**labels, **spec.columns["labels"]}


# ------------------------------------------------------------------------------------------- the numbers

def lookup(line: dict, key: str):
    """A column's value: a dotted path in the line, else the switches, the config, the evaluation options, or
    the record values the family copies into its lines (``record_keys``)."""
    value = line
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is not None:
        return value
    for where in ("switches", "config", "eval_options", "record"):
        if key in (line.get(where) or {}):
            return line[where][key]
    return None


def summarise(spec: Spec, lines: list[dict]) -> pd.DataFrame:
    """One row per spec row: numeric columns (for the CSV) from the lines that match the spec's current configs."""
    by_row: dict[str, list[dict]] = {r.name: [] for r in spec.rows}
    for line in lines:
        by_row[line["row"]].append(line)
    table = []
    for row in spec.rows:
        got = sorted(by_row[row.name], key=lambda l: l["seed"])
        out = {"row": row.name, "baseline": row.baseline, "seeds": len(got), "seeds_planned": len(row.seeds),
               "collapsed": sum(bool(l["collapse"]["detected"]) for l in got)}
        planned = {"trainer": row.trainer, "model": row.preset, "preset": row.preset, "dataset": row.dataset,
                   "budget": row.budget, **row.switches, **row.eval_options}
        for key in spec.columns["show"] + spec.columns["flags"]:  # the first seed's value that has one (a record
            # that predates a key, e.g. an adopted one, leaves it to the seeds recorded later)
            out[key] = next((v for l in got if (v := lookup(l, key)) is not None), None) if got else planned.get(key)
        for which in spec.columns["which"]:
            for metric in spec.columns["metrics"]:
                cells = [l["metrics"].get(which, {}).get(metric) for l in got]
                cells = [c for c in cells if c and c.get("value") is not None and math.isfinite(c["value"])]
                prefix = f"{metric}_{which}"
                values = [c["value"] for c in cells]
                out[f"{prefix}_mean"] = sum(values) / len(values) if values else None
                out[f"{prefix}_n"] = len(values)
                out[f"{prefix}_std"] = pd.Series(values).std(ddof=1) if len(values) > 1 else None
                single = cells[0] if len(cells) == 1 else {}
                out[f"{prefix}_ci_half_width"] = single.get("ci_half_width")
                out[f"{prefix}_own_std"] = single.get("std")
        for metric, key in spec.columns["gap"].items():  # the mean minus a reference value the records carry
            reference = next((v for l in got if isinstance(v := lookup(l, key), (int, float))), None)
            for which in spec.columns["which"]:
                mean = out[f"{metric}_{which}_mean"]
                out[f"{metric}_{which}_gap"] = mean - reference if mean is not None and reference is not None else None
        table.append(out)
    frame = pd.DataFrame(table)
    base = frame[frame["baseline"]].iloc[0]
    # Δ% only against a baseline measured the same way (an FID from 200 samples, or on another dataset, is not
    # a change of the baseline's FID)
    base_lines = by_row[spec.baseline.name]
    for which in spec.columns["which"]:
        for metric in spec.columns["metrics"]:
            prefix = f"{metric}_{which}"
            b = base[f"{prefix}_mean"]
            comparable = [protocol_difference(by_row[r.name], base_lines, metric=metric) is None for r in spec.rows]
            frame[f"{prefix}_delta_pct"] = [
                None if (v is None or pd.isna(v) or b is None or pd.isna(b) or b == 0 or not same)
                else 100.0 * (v - b) / abs(b)
                for v, same in zip(frame[f"{prefix}_mean"], comparable)]
    return frame


def uncertainty(cells: pd.Series, prefix: str) -> tuple[float | None, str]:
    """``(±, mark)``: std over seeds; with one seed the CI half-width (‡) or the metric's own ± (†)."""
    if cells[f"{prefix}_n"] > 1:
        return cells[f"{prefix}_std"], ""
    if _number(cells[f"{prefix}_ci_half_width"]):
        return cells[f"{prefix}_ci_half_width"], "‡"
    if _number(cells[f"{prefix}_own_std"]):
        return cells[f"{prefix}_own_std"], "†"
    return None, ""


def _number(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def fmt(value, *, digits: int | None = None) -> str:
    if not _number(value):
        return "–"
    if digits is None:
        digits = 2 if abs(value) >= 10 else 3 if abs(value) >= 0.1 else 4
    return f"{value:.{digits}f}"


def display(spec: Spec, frame: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list[float | None]]]:
    """Header, cell strings and sort keys of the rendered table."""
    labels = column_labels(spec)
    whole = {o.name for name in dict.fromkeys(r.trainer for r in spec.rows) for o in family.get(name).eval_options
             if o.type is int}  # integer options: a column with empty cells holds them as floats
    header = ["Row"] + [labels.get(k, k) for k in spec.columns["show"]] + \
             [labels.get(k, k) for k in spec.columns["flags"]]
    metric_columns = [(m, w) for w in spec.columns["which"] for m in spec.columns["metrics"]]
    many = len(spec.columns["which"]) > 1
    for m, w in metric_columns:
        which = f" ({w})" if many else ""
        header.append(labels.get(m, metric_label(m)[0]) + which + ARROWS[metric_label(m)[1]])
        if m in spec.columns["gap"]:
            reference = labels.get(spec.columns["gap"][m], spec.columns["gap"][m])
            header.append(labels.get(f"{m}_gap", f"Gap to {reference[:1].lower()}{reference[1:]}") + which)
    header += ["Seeds", "Collapsed"]
    cells, keys = [], []
    for _, r in frame.iterrows():
        row_cells = [r["row"] + (" (baseline)" if r["baseline"] else "")]
        row_keys: list = [None]
        for key in spec.columns["show"]:
            value = r[key]
            # parameters in millions to 3 decimals; seconds and step numbers whole
            digits = 3 if key.startswith("params_m") else 0 if key.endswith(("_s", "_step", "steps")) or key in whole \
                else None
            row_cells.append(fmt(value, digits=digits)
                             if isinstance(value, float) else ("–" if value is None else str(value)))
            row_keys.append(value if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
        for key in spec.columns["flags"]:
            value = r[key]
            row_cells.append("–" if value is None else "✓" if value else "✗")
            row_keys.append(None if value is None else int(bool(value)))
        for metric, which in metric_columns:
            prefix = f"{metric}_{which}"
            mean = r[f"{prefix}_mean"]
            spread, mark = uncertainty(r, prefix)
            text = fmt(mean)
            if _number(mean) and _number(spread):
                digits = _digits(mean, spread)
                text = f"{fmt(mean, digits=digits)} ± {fmt(spread, digits=digits)}{mark}"
            delta = r[f"{prefix}_delta_pct"]
            if _number(delta) and not r["baseline"]:
                text += f" ({delta:+.1f}%)"
            row_cells.append(text)
            row_keys.append(mean if _number(mean) else None)
            if metric in spec.columns["gap"]:
                gap = r[f"{prefix}_gap"]
                row_cells.append(f"{gap:+.{_digits(mean)}f}" if _number(gap) else "–")
                row_keys.append(gap if _number(gap) else None)
        row_cells += [f"{r['seeds']}/{r['seeds_planned']}", f"⚠ {r['collapsed']}" if r["collapsed"] else "–"]
        row_keys += [r["seeds"], r["collapsed"]]
        cells.append(row_cells)
        keys.append(row_keys)
    return header, cells, keys


def _digits(mean: float, spread: float | None = None) -> int:
    """Decimals for a mean: by its size, and enough to show two significant digits of its ± (at most 6)."""
    digits = 2 if abs(mean) >= 10 else 3 if abs(mean) >= 0.1 else 4
    if spread:
        digits = max(digits, min(6, 1 - math.floor(math.log10(abs(spread)))))
    return digits


# ---------------------------------------------------------------------------------------- footer texts

def provenance(spec: Spec, lines: list[dict], *, stale: int) -> list[str]:
    protocols: dict[str, list[str]] = {}
    for line in sorted(lines, key=lambda l: (l["row"], l["seed"])):
        e = line["evaluation"]
        if e.get("extractor"):
            text = (f"extractor `{e['extractor']}` (weights sha256 `{str(e.get('weights_sha256'))[:12]}`, mode "
                    f"{e.get('mode')}), {e.get('num_samples')} samples (seeds from {e.get('sample_seed', '–')})"
                    f" vs `{e.get('reference')}` ({e.get('reference_count')} images)")
        else:
            text = f"sample metrics not measured ({e.get('skipped', 'no extractor')})"
        owner = family.get(line["trainer"])
        for option in owner.eval_options:
            if e.get(option.name) is not None:
                text += option.footer(e[option.name])
        for key in owner.protocol_keys:
            if e.get(key.name) not in (None, ""):
                text += key.footer.format(e[key.name])
        protocols.setdefault(text, [])
        if line["row"] not in protocols[text]:
            protocols[text].append(line["row"])
    out = ["**Protocol.** " + ("; ".join(protocols) if len(protocols) == 1 else
                               " ".join(f"{'Rows' if len(rows) > 1 else 'Row'} {', '.join(repr(r) for r in rows)}: {p}."
                                        for p, rows in protocols.items()))
           if protocols else "**Protocol.** no records yet."]
    versions = sorted({str(l["software"].get("geneval")) for l in lines})
    commits = sorted({str(l["software"].get("commit"))[:10] for l in lines})
    out.append(f"**Statistics.** mean ± sample std (ddof = 1) over training seeds {seed_text(spec)}; with one seed: "
               f"‡ bootstrap CI half-width of the generated set, † the metric's own ± (IS: std over splits; bits/dim: "
               f"standard error over test examples). (±x%): change of the mean relative to the baseline row "
               f"{spec.baseline.name!r}, shown only where both were measured with the same protocol. "
               f"↓/↑: lower/higher is better. Final: last step; best: lowest validation FID "
               f"(held-out train slice), reported on the test split. Collapsed: seeds whose validation FID rose above "
               f"the trainer's collapse margin after their best. Findings: a verdict needs the difference of the "
               f"means to exceed {SIGNIFICANT_SE:g} standard errors of the difference (each row's ± over √seeds), "
               f"else it is inconclusive.")
    dataset_rows = sorted({f"{l['trainer']}/{l['preset']}/{l['budget']} on {l['dataset']}" for l in lines})
    out.append(f"**Runs.** {'; '.join(dataset_rows) or '–'}. Software: geneval {', '.join(versions) or '–'}, "
               f"commit{'s' if len(commits) > 1 else ''} {', '.join(commits) or '–'}. Records: "
               f"`leaderboards/records/{spec.name}.jsonl` ({len(lines)} used"
               f"{f', {stale} from other configs ignored' if stale else ''}); spec: "
               f"`leaderboards/specs/{spec.path.name}`; regenerate with `geneval leaderboard build "
               f"leaderboards/specs/{spec.path.name}`.")
    return out


def seed_text(spec: Spec) -> str:
    """``[0, 1, 2]``, or with rows that set their own: ``[0, 1, 2] ([0]: rows 'A', 'B')``."""
    own: dict[tuple[int, ...], list[str]] = {}
    for row in spec.rows:
        if row.seeds != spec.seeds:
            own.setdefault(row.seeds, []).append(repr(row.name))
    listed = lambda seeds: "[" + ", ".join(map(str, seeds)) + "]"  # noqa: E731
    return listed(spec.seeds) + ("" if not own else " (" + "; ".join(
        f"{listed(seeds)}: row{'s' if len(names) > 1 else ''} {', '.join(names)}" for seeds, names in own.items()) + ")")


# What must agree before two rows' sample metrics are compared: the numbers move with each of these.
PROTOCOL_KEYS = (("extractor", "extractor"), ("weights_sha256", "weights"), ("mode", "mode"),
                 ("num_samples", "samples"), ("reference", "reference"), ("reference_count", "reference images"))


def _values(lines: list[dict], key: str) -> list[str]:
    return sorted({str(l["evaluation"].get(key)) for l in lines})


def _protocol_label(lines: list[dict], key: str) -> str:
    """How the family of ``lines`` names the protocol key ``key`` (its ``ProtocolKey.label``), else the key."""
    for name in sorted({l["trainer"] for l in lines}):
        for declared in family.get(name).protocol_keys:
            if declared.name == key:
                return declared.label
    return key


# KID's estimator is unbiased (Bińkowski et al. 2018, "Demystifying MMD GANs", §2.2): its expectation does not
# depend on how many samples either side has, so rows scored with different sample counts still compare on it.
COUNT_FREE_METRICS = {"kid"}


def protocol_difference(a: list[dict], b: list[dict], *, metric: str) -> str | None:
    """How two rows' lines measured ``metric`` differently ("10000 vs 200 samples"), or None."""
    recorded = family.recorded_metrics().get(metric)
    if recorded is not None:  # a family's own metric: the protocol keys it declares (a likelihood's test split)
        for key in recorded.protocol:
            left, right = _values(a, key), _values(b, key)
            if left != right:
                return f"{'/'.join(left)} vs {'/'.join(right)} {_protocol_label(a + b, key)}"
        return None
    for key, label in PROTOCOL_KEYS:
        if metric in COUNT_FREE_METRICS and key in ("num_samples", "reference_count"):
            continue
        left, right = _values(a, key), _values(b, key)
        if left != right:
            return f"{'/'.join(left)} vs {'/'.join(right)} {label}"
    return None


# A finding's verdict needs the difference of the means to exceed this many standard errors of the
# difference (≈ 95% two-sided for a normal difference; lenient for three seeds, whose t quantile is larger).
SIGNIFICANT_SE = 2.0


VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not comparable here", "not measured yet")


def verdict_of(finding_line: str) -> str:
    """The verdict of one line of ``verdicts`` (its first bold phrase)."""
    return next(v for v in VERDICTS if f"**{v}**" in finding_line)


def _direction(gain: float) -> str:
    return "the paper's direction" if gain > 0 else "the opposite direction"


def verdicts(spec: Spec, frame: pd.DataFrame, lines: list[dict] | None = None) -> list[str]:
    out = []
    rows = {r["row"]: r for _, r in frame.iterrows()}
    by_row: dict[str, list[dict]] = {}
    for line in lines or []:
        by_row.setdefault(line["row"], []).append(line)
    for f in spec.findings:
        prefix = f"{f.metric}_{f.which}"
        a, b = rows[f.row], rows[f.than]
        if not (_number(a[f"{prefix}_mean"]) and _number(b[f"{prefix}_mean"])):
            out.append(f"- {f.claim} — **not measured yet** ({f.row!r} or {f.than!r} has no {f.metric} record).")
            continue
        differs = protocol_difference(by_row.get(f.row, []), by_row.get(f.than, []), metric=f.metric)
        if differs:
            out.append(f"- {f.claim} — **not comparable here**: {f.row!r} and {f.than!r} measured {f.metric} with "
                       f"different protocols ({differs}).")
            continue
        # gain > 0 means the paper's direction: the metric's better side, or its worse side for expect = "worse"
        sign = (1.0 if metric_label(f.metric)[1] else -1.0) * (1.0 if f.expect == "better" else -1.0)
        gain = sign * (a[f"{prefix}_mean"] - b[f"{prefix}_mean"])
        errors = []
        for r in (a, b):
            spread, _ = uncertainty(r, prefix)
            errors.append((spread or 0.0) ** 2 / max(1, r[f"{prefix}_n"]))
        se = math.sqrt(sum(errors))
        mean_a, mean_b = a[f"{prefix}_mean"], b[f"{prefix}_mean"]
        change = a[f"{prefix}_delta_pct"] if f.than == spec.baseline.name else 100 * (mean_a - mean_b) / abs(mean_b)
        spread_text = f"±{fmt(se, digits=_digits(se))} s.e. of the difference" if se else "no ±"
        measured = f"{f.metric} {f.which}: {fmt(mean_a)} vs {fmt(mean_b)} ({change:+.1f}%, {spread_text})"
        if se == 0:  # one seed and no interval: a direction, but nothing to judge its size against
            verdict = (f"**inconclusive** ({_direction(gain)}, but one seed and no ± to test the difference "
                       f"against)")
        elif gain > SIGNIFICANT_SE * se:
            verdict = "**reproduced**"
        elif gain < -SIGNIFICANT_SE * se:
            verdict = "**not reproduced** (the opposite direction)"
        else:
            verdict = f"**inconclusive** ({_direction(gain)} by {abs(gain) / se:.1f} s.e., less than {SIGNIFICANT_SE:g})"
        paper = f" Paper: {f.paper}." if f.paper else ""
        out.append(f"- {f.claim}: {verdict} at this scale — {f.row!r} vs {f.than!r}, {measured}.{paper}")
    return out


# ------------------------------------------------------------------------------------------- rendering

def markdown(spec: Spec, header, cells, footer: list[str], findings: list[str]) -> str:
    out = [f"# {spec.title}", ""]
    if spec.paper:
        out += [f"Reproduces: {spec.paper}", ""]
    out += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    out += [""] + [line + "\n" for line in footer]
    out += ["## Findings of the papers at this scale", ""]
    out += (findings or ["(the spec lists no findings)"]) + [""]
    if spec.notes:
        out += ["## Notes", "", spec.notes, ""]
    out += [f"Plots: `{spec.name}_metrics.png`" + (f", `{spec.name}_tradeoff.png`" if spec.columns["tradeoff"] else "")
            + f"; sortable page: `{spec.name}.html`.", ""]
    return "\n".join(out)


_SORT_JS = """
function sortBy(th){const t=th.closest('table'),b=t.tBodies[0],i=[...th.parentNode.children].indexOf(th);
const asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
const k=r=>{const c=r.children[i],v=c.dataset.v;return v===undefined||v===''?null:(isNaN(+v)?v:+v)};
[...b.rows].sort((x,y)=>{const a=k(x),c=k(y);if(a===null)return 1;if(c===null)return -1;
return (a<c?-1:a>c?1:0)*(asc?1:-1)}).forEach(r=>b.appendChild(r));}
"""


def html_page(spec: Spec, header, cells, keys, footer: list[str], findings: list[str]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{e(spec.title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
           "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child"
           "{text-align:left}th{cursor:pointer;background:#f4f4f4}.scroll{overflow-x:auto;max-width:100%}"
           "code{background:#f4f4f4;padding:0 2px}img{max-width:100%}</style>",
           f"<script>{_SORT_JS}</script></head><body>", "<p><a href=\"index.html\">All leaderboards</a></p>",
           f"<h1>{e(spec.title)}</h1>"]
    if spec.paper:
        out.append(f"<p>Reproduces: {inline(spec.paper)}</p>")
    out.append("<p>Click a column header to sort.</p><div class=\"scroll\"><table><thead><tr>"
               + "".join(f"<th onclick=\"sortBy(this)\">{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row, row_keys in zip(cells, keys):
        tds = []
        for text, key in zip(row, row_keys):
            value = text if key is None else repr(float(key))
            tds.append(f"<td data-v=\"{e(str(value))}\">{e(text)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    out += [f"<p>{inline(line)}</p>" for line in footer]
    out.append("<h2>Findings of the papers at this scale</h2><ul>")
    out += [f"<li>{inline(line[2:])}</li>" for line in findings]
    out.append("</ul>")
    if spec.notes:
        out += ["<h2>Notes</h2>", blocks(spec.notes)]
    images = [f"{spec.name}_metrics.png"] + ([f"{spec.name}_tradeoff.png"] if spec.columns["tradeoff"] else [])
    out += [f"<p><img src=\"{name}\" alt=\"{name}\"></p>" for name in images]
    out.append("</body></html>\n")
    return "\n".join(out)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def plots(spec: Spec, frame: pd.DataFrame) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(frame["row"])
    metrics = spec.columns["metrics"]
    whiches = spec.columns["which"]
    # Few rows: one panel per metric with the rows along x. Many rows (their names would overlap on a
    # horizontal axis): rows down the y axis, one line per row, the panels side by side sharing it.
    vertical = len(names) > 10
    if vertical:
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 2.5, 1.2 + 0.3 * len(names)),
                                 squeeze=False, sharey=True)
    else:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for offset, which in enumerate(whiches):
            prefix = f"{metric}_{which}"
            positions = [i + 0.15 * offset for i in range(len(names))]
            means = [v if _number(v) else float("nan") for v in frame[f"{prefix}_mean"]]
            errs = [(uncertainty(r, prefix)[0] or 0.0) for _, r in frame.iterrows()]
            if vertical:
                ax.errorbar(means, positions, xerr=errs, fmt="o", capsize=3, label=which)
            else:
                ax.errorbar(positions, means, yerr=errs, fmt="o", capsize=3, label=which)
        label, higher_is_better = metric_label(metric)
        title = label + ("" if higher_is_better is None else f" ({better_side(higher_is_better)} is better)")
        if vertical:
            ax.set_yticks(range(len(names)))
            ax.set_yticklabels(names, fontsize=8)
            ax.grid(axis="y", color="#eee")
            ax.set_title(title, fontsize=9)
        else:
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
            ax.set_title(title)
        if len(whiches) > 1:
            ax.legend(fontsize=8)
    if vertical:
        axes[0][0].invert_yaxis()  # the first row on top, as in the table (the y axis is shared)
    fig.suptitle(spec.title, fontsize=10)
    fig.tight_layout()
    out = {f"{spec.name}_metrics.png": _png(fig)}
    if spec.columns["tradeoff"]:
        x, y = spec.columns["tradeoff"]
        which = spec.columns["which"][0]
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        xs = [v if _number(v) else float("nan") for v in frame[f"{x}_{which}_mean"]]
        ys = [v if _number(v) else float("nan") for v in frame[f"{y}_{which}_mean"]]
        xerr = [(uncertainty(r, f"{x}_{which}")[0] or 0.0) for _, r in frame.iterrows()]
        yerr = [(uncertainty(r, f"{y}_{which}")[0] or 0.0) for _, r in frame.iterrows()]
        # Rows are separate configurations: points, not a path. Rows that re-score the same training runs with
        # an evaluation-time option of their family form a real trade-off curve, drawn as one (BigGAN Fig. 2/4).
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o", capsize=3)
        same_runs: dict[str, list[int]] = {}
        for i, row in enumerate(spec.rows):
            training = [row.trainer, row.preset, row.budget, row.dataset, row.switches]  # all but eval options
            same_runs.setdefault(json.dumps(training, sort_keys=True, default=str), []).append(i)
        curves = [members for members in same_runs.values() if len(members) > 1]
        for number, members in enumerate(curves):
            ax.plot([xs[i] for i in members], [ys[i] for i in members], "-", color="tab:orange",
                    label="same runs, evaluation option varied" if number == 0 else None)
        if curves:
            ax.legend(fontsize=7)
        for i, (name, xv, yv) in enumerate(zip(names, xs, ys)):
            if _number(xv) and _number(yv) and not (math.isnan(xv) or math.isnan(yv)):
                # consecutive rows often land close together: alternate above and below the point
                ax.annotate(name, (xv, yv), textcoords="offset points", xytext=(4, 4 if i % 2 == 0 else -11),
                            fontsize=7)
        x_label, y_label = metric_label(x)[0], metric_label(y)[0]
        ax.set_xlabel(f"{x_label} ({which})")
        ax.set_ylabel(f"{y_label} ({which})")
        ax.set_title(f"{y_label}–{x_label} trade-off", fontsize=10)
        fig.tight_layout()
        out[f"{spec.name}_tradeoff.png"] = _png(fig)
    return out


# ------------------------------------------------------------------------------------------------ build

@dataclasses.dataclass
class Table:
    """A spec's table, computed from its records (everything the files show)."""
    spec: Spec
    lines: list[dict]
    frame: pd.DataFrame
    header: list[str]
    cells: list[list[str]]
    keys: list
    footer: list[str]
    findings: list[str]
    expected: int  # (row, seed) pairs the spec asks for


def tabulate(spec_path: str | Path, *, records_dir: Path | None = None) -> Table:
    spec = load_spec(spec_path)
    current = {(spec.rows[t.row_index].name, t.seed, t.config_hash) for t in plan(spec, runs_dir=Path("."))}
    every = rec.read_lines(records_path(spec, records_dir))
    lines = [l for l in every if rec.key(l) in current]
    frame = summarise(spec, lines)
    header, cells, keys = display(spec, frame)
    return Table(spec=spec, lines=lines, frame=frame, header=header, cells=cells, keys=keys,
                 footer=provenance(spec, lines, stale=len(every) - len(lines)),
                 findings=verdicts(spec, frame, lines), expected=len(current))


def build(spec_path: str | Path, *, records_dir: Path | None = None, tables_dir: Path | None = None) -> dict:
    """Write the table files of a spec from its records, and the folder's index page; return ``{name: Path}``."""
    from geneval.leaderboard.index import write_index

    t = tabulate(spec_path, records_dir=records_dir)
    spec = t.spec
    tables_dir = tables_dir or spec.root / "tables"
    tables_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    text_outputs = {
        f"{spec.name}.md": markdown(spec, t.header, t.cells, t.footer, t.findings),
        f"{spec.name}.csv": t.frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
        f"{spec.name}.html": html_page(spec, t.header, t.cells, t.keys, t.footer, t.findings),
    }
    for name, text in text_outputs.items():
        written[name] = write_text_atomic(tables_dir / name, text)
    for name, data in plots(spec, t.frame).items():
        written[name] = write_bytes_atomic(tables_dir / name, data)
    written["index.html"] = write_index(spec.path.parent, records_dir=records_dir, tables_dir=tables_dir)
    return written
