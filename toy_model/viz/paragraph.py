"""Paragraphs of token text: wrapped to a width, emoji drawn (toy_model.viz.emoji), lines on a fixed pitch.

    p = paragraph("The same token twice: ‘🤖’ ...", theme, width=6.3, font_size=22)   # first baseline at y = 0
    stack([p, other], x=-6.75, top=2.2, gap=0.3)                                     # one under the other
    text_width("Each token makes a query", 22)                                       # scene units, no Pango

Wrapping measures each candidate line with the font's advance widths (Pillow, DejaVu Sans) instead of laying it
out with Pango: building a Text per trial is the slow part of a frame, and a paragraph would try every word.
Each line is then built once, as token_label (so emoji are OpenMoji drawings), at the font size given: text is
never scaled below it (toy_model.viz.legibility).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence

from manim import Group, VGroup, VMobject

from toy_model.viz.emoji import EMOJI_SIZE, split_emoji, token_label
from toy_model.viz.text import FONT
from toy_model.viz.theme import Theme

UNITS_PER_EM = 0.0139  # scene units per em per unit of font size: a Text's width over Pillow's advance (measured,
# 0.0129 for narrow letters to 0.0138 for ordinary text: rounded up, so a measured line never comes out wider)
PITCH_PER_FONT_SIZE = 0.0215  # baseline to baseline, per unit of font size (about 1.5 lines)


@functools.lru_cache(maxsize=2)
def _font(weight: str = "NORMAL"):
    """Pillow's DejaVu Sans (bold for weight BOLD) at 100 px, or None when the font file cannot be found."""
    from PIL import ImageFont

    if not shutil.which("fc-match"):
        return None
    spec = FONT + (":bold" if weight.upper() == "BOLD" else "")
    try:
        path = subprocess.run(["fc-match", "-f", "%{file}", spec], capture_output=True, text=True,
                              timeout=5).stdout.strip()
        return ImageFont.truetype(path, 100) if path else None
    except (OSError, subprocess.SubprocessError):  # pragma: no cover
        return None


@functools.lru_cache(maxsize=8192)
def text_width(s: str, font_size: float, weight: str = "NORMAL") -> float:
    """About how wide token_label(s, font_size=font_size, weight=weight) comes out, in scene units (a little
    more, never less, for ordinary text): emoji count EMOJI_SIZE em. Without the font file, the label is built
    and measured."""
    font = _font(weight)
    if font is None:  # pragma: no cover
        return token_label(s, font_size=font_size, weight=weight).width
    ems = 0.0
    for run, name in split_emoji(s):
        ems += EMOJI_SIZE if name else font.getlength(run) / 100
    return ems * UNITS_PER_EM * font_size


def wrap(text: str, width: float, font_size: float, weight: str = "NORMAL") -> list[str]:
    """text split at spaces into lines no wider than `width` at font_size; '\\n' forces a break. A single word
    wider than `width` stays whole on its own line (a no-break space keeps a formula together)."""
    lines = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if line and text_width(trial, font_size, weight) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def paragraph(text: str, theme: Theme, *, width: float, font_size: float = 22, color: str | None = None,
              weight: str = "NORMAL", pitch: float | None = None) -> VGroup:
    """text wrapped to `width`, one token_label per line, the first line's baseline at y = 0 and every line's
    left edge at x = 0 (move it as a whole)."""
    pitch = pitch or font_size * PITCH_PER_FONT_SIZE
    lines = VGroup()
    for k, line in enumerate(wrap(text, width, font_size, weight)):
        if not line.strip():
            continue
        t = token_label(line, font_size=font_size, color=color or theme.text, weight=weight, halo=theme.emoji_halo)
        t.shift([-t.get_left()[0], -k * pitch - t.baseline, 0])
        lines.add(t)
    return lines


def stack(parts: Sequence, *, x: float, top: float, gap: float = 0.25) -> VGroup | Group:
    """parts placed top to bottom, left edges at x, the first one's top at `top`, `gap` between them (empty
    parts are skipped over). Returns them as one VGroup (a Group if any part is an image)."""
    for m in parts:
        if not m.get_family()[1:] and not m.has_points():
            continue
        m.shift([x - m.get_left()[0], top - m.get_top()[1], 0])
        top = m.get_bottom()[1] - gap
    return VGroup(*parts) if all(isinstance(m, VMobject) for m in parts) else Group(*parts)
