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
Bad values or a bad trace stop the render before anything is drawn, with one line on stderr.

The [CLI] section of scenes/manim.cfg (disable_caching: several times faster here) applies wherever
Manim runs from; flags given on the command line win over it.

Token text shows emoji as OpenMoji drawings (https://openmoji.org, by HfG Schwäbisch Gmünd, licensed
CC BY-SA 4.0); the scene credits OpenMoji in the bottom-left corner from the first emoji on.
"""

from __future__ import annotations

import ast
import configparser
import math
import os
import re
import sys
from collections.abc import Sequence
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
    Scene,
    Succession,
    UpdateFromFunc,
    VGroup,
    Wait,
    config,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `diagram` when imported from elsewhere
from diagram import (  # noqa: E402
    EMOJI_CREDIT,
    THEMES,
    AttentionStrip,
    Block,
    ExpertGrid,
    LayerChart,
    Marker,
    PredictionList,
    RepeatBrace,
    RepeatPips,
    StateGauge,
    Theme,
    TokenCaption,
    has_emoji,
    label,
    shorten,
    show_spaces,
    text_units,
)

try:
    from toy_model.trace_file import Trace, TraceError, load_trace
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from toy_model.trace_file import Trace, TraceError, load_trace

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "default.npz"  # without a [block_flow] trace
GROUP = "MEM*E"  # the repeated group, bottom to top
TITLES = {"M": "Mamba-2", "E": "Latent MoE", "*": "Attention"}
KINDS = {"M": "mamba", "E": "moe", "*": "attention"}
N_CHIPS = 5  # earlier tokens shown per attention step: the most attended ones
PANEL_X, PANEL_WIDTH = 2.95, 4.0  # the right-hand panel: captions, repeat pips, predictions, legend


# ------------------------------------------------------------------------------------------------
# parameters


class FlowError(ValueError):
    """A parameter or trace the scene cannot use, said in one line."""


@dataclass(frozen=True)
class FlowParams:
    trace: Trace
    trace_path: Path
    tokens: tuple[int, ...]
    pace: float
    theme: Theme


# The scene's shortest animation is a quarter of the pace: in `hop`, the marker goes round from the top of the
# stack to the input in pace/2 + pace/4; the Mamba-2 bars decay and fill in pace/2 each; everything else takes
# the pace or longer. Every animation must last at least one frame, so the pace must be at least 4 frames.
SHORTEST_STEP = 1 / 4  # of the pace
MAX_PACE = 5.0  # seconds per block
CONFIG_KEYS = ("trace", "tokens", "pace", "theme")  # of [block_flow]


def min_pace(frame_rate: float) -> float:
    """The shortest pace (seconds per block) at which every animation of the scene lasts at least one frame."""
    return 1 / (SHORTEST_STEP * frame_rate)


def _shown(path: Path) -> str:
    """path as the user knows it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _first_line(e: BaseException) -> str:
    text = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()  # KeyError's str() adds quotes
    return text.splitlines()[0] if text else type(e).__name__


def _read_config(cfg_path: Path) -> configparser.ConfigParser:
    """cfg_path parsed (empty when there is no such file), or a FlowError naming what is wrong in one line.

    Values are taken literally (no configparser interpolation): a '%' in a value is a '%'.
    """
    parser = configparser.ConfigParser(interpolation=None)
    where = _shown(cfg_path)
    try:
        data = cfg_path.read_bytes()
    except FileNotFoundError:
        return parser  # no file: every default applies
    except OSError as e:
        raise FlowError(f"{where} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is fine
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise FlowError(f"{where} line {line} is not UTF-8 text (byte 0x{data[e.start]:02x}): save the file as "
                        f"UTF-8") from None
    try:
        parser.read_string(text, source=str(cfg_path))
    except configparser.DuplicateSectionError as e:
        raise FlowError(f"{where} line {e.lineno}: section [{e.section}] appears twice; merge the two") from None
    except configparser.DuplicateOptionError as e:
        raise FlowError(f"{where} line {e.lineno}: key {e.option!r} appears twice in section [{e.section}]; keep "
                        f"one") from None
    except configparser.MissingSectionHeaderError as e:
        raise FlowError(f"{where} line {e.lineno}: {e.line.strip()!r} comes before any [section] header") \
            from None
    except configparser.ParsingError as e:
        lineno, line = e.errors[0]
        try:
            line = ast.literal_eval(line)  # configparser keeps repr(line)
        except (ValueError, SyntaxError):
            pass
        raise FlowError(f"{where} line {lineno}: {str(line).strip()!r} is not a 'key = value' line") from None
    except configparser.Error as e:
        raise FlowError(f"{where} is not a valid config file ({_first_line(e)})") from None
    return parser


def _defaults(cfg_path: Path) -> dict[str, str]:
    """The [block_flow] section of cfg_path (empty without the file or the section)."""
    parser = _read_config(cfg_path)
    if not parser.has_section("block_flow"):
        return {}
    section = parser["block_flow"]
    unknown = [k for k in section if k not in CONFIG_KEYS and k not in parser.defaults()]
    if unknown:
        raise FlowError(f"{_shown(cfg_path)} [block_flow] has a key {unknown[0]!r} the scene does not know: the "
                        f"keys are {', '.join(CONFIG_KEYS)}")
    return dict(section)


def _on_command_line(key: str, argv: Sequence[str]) -> bool:
    """Whether argv sets Manim's option `key`: --key, --key=..., or another of its flags (-q, --fps)."""
    from manim.cli.render.commands import render

    flags = {f"--{key}"}.union(*(p.opts for p in render.params if p.name == key))
    for arg in argv:
        if arg.split("=")[0] in flags:
            return True
        if arg[:1] == "-" and arg[:2] != "--" and any(f[1] in arg[1:] for f in flags if len(f) == 2):
            return True  # a short flag, maybe with its value or others: -ql, -pqh (too eager is harmless)
    return False


_KIND_WORDS = {bool: "True or False", int: "a whole number", float: "a number"}


def apply_cli_defaults(cfg_path: Path = CONFIG_FILE, argv: Sequence[str] | None = None) -> dict[str, object]:
    """Apply cfg_path's [CLI] section to Manim's config as if Manim had read it, which it does only from
    the working directory (or --config_file): so `manim render scenes/block_flow.py` run from the repo root
    still gets, e.g., disable_caching. Keys set on the command line are left alone. Returns what was set;
    a file or a value Manim cannot use is a FlowError, in one line."""
    argv = sys.argv[1:] if argv is None else argv
    if Path.cwd().resolve() == cfg_path.resolve().parent or _on_command_line("config_file", argv) \
            or any(a.endswith(".cfg") for a in argv):  # Manim has read a config file of the user's
        return {}
    parser = _read_config(cfg_path)
    if not parser.has_section("CLI"):
        return {}
    cli, applied = parser["CLI"], {}
    for key in cli:
        if not hasattr(config, key) or _on_command_line(key, argv):  # Manim ignores unknown keys too
            continue
        raw, kind = cli[key], type(config[key])
        get = {bool: cli.getboolean, int: cli.getint, float: cli.getfloat}.get(kind, cli.get)
        try:
            value = get(key)
        except ValueError:
            raise FlowError(f"{_shown(cfg_path)} [CLI] {key}={raw!r}: Manim needs {_KIND_WORDS[kind]} here") \
                from None
        try:
            config[key] = value
        except Exception as e:  # Manim's own checks: a quality it does not know, a negative size, ...
            raise FlowError(f"{_shown(cfg_path)} [CLI] {key}={raw!r}: Manim refuses it ({_first_line(e)})") \
                from None
        applied[key] = value
    return applied


def parse_tokens(spec: str, trace: Trace, source: str = "TOY_TOKENS") -> tuple[int, ...]:
    """Token positions from 'auto', 'all', 'prompt', 'generated', 'N', 'N-M' or a comma list of those."""
    T, P = trace.n_tokens, trace.n_prompt_tokens
    named = {
        "all": range(T),
        "prompt": range(P),
        "generated": range(P, T),
        # the last prompt token (whose prediction is the first answer token) and the next 9
        "auto": range(P - 1, min(T, P + 9)) if T > P else range(max(0, T - 10), T),
    }
    out: list[int] = []
    for item in (s.strip() for s in spec.split(",")):
        if item.lower() in named:
            out += list(named[item.lower()])
            continue
        try:
            a, _, b = item.partition("-")
            lo, hi = int(a), int(b) if b else int(a)
        except ValueError:
            raise FlowError(f"{source}={spec!r}: {item!r} is not a token number, a range like 0-7, or one of "
                            f"auto, all, prompt, generated") from None
        if lo > hi:
            raise FlowError(f"{source}={spec!r}: range {item!r} runs backwards")
        if lo < 0 or hi >= T:
            raise FlowError(f"{source}={spec!r}: token {hi if hi >= T else lo} is outside the trace, which "
                            f"has {T} tokens (0-{T - 1})")
        out += list(range(lo, hi + 1))
    if not out:
        raise FlowError(f"{source}={spec!r} selects no tokens (the trace has {T}, {P} of them prompt)")
    return tuple(dict.fromkeys(out))  # keep order, drop repeats


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> FlowParams:
    """FlowParams from the environment over manim.cfg [block_flow] defaults; FlowError names a bad value.
    frame_rate (default: Manim's, as configured when called) sets the shortest pace, see min_pace."""
    env = os.environ if env is None else env
    fps = float(config.frame_rate if frame_rate is None else frame_rate)
    if not fps > 0:
        raise FlowError(f"the frame rate is {fps:g}: it must be a positive number of frames per second")
    defaults = _defaults(cfg_path)

    def get(name: str, key: str, fallback: str) -> tuple[str, str]:
        if env.get(name, "").strip():
            return env[name].strip(), name
        value, src = defaults.get(key, fallback).strip(), f"{_shown(cfg_path)} [block_flow] {key}"
        if key != "trace" and re.search(r"\s[#;]", value):  # a path may hold '#'; nothing else does
            raise FlowError(f"{src}={value!r}: a comment must go on a line of its own in a config file")
        return value, src

    theme_name, src = get("TOY_THEME", "theme", "dark")
    if theme_name.lower() not in THEMES:
        raise FlowError(f"{src}={theme_name!r}: the theme must be 'dark' or 'light'")

    pace_s, src = get("TOY_PACE", "pace", "0.3")
    try:
        pace = float(pace_s)
    except ValueError:
        raise FlowError(f"{src}={pace_s!r}: the pace must be a number of seconds per block, e.g. 0.3") \
            from None
    lowest = math.ceil(min_pace(fps) * 100 - 1e-6) / 100  # shown rounded up, so that it is itself accepted
    if not pace <= MAX_PACE:  # also rejects nan
        raise FlowError(f"{src}={pace_s!r}: at {fps:g} fps the pace must be between {lowest:.2f} and "
                        f"{MAX_PACE:g} seconds per block")
    if pace * SHORTEST_STEP * fps < 1 - 1e-9:
        raise FlowError(f"{src}={pace_s!r}: at {fps:g} fps the pace must be at least {lowest:.2f} s per block (its "
                        f"shortest step, a quarter of the pace, must last one frame)")

    trace_s, src = get("TOY_TRACE", "trace", str(DEFAULT_TRACE))
    path = Path(trace_s).expanduser()
    if not path.is_absolute() and src != "TOY_TRACE":
        path = (cfg_path.parent / path).resolve()  # manim.cfg paths are relative to the file itself
    try:
        trace = load_trace(path)
    except TraceError as e:
        raise FlowError(f"{src}: {e}") from None
    n_rep = len(trace.pattern) // len(GROUP)
    if n_rep < 1 or trace.pattern != GROUP * n_rep:
        raise FlowError(f"{src}: the trace's layer pattern {trace.pattern!r} is not the group {GROUP!r} "
                        f"repeated, which this scene draws")

    tokens_s, src = get("TOY_TOKENS", "tokens", "auto")
    tokens = parse_tokens(tokens_s, trace, src)
    return FlowParams(trace, path, tokens, pace, THEMES[theme_name.lower()])


def _or_exit(fn, *args):
    """fn(*args) for the manim CLI: a FlowError prints one line and exits 2 instead of a traceback."""
    try:
        return fn(*args)
    except FlowError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _params_or_exit() -> FlowParams:
    return _or_exit(resolve_params)


def chip_text(s: str, limit: int = 6) -> str:
    """A token shortened to fit an attention chip (a leading space dropped: the chip shows the boundary)."""
    return shorten(s.strip(" ") or show_spaces(s), limit)


# Manim imports this module before it sets up a scene, so the defaults take effect for the render.
_or_exit(apply_cli_defaults)


# ------------------------------------------------------------------------------------------------
# the scene


class BlockFlow(Scene):
    """A trace's tokens flowing up the hybrid stack. `params` / `stop_at` may be set on a subclass or
    passed in; stop_at=(n, layer) ends the scene once the n-th selected token reaches that layer."""

    params: FlowParams | None = None
    stop_at: tuple[int, int] | None = None

    def __init__(self, *args, params: FlowParams | None = None, stop_at: tuple[int, int] | None = None,
                 **kwargs):
        # Parameters are checked before Manim sets anything up, so a bad one renders nothing.
        self.params = params or type(self).params or _params_or_exit()
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
        th, trace = self.params.theme, self.params.trace
        self.n_repeats = len(trace.pattern) // len(GROUP)
        self.intensity = trace.update_intensity()  # (L, T) in [0, 1]: marker size and brightness
        self.state_level = trace.state_level()  # (Lm, T, H) in [0, 1]: Mamba-2 bar heights
        cfg = trace.meta.get("model_config", {})
        self.blocks = VGroup()
        for j, c in enumerate(GROUP):
            layers = [r * len(GROUP) + j for r in range(self.n_repeats)]
            self.blocks.add(Block(TITLES[c], KINDS[c], th, width=6.9, height=1.06, label_width=2.3,
                                  layers=layers, lane_inset=0.42))
        self.blocks.arrange(UP, buff=0.2).move_to([-2.15, -0.05, 0])

        # one detail per block, in its inner area
        self.details = []
        for block, c in zip(self.blocks, GROUP, strict=True):
            if c == "M":
                d = StateGauge(th, n_heads=trace.mamba_state_norm.shape[2], height=0.72)
            elif c == "E":
                d = ExpertGrid(th, n_experts=trace.moe_scores.shape[2], rows=2, cell=0.3, gap=0.07)
            else:
                d = AttentionStrip(th, [], [])
            d.move_to(block.inner_center)
            self.details.append(d)
        self.braces = VGroup(RepeatBrace(self.blocks, th, count=self.n_repeats, direction=LEFT),
                             RepeatBrace(self.blocks, th, count=self.n_repeats, direction=RIGHT))

        lane_x = self.blocks[0].lane_point[0]
        self.input_point = np.array([lane_x, self.blocks.get_bottom()[1] - 0.42, 0])
        self.output_point = np.array([lane_x, self.blocks.get_top()[1] + 0.42, 0])
        lane = Line(self.input_point + DOWN * 0.1, self.output_point + UP * 0.1, stroke_color=th.muted,
                    stroke_width=2, stroke_opacity=0.6)
        inp = label("input: token embedding", font_size=20, color=th.muted)
        inp.next_to(self.input_point, RIGHT, buff=0.4)
        out = label("output: final norm → LM head → next token", font_size=20, color=th.muted)
        out.next_to(self.output_point, RIGHT, buff=0.4)

        # right panel: title, repeat pips, legend (the caption and predictions come per token)
        x0 = PANEL_X
        title = label(f"toy Nemotron-H · {len(trace.pattern)} real layers", font_size=20,
                      color=th.muted, max_width=PANEL_WIDTH)
        title.move_to([x0, 3.82, 0], aligned_edge=LEFT + UP)
        self.pips = RepeatPips(th, count=self.n_repeats, group_size=len(GROUP), max_width=PANEL_WIDTH)
        self.pips.move_to([x0, 1.58, 0], aligned_edge=LEFT + UP)
        self.chart = LayerChart(th, [trace.layer_kind(i) for i in range(trace.n_layers)], group=len(GROUP),
                                title="update norm, layer by layer", width=PANEL_WIDTH - 0.1, height=0.55)
        self.chart.move_to([x0 + 0.05, 0.72, 0], aligned_edge=LEFT + UP)
        legend = self.legend(th, cfg).move_to([x0, -3.88, 0], aligned_edge=LEFT + DOWN)
        # OpenMoji's licence (CC BY-SA 4.0) asks for credit: shown from the first emoji on, in the free corner
        # left of the lane and below the brace
        self.credit = VGroup(*[label(line.strip(), font_size=13, color=th.muted)
                               for line in EMOJI_CREDIT.split("·")]).arrange(DOWN, buff=0.08, aligned_edge=LEFT)
        self.credit.to_corner(LEFT + DOWN, buff=0.12)

        self.marker = Marker(th, intensity=0.3).move_to(self.input_point).set_opacity(0)
        self.caption = VGroup()
        self.prediction = VGroup()
        self.active_block: Block | None = None
        # Drawing order matters for speed: Manim redraws, every frame, everything after the first moving
        # piece. So the static diagram comes first, then the details that animate, the marker last.
        self.diagram = VGroup(self.blocks, self.braces, lane, inp, out, title, self.pips, legend)
        # fading a background-coloured curtain out is far cheaper than fading every piece in
        self.curtain = Rectangle(width=config.frame_width + 1, height=config.frame_height + 1, stroke_width=0,
                                 fill_color=th.background, fill_opacity=1)
        self.add(self.diagram, *self.details, self.chart, self.marker, self.curtain)

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
        return rows.scale_to_fit_width(PANEL_WIDTH) if rows.width > PANEL_WIDTH else rows

    def credit_emoji(self, mobject):
        """Put the OpenMoji credit on screen (to stay) once mobject draws an emoji."""
        if has_emoji(mobject) and self.credit not in self.mobjects:
            self.bring_to_back(self.credit)  # static: drawn once per play, behind the animated pieces

    # ---- per token -------------------------------------------------------------------------------

    def introduce_token(self, t: int):
        th, trace = self.params.theme, self.params.trace
        kind = "generated" if trace.is_generated(t) else "prompt"
        # the text so far; a partial character shows on the token that completes it, so join token_text
        before = text_units("".join(str(trace.token_text[s]) for s in range(max(0, t - 24), t)))
        context = ("…" if len(before) > 26 or t > 24 else "") + "".join(before[-26:]) if t else "(first token)"
        caption = TokenCaption(th, show_spaces(trace.display_text(t)),
                               header=f"token {t + 1} of {trace.n_tokens} · {kind}", context=context,
                               width=PANEL_WIDTH)
        caption.move_to([PANEL_X, 3.42, 0], aligned_edge=LEFT + UP)
        # Captions switch instantly: fading text in and out costs more render time than it is worth.
        self.remove(self.caption, self.prediction)
        self.bring_to_back(caption)  # behind the animated pieces (see build_diagram)
        self.credit_emoji(caption)
        self.caption, self.prediction = caption, VGroup()
        self.chart.reset()
        self.marker.move_to(self.input_point).set_opacity(0)  # appears as the first hop starts

    def enter_repeat(self, r: int, t: int):
        """Point the blocks and the pips at repeat r's layers, and show each block as that layer stands
        before token t reaches it: Mamba-2 bars at its state after the previous token, experts unlit,
        no attention yet (nothing on screen is left over from another layer)."""
        th, trace = self.params.theme, self.params.trace
        self.pips.set_repeat(r)
        for j, block in enumerate(self.blocks):
            block.set_repeat(r)
            layer, detail = r * len(GROUP) + j, self.details[j]
            kind = trace.layer_kind(layer)
            if kind == "mamba":
                level = self.state_level[trace.layer_slot(layer)]
                prev = level[t - 1] if t > 0 else np.zeros_like(level[t])
                detail.set_ticks(prev).set_levels(prev)
            elif kind == "moe":
                detail.set_levels(np.zeros(len(detail.cells)), 0.0)
            elif kind == "attention":
                empty = AttentionStrip(th, [], []).move_to(block.inner_center)
                self.remove(detail)
                self.details[j] = empty

    def hop(self, t: int, layer: int):
        """Move the marker into the block of `layer` and play that layer's recorded detail for token t.

        The first hop of a pass starts at the input: the marker fades in there (first repeat), or first
        leaves the top of the stack and comes round to the input (later repeats).
        """
        pace = self.params.pace
        j = layer % len(GROUP)
        block = self.blocks[j]
        if self.active_block is not None:
            self.active_block.set_active(False)
        self.active_block = block.set_active(True)
        marker = self.marker
        # Each .animate is built at once: an unbuilt one would pick up the next one's target.
        lead = []  # what the marker does before it moves into the block
        if layer == 0:
            lead = [marker.animate(run_time=pace / 2).set_intensity(0.3).build()]
        elif j == 0:
            lead = [marker.animate(run_time=pace / 2).move_to(self.output_point).set_opacity(0).build(),
                    UpdateFromFunc(marker, lambda m: m.move_to(self.input_point), run_time=pace / 4)]
        v = float(self.intensity[layer, t])
        move = marker.animate(run_time=pace).move_to(block.lane_point).set_intensity(v).build()
        detail = self.detail_animations(j, layer, t, pace) + [self.chart.animate_bar(layer, v, run_time=pace)]
        if lead:
            wait = sum(a.run_time for a in lead)
            self.play(Succession(*lead, move), *[Succession(Wait(run_time=wait), d) for d in detail])
        else:
            self.play(move, *detail)

    def detail_animations(self, j: int, layer: int, t: int, pace: float) -> list:
        """The animations of block j's detail for `layer` at token t, `pace` seconds long (their instant
        setup is done here too)."""
        trace, th = self.params.trace, self.params.theme
        kind = trace.layer_kind(layer)
        detail = self.details[j]
        if kind == "mamba":
            # s_t = exp(A Delta) s_(t-1) + Delta B x: first the old state decays, then the token is written
            level = self.state_level[trace.layer_slot(layer)]
            prev = level[t - 1] if t > 0 else np.zeros_like(level[t])
            decayed = prev * trace.mamba(layer, t)["decay"]
            detail.set_ticks(prev).set_levels(prev)
            return [Succession(detail.animate_levels(decayed, run_time=pace / 2),
                               detail.animate_levels(level[t], run_time=pace / 2))]
        if kind == "moe":
            m = trace.moe(layer, t)
            levels = np.zeros(trace.moe_scores.shape[2])
            levels[m["topk_ids"]] = m["topk_weights"] / max(float(m["topk_weights"].max()), 1e-9)
            return [detail.animate_levels(levels, m["shared_share"], run_time=pace)]
        # attention: the most attended earlier tokens, in order
        w = trace.attention(layer, t).mean(axis=0)  # (t + 1,) averaged over heads
        keys = np.argsort(-w, kind="stable")[:N_CHIPS]
        keys = np.sort(keys[w[keys] >= 0.02 * w.max()])  # drop chips that would show as unlit
        texts = [chip_text(trace.display_text(int(s))) for s in keys]
        current = int(np.flatnonzero(keys == t)[0]) if t in keys else None
        strip = AttentionStrip(th, texts, w[keys] / max(float(w.max()), 1e-9), current=current,
                               chip_width=0.72)
        strip.move_to(self.blocks[j].inner_center)
        self.remove(detail)
        self.add(strip)
        self.bring_to_front(self.chart, self.marker)
        self.credit_emoji(strip)
        self.details[j] = strip
        return [strip.animate_in(run_time=pace)]

    def show_prediction(self, t: int):
        th, trace = self.params.theme, self.params.trace
        preds = trace.predictions(t)
        nxt = int(trace.token_ids[t + 1]) if t + 1 < trace.n_tokens else None
        actual = next((i for i, (pid, _, _) in enumerate(preds) if pid == nxt), None)
        plist = PredictionList(th, [(show_spaces(s), prob) for _, s, prob in preds],
                               title="predicted next token", actual=actual, width=PANEL_WIDTH)
        plist.move_to([PANEL_X, -0.36, 0], aligned_edge=LEFT + UP)
        self.active_block.set_active(False)
        self.active_block = None
        self.play(self.marker.animate.move_to(self.output_point).set_intensity(0.3),
                  run_time=self.params.pace)
        self.bring_to_back(plist)
        self.credit_emoji(plist)
        self.prediction = plist
        self.wait(max(1.0, 3 * self.params.pace))  # time to read the list
