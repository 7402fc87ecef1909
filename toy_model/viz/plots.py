"""matplotlib for the notebooks: one style readable on light and dark Jupyter themes, the kit's colours per layer
kind, and a context that renders the kit's Manim scenes inline.

A figure is drawn on its own white card (white face, dark text), so it reads the same whether the notebook
around it is light or dark. Layer kinds keep the colours the scenes use (the light theme's accents).
matplotlib and Manim are imported when a function is called, never on import.
"""

from __future__ import annotations

import os
import tempfile

from toy_model.viz.theme import THEMES

KIND_COLORS = {kind: THEMES["light"].accent(kind) for kind in ("mamba", "moe", "attention", "mlp")}
KIND_COLORS["mlp"] = THEMES["light"].muted


def use_notebook_style() -> None:
    """White-card figures with dark text and a legible size, for any Jupyter theme."""
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
        "text.color": "#1F2328", "axes.labelcolor": "#1F2328", "axes.edgecolor": "#5B6470",
        "xtick.color": "#1F2328", "ytick.color": "#1F2328", "font.size": 11, "axes.titlesize": 12,
        "figure.dpi": 100, "figure.figsize": (9, 3.6), "axes.spines.top": False, "axes.spines.right": False,
    })


def tick_text(s: str, limit: int = 10) -> str:
    """Token text for an axis label: matplotlib's fonts have no emoji, so a character the font cannot draw shows
    as its code point ('[U+1F916]', as in the scenes' fallback), and long tokens are shortened."""
    from toy_model.viz.text import shorten, visible_text

    return visible_text(shorten(s, limit))


def layer_labels(pattern: str) -> list[str]:
    """'0 M', '1 E', ... for a pattern: the layer index and its character, for an axis."""
    return [f"{i} {c}" for i, c in enumerate(pattern)]


def color_layer_ticks(ax, pattern: str, axis: str = "y") -> None:
    """Colour each layer's tick label by its kind (toy_model.kinds), as the scenes colour the blocks."""
    from toy_model.kinds import BY_CHAR

    labels = ax.get_yticklabels() if axis == "y" else ax.get_xticklabels()
    for label, c in zip(labels, pattern, strict=False):
        label.set_color(KIND_COLORS[BY_CHAR[c].name])


def work_in_scratch_folder() -> str:
    """Move the notebook's working folder to a fresh temporary one and return it. Manim's %%manim writes its
    media/ under the working folder (and needs it there), so this keeps the repository clean."""
    folder = tempfile.mkdtemp(prefix="toy-notebook-")
    os.chdir(folder)
    return folder
