"""Heatmaps of real values: a matrix drawn as one image, its colour scales, and a colour bar that explains them.

    colors = HeatColors.for_theme(theme)
    rgba = signed_rgba(h, vmax, colors)                 # orange positive, blue negative, grey near zero
    rgba = log_rgba(M, vmax, 4, colors, mask=upper)     # brightness: log10 |M| over 4 decades; sign: hue
    grid = Heatmap(rgba, width=2.0, height=4.0, theme=theme)   # one ImageMobject + a frame, crisp pixels
    self.play(grid.transform_to(new_rgba, run_time=0.3))       # fades pixel by pixel to other values
    bar = ColorBar.signed(theme, vmax, "h: value") / ColorBar.log(theme, decades=4, ...)

A matrix of hundreds of cells as hundreds of Squares is slow to draw every frame; as one RGBA image (nearest
neighbour, so every cell stays a sharp square at any resolution) it is one paste. Scenes that draw images use
`ImageCamera` (Scene(camera_class=ImageCamera)): Manim 0.22's Camera cannot draw an ImageMobject with
Pillow 12 or later (it calls Image.fromarray(float zeros, mode="RGBA"), which Pillow now refuses), and it
composites every image over a whole frame; ImageCamera pastes an upright image into its own box only.

Colours: no green (the marker's), and each scale's ends reach at least 3:1 against the background (the
legibility rule for graphics; tests check HeatColors with contrast_ratio). Masked cells (e.g. above the
diagonal of a causal matrix) are transparent: the background shows through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from manim import (
    DOWN,
    LEFT,
    UP,
    Group,
    ImageMobject,
    Polygon,
    Rectangle,
    Transform,
    VGroup,
)
from manim.constants import RESAMPLING_ALGORITHMS
from PIL import Image

from toy_model.viz.scene import KitCamera
from toy_model.viz.text import label
from toy_model.viz.theme import Theme


@dataclass(frozen=True)
class HeatColors:
    """A diverging scale (negative, zero, positive) and a one-sided ramp (zero to ramp_top) for one theme."""

    negative: str
    zero: str  # a value of 0, or below a log scale's floor: still distinguishable from the background
    positive: str
    ramp_top: str  # the top of one-sided scales (a decay mask: 0 to 1)

    @classmethod
    def for_theme(cls, theme: Theme) -> HeatColors:
        if theme.name == "light":
            return cls(negative="#1D5FA8", zero=theme.cell_off, positive="#B4490F", ramp_top=theme.text)
        return cls(negative="#6FB7FF", zero=theme.cell_off, positive="#FF9E57", ramp_top=theme.text)


def _rgb(color: str) -> np.ndarray:
    h = color.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)


def _paint(level: np.ndarray, lo: str, hi: str) -> np.ndarray:
    """(..., 3) colours level of the way from lo to hi (level in [0, 1])."""
    level = np.clip(level, 0.0, 1.0)[..., None]
    return (1 - level) * _rgb(lo) + level * _rgb(hi)


def _rgba(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    out = np.empty((*rgb.shape[:-1], 4), np.uint8)
    out[..., :3] = np.round(rgb).astype(np.uint8)
    out[..., 3] = 255
    if mask is not None:
        out[mask] = 0  # transparent: the background shows
    return out


def signed_rgba(values: np.ndarray, vmax: float, colors: HeatColors, mask: np.ndarray | None = None, *,
                power: float = 1.0) -> np.ndarray:
    """(H, W, 4) uint8: positive toward `positive`, negative toward `negative`, full at |value| >= vmax; the
    level is (|value| / vmax) ** power (1: linear; 0.5: a square-root scale, which shows small values too).
    `mask` (H, W) bool marks cells left transparent."""
    v = np.asarray(values, np.float64)
    t = v / vmax if vmax > 0 else np.zeros_like(v)
    if power != 1.0:
        t = np.sign(t) * np.minimum(np.abs(t), 1.0) ** power
    rgb = np.where((t >= 0)[..., None], _paint(t, colors.zero, colors.positive),
                   _paint(-t, colors.zero, colors.negative))
    return _rgba(rgb, mask)


def log_level(values: np.ndarray, vmax: float, decades: float) -> np.ndarray:
    """|value| on a log scale in [0, 1]: 1 at vmax, 0 at vmax / 10**decades and below."""
    mag = np.abs(np.asarray(values, np.float64))
    with np.errstate(divide="ignore"):
        level = 1.0 + np.log10(np.where(mag > 0, mag, 1e-300) / vmax) / decades
    return np.clip(np.where(mag > 0, level, 0.0), 0.0, 1.0)


def log_rgba(values: np.ndarray, vmax: float, decades: float, colors: HeatColors, *, signed: bool = True,
             mask: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 4) uint8: brightness log10 |value| over `decades` decades below vmax; the hue its sign (signed)
    or the one-sided ramp (not signed)."""
    level = log_level(values, vmax, decades)
    if signed:
        pos = (np.asarray(values) >= 0)[..., None]
        rgb = np.where(pos, _paint(level, colors.zero, colors.positive), _paint(level, colors.zero, colors.negative))
    else:
        rgb = _paint(level, colors.zero, colors.ramp_top)
    return _rgba(rgb, mask)


class ImageCamera(KitCamera):
    """The kit's Cairo camera (curtains included) with ImageMobjects drawn by a paste into their own box (see the
    module docstring). An upright, unrotated image (every image of the kit) is resized with its own resampling
    algorithm and alpha-blended onto the pixels it covers; any other is drawn by Manim's perspective transform,
    on a transparent frame Pillow accepts."""

    def display_image_mobject(self, image_mobject, pixel_array: np.ndarray) -> None:
        corners = self.points_to_subpixel_coords(image_mobject, image_mobject.points)  # UL, UR, DL, DR
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners
        if abs(y0 - y1) > 1e-6 or abs(x0 - x2) > 1e-6 or x1 <= x0 or y2 <= y0:
            return self._display_transformed(image_mobject, pixel_array, corners)
        left, top, right, bottom = (int(round(v)) for v in (x0, y0, x3, y3))
        w, h = right - left, bottom - top
        if w <= 0 or h <= 0:
            return None
        src = Image.fromarray(np.ascontiguousarray(image_mobject.get_pixel_array()), mode=None)
        if src.mode != "RGBA":
            src = src.convert("RGBA")
        # only the part inside the frame
        cl, ct = max(left, 0), max(top, 0)
        cr, cb = min(right, self.pixel_width), min(bottom, self.pixel_height)
        if cr <= cl or cb <= ct:
            return None
        sub = np.asarray(src.resize((w, h), resample=image_mobject.resampling_algorithm), dtype=np.float32)
        sub = sub[ct - top: cb - top, cl - left: cr - left]
        dst = pixel_array[ct:cb, cl:cr].astype(np.float32)
        alpha = sub[..., 3:4] / 255.0
        out = np.empty_like(dst)
        out[..., :3] = sub[..., :3] * alpha + dst[..., :3] * (1 - alpha)
        out[..., 3:] = 255.0 * alpha + dst[..., 3:] * (1 - alpha)
        pixel_array[ct:cb, cl:cr] = np.clip(np.round(out), 0, 255).astype(pixel_array.dtype)
        return None

    def _display_transformed(self, image_mobject, pixel_array: np.ndarray, target: np.ndarray) -> None:
        """Manim's own drawing (a perspective transform of the whole image), with a frame Pillow accepts."""
        sub = Image.fromarray(np.ascontiguousarray(image_mobject.get_pixel_array())).convert("RGBA")
        original = np.array([[0, 0], [sub.width, 0], [0, sub.height], [sub.width, sub.height]], np.float64)
        shift = np.floor(target.min(axis=0))
        target = target - shift
        size = tuple(int(v) for v in np.ceil(target.max(axis=0)))
        if min(size) <= 0:
            return None
        rows = []
        for (x, y), (X, Y) in zip(target, original, strict=True):
            rows += [[x, y, 1, 0, 0, 0, -X * x, -X * y], [0, 0, 0, x, y, 1, -Y * x, -Y * y]]
        try:
            coeffs = np.linalg.solve(np.array(rows, np.float64), original.reshape(8))
        except np.linalg.LinAlgError:
            return None
        sub = sub.transform(size=size, method=Image.Transform.PERSPECTIVE, data=coeffs,
                            resample=image_mobject.resampling_algorithm)
        full = Image.new("RGBA", (self.pixel_width, self.pixel_height), (0, 0, 0, 0))
        full.paste(sub, box=(int(shift[0]), int(shift[1])))
        self.overlay_PIL_image(pixel_array, full)
        return None


def image(rgba: np.ndarray, width: float, height: float) -> ImageMobject:
    """An ImageMobject of rgba stretched to width x height, drawn with nearest-neighbour pixels (sharp cells)."""
    img = ImageMobject(rgba)
    img.set_resampling_algorithm(RESAMPLING_ALGORITHMS["nearest"])
    img.stretch_to_fit_width(width)
    img.stretch_to_fit_height(height)
    return img


class Heatmap(Group):
    """A matrix as one image (row 0 at the top) with a thin frame around it. `image` is the picture, `frame`
    the outline; cell_box / cell_center place highlights over cells."""

    def __init__(self, rgba: np.ndarray, *, width: float, height: float, theme: Theme, frame: bool = True,
                 frame_color: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.cols = int(rgba.shape[0]), int(rgba.shape[1])
        self.image = image(rgba, width, height)
        self.frame = Rectangle(width=width, height=height, stroke_color=frame_color or theme.muted,
                               stroke_width=1.5 if frame else 0, fill_opacity=0)
        self.add(self.image, self.frame)

    @property
    def cell_width(self) -> float:
        return self.image.width / self.cols

    @property
    def cell_height(self) -> float:
        return self.image.height / self.rows

    def cell_center(self, i: float, j: float) -> np.ndarray:
        """Centre of cell (row i, column j); fractional indices interpolate."""
        left, top = self.image.get_left()[0], self.image.get_top()[1]
        return np.array([left + (j + 0.5) * self.cell_width, top - (i + 0.5) * self.cell_height, 0.0])

    def cell_box(self, rows: tuple[int, int], cols: tuple[int, int], color: str, *, stroke_width: float = 3,
                 fill_opacity: float = 0.0) -> Rectangle:
        """A rectangle around rows [r0, r1) and columns [c0, c1)."""
        (r0, r1), (c0, c1) = rows, cols
        box = Rectangle(width=(c1 - c0) * self.cell_width, height=(r1 - r0) * self.cell_height,
                        stroke_color=color, stroke_width=stroke_width, fill_color=color, fill_opacity=fill_opacity)
        return box.move_to((self.cell_center(r0, c0) + self.cell_center(r1 - 1, c1 - 1)) / 2)

    def lower_triangle_outline(self, color: str, stroke_width: float = 2) -> Polygon:
        """The staircase around cells j <= i of a square matrix: where a causal matrix is not zero."""
        left, top = self.image.get_left()[0], self.image.get_top()[1]
        w, h, n = self.cell_width, self.cell_height, self.rows
        pts = [(left, top), (left + w, top)]
        for i in range(1, n):
            pts += [(left + i * w, top - i * h), (left + (i + 1) * w, top - i * h)]
        pts += [(left + n * w, top - n * h), (left, top - n * h)]
        return Polygon(*[np.array([x, y, 0.0]) for x, y in pts], stroke_color=color, stroke_width=stroke_width)

    def new_image(self, rgba: np.ndarray) -> ImageMobject:
        """An image of other values (same shape) exactly where this one is."""
        assert rgba.shape[:2] == (self.rows, self.cols), (rgba.shape, self.rows, self.cols)
        return image(rgba, self.image.width, self.image.height).move_to(self.image)

    def set_rgba(self, rgba: np.ndarray) -> Heatmap:
        """Show other values at once (same shape)."""
        assert rgba.shape[:2] == (self.rows, self.cols), (rgba.shape, self.rows, self.cols)
        self.image.pixel_array = np.array(rgba, dtype=np.uint8)
        return self

    def transform_to(self, rgba: np.ndarray, **kwargs) -> Transform:
        """An animation blending every cell to other values (same shape)."""
        return Transform(self.image, self.new_image(rgba), **kwargs)


class ColorBar(Group):
    """A horizontal strip of a colour scale with its end labels and a caption above (font sizes >= 18)."""

    def __init__(self, rgba: np.ndarray, ticks: Sequence[tuple[float, str]], caption: str, theme: Theme, *,
                 width: float = 2.4, height: float = 0.2, font_size: float = 18, **kwargs):
        super().__init__(**kwargs)
        self.strip = Heatmap(rgba, width=width, height=height, theme=theme)
        self.ticks = VGroup()
        left = self.strip.get_left()[0]
        for at, text in ticks:  # at in [0, 1] along the strip
            t = label(text, font_size=font_size, color=theme.text)
            t.next_to([left + at * width, self.strip.get_bottom()[1], 0], DOWN, buff=0.08)
            self.ticks.add(t)
        self.caption = label(caption, font_size=font_size, color=theme.text) if caption else VGroup()
        if caption:
            self.caption.next_to(self.strip, UP, buff=0.1).align_to(self.strip, LEFT)
        self.add(self.strip, self.ticks, self.caption)

    @classmethod
    def signed(cls, theme: Theme, vmax: float, caption: str, *, fmt: str = "{:.2g}",
               ends: tuple[str, str] | None = None, **kwargs) -> ColorBar:
        """A linear scale from -vmax (blue) through 0 (grey) to +vmax (orange); `ends` names the ends instead."""
        colors = HeatColors.for_theme(theme)
        v = np.linspace(-vmax, vmax, 64)[None, :]
        low, high = ends or ("−" + fmt.format(vmax), "+" + fmt.format(vmax))
        ticks = [(0.0, low), (0.5, "0"), (1.0, high)]
        return cls(signed_rgba(v, vmax, colors), ticks, caption, theme, **kwargs)

    @classmethod
    def log(cls, theme: Theme, decades: int, caption: str, *, top: str = "1", floor: str | None = None,
            signed: bool = False, **kwargs) -> ColorBar:
        """Brightness on a log scale: from 10^-decades (times the top) to the top. Signed: the negative half on
        the left (blue), the positive on the right (orange), both brightest at the ends."""
        colors = HeatColors.for_theme(theme)
        if signed:
            half = np.logspace(-decades, 0, 32)
            v = np.concatenate([-half[::-1], half])[None, :]
            ticks = [(0.0, f"−{top}"), (0.5, f"±{floor or '10' + _superscript(-decades)}"), (1.0, f"+{top}")]
            return cls(log_rgba(v, 1.0, decades, colors), ticks, caption, theme, **kwargs)
        v = np.logspace(-decades, 0, 64)[None, :]
        ticks = [(k / decades, f"10{_superscript(k - decades)}" if k < decades else top) for k in range(decades + 1)]
        return cls(log_rgba(v, 1.0, decades, colors, signed=False), ticks, caption, theme, **kwargs)


def _superscript(n: int) -> str:
    return str(n).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))

