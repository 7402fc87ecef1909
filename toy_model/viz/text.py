"""Text: labels (cached Pango text), shortening, visible spaces, and what a reader counts as one character.

Building Pango text is the slow part of a frame, so `label` caches by content and hands out copies (cheap
ones: `drop_svg_sources`). An emoji sequence (a pictograph with its modifiers, a flag, a keycap) counts as
one character: `text_units` splits text that way, and `shorten` never cuts one apart. Characters the font
cannot draw are shown by `visible_text` as their code point, e.g. "[U+1F916]" (toy_model.viz.emoji draws
emoji as OpenMoji).
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from manim import Mobject, Text

FONT = "DejaVu Sans"  # ships with Debian and most Linux images; Pango falls back if absent


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


def drop_svg_sources(mobject):
    """mobject without what Manim keeps from the SVG it was read from: each glyph's parsed path
    (svgelements) and the SVG's id index. Neither is drawn nor used once the points exist, yet deep-copying
    them is most of the cost of copying text: 20 ms for a 23-letter label, 0.5 ms without. Call it on
    prototypes that are handed out as copies."""
    seen, todo = set(), [mobject]
    while todo:  # submobjects, and mobjects held as attributes (Text.chars keeps glyphs removed from the text)
        m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if getattr(m, "path_obj", None) is not None:
            m.path_obj = None
        if getattr(m, "id_to_vgroup_dict", None):
            m.id_to_vgroup_dict = {}
        todo += [*m.submobjects, *(v for v in vars(m).values() if isinstance(v, Mobject))]
    return mobject


@functools.lru_cache(maxsize=2048)
def _text_proto(s: str, font_size: float, color: str, weight: str) -> Text:
    return drop_svg_sources(Text(s, font=FONT, font_size=font_size, color=color, weight=weight))


def label(s: str, *, font_size: float = 24, color: str = "#FFFFFF", weight: str = "NORMAL",
          max_width: float | None = None) -> Text:
    """A Text (cached by content: building Pango text is the slow part), scaled down to max_width."""
    t = _text_proto(s if s.strip() else "·", font_size, color, weight).copy()
    if max_width is not None and t.width > max_width:
        t.scale_to_fit_width(max_width)
    return t



# ------------------------------------------------------------------------------------------------
# emoji sequences: what a reader counts as one character


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

