"""Notes: short explanatory text set in a column, at a legible size, and table cells on one baseline.

    paragraph("b was learned in training: ...", theme, width=4.6)       # wrapped to the width, never scaled
    key_list([(swatch, "bar: the score s"), ...], theme, width=8)       # a swatch, then what it means
    put_on_baseline(label("0.801"), x, y)                               # table cells line up as type does

Text is wrapped by measuring it (toy_model.viz.paragraph.wrap), never shrunk, so every line keeps its font
size (at least MIN_FONT_SIZE: toy_model.viz.legibility). For token text with emoji, use
toy_model.viz.paragraph.paragraph instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from manim import DOWN, LEFT, Mobject, VGroup

from toy_model.viz.legibility import MIN_FONT_SIZE
from toy_model.viz.paragraph import wrap  # measured with the font's advance widths, no Pango per trial
from toy_model.viz.text import label
from toy_model.viz.theme import Theme


def paragraph(text: str, theme: Theme, *, width: float, font_size: float = 18, color: str | None = None,
              weight: str = "NORMAL", line_gap: float = 0.08) -> VGroup:
    """The text wrapped to `width` (toy_model.viz.paragraph.wrap), one Text per line, left-aligned: plain text
    (no emoji) in any weight, lines `line_gap` apart. Bold text runs wider than wrap measures: a line that comes
    out too wide has the whole text wrapped a little narrower."""
    assert font_size >= MIN_FONT_SIZE, font_size
    lines = [label(s, font_size=font_size, color=color or theme.text, weight=weight)
             for s in wrap(text, width, font_size)]
    if any(t.width > width for t in lines) and width > 1.0:  # measured too short: wrap a little narrower
        return paragraph(text, theme, width=width * 0.95, font_size=font_size, color=color, weight=weight,
                         line_gap=line_gap)
    return VGroup(*lines).arrange(DOWN, buff=line_gap, aligned_edge=LEFT)


def key_list(items: Sequence[tuple[Mobject, str]], theme: Theme, *, width: float, font_size: float = 18,
             color: str | None = None, gap: float = 0.12, swatch_room: float = 0.45) -> VGroup:
    """One row per (swatch, meaning): the swatch in a column `swatch_room` wide, the meaning wrapped beside it."""
    rows = VGroup()
    for swatch, text in items:
        body = paragraph(text, theme, width=width - swatch_room, font_size=font_size, color=color)
        slot = VGroup(swatch).move_to(body[0].get_left() + LEFT * swatch_room / 2)
        rows.add(VGroup(slot, body))
    rows.arrange(DOWN, buff=gap, aligned_edge=LEFT)
    for row in rows:  # the swatch centred on its first line
        row[0].move_to([row[1].get_left()[0] - swatch_room / 2, row[1][0].get_center()[1], 0])
    return rows



_DESCENDERS = set("gjpqyQµ")


def baseline(text) -> float:
    """The y of a Text's baseline: the lowest edge of its glyphs that stand on it (letters and digits without a
    descender; signs such as − or + float above it), so cells of a table line up as type does."""
    chars = [c for c in text.text if not c.isspace()]
    bottoms = [g.get_bottom()[1] for c, g in zip(chars, text.submobjects, strict=False)
               if c.isalnum() and c not in _DESCENDERS]
    return max(bottoms) if bottoms else text.get_bottom()[1]


def put_on_baseline(text, x: float, y: float):
    """Move a Text so that its left edge is at x and its baseline at y."""
    text.shift([x - text.get_left()[0], y - baseline(text), 0])
    return text
