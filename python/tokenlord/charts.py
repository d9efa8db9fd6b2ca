"""Small server-rendered SVG bar charts for the pages' trends: no JavaScript, no
external resource, every label escaped (team and reason names are input).

:func:`bars` draws one bar group per week: ``overlay`` puts the series on top
of each other (raw tokens behind effective tokens, cost behind wasted cost),
``stack`` piles them up (waste by reason). Each bar has a ``<title>`` (a
tooltip and what a screen reader says) and the chart an ``aria-label``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final, Literal

__all__ = ["PALETTE", "Series", "bars"]

# Colours for stacked series (waste reasons), in order; readable on the page's dark background.
PALETTE: Final = ("#fc4a1a", "#f7b733", "#b06ab3", "#4ecdc4", "#ff6b6b", "#c7f464", "#556270", "#e0e4cc")

WIDTH: Final = 480
HEIGHT: Final = 160
_PAD_LEFT, _PAD_BOTTOM, _PAD_TOP = 8, 22, 8


@dataclass(frozen=True)
class Series:
    name: str
    color: str  # a CSS colour from this module or the caller's constants, never input
    values: Sequence[float]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def bars(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    mode: Literal["overlay", "stack"] = "overlay",
    number: Callable[[float], str] = lambda v: f"{v:,.0f}",
) -> str:
    """An SVG chart with one bar group per label (oldest first)."""
    n = len(labels)
    if any(len(s.values) != n for s in series):
        raise ValueError("every series needs one value per label")
    if mode == "stack":
        tops = [sum(max(0.0, float(s.values[i])) for s in series) for i in range(n)]
    else:
        tops = [max((max(0.0, float(s.values[i])) for s in series), default=0.0) for i in range(n)]
    peak = max(tops, default=0.0) or 1.0
    plot_h = HEIGHT - _PAD_BOTTOM - _PAD_TOP
    slot = (WIDTH - _PAD_LEFT) / max(n, 1)
    bar_w = max(4.0, slot * 0.62)
    parts = []
    for i, label in enumerate(labels):
        x = _PAD_LEFT + i * slot + (slot - bar_w) / 2
        base = float(HEIGHT - _PAD_BOTTOM)
        for k, s in enumerate(series):
            v = max(0.0, float(s.values[i]))
            h = plot_h * v / peak
            if mode == "overlay":  # later series narrower, in front
                inset = bar_w * 0.18 * k
                rx, rw, ry = x + inset, bar_w - 2 * inset, base - h
            else:
                rx, rw, ry = x, bar_w, base - h
                base -= h
            parts.append(
                f'<rect x="{rx:.1f}" y="{ry:.1f}" width="{rw:.1f}" height="{h:.1f}" fill="{_e(s.color)}" '
                f'data-series="{_e(s.name)}" data-value="{v:g}"><title>{_e(label)}: {_e(s.name)} '
                f"{_e(number(v))}</title></rect>"
            )
        if n <= 12 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="10" '
                f'fill="#8d93bd">{_e(label[5:] if len(label) == 10 else label)}</text>'
            )
    legend = "".join(f'<span class="key"><i style="background:{_e(s.color)}"></i>{_e(s.name)}</span>' for s in series)
    summary = f"{title}, {labels[0]} to {labels[-1]}" if labels else title
    return (
        f'<figure class="chart" id="{_e(chart_id)}"><figcaption>{_e(title)} '
        f'<span class="legend">{legend}</span></figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{_e(summary)}">'
        f'<line x1="{_PAD_LEFT}" y1="{HEIGHT - _PAD_BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - _PAD_BOTTOM}" '
        f'stroke="#3b4170"/>{"".join(parts)}</svg></figure>'
    )
