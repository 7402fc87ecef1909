# manim render scenes/mamba2_ssd.py                    (1080p60; -ql for a quick 480p15 preview)
# TOY_LAYER=0 TOY_HEAD=1 TOY_CHUNK=8 TOY_PACE=0.5 TOY_THEME=light manim render -ql scenes/mamba2_ssd.py
"""Mamba2SSD: one real Mamba-2 head of the bundled model, told as state space duality in four beats.

1. The selective recurrence: h_t = a_t h_(t-1) + Delta_t x_t B_t^T with a_t = exp(A Delta_t), and
   y_t = C_t h_t + D x_t. The head's P x N state (32 x 16) is drawn as a heatmap of its recorded values:
   for every token it first shrinks by a_t, then takes in the token's write; x_t, B_t, C_t and y_t stand
   around it, and a bar per token shows a_t (Delta, B and C come from the token: the head is selective).
2. The duality: the same y as one matrix, y = M x + D x, M_ij = (C_i . B_j) Delta_j L_ij for j <= i, where
   L_ij = a_(j+1) ... a_i is a decaying causal mask. Drawn as heatmaps built from the trace's B, C and
   decays (C, B, x play query, key, value: masked attention with a decaying mask instead of softmax).
3. The chunked scan (SSD), what the model and its Triton kernel run: M cut into chunks (8 tokens here; the
   model uses 32, and the default prompt is one chunk), the diagonal blocks like attention, each chunk's own
   state, the short sequential pass of states from chunk to chunk, the states' part of the output.
4. The three give the same y (differences computed at render time, and against the recorded y), and the cost:
   a state of P x N numbers per head whatever the length.

Every number on screen is computed when the scene is built from the trace's mamba_detail group (x, B, C, y,
the state after each token, A, D) and its mamba_delta / mamba_decay arrays (toy_model.viz.duality).

Parameters (environment variables override the [mamba2_ssd] section of scenes/manim.cfg):
    TOY_TRACE   path to a trace .npz with the mamba_detail group   (default: traces/default.npz)
    TOY_LAYER   the Mamba-2 layer, or auto (the first recorded)  (default: auto)
    TOY_HEAD    the head, or auto (the first recorded in that layer); it must be recorded in detail
                (python -m toy_model trace --detail mamba:LAYER:HEAD)
    TOY_CHUNK   the chunk size the scan is shown with           (default: 8; the model's own is 32)
    TOY_PACE    seconds per token of the recurrence, up to 5    (default: 0.4)
    TOY_THEME   dark | light                                    (default: dark)
Bad values stop the render before anything is drawn, with one line on stderr. From a notebook:
Mamba2SSD(params=SSDParams(...)) reads nothing from the environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from manim import (
    DOWN,
    LEFT,
    ORIGIN,
    RIGHT,
    UP,
    Arrow,
    Create,
    DashedLine,
    FadeIn,
    FadeOut,
    Group,
    Line,
    ManimColor,
    Rectangle,
    RoundedRectangle,
    Transform,
    VGroup,
    config,
)

from toy_model.published import mamba_state_bytes
from toy_model.trace_file import Trace, TraceError
from toy_model.viz import duality
from toy_model.viz.duality import DETAIL_HINT, HeadDetail, chunked_scan, detail_heads, max_diff
from toy_model.viz.emoji import EMOJI_CREDIT, has_emoji, token_label
from toy_model.viz.formula import Formula, Glossary, TextBlock, text_line
from toy_model.viz.matrix import ColorBar, HeatColors, Heatmap, ImageCamera, log_rgba, signed_rgba
from toy_model.viz.params import ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.scene import Curtain, KitScene
from toy_model.viz.slides import beat
from toy_model.viz.subtitles import say, wait_saying
from toy_model.viz.text import label, show_spaces
from toy_model.viz.theme import Theme

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"
KEYS = {"trace": "TOY_TRACE", "layer": "TOY_LAYER", "head": "TOY_HEAD", "chunk": "TOY_CHUNK", "pace": "TOY_PACE",
        "theme": "TOY_THEME"}
MAX_TOKENS = 64  # tokens shown: a longer trace is shown from its start (the matrix stays readable)
MAX_CHUNKS = 12  # chunk states drawn beside the matrix
DECADES = 4  # the log scales span 10^-4 .. 1 of their largest value
# The shortest animation is half the pace (a token's decay, then its write); everything else is longer.
SHORTEST_STEP = 1 / 2


@dataclass(frozen=True)
class SSDParams:
    trace: Trace
    trace_path: Path
    layer: int
    head: int
    chunk: int
    pace: float
    theme: Theme


def _whole(settings: Settings, key: str, fallback: str, what: str) -> tuple[int | None, str, str]:
    """(value or None for 'auto', its text, where it came from); a ParamError unless a whole number >= 0."""
    text, src = settings.get(key, fallback)
    if text.lower() == "auto":
        return None, text, src
    try:
        value = int(text)
    except ValueError:
        raise ParamError(f"{src}={text!r}: {what} must be a whole number or auto") from None
    if value < 0:
        raise ParamError(f"{src}={text!r}: {what} must be 0 or more")
    return value, text, src


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> SSDParams:
    """SSDParams from the environment over manim.cfg [mamba2_ssd]; a ParamError names a bad value in one line."""
    settings = Settings("mamba2_ssd", env, cfg_path, keys=KEYS)
    theme = settings.theme()
    pace = settings.pace(config.frame_rate if frame_rate is None else frame_rate, SHORTEST_STEP, fallback="0.4",
                         unit="token")
    trace, path = settings.trace(DEFAULT_TRACE)
    try:
        trace.require("mamba_detail", DETAIL_HINT)
    except TraceError as e:
        raise ParamError(f"{settings.get('trace', str(DEFAULT_TRACE))[1]}: {e}") from None
    pairs = detail_heads(trace)
    shown = ", ".join(f"layer {lay} head {h}" for lay, h in pairs)
    layer, ltext, lsrc = _whole(settings, "layer", "auto", "the layer")
    head, htext, hsrc = _whole(settings, "head", "auto", "the head")
    if layer is None:
        layer = next((lay for lay, h in pairs if head is None or h == head), pairs[0][0])
    if trace.layers_of("mamba") and layer not in trace.layers_of("mamba"):
        raise ParamError(f"{lsrc}={ltext!r}: layer {layer} is not a Mamba-2 layer of this trace (its Mamba-2 layers: "
                         f"{', '.join(map(str, trace.layers_of('mamba')))})")
    if head is None:
        head = next((h for lay, h in pairs if lay == layer), None)
        if head is None:
            raise ParamError(f"{lsrc}={ltext!r}: no head of layer {layer} is recorded in detail (the trace has "
                             f"{shown}); record one with python -m toy_model trace --detail mamba:{layer}:HEAD")
    if (layer, head) not in pairs:
        src, text = (hsrc, htext) if htext.lower() != "auto" else (lsrc, ltext)
        raise ParamError(f"{src}={text!r}: layer {layer} head {head} is not recorded in detail (the trace has "
                         f"{shown}); record it with python -m toy_model trace --detail mamba:{layer}:{head}")
    T = min(trace.n_tokens, MAX_TOKENS)
    least = max(2, math.ceil(T / MAX_CHUNKS))
    chunk, ctext, csrc = _whole(settings, "chunk", "8", "the chunk size")
    if chunk is None or not least <= chunk <= T:
        raise ParamError(f"{csrc}={ctext!r}: the chunk size must be a whole number from {least} to {T} (the scene "
                         f"shows {T} tokens, in at most {MAX_CHUNKS} chunks)")
    return SSDParams(trace, path, layer, head, chunk, pace, theme)


class _Stop(Exception):
    """Raised at the stop named by stop_at (tests render the scene up to a moment and look at the frame)."""


@dataclass(frozen=True)
class Layout:
    """Where things go, in scene units (the frame is 14.2 x 8 around the origin)."""

    left: float = -6.85  # left margin
    right: float = 6.85
    title_y: float = 3.62
    cell: float = 0.12  # one cell of the state h, x, B, C, y
    figure_center: tuple[float, float] = (-3.15, -0.28)  # the state h
    strip_gap: float = 0.24  # between h and the x, B, C, y strips
    token_x: float = -1.2  # the token's header, chip and numbers in beat 1
    panel_x: float = 0.0  # the glossary in beat 1
    chart_y: float = -3.62  # the decay bars' baseline
    chart_height: float = 0.6
    matrix_side: float = 3.3  # beat 2's three matrices
    big_side: float = 4.2  # beat 3's matrix


LAYOUT = Layout()


BEATS = ("recurrence", "matrix", "chunks", "close")


class Mamba2SSD(KitScene):
    """The four beats of the module docstring. `params`, `beats` and `stop_at` may be set on a subclass or passed
    in: beats picks some of BEATS (a notebook showing only the matrix); stop_at names a moment ('keep:5' and
    'token:5' in the recurrence, 'matrix', 'row', 'chunks:1' .. 'chunks:4', 'table', 'close') where the scene
    ends (tests look at that frame)."""

    params: SSDParams | None = None
    beats: tuple[str, ...] = BEATS
    stop_at: str | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: SSDParams | None = None, beats: tuple[str, ...] | None = None,
                 stop_at: str | None = None, **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("Mamba2SSD needs params=SSDParams(...), or render it with manim render "
                             "scenes/mamba2_ssd.py (which reads TOY_* and scenes/manim.cfg)")
        self.beats = tuple(beats) if beats is not None else type(self).beats
        unknown = [b for b in self.beats if b not in BEATS]
        if unknown:
            raise ParamError(f"Mamba2SSD beats {unknown[0]!r}: the beats are {', '.join(BEATS)}")
        self.stop_at = stop_at if stop_at is not None else type(self).stop_at
        kwargs.setdefault("camera_class", ImageCamera)  # draws the heatmaps (see toy_model.viz.matrix)
        super().__init__(*args, **kwargs)

    # ---- the story --------------------------------------------------------------------------------

    def construct(self):
        p = self.params
        self.camera.background_color = ManimColor(p.theme.background)
        self.prepare()
        story = {"recurrence": self.recurrence_beat,  # 1. h_t = a_t h_(t-1) + Delta_t x_t B_t^T, y_t = C_t h_t + D x_t
                 "matrix": self.matrix_beat,  # 2. y = M x + D x
                 "chunks": self.chunks_beat,  # 3. the chunked scan
                 "close": self.close_beat}  # 4. the same y, and the cost
        cfg = p.trace.meta.get("model_config", {})
        hd, T, scan, d = self.head, self.T, self.scan, self.diffs
        P, N, n, model_q, heads = hd.head_dim, hd.state_size, scan.n_chunks, cfg.get("chunk_size"), cfg.get(
            "mamba_n_heads")
        i = self.row_token()
        notes = {
            "recurrence": f"Mamba-2 layer {hd.layer}, head {hd.head}, from the trace, one token at a time ({T} "
                          f"tokens): the state h ({P} × {N} numbers) first keeps aₜ = exp(A·Δₜ) of itself (A = "
                          f"{num(hd.A)}), then takes in Δₜ xₜ Bₜᵀ; the output is yₜ = Cₜ hₜ + D xₜ (D = {num(hd.D)}). "
                          f"The bars at the bottom: every token's aₜ.",
            "matrix": f"The same computation as one matrix: y = M x + D x, M = (C Bᵀ Δ) entry by entry times the decay "
                      f"mask L, lower triangular. Row {i + 1} (token ‘{self.token_text(i)}’) is one token reading "
                      f"the earlier ones: C, B, x act as query, key, value, masked attention with a decaying mask, "
                      f"no softmax.",
            "chunks": f"The chunked scan (SSD), as the model and its Triton kernel compute it: chunks of Q = "
                      f"{scan.chunk_size} tokens here, {n} chunks"
                      + (f" (the model uses Q = {model_q})" if model_q else "")
                      + f"; attention-like diagonal blocks, each chunk's own state, the state passed on in {n} steps "
                        f"instead of {T}, then its part of the output. Its y matches the recurrence's to "
                        f"{d['chunks']}.",
            "close": f"The three ways give the same y: the matrix to {d['matrix']}, the chunked scan to "
                     f"{d['chunks']}, the model's recorded y to {d['recorded']} (float32). Memory: one state of "
                     f"{P} × {N} = {P * N:,} numbers per head at any length"
                     + (f" ({heads * P * N:,} numbers, {self.state_kib(heads)} KiB in fp32 for this layer's {heads} "
                        f"heads)" if heads else "")
                     + f"; the whole matrix grows with the square of the length ({T * T:,} numbers here).",
        }
        try:
            for step in BEATS:
                if step in self.beats:
                    beat(self, notes[step])
                    story[step]()
        except _Stop:
            return
        self.wait(4 * p.pace)

    def checkpoint(self, name: str):
        if self.stop_at == name:
            raise _Stop

    def prepare(self):
        """Every number the scene shows, computed once from the trace."""
        p = self.params
        self.th = p.theme
        self.colors = HeatColors.for_theme(p.theme)
        T = min(p.trace.n_tokens, MAX_TOKENS)
        self.head = HeadDetail.from_trace(p.trace, p.layer, p.head, T)
        self.T = T
        self.y_rec, self.h_rec = duality.recurrence(self.head)
        self.scores = duality.scores(self.head) * self.head.delta[None, :]  # (C_i . B_j) Delta_j
        self.L = duality.decay_mask(self.head.log_decay)
        self.M = self.scores * self.L
        self.y_matrix = self.M @ self.head.x + self.head.D * self.head.x
        self.scan = chunked_scan(self.head, p.chunk)
        self.diffs = {"matrix": sci(max_diff(self.y_matrix, self.y_rec)),  # max |y - y(recurrence)|, as shown
                      "chunks": sci(max_diff(self.scan.y, self.y_rec)),
                      "recorded": sci(max_diff(self.head.y, self.y_rec))}
        self.upper = np.triu(np.ones((T, T), bool), 1)  # j > i: never read (transparent)
        self.m_max = float(np.abs(self.M[~self.upper]).max()) or 1.0
        self.credit = label(EMOJI_CREDIT, font_size=18, color=self.th.muted)
        self.curtain = Curtain(self.th.background)

    def state_kib(self, heads: int) -> str:
        """The layer's state of `heads` heads in KiB (fp32), as shown."""
        return f"{mamba_state_bytes(1, heads, self.head.head_dim, self.head.state_size) / 1024:g}"

    def token_text(self, t: int) -> str:
        return show_spaces(self.params.trace.display_text(t))

    def show_credit_if_emoji(self, mobject):
        """OpenMoji's licence asks for credit: from the first emoji drawn on, under the top-right tag."""
        if has_emoji(mobject):
            self.credit_needed = True
            if self.credit not in self.mobjects:
                self.add(self.credit.next_to(self.tag, DOWN, buff=0.08, aligned_edge=RIGHT))

    def new_beat(self, title: str):
        """Cover the screen, clear it, put up the beat's title; the caller uncovers with self.uncover()."""
        if self.mobjects:  # the first beat starts on an empty screen
            self.add(self.curtain)
            self.play(FadeIn(self.curtain), run_time=self.params.pace)
        self.clear()
        head = label(title, font_size=30, color=self.th.text, weight="BOLD")
        head.move_to([self.layout.left, self.layout.title_y, 0], aligned_edge=LEFT)
        tag = label(f"Mamba-2 · layer {self.head.layer} · head {self.head.head}", font_size=20, color=self.th.muted)
        tag.move_to([self.layout.right, self.layout.title_y, 0], aligned_edge=RIGHT)
        self.add(head, tag)
        self.tag = tag
        if self.credit_needed:
            self.add(self.credit.next_to(tag, DOWN, buff=0.08, aligned_edge=RIGHT))
        return head

    credit_needed = False

    def uncover(self, run_time: float | None = None):
        self.add(self.curtain)  # on top
        self.play(FadeOut(self.curtain), run_time=run_time or self.params.pace)
        self.remove(self.curtain)

    def hold(self, paces: float):
        self.wait(paces * self.params.pace)

    # ---- 1. the selective recurrence --------------------------------------------------------------

    def recurrence_beat(self):
        th, lay, hd = self.th, self.layout, self.head
        title = "1 · The selective recurrence"
        self.new_beat(title)
        eq_h = Formula("hₜ = aₜ · hₜ₋₁ + Δₜ · xₜ Bₜᵀ", th, font_size=28)
        eq_y = Formula("yₜ = Cₜ · hₜ + D · xₜ", th, font_size=28)
        eq_h.move_to([lay.left, 2.98, 0], aligned_edge=LEFT)
        eq_y.move_to([lay.left, 2.45, 0], aligned_edge=LEFT)
        self.eqs = (eq_h, eq_y)

        # the state h and, around it, what is written (x, B) and read (C, y)
        c, (cx, cy) = lay.cell, lay.figure_center
        P, N = hd.head_dim, hd.state_size
        # each grid's colour is full at its 99th percentile of |value| over all tokens (a few larger values
        # would otherwise leave everything else grey)
        self.h_max = top_percent(hd.state)
        self.vmax = {k: top_percent(v) for k, v in (("x", hd.x), ("B", hd.B), ("C", hd.C), ("y", hd.y))}
        self.h_map = Heatmap(self.rgba(np.zeros((P, N)), self.h_max), width=N * c, height=P * c, theme=th)
        self.h_map.move_to([cx, cy, 0])
        g = lay.strip_gap
        self.x_map = Heatmap(self.rgba(np.zeros((P, 1)), 1), width=c, height=P * c, theme=th)
        self.x_map.next_to(self.h_map, LEFT, buff=g)
        self.y_map = Heatmap(self.rgba(np.zeros((P, 1)), 1), width=c, height=P * c, theme=th)
        self.y_map.next_to(self.h_map, RIGHT, buff=g)
        self.B_map = Heatmap(self.rgba(np.zeros((1, N)), 1), width=N * c, height=c, theme=th)
        self.B_map.next_to(self.h_map, UP, buff=g)
        self.C_map = Heatmap(self.rgba(np.zeros((1, N)), 1), width=N * c, height=c, theme=th)
        self.C_map.next_to(self.h_map, DOWN, buff=g)
        names = VGroup(
            label("xₜ", font_size=24, color=th.text).next_to(self.x_map, UP, buff=0.12),
            label("Bₜ", font_size=24, color=th.text).next_to(self.B_map, RIGHT, buff=0.14),
            label("yₜ", font_size=24, color=th.text).next_to(self.y_map, DOWN, buff=0.12),
            label("Cₜ", font_size=24, color=th.text).next_to(self.C_map, LEFT, buff=0.14),
        )
        col = lay.left
        dims = VGroup(label("h", font_size=30, color=th.text, weight="BOLD"),
                      label(f"{P} × {N}", font_size=20, color=th.text),
                      label("(P × N)", font_size=20, color=th.text))
        dims.arrange(DOWN, buff=0.1, aligned_edge=LEFT).move_to([col, self.h_map.get_top()[1], 0],
                                                                aligned_edge=UP + LEFT)
        scale = self.value_legend().move_to([col, self.h_map.get_bottom()[1], 0], aligned_edge=DOWN + LEFT)
        self.figure = Group(self.h_map, self.x_map, self.y_map, self.B_map, self.C_map, names, dims)


        # the decay a_t of every token, as bars (the current one lit)
        self.decay_chart = self.make_decay_chart()

        # the right-hand panel: the token, its numbers, the glossary
        A, D = hd.A, hd.D
        rows = [  # in the order the symbols come up: keep, then write, then read
            ("h", f"the state: {P} × {N} numbers it carries on"),
            ("Δₜ", "the token's step size, above 0"),
            ("A", f"the head's decay rate: {num(A)} (below 0)"),
            ("aₜ", "= exp(A·Δₜ): the share of h kept, 0 to 1"),
            ("xₜ", f"the token's input to this head ({P} numbers)"),
            ("Bₜ", f"how the token is written into h ({N})"),
            ("Cₜ", f"how h is read out ({N} numbers)"),
            ("D", f"a skip: yₜ gets D · xₜ as it is (D = {num(D)})"),
            ("yₜ", f"the head's output ({P} numbers)"),
            ("", self.glossary_last),
        ]
        self.glossary = Glossary(th, rows, width=lay.right - lay.panel_x, font_size=20, symbol_width=0.62,
                                 gap=0.0, pitch=0.36)
        self.glossary.shift([lay.panel_x, 0, 0] - self.glossary.get_left() * [1, 0, 0])
        self.glossary.shift(UP * (1.86 - self.glossary.get_top()[1]))
        self.panel = VGroup()  # the token's header and numbers: rebuilt per token

        self.add(eq_h, eq_y, self.figure, scale, self.decay_chart, self.glossary.rows[0])
        say(self, f"{title} · {eq_h.source} · {eq_y.source}")  # while the first token's terms are boxed in turn
        self.uncover()
        self.box = VGroup()
        self.add(self.box)
        halfway = (2 + self.T) // 2  # the fast tokens: the glossary's last line, then the decay bars' title
        for t in range(self.T):
            slow = t < 2
            if t == halfway and t < self.T - 1:
                say(self, self.decay_chart.words)
            self.show_token(t, slow)
        self.remove(self.box)
        self.hold(8)

    glossary_last = "Δ, B and C come from each token: the head selects what to keep and what to write."

    def value_legend(self) -> Group:
        """A vertical colour scale for the signed grids: + largest at the top, 0, - largest at the bottom."""
        th = self.th
        v = np.linspace(1, -1, 48)[:, None]
        strip = Heatmap(self.rgba(v, 1.0), width=0.2, height=1.0, theme=th)
        ticks = VGroup(*[label(s, font_size=18, color=th.text).next_to(strip, RIGHT, buff=0.1).align_to(strip, a)
                         for s, a in (("above 0", UP), ("0", ORIGIN), ("below 0", DOWN))])
        ticks[1].move_to(strip, coor_mask=[0, 1, 0])
        caption = VGroup(*[label(s, font_size=18, color=th.text)
                           for s in ("colour: value,", "square-root", "scale, full at", "each grid's", "top 1 %")])
        caption.arrange(DOWN, buff=0.06, aligned_edge=LEFT)
        caption.next_to(strip, UP, buff=0.14).align_to(strip, LEFT)
        return Group(caption, strip, ticks)

    def rgba(self, values, vmax):
        """The recurrence's grids: a square-root scale, so that a small state is still seen (and its decay)."""
        return signed_rgba(values, vmax, self.colors, power=0.5)

    def make_decay_chart(self) -> VGroup:
        th, lay, T = self.th, self.layout, self.T
        width = lay.right - lay.left
        pitch = width / T
        base = lay.chart_y
        bars = VGroup(*[
            Rectangle(width=pitch * 0.72, height=max(lay.chart_height * float(self.head.decay[t]), 0.01),
                      stroke_width=0, fill_color=th.muted, fill_opacity=1)
            .move_to([lay.left + (t + 0.5) * pitch, base, 0], aligned_edge=DOWN) for t in range(T)])
        axis = Line([lay.left, base, 0], [lay.right, base, 0], stroke_color=th.muted, stroke_width=1.5)
        top = DashedLine([lay.left, base + lay.chart_height, 0], [lay.right, base + lay.chart_height, 0],
                         stroke_color=th.muted, stroke_width=1.2, dash_length=0.06)
        words = "aₜ of every token: the share of h it keeps (dashed line: 1, keeps all)"
        title = text_line(words, font_size=20, color=th.text, left=lay.left, descender=base + lay.chart_height + 0.06)
        chart = VGroup(axis, top, bars, title)
        P = self.params.trace.n_prompt_tokens
        if 0 < P < T:
            x = lay.left + P * pitch
            sep = Line([x, base - 0.3, 0], [x, base + lay.chart_height, 0], stroke_color=th.text, stroke_width=2)
            names = VGroup(label("prompt", font_size=18, color=th.text).next_to([x, 0, 0], LEFT, buff=0.08),
                           label("generated", font_size=18, color=th.text).next_to([x, 0, 0], RIGHT, buff=0.08))
            names.set_y(base - 0.19)
            chart.add(sep, names)
        chart.bars = bars
        chart.words = words
        return chart

    def token_panel(self, t: int) -> VGroup:
        th, lay, hd = self.th, self.layout, self.head
        trace = self.params.trace
        kind = "generated" if trace.is_generated(t) else "prompt"
        head_words = f"token {t + 1} of {self.T} · {kind}"
        header = label(head_words, font_size=20, color=th.muted)
        header.move_to([lay.token_x, 3.05, 0], aligned_edge=LEFT)
        text = token_label(self.token_text(t), font_size=30, color=th.text, weight="BOLD", halo=th.emoji_halo,
                           max_width=2.2)
        chip = RoundedRectangle(width=max(text.width + 0.36, 0.9), height=0.7, corner_radius=0.08,
                                stroke_color=th.text, stroke_width=2.5, fill_color=th.panel, fill_opacity=1)
        chip.move_to([lay.token_x, 2.42, 0], aligned_edge=LEFT)
        text.move_to(chip)
        keep = hd.decay[t]
        lines = (f"Δₜ = {hd.delta[t]:.3f}", f"aₜ = exp(A·Δₜ) = {keep:.2f}: keeps {100 * keep:.0f} %")
        numbers = VGroup(*[label(s, font_size=22, color=th.text) for s in lines]).arrange(DOWN, buff=0.1,
                                                                                          aligned_edge=LEFT)
        numbers.next_to(chip, RIGHT, buff=0.25)
        panel = VGroup(header, chip, text, numbers)
        panel.words = f"{head_words}: ‘{self.token_text(t)}’ · {lines[0]} · {lines[1]}"
        return panel

    def show_token(self, t: int, slow: bool):
        """Token t: h shrinks by a_t (what it keeps of the past), then takes in Delta_t x_t B_t^T; C_t reads
        y_t out. The first tokens go slowly, one part at a time, with their symbols explained."""
        th, hd, pace = self.th, self.head, self.params.pace
        eq_h, eq_y = self.eqs
        panel = self.token_panel(t)
        self.remove(self.panel)
        self.add(panel)
        self.show_credit_if_emoji(panel)
        self.panel = panel
        if t == 1 or (t == self.T - 1 and not slow):  # the second token, and the last (held at the end)
            say(self, panel.words)
        bars = self.decay_chart.bars
        for s, bar in enumerate(bars):
            bar.set_fill(th.text if s == t else th.muted)
        glossary = self.glossary.rows
        decayed = self.rgba(hd.decayed(t), self.h_max)
        written = self.rgba(hd.state[t], self.h_max)
        x_rgba = self.rgba(hd.x[t][:, None], self.vmax["x"])
        B_rgba = self.rgba(hd.B[t][None, :], self.vmax["B"])
        C_rgba = self.rgba(hd.C[t][None, :], self.vmax["C"])
        y_rgba = self.rgba(hd.y[t][:, None], self.vmax["y"])
        if slow:
            run = 2 * pace
            # keep: h times a_t
            self.set_box(eq_h.box("aₜ · hₜ₋₁", th.mamba))
            new_rows = [glossary[k] for k in (1, 2, 3) if glossary[k] not in self.mobjects]
            self.add(*new_rows)
            self.play(self.h_map.transform_to(decayed), run_time=run)
            self.checkpoint(f"keep:{t}")
            self.hold(2)
            # write: + Delta_t x_t B_t^T
            self.set_box(eq_h.box("Δₜ · xₜ Bₜᵀ", th.mamba))
            self.add(*[glossary[k] for k in (4, 5) if glossary[k] not in self.mobjects])
            self.x_map.set_rgba(x_rgba)
            self.B_map.set_rgba(B_rgba)
            self.play(self.h_map.transform_to(written), run_time=run)
            self.hold(2)
            # read: y_t = C_t h_t + D x_t
            self.set_box(eq_y.box("Cₜ · hₜ + D · xₜ", th.mamba))
            self.add(*[glossary[k] for k in (6, 7, 8) if glossary[k] not in self.mobjects])
            self.C_map.set_rgba(C_rgba)
            self.play(Transform(self.y_map.image, self.y_map.new_image(y_rgba)), run_time=run)
            if t == 1:
                self.add(glossary[9])
                say(self, self.glossary_last)  # through the first half of the fast tokens
            self.hold(3)
        else:
            self.set_box(VGroup())
            self.play(self.h_map.transform_to(decayed), run_time=pace / 2)
            self.checkpoint(f"keep:{t}")
            for m, rgba in ((self.x_map, x_rgba), (self.B_map, B_rgba), (self.C_map, C_rgba), (self.y_map, y_rgba)):
                m.set_rgba(rgba)
            self.play(self.h_map.transform_to(written), run_time=pace / 2)
        self.h_map.set_rgba(written)
        self.checkpoint(f"token:{t}")

    def set_box(self, box):
        self.remove(self.box)
        self.box = box
        self.add(box)

    # ---- 2. the matrix --------------------------------------------------------------------------

    def matrix_beat(self):
        th, lay, T = self.th, self.layout, self.T
        title = "2 · The same computation as one matrix"
        self.new_beat(title)
        eq = Formula("y = M x + D x,    Mᵢⱼ = (Cᵢ · Bⱼ) Δⱼ · Lᵢⱼ for j ≤ i, 0 for j > i", th, font_size=26)
        eq.move_to([lay.left, 3.0, 0], aligned_edge=LEFT)
        note_words = ("Lᵢⱼ = aⱼ₊₁ · aⱼ₊₂ ⋯ aᵢ = exp(A · (Δⱼ₊₁ + … + Δᵢ)): what is left of token j's write when "
                      "token i reads h")
        note = text_line(note_words, font_size=20, color=th.text, left=lay.left, descender=2.42)
        side = lay.matrix_side
        lower = ~self.upper
        s_max = float(np.abs(self.scores[lower]).max()) or 1.0
        m_max = self.m_max
        maps = [
            Heatmap(signed_rgba(self.scores, s_max, self.colors), width=side, height=side, theme=th),
            Heatmap(log_rgba(self.L, 1.0, DECADES, self.colors, signed=False, mask=self.upper), width=side,
                    height=side, theme=th),
            Heatmap(log_rgba(self.M, m_max, DECADES, self.colors, mask=self.upper), width=side, height=side,
                    theme=th),
        ]
        xs = (-4.5, 0.0, 4.5)
        top = 1.86
        for m, x in zip(maps, xs, strict=True):
            m.move_to([x, top - side / 2, 0])
        outlines = VGroup(*[m.lower_triangle_outline(th.muted) for m in maps[1:]])
        ops = VGroup(label("∘", font_size=40, color=th.text).move_to([(xs[0] + xs[1]) / 2, top - side / 2, 0]),
                     label("=", font_size=40, color=th.text).move_to([(xs[1] + xs[2]) / 2, top - side / 2, 0]))
        axis = VGroup(label("j →", font_size=20, color=th.text).next_to(maps[0], UP, buff=0.06)
                      .align_to(maps[0], LEFT),
                      label("i ↓", font_size=20, color=th.text).next_to(maps[0], LEFT, buff=0.1)
                      .align_to(maps[0], UP))
        titles = [("(Cᵢ · Bⱼ) Δⱼ, all pairs:", "like query · key (linear)"),
                  ("L, the decay mask", "(log scale)"),
                  ("M, the whole head:", "log |M|, hue: its sign")]
        ops.add(label("entry by", font_size=18, color=th.text).next_to(ops[0], DOWN, buff=0.12),
                label("entry", font_size=18, color=th.text).next_to(ops[0], DOWN, buff=0.4))
        bars = [ColorBar.signed(th, s_max, "", width=2.6),
                ColorBar.log(th, DECADES, "", width=2.6),
                ColorBar.log(th, DECADES, "", top=f"{m_max:.2f}", floor=sci(m_max * 10.0 ** -DECADES), signed=True,
                             width=2.6)]
        under = Group()
        for m, lines, bar in zip(maps, titles, bars, strict=True):
            t = VGroup(*[label(s, font_size=20, color=th.text) for s in lines]).arrange(DOWN, buff=0.08)
            t.next_to(m, DOWN, buff=0.14)
            bar.next_to(t, DOWN, buff=0.14)
            under.add(t, bar)
        self.add(eq, note, axis, maps[0], under[0], under[1])
        say(self, f"{title} · {eq.source}")
        self.uncover()
        self.hold(8)
        say(self, note_words)  # as L comes in, through M
        self.play(FadeIn(Group(ops[0], ops[2], ops[3], maps[1], outlines[0], under[2], under[3])),
                  run_time=2 * self.params.pace)
        self.hold(8)
        self.play(FadeIn(Group(ops[1], maps[2], outlines[1], under[4], under[5])), run_time=2 * self.params.pace)
        self.maps = maps
        self.checkpoint("matrix")
        self.hold(8)

        # one row: how a token reads the tokens before it
        i = self.row_token()
        boxes = VGroup(*[m.cell_box((i, i + 1), (0, T if k == 0 else i + 1), th.text, stroke_width=2.5)
                         for k, m in enumerate(maps)])
        row_words = (f"Row {i + 1} is token ‘{self.token_text(i)}’: yᵢ = Σⱼ Mᵢⱼ xⱼ + D xᵢ, one weight per earlier "
                     f"token j, fading with distance.",
                     "C, B, x act as query, key, value: masked attention with a decaying mask L, no softmax.")
        line = token_label(row_words[0], font_size=20, color=th.text, halo=th.emoji_halo,
                           max_width=lay.right - lay.left)
        line.move_to([lay.left, -3.1, 0], aligned_edge=UP + LEFT)
        attention = text_line(row_words[1], font_size=20, color=th.text, left=lay.left, descender=-3.78)
        row_text = VGroup(line, attention)
        self.show_credit_if_emoji(line)
        say(self, " ".join(row_words))
        self.play(Create(boxes), FadeIn(row_text), run_time=2 * self.params.pace)
        self.checkpoint("row")
        self.hold(20)

    def row_token(self) -> int:
        """The row shown: the generated token whose row reaches furthest back above the log scale's floor."""
        floor = self.m_max * 10.0 ** -DECADES
        reach = [(np.abs(self.M[i, : i + 1]) > floor).sum() for i in range(self.T)]
        return int(np.argmax(reach)) if self.T else 0

    # ---- 3. the chunked scan ---------------------------------------------------------------------

    def chunks_beat(self):
        th, lay, hd, T, scan = self.th, self.layout, self.head, self.T, self.scan
        Q, n = scan.chunk_size, scan.n_chunks
        model_q = self.params.trace.meta.get("model_config", {}).get("chunk_size")
        title = "3 · The chunked scan (SSD)"
        self.new_beat(title)
        prompt = self.params.trace.n_prompt_tokens
        model = (f"; the model uses Q = {model_q} (its {prompt}-token prompt is {-(-prompt // model_q)} chunk"
                 f"{'s' if prompt > model_q else ''})" if model_q else "")
        sub_words = (f"How the model and its Triton kernel compute it: M in chunks of Q = {Q} tokens here, so that "
                     f"you see {n}{model}.")
        sub = TextBlock(sub_words, th, width=lay.right - lay.left, font_size=20)
        sub.move_to([lay.left, 3.12, 0], aligned_edge=UP + LEFT)
        side = lay.big_side
        M = Heatmap(log_rgba(self.M, self.m_max, DECADES, self.colors, mask=self.upper), width=side, height=side,
                    theme=th)
        M.move_to([lay.left + side / 2 + 0.3, 2.05 - side / 2, 0])
        grid = VGroup()
        for c in range(1, n):
            k = c * Q
            a, b = M.cell_center(k - 0.5, -0.5), M.cell_center(k - 0.5, T - 0.5)
            grid.add(Line(a, b, stroke_color=th.muted, stroke_width=1.5))
            a, b = M.cell_center(-0.5, k - 0.5), M.cell_center(T - 0.5, k - 0.5)
            grid.add(Line(a, b, stroke_color=th.muted, stroke_width=1.5))
        outline = M.lower_triangle_outline(th.muted)
        m_name = label("M", font_size=24, color=th.text, weight="BOLD").next_to(M, LEFT, buff=0.1).align_to(M, UP)

        # the chunk states beside the matrix, one per chunk row: own (step 2) and entering (step 3)
        s_max = float(max(np.abs(scan.own_states).max(), np.abs(scan.entering).max())) or 1.0
        row_h = side * Q / T
        thumb_h = min(row_h * 0.86, 0.9)
        thumb_w = thumb_h * hd.state_size / hd.head_dim
        own_x, in_x = M.get_right()[0] + 0.4, M.get_right()[0] + 1.1
        own, entering = Group(), Group()
        for c in range(n):
            y = M.cell_center((scan.bounds(c, T)[0] + scan.bounds(c, T)[1] - 1) / 2, 0)[1]
            own.add(Heatmap(self.rgba(scan.own_states[c], s_max), width=thumb_w, height=thumb_h, theme=th)
                    .move_to([own_x, y, 0]))
            entering.add(Heatmap(self.rgba(scan.entering[c], s_max), width=thumb_w, height=thumb_h, theme=th)
                         .move_to([in_x, y, 0]))
        heads = VGroup(label("own", font_size=18, color=th.text).next_to(own[0], UP, buff=0.1),
                       label("in", font_size=18, color=th.text).next_to(entering[0], UP, buff=0.1))

        # the four steps
        x0 = in_x + 0.55
        width = lay.right - x0
        colors = [th.attention, th.mamba, th.mamba, th.text]
        nb = lambda s: s.replace(" ", "\u00a0")  # a formula wraps as one word
        texts = [
            f"Inside each chunk, like attention: the diagonal blocks, {nb('(L ∘ C Bᵀ Δ) x')}. All chunks at once.",
            f"Each chunk's own state: {nb('Σ Δⱼ xⱼ Bⱼᵀ')}, each write decayed to the chunk's end. All chunks at "
            f"once.",
            f"Pass the states on: {nb('h ← a(chunk) · h + own')}. {n} steps, not {T}: the only sequential part.",
            f"State to output: token i adds {nb('(its decay since the chunk began) · Cᵢ · h(in)')}, the blocks left "
            f"of the diagonal.",
        ]
        steps = VGroup()
        for k, text in enumerate(texts):
            body = TextBlock(text, th, width=width - 0.4, font_size=20, color=th.text)
            bullet = text_line(str(k + 1), font_size=24, color=colors[k], weight="BOLD", left=0,
                               descender=body[0].get_bottom()[1] - 0.02)
            body.shift(RIGHT * 0.4)
            steps.add(VGroup(bullet, body))
        steps.arrange(DOWN, buff=0.3, aligned_edge=LEFT).move_to([x0, 2.05, 0], aligned_edge=UP + LEFT)
        colour_note = label("colours: log |Mᵢⱼ|, hue: its sign", font_size=18, color=th.text)
        colour_note.next_to(M, DOWN, buff=0.12).align_to(M, LEFT)
        self.add(sub, M, grid, outline, m_name, colour_note)
        say(self, f"{title} · {sub_words}")
        self.uncover()
        self.hold(5)

        # 1. diagonal blocks
        diag = VGroup(*[M.cell_box(scan.bounds(c, T), scan.bounds(c, T), colors[0], stroke_width=3) for c in range(n)])
        say(self, texts[0])
        self.play(FadeIn(steps[0]), Create(diag), run_time=2 * self.params.pace)
        self.checkpoint("chunks:1")
        self.hold(10)
        # 2. own states
        own_frames = VGroup(*[Rectangle(width=thumb_w + 0.08, height=thumb_h + 0.08, stroke_color=colors[1],
                                        stroke_width=2.5).move_to(o) for o in own])
        say(self, texts[1])
        self.play(FadeIn(steps[1]), FadeIn(own), FadeIn(heads[0]), Create(own_frames), run_time=2 * self.params.pace)
        self.checkpoint("chunks:2")
        self.hold(10)
        # 3. pass states on: sequential
        say(self, texts[2])
        self.play(FadeIn(steps[2]), FadeIn(entering[0]), FadeIn(heads[1]), run_time=self.params.pace)
        for c in range(1, n):
            arrows = VGroup(
                Arrow(entering[c - 1].get_bottom(), entering[c].get_top(), buff=0.04, stroke_width=3,
                      color=colors[2], max_tip_length_to_length_ratio=0.3),
                Arrow(own[c - 1].get_right(), entering[c].get_left(), buff=0.04, stroke_width=3, color=colors[2],
                      max_tip_length_to_length_ratio=0.2))
            self.play(Create(arrows), FadeIn(entering[c]), run_time=self.params.pace)
        check_c = min(2, n - 1)
        start = scan.bounds(check_c, T)[0]
        agree_words = (f"h into chunk {check_c + 1} = the model's h after token {start} (max difference "
                       f"{sci(max_diff(scan.entering[check_c], hd.state[start - 1]))})" if start else "")
        agree = TextBlock(agree_words, th, width=own.get_left()[0] - 0.2 - lay.left, font_size=20, color=th.text)
        agree.next_to(colour_note, DOWN, buff=0.22).align_to(M, LEFT)
        if agree_words:
            say(self, agree_words)
        self.play(FadeIn(agree), run_time=self.params.pace)
        self.checkpoint("chunks:3")
        self.hold(10)
        # 4. state -> output: the blocks left of the diagonal
        region = self.off_diagonal_outline(M, scan, colors[3])
        same_words = f"y from the chunks = y from the recurrence (max difference {self.diffs['chunks']})"
        same = TextBlock(same_words, th, width=width - 0.4, font_size=20)
        same.next_to(steps[3], DOWN, buff=0.3).align_to(steps[3][1], LEFT)
        say(self, f"{texts[3]} · {same_words}")
        self.play(FadeIn(steps[3]), Create(region), FadeIn(same), run_time=2 * self.params.pace)
        self.checkpoint("chunks:4")
        self.hold(16)

    def off_diagonal_outline(self, M: Heatmap, scan, color) -> VGroup:
        """Frames around the blocks left of the diagonal blocks: rows of chunk c >= 1, columns before it."""
        T = self.T
        boxes = VGroup()
        for c in range(1, scan.n_chunks):
            r0, r1 = scan.bounds(c, T)
            boxes.add(M.cell_box((r0, r1), (0, r0), color, stroke_width=3))
        return boxes

    # ---- 4. the same y, and the cost ------------------------------------------------------------

    def close_beat(self):
        th, lay, hd, T, scan = self.th, self.layout, self.head, self.T, self.scan
        cfg = self.params.trace.meta.get("model_config", {})
        title = "4 · Three ways, one answer"
        self.new_beat(title)
        P, N, Q, n = hd.head_dim, hd.state_size, scan.chunk_size, scan.n_chunks
        model_q = cfg.get("chunk_size")
        rows = [
            ("", "way", "work", "max |y − y(recurrence)|"),
            ("1", "the recurrence", f"{T} steps, one after another", "(the reference)"),
            ("2", "the matrix M", f"{T} × {T} = {T * T:,} numbers at once", self.diffs["matrix"]),
            ("3", f"the chunked scan, Q = {Q}", f"{n} chunks at once + {n} short steps", self.diffs["chunks"]),
            ("", "the model's recorded y", f"chunks of {model_q}, then a step per token" if model_q else "as run",
             self.diffs["recorded"] + " (float32)"),
        ]
        cols = (lay.left, lay.left + 0.45, lay.left + 4.3, lay.left + 9.6)
        table = VGroup()
        y = 2.8
        for k, row in enumerate(rows):
            ink = th.muted if k == 0 else th.text
            for x, cell in zip(cols, row, strict=True):
                if cell:
                    table.add(text_line(cell, font_size=20, color=ink, left=x, descender=y))
            y -= 0.46
        rule = Line([lay.left, 2.7, 0], [lay.right, 2.7, 0], stroke_color=th.muted, stroke_width=1.5)
        heads = cfg.get("mamba_n_heads")
        bullets = [
            ("Memory", f"one state per head, P × N = {P} × {N} = {P * N:,} numbers (P: head dimension, N: state "
                       f"size), after {T} tokens or a million."),
            ("", f"This layer's {heads} heads: {heads * P * N:,} numbers, {self.state_kib(heads)} "
                 f"KiB in fp32, at any length. Attention keeps every token's keys and values instead."
             if heads else ""),
            ("Work", f"the recurrence and the chunked scan grow in proportion to the length; the whole matrix with "
                     f"its square ({T * T:,} numbers here, 10¹² at a million tokens)."),
            ("", "The chunked scan does its work as matrix products inside chunks (what GPUs are fast at); only the "
                 "pass between chunks is sequential."),
        ]
        cost = VGroup()
        top = y - 0.1
        for head, text in bullets:
            if not text:
                continue
            body = TextBlock(text, th, width=lay.right - lay.left - 1.5, font_size=22)
            body.shift([lay.left + 1.5, top, 0])
            row = VGroup(body)
            if head:
                row.add(text_line(head, font_size=22, color=th.text, weight="BOLD", left=lay.left,
                                  descender=top))
            cost.add(row)
            top -= body.n_lines * 22 * 0.0215 + 0.14
        self.add(table, rule)
        # the result the table shows: each way's max difference from the recurrence
        say(self, f"{title} · {rows[0][3]}: " + "; ".join(f"{r[1]}: {r[3]}" for r in rows[2:]))
        self.uncover()
        self.checkpoint("table")
        self.hold(10)
        words = [" ".join(f"{head} · {text}" if head else text for head, text in part if text)
                 for part in (bullets[:2], bullets[2:])]  # memory, then work (all shown at once, said in turn)
        say(self, words[0])
        self.play(FadeIn(cost), run_time=2 * self.params.pace)
        self.checkpoint("close")
        wait_saying(self, (12 * self.params.pace, words[0]), (12 * self.params.pace, words[1]))


def top_percent(values: np.ndarray) -> float:
    """The 99th percentile of |values|: where a signed colour scale is full."""
    v = float(np.percentile(np.abs(values), 99)) if np.size(values) else 0.0
    return v if v > 0 else 1.0


def num(v: float, digits: int = 2) -> str:
    """v with a real minus sign."""
    return f"{v:.{digits}f}".replace("-", "−")


def sci(v: float) -> str:
    """v as '3.4 × 10⁻⁸' (0 as '0')."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    e = math.floor(math.log10(abs(v)))
    m = v / 10 ** e
    sup = str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"{m:.1f} × 10{sup}"


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    Mamba2SSD.params = or_exit(resolve_params)
