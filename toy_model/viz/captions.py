"""Captions: the token being traced, and the model's next-token predictions."""

from __future__ import annotations

from collections.abc import Sequence

from manim import DOWN, LEFT, ORIGIN, UP, Rectangle, RoundedRectangle, VGroup

from toy_model.viz.emoji import token_label
from toy_model.viz.text import label, shorten
from toy_model.viz.theme import Theme


class TokenCaption(VGroup):
    """The token being traced: a header ('token 12 of 42 · generated'), the token in a box, its context (the
    token and the context are token text: their emoji are drawn). `words`: what it says, as one subtitle."""

    def __init__(self, theme: Theme, text: str, *, header: str = "", context: str = "", width: float = 4.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.header = label(header, font_size=20, color=theme.muted, max_width=width)
        self.token = token_label(text, font_size=36, color=theme.text, weight="BOLD", halo=theme.emoji_halo,
                                 max_width=width - 0.4)
        # a fixed height, so the caption's layout does not jump between tokens like "." and "Ag"
        self.chip = RoundedRectangle(width=max(self.token.width + 0.4, 1.0), height=0.8,
                                     corner_radius=0.1, stroke_color=theme.text, stroke_width=2.5,
                                     fill_color=theme.panel, fill_opacity=1)
        self.token.move_to(self.chip)
        chip = VGroup(self.chip, self.token)
        chip.next_to(self.header, DOWN, buff=0.2, aligned_edge=LEFT)
        self.add(self.header, chip)
        self.words = f"{header}: ‘{text}’" if header else f"‘{text}’"
        if context:
            self.context = token_label(context, font_size=18, color=theme.muted, halo=theme.emoji_halo,
                                       max_width=width)
            self.context.next_to(chip, DOWN, buff=0.18, aligned_edge=LEFT)
            self.add(self.context)


class PredictionList(VGroup):
    """Top next-token predictions as rows of text, a bar and a percentage; `actual` marks (bold, ✓) the row
    that was the real next token. `words`: what it says, as one subtitle."""

    PITCH = 0.34  # row to row

    def __init__(self, theme: Theme, items: Sequence[tuple[str, float]], *, title: str = "predicted next",
                 width: float = 4.0, actual: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.title = label(title, font_size=20, color=theme.muted, max_width=width)
        rows, said = VGroup(), []
        for j, (s, p) in enumerate(items):
            ink = theme.text if j == actual or actual is None else theme.muted
            name = token_label(shorten(s, 11), font_size=20, color=ink, weight="BOLD" if j == actual else "NORMAL",
                               halo=theme.emoji_halo, max_width=1.8)
            share = (f"{100 * p:.0f}%" if p >= 0.01 else "<1%") + (" ✓" if j == actual else "")
            pct = label(share, font_size=18, color=ink)
            bar = Rectangle(width=max(1.0 * p, 0.02), height=0.16, stroke_width=0, fill_color=ink,
                            fill_opacity=0.85)  # absolute: a full bar is probability 1
            name.move_to(ORIGIN, aligned_edge=LEFT)
            name.shift(UP * (-0.1 - name.baseline))  # every name on one baseline, its capitals centred on the row
            bar.move_to([1.9, 0, 0], aligned_edge=LEFT)
            pct.move_to([3.0, 0, 0], aligned_edge=LEFT)
            rows.add(VGroup(name, bar, pct).shift(DOWN * self.PITCH * j))
            said.append(f"‘{s}’ {share}")
        # a fixed pitch rather than arrange(): rows with an emoji, taller than text, keep the list's height
        rows.shift(self.title.get_corner(DOWN + LEFT) + DOWN * 0.27)
        self.rows = rows
        self.words = f"{title}: {', '.join(said)}"
        self.add(self.title, rows)

