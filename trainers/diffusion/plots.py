"""FID vs sampling steps S from a leaderboard's records (``geneval train ddpm-steps-plot``)."""

from __future__ import annotations

from pathlib import Path


def steps_plot(records: str | Path, *, out: str | Path, metric: str = "fid") -> str:
    """One line per (sampler, η): ``metric`` of the final checkpoint vs S (log axis) through the points with the
    series' largest sample count (others hollow, annotated with theirs), KID (comparable across sample counts,
    unlike FID) and seconds per 1,000 samples beside it. Returns a text summary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geneval.leaderboard.records import read_lines

    series: dict[str, list[tuple[int, float, float | None, int, float | None]]] = {}
    for line in read_lines(Path(records)):
        e = line["evaluation"]
        m = line["metrics"].get("final", {})
        if e.get("sampling_steps") is None or m.get(metric, {}).get("value") is None:
            continue
        name = e["sampler"] if e.get("eta") is None else f"{e['sampler']} η = {e['eta']:g}"
        cost = m.get("sampling_s_per_1000", {}).get("value")
        kid = m.get("kid", {}).get("value")
        series.setdefault(name, []).append((e["sampling_steps"], m[metric]["value"], cost, e.get("num_samples"), kid))
    fig, (ax, kx, bx) = plt.subplots(1, 3, figsize=(15, 4))
    lines = []
    for name, points in sorted(series.items()):
        points.sort()
        steps = [p[0] for p in points]
        # FID is biased upwards at small N, so only the points with the series' largest sample count are joined;
        # a point scored on fewer samples (the 1000-step chain) stands apart, hollow
        most = max(p[3] or 0 for p in points)
        joined = [p for p in points if (p[3] or 0) == most]
        (line,) = ax.plot([p[0] for p in joined], [p[1] for p in joined], marker="o", label=f"{name} (n = {most})")
        apart = [p for p in points if (p[3] or 0) != most]
        if apart:
            ax.plot([p[0] for p in apart], [p[1] for p in apart], marker="o", linestyle="none", markerfacecolor="none",
                    color=line.get_color())
        for s, v, _, n, _ in apart:
            ax.annotate(f"n = {n}", (s, v), textcoords="offset points", xytext=(4, 3), fontsize=7)
        if any(p[4] is not None for p in points):
            kx.plot(steps, [p[4] for p in points], marker="o", label=name)
        if any(p[2] is not None for p in points):
            bx.plot(steps, [p[2] for p in points], marker="o", label=name)
        lines.append(f"{name}: " + ", ".join(f"S={s}: {v:.2f} (n={n})" for s, v, _, n, _ in points))
    for axis, ylabel in ((ax, metric.upper()), (kx, "KID"), (bx, "seconds per 1,000 samples")):
        axis.set_xscale("log")
        axis.set_xlabel("sampling steps S")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        axis.legend()
    bx.set_yscale("log")
    ax.set_title(f"{metric.upper()} vs S (hollow: fewer samples, not comparable)")
    kx.set_title("KID vs S (comparable across sample counts)")
    bx.set_title("sampling cost on this CPU")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return "\n".join(lines)
