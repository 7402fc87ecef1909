# manim render -ql --disable_caching bench/floor.py        (what bench/bench_scenes.py runs)
"""Floor: the least a scene like block_flow can cost Manim to render, to measure scenes against.

A static backdrop about as rich as block_flow's (five labelled blocks with their inner cells, two braces
with "×3", a lane with its input and output labels, a right-hand panel of text, a small bar chart and a
prediction list) is drawn once, and one green triangle climbs the lane, moving every frame, 30 times
(10 tokens x 3 repeats). One play() of FLOOR_FRAMES frames: the same frame count and size as
`manim render -ql scenes/block_flow.py` with its default tokens (1,592 frames at 480p15, 106.1 s of video).

What a scene spends beyond this is its own doing: text built per token, pieces redrawn every frame that do
not move, per-play set-up (a static background image and a video segment per play()), copies for
Transform targets. bench/bench_scenes.py reports each scene's render time as a multiple of this one.

Built from Manim alone, not the scene kit, so that changing the kit never moves the floor.
FLOOR_FRAMES in the environment sets another frame count (the bench passes a scene's own count).
"""

from __future__ import annotations

import os

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    Brace,
    Line,
    Rectangle,
    RoundedRectangle,
    Scene,
    Text,
    Triangle,
    UpdateFromAlphaFunc,
    VGroup,
    config,
    linear,
)

FRAMES = 1592  # block_flow -ql with the default trace and tokens: count them again if that scene changes
PASSES = 30  # climbs of the lane: 10 tokens x 3 repeats
FONT = "DejaVu Sans"
BACKGROUND, TEXT, MUTED, PANEL = "#10141A", "#E8EAED", "#8E99A6", "#19202A"
ACCENTS = ["#5AB0F0", "#F2A65A", "#5AB0F0", "#C792EA", "#F2A65A"]  # bottom to top, as block_flow's group
TITLES = ["Mamba-2", "Latent MoE", "Mamba-2", "Attention", "Latent MoE"]


def text(s: str, size: float = 20, color: str = MUTED, weight: str = "NORMAL") -> Text:
    return Text(s, font=FONT, font_size=size, color=color, weight=weight)


def cells(j: int) -> VGroup:
    """Something to fill a block's inner area, as block_flow's details do: bars, a grid, or chips."""
    if TITLES[j] == "Mamba-2":
        return VGroup(*[Rectangle(width=0.22, height=0.1 + 0.07 * h, stroke_width=0, fill_color=ACCENTS[j],
                                  fill_opacity=1) for h in range(8)]).arrange(RIGHT, buff=0.12, aligned_edge=DOWN)
    if TITLES[j] == "Latent MoE":
        grid = VGroup(*[RoundedRectangle(width=0.3, height=0.3, corner_radius=0.04, stroke_width=1.2,
                                         stroke_color=MUTED, fill_color="#2A3340", fill_opacity=1)
                        for _ in range(16)]).arrange_in_grid(2, 8, buff=0.07)
        return VGroup(grid, text("S", 16, TEXT).next_to(grid, RIGHT, buff=0.2))
    chips = VGroup()
    for word in ("The", "hyb", "rid", "mod", "el"):
        box = RoundedRectangle(width=0.72, height=0.46, corner_radius=0.06, stroke_width=1.5,
                               stroke_color=ACCENTS[j], fill_color="#2A3340", fill_opacity=1)
        chips.add(VGroup(box, text(word, 17, TEXT).move_to(box)))
    return chips.arrange(RIGHT, buff=0.08)


class Floor(Scene):
    def construct(self):
        frames = int(os.environ.get("FLOOR_FRAMES", FRAMES))
        self.camera.background_color = BACKGROUND

        blocks = VGroup()
        for j, title in enumerate(TITLES):
            box = RoundedRectangle(width=6.9, height=1.06, corner_radius=0.14, stroke_color=ACCENTS[j],
                                   stroke_width=2.5, stroke_opacity=0.7, fill_color=PANEL, fill_opacity=1)
            name = text(title, 26, TEXT, "BOLD").move_to(box.get_left() + RIGHT * 0.78, aligned_edge=LEFT)
            tag = text(f"layer {j}", 18, ACCENTS[j]).next_to(name, DOWN, buff=0.1, aligned_edge=LEFT)
            blocks.add(VGroup(box, VGroup(name, tag).shift(UP * 0.1), cells(j).move_to(box.get_center() + RIGHT)))
        blocks.arrange(UP, buff=0.2).move_to([-2.15, -0.05, 0])
        braces = VGroup(*[VGroup(b := Brace(blocks, direction=d, buff=0.12, color=MUTED),
                                 text("×3", 34, TEXT, "BOLD").next_to(b, d, buff=0.12)) for d in (LEFT, RIGHT)])
        lane_x = blocks.get_left()[0] + 0.42
        bottom, top = blocks.get_bottom()[1] - 0.42, blocks.get_top()[1] + 0.42
        lane = Line([lane_x, bottom - 0.1, 0], [lane_x, top + 0.1, 0], stroke_color=MUTED, stroke_width=2)
        ends = VGroup(text("input: token embedding").move_to([lane_x + 0.4, bottom, 0], aligned_edge=LEFT),
                      text("output: final norm → LM head → next token").move_to([lane_x + 0.4, top, 0],
                                                                                aligned_edge=LEFT))

        chart = VGroup(*[Rectangle(width=0.2, height=0.05 + 0.03 * i, stroke_width=0, fill_color=ACCENTS[i % 5],
                                   fill_opacity=1) for i in range(15)]).arrange(RIGHT, buff=0.05, aligned_edge=DOWN)
        rows = VGroup(*[VGroup(text(w, 20, TEXT), Rectangle(width=p, height=0.16, stroke_width=0, fill_color=TEXT,
                                                             fill_opacity=0.85), text(f"{100 * p:.0f}%", 18, TEXT))
                        .arrange(RIGHT, buff=0.3) for w, p in (("␣the", 0.41), ("␣a", 0.2), (",", 0.1), ("␣of", 0.06),
                                                               ("␣and", 0.04))]).arrange(DOWN, buff=0.12,
                                                                                       aligned_edge=LEFT)
        panel = VGroup(
            text("toy Nemotron-H · 15 real layers"),
            text("token 33 of 42 · generated"),
            VGroup(RoundedRectangle(width=1.6, height=0.8, corner_radius=0.1, stroke_color=TEXT, stroke_width=2.5,
                                    fill_color=PANEL, fill_opacity=1), text("␣model", 36, TEXT, "BOLD")),
            text("…the hybrid stack keeps a fixed-size state", 18),
            text("repeat 2 of 3 · layers 5–9", 20, TEXT),
            text("update norm, layer by layer", 18), chart,
            text("predicted next token"), rows,
            text("size, brightness: update norm", 18), text("bars: state per head (tick: before)", 18),
            text("cells: top-4 of 16 experts · S: shared", 18), text("chips: tokens attended to most", 18),
        ).arrange(DOWN, buff=0.14, aligned_edge=LEFT).move_to([2.95, 0, 0], aligned_edge=LEFT)
        panel[2][1].move_to(panel[2][0])
        panel.scale_to_fit_height(min(panel.height, config.frame_height - 0.3))

        marker = Triangle(stroke_width=0, fill_color="#3DDC84", fill_opacity=1).rotate(np.pi).scale_to_fit_height(0.4)
        self.add(blocks, braces, lane, ends, panel, marker)  # the marker last: only it is redrawn per frame

        def climb(m, alpha):
            m.move_to([lane_x, bottom + (alpha * PASSES % 1) * (top - bottom), 0])

        # run_time a half frame short of `frames`: Manim draws a frame at each multiple of 1/fps below it
        self.play(UpdateFromAlphaFunc(marker, climb, rate_func=linear), run_time=(frames - 0.5) / config.frame_rate)
