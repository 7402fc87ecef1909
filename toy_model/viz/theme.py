"""Colours: the dark and light themes every scene, notebook figure and slide uses.

Green is reserved for the marker (the token's activation): nothing else on screen is green, which keeps the
marker findable by eye and by the frame tests. Each layer kind has an accent (toy_model.kinds names).
"""

from __future__ import annotations

from dataclasses import dataclass

from manim import ManimColor


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
                   cell_off="#E3E6EA", mamba="#1F6FB2", moe="#B05309", attention="#8A3FC0",
                   marker="#0F8A44", marker_dim="#7FCF9C"),
}


def mix(a: str, b: str, alpha: float) -> ManimColor:
    """The colour alpha of the way from a to b."""
    return ManimColor(a).interpolate(ManimColor(b), alpha)

