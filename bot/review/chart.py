"""The progress chart officers ask for with /thongke: per branch, the share of households and
adults recognised this year, against the commune's target. Drawn with matplotlib's Agg backend
(no screen needed) in DejaVu Sans, which ships with matplotlib and has every Vietnamese letter."""

from __future__ import annotations

from pathlib import Path

from bot.i18n import Translator
from bot.review.stats import CommuneStats

COLORS = ("#2E75B6", "#70AD47", "#ED7D31", "#7F6000")


def render_progress_chart(stats: CommuneStats, title_names: dict[str, str], t: Translator, path: Path) -> Path:
    """Write a PNG (about 1000 px wide) and return its path. CPU-bound: call it in a thread."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    matplotlib.rcParams["font.family"] = "DejaVu Sans"
    units = [*stats.branches, stats.total]
    labels = [u.name for u in units]
    titles = stats.titles
    height = 0.8 / max(1, len(titles))
    figure = Figure(figsize=(10, 1.2 + 0.75 * len(units) * max(1, len(titles)) / 1.5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    positions = list(range(len(units)))
    top = 10.0
    for index, title in enumerate(titles):
        subject = stats.subjects.get(title, "person")
        values = [u.rate(title, subject) or 0.0 for u in units]
        top = max(top, *values)
        offsets = [p + (index - (len(titles) - 1) / 2) * height for p in positions]
        color = COLORS[index % len(COLORS)]
        bars = axes.barh(offsets, values, height=height * 0.9, color=color, label=title_names.get(title, title))
        for bar, value in zip(bars, values):
            axes.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{value:.1f}%", va="center", fontsize=8)
        target = stats.targets.get(title)
        if target is not None:
            top = max(top, target)
            axes.axvline(target, color=color, linestyle="--", linewidth=1.2,
                         label=t("chart.target", title=title_names.get(title, title), target=f"{target:g}"))
    axes.set_yticks(positions)
    axes.set_yticklabels(labels)
    axes.invert_yaxis()
    axes.set_xlim(0, min(100.0, top * 1.15 + 2))
    axes.set_xlabel(t("chart.axis"))
    axes.set_title(t("chart.title", commune=stats.commune.name, year=stats.year))
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
