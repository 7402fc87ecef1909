"""Strips: a model's layers in a row, one cell per layer, coloured by kind.

    PatternStrip(theme, "MEM*EMEM*EMEM*E", cell=0.09)      # the layer order as published, cell by cell
    GroupedStrip(theme, {"M": 48, "E": 48, "*": 12})       # counts only: one segment per kind, no order
    KindKey(theme)                                          # what each colour (and the tall cell) means

Every strip is drawn at the same scale, `cell` scene units per layer, so strips of different models compare
by length. Attention cells stand taller than the others, so they read without colour too. Colours are the
theme's layer accents (toy_model.viz.theme; a dense MLP layer takes the muted grey); none is green.
"""

from __future__ import annotations

from collections.abc import Mapping

from manim import RIGHT, DashedLine, Rectangle, VGroup

from toy_model.kinds import BY_CHAR, CHARS
from toy_model.viz.text import label
from toy_model.viz.theme import Theme

TALL = 1.45  # an attention cell's height, in cell heights


def _kind_color(theme: Theme, char: str) -> str:
    return theme.accent(BY_CHAR[char].name)


def _cell(theme: Theme, char: str, width: float, height: float) -> Rectangle:
    h = height * (TALL if char == "*" else 1.0)
    return Rectangle(width=width, height=h, stroke_width=0, fill_color=_kind_color(theme, char), fill_opacity=1)


class PatternStrip(VGroup):
    """The layers of a pattern string left to right, cell i for layer i (cells[i].kind is its character)."""

    def __init__(self, theme: Theme, pattern: str, *, cell: float = 0.09, height: float = 0.3, gap: float = 0.12,
                 **kwargs):
        super().__init__(**kwargs)
        assert pattern and set(pattern) <= set(CHARS), pattern
        self.pattern = pattern
        self.cells = VGroup()
        for i, c in enumerate(pattern):
            r = _cell(theme, c, cell * (1 - gap), height).move_to([(i + 0.5) * cell, 0, 0])
            r.kind = c
            self.cells.add(r)
        self.add(self.cells)

    def counts(self) -> dict[str, int]:
        """Cells of each kind, by character: what the strip shows."""
        return {c: sum(1 for r in self.cells if r.kind == c) for c in CHARS}


class GroupedStrip(VGroup):
    """Counts without an order: one solid segment per kind, as long as its layers' cells would be, with a
    dashed gap between segments, so it does not read as a layer order."""

    def __init__(self, theme: Theme, counts: Mapping[str, int], *, cell: float = 0.09, height: float = 0.3,
                 gap: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.segments, self.gaps = VGroup(), VGroup()
        self.counts_shown = {c: 0 for c in CHARS}
        x = 0.0
        for c in CHARS:
            n = int(counts.get(c, 0))
            if n <= 0:
                continue
            if self.segments.submobjects:
                self.gaps.add(DashedLine([x + 0.03, 0, 0], [x + gap - 0.03, 0, 0], stroke_color=theme.muted,
                                         stroke_width=2, dash_length=0.05))
                x += gap
            seg = _cell(theme, c, n * cell, height).move_to([x + n * cell / 2, 0, 0])
            seg.kind, seg.layers = c, n
            self.segments.add(seg)
            self.counts_shown[c] = n
            x += n * cell
        self.add(self.segments, self.gaps)

    def counts(self) -> dict[str, int]:
        return dict(self.counts_shown)


class KindKey(VGroup):
    """One swatch per layer kind with its character and name: 'M Mamba-2', 'E MoE', '* attention (tall)'..."""

    def __init__(self, theme: Theme, *, chars: str = CHARS, latent: bool = False, font_size: float = 18,
                 cell: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        names = {"M": "Mamba-2", "E": "MoE" + (" / Latent MoE" if latent else ""), "*": "attention (tall cell)",
                 "-": "dense MLP"}
        for c in chars:
            swatch = _cell(theme, c, cell, cell)
            text = label(f"{c}  {names[c]}", font_size=font_size, color=theme.text)
            self.add(VGroup(swatch, text.next_to(swatch, RIGHT, buff=0.12)))
        self.arrange(RIGHT, buff=0.45)
