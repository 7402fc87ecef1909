"""The stack: a block per layer kind and its highlight, the token's marker, the repeat brace and pips, the
per-layer chart.

Every piece is a VGroup subclass with typed keyword options and methods that return self, so a scene can
write `self.play(marker.animate.move_to(block.lane_point))`. Pieces never read a trace: the scene (through
toy_model.viz.views) turns trace values into plain numbers in [0, 1] and hands them over.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from manim import (
    DOWN,
    LEFT,
    PI,
    RIGHT,
    UP,
    Arrow,
    Brace,
    Circle,
    Line,
    Rectangle,
    RoundedRectangle,
    Transform,
    Triangle,
    VGroup,
)

from toy_model.viz.text import label
from toy_model.viz.theme import Theme, mix


class Block(VGroup):
    """A labelled rounded box: title and layer tags on the left, an inner area for its detail on the right,
    and the residual lane (where the marker sits) at its left edge."""

    IDLE = dict(width=2.5, opacity=0.7)  # the box's outline, and the active block's (Highlight draws that one)
    ACTIVE = dict(width=5, opacity=1.0)

    def __init__(self, title: str, kind: str, theme: Theme, *, width: float = 6.0, height: float = 1.1,
                 label_width: float = 2.0, layers: Sequence[int] = (), lane_inset: float = 0.36, note: str = "",
                 title_size: float = 26, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.theme = kind, theme
        self.accent = theme.accent(kind)
        self.lane_inset, self.label_width = lane_inset, label_width
        self.box = RoundedRectangle(width=width, height=height, corner_radius=0.14, stroke_color=self.accent,
                                    stroke_width=self.IDLE["width"], stroke_opacity=self.IDLE["opacity"],
                                    fill_color=theme.panel, fill_opacity=1)
        left = self.box.get_left()[0]
        self.title = label(title, font_size=title_size, color=theme.text, weight="BOLD")
        self.title.move_to([left + lane_inset + 0.36, 0, 0], aligned_edge=LEFT).shift(UP * height * 0.14)
        # One tag per repeat ("layer 0", "layer 5", "layer 10"); only the active one is part of the block
        # (a hidden text would still cost drawing time).
        self.tags = [label(f"layer {i}" + (f" · {note}" if note else ""), font_size=18, color=self.accent)
                     for i in layers]
        self.tag = VGroup()
        self.add(self.box, self.title, self.tag)
        self.set_repeat(0)

    @property
    def inner_center(self) -> np.ndarray:
        """Centre of the detail area (right of the labels)."""
        left, right = self.box.get_left()[0], self.box.get_right()[0]
        x0 = left + self.lane_inset + self.label_width
        return np.array([(x0 + right) / 2, self.box.get_center()[1], 0.0])

    @property
    def inner_width(self) -> float:
        return self.box.width - self.lane_inset - self.label_width - 0.25

    @property
    def lane_point(self) -> np.ndarray:
        """Where the marker sits inside this block."""
        return np.array([self.box.get_left()[0] + self.lane_inset, self.box.get_center()[1], 0.0])

    def set_repeat(self, r: int) -> Block:
        """Name the layer this block stands for in repeat r."""
        if self.tags:
            self.remove(self.tag)
            # placed now: tags outside the block did not move with it
            self.tag = self.tags[r].next_to(self.title, DOWN, buff=0.1, aligned_edge=LEFT)
            self.add(self.tag)
        return self

    def set_active(self, on: bool) -> Block:
        """Give the box the active outline (or back the idle one). A scene that plays over a still diagram
        draws a Highlight instead, which leaves the block as it is."""
        self.box.set_stroke(**(self.ACTIVE if on else self.IDLE))
        return self


class Highlight(VGroup):
    """The active block's heavier outline as a piece of its own, drawn above the diagram (below the lane and
    the marker, which cross it). Over a block it looks as Block.set_active(True) does, its outline covering
    the block's own; but moving it from block to block leaves the diagram unchanged, so the diagram's pixels
    kept from the play before stay good (toy_model.viz.scene) and it is not drawn again."""

    def on(self, block: Block | None) -> Highlight:
        """Outline `block`; None: no block."""
        self.remove(*self.submobjects)
        if block is not None:
            self.add(block.box.copy().set_fill(opacity=0).set_stroke(**Block.ACTIVE))
        return self


# ------------------------------------------------------------------------------------------------
# marker


class Marker(VGroup):
    """The token: a downward-pointing green triangle; size and brightness follow an intensity in [0, 1]."""

    def __init__(self, theme: Theme, *, intensity: float = 0.5, min_size: float = 0.2, max_size: float = 0.5,
                 **kwargs):
        super().__init__(**kwargs)
        self.theme, self.min_size, self.max_size = theme, min_size, max_size
        self.triangle = Triangle(stroke_width=0, fill_opacity=1).rotate(PI)  # points down
        self.add(self.triangle)
        self.set_intensity(intensity)

    def set_intensity(self, v: float) -> Marker:
        v = float(np.clip(v, 0.0, 1.0))
        center = self.triangle.get_center()
        self.triangle.scale_to_fit_height(self.min_size + (self.max_size - self.min_size) * v)
        self.triangle.move_to(center)
        self.triangle.set_fill(mix(self.theme.marker_dim, self.theme.marker, v), opacity=1)
        return self



class LayerChart(VGroup):
    """One bar per layer, coloured by its kind, filled as the marker passes: the token's update norms
    across the whole stack at a glance. Bars come in groups (the repeats) with a wider gap between."""

    def __init__(self, theme: Theme, kinds: Sequence[str], *, group: int = 5, title: str = "",
                 width: float = 4.0, height: float = 0.6, **kwargs):
        super().__init__(**kwargs)
        self.height_max = height
        n = len(kinds)
        n_groups = -(-n // group)
        gap, group_gap = 0.05, 0.2
        bar_w = (width - (n - n_groups) * gap - (n_groups - 1) * group_gap) / n
        self.baseline = Line(LEFT * width / 2, RIGHT * width / 2, stroke_color=theme.muted, stroke_width=1.5)
        self.bars = VGroup()
        x = -width / 2
        for i, kind in enumerate(kinds):
            bar = Rectangle(width=bar_w, height=height, stroke_width=0, fill_color=theme.accent(kind),
                            fill_opacity=1)
            bar.move_to([x + bar_w / 2, height / 2, 0])
            self.bars.add(bar)
            x += bar_w + (group_gap if (i + 1) % group == 0 else gap)
        self.title = label(title, font_size=18, color=theme.muted, max_width=width) if title else VGroup()
        self.title.next_to(self.baseline, UP, buff=height + 0.12).align_to(self.baseline, LEFT)
        self.add(self.title, self.baseline, self.bars)
        self.reset()

    def reset(self) -> LayerChart:
        for i in range(len(self.bars)):
            self._fit(self.bars[i], 0.0)
        return self

    def animate_bar(self, i: int, level: float, **kwargs) -> Transform:
        target = self.bars[i].copy()
        self._fit(target, level)
        return Transform(self.bars[i], target, **kwargs)

    def _fit(self, bar, level):
        bottom = self.baseline.get_center()[1]
        x = bar.get_center()[0]
        bar.stretch_to_fit_height(max(float(np.clip(level, 0, 1)) * self.height_max, 0.01))
        bar.move_to([x, bottom, 0], aligned_edge=DOWN)


class ResidualLane(VGroup):
    """The residual stream as a vertical line beside a column of blocks: each block reads it through RMSNorm
    (an arrow into the block, low) and writes its update back at a plus on the lane (high). A disc behind each
    plus shows the size of the block's last write: `write(j, level)`, level in [0, 1]."""

    def __init__(self, blocks, theme: Theme, *, x: float, bottom: float, top: float, r_min: float = 0.05,
                 r_max: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.x, self.r_min, self.r_max = theme, x, r_min, r_max
        self.line = Line([x, bottom, 0], [x, top, 0], stroke_color=theme.text, stroke_width=3)
        self.reads, self.pluses, self.writes, self.discs = VGroup(), VGroup(), VGroup(), VGroup()
        for block in blocks:
            left, cy, h = block.box.get_left()[0], block.box.get_center()[1], block.box.height
            y_read, y_write = cy - 0.22 * h, cy + 0.22 * h
            self.reads.add(Arrow([x, y_read, 0], [left, y_read, 0], buff=0.02, stroke_width=2.5,
                                 max_tip_length_to_length_ratio=0.3, color=theme.muted))
            self.writes.add(Arrow([left, y_write, 0], [x + 0.1, y_write, 0], buff=0.02, stroke_width=2.5,
                                  max_tip_length_to_length_ratio=0.3, color=block.accent))
            plus = VGroup(Circle(radius=0.1, stroke_color=theme.text, stroke_width=2.5, fill_color=theme.background,
                                 fill_opacity=1),
                          Line([-0.06, 0, 0], [0.06, 0, 0], stroke_color=theme.text, stroke_width=2.5),
                          Line([0, -0.06, 0], [0, 0.06, 0], stroke_color=theme.text, stroke_width=2.5))
            self.pluses.add(plus.move_to([x, y_write, 0]))
            self.discs.add(Circle(radius=r_min, stroke_width=0, fill_color=block.accent, fill_opacity=1)
                           .move_to([x, y_write, 0]))
        self.add(self.line, self.reads, self.writes, self.discs, self.pluses)

    def plus_point(self, j: int):
        return self.pluses[j].get_center()

    def radius(self, level: float) -> float:
        return self.r_min + (self.r_max - self.r_min) * float(np.clip(level, 0, 1))

    def write(self, j: int, level: float, **kwargs) -> Transform:
        """Block j's write-back disc growing to `level`'s size (an animation of that disc alone)."""
        target = self.discs[j].copy()
        self._fit(target, level)
        return Transform(self.discs[j], target, **kwargs)

    def _fit(self, disc, level):
        disc.scale_to_fit_width(2 * self.radius(level)).move_to(disc.get_center())

    def reset(self) -> ResidualLane:
        for disc in self.discs:
            self._fit(disc, 0.0)
        return self


class LayerStrip(VGroup):
    """Every layer of the model unrolled, bottom to top, one cell each coloured by kind and grouped as the
    pattern repeats: each group is a different set of weights. `fill(i, level)` fills layer i's cell to a level
    in [0, 1] (the size of its write), `set_active(i)` outlines the layer at work."""

    def __init__(self, theme: Theme, kinds: Sequence[str], *, group: int = 5, width: float = 0.5,
                 height: float = 6.0, group_gap: float = 0.22, gap: float = 0.04, **kwargs):
        super().__init__(**kwargs)
        self.theme = theme
        n = len(kinds)
        n_groups = -(-n // group)
        cell_h = (height - (n_groups - 1) * group_gap - (n - n_groups) * gap) / n
        self.cells, self.fills, self.group_spans = VGroup(), VGroup(), []
        y = -height / 2
        for i, kind in enumerate(kinds):
            cell = Rectangle(width=width, height=cell_h, stroke_color=theme.accent(kind), stroke_width=2,
                             fill_color=theme.panel, fill_opacity=1).move_to([0, y + cell_h / 2, 0])
            fill = Rectangle(width=width, height=cell_h, stroke_width=0, fill_color=theme.accent(kind),
                             fill_opacity=1).move_to(cell)
            self.cells.add(cell)
            self.fills.add(fill)
            if i % group == 0:
                start = y
            if (i + 1) % group == 0 or i == n - 1:
                self.group_spans.append((start, y + cell_h))
            y += cell_h + (group_gap if (i + 1) % group == 0 else gap)
        self.outline = VGroup()
        self.add(self.cells, self.fills, self.outline)
        self.reset()

    def reset(self) -> LayerStrip:
        for i in range(len(self.fills)):
            self._fit(self.fills[i], i, 0.0)
        return self

    def fill(self, i: int, level: float, **kwargs) -> Transform:
        target = self.fills[i].copy()
        self._fit(target, i, level)
        return Transform(self.fills[i], target, **kwargs)

    def _fit(self, fill, i: int, level: float):
        cell = self.cells[i]
        left = cell.get_left()[0]
        fill.stretch_to_fit_width(max(float(np.clip(level, 0, 1)) * cell.width, 0.01))
        fill.move_to([left, cell.get_center()[1], 0], aligned_edge=LEFT)

    def set_active(self, i: int | None) -> LayerStrip:
        self.remove(self.outline)
        self.outline = VGroup()
        if i is not None:
            self.outline = self.cells[i].copy().set_fill(opacity=0).set_stroke(self.theme.text, width=4)
        self.add(self.outline)
        return self

    def cell_point(self, i: int, side=LEFT):
        return self.cells[i].get_edge_center(side)


class RepeatBrace(VGroup):
    """A brace along one side of a group with the repeat count beside it ('×3')."""

    def __init__(self, group, theme: Theme, *, count: int = 3, direction=LEFT, **kwargs):
        super().__init__(**kwargs)
        self.brace = Brace(group, direction=direction, buff=0.12, color=theme.muted)
        self.count = label(f"×{count}", font_size=34, color=theme.text, weight="BOLD")
        self.count.next_to(self.brace, direction, buff=0.12)
        self.add(self.brace, self.count)


class RepeatPips(VGroup):
    """Which repeat of the group is running: one pip per repeat and a line naming its layers."""

    def __init__(self, theme: Theme, *, count: int = 3, group_size: int = 5, max_width: float = 4.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.theme = theme
        self.pips = VGroup(*[Circle(radius=0.1, stroke_color=theme.text, stroke_width=2,
                                    fill_color=theme.text, fill_opacity=0) for _ in range(count)])
        self.pips.arrange(RIGHT, buff=0.14)
        self.lines = [
            label(f"repeat {r + 1} of {count} · layers {group_size * r}–{group_size * (r + 1) - 1}",
                  font_size=20, color=theme.text) for r in range(count)
        ]
        widest = max(line.width for line in self.lines)
        for line in self.lines:
            if widest > max_width:
                line.scale(max_width / widest)  # one scale for all: the text keeps its size between repeats
        self.line = VGroup()
        self.add(self.pips, self.line)
        self.set_repeat(0)

    def set_repeat(self, r: int) -> RepeatPips:
        for i, pip in enumerate(self.pips):
            pip.set_fill(opacity=1.0 if i <= r else 0.0)
        self.remove(self.line)
        self.line = self.lines[r].next_to(self.pips, DOWN, buff=0.16, aligned_edge=LEFT)
        self.add(self.line)
        return self
