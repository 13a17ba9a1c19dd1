"""The progress chart officers ask for with /thongke: for each title, per branch and for the
commune, the share of households (or adults) registered, sent for review and recognised this
year, against the commune's target (a dashed line). Drawn with matplotlib's Agg backend (no screen
needed) in DejaVu Sans, which ships with matplotlib and has every Vietnamese letter. Numbers are
written as people read them in the chosen language (0,2% in Vietnamese)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.i18n import N_, Translator
from bot.review.stats import CommuneStats

# (what is counted, its colour): registered, sent for review, recognised.
SERIES = (
    ("registered", N_("chart.series.registered"), "#BDD7EE"),
    ("submitted", N_("chart.series.submitted"), "#5B9BD5"),
    ("recognised", N_("chart.series.recognised"), "#2E7D32"),
)
TARGET_COLOR = "#C00000"
BASES = {True: N_("chart.base.household"), False: N_("chart.base.person")}


def progress_figure(stats: CommuneStats, title_names: dict[str, str], t: Translator) -> Any:
    """The chart as a matplotlib Figure: one panel per title, one group of bars per branch."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    matplotlib.rcParams["font.family"] = "DejaVu Sans"
    units = [*stats.branches, stats.total]
    titles = stats.titles or []
    panels = max(1, len(titles))
    # Tall rather than wide: a phone shows it full width, one title under the other.
    figure = Figure(figsize=(10, 1.6 + panels * (0.9 + 0.55 * len(units))), dpi=100)
    axes_list = figure.subplots(panels, 1, squeeze=False)[:, 0]
    height = 0.26
    positions = list(range(len(units)))
    for axes, title in zip(axes_list, titles, strict=False):
        subject = stats.subjects.get(title, "person")
        name = title_names.get(title, title)
        top = 10.0
        for index, (attribute, label_key, color) in enumerate(SERIES):
            counts = [getattr(u.titles.get(title), attribute, 0) if u.titles.get(title) else 0 for u in units]
            bases = [u.base(subject) for u in units]
            values = [100.0 * c / b if b else 0.0 for c, b in zip(counts, bases, strict=False)]
            top = max(top, *values)
            offsets = [p + (index - 1) * height for p in positions]
            bars = axes.barh(offsets, values, height=height * 0.9, color=color, label=t(label_key))
            for bar, count, base, value in zip(bars, counts, bases, values, strict=False):
                text = t("chart.bar", count=t.number(count), percent=t.percent(value)) if base else t.number(count)
                axes.text(bar.get_width() + 0.4, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
        target = stats.targets.get(title)
        if target is not None:
            top = max(top, target)
            axes.axvline(
                target,
                color=TARGET_COLOR,
                linestyle="--",
                linewidth=1.5,
                label=t("chart.target", title=name, target=t.number(target, 1)),
            )
        axes.set_yticks(positions)
        axes.set_yticklabels([u.name for u in units], fontsize=10)
        axes.invert_yaxis()
        axes.set_xlim(0, min(100.0, top * 1.25 + 4))
        axes.set_xlabel(t("chart.axis", base=t(BASES[subject == "household"])))
        axes.set_title(name, fontsize=11, loc="left")
        axes.xaxis.set_major_formatter(_percent_formatter(t))
        axes.legend(loc="lower right", fontsize=8)
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle(t("chart.title", commune=stats.commune.name, year=stats.year), fontsize=12)
    figure.tight_layout()
    return figure


def _percent_formatter(t: Translator) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _pos: t.number(value, 1))


def render_progress_chart(stats: CommuneStats, title_names: dict[str, str], t: Translator, path: Path) -> Path:
    """Write a PNG (1000 px wide) and return its path. CPU-bound: call it in a thread."""
    figure = progress_figure(stats, title_names, t)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
