# manim render scenes/latent_moe.py                  (1080p60; -ql for a quick 480p15 preview)
# TOY_LAYER=4 TOY_TOKENS=18-20 TOY_PACE=1.5 TOY_THEME=light manim render -ql scenes/latent_moe.py
"""LatentMoE: one real Latent MoE layer of the toy model at work, from a trace, in four steps.

1. The router. For each selected token: the sigmoid score s of every routed expert (bars), the correction
   bias b added for the choice only (ticks at s + b), the top-k of s + b chosen; their gate weights, from the
   unbiased s normalised over the k and scaled by routed_scaling_factor. Every number is the trace's.
2. The latent path, for the last selected token: x (width d) projected down to z (width l = d/4), the chosen
   squared-ReLU experts working in the latent, their gated sum projected back up to d; the always-on shared
   expert beside them at full width; the two added into the residual stream. Widths are drawn as lengths,
   and the savings of the latent (one expert's weights, the values sent per token) are computed from the
   config.
3. Balance over the whole trace: how many tokens each expert took, beside the correction bias the sign rule
   learned in training; then the same tokens re-routed with b = 0 (the top-k of the recorded scores alone,
   computed here) and how much more uneven the load gets.
4. At scale: the same layer in Nemotron 3 Super (512 experts, top-22, latent 1024 for d = 4096), its numbers
   from toy_model.published with the source on screen.

Parameters (environment variables override the [latent_moe] section of scenes/manim.cfg):
    TOY_TRACE   path to a trace .npz                       (default: traces/default.npz)
    TOY_LAYER   an MoE layer of the trace: auto | N         (default: auto, the first MoE layer)
    TOY_TOKENS  which tokens, at most 8: auto | 3 | 9-11 | 3,5,9 ... (default: auto, the last prompt token
                and the first 2 generated ones)
    TOY_PACE    seconds per step, up to 5                   (default: 1.0; at least 2 frames: 0.14 at 15 fps)
    TOY_THEME   dark | light                                (default: dark)
Bad values or a bad trace stop the render before anything is drawn, with one line on stderr. From a notebook:
LatentMoE(params=MoEParams(...)) reads nothing from the environment.

Token text shows emoji as OpenMoji drawings (https://openmoji.org, CC BY-SA 4.0), credited on screen when one
is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    Circle,
    DashedLine,
    FadeIn,
    FadeOut,
    Line,
    ManimColor,
    Rectangle,
    RoundedRectangle,
    VGroup,
    config,
)

from toy_model.kinds import BY_NAME
from toy_model.published import SOURCES, SUPER, from_config, latent_savings, routed_expert_params
from toy_model.trace_file import Trace
from toy_model.viz.bars import BarChart, LevelTicks, Projection, SplitBar, VectorBar, dashed_level
from toy_model.viz.captions import TokenCaption
from toy_model.viz.emoji import EMOJI_CREDIT, has_emoji, token_label
from toy_model.viz.notes import key_list, paragraph, put_on_baseline
from toy_model.viz.params import ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.routing import loads, router_step, skew
from toy_model.viz.scene import Curtain, FastScene
from toy_model.viz.slides import beat
from toy_model.viz.subtitles import say
from toy_model.viz.text import label, show_spaces, text_units
from toy_model.viz.theme import Theme

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"
KEYS = {"trace": "TOY_TRACE", "layer": "TOY_LAYER", "tokens": "TOY_TOKENS", "pace": "TOY_PACE",
        "theme": "TOY_THEME"}
MAX_TOKENS = 8  # "a few": each token's router step takes about three paces
MAX_EXPERTS, MAX_CHOSEN = 64, 6  # what the charts and the gate table have room for
SHORTEST_STEP = 1 / 2  # of the pace: fades, recolouring, the curtain between parts
STOPS = ("router", "latent", "balance", "unbiased", "scale")  # where a dry run may stop (tests): "router 0" ...


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in scene units (the frame is 14.2 x 8 around the origin)."""

    left: float = -6.85
    right: float = 6.85
    title_y: float = 3.62
    subtitle_y: float = 3.18
    # 1. router
    chart_x: float = -6.3  # the score chart's left end
    chart_y: float = -1.3  # its baseline
    chart_unit: float = 3.2  # a score of 1, in scene units
    slot: float = 0.5  # one expert's column
    panel_x: float = 2.15  # the right-hand panel
    # 2. latent path
    path_y: float = 0.35  # the centre line of the vectors
    d_length: float = 3.6  # the model width d, drawn
    # 3. balance
    balance_x: float = -5.85  # the charts' left end (room for the axis numbers)
    balance_slot: float = 0.45
    load_y: float = 0.05  # baseline of the load chart
    load_height: float = 2.2  # the largest load, drawn
    bias_y: float = -2.6  # zero line of the bias chart
    bias_height: float = 0.85  # the largest |b|, drawn
    balance_panel_x: float = 2.05


LAYOUT = Layout()


@dataclass(frozen=True)
class MoEParams:
    trace: Trace
    trace_path: Path
    layer: int
    tokens: tuple[int, ...]
    pace: float
    theme: Theme


def parse_layer(spec: str, trace: Trace, source: str = "TOY_LAYER") -> int:
    """The layer index from 'auto' (or 'first': the first MoE layer) or a number, which must be an MoE layer."""
    moe = trace.layers_of("moe")
    if not moe:
        raise ParamError(f"the trace's pattern {trace.pattern!r} has no MoE layer (E) for this scene to show")
    where = f"the MoE layers of this trace are {', '.join(map(str, moe))}"
    if spec.strip().lower() in ("auto", "first"):
        return moe[0]
    try:
        layer = int(spec)
    except ValueError:
        raise ParamError(f"{source}={spec!r}: give auto (the first MoE layer) or a layer number; {where}") from None
    if not 0 <= layer < trace.n_layers:
        raise ParamError(f"{source}={spec!r}: the trace has layers 0-{trace.n_layers - 1}; {where}")
    if layer not in moe:
        raise ParamError(f"{source}={spec!r}: layer {layer} is not an MoE layer "
                         f"({BY_NAME[trace.layer_kind(layer)].title}); {where}")
    return layer


def check_trace(trace: Trace, where: str = "the trace") -> None:
    """ParamError unless the trace's model_config has what the scene computes with."""
    cfg = trace.meta.get("model_config") or {}
    need = ("d_model", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
            "moe_shared_expert_intermediate_size", "routed_scaling_factor")
    missing = [k for k in need if not isinstance(cfg.get(k), (int, float)) or isinstance(cfg.get(k), bool)]
    if missing:
        raise ParamError(f"{where}: its model_config lacks {missing[0]!r}, which this scene shows")
    if not cfg.get("moe_latent_size"):
        raise ParamError(f"{where}: its model has no latent projection (moe_latent_size is null), and this scene "
                         f"shows a Latent MoE layer")
    if trace.moe_scores.shape[2] > MAX_EXPERTS or trace.moe_topk_ids.shape[2] > MAX_CHOSEN:
        raise ParamError(f"{where}: {trace.moe_scores.shape[2]} experts, {trace.moe_topk_ids.shape[2]} chosen per "
                         f"token; this scene draws up to {MAX_EXPERTS} experts and {MAX_CHOSEN} chosen")


def check_tokens(tokens: tuple[int, ...], source: str = "TOY_TOKENS") -> tuple[int, ...]:
    if len(tokens) > MAX_TOKENS:
        raise ParamError(f"{source}: {len(tokens)} tokens selected; this scene shows at most {MAX_TOKENS} "
                         f"(e.g. TOY_TOKENS=9-11)")
    return tokens


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> MoEParams:
    """MoEParams from the environment over manim.cfg [latent_moe]; ParamError names a bad value."""
    settings = Settings("latent_moe", env, cfg_path, keys=KEYS)
    theme = settings.theme()
    fps = config.frame_rate if frame_rate is None else frame_rate
    pace = settings.pace(fps, SHORTEST_STEP, fallback="1.0")
    trace, path = settings.trace(DEFAULT_TRACE, lambda p: None if "E" in p else
                                 f"the trace's pattern {p!r} has no MoE layer (E) for this scene to show")
    check_trace(trace, settings.get("trace", str(DEFAULT_TRACE))[1])
    spec, src = settings.get("layer", "auto")
    layer = parse_layer(spec, trace, src)
    tokens = check_tokens(settings.tokens(trace, auto=3), settings.get("tokens", "auto")[1])
    return MoEParams(trace, path, layer, tokens, pace, theme)


def symbol_notes(shown: str) -> str:
    """What the marks in token text mean, for those that occur in `shown`: ␣ a space, ↵ a line break, ‹f0 9f› the
    bytes of part of a character (toy_model.trace_file's display text)."""
    notes = []
    if "␣" in shown:
        notes.append("␣ a space")
    if "↵" in shown:
        notes.append("↵ a line break")
    if "‹" in shown:
        notes.append("‹a4› bytes of part of a character")
    return " · ".join(notes)


def expert_labels(n: int) -> list[str]:
    """Expert numbers under the charts: all of 16, every 2nd of 32, ... (an empty string: no label)."""
    stride = -(-n // 16)
    return [str(e) if e % stride == 0 else "" for e in range(n)]


def number(x: float, digits: int = 3, signed: bool = False) -> str:
    """x with `digits` decimals; a minus sign (U+2212), not a hyphen; '+' first when signed."""
    s = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return s.replace("-", "−")


def grouped(n: int) -> str:
    """An integer with thousands separators: 16,384."""
    return f"{n:,}"


class LatentMoE(FastScene):
    """One MoE layer of a trace at work (module docstring). `params` / `stop_at` may be set on a subclass or
    passed in; stop_at ends the scene at a step: 'router N' (after token N's gate weights), 'latent',
    'balance', 'unbiased' or 'scale'."""

    params: MoEParams | None = None
    stop_at: str | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: MoEParams | None = None, stop_at: str | None = None, **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("LatentMoE needs params=MoEParams(...), or render it with manim render "
                             "scenes/latent_moe.py (which reads TOY_* and scenes/manim.cfg)")
        p = self.params
        parse_layer(str(p.layer), p.trace, "layer")
        check_trace(p.trace)
        check_tokens(tuple(p.tokens), "tokens")
        if not p.tokens or not all(0 <= t < p.trace.n_tokens for t in p.tokens):
            raise ParamError(f"tokens {p.tokens!r}: give 1 to {MAX_TOKENS} positions in 0-{p.trace.n_tokens - 1}")
        self.stop_at = stop_at if stop_at is not None else type(self).stop_at
        super().__init__(*args, **kwargs)

    # ---- the story -------------------------------------------------------------------------------

    def construct(self):
        p = self.params
        self.camera.background_color = ManimColor(p.theme.background)
        self.cfg = p.trace.meta["model_config"]
        self.model = from_config(self.cfg)
        self.page: list = []
        self.credit = None
        for step in self.story():
            if step == self.stop_at:
                return
        self.wait(p.pace)

    def story(self) -> Iterator[str]:
        yield from self.router()
        yield from self.latent_path()
        yield from self.balance()
        yield from self.at_scale()

    # ---- pages -----------------------------------------------------------------------------------

    def new_page(self, title: str, subtitle: str = "", words: str | None = None):
        """Cover the screen, clear the last page, put up a title; the curtain lifts with the next play. The
        subtitle from now on: `words`, or the title and its subtitle line."""
        th, lay, pace = self.params.theme, self.layout, self.params.pace
        curtain = Curtain(th.background)
        if self.page:
            self.add(curtain)
            self.play(FadeIn(curtain), run_time=pace / 2)
            self.remove(*self.page)
        self.page = []
        say(self, words or " · ".join(s for s in (title, subtitle) if s))
        head = label(title, font_size=28, color=th.text, weight="BOLD", max_width=lay.right - lay.left)
        head.move_to([lay.left, lay.title_y, 0], aligned_edge=LEFT)
        self.show(head)
        if subtitle:
            self.show(label(subtitle, font_size=18, color=th.muted).move_to([lay.left, lay.subtitle_y, 0],
                                                                            aligned_edge=LEFT))
        if curtain in self.mobjects:
            self.remove(curtain)
            self.add(curtain)  # above the new page
            self.play(FadeOut(curtain), run_time=pace / 2)
            self.remove(curtain)

    def show(self, *mobjects):
        """Put mobjects on the page at once (they go when the page does)."""
        self.add(*mobjects)
        self.page += [m for m in mobjects if m not in self.page]

    def layer_title(self, part: str) -> str:
        kind = "Latent MoE" if self.cfg.get("moe_latent_size") else "MoE"
        return f"{kind}, layer {self.params.layer}: {part}"

    # ---- 1. the router ---------------------------------------------------------------------------

    def router(self) -> Iterator[str]:
        p, th, lay = self.params, self.params.theme, self.layout
        n_exp, k = int(self.cfg["n_routed_experts"]), int(self.cfg["num_experts_per_tok"])
        scale = float(self.cfg["routed_scaling_factor"])
        steps = [router_step(p.trace, p.layer, t) for t in p.tokens]
        changed = [str(t) for t, step in zip(p.tokens, steps, strict=True) if step.brought_in]
        beat(self, f"Latent MoE, layer {p.layer}, step 1: for {len(p.tokens)} token{'s' if len(p.tokens) > 1 else ''} "
                  f"(position{'s' if len(p.tokens) > 1 else ''} {', '.join(map(str, p.tokens))}) the router scores "
                  f"all {n_exp} routed experts, s = sigmoid(router · x), and picks the top {k} by s + b, b the "
                  f"correction bias; their gate weights come from s alone, w = {scale:g} × s / (sum of the {k} chosen "
                  f"s), so the {k} add up to {scale:g}. "
                  + (f"b changed the choice at position{'s' if len(changed) > 1 else ''} {', '.join(changed)}."
                     if changed else "b changed none of these choices."))
        self.new_page(self.layer_title("1. the router picks experts"),
                      f"{n_exp} routed experts, {k} chosen per token · numbers from the trace")

        # the chart: one bar per routed expert, a tick at s + b
        slot = min(lay.slot, 16 * lay.slot / n_exp)  # 16 experts fill the chart's width; more share it
        chart = BarChart(th, n_exp, slot=slot, bar_width=0.64 * slot, unit=lay.chart_unit, color=th.muted,
                         labels=expert_labels(n_exp))
        chart.shift(np.array([lay.chart_x, lay.chart_y, 0]) - chart.origin)
        axis = VGroup()
        for v in (0.0, 0.5, 1.0):
            t = label(f"{v:g}", font_size=18, color=th.muted)
            axis.add(t.move_to(chart.point(0, v) + LEFT * (0.5 * slot + 0.12), aligned_edge=RIGHT))
            if v:
                axis.add(DashedLine(chart.point(0, v) + LEFT * 0.5 * slot, chart.point(n_exp - 1, v)
                                    + RIGHT * 0.5 * slot, stroke_color=th.muted, stroke_width=1,
                                    stroke_opacity=0.5, dash_length=0.06))
        xlabel = label("routed expert", font_size=18, color=th.muted)
        xlabel.next_to(chart.labels, DOWN, buff=0.12)
        ticks = LevelTicks(chart, color=th.text, width=slot * 0.8)
        swatch = lambda c: Rectangle(width=0.22, height=0.22, stroke_width=0, fill_color=c, fill_opacity=1)
        tick_icon = Line(LEFT * 0.14, RIGHT * 0.14, stroke_color=th.text, stroke_width=3)
        cut_icon = DashedLine(LEFT * 0.18, RIGHT * 0.18, stroke_color=th.text, stroke_width=2, dash_length=0.06)
        legend = key_list([
            (swatch(th.muted), "bar: s = sigmoid(router · x), each expert's score for this token x"),
            (tick_icon, "tick: s + b, b the expert's correction bias: it only moves the choice"),
            (swatch(th.moe), f"the {k} chosen: the top {k} by s + b, their ticks above the dashed cut"),
        ], th, width=lay.panel_x - lay.left - 0.2)
        legend.move_to([lay.left + 0.3, -3.92, 0], aligned_edge=LEFT + DOWN)
        del cut_icon
        self.show(axis, chart, xlabel, legend)
        self.chart = chart

        cut = VGroup()
        for n, (t, step) in enumerate(zip(p.tokens, steps, strict=True)):
            caption = self.token_caption(t)
            if n:  # the first token's caption goes up with the title, which is read first
                say(self, caption.words)
            colors = [th.moe if e in set(step.ids.tolist()) else th.muted for e in range(n_exp)]
            if n == 0:
                self.play(chart.animate_values(step.scores), run_time=p.pace)
                ticks.set_values(step.biased)
                self.play(FadeIn(ticks), run_time=p.pace / 2)
                self.show(ticks)
            else:
                self.remove(cut)
                chart.set_colors([th.muted] * n_exp)
                self.play(chart.animate_values(step.scores), ticks.animate_values(step.biased), run_time=p.pace)
            cut = dashed_level(chart, step.cut, color=th.text, overhang=0.0)
            target = chart.bars.copy()
            for bar, c in zip(target, colors, strict=True):
                bar.set_fill(c)
            self.play(FadeIn(cut), chart.bars.animate.become(target), run_time=p.pace / 2)
            self.show(cut)
            why = self.gate_panel(step, k, scale)
            say(self, f"{caption.words} · {why}")
            self.wait(1.5 * p.pace)
            yield f"router {n}"

    def token_caption(self, t: int) -> TokenCaption:
        """The token being routed, top right, replacing the last one; returned."""
        p, th, lay = self.params, self.params.theme, self.layout
        trace = p.trace
        for m in getattr(self, "_caption", []):
            self.remove(m)
            self.page.remove(m)
        kind = "generated" if trace.is_generated(t) else "prompt"
        before = text_units("".join(str(trace.token_text[s]) for s in range(max(0, t - 24), t)))
        context = ("…" + "".join(before[-22:]) if len(before) > 22 or t > 24 else "".join(before)) if t \
            else "(first token)"
        caption = TokenCaption(th, show_spaces(trace.display_text(t)),
                               header=f"position {t} of 0-{trace.n_tokens - 1} · {kind}",
                               context=f"after: {context}", width=lay.right - lay.panel_x)
        caption.move_to([lay.panel_x, 3.32, 0], aligned_edge=LEFT + UP)
        self._caption = [caption]
        self.show(caption)
        marks = symbol_notes(show_spaces(trace.display_text(t)) + context)
        if marks:
            note = label(marks, font_size=18, color=th.muted)
            note.next_to(caption, DOWN, buff=0.1, aligned_edge=LEFT)
            self._caption.append(note)
            self.show(note)
        if has_emoji(caption):
            self.credit_emoji()
        return caption

    def credit_emoji(self):
        """OpenMoji's credit (CC BY-SA 4.0), top right beside the title, on a page that shows an emoji."""
        th, lay = self.params.theme, self.layout
        if self.credit is None:
            self.credit = label(EMOJI_CREDIT, font_size=18, color=th.muted)
            self.credit.move_to([lay.right, lay.title_y, 0], aligned_edge=RIGHT)
        if self.credit not in self.mobjects:
            self.show(self.credit)

    def gate_panel(self, step, k: int, scale: float) -> str:
        """The chosen experts' s, b and gate weight w, and w as parts of one bar that adds up to the scale; returns
        its note on what b did to the choice."""
        th, lay = self.params.theme, self.layout
        for m in getattr(self, "_gates", []):
            self.remove(m)
            self.page.remove(m)
        x0, width = lay.panel_x, lay.right - lay.panel_x
        head = label("gate weights of the chosen", font_size=20, color=th.text, weight="BOLD")
        formula = paragraph(f"w = {scale:g} × s / (sum of the {k} chosen s)", th, width=width)
        cols = [0.0, 1.05, 2.05, 3.35]  # expert, s, b, w
        table = VGroup()
        header = VGroup(*[label(s, font_size=18, color=th.muted) for s in ("expert", "s", "b", "w")])
        rows = [header]
        order = np.argsort(-step.weights, kind="stable")
        for j in order:
            e = int(step.ids[j])
            cells = (str(e), number(step.scores[e]), number(step.bias[e], signed=True), number(step.weights[j]))
            rows.append(VGroup(*[label(s, font_size=18, color=th.text) for s in cells]))
        total = VGroup(label("sum", font_size=18, color=th.muted),
                       label(number(float(step.scores[step.ids].sum())), font_size=18, color=th.muted),
                       VGroup(), label(number(float(step.weights.sum())), font_size=18, color=th.muted))
        rows.append(total)
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                if isinstance(cell, VGroup) and not cell.submobjects:
                    continue
                put_on_baseline(cell, x0 + cols[c], -0.32 * r)
            table.add(row)
        # w as one bar of length `scale`: the k parts, widest first, numbered by expert
        bar_w = width - 0.1
        parts, names, x = VGroup(), VGroup(), x0
        for j in order:
            w = float(step.weights[j]) / max(float(step.weights.sum()), 1e-9) * bar_w
            part = Rectangle(width=max(w - 0.04, 0.01), height=0.3, stroke_width=0, fill_color=th.moe,
                             fill_opacity=1).move_to([x + w / 2, 0, 0])
            parts.add(part)
            name = label(str(int(step.ids[j])), font_size=18, color=th.text)
            if name.width < w - 0.06:
                names.add(name.next_to(part, DOWN, buff=0.08))
            x += w
        bar_note = paragraph(f"the {k} weights add up to {scale:g} (routed_scaling_factor)", th, width=width,
                             color=th.muted)
        stack = VGroup(head, formula, table, VGroup(parts, names), bar_note)
        head.move_to([x0, 1.0, 0], aligned_edge=LEFT)
        formula.next_to(head, DOWN, buff=0.14, aligned_edge=LEFT)
        table.next_to(formula, DOWN, buff=0.18, aligned_edge=LEFT)
        VGroup(parts, names).next_to(table, DOWN, buff=0.22, aligned_edge=LEFT)
        bar_note.next_to(names if names.submobjects else parts, DOWN, buff=0.1, aligned_edge=LEFT)
        bar_note.align_to(head, LEFT)
        if step.brought_in:
            many = len(step.brought_in) > 1
            ins = ("experts " if many else "expert ") + ", ".join(map(str, step.brought_in))
            outs = ("experts " if many else "expert ") + ", ".join(map(str, step.pushed_out))
            why = f"b changed the choice: {ins} in, {outs} out, though the s of {outs} is higher"
        else:
            why = f"b did not change the choice: the top {k} of s alone are the same experts"
        note = paragraph(why, th, width=width, color=th.text)
        note.next_to(bar_note, DOWN, buff=0.16, aligned_edge=LEFT)
        stack.add(note)
        self._gates = [stack]
        self.show(stack)
        return why

    # ---- 2. the latent path ----------------------------------------------------------------------

    def latent_path(self) -> Iterator[str]:
        p, th, lay = self.params, self.params.theme, self.layout
        cfg, pace = self.cfg, self.params.pace
        t = p.tokens[-1]
        step = router_step(p.trace, p.layer, t)
        m_rec = p.trace.moe(p.layer, t)
        d = int(cfg["d_model"])
        latent = cfg.get("moe_latent_size")
        l_w = int(latent) if latent else d
        k, m_w = len(step.ids), int(cfg["moe_intermediate_size"])
        shared_w = int(cfg["moe_shared_expert_intermediate_size"])
        share = float(m_rec["shared_share"])
        full, small = routed_expert_params(d, m_w), routed_expert_params(l_w, m_w)
        order = np.argsort(-step.weights, kind="stable")
        shown = show_spaces(p.trace.display_text(t))
        beat(self, f"Step 2, the latent path of token {t}, ‘{shown}’: x (d = {d}) projected down to z (l = {l_w}), "
                  f"through its {k} chosen experts of {int(cfg['n_routed_experts'])} "
                  f"({', '.join(str(int(step.ids[j])) for j in order)}; {l_w} → {m_w} → {l_w}, squared ReLU), "
                  f"their gated sum back up to {d}; the shared expert works at full width beside them "
                  f"(d → {shared_w} → d) and is {100 * share:.0f}% of this update. One expert's weights: "
                  f"{grouped(small)} instead of {grouped(full)} at d; values sent per token: {grouped(k * l_w)} "
                  f"instead of {grouped(k * d)}"
                  + (f"; the price, W↓ and W↑: {grouped(2 * d * l_w)} weights per layer." if latent else "."))
        title = self.layer_title("2. the latent path")
        tok_words = f"the token at position {t}:"
        self.new_page(title, words=f"{title} · {tok_words} ‘{shown}’")  # the token's line goes up with the title
        tok = token_label(shown, font_size=20, color=th.text, weight="BOLD", halo=th.emoji_halo)
        tok_line = VGroup(label(tok_words, font_size=18, color=th.muted), tok)
        marks = symbol_notes(show_spaces(p.trace.display_text(t)))
        if marks:
            tok_line.add(label(f"({marks})", font_size=18, color=th.muted))
        tok_line.arrange(RIGHT, buff=0.15).move_to([lay.left, lay.subtitle_y, 0], aligned_edge=LEFT)
        self.show(tok_line)
        if has_emoji(tok):
            self.credit_emoji()

        unit = lay.d_length / d  # scene units per dimension: widths are drawn as lengths
        y = lay.path_y
        ratio = d // l_w if d % l_w == 0 and d // l_w <= 8 else 1
        xs = dict(x=-6.45, down=-5.8, z=-5.1, experts=-3.45, sigma=-1.9, up=-1.1, routed=-0.1, plus=0.65,
                  update=1.35)
        names_y = y - lay.d_length / 2 - 0.3  # the row of names under the vectors

        def name(s, at):
            return label(s, font_size=20, color=th.text, weight="BOLD").move_to([xs[at], names_y, 0])

        def under(s, at, row=1):
            return label(s, font_size=18, color=th.muted).move_to([xs[at], names_y - 0.3 * row, 0])

        def wire(a, b):
            return Line(a, b, stroke_color=th.muted, stroke_width=2)

        # x, down to z
        x_bar = VectorBar(th, d * unit, segments=ratio, color=th.text).move_to([xs["x"], y, 0])
        x_names = VGroup(name("x", "x"), under(f"d = {d}", "x"))
        self.play(FadeIn(VGroup(x_bar, x_names)), run_time=pace / 2)
        self.show(x_bar, x_names)
        down = Projection(th, d * unit, l_w * unit, 0.85).move_to([xs["down"], y, 0])
        z_bar = VectorBar(th, l_w * unit, color=th.moe).move_to([xs["z"], y, 0])
        z_names = VGroup(name("W↓", "down"), name("z", "z"), under(f"l = {l_w}", "z"))
        self.play(FadeIn(VGroup(down, z_bar, z_names)), run_time=pace)
        self.show(down, z_bar, z_names)

        # the chosen experts, each l -> m -> l in the latent, gated
        boxes = VGroup()
        for j in order:
            box = RoundedRectangle(width=2.1, height=0.5, corner_radius=0.08, stroke_color=th.moe, stroke_width=2.5,
                                   fill_color=th.panel, fill_opacity=1)
            text = label(f"expert {int(step.ids[j])}  w {number(step.weights[j], 2)}", font_size=18, color=th.text)
            boxes.add(VGroup(box, text.move_to(box)))
        boxes.arrange(DOWN, buff=0.14).move_to([xs["experts"], y, 0])
        fan = VGroup(*[wire(z_bar.get_right(), b.get_left()) for b in boxes])
        e_names = VGroup(name(f"{k} of {int(cfg['n_routed_experts'])} experts", "experts"),
                         under("l → m → l", "experts"), under(f"m = {m_w}, squared ReLU", "experts", 2))
        self.play(FadeIn(VGroup(fan, boxes, e_names)), run_time=pace)
        self.show(fan, boxes, e_names)

        # the gated sum, back up to d
        sigma = VGroup(Circle(radius=0.28, stroke_color=th.text, stroke_width=2.5, fill_color=th.panel,
                              fill_opacity=1), label("Σ", font_size=24, color=th.text)).move_to([xs["sigma"], y, 0])
        join = VGroup(*[wire(b.get_right(), sigma.get_left()) for b in boxes])
        up = Projection(th, l_w * unit, d * unit, 0.85).move_to([xs["up"], y, 0])
        routed = VectorBar(th, d * unit, segments=ratio, color=th.moe).move_to([xs["routed"], y, 0])
        s_names = VGroup(name("Σ", "sigma"), name("W↑", "up"), name("routed", "routed"), under(f"d = {d}", "routed"))
        self.play(FadeIn(VGroup(join, sigma, up, routed, s_names)), run_time=pace)
        self.show(join, sigma, up, routed, s_names)

        # the shared expert on the full width, and the sum into the residual stream
        plus = VGroup(Circle(radius=0.24, stroke_color=th.text, stroke_width=2.5, fill_color=th.panel,
                             fill_opacity=1), label("+", font_size=26, color=th.text)).move_to([xs["plus"], y, 0])
        top = y + lay.d_length / 2 + 0.38
        sh_text = label(f"shared expert, always on: d → {shared_w} → d, squared ReLU", font_size=18, color=th.text)
        sh_box = RoundedRectangle(width=sh_text.width + 0.4, height=0.46, corner_radius=0.08, stroke_color=th.text,
                                  stroke_width=2.5, fill_color=th.panel, fill_opacity=1)
        sh_box.move_to([(xs["x"] + xs["plus"]) / 2, top, 0])  # between the wires up from x and down to +
        shared = VGroup(sh_box, sh_text.move_to(sh_box))
        x_top, p_x = x_bar.get_top(), plus.get_center()[0]
        wires = VGroup(wire(x_top, [x_top[0], top, 0]), wire([x_top[0], top, 0], sh_box.get_left()),
                       wire(sh_box.get_right(), [p_x, top, 0]), wire([p_x, top, 0], plus.get_top()),
                       wire(routed.get_right(), plus.get_left()))
        update = VectorBar(th, d * unit, color=th.text).move_to([xs["update"], y, 0])
        out = wire(plus.get_right(), update.get_left())
        u_names = VGroup(name("update", "update"), under(f"d = {d}", "update"))
        self.play(FadeIn(VGroup(shared, wires, plus, out, update, u_names)), run_time=pace)
        self.show(shared, wires, plus, out, update, u_names)

        # the key, and this token's numbers
        px = xs["update"] + 0.75
        width = lay.right - px
        key_lines = [
            "x: the token entering, normalised",
            f"d = {d}: model width · l = {l_w}: latent",
            f"ticks: x in d / l = {ratio} parts of l" if ratio > 1 else "",
            "W↓, W↑: projections d → l and l → d",
            "z = W↓x: the token in the latent",
            f"k = {k} chosen · m = {m_w}: expert width",
            "w: gate weight, from the router",
            "Σ: sum of the experts' outputs × w",
            "x + update: on to the next layer",
        ]
        key = VGroup(*[paragraph(s, th, width=width) for s in key_lines if s]).arrange(DOWN, buff=0.1,
                                                                                     aligned_edge=LEFT)
        key.move_to([px, y + lay.d_length / 2 + 0.2, 0], aligned_edge=LEFT + UP)
        found = (f"from the trace: ‖z‖ = {number(m_rec['latent_norm'], 2)} (the length of z); the shared expert is "
                 f"{100 * share:.0f}% of the update, ‖shared‖ / (‖routed‖ + ‖shared‖)")
        numbers = VGroup(
            paragraph(found, th, width=width),
            SplitBar(th, share, width=width - 0.1, color=th.text, rest_color=th.moe),
        ).arrange(DOWN, buff=0.12, aligned_edge=LEFT)
        numbers.next_to(key, DOWN, buff=0.22, aligned_edge=LEFT)
        say(self, found)
        self.play(FadeIn(VGroup(key, numbers)), run_time=pace / 2)
        self.show(key, numbers)

        # what the latent saves, from the config
        lines = [
            f"one expert's weights: 2 × l × m = 2 × {l_w} × {m_w} = {grouped(small)}"
            f"   (at d: 2 × {d} × {m_w} = {grouped(full)}, {full / small:g}× more)",
            f"sent to the chosen experts per token: k × l = {k} × {l_w} = {grouped(k * l_w)} values"
            f"   (at d: {k} × {d} = {grouped(k * d)})",
            f"the price: W↓ and W↑, 2 × d × l = {grouped(2 * d * l_w)} weights per layer, shared by all "
            f"{int(cfg['n_routed_experts'])} experts" if latent else "this model has no latent projection: l = d",
        ]
        savings = VGroup(*[label(s, font_size=18, color=th.text) for s in lines])
        savings.arrange(DOWN, buff=0.1, aligned_edge=LEFT).move_to([lay.left, -3.92, 0], aligned_edge=LEFT + DOWN)
        self.play(FadeIn(savings), run_time=pace)
        self.show(savings)
        say(self, " · ".join(lines))  # once it has faded in: the line above keeps the fade
        self.wait(2 * pace)
        yield "latent"

    # ---- 3. balance ------------------------------------------------------------------------------

    def balance(self) -> Iterator[str]:
        p, th, lay, pace = self.params, self.params.theme, self.layout, self.params.pace
        trace = p.trace
        k = int(self.cfg["num_experts_per_tok"])
        routed, plain = loads(trace, p.layer)
        a, z = skew(routed), skew(plain)
        bias = trace.moe_correction_bias[trace.layer_slot(p.layer)].astype(float)
        n_exp = len(routed)
        mean = float(routed.mean())
        corr = float(np.corrcoef(bias, plain)[0, 1]) if plain.std() > 0 and bias.std() > 0 else 0.0
        uneven = f"max / mean: {a['max_mean']:.2f} → {z['max_mean']:.2f}"
        uneven_cv = f"CV: {a['cv']:.2f} → {z['cv']:.2f}"
        beat(self, f"Step 3, balance in layer {p.layer} over all {trace.n_tokens} tokens of the trace "
                  f"({trace.n_tokens} × {k} = {trace.n_tokens * k} choices): how many each of the {n_exp} experts "
                  f"took as routed (mean load {mean:g}), beside the correction bias b learned in training by the sign "
                  f"rule (correlation with the load without it: {number(corr, 2)}); then the same tokens with b set to "
                  f"0. How uneven, with b → without: {uneven}, {uneven_cv}.")
        self.new_page(self.layer_title("3. balance over the whole text"),
                      f"all {trace.n_tokens} tokens of the trace, prompt and answer: {trace.n_tokens} × {k} = "
                      f"{trace.n_tokens * k} choices")
        top = max(int(routed.max()), int(plain.max()), 1)
        unit = lay.load_height / top
        slot, x0 = min(lay.balance_slot, 16 * lay.balance_slot / n_exp), lay.balance_x
        with_b = BarChart(th, n_exp, slot=slot, bar_width=0.38 * slot, unit=unit, color=th.moe, offset=-0.2 * slot,
                          labels=expert_labels(n_exp))
        with_b.shift(np.array([x0, lay.load_y, 0]) - with_b.origin)
        without_b = BarChart(th, n_exp, slot=slot, bar_width=0.38 * slot, unit=unit, color=th.text, offset=0.2 * slot,
                             baseline=False)
        without_b.shift(np.array([x0, lay.load_y, 0]) - without_b.origin)
        step = 10 if top >= 20 else 5 if top >= 8 else 1
        axis = VGroup()
        for v in range(0, top + 1, step):
            axis.add(label(str(v), font_size=18, color=th.muted).move_to(
                with_b.origin + UP * v * unit + LEFT * 0.12, aligned_edge=RIGHT))
        load_name = label("tokens each expert took", font_size=18, color=th.muted)
        load_name.move_to([x0, lay.load_y + lay.load_height + 0.3, 0], aligned_edge=LEFT)
        mean_line = dashed_level(with_b, mean, color=th.text)
        self.show(axis, load_name, with_b)
        self.play(with_b.animate_values(routed), run_time=pace)
        self.play(FadeIn(mean_line), run_time=pace / 2)
        self.show(mean_line)

        # the bias the sign rule learned
        b_top = max(float(np.abs(bias).max()), 1e-6)
        b_chart = BarChart(th, n_exp, slot=slot, bar_width=0.62 * slot, unit=lay.bias_height / b_top, color=th.muted)
        b_chart.shift(np.array([x0, lay.bias_y, 0]) - b_chart.origin)
        b_axis = VGroup(*[label(number(v, 2, signed=True) if v else "0", font_size=18, color=th.muted).move_to(
            b_chart.origin + UP * v * b_chart.unit + LEFT * 0.12, aligned_edge=RIGHT) for v in (b_top, 0.0, -b_top)])
        b_name = label("correction bias b", font_size=18, color=th.muted)
        b_name.move_to([x0, lay.bias_y + lay.bias_height + 0.3, 0], aligned_edge=LEFT)
        self.show(b_axis, b_name, b_chart)
        self.play(b_chart.animate_values(bias), run_time=pace)

        px, width = lay.balance_panel_x, lay.right - lay.balance_panel_x
        swatch = lambda c: Rectangle(width=0.22, height=0.22, stroke_width=0, fill_color=c, fill_opacity=1)
        rate = self.cfg.get("router_bias_update_rate")
        rule = (f"b was learned in training by the sign rule: after each step, "
                f"b += {rate:g} × sign(mean load − load), for each expert") if rate else \
            "b was learned in training by the sign rule: raised for experts under the mean load, lowered above it"
        dash = DashedLine(LEFT * 0.14, RIGHT * 0.14, stroke_color=th.text, stroke_width=2, dash_length=0.05)
        against = (f"b against the load without it: correlation {number(corr, 2)}"
                   + (" (b holds back the experts the scores favour)" if corr < -0.3 else ""))
        explain = VGroup(
            key_list([(swatch(th.moe), f"as routed: top {k} of s + b (the trace)"),
                      (dash, f"the mean load, {trace.n_tokens} × {k} / {n_exp} = {mean:g}")], th, width=width),
            paragraph(rule, th, width=width),
            paragraph(against, th, width=width),
        ).arrange(DOWN, buff=0.2, aligned_edge=LEFT)
        explain.move_to([px, 2.75, 0], aligned_edge=LEFT + UP)
        say(self, f"{rule} · {against}")
        self.play(FadeIn(explain), run_time=pace / 2)
        self.show(explain)
        yield "balance"

        # the same tokens with b = 0
        self.add(without_b)
        self.page.append(without_b)
        self.play(without_b.animate_values(plain), run_time=pace)
        how = "how uneven, with b → without:"
        stats = VGroup(
            key_list([(swatch(th.text), f"b set to 0: top {k} of s alone (recomputed here)")], th, width=width),
            label(how, font_size=18, color=th.text),
            label(uneven, font_size=20, color=th.text, weight="BOLD"),
            label(uneven_cv, font_size=20, color=th.text, weight="BOLD"),
            paragraph("max / mean: the busiest expert's load over the mean · CV: standard deviation / mean of "
                      "the loads (0: even)", th, width=width, color=th.muted),
        ).arrange(DOWN, buff=0.12, aligned_edge=LEFT)
        stats.next_to(explain, DOWN, buff=0.35, aligned_edge=LEFT)
        say(self, f"{how} {uneven} · {uneven_cv}")
        self.play(FadeIn(stats), run_time=pace / 2)
        self.show(stats)
        self.wait(2 * pace)
        yield "unbiased"

    # ---- 4. at scale -----------------------------------------------------------------------------

    def at_scale(self) -> Iterator[str]:
        th, lay, pace = self.params.theme, self.layout, self.params.pace
        toy, big = self.model, SUPER
        for m in (toy, big):
            assert m.latent, f"{m.name} has no latent"
        s_toy, s_big = latent_savings(toy), latent_savings(big)
        used = [f"{100 * (m.top_k / m.n_experts):.1f}%" for m in (toy, big)]  # the routed experts a token uses
        uses = [f"{'toy' if i == 0 else 'Super'}: {m.top_k} / {m.n_experts} = {used[i]}"
                for i, m in enumerate((toy, big))]
        ratio = (f"d / l = {s_toy['alpha']:g} in both" if s_toy["alpha"] == s_big["alpha"] else
                 f"d / l = {s_toy['alpha']:g} and {s_big['alpha']:g}")
        beat(self, f"Step 4: the same layer at scale, the toy (its trace's config) beside {big.name} (its published "
                  f"configuration), {ratio}: d → l {toy.d_model} → {toy.latent} against {big.d_model} → {big.latent}; "
                  f"one expert's weights at l {grouped(s_toy['expert_params_latent'])} against "
                  f"{grouped(s_big['expert_params_latent'])}. Super spends the savings on more experts: a token uses "
                  f"{toy.top_k} of the toy's {toy.n_experts} routed experts ({used[0]}), "
                  f"{big.top_k} of Super's {big.n_experts} ({used[1]}).")
        same = (f"the same ratio d / l = {s_toy['alpha']:g}" if s_toy["alpha"] == s_big["alpha"] else
                f"d / l = {s_toy['alpha']:g} and {s_big['alpha']:g}")
        self.new_page("Latent MoE at scale: the toy beside Nemotron 3 Super",
                      f"the same layer, {same}: Super spends the savings on more experts")
        rows = [("", "toy model (this trace)", big.name)]
        rows += [
            ("model width d → latent width l", f"{toy.d_model} → {toy.latent}", f"{big.d_model} → {big.latent}"),
            ("d / l", f"{s_toy['alpha']:g}", f"{s_big['alpha']:g}"),
            ("routed experts, chosen per token (k)", f"{toy.n_experts}, {toy.top_k}", f"{big.n_experts}, {big.top_k}"),
            ("an expert's width m", f"{toy.expert_width}", f"{big.expert_width}"),
            ("one expert's weights, at d → at l", f"{grouped(s_toy['expert_params_full'])} → "
             f"{grouped(s_toy['expert_params_latent'])}", f"{grouped(s_big['expert_params_full'])} → "
             f"{grouped(s_big['expert_params_latent'])}"),
            ("values sent per token, k × d → k × l", f"{grouped(s_toy['traffic_full'])} → "
             f"{grouped(s_toy['traffic_latent'])}", f"{grouped(s_big['traffic_full'])} → "
             f"{grouped(s_big['traffic_latent'])}"),
            ("gate scale (routed_scaling_factor)", f"{toy.routed_scaling:g}", f"{big.routed_scaling:g}"),
        ]
        cols = [lay.left, -1.2, 2.4]
        table = VGroup()
        for r, row in enumerate(rows):
            cells = VGroup()
            for c, s in enumerate(row):
                if not s:
                    continue
                bold = r == 0
                t = label(s, font_size=20 if c else 18, color=th.text if c or bold else th.muted,
                          weight="BOLD" if bold else "NORMAL", max_width=(cols[c + 1] if c + 1 < len(cols)
                                                                          else lay.right) - cols[c] - 0.15)
                cells.add(t.move_to([cols[c], 2.6 - 0.46 * r, 0], aligned_edge=LEFT))
            table.add(cells)
        toy_col = VGroup(*[row[1] if r else row[0] for r, row in enumerate(table)])
        big_col = VGroup(*[row[-1] for row in table])
        labels_col = VGroup(*[row[0] for r, row in enumerate(table) if r])
        self.play(FadeIn(VGroup(labels_col, toy_col)), run_time=pace)
        self.show(labels_col, toy_col)
        self.play(FadeIn(big_col), run_time=pace)
        self.show(big_col)

        # the share of experts a token uses, as lengths
        bar_len = lay.right - cols[1] - 0.1
        y0 = 2.6 - 0.46 * len(rows) - 0.25
        uses_head = "routed experts a token uses, of all"
        share_head = label(uses_head, font_size=18, color=th.muted)
        share_head.move_to([lay.left, y0, 0], aligned_edge=LEFT)
        shares = VGroup()
        for i, m in enumerate((toy, big)):
            f = m.top_k / m.n_experts
            bar = SplitBar(th, f, width=bar_len, color=th.moe, rest_color=th.muted)
            bar.move_to([cols[1], y0 - 0.42 * (i + 1), 0], aligned_edge=LEFT)
            name = label(uses[i], font_size=18, color=th.text)
            shares.add(VGroup(bar, name.move_to([lay.left, bar.get_center()[1], 0], aligned_edge=LEFT)))
        source = VGroup(
            label(f"Nemotron 3 Super: {SOURCES[big.source]}", font_size=18, color=th.muted,
                  max_width=lay.right - lay.left),
            label("toy: the trace's model_config · savings: 2 × width × m per expert, k × width per token",
                  font_size=18, color=th.muted, max_width=lay.right - lay.left),
        ).arrange(DOWN, buff=0.1, aligned_edge=LEFT).move_to([lay.left, -3.92, 0], aligned_edge=LEFT + DOWN)
        say(self, f"{uses_head}: {' · '.join(uses)}")
        self.play(FadeIn(VGroup(share_head, shares, source)), run_time=pace)
        self.show(share_head, shares, source)
        self.wait(3 * pace)
        yield "scale"


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    LatentMoE.params = or_exit(resolve_params)
