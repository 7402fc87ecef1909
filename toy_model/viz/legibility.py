"""Legibility rules every scene follows, and the measurements that check them (tests use these).

- Text: a line of text (the box of "Ag", cap top to descender) at least 14 px tall at 480p and 24 px at
  1080p. With DejaVu Sans that is font_size 18 or more after any scaling (MIN_FONT_SIZE): 18 gives 14.1 px
  at 480p and 31.7 px at 1080p, so the 480p rule is the one that binds.
- Contrast (WCAG 2 relative luminance): text at least 4.5:1 against what it sits on, graphics that carry
  meaning (the marker, lit cells, bars, outlines of empty cells) at least 3:1.

Pieces of the kit take font sizes at or above MIN_FONT_SIZE; a scene that scales a group down checks it
with `small_texts`. numpy and Manim only; nothing runs on import.
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_FONT_SIZE = 18  # see the module docstring: 'Ag' in DejaVu Sans at font_size 18 is 14.1 px at 480p
TEXT_CONTRAST = 4.5
GRAPHIC_CONTRAST = 3.0
LINE_PER_FONT_SIZE = 0.01302  # scene units of an 'Ag' line per unit of font_size (DejaVu Sans, measured)
MIN_LINE_PX = {480: 14, 1080: 24}  # pixel height of the frame -> smallest line of text


def relative_luminance(color: str) -> float:
    """WCAG 2's relative luminance of a '#RRGGBB' colour."""
    h = color.lstrip("#")
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (same) to 21 (black on white)."""
    hi, lo = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def line_px(font_size: float, frame_px: int, frame_height: float = 8.0) -> float:
    """Pixel height of a line of text at font_size, in a frame `frame_px` pixels tall (frame_height units)."""
    return font_size * LINE_PER_FONT_SIZE * frame_px / frame_height


def small_texts(mobjects: Iterable, frame_px: int = 480, frame_height: float = 8.0) -> list[tuple[str, float]]:
    """(text, pixel height) of every Text in the mobjects' families whose line is under MIN_LINE_PX[frame_px]."""
    from manim import Text

    limit = MIN_LINE_PX.get(frame_px, 14 * frame_px / 480)
    found = []
    for mob in mobjects:
        for m in mob.get_family():
            if isinstance(m, Text) and m.height > 0 and m.text.strip():
                px = line_px(m.font_size, frame_px, frame_height)
                if px < limit - 1e-6:
                    found.append((m.text, round(px, 1)))
    return found
