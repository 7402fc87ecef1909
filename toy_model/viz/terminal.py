"""A terminal window that prints a model's answer token by token, on a monospace grid.

    units = stream_units(token_bytes, first=P)           # the characters the tokens print, with their tokens
    placed, row, col = lay_out(units, cols)              # on the grid: word-wrapped, newlines and tabs kept
    window = TerminalWindow(theme, width=9.4, height=7.7, title="bash")
    text = TerminalText(window, placed, colors)          # each character drawn once, copied into its cells
    tints = token_tints(window, placed, shades, underline_color(theme))  # a shade and an underline per token

Tokens are byte-level BPE: a token may carry part of a character (half an emoji). A terminal shows a character
once all its bytes have arrived, so a unit appears with the token that completes it (as the trace's token_text
shows it); `Unit.shares` keeps which tokens its bytes came from, and the shade behind an emoji is split among
them in proportion to their bytes, so a token that only carried bytes is still seen to arrive.

Everything is laid out once, before anything is drawn: Pango runs once for all the characters (on a monospace
grid a row is copies of them), and a scene adds each token's pieces to the screen when the token arrives
(static from then on: cheap to draw). An emoji takes two columns, as in a terminal, and is drawn as its
OpenMoji picture (toy_model.viz.emoji).
"""

from __future__ import annotations

import codecs
import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from manim import DOWN, LEFT, UP, Circle, Rectangle, RoundedRectangle, Text, VGroup, VMobject

from toy_model.viz.emoji import EMOJI_SIZE, emoji_mobject, split_emoji
from toy_model.viz.text import label, text_units, visible_text
from toy_model.viz.theme import Theme, mix

MONO_FONT = "DejaVu Sans Mono"  # ships with DejaVu Sans (text.FONT); Pango falls back if absent
TAB = 8  # tab stops, as a terminal sets them
EMOJI_COLUMNS = 2  # an emoji is a wide character in a terminal


# ------------------------------------------------------------------------------------------------
# text: the characters the tokens print, and where they go on the grid


@dataclass(frozen=True)
class Unit:
    """One character as a reader counts it (an emoji sequence is one), with the tokens its bytes came from."""

    text: str
    shares: tuple[tuple[int, float], ...] = ()  # (token, fraction of the character's bytes), in byte order

    @property
    def token(self) -> int:
        """The token that completes the character (it appears with this token); -1 for typed text."""
        return self.shares[-1][0] if self.shares else -1


def typed_units(text: str) -> list[Unit]:
    """Text typed at the prompt: units that belong to no token."""
    return [Unit(u) for u in text_units(text)]


def stream_units(token_bytes: Sequence[bytes], first: int = 0) -> list[Unit]:
    """The characters that tokens first, first + 1, ... print, in order, each with its byte shares.

    The bytes are decoded as a stream (invalid bytes as U+FFFD), as the trace's token_text is: a character
    split over tokens is complete only with its last byte. Bytes still pending after the last token (a character
    cut off by the length limit) print nothing, as in token_text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    chars: list[tuple[str, list[int]]] = []  # (character, the token of each of its bytes)
    pending: list[int] = []
    for t, data in enumerate(token_bytes, start=first):
        for byte in data:
            pending.append(t)
            out = decoder.decode(bytes([byte]))
            for i, ch in enumerate(out):  # usually one character; a bad byte can also yield U+FFFD first
                if len(out) == 1:
                    chars.append((ch, pending))
                else:  # the U+FFFD owns the bytes before, the character the last one
                    chars.append((ch, pending[-1:] if i == len(out) - 1 else pending[:-1] or pending[-1:]))
            if out:
                pending = []
    # emoji sequences (a pictograph with its modifiers, joined ones) become one unit
    units, i = [], 0
    for seq in text_units("".join(ch for ch, _ in chars)):
        owners = [t for _, ts in chars[i: i + len(seq)] for t in ts]
        i += len(seq)
        counts: dict[int, int] = {}
        for t in owners:
            counts[t] = counts.get(t, 0) + 1
        units.append(Unit(seq, tuple((t, n / len(owners)) for t, n in counts.items())))
    return units


def _escaped(ch: str) -> str:
    """A control character as the trace format shows it (\\r, \\x01); other characters as they are."""
    if ch == "\r":
        return "\\r"
    return f"\\x{ord(ch):02x}" if unicodedata.category(ch) == "Cc" else ch


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def pieces(text: str) -> list[tuple[int, str, str | None]]:
    """What a unit draws, left to right: (columns, text, OpenMoji name); an emoji is 2 columns and no text."""
    if len(text) == 1 and unicodedata.category(text) == "Cc":
        return [(1, ch, None) for ch in _escaped(text)]
    out = []
    for run, name in split_emoji(text):
        if name is not None:
            out.append((EMOJI_COLUMNS, "", name))
        else:
            out.extend((_char_width(ch), ch, None) for ch in visible_text(unicodedata.normalize("NFC", run)))
    return out


@dataclass(frozen=True)
class Placed:
    """A unit on the grid: its first cell (row, col), its width in columns, and what it draws there."""

    unit: Unit
    row: int
    col: int
    width: int
    pieces: tuple[tuple[int, int, str, str | None], ...] = ()  # (column, columns, text, OpenMoji name)

    @property
    def is_newline(self) -> bool:
        return self.unit.text == "\n"


def lay_out(units: Sequence[Unit], cols: int, row: int = 0, col: int = 0) -> tuple[list[Placed], int, int]:
    """Units on a grid `cols` wide from (row, col): (placed units, row and column after the last one).

    Newlines start a row, tabs go to the next stop, and a word that would cross the right edge moves to the next
    row whole (a longer one is broken at the edge). A space at the edge takes no room (a newline there either):
    nothing is drawn beyond the right edge. A scene lays the whole answer out at once, so a word still arriving
    already sits on the row where it ends (it never jumps to the next row as it grows)."""
    placed: list[Placed] = []
    line: list[int] = []  # indices into placed on this row
    word = 0  # where in `line` the current word starts

    def put(u: Unit, r: int, c: int, items) -> Placed:
        items, x = list(items), c
        cells = []
        for w, s, name in items:
            cells.append((x, w, s, name))
            x += w
        return Placed(u, r, c, x - c, tuple(cells))

    for u in units:
        if u.text == "\n":
            placed.append(Placed(u, row, col, 1 if col < cols else 0))
            row, col, line, word = row + 1, 0, [], 0
            continue
        if u.text == "\t":
            w = min(TAB - col % TAB, cols - col)
            placed.append(Placed(u, row, col, w, ((col, w, "", None),)))
            col += w
            line.append(len(placed) - 1)
            word = len(line)
            continue
        items = pieces(u.text)
        width = sum(w for w, _, _ in items)
        if u.text.isspace():
            width = min(width, max(cols - col, 0))
            placed.append(Placed(u, row, col, width))
            col += width
            line.append(len(placed) - 1)
            word = len(line)
            continue
        if col + width > cols and col > 0:
            moving = line[word:]
            if moving and placed[moving[0]].col > 0:  # the word so far goes to the next row with this unit
                row, col = row + 1, 0
                for k in moving:
                    p = placed[k]
                    placed[k] = put(p.unit, row, col, [(w, s, n) for _, w, s, n in p.pieces])
                    col += placed[k].width
                line, word = moving, 0
            else:  # no room even at the start of a row: break the word here
                row, col, line, word = row + 1, 0, [], 0
        placed.append(put(u, row, col, items))
        col += width
        line.append(len(placed) - 1)
    return placed, row, col


# ------------------------------------------------------------------------------------------------
# the window


@functools.lru_cache(maxsize=8)
def _advance(font: str) -> float:
    """The font's advance (one column) in em, measured from Pango: centre to centre of 40 M's."""
    t = Text("M" * 40, font=font, font_size=72, disable_ligatures=True)
    return float((t[-1].get_center()[0] - t[0].get_center()[0]) / 39)


class TerminalWindow(VGroup):
    """A terminal: a window with a title bar (three dots and a title) and a text area on a monospace grid.

    Geometry for laying text out: `cols` x `rows` cells of `cw` x `lh` scene units, `cell_left(col)`,
    `baseline(row)` for row 0 at the top (a scene scrolls by shifting what it shows)."""

    def __init__(self, theme: Theme, *, width: float = 9.4, height: float = 7.7, font_size: float = 21,
                 title: str = "", line_height: float = 1.42, padding: float = 0.24, bar_height: float = 0.44,
                 **kwargs):
        super().__init__(**kwargs)
        self.theme, self.font_size = theme, font_size
        self.em = font_size / 72  # Text's em in scene units
        self.cw = _advance(MONO_FONT) * self.em
        self.lh = line_height * self.em
        self.frame = RoundedRectangle(width=width, height=height, corner_radius=0.16, stroke_color=theme.muted,
                                      stroke_width=1.5, stroke_opacity=0.8, fill_color=theme.panel, fill_opacity=1)
        self.bar = RoundedRectangle(width=width, height=bar_height, corner_radius=0.16, stroke_width=0,
                                    fill_color=theme.cell_off, fill_opacity=1)
        self.bar.move_to(self.frame.get_top(), aligned_edge=UP)
        # the bar's lower corners square (a strip over them), so only the window's top corners are round
        strip = Rectangle(width=width, height=bar_height / 2, stroke_width=0, fill_color=theme.cell_off,
                          fill_opacity=1).move_to(self.bar.get_bottom(), aligned_edge=DOWN)
        # three window dots, greys: green is the marker's alone
        dots = VGroup(*[Circle(radius=0.075, stroke_width=0, fill_color=mix(theme.cell_off, theme.muted, a),
                               fill_opacity=1) for a in (0.9, 0.7, 0.5)]).arrange(buff=0.12)
        dots.move_to(self.bar).align_to(self.frame, LEFT).shift(0.28 * np.array([1.0, 0, 0]))
        self.title = label(title, font_size=18, color=theme.muted, max_width=width - 2.0).move_to(self.bar) \
            if title else VGroup()
        self.add(self.frame, self.bar, strip, dots, self.title)
        self.padding, self.bar_height = padding, bar_height
        self.cols = int((width - 2 * padding) / self.cw + 1e-6)
        self.rows = int((height - bar_height - 1.4 * padding) / self.lh + 1e-6)

    @property
    def left(self) -> float:
        """x of the text area's left edge (wherever the window has been moved)."""
        return self.frame.get_left()[0] + self.padding

    @property
    def top(self) -> float:
        """y of the text area's top edge."""
        return self.frame.get_top()[1] - self.bar_height - self.padding * 0.7

    def cell_left(self, col: float) -> float:
        return self.left + col * self.cw

    def baseline(self, row: float) -> float:
        """The y row `row` stands on: letters sit on it, emoji are centred half a capital above it."""
        return self.top - (row + 1) * self.lh + 0.36 * self.em  # descenders fit in the 0.36 em below

    def row_center(self, row: float) -> float:
        return self.top - (row + 0.5) * self.lh

    def cursor(self, color: str | None = None) -> Rectangle:
        """A block cursor one cell wide (move it with place_cursor)."""
        return Rectangle(width=self.cw, height=self.lh * 0.86, stroke_width=0,
                         fill_color=color or self.theme.muted, fill_opacity=0.85)

    def place_cursor(self, cursor: Rectangle, row: float, col: float) -> Rectangle:
        return cursor.move_to([self.cell_left(col) + self.cw / 2, self.row_center(row), 0.0])


# ------------------------------------------------------------------------------------------------
# drawing the text


@functools.lru_cache(maxsize=32)
def _glyphs(chars: str, font_size: float) -> dict[str, VMobject | None]:
    """Each character of `chars` drawn once by Pango in the monospace font, placed for a cell whose left edge is
    at x = 0 and whose baseline is at y = 0 (None for a character without ink). One Text for all of them: on a
    monospace grid every cell of a character looks the same, so a row is copies of these."""
    em = font_size / 72
    cw = _advance(MONO_FONT) * em
    line = "M " + " ".join(chars)  # character k sits in column 2 + 2k; the M marks column 0 and the baseline
    text = Text(line, font=MONO_FONT, font_size=font_size, disable_ligatures=True)
    if len(text.submobjects) != len(line):  # Pango merged characters (combining marks): one Text each
        return {ch: _alone(ch, font_size) for ch in chars}
    mark = text[0]
    text.shift([cw / 2 - mark.get_center()[0], -mark.get_bottom()[1], 0.0])
    out = {}
    for k, ch in enumerate(chars):
        g = text[2 + 2 * k]
        if not g.has_points():
            out[ch] = None
            continue
        g.shift([-(2 + 2 * k) * cw, 0.0, 0.0])
        if _char_width(ch) != 1 or abs(g.get_center()[0] - cw / 2) > 0.25 * cw:
            g.shift([_char_width(ch) * cw / 2 - g.get_center()[0], 0.0, 0.0])  # another font's glyph: centred
        out[ch] = g
    return out


def _alone(ch: str, font_size: float) -> VMobject | None:
    g = Text(ch, font=MONO_FONT, font_size=font_size)
    if not g.has_points() and not any(m.has_points() for m in g.get_family()):
        return None
    cw = _advance(MONO_FONT) * font_size / 72
    return g.move_to([_char_width(ch) * cw / 2, g.height / 2, 0.0])  # centred in its cells, on the baseline


class TerminalText:
    """The glyphs of placed units: each character is drawn once by Pango (a monospace font, so every cell of a
    character looks the same) and copied into its cells; each emoji is drawn in its two cells.

    `glyphs[i]` is a VGroup of placed[i]'s glyphs and emoji (empty for spaces and newlines), placed for the grid
    with nothing scrolled; colors[i] is its text colour."""

    def __init__(self, window: TerminalWindow, placed: Sequence[Placed], colors: Sequence[str], *,
                 halo: str | None = None):
        self.window = window
        self.glyphs = [VGroup() for _ in placed]
        chars = "".join(sorted({s for p in placed for _, _, s, _ in p.pieces if s and not s.isspace()}))
        atlas = _glyphs(chars, window.font_size) if chars else {}
        em = window.em
        for i, p in enumerate(placed):
            base = window.baseline(p.row)
            for col, w, s, name in p.pieces:
                if name is not None:
                    center = [window.cell_left(col + w / 2), base + 0.36 * em, 0.0]
                    self.glyphs[i].add(emoji_mobject(name, EMOJI_SIZE * em, center, halo=halo))
                elif s and atlas.get(s) is not None:
                    g = atlas[s].copy().shift([window.cell_left(col), base, 0.0])
                    self.glyphs[i].add(g.set_fill(colors[i], opacity=1))


def token_spans(placed: Sequence[Placed]) -> dict[tuple[int, int], list[float]]:
    """(token, row) -> [first column, last column] the token's bytes cover on that row: each unit's cells split
    among its tokens in proportion to their bytes. Typed text (no tokens) has none."""
    spans: dict[tuple[int, int], list[float]] = {}
    for p in placed:
        start = float(p.col)
        for t, share in p.unit.shares:
            end = start + share * p.width
            if end > start:
                s = spans.setdefault((t, p.row), [start, end])
                s[0], s[1] = min(s[0], start), max(s[1], end)
            start = end
    return spans


UNDERLINE = 0.035  # scene units (2 px at 480p); the gap between two tokens' underlines is twice the inset
UNDERLINE_INSET = 0.02


def token_tints(window: TerminalWindow, placed: Sequence[Placed], shades: Sequence[str],
                underline: str | None = None) -> dict[tuple[int, int], VGroup]:
    """(token, row) -> a rectangle of quiet colour behind the token's cells on that row (token t gets
    shades[t % len(shades)], so neighbours differ), and, in colour `underline`, a thin line under the cells that
    stops short of each end: the gaps between underlines mark the token boundaries at the contrast of the
    underline against the window, which the quiet shades alone do not reach."""
    out = {}
    for (t, row), (a, b) in token_spans(placed).items():
        x0, x1 = window.cell_left(a), window.cell_left(b)
        y = window.row_center(row)
        shade = Rectangle(width=x1 - x0, height=window.lh * 0.9, stroke_width=0,
                          fill_color=shades[t % len(shades)], fill_opacity=1).move_to([(x0 + x1) / 2, y, 0.0])
        parts = [shade]
        if underline is not None and x1 - x0 > 3 * UNDERLINE_INSET:
            parts.append(Rectangle(width=x1 - x0 - 2 * UNDERLINE_INSET, height=UNDERLINE, stroke_width=0,
                                   fill_color=underline, fill_opacity=1)
                         .move_to([(x0 + x1) / 2, y - window.lh * 0.45 + UNDERLINE / 2, 0.0]))
        out[t, row] = VGroup(*parts)
    return out


def tint_shades(theme: Theme) -> tuple[str, str]:
    """Two quiet shades of the window's background that alternate token by token."""
    return mix(theme.panel, theme.text, 0.1).to_hex(), mix(theme.panel, theme.text, 0.22).to_hex()


def underline_color(theme: Theme) -> str:
    """The token underlines' colour: at least 3:1 against the window and both shades (tested), and not the text's
    colour, so it never reads as a letter."""
    return mix(theme.panel, theme.text, 0.7).to_hex()
