"""Bars: numbers drawn as lengths.

    chart = BarChart(theme, 16, unit=3.0, labels=[str(e) for e in range(16)])  # one bar per expert
    self.play(chart.animate_values(scores))              # bars grow to the values (negative ones hang down)
    ticks = LevelTicks(chart).set_values(scores + bias)   # a tick per slot at another value
    x = VectorBar(theme, 4.0, segments=4)                 # a vector whose length is its width (d = 4 l)
    w_down = Projection(theme, 4.0, 1.0, 1.2)             # the trapezoid of a projection d -> l
    share = SplitBar(theme, 0.99, width=3.0)              # a whole split into two parts

Pieces never read a trace: the scene hands them plain numbers (toy_model.viz.views scales a trace's). Each is
a VGroup with typed keyword options whose methods return self, as in toy_model.viz.stack. Colours come from
the theme; a bar's fill and a tick's stroke must keep 3:1 against what they sit on
(toy_model.viz.legibility), which the theme's text, muted and accent colours do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from manim import DOWN, LEFT, ORIGIN, RIGHT, UP, DashedLine, Line, Polygon, Rectangle, Transform, VGroup

from toy_model.viz.text import label
from toy_model.viz.theme import Theme


class BarChart(VGroup):
    """`n` vertical bars on a baseline, in slots `slot` wide, a bar `unit` scene units tall per 1 of value; a
    negative value hangs below the baseline. Optional labels under the slots (e.g. expert numbers).

    bars[i] is bar i; the baseline's left end is the chart's origin, so `point(i, v)` is where value v of bar
    i lies on screen (for ticks, numbers, arrows)."""

    def __init__(self, theme: Theme, n: int, *, slot: float = 0.5, bar_width: float = 0.34, unit: float = 1.0,
                 color: str | None = None, labels: Sequence[str] = (), label_size: float = 18,
                 offset: float = 0.0, baseline: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.n, self.slot, self.unit, self.offset = theme, n, slot, unit, offset
        self.color = color or theme.moe
        self.values = np.zeros(n)
        # always there, if unseen: its left end is the chart's origin wherever the chart is moved
        self.baseline = Line(ORIGIN, RIGHT * n * slot, stroke_color=theme.muted, stroke_width=2,
                             stroke_opacity=1 if baseline else 0)
        self.bars = VGroup(*[Rectangle(width=bar_width, height=0.01, stroke_width=0, fill_color=self.color,
                                       fill_opacity=1) for _ in range(n)])
        self.labels = VGroup()  # an empty string leaves its slot unlabelled (e.g. every other one of many)
        for i, text in enumerate(labels):
            if text:
                t = label(text, font_size=label_size, color=theme.text)
                self.labels.add(t.move_to([(i + 0.5) * slot, 0, 0]).shift(DOWN * (0.1 + t.height / 2)))
        self.add(self.baseline, self.bars, self.labels)
        self.set_values(self.values)

    # ---- geometry
    @property
    def origin(self) -> np.ndarray:
        """The baseline's left end."""
        return self.baseline.get_start()

    def point(self, i: int, value: float) -> np.ndarray:
        """Screen point of `value` above slot i's centre (the bar's centre line)."""
        o = self.origin
        return np.array([o[0] + (i + 0.5) * self.slot + self.offset, o[1] + value * self.unit, 0.0])

    # ---- values
    def set_values(self, values: Sequence[float]) -> BarChart:
        self._fit(self.bars, values)
        return self

    def animate_values(self, values: Sequence[float], **kwargs) -> Transform:
        """set_values as an animation of the bars alone (no text is copied)."""
        target = self.bars.copy()
        self._fit(target, values)
        return Transform(self.bars, target, **kwargs)

    def _fit(self, bars, values):
        values = np.asarray(values, dtype=float)
        assert values.shape == (self.n,), (values.shape, self.n)
        self.values = values
        for i, (bar, v) in enumerate(zip(bars, values, strict=True)):
            h = max(abs(float(v)) * self.unit, 0.01)
            bar.stretch_to_fit_height(h)
            bar.move_to(self.point(i, 0.0), aligned_edge=DOWN if v >= 0 else UP)

    def set_colors(self, colors: Sequence[str]) -> BarChart:
        """A fill colour per bar (e.g. the chosen experts in the accent, the others muted)."""
        for bar, c in zip(self.bars, colors, strict=True):
            bar.set_fill(c, opacity=1)
        return self


class LevelTicks(VGroup):
    """A short horizontal line per slot of `chart` at a value (e.g. a score plus its bias), with a thin stem
    from the bar's top to it, so a tick reads as 'this bar, moved by so much'."""

    def __init__(self, chart: BarChart, *, color: str | None = None, width: float | None = None,
                 stroke: float = 3.0, stems: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.chart = chart
        color = color or chart.theme.text
        w = width if width is not None else chart.slot * 0.9
        self.ticks = VGroup(*[Line(LEFT * w / 2, RIGHT * w / 2, stroke_color=color, stroke_width=stroke)
                              for _ in range(chart.n)])
        self.stems = VGroup(*[Line(ORIGIN, UP * 0.01, stroke_color=color, stroke_width=stroke * 0.6)
                              for _ in range(chart.n)]) if stems else VGroup()
        self.add(self.stems, self.ticks)
        self.set_values(chart.values)

    def set_values(self, values: Sequence[float]) -> LevelTicks:
        self._fit(self, values)
        return self

    def animate_values(self, values: Sequence[float], **kwargs) -> Transform:
        target = self.copy()
        self._fit(target, values)
        return Transform(self, target, **kwargs)

    def _fit(self, group, values):
        ticks, stems = group.submobjects[1], group.submobjects[0]
        for i, v in enumerate(values):
            top = self.chart.point(i, float(v))
            ticks[i].move_to(top)
            if stems.submobjects:
                base = self.chart.point(i, float(self.chart.values[i]))
                stems[i].put_start_and_end_on(base, top + (UP * 1e-3 if np.allclose(base, top) else 0))


class VectorBar(VGroup):
    """A vector drawn as a bar whose length is its width (length scene units), along `direction` (UP: a
    column), optionally cut into `segments` equal parts by ticks (d = 4 l shows as four parts)."""

    def __init__(self, theme: Theme, length: float, *, thickness: float = 0.34, segments: int = 1,
                 color: str | None = None, fill_opacity: float = 1.0, direction=UP, **kwargs):
        super().__init__(**kwargs)
        color = color or theme.text
        vertical = abs(direction[1]) > 0
        w, h = (thickness, length) if vertical else (length, thickness)
        self.body = Rectangle(width=w, height=h, stroke_color=color, stroke_width=2.5, fill_color=color,
                              fill_opacity=fill_opacity)
        self.cuts = VGroup()
        for j in range(1, segments):
            f = j / segments - 0.5
            if vertical:
                self.cuts.add(Line([-w / 2, f * h, 0], [w / 2, f * h, 0], stroke_color=theme.background,
                                   stroke_width=3))
            else:
                self.cuts.add(Line([f * w, -h / 2, 0], [f * w, h / 2, 0], stroke_color=theme.background,
                                   stroke_width=3))
        self.add(self.body, self.cuts)


class Projection(VGroup):
    """A linear map between two widths as a trapezoid: `h_in` tall on the left, `h_out` on the right,
    `length` long (a down-projection narrows, an up-projection widens)."""

    def __init__(self, theme: Theme, h_in: float, h_out: float, length: float, *, color: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        color = color or theme.moe
        self.shape = Polygon([0, h_in / 2, 0], [length, h_out / 2, 0], [length, -h_out / 2, 0], [0, -h_in / 2, 0],
                             stroke_color=color, stroke_width=2.5, fill_color=theme.panel, fill_opacity=1)
        self.add(self.shape)


class SplitBar(VGroup):
    """A horizontal bar `width` long split at `share` (in [0, 1]): the first part filled, the rest outlined."""

    def __init__(self, theme: Theme, share: float, *, width: float = 3.0, height: float = 0.26,
                 color: str | None = None, rest_color: str | None = None, **kwargs):
        super().__init__(**kwargs)
        share = float(np.clip(share, 0.0, 1.0))
        color, rest_color = color or theme.moe, rest_color or theme.text
        self.frame = Rectangle(width=width, height=height, stroke_color=rest_color, stroke_width=2, fill_opacity=0)
        self.part = Rectangle(width=max(width * share, 0.01), height=height, stroke_width=0, fill_color=color,
                              fill_opacity=1).align_to(self.frame, LEFT)
        self.add(self.part, self.frame)


def dashed_level(chart: BarChart, value: float, *, color: str | None = None, overhang: float = 0.1) -> DashedLine:
    """A dashed horizontal line across `chart` at `value` (a mean, a cut-off)."""
    o = chart.origin
    y = o[1] + value * chart.unit
    return DashedLine([o[0] - overhang, y, 0], [o[0] + chart.n * chart.slot + overhang, y, 0],
                      stroke_color=color or chart.theme.text, stroke_width=2, dash_length=0.08)
