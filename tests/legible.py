"""Helpers for the scene tests: what a frame shows, legibility, one rendered moment of a scene.

`illegible` is toy_model.viz.legibility.small_texts with one correction: an EmojiText removes its layout marks
(the placeholder letters and the baseline 'M') from its Text, which makes that Text's measured font_size read
smaller than it is; an EmojiText is measured against a fresh one of the same text at a known size instead.
"""

from __future__ import annotations

import numpy as np
from manim import Text, config, tempconfig

from toy_model.viz.emoji import EmojiText, token_label
from toy_model.viz.legibility import MIN_LINE_PX, line_px, small_texts


def emoji_font_size(e: EmojiText) -> float:
    """The font size an EmojiText is drawn at, after any scaling."""
    ref = token_label(e.original_text, font_size=20)
    return 20 * e.height / ref.height if ref.height else 20.0


def illegible(mobjects, frame_px: int = 480) -> list[tuple[str, float]]:
    """(text, pixel height) of every text whose line is under the legibility rule's minimum at frame_px."""
    limit = MIN_LINE_PX.get(frame_px, 14 * frame_px / 480)
    found, inside = [], set()
    for mob in mobjects:
        for m in mob.get_family():
            if isinstance(m, EmojiText):
                inside.update(id(t) for t in m.text.get_family())
                px = line_px(emoji_font_size(m), frame_px)
                if px < limit - 0.05:
                    found.append((m.original_text, round(px, 1)))
    plain = [m for mob in mobjects for m in mob.get_family() if isinstance(m, Text) and id(m) not in inside]
    return found + small_texts(plain, frame_px)


def still(scene_class, stop_at: str, quality: str = "low_quality", **kwargs):
    """(frame RGB (H, W, 3), scene) at the moment stop_at of a dry run: only that last frame is drawn."""
    with tempconfig({"dry_run": True, "quality": quality, "disable_caching": True, "progress_bar": "none",
                     "verbosity": "ERROR"}):
        scene = scene_class(stop_at=stop_at, **kwargs)
        draw = scene.renderer.update_frame
        scene.renderer.update_frame = lambda *args, **kw: None
        scene.render()
        scene.renderer.static_image = None
        draw(scene)
        frame = scene.renderer.get_frame()[..., :3].copy()
        scene.to_pixel = pixel_mapper(frame.shape)
    return frame, scene


def pixel_mapper(shape):
    h, w = shape[:2]
    fw, fh = config.frame_width, config.frame_height

    def to_pixel(point) -> tuple[int, int]:
        """(row, column) of the pixel at a scene point."""
        x, y = point[0], point[1]
        return int((fh / 2 - y) / fh * h), int((x + fw / 2) / fw * w)

    return to_pixel


def rgb(color: str) -> np.ndarray:
    h = color.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)])


def near(frame: np.ndarray, color: str, tol: int = 40) -> np.ndarray:
    """Pixels within tol (summed over channels) of a colour."""
    return np.abs(frame.astype(int) - rgb(color)).sum(axis=-1) < tol
