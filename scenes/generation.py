# manim render scenes/generation.py                    (1080p60; -ql for a quick 480p15 preview)
# TOY_TRACE=my.npz TOY_PACE=0.6 TOY_THEME=light manim render -ql scenes/generation.py
"""Generation: prefill, then one token at a time, and what the model keeps in memory as the text grows.

1. Prefill and decode: the prompt's tokens enter the stack together (a green marker each, one model call),
   then every new token goes through alone and is fed back in. The stack is the kit's (the repeated group
   with its repeat count), scaled down.
2. Memory as it grows, from the byte counts the typed generation caches recorded in the trace (its `cache`
   group: cache_tokens, cache_bytes per call and layer): beside each block, what each of its layers keeps (a
   Mamba-2 layer: its conv window and SSM state, the same size at every step; an attention layer: its keys
   and values, one row more per token; an MoE layer: nothing), and on the right all layers together against
   the number of tokens, in KiB.
3. At scale: the same formulas with the published Nemotron 3 Nano and Super configurations
   (toy_model.published, each value with its source) out to a million tokens: the KV cache of their few
   attention layers against their fixed Mamba-2 state, and against the same model with its Mamba-2 layers
   made attention layers.

Parameters (environment variables override the [generation] section of scenes/manim.cfg):
    TOY_TRACE   path to a trace .npz with the cache group   (default: traces/default.npz)
    TOY_PACE    seconds per decode step, up to 5           (default: 0.5)
    TOY_THEME   dark | light                               (default: dark)
Bad values stop the render before anything is drawn, with one line on stderr. From a notebook:
Generation(params=GenParams(...)) reads nothing from the environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    Create,
    DashedLine,
    FadeIn,
    Line,
    ManimColor,
    Rectangle,
    RoundedRectangle,
    VGroup,
    config,
)

from toy_model.kinds import BY_CHAR
from toy_model.published import (
    CONTEXT_TOKENS,
    NANO,
    SOURCES,
    SUPER,
    Published,
    conv_state_bytes,
    generation_memory,
    kv_bytes_per_token,
    mamba_state_bytes,
)
from toy_model.trace_file import Trace, TraceError
from toy_model.viz.emoji import EMOJI_CREDIT, has_emoji, token_label
from toy_model.viz.formula import TextBlock, text_line
from toy_model.viz.params import ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.scene import Curtain, KitScene
from toy_model.viz.slides import beat
from toy_model.viz.stack import Block, Marker, RepeatBrace
from toy_model.viz.subtitles import say, wait_saying
from toy_model.viz.text import label, show_spaces
from toy_model.viz.theme import Theme

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"
KEYS = {"trace": "TOY_TRACE", "pace": "TOY_PACE", "theme": "TOY_THEME"}
CACHE_HINT = "record one with python -m toy_model trace (it records the cache group always)"
MAX_GROUP = 8  # blocks drawn: the pattern's repeating group must be at most this long
SCALE_MODELS = (NANO, SUPER)  # the published configurations of beat 3
CONTEXT = CONTEXT_TOKENS  # out to the published context length, 2^20 tokens
KIB, MIB, GIB = 2 ** 10, 2 ** 20, 2 ** 30
SHORTEST_STEP = 1.0  # of the pace: a decode step is one animation of the pace; everything else is longer


@dataclass(frozen=True)
class GenParams:
    trace: Trace
    trace_path: Path
    pace: float
    theme: Theme


def repeating_group(pattern: str) -> tuple[str, int]:
    """(group, count): the shortest group the pattern repeats (the whole pattern, once, if none)."""
    n = len(pattern)
    for k in range(1, n + 1):
        if n % k == 0 and pattern[:k] * (n // k) == pattern:
            return pattern[:k], n // k
    return pattern, 1


def _draws(pattern: str) -> str | None:
    group, _ = repeating_group(pattern)
    if len(group) > MAX_GROUP:
        return (f"the trace's layer pattern {pattern!r} repeats no group of at most {MAX_GROUP} layers, which this "
                f"scene draws as its stack")
    return None


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> GenParams:
    """GenParams from the environment over manim.cfg [generation]; a ParamError names a bad value in one line."""
    settings = Settings("generation", env, cfg_path, keys=KEYS)
    theme = settings.theme()
    pace = settings.pace(config.frame_rate if frame_rate is None else frame_rate, SHORTEST_STEP, fallback="0.5",
                         unit="decode step")
    trace, path = settings.trace(DEFAULT_TRACE, _draws)
    try:
        trace.require("cache", CACHE_HINT)
    except TraceError as e:
        raise ParamError(f"{settings.get('trace', str(DEFAULT_TRACE))[1]}: {e}") from None
    return GenParams(trace, path, pace, theme)


class _Stop(Exception):
    """Raised at the stop named by stop_at (tests render the scene up to a moment and look at the frame)."""


@dataclass(frozen=True)
class Layout:
    """Where things go, in scene units (the frame is 14.2 x 8 around the origin)."""

    left: float = -6.85
    right: float = 6.85
    title_y: float = 3.62
    row_y: float = 2.88  # the tokens so far
    caption_y: float = 2.22  # what is happening (its first line's descender)
    stack_x: float = -3.75  # centre of the blocks
    stack_y: float = -0.6
    block_width: float = 3.8
    block_height: float = 0.6
    block_gap: float = 0.12
    label_width: float = 2.35  # 'Latent MoE' at font size 26 (Block's title) needs about 2.05 of it
    lane_inset: float = 0.22
    kept_x: float = -1.6  # left end of the per-layer bars
    kept_width: float = 2.5  # the largest per-layer size, in scene units
    chart_left: float = 1.95
    chart_bottom: float = -2.3
    chart_height: float = 3.2
    note_y: float = -3.45


LAYOUT = Layout()


def kib(n: float) -> str:
    """n bytes in KiB, to at most 2 decimals ('19.75 KiB'), or bytes when under 1 KiB."""
    if n < KIB:
        return f"{n:,.0f} B"
    return f"{n / KIB:,.2f}".rstrip("0").rstrip(".") + " KiB"


def size(n: float) -> str:
    """n bytes in the largest of KiB, MiB, GiB that keeps it at 1 or more."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if n >= unit:
            v = n / unit
            return (f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:,.1f}") + " " + name
    return f"{n:,.0f} B"


def scale_facts(m: Published) -> dict:
    """What beat 3 shows of a published model: its KV bytes per token, its conv window, its memory at CONTEXT
    tokens as it is (hybrid) and with its Mamba-2 layers made attention layers (full), and where its KV passes its
    Mamba-2 state (cross, in tokens)."""
    hybrid = generation_memory(m, CONTEXT)
    per = kv_bytes_per_token(m.n_attention, m.n_kv_heads, m.head_dim)
    return {"per": per, "hybrid": hybrid, "full": generation_memory(m, CONTEXT, all_attention=True),
            "cross": hybrid["state"] / per,
            "conv": conv_state_bytes(m.n_mamba, m.mamba_heads, m.mamba_head_dim, m.n_groups, m.ssm_state,
                                     m.conv_kernel)}


BEATS = ("generate", "scale")  # beats 1 and 2 (the toy model generating, its memory), beat 3 (at scale)


class Generation(KitScene):
    """The beats of the module docstring. `params`, `beats` and `stop_at` may be set on a subclass or passed in:
    beats picks some of BEATS; stop_at names a moment ('prefill:in', 'prefill', 'decode:K' after the K-th
    decode step, 'memory', 'scale') where the scene ends (tests look at that frame)."""

    params: GenParams | None = None
    beats: tuple[str, ...] = BEATS
    stop_at: str | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: GenParams | None = None, beats: tuple[str, ...] | None = None,
                 stop_at: str | None = None, **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("Generation needs params=GenParams(...), or render it with manim render "
                             "scenes/generation.py (which reads TOY_* and scenes/manim.cfg)")
        self.beats = tuple(beats) if beats is not None else type(self).beats
        unknown = [b for b in self.beats if b not in BEATS]
        if unknown:
            raise ParamError(f"Generation beats {unknown[0]!r}: the beats are {', '.join(BEATS)}")
        self.stop_at = stop_at if stop_at is not None else type(self).stop_at
        super().__init__(*args, **kwargs)

    def construct(self):
        p = self.params
        self.camera.background_color = ManimColor(p.theme.background)
        self.th = p.theme
        try:
            if "generate" in self.beats:
                self.build()
                n = int(self.tokens[0])
                m_layers, a_layers = self.kind_layers["mamba"], self.kind_layers["attention"]
                m_one = kib(self.bytes[0, m_layers[0]]) if m_layers else ""
                parts = self.mamba_parts(int(self.bytes[0, m_layers[0]])) if m_layers else []
                split = f": conv {kib(parts[0][1])} + SSM state {kib(parts[1][1])}" if len(parts) == 2 else ""
                mamba = f"each Mamba-2 layer's state has its full size at once ({m_one}{split})" if m_layers else ""
                kv = (f"each attention layer keeps one row of keys and values per token ({kib(self.kv_row(0))} a row: "
                      f"{n} rows, {kib(self.bytes[0, a_layers[0]])})" if a_layers else "")
                beat(self, f"Prefill: the {n} prompt tokens go through the whole stack in one call; "
                          + "; ".join(w for w in (mamba, kv, "each MoE layer keeps nothing") if w) + ".")
                self.prefill()  # 1. the prompt's tokens together, one call
                for k in range(1, self.n_calls):
                    kept = (f"; now each attention layer keeps {int(self.tokens[k])} rows "
                            f"({kib(self.bytes[k, a_layers[0]])})" if a_layers else "")
                    still = f", each Mamba-2 layer still {kib(self.bytes[k, m_layers[0]])}" if m_layers else ""
                    beat(self, f"Decode call {k + 1}: token {int(self.tokens[k])} goes through the stack alone, "
                               f"reading the cache{kept}{still}.")
                    self.decode(k)  # 1. one token per call; 2. memory as it grows
                caption, note = self.memory_words()
                beat(self, f"What generation keeps. {caption}" + (f" {note}" if note else ""))
                self.memory_summary()
            if "scale" in self.beats:
                facts = []
                for m in SCALE_MODELS:
                    f = scale_facts(m)
                    facts.append(f"{m.name}: KV {size(f['per'])} per token, {size(f['hybrid']['kv'])} at 1M tokens "
                                 f"({size(f['full']['kv'])} if its Mamba-2 layers were attention too), against a flat "
                                 f"Mamba-2 state of {size(f['hybrid']['state'])}; KV passes the state at "
                                 f"{f['cross']:,.0f} tokens.")
                beat(self, "At scale: Nemotron 3 Nano and Super, from their published configurations, out to a "
                          "million tokens (2²⁰). " + " ".join(facts))
                self.at_scale()  # 3. Nemotron 3 Nano and Super out to a million tokens
        except _Stop:
            return
        self.wait(4 * p.pace)

    def checkpoint(self, name: str):
        if self.stop_at == name:
            raise _Stop

    # ---- the picture ------------------------------------------------------------------------------

    def build(self):
        th, lay, trace = self.th, self.layout, self.params.trace
        self.tokens = trace.arrays["cache_tokens"].astype(np.int64)  # (S,) tokens held after each call
        self.bytes = trace.arrays["cache_bytes"].astype(np.int64)  # (S, L)
        self.n_calls = len(self.tokens)
        self.group, self.count = repeating_group(trace.pattern)
        kinds = [trace.layer_kind(i) for i in range(trace.n_layers)]
        self.kind_layers = {k: [i for i, kk in enumerate(kinds) if kk == k] for k in ("mamba", "attention")}

        self.title_words = "Generating text: what the model keeps"
        title = label(self.title_words, font_size=30, color=th.text, weight="BOLD")
        title.move_to([lay.left, lay.title_y, 0], aligned_edge=LEFT)
        P, T = trace.n_prompt_tokens, trace.n_tokens
        tag = label(f"toy model · {P} + {T - P} tokens", font_size=20, color=th.muted)
        tag.move_to([lay.right, lay.title_y, 0], aligned_edge=RIGHT)
        self.tag = tag
        self.credit = label(EMOJI_CREDIT, font_size=18, color=th.muted).next_to(tag, DOWN, buff=0.08,
                                                                                 aligned_edge=RIGHT)

        # the stack: the repeated group, bottom to top, with its repeat count beside it
        cfg = trace.meta.get("model_config", {})
        latent = cfg.get("moe_latent_size") is not None
        self.blocks = VGroup()
        for c in self.group:
            kind = BY_CHAR[c]
            block = Block(kind.display_title(latent), kind.name, th, width=lay.block_width, height=lay.block_height,
                          label_width=lay.label_width, lane_inset=lay.lane_inset)
            block.title.move_to(block.box).align_to(block.box, LEFT).shift(RIGHT * (lay.lane_inset + 0.1))
            self.blocks.add(block)
        self.blocks.arrange(UP, buff=lay.block_gap).move_to([lay.stack_x, lay.stack_y, 0])
        stack = VGroup(self.blocks)
        if self.count > 1:
            stack.add(RepeatBrace(self.blocks, th, count=self.count, direction=LEFT))
        inner = self.blocks[0].inner_center[0]
        self.input_y = self.blocks.get_bottom()[1] - 0.36
        self.output_y = self.blocks.get_top()[1] + 0.36
        self.lane_x = inner
        off = self.blocks[0].inner_width / 2 + 0.2  # left of where the markers go in and come out
        io = VGroup(label("in", font_size=20, color=th.text).next_to([inner - off, self.input_y, 0], LEFT, buff=0),
                    label("out", font_size=20, color=th.text).next_to([inner - off, self.output_y, 0], LEFT, buff=0))

        # beside each block: what each of its layers keeps, on one byte scale
        per_layer = self.bytes[:, [self.group_layer(j) for j in range(len(self.group))]]  # (S, group)
        self.unit = lay.kept_width / max(float(per_layer.max()), 1.0)  # scene units per byte
        head = label("what each layer keeps", font_size=20, color=th.text)
        head.move_to([lay.kept_x, self.output_y, 0], aligned_edge=LEFT)
        self.kept = []  # per block: (bar VGroup, value label) updated per call
        kept_static = VGroup(head)
        self.mamba_bars = VGroup()  # they appear with the prefill, which fills them
        self.kv_rows = {}  # block -> its rows (one per token) and their size, rebuilt per call
        for j, block in enumerate(self.blocks):
            kind = block.kind
            y = block.box.get_center()[1]
            if kind == "mamba":
                self.mamba_bars.add(self.mamba_bar(j, y))
            elif kind == "attention":
                self.kept.append(j)
                self.kv_rows[j] = text_line("0 rows yet", font_size=18, color=th.text, left=lay.kept_x,
                                            descender=y - 0.08)
            else:
                kept_static.add(text_line("nothing", font_size=18, color=th.text, left=lay.kept_x,
                                          descender=y - 0.08))

        # all layers together, against the token count
        self.chart = self.make_chart()

        self.row = VGroup()
        self.caption = VGroup()
        self.markers = VGroup()
        split = getattr(self, "mamba_split", VGroup())
        split.move_to([lay.kept_x, self.input_y + 0.1, 0], aligned_edge=UP + LEFT)
        self.add(title, tag, stack, io, kept_static, self.chart, *self.kv_rows.values())
        self.static = VGroup(title, tag, stack, io, kept_static)

    def group_layer(self, j: int, r: int = 0) -> int:
        """The layer block j stands for in repeat r."""
        return r * len(self.group) + j

    def mamba_bar(self, j: int, y: float) -> VGroup:
        """A Mamba-2 layer's cache: its conv window and SSM state, split as the config's formulas give them
        when they add up to the recorded bytes."""
        th, lay = self.th, self.layout
        layer = self.group_layer(j)
        total = int(self.bytes[0, layer])
        parts = self.mamba_parts(total)
        bar = VGroup()
        x = lay.kept_x
        for name, n in parts:
            w = n * self.unit
            if name == "conv":  # outlined: a lighter fill would not keep 3:1 against a light background
                rect = Rectangle(width=max(w, 0.01), height=0.24, stroke_color=th.mamba, stroke_width=2.5,
                                 fill_color=th.background, fill_opacity=1)
            else:
                rect = Rectangle(width=max(w, 0.01), height=0.24, stroke_color=th.background, stroke_width=1.5,
                                 fill_color=th.mamba, fill_opacity=1)
            rect.move_to([x, y - 0.13, 0], aligned_edge=LEFT)
            bar.add(rect)
            x += w
        text = f"{kib(total)}, always"
        note = text_line(text, font_size=18, color=th.text, left=lay.kept_x, descender=y + 0.04)
        if len(parts) == 2 and not hasattr(self, "mamba_split"):  # said once, under the bars
            self.mamba_split = VGroup(
                label(f"outlined: conv, {kib(parts[0][1])}", font_size=18, color=th.text),
                label(f"solid: SSM state, {kib(parts[1][1])}", font_size=18, color=th.text),
            ).arrange(DOWN, buff=0.08, aligned_edge=LEFT)
        return VGroup(bar, note)

    def mamba_parts(self, total: int) -> list[tuple[str, int]]:
        cfg = self.params.trace.meta.get("model_config", {})
        try:
            H, Pd, N, G, K = (int(cfg[k]) for k in ("mamba_n_heads", "mamba_head_dim", "ssm_state_size", "n_groups",
                                                  "conv_kernel"))
        except (KeyError, TypeError, ValueError):
            return [("all", total)]
        for nbytes in (4, 2):  # fp32 (the toy model's cache), else bf16
            conv = conv_state_bytes(1, H, Pd, G, N, K, bytes_per_value=nbytes)
            ssm = mamba_state_bytes(1, H, Pd, N, bytes_per_value=4)
            if conv + ssm == total:
                return [("conv", conv), ("ssm", ssm)]
        return [("all", total)]

    def kv_row(self, s: int) -> float:
        """An attention layer's bytes per token it holds after call s (the first attention layer's)."""
        a = self.kind_layers["attention"][0]
        return int(self.bytes[s, a]) / max(int(self.tokens[s]), 1)

    def kv_bar(self, j: int, s: int) -> VGroup:
        """An attention layer's KV cache after call s: one row per token it holds, and its size."""
        th, lay = self.th, self.layout
        y = self.blocks[j].box.get_center()[1]
        n_tok = int(self.tokens[s])
        total = int(self.bytes[s, self.group_layer(j)])
        per = total / max(n_tok, 1)
        w = per * self.unit
        rows = VGroup(*[Rectangle(width=w, height=0.24, stroke_color=th.background, stroke_width=0.8,
                                  fill_color=th.attention, fill_opacity=1)
                        .move_to([lay.kept_x + k * w, y - 0.13, 0], aligned_edge=LEFT) for k in range(n_tok)])
        note = text_line(f"{n_tok} rows, {kib(total)}", font_size=18, color=th.text, left=lay.kept_x,
                         descender=y + 0.04)
        self.kv_row_bytes = per
        return VGroup(rows, note)

    def make_chart(self) -> VGroup:
        th, lay, trace = self.th, self.layout, self.params.trace
        T = max(int(self.tokens.max()), 1)
        totals = self.bytes.sum(axis=1)
        top = nice_ceiling(float(totals.max()) / KIB)
        self.chart_top = top * KIB
        x0, x1 = lay.chart_left, lay.right - 0.15
        y0, y1 = lay.chart_bottom, lay.chart_bottom + lay.chart_height
        self.chart_x = lambda n: x0 + (x1 - x0) * n / T
        self.chart_y = lambda b: y0 + (y1 - y0) * b / self.chart_top
        axes = VGroup(Line([x0, y0, 0], [x1, y0, 0], stroke_color=th.muted, stroke_width=2),
                      Line([x0, y0, 0], [x0, y1, 0], stroke_color=th.muted, stroke_width=2))
        ticks = VGroup()
        for v in nice_ticks(top):
            y = self.chart_y(v * KIB)
            ticks.add(Line([x0 - 0.06, y, 0], [x0, y, 0], stroke_color=th.muted, stroke_width=2),
                      label(f"{v:g}", font_size=18, color=th.text).next_to([x0 - 0.06, y, 0], LEFT, buff=0.06))
        for n in nice_ticks(T, 5):
            x = self.chart_x(n)
            ticks.add(Line([x, y0, 0], [x, y0 - 0.06, 0], stroke_color=th.muted, stroke_width=2),
                      label(f"{n:g}", font_size=18, color=th.text).next_to([x, y0 - 0.06, 0], DOWN, buff=0.04))
        x_name = label("tokens in the cache", font_size=18, color=th.text).next_to(axes[0], DOWN, buff=0.34)
        y_name = label(f"KiB kept by all {trace.n_layers} layers", font_size=20, color=th.text)
        y_name.move_to([x0 - 0.55, y1 + 0.36, 0], aligned_edge=LEFT)
        swatch = lambda c: Rectangle(width=0.26, height=0.18, stroke_width=0, fill_color=c, fill_opacity=1)
        n_m, n_a = len(self.kind_layers["mamba"]), len(self.kind_layers["attention"])
        legend = VGroup(VGroup(swatch(th.attention), label(f"{n_a} attention layers", font_size=18,
                                                           color=th.text)).arrange(RIGHT, buff=0.1),
                        VGroup(swatch(th.mamba), label(f"{n_m} Mamba-2 layers", font_size=18,
                                                       color=th.text)).arrange(RIGHT, buff=0.1))
        legend.arrange(DOWN, buff=0.1, aligned_edge=LEFT).move_to([x0 + 0.2, y1 - 0.02, 0], aligned_edge=UP + LEFT)
        self.bars = VGroup()
        chart = VGroup(axes, ticks, x_name, y_name, legend, self.bars)
        return chart

    def chart_bar(self, s: int) -> VGroup:
        """Call s's stacked bar: the Mamba-2 layers' bytes below, the attention layers' above."""
        th = self.th
        n = int(self.tokens[s])
        T = max(int(self.tokens.max()), 1)
        width = 0.7 * (self.chart_x(T) - self.chart_x(0)) / T
        mamba = int(self.bytes[s, self.kind_layers["mamba"]].sum())
        attn = int(self.bytes[s, self.kind_layers["attention"]].sum())
        x, y0 = self.chart_x(n), self.chart_y(0)
        low = Rectangle(width=width, height=max(self.chart_y(mamba) - y0, 0.005), stroke_width=0,
                        fill_color=th.mamba, fill_opacity=1).move_to([x, y0, 0], aligned_edge=DOWN)
        high = Rectangle(width=width, height=max(self.chart_y(mamba + attn) - self.chart_y(mamba), 0.005),
                         stroke_width=0, fill_color=th.attention, fill_opacity=1)
        high.move_to([x, self.chart_y(mamba), 0], aligned_edge=DOWN)
        return VGroup(low, high)

    # ---- the tokens -------------------------------------------------------------------------------

    def token_row(self, upto: int, new: int | None = None) -> VGroup:
        """Chips for tokens 0..upto-1, the newest at the right; older ones drop off the left edge."""
        th, lay, trace = self.th, self.layout, self.params.trace
        chips = []
        x = lay.right
        for t in range(upto - 1, -1, -1):
            text = token_label(show_spaces(trace.display_text(t)), font_size=20, color=th.text, halo=th.emoji_halo,
                               max_width=2.0)
            w = max(text.width + 0.2, 0.34)
            if x - w < lay.left + 0.5:
                more = label("…", font_size=22, color=th.text).move_to([x - 0.25, lay.row_y, 0])
                chips.append(VGroup(more))
                break
            generated = trace.is_generated(t)
            box = RoundedRectangle(width=w, height=0.46, corner_radius=0.06, fill_color=th.panel, fill_opacity=1,
                                   stroke_color=th.text if generated else th.muted,
                                   stroke_width=3.5 if t == new else (1.8 if generated else 1.2))
            box.move_to([x - w / 2, lay.row_y, 0])
            text.move_to(box)
            chips.append(VGroup(box, text))
            x -= w + 0.06
        return VGroup(*reversed(chips))

    def set_row(self, upto: int, new: int | None = None):
        row = self.token_row(upto, new)
        self.remove(self.row)
        self.row = row
        self.add(row)
        if has_emoji(row) and self.credit not in self.mobjects:
            self.add(self.credit)

    def set_caption(self, text: str) -> str:
        th, lay = self.th, self.layout
        block = TextBlock(text, th, width=lay.right - lay.left, font_size=22)
        block.shift([lay.left, lay.caption_y, 0])
        self.remove(self.caption)
        self.caption = block
        self.add(block)
        return text

    def set_note(self, text: str) -> str:
        th, lay = self.th, self.layout
        note = TextBlock(text, th, width=lay.right - lay.left, font_size=20)
        note.shift([lay.left, lay.note_y, 0])
        if hasattr(self, "note"):
            self.remove(self.note)
        self.note = note
        self.add(note)
        return text

    # ---- 1 and 2: prefill, decode, memory --------------------------------------------------------

    def prefill(self):
        th, lay, pace = self.th, self.layout, self.params.pace
        n = int(self.tokens[0])
        self.set_row(n)
        caption = self.set_caption(f"Prefill: the prompt's {n} tokens go through the model together, in one call "
                                   f"(a green marker each).")
        say(self, f"{self.title_words} · {caption}")
        # a marker per prompt token, in rows that fit the blocks' free area
        inner_w = self.blocks[0].inner_width
        per_row = max(1, min(n, int(inner_w / 0.19)))
        rows = -(-n // per_row)
        pitch = min(inner_w / per_row, 0.3)
        size = min(0.8 * pitch, 0.5 * lay.block_height / rows, 0.3)
        self.markers = VGroup()
        for t in range(n):
            r, c = divmod(t, per_row)
            in_row = min(per_row, n - r * per_row)
            x = self.lane_x + (c - (in_row - 1) / 2) * pitch
            y = self.input_y + ((rows - 1) / 2 - r) * 1.15 * size
            self.markers.add(Marker(th, intensity=1.0, min_size=size, max_size=size).move_to([x, y, 0]))
        self.wait(2 * pace)
        self.add(self.markers)
        self.checkpoint("prefill:in")
        for bar in self.mamba_bars:  # allocated with the first call, at full size
            for piece in bar[0]:
                piece.save_state()
                piece.stretch(0.02, 0, about_point=[lay.kept_x, 0, 0])
        self.add(self.mamba_bars, getattr(self, "mamba_split", VGroup()))
        grow = [piece.animate.restore() for bar in self.mamba_bars for piece in bar[0]]
        self.play(*[m.animate.move_to([m.get_x(), self.output_y, 0]) for m in self.markers],
                  *grow, *self.memory_updates(0), run_time=4 * pace)
        self.remove(self.markers)
        self.finish_call(0)
        self.checkpoint("prefill")
        say(self, self.set_note(f"A Mamba-2 layer's state has its full size from the first call on; an attention "
                                f"layer keeps one row per token: that token's keys and values (KV), "
                                f"{kib(self.kv_row_bytes)}."))
        self.wait(8 * pace)

    def memory_updates(self, s: int) -> list:
        """Animations that bring the per-layer bars and the chart to call s."""
        anims = []
        for j in self.kept:
            bar = self.kv_bar(j, s)
            old = self.kv_rows.get(j)
            if old is not None:
                self.remove(old)
            self.kv_rows[j] = bar
            self.add(bar)
            # the newest rows grow in from the left end of the bar
            prev = int(self.tokens[s - 1]) if s > 0 else 0
            new_rows = bar[0][prev:]
            for r in new_rows:
                r.save_state()
                r.stretch(0.02, 0, about_edge=LEFT)
            anims += [r.animate.restore() for r in new_rows]
        bar = self.chart_bar(s)
        self.bars.add(bar)
        for part in bar:
            part.save_state()
            part.stretch(0.02, 1, about_edge=DOWN)
        anims += [part.animate.restore() for part in bar]
        return anims

    def finish_call(self, s: int):
        """After call s: the token it predicted joins the row (the trace holds it unless this was the last)."""
        upto = int(self.tokens[s]) + 1
        if upto <= self.params.trace.n_tokens:
            self.set_row(upto, new=upto - 1)

    def decode(self, k: int):
        th, pace = self.th, self.params.pace
        s = k
        t_in = int(self.tokens[s]) - 1  # the token this call feeds in (the one the call before predicted)
        if k == 1:  # its subtitle once its note is up too (till then the prefill's note is still on screen)
            self.decode_caption = self.set_caption("Decode: one token per call. Each new token goes through the "
                                                   "whole stack alone, and what comes out is fed back in as the next "
                                                   "token.")
        elif k == 2:  # the rest of the calls (the screen says nothing new per call): the caption, then the rule
            self.set_note(self.decode_rule)  # no longer the call before's number
            say(self, self.decode_caption)
        elif k == (2 + self.n_calls) // 2:
            say(self, self.decode_rule)
        marker = Marker(th, intensity=1.0, min_size=0.3, max_size=0.3).move_to([self.lane_x, self.input_y, 0])
        self.add(marker)
        self.play(marker.animate.move_to([self.lane_x, self.output_y, 0]), *self.memory_updates(s), run_time=pace)
        self.remove(marker)
        self.finish_call(s)
        if k == 1:
            self.decode_rule = "Every Mamba-2 layer keeps the same bytes; every attention layer keeps one row more."
            note = self.set_note(f"Call {s + 1}: token {t_in + 1} goes in. {self.decode_rule}")
            say(self, f"{self.decode_caption} · {note}")
            self.wait(6 * pace)
        self.checkpoint(f"decode:{k}")

    def memory_words(self) -> tuple[str, str | None]:
        """The memory summary's caption and note (None: no note, the one before stays)."""
        s = self.n_calls - 1
        m_layers, a_layers = self.kind_layers["mamba"], self.kind_layers["attention"]
        m_one = int(self.bytes[s, m_layers[0]]) if m_layers else 0
        per_tok = (self.bytes[s, a_layers[0]] - self.bytes[0, a_layers[0]]) / max(
            int(self.tokens[s] - self.tokens[0]), 1) if a_layers else 0
        total_kv = int(self.bytes[s, a_layers].sum())
        caption = (f"After {int(self.tokens[s])} tokens, the {len(m_layers)} Mamba-2 layers keep "
                   f"{kib(len(m_layers) * m_one)}, as after the prompt; the {len(a_layers)} attention layers keep "
                   f"{kib(total_kv)} ({kib(per_tok)} per token each), and growing.")
        note = None
        if m_layers and a_layers and per_tok:
            note = (f"From {math.ceil(m_one / per_tok)} tokens on, one attention layer keeps more than one Mamba-2 "
                    f"layer.")
        return caption, note

    def memory_summary(self):
        pace = self.params.pace
        caption, note = self.memory_words()
        self.set_caption(caption)
        if note:
            self.set_note(note)
        say(self, f"{caption} · {note}" if note else caption)
        self.checkpoint("memory")
        self.wait(12 * pace)

    # ---- 3. at scale ------------------------------------------------------------------------------

    def at_scale(self):
        th, lay, pace = self.th, self.layout, self.params.pace
        curtain = Curtain(th.background)
        self.add(curtain)
        self.play(FadeIn(curtain), run_time=pace)
        self.clear()
        words = ("At scale: Nemotron 3 Nano and Super",
                 "The same formulas with their published configurations, out to a million tokens (2²⁰).")
        title = label(words[0], font_size=30, color=th.text, weight="BOLD")
        title.move_to([lay.left, lay.title_y, 0], aligned_edge=LEFT)
        sub = text_line(words[1], font_size=20, color=th.text, left=lay.left, descender=3.08)
        peak = max(generation_memory(m, CONTEXT, all_attention=True)["kv"] for m in SCALE_MODELS)
        top = nice_ceiling(peak / GIB)
        panels, lines = VGroup(), []
        for k, m in enumerate(SCALE_MODELS):
            panel, drawn = self.scale_panel(m, top, left=lay.left + 0.75 + k * 7.0, width=5.7)
            panels.add(panel)
            lines.append(drawn)
        legend = self.scale_legend().move_to([0, -1.62, 0])
        formulas = self.formulas()
        self.add(title, sub, panels, legend, formulas, curtain)
        say(self, " · ".join(words))
        self.play(FadeIn(curtain, rate_func=lambda t: 1 - t), run_time=pace)
        self.remove(curtain)
        self.play(*[Create(line) for drawn in lines for line in drawn[0]], run_time=6 * pace)
        self.add(*[drawn[1] for drawn in lines])
        self.checkpoint("scale")
        # with the crossings up: each model's numbers, then the formulas in words (to the scene's end)
        hold = 16 * pace
        each = 6 * pace if len(panels) <= 2 else hold / (len(panels) + 1)
        wait_saying(self, *[(each, panel.words) for panel in panels], (hold - each * len(panels), formulas.words))

    def scale_legend(self) -> VGroup:
        th = self.th
        sample = lambda line: line.set_length(0.5) if hasattr(line, "set_length") else line
        items = VGroup(
            VGroup(DashedLine(LEFT * 0.25, RIGHT * 0.25, stroke_color=th.text, stroke_width=3, dash_length=0.1),
                   label("KV if its Mamba-2 layers were attention too", font_size=18, color=th.text)),
            VGroup(sample(Line(LEFT * 0.25, RIGHT * 0.25, stroke_color=th.attention, stroke_width=5)),
                   label("its attention layers' KV", font_size=18, color=th.text)),
            VGroup(sample(Line(LEFT * 0.25, RIGHT * 0.25, stroke_color=th.mamba, stroke_width=5)),
                   label("its Mamba-2 state", font_size=18, color=th.text)),
        )
        for item in items:
            item.arrange(RIGHT, buff=0.12)
        return items.arrange(RIGHT, buff=0.45)

    def scale_panel(self, m: Published, top: float, left: float, width: float) -> tuple[VGroup, tuple]:
        th = self.th
        bottom, height = 0.0, 1.8
        x0, x1, y0, y1 = left, left + width, bottom, bottom + height
        X = lambda n: x0 + (x1 - x0) * n / CONTEXT
        Y = lambda b: y0 + (y1 - y0) * b / (top * GIB)
        name = label(m.name, font_size=22, color=th.text, weight="BOLD")
        name.move_to([x0 - 0.6, 2.62, 0], aligned_edge=LEFT)
        kinds = label(f"{m.n_layers} layers: {m.n_mamba} Mamba-2, {m.n_moe} MoE, {m.n_attention} attention",
                      font_size=18, color=th.text)
        kinds.next_to(name, DOWN, buff=0.08, aligned_edge=LEFT)
        axes = VGroup(Line([x0, y0, 0], [x1, y0, 0], stroke_color=th.muted, stroke_width=2),
                      Line([x0, y0, 0], [x0, y1, 0], stroke_color=th.muted, stroke_width=2))
        ticks = VGroup()
        for v in nice_ticks(top, 2):
            ticks.add(label(f"{v:g}", font_size=18, color=th.text).next_to([x0 - 0.04, Y(v * GIB), 0], LEFT,
                                                                            buff=0.06))
        for frac, text in ((0, "0"), (0.5, "512K"), (1.0, "1M")):
            ticks.add(label(text, font_size=18, color=th.text).next_to([X(frac * CONTEXT), y0, 0], DOWN, buff=0.08))
        ticks.add(label("GiB", font_size=18, color=th.text).next_to([x0, y1, 0], RIGHT, buff=0.1))
        ticks.add(label("tokens", font_size=18, color=th.text).next_to([X(0.25 * CONTEXT), y0, 0], DOWN, buff=0.08))
        facts = scale_facts(m)
        hybrid, full = facts["hybrid"], facts["full"]
        all_line = DashedLine([x0, y0, 0], [X(CONTEXT), Y(full["kv"]), 0], stroke_color=th.text, stroke_width=3,
                              dash_length=0.1)
        kv_line = Line([x0, y0, 0], [X(CONTEXT), Y(hybrid["kv"]), 0], stroke_color=th.attention, stroke_width=5)
        state_line = Line([x0, Y(hybrid["state"]), 0], [X(CONTEXT), Y(hybrid["state"]), 0], stroke_color=th.mamba,
                          stroke_width=5)
        ends = VGroup(
            label(size(full["kv"]), font_size=18, color=th.text).next_to(all_line.get_end(), UP, buff=0.08)
            .align_to(all_line.get_end(), RIGHT),
            label(size(hybrid["kv"]), font_size=18, color=th.text).next_to(kv_line.get_end(), UP, buff=0.08)
            .align_to(kv_line.get_end(), RIGHT),
        )
        per, cross = facts["per"], facts["cross"]
        note_words = ("KV passes the state", f"at {cross:,.0f} tokens")
        note = VGroup(*[label(s, font_size=18, color=th.text) for s in note_words])
        note.arrange(DOWN, buff=0.06, aligned_edge=LEFT).move_to([x0 + 0.75, y1, 0], aligned_edge=UP + LEFT)
        # the formulas with this model's values (toy_model.published names each value's source)
        conv = facts["conv"]
        value_words = (f"KV: {m.n_attention} × 2 × {m.n_kv_heads} × {m.head_dim} × 2 B = {size(per)} per token",
                       f"state: {m.n_mamba} × {m.mamba_heads} × {m.mamba_head_dim} × {m.ssm_state} × 4 B",
                       f"+ conv {size(conv)} = {size(hybrid['state'])}, flat")
        values = VGroup(*[label(s, font_size=18, color=th.text) for s in value_words])
        values.arrange(DOWN, buff=0.1, aligned_edge=LEFT).move_to([x0 - 0.6, y0 - 0.5, 0], aligned_edge=UP + LEFT)
        panel = VGroup(name, kinds, axes, ticks, values)
        panel.words = f"{m.name}: {value_words[0]} · {value_words[1]} {value_words[2]} · {' '.join(note_words)}"
        return panel, ((all_line, kv_line, state_line), VGroup(ends, note))

    def formulas(self) -> VGroup:
        """The two formulas in words, and where their values come from."""
        th, lay = self.th, self.layout
        rows = ["KV per token = attention layers × 2 (keys and values) × KV heads × head dim × 2 bytes (bf16).",
                "Mamba-2 state = Mamba-2 layers × heads × head dim × N (state size) × 4 bytes (fp32), + a conv window. "
                "KiB, MiB, GiB: 2¹⁰, 2²⁰, 2³⁰ bytes."]
        block = VGroup()
        y = -2.15
        for text in rows:
            tb = TextBlock(text, th, width=lay.right - lay.left, font_size=20)
            tb.shift([lay.left, y, 0])
            block.add(tb)
            y -= tb.n_lines * 20 * 0.0215 + 0.06
        src = TextBlock(f"Values: toy_model/published.py, from {SOURCES[SCALE_MODELS[0].source]}.", th,
                        width=lay.right - lay.left, font_size=18, color=th.muted)
        src.shift([lay.left, y - 0.04, 0])
        block.add(src)
        block.words = " ".join(rows)  # the formulas, not their source
        return block


def nice_ceiling(v: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above v."""
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * e >= v - 1e-9:
            return m * e
    return 10 * e


def nice_ticks(top: float, n: int = 4) -> list[float]:
    """About n + 1 round ticks from 0 to top."""
    step = nice_ceiling(top / n)
    return [k * step for k in range(int(top / step + 1e-9) + 1)]


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    Generation.params = or_exit(resolve_params)
