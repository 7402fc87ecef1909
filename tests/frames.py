"""Helpers for frame tests: reading what a rendered frame shows (pixels, not Manim's objects)."""

import numpy as np


def is_marker_green(rgb: np.ndarray, margin: int = 30) -> np.ndarray:
    """Pixels (..., 3) that are the marker's green: green channel above red and blue by `margin`. The kit keeps
    green for the marker alone (toy_model.viz.theme), so this finds the token on screen."""
    rgb = rgb.astype(np.int16)
    return (rgb[..., 1] - np.maximum(rgb[..., 0], rgb[..., 2])) > margin
