"""Attention heads drawn: which query heads share which key/value head, a head's weights as a causal heatmap,
and the keys one token weighs most.

    GQADiagram(theme, kv_head_of(4, 2))                     # query heads above, key/value heads below, linked
    weight_rgba(view.weights(3, 0), theme)                  # (T, T, 4) pixels: brightness = sqrt(weight)
    Heatmap(weight_rgba(...), width=2.8, height=2.8, theme=theme)   # toy_model.viz.matrix: one crisp image
    weight_colorbar(theme)                                  # the scale, ticks at 0, 0.1, 0.5, 1
    KeyList(theme, [("␣with", 0.65), ("User", 0.12)])       # token text, a bar, the weight

Pieces never read a trace: the scene hands them numbers (toy_model.viz.attention_view). Colours come from the
theme: the attention accent for weights and links (3:1 or more against the background in both themes), none
of them green.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from manim import DOWN, LEFT, RIGHT, Line, Rectangle, RoundedRectangle, VGroup

from toy_model.viz.attention_view import weight_level
from toy_model.viz.emoji import token_label
from toy_model.viz.matrix import ColorBar
from toy_model.viz.text import label
from toy_model.viz.theme import Theme


def _rgb(color: str) -> np.ndarray:
    h = color.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)


ACCENT_AT = 0.55  # the level (sqrt of the weight: 0.3) drawn in the full attention accent


def weight_rgb(weights: np.ndarray, theme: Theme) -> np.ndarray:
    """(..., 3) float colours of weights in [0, 1]: level = sqrt(weight) (attention_view.weight_level) runs from
    the theme's empty-cell colour (0) to its attention accent (ACCENT_AT) and on to its text colour (1), so
    strong weights stand out from the accent-coloured middle."""
    level = weight_level(weights)[..., None]
    low = np.clip(level / ACCENT_AT, 0, 1)
    high = np.clip((level - ACCENT_AT) / (1 - ACCENT_AT), 0, 1)
    off, accent, top = _rgb(theme.cell_off), _rgb(theme.attention), _rgb(theme.text)
    return np.where(level <= ACCENT_AT, (1 - low) * off + low * accent, (1 - high) * accent + high * top)


def weight_rgba(weights: np.ndarray, theme: Theme, *, causal: bool = True) -> np.ndarray:
    """(T, T, 4) uint8 pixels of a head's weights (weight_rgb). Causal: cells above the diagonal, which a query
    cannot see, are transparent (the background shows)."""
    w = np.asarray(weights, np.float64)
    rgb = weight_rgb(w, theme)
    out = np.empty((*w.shape, 4), np.uint8)
    out[..., :3] = np.round(rgb).astype(np.uint8)
    out[..., 3] = 255
    if causal:
        out[np.triu(np.ones(w.shape, bool), k=1)] = 0
    return out


WEIGHT_TICKS = (0.0, 0.1, 0.5, 1.0)


def weight_colorbar(theme: Theme, caption: str = "weight (colour follows its square root)", *, width: float = 2.6,
                    ticks: Sequence[float] = WEIGHT_TICKS) -> ColorBar:
    """The weight scale as a strip, ticks placed where weight_rgba draws those weights."""
    values = np.linspace(0.0, 1.0, 128) ** 2  # evenly spaced in brightness
    rgba = weight_rgba(values[None, :], theme, causal=False)
    marks = [(float(weight_level(v)), f"{v:g}") for v in ticks]
    return ColorBar(rgba, marks, caption, theme, width=width)


class GQADiagram(VGroup):
    """Grouped-query attention: a box per query head in a row, a box per key/value head in a row below, and a
    line from each query head to the key/value head it reads (kv_of[h])."""

    def __init__(self, theme: Theme, kv_of: Sequence[int], *, q_width: float = 1.25, kv_width: float = 2.4,
                 box_height: float = 0.62, gap: float = 0.22, drop: float = 1.6, font_size: float = 20, **kwargs):
        super().__init__(**kwargs)
        n_q, n_kv = len(kv_of), max(kv_of) + 1
        accent = theme.attention

        def box(text: str, width: float) -> VGroup:
            frame = RoundedRectangle(width=width, height=box_height, corner_radius=0.08, stroke_color=accent,
                                     stroke_width=2.5, fill_color=theme.panel, fill_opacity=1)
            return VGroup(frame, label(text, font_size=font_size, color=theme.text,
                                       max_width=width - 0.15).move_to(frame))

        self.queries = VGroup(*[box(f"query {h}", q_width) for h in range(n_q)]).arrange(RIGHT, buff=gap)
        self.kvs = VGroup(*[box(f"key {g} · value {g}", kv_width) for g in range(n_kv)])
        for g, kv in enumerate(self.kvs):  # each under the middle of the query heads that read it
            readers = [self.queries[h] for h in range(n_q) if kv_of[h] == g]
            kv.move_to([np.mean([r.get_center()[0] for r in readers]), self.queries.get_y() - drop, 0])
        self.links = VGroup(*[
            Line(self.queries[h].get_bottom(), self.kvs[kv_of[h]].get_top(), stroke_color=accent, stroke_width=3)
            for h in range(n_q)
        ])
        self.add(self.links, self.queries, self.kvs)


class KeyList(VGroup):
    """Rows of (token text, weight): the text, a bar as long as the weight (a full bar is weight 1) and the
    number, each row on its own line."""

    PITCH = 0.36

    def __init__(self, theme: Theme, rows: Sequence[tuple[str, float]], *, width: float = 3.0,
                 text_width: float = 1.25, font_size: float = 20, **kwargs):
        super().__init__(**kwargs)
        bar_room = width - text_width - 0.75
        self.rows = VGroup()
        for j, (text, w) in enumerate(rows):
            name = token_label(text, font_size=font_size, color=theme.text, halo=theme.emoji_halo,
                               max_width=text_width)
            name.move_to([0, 0, 0], aligned_edge=LEFT)
            name.shift([0, -0.08 - name.baseline, 0])  # every row's text on one baseline
            bar = Rectangle(width=max(bar_room * float(w), 0.02), height=0.16, stroke_width=0,
                            fill_color=theme.attention, fill_opacity=1)
            bar.move_to([text_width + 0.1, 0, 0], aligned_edge=LEFT)
            value = label(f"{w:.2f}", font_size=font_size, color=theme.text)
            value.move_to([width, 0, 0], aligned_edge=RIGHT)
            self.rows.add(VGroup(name, bar, value).shift(DOWN * self.PITCH * j))
        self.add(self.rows)
