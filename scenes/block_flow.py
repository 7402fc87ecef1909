# manim render scenes/block_flow.py                  (1080p60; -ql for a quick 480p15 preview)
# TOY_TRACE=my.npz TOY_TOKENS=0-7 TOY_PACE=0.4 TOY_THEME=light manim render -ql scenes/block_flow.py
"""BlockFlow: a token's activations flowing up the hybrid stack, one block at a time.

The diagram is the group Mamba-2 / Latent MoE / Mamba-2 / Attention / Latent MoE drawn once with
"×3" beside it, as in the Nemotron-H architecture figures. Each selected token of a trace travels up
as a green marker three times, once per repeat, and each pass is driven by that repeat's own layers
(layers 5r .. 5r+4 of the 15): the marker's size and brightness follow the block's update norm, the
Latent MoE cells light by gate weight, the attention chips show the earlier tokens attended to, and
the Mamba-2 bars show each head's state decaying by exp(A Delta) and then taking in the token.

Parameters (environment variables override the [block_flow] section of scenes/manim.cfg):
    TOY_TRACE   path to a trace .npz               (default: traces/default.npz)
    TOY_TOKENS  which tokens: auto | all | prompt | generated | 3 | 0-7 | 3,5,9-12   (default: auto,
                the last prompt token and the first 9 generated ones)
    TOY_PACE    seconds per block hop, up to 5     (default: 0.3; at least 4 frames: 0.27 at 15 fps)
    TOY_THEME   dark | light                       (default: dark)
Bad values or a bad trace stop the render before anything is drawn, with one line on stderr. From a notebook:
BlockFlow(params=FlowParams(...)) reads nothing from the environment.

Token text shows emoji as OpenMoji drawings (https://openmoji.org, by HfG Schwäbisch Gmünd, licensed
CC BY-SA 4.0); the scene credits OpenMoji in the bottom-left corner from the first emoji on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    FadeOut,
    Line,
    ManimColor,
    Rectangle,
    Scene,  # noqa: F401 (BlockFlow is a FastScene; tests build still scenes from block_flow.Scene)
    Succession,
    UpdateFromFunc,
    VGroup,
    Wait,
    config,
)

from toy_model.kinds import BY_CHAR
from toy_model.trace_file import Trace
from toy_model.viz.captions import PredictionList, TokenCaption
from toy_model.viz.details import make_detail
from toy_model.viz.emoji import EMOJI_CREDIT, has_emoji
from toy_model.viz.params import ParamError, Settings, apply_cli_defaults, is_render_entry, or_exit
from toy_model.viz.scene import FastScene
from toy_model.viz.stack import Block, Highlight, LayerChart, Marker, RepeatBrace, RepeatPips
from toy_model.viz.text import label, show_spaces, text_units
from toy_model.viz.theme import Theme
from toy_model.viz.views import TraceView

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"  # without a [block_flow] trace
GROUP = "MEM*E"  # the repeated group, bottom to top
FlowError = ParamError  # the scene's parameter error (kept by this name for its users)

# The scene's shortest animation is a quarter of the pace: in `hop`, the marker goes round from the top of the
# stack to the input in pace/2 + pace/4; the Mamba-2 bars decay and fill in pace/2 each; everything else takes
# the pace or longer. Every animation must last at least one frame, so the pace must be at least 4 frames.
SHORTEST_STEP = 1 / 4  # of the pace


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in scene units (the frame is 14.2 x 8 around the origin)."""

    stack_center: tuple[float, float] = (-2.15, -0.05)
    block_width: float = 6.9
    block_height: float = 1.06
    block_gap: float = 0.2
    label_width: float = 2.3
    lane_inset: float = 0.42
    lane_overhang: float = 0.42  # input and output points, below and above the stack
    gauge_height: float = 0.72
    expert_cell: float = 0.3
    expert_gap: float = 0.07
    n_chips: int = 5  # earlier tokens shown per attention step: the most attended ones
    panel_x: float = 2.95  # the right-hand panel: captions, repeat pips, predictions, legend
    panel_width: float = 4.0
    title_y: float = 3.82
    caption_y: float = 3.42
    pips_y: float = 1.58
    chart_y: float = 0.72
    chart_height: float = 0.55
    prediction_y: float = -0.36
    legend_y: float = -3.88
    context_units: int = 26  # characters of context shown under the token


LAYOUT = Layout()


@dataclass(frozen=True)
class FlowParams:
    trace: Trace
    trace_path: Path
    tokens: tuple[int, ...]
    pace: float
    theme: Theme


def _draws(pattern: str) -> str | None:
    n_rep = len(pattern) // len(GROUP)
    if n_rep < 1 or pattern != GROUP * n_rep:
        return f"the trace's layer pattern {pattern!r} is not the group {GROUP!r} repeated, which this scene draws"
    return None


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> FlowParams:
    """FlowParams from the environment over manim.cfg [block_flow] defaults; FlowError names a bad value.
    frame_rate (default: Manim's, as configured when called) sets the shortest pace."""
    settings = Settings("block_flow", env, cfg_path)
    theme = settings.theme()
    pace = settings.pace(config.frame_rate if frame_rate is None else frame_rate, SHORTEST_STEP, unit="block")
    trace, path = settings.trace(DEFAULT_TRACE, _draws)
    return FlowParams(trace, path, settings.tokens(trace), pace, theme)


class BlockFlow(FastScene):
    """A trace's tokens flowing up the hybrid stack. `params` / `stop_at` may be set on a subclass or
    passed in; stop_at=(n, layer) ends the scene once the n-th selected token reaches that layer."""

    params: FlowParams | None = None
    stop_at: tuple[int, int] | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: FlowParams | None = None, stop_at: tuple[int, int] | None = None,
                 **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("BlockFlow needs params=FlowParams(...), or render it with manim render "
                             "scenes/block_flow.py (which reads TOY_* and scenes/manim.cfg)")
        self.stop_at = stop_at if stop_at is not None else type(self).stop_at
        super().__init__(*args, **kwargs)

    def construct(self):
        p = self.params
        self.camera.background_color = ManimColor(p.theme.background)

        # Diagram: five blocks bottom to top, x3 on both sides, input below, output above
        self.build_diagram()
        self.play(FadeOut(self.curtain), run_time=min(1.0, 3 * p.pace))

        # Tokens: each one climbs the stack once per repeat, driven by that repeat's layers
        for n, t in enumerate(p.tokens):
            self.introduce_token(t)
            for r in range(self.n_repeats):
                self.enter_repeat(r, t)
                for j in range(len(GROUP)):
                    self.hop(t, r * len(GROUP) + j)
                    if self.stop_at == (n, r * len(GROUP) + j):
                        return
            # Prediction: what the model expects next after this token
            self.show_prediction(t)

        self.wait(1.0)

    # ---- diagram ---------------------------------------------------------------------------------

    def build_diagram(self):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        self.view = TraceView(trace)
        self.n_repeats = len(trace.pattern) // len(GROUP)
        cfg = trace.meta.get("model_config", {})
        latent = cfg.get("moe_latent_size") is not None
        self.blocks = VGroup()
        for j, c in enumerate(GROUP):
            kind = BY_CHAR[c]
            layers = [r * len(GROUP) + j for r in range(self.n_repeats)]
            self.blocks.add(Block(kind.display_title(latent), kind.name, th, width=lay.block_width,
                                  height=lay.block_height, label_width=lay.label_width, layers=layers,
                                  lane_inset=lay.lane_inset))
        self.blocks.arrange(UP, buff=lay.block_gap).move_to([*lay.stack_center, 0])

        # one detail per block, in its inner area
        sizes = {"mamba": dict(height=lay.gauge_height),
                 "moe": dict(rows=2, cell=lay.expert_cell, gap=lay.expert_gap),
                 "attention": dict(n_chips=lay.n_chips)}
        self.details = []
        for block, c in zip(self.blocks, GROUP, strict=True):
            kind = BY_CHAR[c].name
            self.details.append(make_detail(kind, th, self.view, **sizes[kind]).move_to(block.inner_center))
        self.braces = VGroup(RepeatBrace(self.blocks, th, count=self.n_repeats, direction=LEFT),
                             RepeatBrace(self.blocks, th, count=self.n_repeats, direction=RIGHT))

        lane_x = self.blocks[0].lane_point[0]
        self.input_point = np.array([lane_x, self.blocks.get_bottom()[1] - lay.lane_overhang, 0])
        self.output_point = np.array([lane_x, self.blocks.get_top()[1] + lay.lane_overhang, 0])
        self.lane = Line(self.input_point + DOWN * 0.1, self.output_point + UP * 0.1, stroke_color=th.muted,
                         stroke_width=2, stroke_opacity=0.6)
        inp = label("input: token embedding", font_size=20, color=th.muted)
        inp.next_to(self.input_point, RIGHT, buff=0.4)
        out = label("output: final norm → LM head → next token", font_size=20, color=th.muted)
        out.next_to(self.output_point, RIGHT, buff=0.4)

        # right panel: title, repeat pips, legend (the caption and predictions come per token)
        x0, w = lay.panel_x, lay.panel_width
        title = label(f"toy Nemotron-H · {len(trace.pattern)} real layers", font_size=20,
                      color=th.muted, max_width=w)
        title.move_to([x0, lay.title_y, 0], aligned_edge=LEFT + UP)
        self.pips = RepeatPips(th, count=self.n_repeats, group_size=len(GROUP), max_width=w)
        self.pips.move_to([x0, lay.pips_y, 0], aligned_edge=LEFT + UP)
        self.chart = LayerChart(th, [trace.layer_kind(i) for i in range(trace.n_layers)], group=len(GROUP),
                                title="update norm, layer by layer", width=w - 0.1, height=lay.chart_height)
        self.chart.move_to([x0 + 0.05, lay.chart_y, 0], aligned_edge=LEFT + UP)
        legend = self.legend(th, cfg).move_to([x0, lay.legend_y, 0], aligned_edge=LEFT + DOWN)
        # OpenMoji's licence (CC BY-SA 4.0) asks for credit: shown from the first emoji on, in the free corner
        # left of the lane and below the brace
        self.credit = VGroup(*[label(line.strip(), font_size=13, color=th.muted)
                               for line in EMOJI_CREDIT.split("·")]).arrange(DOWN, buff=0.08, aligned_edge=LEFT)
        self.credit.to_corner(LEFT + DOWN, buff=0.12)

        self.marker = Marker(th, intensity=0.3).move_to(self.input_point).set_opacity(0)
        self.caption = VGroup()
        self.prediction = VGroup()
        self.highlight = Highlight()  # the active block's outline
        # Everything always on screen; draw_in_order draws its pieces in an order of its own.
        self.diagram = VGroup(self.blocks, self.braces, self.lane, inp, out, title, self.pips, legend)
        self.labels = [self.braces, inp, out, title, legend]  # the pieces of it that never change
        self.draw_in_order()
        # fading a background-coloured curtain out is far cheaper than fading every piece in
        self.curtain = Rectangle(width=config.frame_width + 1, height=config.frame_height + 1, stroke_width=0,
                                 fill_color=th.background, fill_opacity=1)
        self.add(self.curtain)

    def draw_in_order(self, working=None):
        """Put everything on screen in its drawing order, with the detail `working` (if any) animated next.

        The order is for speed (toy_model.viz.scene): every frame, Manim redraws everything from the first
        piece that moves on; every play, FastScene redraws the still image from the first piece that changed
        since the play before. So: the labels that never change, the captions (new per token), the blocks and
        the pips (a new layer tag and pip per repeat), the details at rest, the pieces that change every hop
        (the highlight, the lane that crosses it, the chart), the detail at work and the marker. Pieces overlap
        only where the lane and the marker cross the blocks and the highlight, and those keep their order, so
        the picture is the same as in any other such order.
        """
        credit = [self.credit] if self.credit in self.mobjects else []
        resting = [d for d in self.details if d is not working]
        self.set_drawing_order(*self.labels, self.caption, self.prediction, *credit, self.blocks, self.pips,
                               *resting, self.highlight, self.lane, self.chart,
                               *([working] if working is not None else []), self.marker)

    def legend(self, th: Theme, cfg: dict) -> VGroup:
        k, e = cfg.get("num_experts_per_tok", "k"), cfg.get("n_routed_experts", "N")
        line = lambda s: label(s, font_size=18, color=th.muted)
        rows = VGroup(
            VGroup(Marker(th, intensity=1.0, max_size=0.24), line("size, brightness: update norm")),
            line("bars: state per head (tick: before)"),
            line(f"cells: top-{k} of {e} experts · S: shared"),
            line("chips: tokens attended to most"),
        )
        rows[0].arrange(RIGHT, buff=0.15)
        rows.arrange(DOWN, buff=0.1, aligned_edge=LEFT)
        w = self.layout.panel_width
        return rows.scale_to_fit_width(w) if rows.width > w else rows

    def credit_emoji(self, mobject):
        """Put the OpenMoji credit on screen (to stay) once mobject draws an emoji."""
        if has_emoji(mobject) and self.credit not in self.mobjects:
            self.add(self.credit)  # placed with the captions by draw_in_order

    # ---- per token -------------------------------------------------------------------------------

    def introduce_token(self, t: int):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        kind = "generated" if trace.is_generated(t) else "prompt"
        # the text so far; a partial character shows on the token that completes it, so join token_text
        n = lay.context_units
        before = text_units("".join(str(trace.token_text[s]) for s in range(max(0, t - 24), t)))
        context = ("…" if len(before) > n or t > 24 else "") + "".join(before[-n:]) if t else "(first token)"
        caption = TokenCaption(th, show_spaces(trace.display_text(t)),
                               header=f"token {t + 1} of {trace.n_tokens} · {kind}", context=context,
                               width=lay.panel_width)
        caption.move_to([lay.panel_x, lay.caption_y, 0], aligned_edge=LEFT + UP)
        # Captions switch instantly: fading text in and out costs more render time than it is worth.
        self.remove(self.caption, self.prediction)
        self.credit_emoji(caption)
        self.caption, self.prediction = caption, VGroup()
        self.draw_in_order()
        self.chart.reset()
        self.marker.move_to(self.input_point).set_opacity(0)  # appears as the first hop starts

    def enter_repeat(self, r: int, t: int):
        """Point the blocks and the pips at repeat r's layers, and show each block as that layer stands
        before token t reaches it (nothing on screen is left over from another layer)."""
        self.pips.set_repeat(r)
        for j, (block, detail) in enumerate(zip(self.blocks, self.details, strict=True)):
            block.set_repeat(r)
            detail.enter(self.view, r * len(GROUP) + j, t)

    def hop(self, t: int, layer: int):
        """Move the marker into the block of `layer` and play that layer's recorded detail for token t.

        The first hop of a pass starts at the input: the marker fades in there (first repeat), or first
        leaves the top of the stack and comes round to the input (later repeats).
        """
        pace = self.params.pace
        j = layer % len(GROUP)
        block = self.blocks[j]
        self.highlight.on(block)
        marker = self.marker
        # Each .animate is built at once: an unbuilt one would pick up the next one's target.
        lead = []  # what the marker does before it moves into the block
        if layer == 0:
            lead = [marker.animate(run_time=pace / 2).set_intensity(0.3).build()]
        elif j == 0:
            lead = [marker.animate(run_time=pace / 2).move_to(self.output_point).set_opacity(0).build(),
                    UpdateFromFunc(marker, lambda m: m.move_to(self.input_point), run_time=pace / 4)]
        v = float(self.view.intensity[layer, t])
        move = marker.animate(run_time=pace).move_to(block.lane_point).set_intensity(v).build()
        detail = [self.details[j].show(self.view, layer, t, pace), self.chart.animate_bar(layer, v, run_time=pace)]
        self.credit_emoji(self.details[j])
        self.draw_in_order(working=self.details[j])
        if lead:
            wait = sum(a.run_time for a in lead)
            self.play(Succession(*lead, move), *[Succession(Wait(run_time=wait), d) for d in detail])
        else:
            self.play(move, *detail)

    def show_prediction(self, t: int):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        preds = trace.predictions(t)
        nxt = int(trace.token_ids[t + 1]) if t + 1 < trace.n_tokens else None
        actual = next((i for i, (pid, _, _) in enumerate(preds) if pid == nxt), None)
        plist = PredictionList(th, [(show_spaces(s), prob) for _, s, prob in preds],
                               title="predicted next token", actual=actual, width=lay.panel_width)
        plist.move_to([lay.panel_x, lay.prediction_y, 0], aligned_edge=LEFT + UP)
        self.highlight.on(None)
        self.play(self.marker.animate.move_to(self.output_point).set_intensity(0.3),
                  run_time=self.params.pace)
        self.credit_emoji(plist)
        self.prediction = plist
        self.draw_in_order()
        self.wait(max(1.0, 3 * self.params.pace))  # time to read the list


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(apply_cli_defaults, CONFIG_FILE)
    BlockFlow.params = or_exit(resolve_params)
