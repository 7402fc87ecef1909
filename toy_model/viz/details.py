"""What happens inside a block: one picture per layer kind, all with one interface.

    detail = make_detail("moe", theme, view)       # the picture for a layer kind, sized for the trace
    detail.enter(view, layer, t)                   # instantly: the layer as it stands before token t
    self.play(detail.show(view, layer, t, 0.3))    # the layer at work on token t

    kind        picture          what show() plays
    mamba       StateGauge       each head's state decays by exp(A Delta), then takes in the token
    moe         ExpertGrid       the chosen experts light by gate weight, the shared expert by its share
                                 (between the d -> l -> d squeeze of a LatentMoE)
    attention   AttentionStrip   the earlier tokens attended to most light up on a timeline, with weights
    mlp         DenseMLP         nothing to choose: every token goes through at full width

A scene composes details and never branches on the kind (ManimML's one class per layer kind with the same
forward method). Numbers come from toy_model.viz.views: a detail never reads a trace itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from manim import (
    DOWN,
    LEFT,
    ORIGIN,
    RIGHT,
    UP,
    Animation,
    Line,
    Polygon,
    Rectangle,
    RoundedRectangle,
    Succession,
    Transform,
    VGroup,
    Wait,
)

from toy_model.viz.emoji import token_label
from toy_model.viz.legibility import MIN_FONT_SIZE, TEXT_CONTRAST, contrast_ratio
from toy_model.viz.text import label, shorten, show_spaces, text_units
from toy_model.viz.theme import Theme, mix
from toy_model.viz.views import TraceView


class Detail(VGroup):
    """The interface every layer kind's picture implements (see the module docstring)."""

    kind = ""

    @classmethod
    def for_view(cls, theme: Theme, view: TraceView, **sizes) -> Detail:
        """The picture sized for the trace behind `view` (its number of heads, experts, ...)."""
        return cls(theme, **sizes)

    def enter(self, view: TraceView, layer: int, t: int) -> Detail:
        """Set the picture, without animation, to how `layer` stands before token t reaches it."""
        raise NotImplementedError

    def show(self, view: TraceView, layer: int, t: int, run_time: float) -> Animation:
        """An animation, `run_time` seconds long, of what `layer` does with token t (instant set-up done here)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------------
# mamba


class StateGauge(Detail):
    """One bar per Mamba-2 head showing its state size in [0, 1], with a tick at the previous level, so a
    state that grows or decays is seen to."""

    kind = "mamba"

    @classmethod
    def for_view(cls, theme: Theme, view: TraceView, **sizes) -> StateGauge:
        return cls(theme, n_heads=view.n_mamba_heads, **sizes)

    def __init__(self, theme: Theme, *, n_heads: int = 8, bar_width: float = 0.22, gap: float = 0.12,
                 height: float = 0.7, color: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.bar_height = theme, height
        self.color = color or theme.mamba
        width = n_heads * bar_width + (n_heads - 1) * gap
        self.wells = VGroup(*[Rectangle(width=bar_width, height=height, stroke_width=0,
                                        fill_color=theme.cell_off, fill_opacity=1) for _ in range(n_heads)])
        self.wells.arrange(RIGHT, buff=gap)
        self.baseline = Line(self.wells.get_corner(DOWN + LEFT) + LEFT * 0.05,
                             self.wells.get_corner(DOWN + RIGHT) + RIGHT * 0.05,
                             stroke_color=theme.muted, stroke_width=1.5)
        self.bars = VGroup(*[Rectangle(width=bar_width, height=height, stroke_width=0, fill_color=self.color,
                                       fill_opacity=1) for _ in range(n_heads)])
        self.ticks = VGroup(*[Line(LEFT * bar_width * 0.75, RIGHT * bar_width * 0.75, stroke_color=theme.text,
                                   stroke_width=2) for _ in range(n_heads)])
        for well, bar, tick in zip(self.wells, self.bars, self.ticks, strict=True):
            bar.move_to(well)
            tick.move_to(well)
        assert abs(width - self.wells.width) < 1e-6
        # Bars over ticks: a tick is wider than its bar, so a level the state has grown past still shows on
        # both sides of it. (What block_flow has always shown: the Succession that show() returns used to
        # lift the bars above the ticks, which toy_model.viz.scene.FastScene no longer lets happen.)
        self.add(self.wells, self.baseline, self.ticks, self.bars)
        self.set_levels(np.zeros(n_heads))
        self.set_ticks(np.zeros(n_heads))

    def enter(self, view: TraceView, layer: int, t: int) -> StateGauge:
        before, _, _ = view.mamba_levels(layer, t)
        return self.set_ticks(before).set_levels(before)

    def show(self, view: TraceView, layer: int, t: int, run_time: float) -> Animation:
        # s_t = exp(A Delta) s_(t-1) + Delta B x: first the old state decays, then the token is written
        before, decayed, after = view.mamba_levels(layer, t)
        self.set_ticks(before).set_levels(before)
        return Succession(self.animate_levels(decayed, run_time=run_time / 2),
                          self.animate_levels(after, run_time=run_time / 2))

    def set_levels(self, levels: Sequence[float]) -> StateGauge:
        self._fit(self.bars, levels)
        return self

    def animate_levels(self, levels: Sequence[float], **kwargs) -> Transform:
        """set_levels as an animation of the bars alone."""
        target = self.bars.copy()
        self._fit(target, levels)
        return Transform(self.bars, target, **kwargs)

    def _fit(self, bars, levels):
        for well, bar, v in zip(self.wells, bars, levels, strict=True):
            h = max(float(np.clip(v, 0, 1)) * self.bar_height, 0.01)
            bar.stretch_to_fit_height(h)
            bar.move_to(well.get_bottom(), aligned_edge=DOWN)

    def set_ticks(self, levels: Sequence[float]) -> StateGauge:
        for well, tick, v in zip(self.wells, self.ticks, levels, strict=True):
            tick.move_to(well.get_bottom() + UP * float(np.clip(v, 0, 1)) * self.bar_height)
        return self


# ------------------------------------------------------------------------------------------------
# moe


class ExpertGrid(Detail):
    """The routed experts as a grid of cells lit 0..1, and the always-on shared expert beside them."""

    kind = "moe"

    @classmethod
    def for_view(cls, theme: Theme, view: TraceView, **sizes) -> ExpertGrid:
        """Sized for the trace; with its latent width known, the d -> l -> d squeeze is drawn around the cells."""
        cfg = view.config
        if cfg.get("moe_latent_size") and "squeeze" not in sizes:
            sizes["squeeze"] = cfg["d_model"] / cfg["moe_latent_size"]
        return cls(theme, n_experts=view.n_experts, **sizes)

    IDLE_STROKE = 1.6  # an unlit cell's outline: the fill alone would be too faint against the block (1.3:1)

    def __init__(self, theme: Theme, *, n_experts: int = 16, rows: int = 2, cell: float = 0.3,
                 gap: float = 0.06, color: str | None = None, squeeze: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.color = theme, color or theme.moe
        cols = -(-n_experts // rows)
        self.cells = VGroup(*[
            RoundedRectangle(width=cell, height=cell, corner_radius=0.04, stroke_width=self.IDLE_STROKE,
                             stroke_color=theme.muted, fill_color=theme.cell_off, fill_opacity=1)
            for _ in range(n_experts)
        ])
        for e, c in enumerate(self.cells):
            c.move_to([(e % cols) * (cell + gap), -(e // cols) * (cell + gap), 0])
        height = rows * cell + (rows - 1) * gap
        self.shared = RoundedRectangle(width=cell * 1.4, height=height, corner_radius=0.04,
                                       stroke_width=self.IDLE_STROKE, stroke_color=theme.muted,
                                       fill_color=theme.cell_off, fill_opacity=1)
        self.lamps = VGroup(self.cells, self.shared)  # what lights up; animated without the label
        self.squeeze = VGroup()
        if squeeze:  # d -> l before the routed experts, l -> d after them: widths drawn as heights, d / l = alpha
            tall, short = height * 1.25, height * 1.25 / squeeze
            left = self.cells.get_left()[0] - 3 * gap
            down = Polygon([left - 0.26, tall / 2, 0], [left, short / 2, 0], [left, -short / 2, 0],
                           [left - 0.26, -tall / 2, 0])
            right = self.cells.get_right()[0] + 3 * gap
            up = Polygon([right, short / 2, 0], [right + 0.26, tall / 2, 0], [right + 0.26, -tall / 2, 0],
                         [right, -short / 2, 0])
            for shape in (down, up):
                shape.set_stroke(theme.muted, width=1.5).set_fill(theme.cell_off, opacity=1)
                shape.shift(UP * self.cells.get_center()[1])
            self.squeeze.add(down, up)
        self.shared.next_to(self.squeeze if squeeze else self.cells, RIGHT, buff=gap * 3)
        self.shared_label = label("S", font_size=18, color=theme.text).move_to(self.shared)
        self.add(self.squeeze, self.lamps, self.shared_label)

    def enter(self, view: TraceView, layer: int, t: int) -> ExpertGrid:
        return self.set_levels(np.zeros(len(self.cells)), 0.0)

    def show(self, view: TraceView, layer: int, t: int, run_time: float) -> Animation:
        levels, shared = view.moe_levels(layer, t)
        return self.animate_levels(levels, shared, run_time=run_time)

    def set_levels(self, levels: Sequence[float], shared: float = 0.0) -> ExpertGrid:
        """levels (n_experts,) in [0, 1]: 0 unlit, 1 fully lit; shared in [0, 1] lights the shared cell."""
        self._light(self.cells, self.shared, levels, shared)
        return self

    def animate_levels(self, levels: Sequence[float], shared: float = 0.0, **kwargs) -> Transform:
        """set_levels as an animation that copies only the cells (cheap: no text)."""
        target = self.lamps.copy()
        self._light(target[0], target[1], levels, shared)
        return Transform(self.lamps, target, **kwargs)

    def _light(self, cells, shared_cell, levels, shared):
        for c, v in zip(cells, levels, strict=True):
            v = float(np.clip(v, 0, 1))
            c.set_fill(mix(self.theme.cell_off, self.color, v), opacity=1)
            c.set_stroke(self.color if v > 0 else self.theme.muted, width=2.2 if v > 0 else self.IDLE_STROKE)
        s = float(np.clip(shared, 0, 1))
        shared_cell.set_fill(mix(self.theme.cell_off, self.color, s), opacity=1)


# ------------------------------------------------------------------------------------------------
# attention


def chip_text(s: str, limit: int = 6) -> str:
    """A token shortened to fit an attention chip (a leading space dropped: the chip shows the boundary)."""
    return shorten(s.strip(" ") or show_spaces(s), limit)


@functools.lru_cache(maxsize=16)
def lit_fraction(off: str, color: str, text: str) -> float:
    """How far towards `color` a fully lit chip goes (at most 60 %), so that `text` on it keeps 4.5:1 contrast."""
    for f in np.arange(0.6, 0.0, -0.05):
        if contrast_ratio(text, mix(off, color, float(f)).to_hex()) >= TEXT_CONTRAST:
            return float(f)
    return 0.0


@functools.lru_cache(maxsize=64)
def _chip_box(width: float, height: float, stroke_width: float) -> RoundedRectangle:
    # Rounding the corners takes milliseconds a box, a copy a few hundredths of one; an attention strip
    # makes five boxes per token.
    return RoundedRectangle(width=width, height=height, corner_radius=0.06, fill_opacity=1, stroke_width=stroke_width)


class Chips(VGroup):
    """Tokens as chips lit by a level in [0, 1], each with its weight written under it; the chip at `current`
    (the token itself) has a heavier outline. With `positions` (0..1 along a timeline of the tokens so far) the
    chips stand over their tokens' places on a line with a tick per token, pushed apart only as far as they
    must not overlap; without, they sit side by side."""

    def __init__(self, theme: Theme, texts: Sequence[str] = (), levels: Sequence[float] = (), *,
                 chip_width: float = 0.72, chip_height: float = 0.42, gap: float = 0.06,
                 current: int | None = None, color: str | None = None, weights: Sequence[float] | None = None,
                 positions: Sequence[float] | None = None, n_ticks: int = 0, width: float = 3.6, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.color = theme, color or theme.attention
        self.levels = [float(np.clip(v, 0, 1)) for v in levels]
        self.boxes = VGroup(*[_chip_box(chip_width, chip_height, 3.5 if j == current else 1.5).copy()
                              for j in range(len(self.levels))])
        if positions is None:
            self.boxes.arrange(RIGHT, buff=gap)
        else:  # over the timeline, left to right, no overlap, inside [-width / 2, width / 2]
            xs, last = [], -np.inf
            for p in positions:
                x = max(-width / 2 + chip_width / 2 + float(p) * (width - chip_width), last + chip_width + gap)
                xs.append(x)
                last = x
            overflow = (xs[-1] + chip_width / 2 - width / 2) if xs else 0.0
            for box, x in zip(self.boxes, xs, strict=True):
                box.move_to([x - max(overflow, 0.0), 0, 0])
        self._light(self.boxes, self.levels)
        self.texts = VGroup(*[self._fit_text(s, chip_width - 0.08).move_to(box)
                              for s, box in zip(texts, self.boxes, strict=True)])
        self.weights = VGroup()
        if weights is not None:
            for w, box in zip(weights, self.boxes, strict=True):
                self.weights.add(label(f"{100 * w:.0f}%" if w >= 0.01 else "<1%", font_size=18, color=theme.text)
                                 .next_to(box, DOWN, buff=0.05))
        self.timeline = VGroup()
        if positions is not None and n_ticks > 0:
            y = self.boxes.get_top()[1] + 0.07 if self.boxes.submobjects else 0.3
            line = Line([-width / 2, y, 0], [width / 2, y, 0], stroke_color=theme.muted, stroke_width=1.5)
            ticks = [Line([x, y - 0.04, 0], [x, y + 0.04, 0], stroke_color=theme.muted, stroke_width=1.5)
                     for x in np.linspace(-width / 2 + chip_width / 2, width / 2 - chip_width / 2, n_ticks)]
            self.timeline.add(line, *ticks)
        self.add(self.timeline, self.boxes, self.texts, self.weights)

    def _fit_text(self, s: str, width: float):
        """The token's text at a legible size (never scaled down): shortened until it fits the chip."""
        units = len(text_units(s))
        while True:
            t = token_label(s, font_size=MIN_FONT_SIZE, color=self.theme.text, halo=self.theme.emoji_halo)
            if t.width <= width or units <= 2:
                return t
            units -= 1
            s = shorten(s, units)

    def _light(self, boxes, levels):
        top = lit_fraction(self.theme.cell_off, self.color, self.theme.text)
        for box, v in zip(boxes, levels, strict=True):
            box.set_fill(mix(self.theme.cell_off, self.color, top * v), opacity=1)
            box.set_stroke(self.color if v > 0.05 else self.theme.muted)

    def animate_in(self, **kwargs) -> Transform:
        """Start unlit and light the chips to their levels (the texts stay put)."""
        target = self.boxes.copy()
        self._light(self.boxes, [0.0] * len(self.levels))
        return Transform(self.boxes, target, **kwargs)


class AttentionStrip(Detail):
    """The earlier tokens the current one attends to most (weights averaged over heads), as chips on a timeline
    of the tokens so far, each lit by its weight with the weight written under it; the token's own chip has a
    heavier outline. The chips are rebuilt per token, centred where the strip was placed."""

    kind = "attention"

    def __init__(self, theme: Theme, *, n_chips: int = 4, chip_width: float = 0.72, width: float = 3.6,
                 timeline: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.n_chips, self.chip_width, self.width = theme, n_chips, chip_width, width
        self.timeline = timeline
        self.chips = Chips(theme)
        self.anchor = ORIGIN.copy()
        self.add(self.chips)

    def move_to(self, point_or_mobject, *args, **kwargs) -> AttentionStrip:
        """Also moves where later chips are centred (the strip may be empty)."""
        self.anchor = np.array(point_or_mobject.get_center() if hasattr(point_or_mobject, "get_center")
                               else point_or_mobject, dtype=float)
        if self.chips.submobjects:
            self.chips.move_to(self.anchor)
        return self

    def _replace(self, chips: Chips) -> Chips:
        self.remove(self.chips)
        self.chips = chips.move_to(self.anchor) if chips.submobjects else chips
        self.add(self.chips)
        return self.chips

    def enter(self, view: TraceView, layer: int, t: int) -> AttentionStrip:
        self._replace(Chips(self.theme))  # no attention yet for this token
        return self

    def show(self, view: TraceView, layer: int, t: int, run_time: float) -> Animation:
        keys, levels = view.attention_keys(layer, t, self.n_chips)
        weights = view.trace.attention(layer, t).mean(axis=0)[keys]
        texts = [chip_text(view.trace.display_text(int(s))) for s in keys]
        current = int(np.flatnonzero(keys == t)[0]) if t in keys else None
        positions = keys / max(t, 1)  # where on the tokens so far: the earliest at the left, this one at the right
        chips = self._replace(Chips(self.theme, texts, levels, current=current, chip_width=self.chip_width,
                                    weights=weights, positions=positions, n_ticks=t + 1 if self.timeline else 0,
                                    width=self.width))
        return chips.animate_in(run_time=run_time)


class DenseMLP(Detail):
    """A dense '-' layer: one squared-ReLU MLP that every token goes through at full width; nothing to light."""

    kind = "mlp"

    def __init__(self, theme: Theme, **kwargs):
        super().__init__(**kwargs)
        self.add(label("every token, full width", font_size=18, color=theme.muted))

    def enter(self, view: TraceView, layer: int, t: int) -> DenseMLP:
        return self

    def show(self, view: TraceView, layer: int, t: int, run_time: float) -> Animation:
        return Wait(run_time=run_time)


# ------------------------------------------------------------------------------------------------

DETAILS: dict[str, type[Detail]] = {cls.kind: cls for cls in (StateGauge, ExpertGrid, AttentionStrip, DenseMLP)}


def make_detail(kind: str, theme: Theme, view: TraceView, **sizes) -> Detail:
    """The picture for layer kind `kind` ('mamba', 'moe', 'attention', 'mlp'), sized for the trace behind `view`;
    `sizes` are passed on (e.g. height=0.72 for the state bars)."""
    return DETAILS[kind].for_view(theme, view, **sizes)
