# manim render scenes/block_flow.py                  (1080p60; -ql for a quick 480p15 preview)
# TOY_TRACE=my.npz TOY_TOKENS=0-12 TOY_PACE=0.8 TOY_THEME=light TOY_GUIDE=off manim render -ql scenes/block_flow.py
"""BlockFlow: tokens flowing up the residual stream of the hybrid stack, one block at a time.

The picture: the repeated group of blocks (Mamba-2 / Latent MoE / Mamba-2 / Attention / Latent MoE, with
"×3" beside it) to the right of the residual stream, a vertical lane the token (a green triangle of one
size) climbs. Each block reads the stream through RMSNorm (an arrow in) and writes its update back at a
plus on the lane; the disc behind the plus grows with the size of that write (the update's norm). Beside
the blocks, a strip of all 15 layers unrolled (three groups of five: three different sets of weights) that
the token climbs in step, each cell filled by its write.

The story: a title card with the key; the prompt's tokens go up together (the prefill, one parallel pass),
and the model's prediction for the next token; then each generated token alone (decode), the first one
guided block by block with a line saying what the block does and its real numbers, each with its
prediction. Every number comes from the trace.

Parameters (environment variables override the [block_flow] section of scenes/manim.cfg):
    TOY_TRACE   path to a trace .npz               (default: traces/default.npz)
    TOY_TOKENS  which tokens: auto | all | prompt | generated | 3 | 0-7 | 3,5,9-12; prompt tokens go up
                together, generated ones one at a time (default auto: the prompt and the first 4 answer tokens)
    TOY_PACE    seconds per block, up to 5         (default 1.0; at least 0.23 at 15 fps)
    TOY_THEME   dark | light                       (default: dark)
    TOY_GUIDE   on | off: the first generated token slowly, with captions (default: on)
Bad values or a bad trace stop the render before anything is drawn, with one line on stderr. From a notebook:
BlockFlow(params=FlowParams(...)) reads nothing from the environment.

Token text shows emoji as OpenMoji drawings (https://openmoji.org, by HfG Schwäbisch Gmünd, licensed
CC BY-SA 4.0); the scene credits OpenMoji from the first emoji on.
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
    AnimationGroup,
    Arrow,
    Circle,
    FadeOut,
    ManimColor,
    Polygon,
    Rectangle,
    Scene,  # noqa: F401 (BlockFlow is a FastScene; tests build still scenes from block_flow.Scene)
    Triangle,
    VGroup,
    config,
)

from toy_model.kinds import BY_CHAR
from toy_model.trace_file import Trace
from toy_model.viz.captions import PredictionList, TokenCaption
from toy_model.viz.details import make_detail
from toy_model.viz.emoji import EMOJI_CREDIT, has_emoji
from toy_model.viz.notes import key_list, paragraph
from toy_model.viz.params import ENV, ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.scene import Curtain, FastScene
from toy_model.viz.slides import beat
from toy_model.viz.stack import Block, Highlight, LayerStrip, Marker, RepeatBrace, ResidualLane
from toy_model.viz.subtitles import say
from toy_model.viz.text import label, show_spaces, text_units
from toy_model.viz.theme import Theme
from toy_model.viz.views import TraceView

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"  # without a [block_flow] trace
FlowError = ParamError  # the scene's parameter error (kept by this name for its users)

# A hop is the token's move into a block (MOVE of the pace), then the block at work (the rest: a Mamba-2 block
# decays, then writes, each in half of it). The shortest animation is the move: it must last one frame.
MOVE = 0.3  # of the pace
SHORTEST_STEP = MOVE
GUIDE_PACE = 1.5  # seconds per block for the guided token
PREDICTION_HOLD = 2.5  # seconds a prediction list stays before the next token moves
TITLE_HOLD = 3.5  # seconds of title card: the key can be read before the first token
AUTO_ANSWER_TOKENS = 4  # 'auto': the prompt, then this many generated tokens


def repeating_group(pattern: str) -> str:
    """The shortest group whose repeats make the pattern ('MEM*E' for 'MEM*E' * 3; the whole pattern if none)."""
    for n in range(1, len(pattern) + 1):
        if len(pattern) % n == 0 and pattern[:n] * (len(pattern) // n) == pattern:
            return pattern[:n]
    return pattern


MAX_GROUP = 6  # blocks the diagram draws: the repeating group of the pattern


def _draws(pattern: str) -> str | None:
    if len(repeating_group(pattern)) > MAX_GROUP:
        return (f"the trace's layer pattern {pattern!r} does not repeat a group of at most {MAX_GROUP} layers, "
                f"which this scene draws as its blocks")
    return None


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in scene units (the frame is 14.2 x 8 around the origin)."""

    lane_x: float = -6.3  # the residual stream
    blocks_left: float = -5.75
    block_width: float = 5.85
    stack_bottom: float = -3.0
    stack_top: float = 2.85
    block_gap: float = 0.2
    label_width: float = 2.4
    gauge_height: float = 0.6
    expert_cell: float = 0.2
    expert_gap: float = 0.035
    n_chips: int = 4  # earlier tokens shown per attention step: the most attended ones
    strip_x: float = 1.5  # the unrolled layers
    strip_width: float = 0.42
    panel_x: float = 2.8  # the right-hand panel: caption, predictions, key
    panel_width: float = 4.2
    title_y: float = 3.72
    caption_y: float = 3.25
    prediction_y: float = 0.95
    key_y: float = -3.92
    guide_y: float = -3.3
    context_units: int = 28  # characters of context shown under the token
    prompt_markers: int = 12  # at most this many prompt tokens drawn side by side in the prefill


LAYOUT = Layout()


@dataclass(frozen=True)
class FlowParams:
    trace: Trace
    trace_path: Path | None
    tokens: tuple[int, ...]
    pace: float
    theme: Theme
    guide: bool = True


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> FlowParams:
    """FlowParams from the environment over manim.cfg [block_flow] defaults; FlowError names a bad value.
    frame_rate (default: Manim's, as configured when called) sets the shortest pace."""
    settings = Settings("block_flow", env, cfg_path, keys=ENV | {"guide": "TOY_GUIDE"})
    theme = settings.theme()
    pace = settings.pace(config.frame_rate if frame_rate is None else frame_rate, SHORTEST_STEP, fallback="1.0",
                         unit="block")
    trace, path = settings.trace(DEFAULT_TRACE, _draws)
    tokens = settings.tokens(trace, auto=AUTO_ANSWER_TOKENS + trace.n_prompt_tokens)
    if settings.get("tokens", "auto")[0].lower() == "auto":
        tokens = tuple(range(min(trace.n_tokens, trace.n_prompt_tokens + AUTO_ANSWER_TOKENS)))
    guide, src = settings.get("guide", "on")
    if guide.lower() not in ("on", "off"):
        raise FlowError(f"{src}={guide!r}: the guide must be 'on' or 'off'")
    return FlowParams(trace, path, tokens, pace, theme, guide.lower() == "on")


class BlockFlow(FastScene):
    """A trace's tokens flowing up the hybrid stack. `params` / `stop_at` may be set on a subclass or passed
    in; stop_at=(n, layer) ends the scene once the n-th pass (the prefill counts as one) reaches that layer."""

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
        p, trace = self.params, self.params.trace
        self.camera.background_color = ManimColor(p.theme.background)

        # The diagram, under a title card that names the model and keys every symbol
        self.build_diagram()
        beat(self, f"{self.title_text()}. The residual stream on the left; each block reads it through RMSNorm "
                  f"and writes its update back at the plus. The strip unrolls all {trace.n_layers} layers.")
        self.title_card()

        # Passes: the selected prompt tokens together (prefill), then each selected answer token (decode)
        prompt = [t for t in p.tokens if not trace.is_generated(t)]
        answer = [t for t in p.tokens if trace.is_generated(t)]
        passes = ([prompt] if prompt else []) + [[t] for t in answer]
        guided = answer[0] if (p.guide and answer) else None
        for n, tokens in enumerate(passes):
            beat(self, self.pass_notes(tokens, tokens[-1] == guided))
            self.introduce(tokens)
            t = tokens[-1]  # the details show this token: the last of the prompt, or the token decoded
            for layer in range(trace.n_layers):
                slow = t == guided and layer < len(self.group)
                self.hop(tokens, layer, GUIDE_PACE if slow else p.pace, guide=slow)
                if self.stop_at == (n, layer):
                    return
            self.show_prediction(t)
        self.wait(1.0)

    def pass_notes(self, tokens: list[int], guided: bool) -> str:
        """The speaker notes of a pass's slide: what goes up, and what the model predicts after it."""
        trace = self.params.trace
        t = tokens[-1]
        _, best, prob = trace.predictions(t)[0]
        text = show_spaces(trace.display_text(t))
        if len(tokens) > 1:
            what = (f"Prefill: the {len(tokens)} prompt tokens go up together, one parallel pass through all "
                    f"{trace.n_layers} layers; the blocks show the last one, '{text}'.")
        else:
            what = f"Decode: token {t} ('{text}') goes up alone, reading the cache the earlier tokens left."
        if guided:
            what += " Slowly, block by block: the line under the stack says what each block does, with its number."
        return f"{what} Then the top prediction for the next token: '{show_spaces(best)}' at {prob:.0%}."

    # ---- diagram ---------------------------------------------------------------------------------

    def build_diagram(self):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        self.view = TraceView(trace)
        cfg = self.view.config
        self.group = repeating_group(trace.pattern)
        self.n_repeats = len(trace.pattern) // len(self.group)
        n = len(self.group)
        latent = cfg.get("moe_latent_size") is not None
        height = (lay.stack_top - lay.stack_bottom - (n - 1) * lay.block_gap) / n
        self.blocks = VGroup()
        for j, c in enumerate(self.group):
            kind = BY_CHAR[c]
            layers = [r * n + j for r in range(self.n_repeats)]
            block = Block(kind.display_title(latent), kind.name, th, width=lay.block_width, height=height,
                          label_width=lay.label_width, layers=layers, lane_inset=0.0, note=self.note(kind.name),
                          title_size=22)
            block.move_to([lay.blocks_left + lay.block_width / 2, lay.stack_bottom + height / 2 + j * (height +
                          lay.block_gap), 0])
            self.blocks.add(block)

        # one detail per block, in its inner area
        inner = lay.block_width - lay.label_width - 0.35
        sizes = {"mamba": dict(height=min(lay.gauge_height, 0.62 * height)),
                 "moe": dict(rows=2, cell=lay.expert_cell, gap=lay.expert_gap),
                 "attention": dict(n_chips=lay.n_chips, width=inner, timeline=False, chip_width=0.8),
                 "mlp": {}}
        self.details = []
        for block, c in zip(self.blocks, self.group, strict=True):
            detail = make_detail(BY_CHAR[c].name, th, self.view, **sizes[BY_CHAR[c].name])
            if BY_CHAR[c].name == "attention":  # its chips are laid out around a centre, token by token
                detail.move_to(block.inner_center)
            else:  # the rest to the right, clear of the block's title
                detail.move_to([block.box.get_right()[0] - 0.18 - detail.width / 2, block.box.get_center()[1], 0])
            self.details.append(detail)
        self.brace = RepeatBrace(self.blocks, th, count=self.n_repeats, direction=RIGHT) if self.n_repeats > 1 \
            else VGroup()
        if self.n_repeats > 1:
            self.brace.shift(RIGHT * 0.02)

        # the residual stream: read through RMSNorm, written back at a plus
        self.input_point = np.array([lay.lane_x, lay.stack_bottom - 0.28, 0])
        self.output_point = np.array([lay.lane_x, lay.stack_top + 0.3, 0])
        self.lane = ResidualLane(self.blocks, th, x=lay.lane_x, bottom=self.input_point[1] - 0.1,
                                 top=self.output_point[1] + 0.05)
        self.lane_label = label("residual stream", font_size=18, color=th.muted).rotate(np.pi / 2)
        self.lane_label.move_to([lay.lane_x - 0.62, (lay.stack_top + lay.stack_bottom) / 2, 0])

        # all layers unrolled: three groups, three sets of weights
        kinds = [trace.layer_kind(i) for i in range(trace.n_layers)]
        self.strip = LayerStrip(th, kinds, group=n, width=lay.strip_width, height=lay.stack_top - lay.stack_bottom)
        self.strip.move_to([lay.strip_x, (lay.stack_top + lay.stack_bottom) / 2, 0])
        self.strip_labels = VGroup(*[
            label(f"{r * n}–{r * n + n - 1}" if n > 1 else f"{r}", font_size=18, color=th.text)
            .next_to([lay.strip_x + lay.strip_width / 2, (lo + hi) / 2, 0], RIGHT, buff=0.1)
            for r, (lo, hi) in enumerate(self.strip.group_spans)])
        self.strip_title = label("layers", font_size=18, color=th.muted).next_to(self.strip, UP, buff=0.1)

        # top line and the right-hand panel (caption and predictions come per pass)
        self.title = label(self.title_text(), font_size=24, color=th.text, weight="BOLD")
        self.title.move_to([lay.lane_x - 0.45, lay.title_y, 0], aligned_edge=LEFT)
        self.phase = VGroup()
        self.key = self.build_key().move_to([lay.panel_x, lay.key_y, 0], aligned_edge=LEFT + DOWN)
        # OpenMoji's licence (CC BY-SA 4.0) asks for credit: shown from the first emoji on, under the strip
        self.credit = VGroup(*[label(line.strip(), font_size=18, color=th.muted)
                               for line in EMOJI_CREDIT.split("·")]).arrange(DOWN, buff=0.05, aligned_edge=LEFT)
        self.credit.move_to([lay.strip_x - lay.strip_width / 2 - 0.55, lay.stack_bottom - 0.12, 0],
                            aligned_edge=LEFT + UP)

        self.marker = Marker(th, intensity=1.0, max_size=0.34).move_to(self.input_point).set_opacity(0)
        self.strip_marker = Triangle(stroke_width=0, fill_color=th.marker, fill_opacity=1).rotate(-np.pi / 2)
        self.strip_marker.scale_to_fit_height(0.22).set_opacity(0)
        self.caption, self.prediction, self.guide_line = VGroup(), VGroup(), VGroup()
        self.highlight = Highlight()  # the active block's outline
        self.labels = [self.brace, self.lane_label, self.title, self.key, self.strip_title, self.strip_labels]
        self.draw_in_order()
        self.curtain = Curtain(th.background)

    def note(self, kind: str) -> str:
        """The block's one-line fact under its title, from the trace's config."""
        cfg = self.view.config
        if kind == "mamba":
            return f"{cfg.get('mamba_n_heads')} heads"
        if kind == "moe":
            return ""
        if kind == "attention":
            return f"{cfg.get('num_attention_heads')}q/{cfg.get('num_key_value_heads')}kv"
        return "dense"

    def title_text(self) -> str:
        trace, cfg = self.params.trace, self.view.config
        style = "Nemotron 3 Super-style" if cfg.get("moe_latent_size") else "Nemotron-H-style"
        return f"A toy of the {style} hybrid · {trace.n_layers} layers, real activations"

    def build_key(self) -> VGroup:
        """The key: each symbol of the diagram, drawn small, and what it means (kinds the trace lacks left out)."""
        th, cfg, w = self.params.theme, self.view.config, self.layout.panel_width
        k, e = cfg.get("num_experts_per_tok", "k"), cfg.get("n_routed_experts", "N")
        box = lambda color: Rectangle(width=0.09, height=0.22, stroke_width=0, fill_color=color, fill_opacity=1)
        plus = VGroup(Circle(radius=0.12, stroke_width=0, fill_color=th.moe, fill_opacity=1),
                      Circle(radius=0.07, stroke_color=th.text, stroke_width=2, fill_color=th.background,
                             fill_opacity=1))
        rows = [
            (Marker(th, intensity=1.0, max_size=0.22), "the token, always one size", None),
            (Arrow(LEFT * 0.2, RIGHT * 0.2, buff=0, stroke_width=3, color=th.muted,
                   max_tip_length_to_length_ratio=0.4), "reads the stream (RMSNorm)", None),
            (plus, "writes back; disc: its size", None),
            (VGroup(box(th.mamba), box(th.mamba).stretch(0.5, 1)).arrange(RIGHT, buff=0.04, aligned_edge=DOWN),
             "state per head; tick: before", "mamba"),
            (VGroup(*[Rectangle(width=0.12, height=0.12, stroke_color=th.muted, stroke_width=1.5,
                                fill_color=th.moe if i == 1 else th.cell_off, fill_opacity=1) for i in range(3)])
             .arrange(RIGHT, buff=0.03), f"{k} of {e} experts lit; S: shared", "moe"),
            (Rectangle(width=0.3, height=0.2, stroke_color=th.attention, stroke_width=2,
                       fill_color=th.cell_off, fill_opacity=1), "tokens read; thick: itself", "attention"),
        ]
        lat = cfg.get("moe_latent_size")
        if lat:
            funnel = VGroup(Polygon([-0.2, 0.13, 0], [0, 0.04, 0], [0, -0.04, 0], [-0.2, -0.13, 0]),
                            Polygon([0.05, 0.04, 0], [0.25, 0.13, 0], [0.25, -0.13, 0], [0.05, -0.04, 0]))
            funnel.set_stroke(th.muted, width=1.5).set_fill(th.cell_off, opacity=1)
            rows.insert(5, (funnel, f"width d {cfg.get('d_model')} → latent {lat} → d", "moe"))
        present = {self.params.trace.layer_kind(i) for i in range(self.params.trace.n_layers)}
        return key_list([(m, s) for m, s, kind in rows if kind is None or kind in present], th, width=w,
                        font_size=18, gap=0.05, swatch_room=0.55)

    def draw_in_order(self, working=None):
        """Put everything on screen in its drawing order, with the detail `working` (if any) animated last.

        The order is for speed (toy_model.viz.scene): every frame Manim redraws from the first piece that moves;
        every play FastScene redraws the still image from the first piece that changed. So: labels that never
        change, the captions (new per pass), the blocks, the details at rest, the pieces that change every hop,
        the detail at work, the markers.
        """
        credit = [self.credit] if self.credit in self.mobjects else []
        resting = [d for d in self.details if d is not working]
        self.set_drawing_order(*self.labels, self.phase, self.caption, self.prediction, self.guide_line, *credit,
                               self.blocks, *resting, self.highlight, self.lane, self.strip,
                               *([working] if working is not None else []), self.marker, self.strip_marker)

    def title_card(self):
        """The diagram with its key, under a fading card that names the model; held so the key can be read."""
        th = self.params.theme
        words = ("The bundled model's real activations: its tokens climb the residual stream through Mamba-2, "
                 "Latent MoE and attention blocks. Key at the bottom right.")
        card = paragraph(words, th, width=8.5, font_size=22).move_to([-1.4, 0, 0])
        back = Rectangle(width=card.width + 0.6, height=card.height + 0.5, stroke_color=th.muted, stroke_width=2,
                         fill_color=th.panel, fill_opacity=1).move_to(card)
        self.add(self.curtain, back, card)
        say(self, f"{self.title_text()}. {words}")
        self.play(FadeOut(self.curtain), run_time=0.8)
        self.wait(TITLE_HOLD)
        self.play(FadeOut(back), FadeOut(card), run_time=0.5)
        say(self, None)

    def credit_emoji(self, mobject):
        """Put the OpenMoji credit on screen (to stay) once mobject draws an emoji."""
        if has_emoji(mobject) and self.credit not in self.mobjects:
            self.add(self.credit)  # placed with the captions by draw_in_order

    # ---- per pass --------------------------------------------------------------------------------

    def introduce(self, tokens: list[int]):
        """The caption for a pass and the markers at the input: one token, or the prompt's tokens side by side."""
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        t = tokens[-1]
        prefill = not trace.is_generated(t)
        n = lay.context_units
        before = text_units("".join(str(trace.token_text[s]) for s in range(max(0, t - 24), t)))
        context = ("…" if len(before) > n or t > 24 else "") + "".join(before[-n:]) if t else "(first token)"
        if prefill:
            header = f"prefill: {len(tokens)} prompt tokens at once"
        else:
            header = f"decode: token {t + 1} of {trace.n_tokens}, alone"
        caption = TokenCaption(th, show_spaces(trace.display_text(t)), header=header, context=context,
                               width=lay.panel_width)
        notes = ["the blocks show the last one"] if prefill and len(tokens) > 1 else []
        shown = trace.display_text(t) + context
        if "␣" in show_spaces(trace.display_text(t)):
            notes.append("␣ is a space")
        if "<|endoftext|>" in shown:
            notes.append("<|endoftext|> starts every text")
        if notes:
            caption.add(label(" · ".join(notes), font_size=18, color=th.muted)
                        .next_to(caption, DOWN, buff=0.08, aligned_edge=LEFT))
        caption.move_to([lay.panel_x, lay.caption_y, 0], aligned_edge=LEFT + UP)
        self.remove(self.caption, self.prediction)
        self.credit_emoji(caption)
        self.caption, self.prediction = caption, VGroup()
        say(self, caption.words)
        # the markers: prompt tokens side by side on the lane, each of one size
        count = min(len(tokens), lay.prompt_markers)
        self.remove(self.marker)
        if count > 1:
            self.marker = VGroup(*[Marker(th, intensity=1.0, max_size=0.15) for _ in range(count)])
            self.marker.arrange_in_grid(rows=-(-count // 5), cols=min(count, 5), buff=0.03)
        else:
            self.marker = Marker(th, intensity=1.0, max_size=0.34)
        self.marker.move_to(self.input_point).set_opacity(0)
        self.strip_marker.move_to(self.strip.cell_point(0) + LEFT * 0.2).set_opacity(0)
        self.strip.reset()
        self.lane.reset()
        self.draw_in_order()

    def hop(self, tokens: list[int], layer: int, pace: float, guide: bool = False):
        """Move the token(s) into `layer`'s block, then play the layer at work on the shown token: its detail,
        the write-back disc and the strip's cell growing with the update's norm. The block's outline lights
        only when the token has arrived."""
        t = tokens[-1]
        n = len(self.group)
        j, r = layer % n, layer // n
        block = self.blocks[j]
        if j == 0:  # a new group of layers: each block now stands for its layer in this repeat
            for jj, (b, d) in enumerate(zip(self.blocks, self.details, strict=True)):
                b.set_repeat(r)
                d.enter(self.view, r * n + jj, t)
            self.lane.reset()
        y = block.box.get_center()[1]
        move = [self.marker.animate(run_time=MOVE * pace).move_to([self.layout.lane_x, y, 0]).set_opacity(1).build(),
                self.strip_marker.animate(run_time=MOVE * pace).move_to(self.strip.cell_point(layer) + LEFT * 0.2)
                .set_opacity(1).build()]
        if j == 0 and r > 0:  # round from the top of the group to its bottom, the strip's marker climbing on
            self.marker.move_to([self.layout.lane_x, self.input_point[1], 0])
        self.highlight.on(None)
        self.strip.set_active(None)
        self.guide_line = self.guide_caption(layer, t) if guide else VGroup()
        say(self, self.guide_line.words if guide else self.caption.words)  # the guide's line while it shows
        self.draw_in_order()
        self.play(*move)
        self.highlight.on(block)
        self.strip.set_active(layer)
        v = float(self.view.intensity[layer, t])
        work = (1 - MOVE) * pace
        detail = self.details[j].show(self.view, layer, t, work)
        self.credit_emoji(self.details[j])
        self.draw_in_order(working=self.details[j])
        self.play(AnimationGroup(detail, self.lane.write(j, v, run_time=work),
                                 self.strip.fill(layer, v, run_time=work)))

    def guide_caption(self, layer: int, t: int) -> VGroup:
        """One line under the stack: what this block does, with this layer's real number for token t."""
        th, trace, cfg = self.params.theme, self.params.trace, self.view.config
        kind = trace.layer_kind(layer)
        if kind == "mamba":
            keep = float(trace.mamba(layer, t)["decay"].mean())
            text = (f"Mamba-2, layer {layer}: a fixed-size memory ({cfg.get('mamba_n_heads')} heads × "
                    f"{cfg.get('mamba_head_dim')} × {cfg.get('ssm_state_size')}) keeps {keep:.0%} of itself "
                    f"(the heads' mean), then takes in the token")
        elif kind == "moe":
            m = trace.moe(layer, t)
            lat = cfg.get("moe_latent_size")
            space = f" in a {cfg.get('d_model') // lat}× smaller latent space" if lat else ""
            text = (f"Latent MoE, layer {layer}: the router picks {len(m['topk_ids'])} of "
                    f"{trace.moe_scores.shape[2]} experts ({', '.join(str(int(e)) for e in m['topk_ids'])})"
                    f"{space}, plus the shared expert")
        elif kind == "attention":
            w = trace.attention(layer, t).mean(axis=0)
            s = int(np.argmax(w))
            text = (f"Attention, layer {layer}: the token looks back at earlier tokens, most at "
                    f"‘{show_spaces(trace.display_text(s))}’ ({w[s]:.0%} of its attention)")
        else:
            text = f"Dense MLP, layer {layer}: every token through the same full-width MLP"
        lay = self.layout
        left = lay.lane_x - 0.45
        line = paragraph(text, th, width=lay.panel_x - 0.25 - left, font_size=18, color=th.text)  # up to the key
        line.words = text
        return line.move_to([left, lay.guide_y, 0], aligned_edge=LEFT + UP)

    def show_prediction(self, t: int):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        preds = trace.predictions(t)
        nxt = int(trace.token_ids[t + 1]) if t + 1 < trace.n_tokens else None
        actual = next((i for i, (pid, _, _) in enumerate(preds) if pid == nxt), None)
        title = "predicted next token" + (" · ✓ came next" if actual is not None else "")
        plist = PredictionList(th, [(show_spaces(s), prob) for _, s, prob in preds], title=title, actual=actual,
                               width=lay.panel_width)
        plist.move_to([lay.panel_x, lay.prediction_y, 0], aligned_edge=LEFT + UP)
        self.highlight.on(None)
        self.strip.set_active(None)
        self.guide_line = VGroup()
        self.draw_in_order()
        self.play(self.marker.animate.move_to(self.output_point), self.strip_marker.animate.set_opacity(0),
                  run_time=min(self.params.pace, 0.6))
        self.credit_emoji(plist)
        self.prediction = plist
        say(self, plist.words)
        self.draw_in_order()
        self.wait(max(PREDICTION_HOLD, 3 * self.params.pace))  # time to read the list


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    BlockFlow.params = or_exit(resolve_params)
