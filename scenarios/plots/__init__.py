"""Small plotting helpers shared by the scenarios (matplotlib, Agg backend)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

MEASURED, PREDICTED, DEDICATED = "tab:blue", "black", "tab:green"


def figure(title: str, xlabel: str, ylabel: str, log_y: bool = False) -> tuple[Figure, object]:
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("symlog", linthresh=1e-4)
    ax.grid(alpha=0.3)
    return fig, ax


def line(ax: Axes, x: Sequence, y: Sequence, label: str, color: str, style: str = "-o", **style_kw) -> None:
    """One series, skipping missing points; ``style_kw`` goes to matplotlib (ms, mfc, zorder)."""
    pts = [(a, b) for a, b in zip(x, y) if b is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label, color=color, **({"ms": 4} | style_kw))


def value_ticks(ax: Axes, values: Sequence[float]) -> None:
    """Ticks on a log x axis at the values measured, labelled plainly (25, 50, 100) and nothing
    else: the default minor labels (3 x 10^1, 4 x 10^1, ...) run into each other."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ticks = sorted(set(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(ticks, [f"{v:g}" for v in ticks])


def count(n: int, noun: str) -> str:
    """'1 dimension', '2 dimensions'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def finish(ax: Axes, integer_x: bool = False) -> None:
    """Legend beside the axes (never over the curves); integer ticks when x counts layers."""
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
