"""Formulas and explanations as plain text (no LaTeX): a formula whose parts can be framed, wrapped text on a
fixed line pitch, and a glossary that explains each symbol.

    eq = Formula("hₜ = aₜ · hₜ₋₁ + Δₜ · xₜ Bₜᵀ", theme, font_size=28)
    box = eq.box("Δₜ · xₜ Bₜᵀ", theme.mamba)           # a frame around that part (its glyphs)
    note = TextBlock("Delta, B and C come from the token itself ...", theme, width=6.0)
    terms = Glossary(theme, [("h", "the state: 32 × 16 numbers"), ("Δ", "the step size")], width=6.0)

Unicode subscripts and superscripts (ₜ ᵢ ⱼ ᵀ ⁻¹) are glyphs of DejaVu Sans, so a formula is one Pango line:
its letters share one baseline, and a part is found by its position in the string. Lines of a TextBlock or a
Glossary stand on a fixed pitch (each placed by the descender line of a strut glyph), so a line with no
descender sits where one with 'g' or 'y' would. Every symbol a scene shows is explained on screen when it
first appears (toy_model.viz.legibility); a Glossary row is one way. Font sizes are never scaled below the
given one (>= MIN_FONT_SIZE); text that does not fit wraps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from manim import DL, SurroundingRectangle, Text, VGroup

from toy_model.viz.paragraph import wrap  # measured from the font, no Pango per trial line
from toy_model.viz.text import label
from toy_model.viz.theme import Theme

STRUT = "|"  # spans ascender to descender in DejaVu Sans: its bottom is the line's descender line
PITCH_PER_FONT_SIZE = 0.0215  # scene units from one line to the next, per unit of font size (about 1.5 lines)


class Formula(VGroup):
    """One line of formula text (a Text, cached like every label); part(s) / box(s) find a substring's glyphs."""

    def __init__(self, source: str, theme: Theme, *, font_size: float = 28, color: str | None = None,
                 weight: str = "NORMAL", **kwargs):
        super().__init__(**kwargs)
        self.source = source
        self.text = label(source, font_size=font_size, color=color or theme.text, weight=weight)
        assert len(self.text.submobjects) == len(source.replace(" ", "")), "one glyph per visible character"
        self.add(self.text)

    def part(self, sub: str, occurrence: int = 0) -> VGroup:
        """The glyphs of the occurrence-th appearance of `sub` (Text keeps a glyph per non-space character)."""
        at = -1
        for _ in range(occurrence + 1):
            at = self.source.index(sub, at + 1)
        start = len(self.source[:at].replace(" ", ""))
        return VGroup(*self.text.submobjects[start: start + len(sub.replace(" ", ""))])

    def box(self, sub: str, color: str, *, occurrence: int = 0, buff: float = 0.08,
            stroke_width: float = 3) -> SurroundingRectangle:
        return SurroundingRectangle(self.part(sub, occurrence), color=color, buff=buff, stroke_width=stroke_width,
                                    corner_radius=0.05)


def text_line(s: str, *, font_size: float, color: str, weight: str = "NORMAL", left: float = 0.0,
              descender: float = 0.0) -> Text:
    """A label whose left edge is at x = left and whose descender line is at y = descender: placed by a copy
    with a strut glyph after it, so that the label itself stays whole (its measured font size is the true one)."""
    ref = label(s + " " + STRUT, font_size=font_size, color=color, weight=weight)
    ref.shift(np.array([left - ref.get_left()[0], descender - ref.submobjects[-1].get_bottom()[1], 0.0]))
    t = label(s, font_size=font_size, color=color, weight=weight)
    if not t.submobjects:  # nothing visible
        return t.move_to(ref)
    return t.shift(ref.submobjects[0].get_corner(DL) - t.submobjects[0].get_corner(DL))


class TextBlock(VGroup):
    """Text wrapped to `width` on a fixed line pitch, its top-left corner at the origin (move it as a whole)."""

    def __init__(self, text: str, theme: Theme, *, width: float = 6.0, font_size: float = 20,
                 color: str | None = None, weight: str = "NORMAL", **kwargs):
        super().__init__(**kwargs)
        pitch = font_size * PITCH_PER_FONT_SIZE
        for k, line in enumerate(wrap(text, width, font_size, weight)):
            if line.strip():
                self.add(text_line(line, font_size=font_size, color=color or theme.text, weight=weight,
                                   descender=-k * pitch))
        self.n_lines = k + 1


class Glossary(VGroup):
    """Rows of (symbol, what it means): symbols in a column of their own, meanings wrapped beside them, the
    first row's descender line at y = 0 (move the glossary as a whole). All rows are laid out at once; a scene
    that explains symbols as they appear shows `rows[k]` when symbol k first comes up."""

    def __init__(self, theme: Theme, rows: Sequence[tuple[str, str]], *, width: float = 6.0,
                 font_size: float = 20, symbol_width: float = 0.9, gap: float = 0.08, color: str | None = None,
                 pitch: float | None = None, **kwargs):
        super().__init__(**kwargs)
        pitch = pitch or font_size * PITCH_PER_FONT_SIZE
        ink = color or theme.text
        self.rows = VGroup()
        base = 0.0
        for symbol, meaning in rows:
            row = VGroup()
            if symbol:
                row.add(text_line(symbol, font_size=font_size, color=ink, weight="BOLD", descender=base))
            lines = wrap(meaning, width - symbol_width, font_size)
            for k, line in enumerate(lines):
                row.add(text_line(line, font_size=font_size, color=ink, left=symbol_width,
                                  descender=base - k * pitch))
            self.rows.add(row)
            base -= len(lines) * pitch + gap
        self.add(self.rows)
