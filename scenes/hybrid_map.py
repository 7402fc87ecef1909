# manim render scenes/hybrid_map.py                  (1080p60; -ql for a quick 480p15 preview)
# TOY_PACE=2 TOY_THEME=light manim render -ql scenes/hybrid_map.py
"""HybridMap: the toy model beside NVIDIA's hybrids, as strips of layers drawn from their patterns.

One row per model, top to bottom: the toy model (its config from the trace), Nemotron-H 8B and 56B, Nemotron 3
Nano, Super and Ultra. Each row is a strip with one cell per layer, coloured by kind (M Mamba-2, E MoE,
* attention, drawn taller, - dense MLP), all at one scale, so depth compares by length; above it the model's
layer counts, below it its width, experts and parameters. Where a source gives the pattern string, the strip
is that string cell by cell; where it gives only counts (Ultra), the strip is one segment per kind and the
screen says the order is not published. Every value comes from toy_model.published (MODELS, each with its
source, named on screen by letter) or, for the toy, from the trace's model_config.

Parameters (environment variables override the [hybrid_map] section of scenes/manim.cfg):
    TOY_TRACE   a trace whose model_config is the toy row   (default: traces/default.npz)
    TOY_PACE    seconds per row, up to 5                     (default: 1.0)
    TOY_THEME   dark | light                                 (default: dark)
Bad values stop the render before anything is drawn, with one line on stderr. From a notebook:
HybridMap(params=MapParams(...)) reads nothing from the environment; MapParams.models may be any rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from manim import DOWN, LEFT, RIGHT, UP, FadeOut, ManimColor, VGroup, config, linear

from toy_model.published import MODELS, SOURCES, Published, from_config, kind_counts, pattern_counts
from toy_model.trace_file import Trace
from toy_model.viz.params import ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.scene import Curtain, FastScene
from toy_model.viz.slides import beat
from toy_model.viz.strips import GroupedStrip, KindKey, PatternStrip
from toy_model.viz.subtitles import say
from toy_model.viz.text import label
from toy_model.viz.theme import Theme

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"
KEYS = {"trace": "TOY_TRACE", "pace": "TOY_PACE", "theme": "TOY_THEME"}
SHORTEST_STEP = 1 / 2  # of the pace: the curtain's fade; a row's wipe takes the whole pace

KIND_WORDS = {"M": "Mamba-2", "E": "MoE", "*": "attention", "-": "dense MLP"}  # in the speaker notes

# How the screen names each source of toy_model.published.SOURCES (shortened to fit; the full text is there).
SOURCE_TAGS = {"BRIDGE": "A", "MEGATRON": "B", "NEMOTRON3": "C", "NEMOTRONH": "D", "TOY": "T"}
SOURCE_SHORT = {
    "BRIDGE": "NVIDIA-NeMo/Megatron-Bridge nemotron_h_provider.py",
    "MEGATRON": "Megatron-LM …/NVIDIA-Nemotron-3-*-BF16.sh",
    "NEMOTRON3": "Nemotron 3 white paper, arXiv 2512.20856",
    "NEMOTRONH": "Nemotron-H paper, arXiv 2504.03624",
    "TOY": "the trace's model_config",
}


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in scene units (the frame is 14.2 x 8 around the origin)."""

    left: float = -6.85
    right: float = 6.85
    title_y: float = 3.62
    key_y: float = 3.1
    first_row_y: float = 2.72  # top of the first row
    row_pitch: float = 0.84
    line_gap: float = 0.36  # a row's first line to its second
    name_gap: float = 0.3  # from the widest name (and its source letters) to the strips
    strip_height: float = 0.26
    sources_y: float = -3.88  # bottom of the source lines


LAYOUT = Layout()


@dataclass(frozen=True)
class MapParams:
    models: tuple[Published, ...]  # the rows, top to bottom
    pace: float
    theme: Theme


def check_models(models) -> None:
    """ParamError, in one line, for a row whose pattern disagrees with its published counts, or whose source is
    not named in toy_model.published.SOURCES."""
    if not models:
        raise ParamError("HybridMap needs at least one model to draw")
    for m in models:
        if m.source not in SOURCES or (m.pattern_source or m.source) not in SOURCES:
            raise ParamError(f"{m.name}: its source must be a key of toy_model.published.SOURCES")
        if m.pattern is not None and pattern_counts(m.pattern) != kind_counts(m):
            raise ParamError(f"{m.name}: its pattern has {pattern_counts(m.pattern)} layers by kind, but its "
                             f"published counts are {kind_counts(m)}")
        if m.n_layers <= 0:
            raise ParamError(f"{m.name}: no layers to draw")


def toy_row(trace: Trace, where: str = "the trace") -> Published:
    """The toy model's row from a trace's model_config; a ParamError if it is not a toy_model config."""
    cfg = trace.meta.get("model_config") or {}
    try:
        return from_config(cfg, "toy model (this repository)")
    except (KeyError, TypeError, ValueError) as e:
        raise ParamError(f"{where}: its model_config is not a toy_model config (missing or bad {e})") from None


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> MapParams:
    """MapParams from the environment over manim.cfg [hybrid_map]; ParamError names a bad value."""
    settings = Settings("hybrid_map", env, cfg_path, keys=KEYS)
    theme = settings.theme()
    fps = config.frame_rate if frame_rate is None else frame_rate
    pace = settings.pace(fps, SHORTEST_STEP, fallback="1.0", unit="row")
    trace, _ = settings.trace(DEFAULT_TRACE)
    models = (toy_row(trace, settings.get("trace", str(DEFAULT_TRACE))[1]), *MODELS)
    check_models(models)
    return MapParams(models, pace, theme)


def default_params(theme: str = "dark", pace: float = 1.0) -> MapParams:
    """The shipped rows (the default trace's toy and MODELS), for notebooks and tests."""
    from toy_model.trace_file import load_trace
    from toy_model.viz.theme import THEMES

    return MapParams((toy_row(load_trace(DEFAULT_TRACE)), *MODELS), pace, THEMES[theme])


def counts_text(m: Published) -> str:
    """'88 layers: 40 M, 40 E, 8 *' (kinds in the order M, E, *, -; kinds it lacks left out)."""
    parts = [f"{n} {c}" for c, n in kind_counts(m).items() if n]
    return f"{m.n_layers} layers: " + ", ".join(parts)


def facts_text(m: Published) -> str:
    """Width, experts (or the dense MLP), latent and parameters, in words."""
    parts = [f"width {m.d_model}" if m.d_model else "width not published"]
    if m.n_moe:
        parts.append(f"{m.top_k} of {m.n_experts} experts per token" if m.n_experts else "MoE")
        parts.append(f"latent {m.latent}" if m.latent else "no latent")
    elif m.n_mlp:
        parts.append(f"MLP {m.mlp_width} wide" if m.mlp_width else "dense MLP")
    if m.params_total:
        parts.append(f"{m.params_active} of {m.params_total} active" if m.params_active
                     else f"{m.params_total}, all active")
    return " · ".join(parts)


def source_keys(m: Published) -> list[str]:
    return sorted({m.source, m.pattern_source or m.source}, key=lambda k: SOURCE_TAGS.get(k, k))


class HybridMap(FastScene):
    """The models' layer patterns as strips, one row per model (module docstring). `params` may be set on a
    subclass or passed in; stop_at='rows' ends after the last row is drawn, 'end' at the very end."""

    params: MapParams | None = None
    stop_at: str | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: MapParams | None = None, stop_at: str | None = None, **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("HybridMap needs params=MapParams(...), or render it with manim render "
                             "scenes/hybrid_map.py (which reads TOY_* and scenes/manim.cfg)")
        check_models(self.params.models)
        self.stop_at = stop_at if stop_at is not None else type(self).stop_at
        super().__init__(*args, **kwargs)

    def construct(self):
        p, th = self.params, self.params.theme
        self.camera.background_color = ManimColor(th.background)
        self.build()
        say(self, self.title_words)
        beat(self, "Layer patterns of the toy model and of NVIDIA's hybrids, one strip each, coloured by layer kind; "
                  "the sources are listed at the bottom.")
        self.play(FadeOut(self.curtain), run_time=p.pace / 2)
        self.remove(self.curtain)

        # Rows: each strip wipes in from the left, top to bottom
        for m, cover in zip(p.models, self.covers, strict=True):
            counts = ", ".join(f"{n} {KIND_WORDS[c]}" for c, n in kind_counts(m).items() if n)
            beat(self, f"{m.name}: {m.n_layers} layers ({counts}).")
            say(self, f"{m.name}: {facts_text(m)}; {counts_text(m)}")
            self.play(cover.animate.shift(RIGHT * cover.width), run_time=p.pace, rate_func=linear)
            self.remove(cover)
            self.wait(p.pace / 2)
        if self.stop_at == "rows":
            return

        # Close: what the strips share
        beat(self, "One design at every size: Mamba-2 and MoE (or a dense MLP) alternate, with a few attention layers.")
        self.remove(self.title)
        self.title = self.make_title("One design at every size: Mamba-2 and MoE (or MLP) alternate, "
                                     "a few attention layers")
        say(self, self.title_words)
        self.add(self.title)
        self.wait(3 * p.pace)

    # ---- drawing --------------------------------------------------------------------------------

    def make_title(self, text: str) -> VGroup:
        lay = self.layout
        t = label(text, font_size=26, color=self.params.theme.text, weight="BOLD",
                  max_width=lay.right - lay.left)
        self.title_words = text  # the subtitle while it is the title
        return t.move_to([lay.left, lay.title_y, 0], aligned_edge=LEFT)

    def build(self):
        p, th, lay = self.params, self.params.theme, self.layout
        self.title = self.make_title("Layer patterns: the toy model and NVIDIA's hybrids")
        latent = any(m.latent for m in p.models)
        chars = "".join(c for c in "ME*-" if any(kind_counts(m)[c] for m in p.models))
        self.key = KindKey(th, chars=chars, latent=latent).move_to([lay.left, lay.key_y, 0], aligned_edge=LEFT)
        # strips start right of the widest name and share one cell size: the deepest model fills the room
        self.strip_x = lay.left + max(self.make_head(m).width for m in p.models) + lay.name_gap
        cell = (lay.right - self.strip_x) / max(m.n_layers for m in p.models)
        self.cell = cell
        self.rows, self.covers, self.strips = [], [], []
        for i, m in enumerate(p.models):
            top = lay.first_row_y - i * lay.row_pitch
            row, strip = self.make_row(m, cell, top)
            self.rows.append(row)
            self.strips.append(strip)
            cover = Curtain(th.background, width=lay.right - lay.left + 0.4, height=row.height + 0.1)
            cover.move_to(row).align_to(row, UP).shift(UP * 0.05)
            self.covers.append(cover)
        self.sources = self.make_sources()
        # draw order: the still page, the rows, then the covers that wipe off them (the only moving pieces)
        self.add(self.title, self.key, self.sources, *self.rows, *self.covers)
        self.curtain = Curtain(th.background)
        self.add(self.curtain)

    def make_row(self, m: Published, cell: float, top: float) -> tuple[VGroup, VGroup]:
        """Line 1: the name, its source letters and the strip; line 2: width, experts, parameters, and the
        layer counts at the right; a row without a published order says so on a line of its own."""
        th, lay = self.params.theme, self.layout
        head = self.make_head(m).move_to([lay.left, top, 0], aligned_edge=LEFT + UP)
        line_y = head[0].get_center()[1]
        x0 = self.strip_x
        row = VGroup(head)
        if m.pattern is not None:
            strip = PatternStrip(th, m.pattern, cell=cell, height=lay.strip_height)
            row.add(strip.move_to([x0, line_y, 0], aligned_edge=LEFT))
            spelled = label(m.pattern, font_size=18, color=th.text).next_to(strip, RIGHT, buff=0.3)
            if spelled.get_right()[0] <= lay.right:  # a pattern short enough is spelled out beside its strip
                row.add(spelled)
        else:  # counts only: no order is invented, and the screen says so
            strip = GroupedStrip(th, kind_counts(m), cell=cell, height=lay.strip_height)
            row.add(strip.move_to([x0, line_y, 0], aligned_edge=LEFT))
        facts = label(facts_text(m), font_size=18, color=th.muted)
        counts = label(counts_text(m), font_size=18, color=th.text)
        facts.move_to([lay.left, line_y - lay.line_gap, 0], aligned_edge=LEFT)
        counts.move_to([lay.right, facts.get_center()[1], 0], aligned_edge=RIGHT)
        row.add(facts, counts)
        if m.pattern is None:
            note = label("layer order not published: the strip groups the layers by kind", font_size=18,
                         color=th.muted)
            row.add(note.move_to([x0, line_y - 2 * lay.line_gap, 0], aligned_edge=LEFT))
        return row, strip

    def make_head(self, m: Published) -> VGroup:
        """The model's name and the letters of its sources."""
        th = self.params.theme
        tags = ", ".join(SOURCE_TAGS.get(k, "?") for k in source_keys(m))
        name = label(m.name, font_size=20, color=th.text, weight="BOLD")
        tag = label(f"[{tags}]", font_size=18, color=th.muted)
        return VGroup(name, tag.next_to(name, RIGHT, buff=0.15))

    def make_sources(self) -> VGroup:
        th, lay = self.params.theme, self.layout
        used = []
        for m in self.params.models:
            used += [k for k in source_keys(m) if k not in used]
        used.sort(key=lambda k: SOURCE_TAGS.get(k, k))
        items = [f"[{SOURCE_TAGS.get(k, '?')}] {SOURCE_SHORT.get(k, SOURCES[k])}" for k in used]
        width = lay.right - lay.left
        lines = ["width: residual stream size · latent: the width routed experts work in · "
                 "active: parameters one token uses"]
        line = ""
        for it in items:  # greedy wrap, measured
            longer = f"{line}   {it}" if line else it
            if line and label(longer, font_size=18).width > width:
                lines.append(line)
                line = it
            else:
                line = longer
        lines.append(line)
        texts = VGroup(*[label(s, font_size=18, color=th.muted, max_width=width) for s in lines])
        texts.arrange(DOWN, buff=0.1, aligned_edge=LEFT)
        return texts.move_to([lay.left, lay.sources_y, 0], aligned_edge=LEFT + DOWN)


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    HybridMap.params = or_exit(resolve_params)
