"""Bar charts drawn by the server as inline SVG: the geometry here, the drawing in the template (no script, no
style attribute, so the page keeps to the strict content security policy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PLOT_HEIGHT = 100  # the tallest bar; labels go below
LABEL_HEIGHT = 16


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    figure: str  # the bar's data-figure name
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class BarChart:
    title: str
    width: int
    height: int
    bars: tuple[Bar, ...]
    label_every: int  # show every n-th label (24 hour labels do not fit a phone)

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def bar_chart(
    title: str, values: Sequence[int], labels: Sequence[str], figures: Sequence[str], *, bar_width: int = 20
) -> BarChart:
    """Bars scaled to the largest value (a value above zero is always at least one unit high, so it shows)."""
    top = max(values, default=0)
    gap = max(2, bar_width // 5)
    bars = []
    for n, (value, label, figure) in enumerate(zip(values, labels, figures, strict=True)):
        height = 0.0 if not top else max(1.0, PLOT_HEIGHT * value / top) if value else 0.0
        x = n * (bar_width + gap)
        bars.append(Bar(label, value, figure, x, PLOT_HEIGHT - height, bar_width, height))
    width = len(values) * (bar_width + gap) - gap if values else 0
    return BarChart(title, width, PLOT_HEIGHT + LABEL_HEIGHT, tuple(bars), 3 if len(values) > 12 else 1)
