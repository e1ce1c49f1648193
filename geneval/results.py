"""Results and the record of one evaluation: values with their provenance, as a table or as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from geneval.metrics.base import better_side


@dataclass
class Result:
    """One metric value. ``label`` always names the extractor, e.g. ``FID (fashion-mnist-cnn)``."""

    metric: str
    label: str
    value: float
    std: float | None
    higher_is_better: bool | None  # None: no better side (MetricSpec)
    layer: str | None
    details: dict = field(default_factory=dict)

    def formatted(self, digits: int = 4) -> str:
        """``value ± std``, or with a bootstrap interval ``value ± half-width (95% CI)`` (the std stays in JSON)."""
        text = _fmt(self.value, digits)
        if self.details.get("ci_half_width") is not None:
            level = f"{100 * self.details['ci_level']:g}%"
            return f"{text} ± {_fmt(self.details['ci_half_width'], digits)} ({level} CI)"
        return text if self.std is None else f"{text} ± {_fmt(self.std, digits)}"


@dataclass
class Record:
    """Everything one ``geneval score`` measured, and how: enough to decide whether two numbers compare."""

    results: list[Result]
    provenance: dict
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"results": [asdict(r) for r in self.results], "provenance": self.provenance, "warnings": self.warnings}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False, default=_json_default)

    def table(self) -> str:
        rows = [("metric", "value", "better", "n (gen / ref)")]
        for r in self.results:
            counts = f"{r.details.get('num_gen', '?')} / {r.details.get('num_ref', '-')}"
            rows.append((r.label, r.formatted(), better_side(r.higher_is_better), counts))
        lines = align_columns(rows).splitlines()
        ext = self.provenance.get("extractor", {})
        lines.append("")
        lines.append(
            f"extractor {ext.get('extractor')} (mode {ext.get('mode')}, weights sha256 "
            f"{str(ext.get('weights_sha256'))[:12]}…); reference: {self.provenance.get('reference', {}).get('cache', '-')}"
        )
        return "\n".join(lines)

    def __getitem__(self, metric: str) -> Result:
        for r in self.results:
            if r.metric == metric:
                return r
        raise KeyError(metric)


def align_columns(rows: list[tuple[str, ...]]) -> str:
    """Plain-text table: the first row is the header, underlined; columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: float, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:.{digits}e}"
    return f"{value:.{digits}f}"


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")
