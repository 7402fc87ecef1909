# manim render scenes/attention.py                   (1080p60; -ql for a quick 480p15 preview)
# TOY_LAYER=13 TOY_ROW=18 TOY_PACE=1.5 TOY_THEME=light manim render -ql scenes/attention.py
"""Attention: what the 3 attention layers of the 15 do, from a trace of the real model.

Six beats, every number read from the trace (or, for the last, from toy_model.published):
1. heads   grouped-query attention as the model has it: 4 query heads share 2 key/value heads (the trace's
           model_config), a line from each query head to the key/value head it reads;
2. maps    each head's real softmax weights over the prompt and answer, a causal heatmap per head (one image per
           head, nearest-neighbour pixels);
3. row     one token's row picked out in every head, with the tokens it weighs most (text, emoji drawn);
4. order   no positional encoding: the same token at two positions enters layer 0 with identical vectors
           (cosine 1) and the attention layer with different ones, because the Mamba-2 layers below carry
           the order (the trace's residual vectors, group resid_detail, compared at render time);
5. cost    why only a few layers attend: a head can read one far token exactly (the sharpest such look in the
           trace), and pays with a key/value cache that grows with every token while the Mamba-2 state stays
           fixed (the trace's cache group, step by step, and the formula toy_model.published.kv_bytes_per_token);
6. scale   the same formula at Nemotron 3 Nano's published sizes.

The bundled model does not answer recall prompts (a magic word, a code, a locker number stated earlier): it gives
the same answer whatever the prompt stated, so no recall example is shown; the scene says so in one line.

Parameters (environment variables override the [attention] section of scenes/manim.cfg):
    TOY_TRACE   a trace .npz with the resid_detail vectors of layer 0 and an attention layer, and the cache
                group (default: traces/attention.npz, the default prompt recorded with
                --detail resid:0 --detail resid:3 --detail resid:8 --detail resid:13)
    TOY_LAYER   auto (the first attention layer) or an attention layer of the trace: 3, 8 or 13
    TOY_ROW     auto (the token whose sharpest look back is strongest in that layer) or a token number
    TOY_PACE    seconds per animation step, up to 5 (default 1.0; at least 2 frames: 0.14 at 15 fps)
    TOY_THEME   dark | light
Bad values or a bad trace stop the render before anything is drawn, with one line on stderr. From a notebook:
Attention(params=AttnParams(...)) reads nothing from the environment.

Token text shows emoji as OpenMoji drawings (https://openmoji.org, CC BY-SA 4.0), credited on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UL,
    UP,
    UR,
    FadeIn,
    FadeOut,
    Group,
    ManimColor,
    Rectangle,
    SurroundingRectangle,
    UpdateFromAlphaFunc,
    VGroup,
    config,
    linear,
)

from toy_model.kinds import BY_CHAR
from toy_model.published import NANO, SOURCES, generation_memory, kv_bytes_per_token
from toy_model.trace_file import Trace
from toy_model.viz.attention_view import AttentionView, kv_head_of
from toy_model.viz.emoji import EMOJI_CREDIT, has_emoji, token_label
from toy_model.viz.heads import GQADiagram, KeyList, weight_colorbar, weight_rgba
from toy_model.viz.matrix import ColorBar, HeatColors, Heatmap, ImageCamera, signed_rgba
from toy_model.viz.paragraph import paragraph, stack, text_width
from toy_model.viz.params import ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.scene import KitScene
from toy_model.viz.slides import beat
from toy_model.viz.strips import KindKey, PatternStrip
from toy_model.viz.subtitles import say
from toy_model.viz.text import label, shorten, show_spaces
from toy_model.viz.theme import Theme

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "attention.npz"  # without an [attention] trace
KEYS = {"trace": "TOY_TRACE", "layer": "TOY_LAYER", "row": "TOY_ROW", "pace": "TOY_PACE", "theme": "TOY_THEME"}
RECORD = "record one with python -m toy_model trace --detail resid:0 --detail resid:3 --out my.npz"
SHORTEST_STEP = 1 / 2  # of the pace: the scene's shortest animation (see Attention.step)
BEATS = ("heads", "maps", "row", "order", "cost", "scale")


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in scene units (the frame is 14.2 x 8 around the origin)."""

    left: float = -6.75  # text's left edge
    right: float = 6.75
    title_y: float = 3.62
    key_y: float = 3.1
    heading_y: float = 2.6
    map_size: float = 2.85
    map_gap: float = 0.5
    map_top: float = 1.75
    key_rows: int = 3  # keys listed per head for the picked row
    strip_width: float = 5.2  # a residual vector's 128 numbers
    strip_height: float = 0.3
    credit_y: float = -3.82


LAYOUT = Layout()


@dataclass(frozen=True)
class AttnParams:
    trace: Trace
    trace_path: Path
    layer: int
    row: int
    pace: float
    theme: Theme


# ------------------------------------------------------------------------------------------------
# parameters


def trace_problem(trace: Trace) -> str | None:
    """Why this scene cannot show `trace`, in one line, or None."""
    view = AttentionView(trace)
    if not view.attention_layers:
        return f"the trace's layer pattern {trace.pattern!r} has no attention layer (*), which this scene shows"
    cfg = trace.meta.get("model_config", {})
    n_kv = cfg.get("num_key_value_heads")
    if not isinstance(n_kv, int) or n_kv < 1 or view.n_q % n_kv or not isinstance(cfg.get("head_dim"), int):
        return ("the trace's model_config must give num_key_value_heads (dividing the trace's "
                f"{view.n_q} query heads) and head_dim")
    if not trace.has("cache"):
        return f"this trace has no 'cache' arrays (the memory kept while generating); {RECORD}"
    recorded = view.resid_layers()
    if 0 not in recorded or not set(recorded) & set(view.attention_layers):
        have = ", ".join(map(str, recorded)) or "none"
        return (f"this trace holds the residual vectors entering layers: {have}; the scene needs layer 0 and an "
                f"attention layer ({', '.join(map(str, view.attention_layers))}); {RECORD}")
    if view.featured_pair() is None:
        return "no token appears twice in this trace, so it cannot show one token at two positions"
    return None


def parse_layer(settings: Settings, trace: Trace) -> int:
    text, src = settings.get("layer", "auto")
    layers = AttentionView(trace).attention_layers
    names = ", ".join(map(str, layers))
    if text.lower() == "auto":
        return layers[0]
    try:
        layer = int(text)
    except ValueError:
        raise ParamError(f"{src}={text!r}: the layer must be auto or one of the trace's attention layers: {names}") \
            from None
    if not 0 <= layer < trace.n_layers:
        raise ParamError(f"{src}={text!r}: the trace has layers 0-{trace.n_layers - 1}; its attention layers are "
                         f"{names}")
    if layer not in layers:
        latent = trace.meta.get("model_config", {}).get("moe_latent_size") is not None
        title = BY_CHAR[trace.pattern[layer]].display_title(latent)
        raise ParamError(f"{src}={text!r}: layer {layer} is a {title} layer; the attention layers are {names}")
    return layer


def parse_row(settings: Settings, trace: Trace, layer: int) -> int:
    text, src = settings.get("row", "auto")
    T = trace.n_tokens
    if text.lower() == "auto":
        return AttentionView(trace).sharpest_row(layer)
    try:
        row = int(text)
    except ValueError:
        raise ParamError(f"{src}={text!r}: the row must be auto or a token number, 0-{T - 1}") from None
    if not 0 <= row < T:
        raise ParamError(f"{src}={text!r}: token {row} is outside the trace, which has {T} tokens (0-{T - 1})")
    return row


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> AttnParams:
    """AttnParams from the environment over manim.cfg [attention]; ParamError names a bad value in one line.
    frame_rate (default: Manim's, as configured when called) sets the shortest pace."""
    settings = Settings("attention", env, cfg_path, keys=KEYS)
    theme = settings.theme()
    pace = settings.pace(config.frame_rate if frame_rate is None else frame_rate, SHORTEST_STEP, fallback="1.0")
    trace, path = settings.trace(DEFAULT_TRACE)
    problem = trace_problem(trace)
    if problem:
        raise ParamError(f"{settings.get('trace', str(DEFAULT_TRACE))[1]}: {problem}")
    layer = parse_layer(settings, trace)
    return AttnParams(trace, path, layer, parse_row(settings, trace, layer), pace, theme)


# ------------------------------------------------------------------------------------------------
# text with token text in it


def quoted(trace: Trace, t: int, limit: int = 10) -> str:
    """Token t as the scene quotes it: spaces made visible, shortened, in ‘ ’."""
    return "‘" + shorten(show_spaces(trace.display_text(t)), limit) + "’"


def fitted(prefix: str, trace: Trace, t: int, width: float, font_size: float) -> str:
    """prefix + token t quoted, shortened until it fits `width` at font_size (never scaled down)."""
    for limit in range(12, 1, -1):
        s = prefix + quoted(trace, t, limit)
        if text_width(s, font_size) <= width:
            return s
    return s


def kib(n: float) -> str:
    """Bytes in binary units, as the cache sizes are multiples of powers of two: '512 B', '118.5 KiB', '6 GiB'."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            v = n / size
            return f"{v:,.0f} {unit}" if v >= 1000 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n:,.0f} B"


# ------------------------------------------------------------------------------------------------
# the scene


class Attention(KitScene):
    """The attention layers of a trace (module docstring). `params` and `stop_after` (a beat name: the scene
    ends right after that beat, for tests and stills) may be set on a subclass or passed in."""

    params: AttnParams | None = None
    stop_after: str | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: AttnParams | None = None, stop_after: str | None = None, **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("Attention needs params=AttnParams(...), or render it with manim render "
                             "scenes/attention.py (which reads TOY_* and scenes/manim.cfg)")
        self.stop_after = stop_after if stop_after is not None else type(self).stop_after
        assert self.stop_after in (None, *BEATS), f"stop_after must be one of {BEATS}"
        kwargs.setdefault("camera_class", ImageCamera)  # draws the heatmaps' images (toy_model.viz.matrix)
        super().__init__(*args, **kwargs)

    def construct(self):
        p = self.params
        self.camera.background_color = ManimColor(p.theme.background)
        self.view = AttentionView(p.trace)
        self.credit = label(EMOJI_CREDIT, font_size=18, color=p.theme.muted)
        self.credit.move_to([self.layout.left, self.layout.credit_y, 0], aligned_edge=LEFT)
        notes = self.beat_notes()
        for step in BEATS:
            beat(self, notes[step])
            if step == BEATS[0]:
                self.header()  # on the first slide
            getattr(self, step)()
            self.after_beat(step)
            if self.stop_after == step:
                return
        self.wait(self.params.pace)

    def after_beat(self, beat: str):
        """Called as each beat ends (the tests' hook: they check the frame as it stands)."""

    def beat_notes(self) -> dict[str, str]:
        """Each beat's speaker notes: what it shows, with the numbers on screen (from the same helpers)."""
        p, v, trace = self.params, self.view, self.params.trace
        layers = v.attention_layers
        top = [v.top_keys(p.layer, p.row, h, self.layout.key_rows)[0] for h in range(v.n_q)]
        a, b, at, _, mixers = self.order_facts()
        cos0, cos1 = v.similarity(0, a, b), v.similarity(at, a, b)
        same0, same1 = (np.array_equal(v.residual(i, a), v.residual(i, b)) for i in (0, at))
        look, c, per_token, per_number, max_len = self.cost_facts()
        state = int(c.state_bytes[-1])
        n_mamba = len(trace.layers_of("mamba"))
        looked = (f" (here layer {look.layer}, query head {look.head}: token {look.query} {quoted(trace, look.query)} "
                  f"puts {look.weight:.2f} of its weight on token {look.key} {quoted(trace, look.key)}, {look.back} "
                  f"tokens back)") if look is not None else ""
        rows = self.scale_rows()
        return {
            "heads": f"Attention in {len(layers)} of {trace.n_layers} layers ({', '.join(map(str, layers))}), layer "
                     f"{p.layer} framed in the strip at the top. {self.gqa_heading()}. {' '.join(self.gqa_side())} "
                     f"From the trace's model config: {v.head_dim} numbers per head, model width {v.d_model}; the "
                     f"score qᵢ · kⱼ / √{v.head_dim}, softmaxed into weights that add up to 1.",
            "maps": f"Layer {p.layer}: where each token looks, one heatmap per query head ({v.n_q}), the real weights "
                    f"over the {trace.n_tokens} tokens. A row is one token looking back (its query), a column a token "
                    f"it can see (its key); each row adds up to 1, the empty triangle is the later tokens, hidden.",
            "row": f"Row {p.row}, token {quoted(trace, p.row, 14)}, picked out in every head with the "
                   f"{self.layout.key_rows} keys it weighs most. The largest, framed in each map: "
                   + "; ".join(f"head {h}, token {k} {quoted(trace, k)} ({w:.2f})" for h, (k, w) in enumerate(top))
                   + ".",
            "order": f"No positional encoding: the score qᵢ · kⱼ / √{v.head_dim} holds no position, only the two "
                     f"vectors. {quoted(trace, a)} is token {a} and token {b}: entering layer 0 (the embedding) cos "
                     f"{cos0:.2f}{', identical' if same0 else ''}; entering attention layer {at}, after Mamba-2 layers "
                     f"{mixers}, cos {cos1:.2f}{', identical' if same1 else ''}. A Mamba-2 layer carries a state from "
                     f"token to token: that difference is all the order attention gets.",
            "cost": f"Why only {len(layers)} of {trace.n_layers} layers attend: a head can read any one earlier token "
                    f"exactly{looked}, and pays with a key/value cache of {per_token:,} bytes per token "
                    f"({len(layers)} layers × 2 × {v.n_kv} key/value heads × {v.head_dim} numbers × {per_number:g} "
                    f"bytes): after the trace's {int(c.tokens[-1])} tokens it holds {kib(float(c.kv_bytes[-1]))}, "
                    f"while the {n_mamba} Mamba-2 layers' state stays {kib(float(state))} however long the text; the "
                    f"cache catches up at {-(-state // per_token)} tokens"
                    + (f" and reaches {kib(per_token * max_len)} at the {max_len}-token limit." if max_len else "."),
            "scale": f"{rows[0]} {'; '.join(rows[1:5])} (sizes: {SOURCES[NANO.source]}).",
        }

    # ---- helpers ---------------------------------------------------------------------------------

    def step(self, *animations, n: float = 1.0):
        """Play animations over n paces (n >= SHORTEST_STEP)."""
        assert n >= SHORTEST_STEP
        self.play(*animations, run_time=n * self.params.pace)

    def hold(self, n: float = 3.0):
        self.wait(n * self.params.pace)

    def show(self, *mobjects, n: float = 1.0):
        """Fade mobjects in (and the emoji credit with the first emoji)."""
        new = list(mobjects)
        if any(has_emoji(m) for m in mobjects) and self.credit not in self.mobjects:
            new.append(self.credit)
        self.step(*[FadeIn(m) for m in new], n=n)

    def clear_beat(self):
        """Fade out everything but the header (and the credit)."""
        keep = {id(self.top), id(self.credit)}
        gone = [m for m in self.mobjects if id(m) not in keep]
        if gone:
            self.step(*[FadeOut(m) for m in gone], n=SHORTEST_STEP)

    def heading(self, text: str) -> VGroup:
        th, lay = self.params.theme, self.layout
        return paragraph(text, th, width=lay.right - lay.left, font_size=26).shift(
            [lay.left, lay.heading_y, 0])

    # ---- header: the stack, the layer shown ------------------------------------------------------

    def header(self):
        th, lay, trace = self.params.theme, self.layout, self.params.trace
        latent = trace.meta.get("model_config", {}).get("moe_latent_size") is not None
        n_attn = len(self.view.attention_layers)
        title_text = f"Attention: {n_attn} of {trace.n_layers} layers"
        title = label(title_text, font_size=30, color=th.text, weight="BOLD")
        title.move_to([lay.left, lay.title_y, 0], aligned_edge=LEFT)
        strip = PatternStrip(th, trace.pattern, cell=0.34, height=0.26)
        strip.move_to([lay.right, lay.title_y, 0], aligned_edge=RIGHT)
        self.layer_box = SurroundingRectangle(strip.cells[self.params.layer], color=th.text, buff=0.05,
                                              stroke_width=3)
        tag_text = f"layer {self.params.layer}"
        tag = label(tag_text, font_size=18, color=th.text)
        tag.next_to(strip, LEFT, buff=0.25)
        key = KindKey(th, chars="".join(c for c in "ME*-" if c in trace.pattern), latent=latent)
        key.move_to([lay.right, lay.key_y, 0], aligned_edge=RIGHT)
        self.top = VGroup(title, strip, self.layer_box, tag, key)
        say(self, f"{title_text} · {tag_text}")
        self.show(self.top, n=1)

    # ---- 1. grouped-query attention --------------------------------------------------------------

    def gqa_heading(self) -> str:
        v = self.view
        return f"{v.n_q} query heads share {v.n_kv} key/value heads (grouped-query attention)"

    def gqa_side(self) -> list[str]:
        """The two sentences beside the diagram: which query heads read which key/value head, and the memory."""
        v = self.view
        kv_of = kv_head_of(v.n_q, v.n_kv)
        share = v.n_q // v.n_kv
        readers = "; ".join(
            f"query heads {' and '.join(str(h) for h in range(v.n_q) if kv_of[h] == g)} read key/value head {g}"
            for g in range(v.n_kv))
        half = "half" if share == 2 else f"1/{share} of"
        return [f"{readers[0].upper()}{readers[1:]}.",
                f"Generation keeps every token's keys and values: {v.n_kv} heads' worth instead of {v.n_q}, "
                f"{half} the memory."]

    def heads(self):
        th, lay, v = self.params.theme, self.layout, self.view
        kv_of = kv_head_of(v.n_q, v.n_kv)
        full = lay.right - lay.left
        heading = self.gqa_heading()
        head = self.heading(heading)
        intro_text = ("Each token makes a query for each query head (what it looks for), and a key (what it offers) "
                      "and a value (what it passes on) for each key/value head.")
        intro = stack([paragraph(intro_text, th, width=full)], x=lay.left, top=2.25)
        diagram = GQADiagram(th, kv_of, drop=1.3)
        diagram.move_to([lay.left + diagram.width / 2 + 0.2, intro.get_bottom()[1] - 0.35 - diagram.height / 2, 0])
        right = diagram.get_right()[0] + 0.6
        side_text = self.gqa_side()
        side = stack([paragraph(text, th, width=lay.right - right) for text in side_text],
                     x=right, top=diagram.get_top()[1], gap=0.3)
        notes_text = [
            f"The score of token i's query against token j's key: qᵢ · kⱼ / √{v.head_dim}, a dot product scaled by "
            "the head size; a softmax turns a token's scores into weights that add up to 1.",
            f"Sizes from the trace's model config: {v.n_q} query heads, {v.n_kv} key/value heads, {v.head_dim} "
            f"numbers per head, model width {v.d_model}.",
        ]
        notes = stack([
            paragraph(notes_text[0], th, width=full),
            paragraph(notes_text[1], th, width=full, font_size=20, color=th.muted),
        ], x=lay.left, top=min(diagram.get_bottom()[1], side.get_bottom()[1]) - 0.4, gap=0.3)
        say(self, f"{heading} · {intro_text}")
        self.show(head, intro)
        self.show(diagram.queries, diagram.kvs)
        say(self, " ".join(side_text))
        self.step(*[FadeIn(line) for line in diagram.links], FadeIn(side), n=1)
        self.show(notes)
        say(self, " · ".join(notes_text))  # once faded in: the lines beside the diagram keep the fade
        self.hold(3)
        self.gqa, self.gqa_text = diagram, VGroup(intro, side, notes)

    # ---- 2. the heatmaps -------------------------------------------------------------------------

    def maps(self):
        th, lay, v, p = self.params.theme, self.layout, self.view, self.params
        self.clear_beat()
        T = p.trace.n_tokens
        kv_of = kv_head_of(v.n_q, v.n_kv)
        self.maps_heading = f"Layer {p.layer}: where each token looks, per head (real weights, {T} tokens)"
        head = self.heading(self.maps_heading)
        size, gap = lay.map_size, lay.map_gap
        x0 = -(v.n_q * size + (v.n_q - 1) * gap) / 2 + size / 2
        self.heatmaps = Group()
        titles = VGroup()
        for h in range(v.n_q):
            hm = Heatmap(weight_rgba(v.weights(p.layer, h), th), width=size, height=size, theme=th, frame=False)
            hm.move_to([x0 + h * (size + gap), lay.map_top - size / 2, 0])
            hm.add(hm.lower_triangle_outline(th.muted, stroke_width=1.5))
            self.heatmaps.add(hm)
            title = VGroup(label(f"query head {h}", font_size=20, color=th.text),
                           label(f"reads key/value {kv_of[h]}", font_size=18, color=th.muted))
            title.arrange(DOWN, buff=0.06, aligned_edge=LEFT).next_to(hm, UP, buff=0.1, aligned_edge=LEFT)
            titles.add(title)
        below = self.heatmaps.get_bottom()[1]
        bar = weight_colorbar(th, width=3.2)
        bar.move_to([lay.right, below - 0.3, 0], aligned_edge=UR)
        explain_text = ("A row: one token looking back (its query). A column: a token it can see (its key); token 0 is "
                        "at the top left. Each row's weights add up to 1; the empty triangle is the later tokens, "
                        "hidden from it.")
        explain = paragraph(explain_text, th, width=bar.get_left()[0] - lay.left - 0.4, font_size=20)
        stack([explain], x=lay.left, top=below - 0.3)
        self.map_titles, self.map_explain, self.map_bar = titles, explain, bar
        say(self, self.maps_heading)
        self.show(head, titles, self.heatmaps)
        say(self, explain_text)
        self.show(explain, bar)
        self.hold(2)

    # ---- 3. one row ------------------------------------------------------------------------------

    def row(self):
        th, lay, v, p = self.params.theme, self.layout, self.view, self.params
        r = p.row
        # a frame sweeps down to the row in every head, then the keys it weighs most are listed
        boxes = VGroup(*[hm.cell_box((0, 1), (0, 1), th.text, stroke_width=2.5) for hm in self.heatmaps])
        targets = [hm.cell_box((r, r + 1), (0, r + 1), th.text, stroke_width=2.5) for hm in self.heatmaps]
        top = [v.top_keys(p.layer, r, h, lay.key_rows) for h in range(v.n_q)]
        picks = VGroup(*[hm.cell_box((r, r + 1), (k, k + 1), th.text, stroke_width=3.5)
                         for hm, keys in zip(self.heatmaps, top, strict=True) for k, _ in keys[:1]])
        caption_text = (f"Row {r}, token {quoted(p.trace, r, 14)}: where each head looks most (the largest also "
                        "framed in its map)")
        caption = paragraph(caption_text, th, width=self.map_bar.get_left()[0] - lay.left - 0.3)
        stack([caption], x=lay.left, top=self.heatmaps.get_bottom()[1] - 0.35)
        lists = VGroup()
        for hm, keys in zip(self.heatmaps, top, strict=True):
            rows = [(fitted(f"{k} ", p.trace, k, 1.5, 20), w) for k, w in keys]
            lists.add(KeyList(th, rows, width=lay.map_size, text_width=1.5).move_to(
                [hm.get_left()[0], caption.get_bottom()[1] - 0.3, 0], aligned_edge=UL))
        say(self, self.maps_heading)  # the explanation goes: the heading is what is left to read
        self.step(FadeOut(self.map_explain), FadeIn(boxes), n=SHORTEST_STEP)
        self.play(*[box.animate.become(t) for box, t in zip(boxes, targets, strict=True)],
                  run_time=1.5 * p.pace)
        say(self, caption_text)
        self.show(caption, lists, picks)
        self.row_boxes, self.key_lists, self.picks = boxes, lists, picks
        self.hold(3)

    # ---- 4. no positional encoding ---------------------------------------------------------------

    def order_facts(self) -> tuple[int, int, int, dict[str, list[str]], str]:
        """The order beat's pair: the same token at positions a < b; the attention layer `at` whose input is
        shown (the chosen one if the trace records it); the layers below it by kind; its Mamba-2 layers, in words."""
        v, p = self.view, self.params
        a, b = v.featured_pair()
        attn_recorded = [i for i in v.resid_layers() if i in v.attention_layers]
        at = p.layer if p.layer in attn_recorded else attn_recorded[0]
        below: dict[str, list[str]] = {}
        for i in range(at):
            below.setdefault(p.trace.layer_kind(i), []).append(str(i))
        mixers = " and ".join(", ".join(below.get("mamba", [])).rsplit(", ", 1)) or "none"
        return a, b, at, below, mixers

    def order(self):
        th, lay, v, p = self.params.theme, self.layout, self.view, self.params
        self.clear_beat()
        a, b, at, below, mixers = self.order_facts()
        heading = "No positional encoding: where does attention get the order from?"
        head = self.heading(heading)
        intro_text = [f"The score qᵢ · kⱼ / √{v.head_dim} holds no position i or j, only the two vectors.",
                      f"The same token twice: {quoted(p.trace, a)} is token {a} and token {b}. Its vectors:"]
        intro = stack([paragraph(text, th, width=13.4) for text in intro_text], x=lay.left, top=2.2, gap=0.12)
        colors = HeatColors.for_theme(th)
        strip_x = lay.left + 1.5

        def pair(layer: int, title: str, top: float) -> tuple[VGroup, Group, VGroup]:
            va, vb = v.residual(layer, a), v.residual(layer, b)
            vmax = float(max(np.abs(va).max(), np.abs(vb).max())) or 1.0
            caption = label(title, font_size=20, color=th.muted)
            caption.move_to([lay.left, top, 0], aligned_edge=UL)
            strips = Group()
            for k, (t, vec) in enumerate(((a, va), (b, vb))):
                hm = Heatmap(signed_rgba(vec[None, :], vmax, colors), width=lay.strip_width,
                             height=lay.strip_height, theme=th)
                hm.move_to([strip_x, caption.get_bottom()[1] - 0.3 - k * 0.45, 0], aligned_edge=LEFT)
                name = label(f"token {t}", font_size=20, color=th.text).next_to(hm, LEFT, buff=0.2)
                strips.add(Group(name, hm))
            same = np.array_equal(va, vb)
            note = VGroup(label(f"cos {v.similarity(layer, a, b):.2f}", font_size=26, color=th.text, weight="BOLD"))
            if same:
                note.add(label("identical", font_size=20, color=th.text))
            note.arrange(DOWN, buff=0.08, aligned_edge=LEFT).next_to(strips, RIGHT, buff=0.35)
            return caption, strips, note

        title0 = "entering layer 0: the token's embedding, looked up by its id"
        title1 = f"entering layer {at} (attention), after Mamba-2 layers {mixers}"
        cap0, strips0, note0 = pair(0, title0, 1.15)
        cap1, strips1, note1 = pair(at, title1, -0.35)
        d = p.trace.resid_detail_in.shape[-1]
        legend = ColorBar(signed_rgba(np.linspace(-1, 1, 64)[None, :], 1.0, colors),
                          [(0.0, "below 0"), (0.5, "0"), (1.0, "above 0")],
                          f"a cell: one of its {d} numbers", th, width=3.0)
        column = 3.6  # the right column's width
        legend.move_to([lay.right - column / 2, 1.15, 0], aligned_edge=UP)
        cos_note = paragraph("cos: cosine similarity of two vectors; 1 = same direction, 0 = unrelated", th,
                             width=column, font_size=18, color=th.muted)
        stack([cos_note], x=lay.right - column, top=legend.get_bottom()[1] - 0.25)
        others = [pr for pr in v.repeated_pairs() if pr != (a, b)][:2]
        table = VGroup()
        if others:
            table.add(label(f"other repeats, cos at layer {at}:", font_size=18, color=th.muted))
            for i, j in others:
                table.add(token_label(fitted("", p.trace, i, 1.4, 18) + f" {i} and {j}: {v.similarity(at, i, j):.2f}",
                                      font_size=18, color=th.text, halo=th.emoji_halo))
            table.arrange(DOWN, buff=0.1, aligned_edge=LEFT)
            stack([table], x=lay.right - column, top=cos_note.get_bottom()[1] - 0.25)
        moe = " and ".join(", ".join(below.get("moe", [])).rsplit(", ", 1))
        why_text = ((f"The MoE layer{'s' if len(below.get('moe', [])) > 1 else ''} {moe} works on each token alone. "
                     if moe else "")
                    + "A Mamba-2 layer carries a state from token to token, so each token arrives with its past mixed "
                    "in: that difference is all the order attention gets.")
        why = paragraph(why_text, th, width=13.4)
        stack([why], x=lay.left, top=min(strips1.get_bottom()[1], table.get_bottom()[1] if others else 9) - 0.4)
        say(self, f"{heading} · {' '.join(intro_text)}")
        self.show(head, intro)
        self.show(cap0, strips0, legend)  # the heading and intro stay the subtitle: both captions together next
        self.show(note0, cos_note, n=SHORTEST_STEP)
        say(self, f"{title0} · {title1}")
        self.show(cap1, strips1)
        self.show(note1, n=SHORTEST_STEP)
        say(self, why_text)
        self.show(why, table)
        self.order_shown = {"pair": (a, b), "layer": at, "strips": (strips0, strips1), "notes": (note0, note1)}
        self.hold(3)

    # ---- 5. why only a few layers attend ---------------------------------------------------------

    def cost_facts(self):
        """The cost beat's numbers: the sharpest far look (or None), the cache sizes, the key/value bytes per token
        and per number, the model's token limit (or None)."""
        v, trace = self.view, self.params.trace
        n_attn = len(v.attention_layers)
        look = v.sharpest_look(min_back=8) or v.sharpest_look(min_back=1)
        c = v.cache()
        per_token = sum(c.kv_per_token)
        per_number = per_token / kv_bytes_per_token(n_attn, v.n_kv, v.head_dim, 1)  # bytes per number
        return look, c, per_token, per_number, trace.meta["model_config"].get("max_seq_len")

    def cost(self):
        th, lay, v, p = self.params.theme, self.layout, self.view, self.params
        self.clear_beat()
        trace = p.trace
        n_attn, n_mamba = len(v.attention_layers), len(trace.layers_of("mamba"))
        heading = f"Why only {n_attn} of {trace.n_layers} layers attend"
        head = self.heading(heading)
        look, c, per_token, per_number, max_len = self.cost_facts()
        width = 6.8
        texts = ["Attention keeps every earlier token's key and value: a head can read any one token exactly, however "
                 "far back."]
        if look is not None:
            texts.append(f"Here: layer {look.layer}, query head {look.head}, token {look.query} "
                         f"{quoted(trace, look.query)} puts {look.weight:.2f} of its weight on token {look.key} "
                         f"{quoted(trace, look.key)}, {look.back} tokens back.")
        texts.append("A Mamba-2 layer keeps one fixed-size state that each token updates and fades: cheap, but a blur "
                     "of the past.")
        texts.append("This small toy did not learn to recall facts; large hybrids use their few attention layers "
                     "for it.")
        parts = [paragraph(text, th, width=width) for text in texts[:-1]]
        parts.append(paragraph(texts[-1], th, width=width, font_size=20, color=th.muted))
        left = stack(parts, x=lay.left, top=2.15, gap=0.25)

        # right: memory kept while generating, step by step as the trace recorded it
        x0, bar_width = 0.55, 4.4
        chart_title = label("Memory kept while generating", font_size=22, color=th.text, weight="BOLD")
        names = VGroup(label(f"key/value cache, {n_attn} attention layers", font_size=20, color=th.text),
                       label(f"Mamba-2 state, {n_mamba} layers", font_size=20, color=th.text))
        chart_title.move_to([x0, 2.15, 0], aligned_edge=UL)
        names[0].move_to([x0, chart_title.get_bottom()[1] - 0.7, 0], aligned_edge=UL)
        names[1].move_to([x0, names[0].get_bottom()[1] - 0.55, 0], aligned_edge=UL)
        top = float(max(c.kv_bytes.max(), c.state_bytes.max()))
        bars = VGroup(*[Rectangle(width=0.02, height=0.24, stroke_width=0, fill_color=color, fill_opacity=1)
                        for color in (th.attention, th.mamba)])
        for bar, name in zip(bars, names, strict=True):
            bar.move_to([x0, name.get_bottom()[1] - 0.25, 0], aligned_edge=LEFT)

        def grow(s: int) -> VGroup:
            """The bars as they stood after model call s."""
            for k, n in enumerate((c.kv_bytes[s], c.state_bytes[s])):
                bars[k].stretch_to_fit_width(max(bar_width * float(n) / top, 0.02)).align_to([x0, 0, 0], LEFT)
            return bars

        def readings(s: int) -> VGroup:
            """The sizes beside the bars and the token count, after model call s. Text is built once per reading,
            never during an animation: Manim keeps drawing the pieces an animation started with."""
            grow(s)
            values = [label(kib(float(n)), font_size=20, color=th.text).next_to(bar, RIGHT, buff=0.15)
                      for n, bar in zip((c.kv_bytes[s], c.state_bytes[s]), bars, strict=True)]
            tokens = label(f"after {int(c.tokens[s])} tokens of this trace", font_size=20, color=th.muted)
            tokens.move_to([x0, chart_title.get_bottom()[1] - 0.2, 0], aligned_edge=UL)
            return VGroup(*values, tokens)

        first = readings(0)
        formula_text = (f"Per token: {n_attn} layers × 2 (key and value) × {v.n_kv} key/value heads × {v.head_dim} "
                        f"numbers × {per_number:g} bytes = {per_token:,} bytes.")
        growth_text = (f"The state stays {kib(float(c.state_bytes[-1]))} however long the text; the cache catches up "
                       f"at {-(-int(c.state_bytes[-1]) // per_token)} tokens"
                       + (f" and reaches {kib(per_token * max_len)} at the model's {max_len}-token limit."
                          if max_len else "."))
        formula = paragraph(formula_text, th, width=6.2, font_size=20)
        growth = paragraph(growth_text, th, width=6.2, font_size=20)
        stack([formula, growth], x=x0, top=bars[1].get_bottom()[1] - 0.35, gap=0.2)
        say(self, f"{heading} · {texts[0]}")
        self.show(head, *parts[:1])
        self.show(*parts[1:])
        say(self, " ".join(texts[1:]))  # once faded in; they stay the subtitle while the chart beside them goes up
        self.show(chart_title, names, bars, first)  # the prefill: the prompt's tokens at once
        steps = len(c.tokens)
        self.remove(first)
        self.play(UpdateFromAlphaFunc(bars, lambda _, alpha: grow(round(alpha * (steps - 1)))),
                  run_time=2 * p.pace, rate_func=linear)  # one decode step after another, as recorded
        last = readings(steps - 1)
        self.add(last)
        say(self, f"{formula_text} {growth_text}")
        self.show(formula, growth)
        self.hold(3)

        self.cost_shown = {"kv_per_token": per_token, "state": int(c.state_bytes[-1]), "look": look,
                           "bars": bars, "readings": last, "left": left}

    # ---- 6. at scale -----------------------------------------------------------------------------

    def scale_rows(self) -> list[str]:
        """The scale beat's lines: Nano's sizes, its cache and state, and their source."""
        million = 2**20
        nano, nano_all = generation_memory(NANO, million), generation_memory(NANO, million, all_attention=True)
        source = SOURCES[NANO.source]
        if "conf/" in source:  # a path: break it after its folders, where a reader expects it
            source = source.replace("conf/", "conf/\n", 1)
        return [
            f"At scale, {NANO.name}: {NANO.n_attention} of {NANO.n_layers} layers attend, {NANO.n_kv_heads} "
            f"key/value heads of {NANO.head_dim} numbers, 2 bytes a number:",
            f"key/value cache per token: {kib(kv_bytes_per_token(NANO.n_attention, NANO.n_kv_heads, NANO.head_dim))}",
            f"after 2²⁰ (about a million) tokens: {kib(nano['kv'])}",
            f"its {NANO.n_mamba} Mamba-2 layers' state, at any length: {kib(nano['state'])}",
            f"were those {NANO.n_mamba} layers attention too: {kib(nano_all['kv'])} of cache",
            f"Sizes: {source}",
        ]

    def scale(self):
        """The published model's own numbers, through the same formula, where the look-up text was."""
        th, lay = self.params.theme, self.layout
        texts = self.scale_rows()
        rows = [(text, th.text, 22) for text in texts[:-1]] + [(texts[-1], th.muted, 18)]
        width = 6.8
        scale = stack([paragraph(text, th, width=width, font_size=size, color=color) for text, color, size in rows],
                      x=lay.left, top=2.15, gap=0.22)
        self.step(FadeOut(self.cost_shown["left"]), n=SHORTEST_STEP)
        say(self, f"{texts[0]} {' · '.join(texts[1:-1])}")  # the sizes' source is left out, as a credit
        self.show(scale)
        self.scale_shown = scale
        self.hold(4)


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    Attention.params = or_exit(resolve_params)
