# manim render scenes/emoji_chat.py                  (1080p60; -ql for a quick 480p15 preview)
# TOY_TRACE=my.npz TOY_PACE=0.4 TOY_THEME=light manim render -ql scenes/emoji_chat.py
"""EmojiChat: the bundled model answering "Explain transformers with emoji" in a terminal, token by token.

The command is typed at a shell prompt, the prompt's tokens go through the model together (prefill), then the
answer streams exactly as the trace recorded it, one token per step (decode): emoji drawn as OpenMoji, line
breaks kept, long lines wrapped at a word, the window scrolling a line at a time like a terminal. Behind the
text, each token has a quiet shade (two shades alternate), so a viewer sees where tokens begin and end; an
emoji whose bytes came in several tokens has its shade split among them. Beside the terminal, a small version
of the stack (Mamba-2 / Latent MoE / Mamba-2 / Attention / Latent MoE, x3) shows each token's green marker
climbing the 15 layers, sized by that token's update norm in each. The close sets the answer's points against
what this model is, every number read from the trace and its model config.

Parameters (environment variables override the [emoji_chat] section of scenes/manim.cfg):
    TOY_TRACE   path to a trace .npz               (default: traces/emoji_chat.npz)
    TOY_PACE    seconds per streamed token, up to 5 (default: 0.25; the marker climbs the stack once per
                repeat of the group in that time, and each climb must last a frame: 0.20 at 15 fps)
    TOY_THEME   dark | light                       (default: dark)
    TOY_BEATS   paragraph | token: where the slide version pauses in the answer (default: paragraph; token
                makes a slide per answer token, and the plain video plays token by token too)
Bad values or a bad trace stop the render before anything is drawn, with one line on stderr. From a notebook:
EmojiChat(params=ChatParams(...)) reads nothing from the environment.

Emoji are OpenMoji drawings (https://openmoji.org, by HfG Schwäbisch Gmünd, licensed CC BY-SA 4.0), credited
on screen throughout.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from manim import (
    DOWN,
    LEFT,
    RIGHT,
    UP,
    FadeIn,
    ManimColor,
    Rectangle,
    RoundedRectangle,
    UpdateFromAlphaFunc,
    VGroup,
    VMobject,
    config,
    linear,
)

from toy_model.kinds import BY_CHAR
from toy_model.trace_file import Trace
from toy_model.viz.emoji import EMOJI_CREDIT, token_label
from toy_model.viz.params import ParamError, Settings, is_render_entry, or_exit, start_render
from toy_model.viz.scene import KitScene
from toy_model.viz.slides import beat
from toy_model.viz.stack import Block, Marker, RepeatBrace
from toy_model.viz.subtitles import say
from toy_model.viz.terminal import (
    UNDERLINE,
    UNDERLINE_INSET,
    TerminalText,
    TerminalWindow,
    lay_out,
    stream_units,
    tint_shades,
    token_tints,
    typed_units,
    underline_color,
)
from toy_model.viz.text import label, shorten
from toy_model.viz.theme import Theme
from toy_model.viz.views import TraceView

CONFIG_FILE = Path(__file__).resolve().with_name("manim.cfg")
DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "traces" / "emoji_chat.npz"  # without an [emoji_chat] trace
KEYS = {"trace": "TOY_TRACE", "pace": "TOY_PACE", "theme": "TOY_THEME", "beats": "TOY_BEATS"}
MAX_GROUP = 6  # blocks the small stack has room for
GENERATE_DEFAULT = 400  # `python -m toy_model generate`'s --max-new-tokens default (shown only when it differs)


def repeated_group(pattern: str) -> tuple[str, int]:
    """(group, repeats): the shortest group whose repeats make the pattern ('MEM*E', 3); the pattern itself, 1,
    when it repeats nothing."""
    n = len(pattern)
    size = next(k for k in range(1, n + 1) if n % k == 0 and pattern[:k] * (n // k) == pattern)
    return pattern[:size], n // size


def _draws(pattern: str) -> str | None:
    group, _ = repeated_group(pattern)
    if len(group) > MAX_GROUP:
        return (f"the trace's layer pattern {pattern!r} repeats no group of at most {MAX_GROUP} layers, which this "
                f"scene draws as its small stack")
    return None


@dataclass(frozen=True)
class ChatParams:
    trace: Trace
    trace_path: Path
    pace: float  # seconds per streamed token
    theme: Theme
    beats: str = "paragraph"  # where a talk pauses in the answer: at each paragraph, or at each token


def shortest_step(trace: Trace) -> float:
    """The scene's shortest animation, as a fraction of the pace: one climb through the group (a token climbs
    once per repeat). Everything else lasts a whole token or a fixed second or more."""
    return 1 / repeated_group(trace.pattern)[1]


def resolve_params(env=None, cfg_path: Path = CONFIG_FILE, frame_rate: float | None = None) -> ChatParams:
    """ChatParams from the environment over manim.cfg [emoji_chat] defaults; ParamError names a bad value.
    frame_rate (default: Manim's, as configured when called) sets the shortest pace."""
    settings = Settings("emoji_chat", env, cfg_path, keys=KEYS)
    theme = settings.theme()
    trace, path = settings.trace(DEFAULT_TRACE, _draws)
    if trace.n_tokens <= trace.n_prompt_tokens:
        _, src = settings.get("trace", str(DEFAULT_TRACE))
        raise ParamError(f"{src}: the trace {path.name} has no generated tokens, so there is no answer to stream "
                         f"(record one with python -m toy_model trace --generate N)")
    pace = settings.pace(config.frame_rate if frame_rate is None else frame_rate, shortest_step(trace),
                         fallback="0.25", unit="token")
    beats, src = settings.get("beats", "paragraph")
    if beats.lower() not in ("paragraph", "token"):
        raise ParamError(f"{src}={beats!r}: the beats must be 'paragraph' or 'token'")
    return ChatParams(trace, path, pace, theme, beats.lower())


# ------------------------------------------------------------------------------------------------
# the closing card: the answer's points against this model, every number from the trace


@dataclass(frozen=True)
class Point:
    emoji: str  # the answer's own emoji for the point
    claim: str  # what the answer says (quoted when found in it) or what explanations of transformers say
    quoted: bool
    fact: str  # what this model is


# (keywords to find the answer's sentence, the emoji, the point as explanations of transformers put it)
CLAIMS = (
    (("positional",), "📍", "transformers add a positional encoding to every token"),
    (("every other word", "every word", "attention"), "🔗", "self-attention links every word to every other"),
    (("stack",), "🧱", "a transformer is a stack of identical blocks"),
    (("sequential", "rnn"), "⚡", "no sequential dependency, unlike an RNN"),
)


def sentences(text: str) -> list[str]:
    """text cut into sentences: at sentence ends and at line breaks, except a break inside a sentence (the next
    line going on in lower case)."""
    text = re.sub(r"\n(?=[a-z])", " ", text)
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def quote(text: str, keywords: tuple[str, ...], limit: int = 100) -> str | None:
    """The answer's own words for a point: the clause (a sentence cut at commas and colons) holding the first
    keyword found, from a sentence of five words or more (not a heading); None if no sentence has one."""
    for key in keywords:
        for s in sentences(text):
            if key in s.lower() and len(s.split()) >= 5:
                clauses = [c.strip() for c in re.split(r"[,;:]\s+", s) if c.strip()]
                c = next(c for c in clauses if key in c.lower() or c == clauses[-1]).rstrip(".,:;!")
                if c is not clauses[0] and c.split()[0].lower() in ("so", "and", "but", "which"):
                    c = c.split(None, 1)[1]
                c = ("…" if not s.startswith(c) else "") + c
                return c if len(c) <= limit else textwrap.shorten(c, limit, placeholder="…")
    return None


def model_points(trace: Trace) -> list[Point]:
    """The card's four points; every number comes from trace.pattern, trace.meta["model_config"] or the trace's
    token counts."""
    cfg, pattern = trace.meta.get("model_config", {}), trace.pattern
    n, n_mamba, n_attn, n_moe = len(pattern), pattern.count("M"), pattern.count("*"), pattern.count("E")
    group, reps = repeated_group(pattern)
    latent = cfg.get("moe_latent_size") is not None
    titles = ", ".join(BY_CHAR[c].display_title(latent) for c in group)
    positional = sorted(k for k in cfg if "rope" in k.lower() or "position" in k.lower())
    heads, head_dim, state = cfg.get("mamba_n_heads"), cfg.get("mamba_head_dim"), cfg.get("ssm_state_size")
    chunk = cfg.get("chunk_size")
    n_prompt, n_answer = trace.n_prompt_tokens, trace.n_tokens - trace.n_prompt_tokens

    facts = [
        (f"This model has none: no layer of its {n} adds positions ({', '.join(positional)} aside). "
         if positional else
         f"This model has none: no positional encoding in any of its {n} layers. ")
        + (f"Its {n_mamba} Mamba-2 layers carry the order: each token updates a state the next one reads."
           if n_mamba else "Without Mamba-2 layers, nothing here carries the order."),
        f"Only {n_attn} of its {n} layers attend (the * in {pattern}); the other {n - n_attn} are "
        f"{n_mamba} Mamba-2 and {n_moe} {'Latent MoE' if latent else 'MoE'}.",
        f"Its stack is one group, {group} ({titles}), repeated {reps} times: the ×{reps} beside it.",
        f"Mamba-2 is a recurrence: each of the {n_answer} answer tokens updated a fixed state "
        f"({heads} heads × {head_dim} × {state} numbers per layer), one after another. Only the {n_prompt} prompt "
        f"tokens went in parallel, as a chunked scan (chunks of {chunk}).",
    ]
    points = []
    for (keys, emoji, generic), fact in zip(CLAIMS, facts, strict=True):
        found = quote(trace.generated_text, keys)
        points.append(Point(emoji, found or generic, found is not None, fact))
    return points


# ------------------------------------------------------------------------------------------------
# the scene


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in scene units (the frame is 14.2 x 8 around the origin)."""

    window_center: tuple[float, float] = (-2.35, 0.0)
    window_width: float = 9.2
    window_height: float = 7.7
    font_size: float = 21  # terminal text: about 17 px per em at 480p
    panel_x: float = 2.5  # left edge of the right-hand panel
    panel_width: float = 4.5
    header_y: float = 3.84
    block_width: float = 2.95
    block_height: float = 0.52
    block_gap: float = 0.12
    stack_y: float = 0.95  # centre of the middle block
    lane_inset: float = 0.3
    legend_y: float = -1.6  # top of the legend
    type_speed: float = 32  # characters per second at the prompt
    prefill_time: float = 1.8  # seconds the prompt takes through the stack
    batch: int = 16  # most tokens streamed in one play()


LAYOUT = Layout()


class EmojiChat(KitScene):
    """A trace's answer streaming in a terminal beside the hybrid stack. `params` / `stop_at` may be set on a
    subclass or passed in; stop_at=(t, layer) ends the scene when token t's marker reaches that layer."""

    params: ChatParams | None = None
    stop_at: tuple[int, int] | None = None
    layout: Layout = LAYOUT

    def __init__(self, *args, params: ChatParams | None = None, stop_at: tuple[int, int] | None = None, **kwargs):
        self.params = params or type(self).params
        if self.params is None:
            raise ParamError("EmojiChat needs params=ChatParams(...), or render it with manim render "
                             "scenes/emoji_chat.py (which reads TOY_* and scenes/manim.cfg)")
        self.stop_at = stop_at if stop_at is not None else type(self).stop_at
        super().__init__(*args, **kwargs)

    def construct(self):
        self.camera.background_color = ManimColor(self.params.theme.background)

        # Terminal and stack: everything is laid out here, before the first frame
        self.build_terminal()
        self.build_stack()
        self.add(self.window, self.panel, self.container, self.cursor, self.marker)

        trace = self.params.trace
        # The command typed at the shell prompt; Enter
        beat(self, f"A terminal: the bundled model is asked {trace.meta.get('prompt', '')!r}. Beside it, its stack: "
                  f"the group {self.group} repeated {self.n_repeats} times ({trace.n_layers} layers), and every "
                  f"token's marker climbs it.")
        say(self, self.command)
        self.type_command()

        # Prefill: the prompt's tokens go through the stack together
        beat(self, f"Prefill: the {trace.n_prompt_tokens} prompt tokens go through the stack together, in one pass.")
        self.prefill()

        # Decode: the answer streams a token at a time, each token's marker climbing the stack; a talk pauses
        # at each paragraph of the answer (TOY_BEATS=token: at each token, hundreds of slides)
        t, T = trace.n_prompt_tokens, trace.n_tokens
        starts = paragraph_starts(trace)
        stops = set(range(t, T)) if self.params.beats == "token" else set(starts)
        while t < T:
            if t in starts:
                end = next((s for s in starts if s > t), T)
                text = " ".join(answer_text(trace, t, end).split())
                say(self, text)
            if t in stops and self.params.beats == "token":
                beat(self, f"Decode, token {t} of {T - 1}: {answer_text(trace, t, t + 1)!r} streams in and its "
                          f"marker climbs all {trace.n_layers} layers.")
            elif t in stops:
                beat(self, f"Decode, paragraph {starts.index(t) + 1} of {len(starts)}: tokens {t} to {end - 1}, one "
                          f"at a time, each through all {trace.n_layers} layers: {shorten(text, 240)!r}. Each token "
                          f"has its own shade and underline.")
            end = self.next_batch(t, stops)
            if self.stream(range(t, end)):
                return  # stopped at stop_at
            t = end

        # Back at the prompt; then what the answer said, against what this model is
        beat(self, f"The answer is {T - trace.n_prompt_tokens} tokens. Next: what it says about transformers, "
                  f"against what this model is, read from its config and trace.")
        say(self, None)
        self.finish()
        self.show_card()

    # ---- the terminal ----------------------------------------------------------------------------

    def build_terminal(self):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        self.window = TerminalWindow(th, width=lay.window_width, height=lay.window_height, font_size=lay.font_size,
                                     title="bash — toy_model").move_to([*lay.window_center, 0])
        w = self.window
        # the command: what `python -m toy_model generate` needs to give this answer
        m, words = trace.meta, ["python", "-m", "toy_model", "generate"]
        if not m.get("chat", True):
            words.append("--raw")
        if m.get("temperature", 0):
            words += ["--temperature", f"{m['temperature']:g}", "--seed", str(m.get("seed", 0))]
        if m.get("stop_reason") != "eot" and m.get("max_new_tokens", GENERATE_DEFAULT) != GENERATE_DEFAULT:
            words += ["--max-new-tokens", str(m["max_new_tokens"])]
        prompt = "".join(c if c.isprintable() else " " for c in m.get("prompt", ""))
        command = " ".join(words) + " --prompt " + shlex.quote(shorten(prompt, 3 * w.cols - 60))
        self.command = "$ " + command
        self.typed, row, col = lay_out(typed_units(self.command), w.cols)
        self.answer, row, col = lay_out(stream_units([bytes.fromhex(str(h)) for h in
                                                      trace.token_hex[trace.n_prompt_tokens:]],
                                                     trace.n_prompt_tokens), w.cols, row + 1, 0)
        self.again, _, _ = lay_out(typed_units("$ "), w.cols, row + 1, 0)
        placed = self.typed + self.answer + self.again
        colors = [th.muted if p.unit.text == "$" and p.col == 0 else th.text for p in placed]
        glyphs = TerminalText(w, placed, colors, halo=th.emoji_halo).glyphs
        n1, n2 = len(self.typed), len(self.typed) + len(self.answer)
        self.typed_glyphs, answer_glyphs, self.again_glyphs = glyphs[:n1], glyphs[n1:n2], glyphs[n2:]

        # each token's pieces, row by row: its shades first, then the characters it completes
        T, P = trace.n_tokens, trace.n_prompt_tokens
        self.pieces: dict[int, list[tuple[int, VGroup]]] = {t: [] for t in range(P, T)}
        for (t, r), tint in sorted(token_tints(w, self.answer, tint_shades(th), underline_color(th)).items()):
            self.pieces[t].append((r, tint))
        for p, g in zip(self.answer, answer_glyphs, strict=True):
            if len(g):
                self.pieces[p.unit.token].append((p.row, g))
        # where the cursor waits after each token (a token that only starts a character leaves it where it was)
        self.cursor_after, at = {}, (self.typed[-1].row + 1, 0)
        by_token = {}
        for p in self.answer:
            by_token.setdefault(p.unit.token, []).append(p)
        for t in range(P, T):
            if t in by_token:
                last = by_token[t][-1]
                at = (last.row + 1, 0) if last.is_newline else (last.row, last.col + last.width)
            self.cursor_after[t] = at
        self.needs_row = {t: max([r for r, _ in self.pieces[t]] + [self.cursor_after[t][0]]) for t in range(P, T)}

        self.first_row = 0  # the grid row at the top of the window (the terminal scrolls a row at a time)
        self.shown: list[tuple[int, VGroup]] = []  # (row, mobject) of what is on screen
        self.container = VGroup()  # what arrives during the play under way (drawn every frame, then static)
        self.cursor = w.place_cursor(w.cursor(), 0, 0)

    def show(self, row: int, mob, into: VGroup | None = None):
        """Put a piece of grid row `row` on screen (built for the unscrolled grid: moved to where the terminal
        shows that row now): into `into`, the group a play under way draws, or the scene."""
        mob.shift(UP * self.first_row * self.window.lh)
        if into is None:
            self.add(mob)
        else:
            into.add(mob)
        self.shown.append((row, mob))

    def scroll_to(self, row: int):
        """Scroll (instantly, as a terminal does) so that `row` is the last row shown, if it is below it."""
        w = self.window
        k = row - (self.first_row + w.rows - 1)
        if k <= 0:
            return
        self.first_row += k
        keep = []
        for r, mob in self.shown:
            if r < self.first_row:
                self.remove(mob)
            else:
                keep.append((r, mob.shift(UP * k * w.lh)))
        self.shown = keep

    def settle(self):
        """What arrived during the last play becomes static: drawn once per play, behind the moving pieces.

        Shades and letters are merged, row by row and colour by colour, into one path each: the same pixels,
        but Manim visits every piece on screen every frame, so hundreds of letters would cost time."""
        arrived = {id(m) for m in self.container.submobjects}
        self.container.submobjects = []
        rows: dict[int, list] = {}
        keep = []
        for row, mob in self.shown:
            if id(mob) in arrived:
                rows.setdefault(row, []).append(mob)
            else:
                keep.append((row, mob))
        for row, mobs in rows.items():
            merged, rest = merge_paths(mobs)
            keep += [(row, m) for m in [*merged, *rest]]
            self.add(*merged, *rest)
        self.shown = keep
        self.add(self.container, self.cursor, self.marker)  # back on top (Manim draws in list order)

    def set_cursor(self, row: int, col: int):
        self.window.place_cursor(self.cursor, row - self.first_row, col)

    def type_command(self):
        pieces = list(zip(self.typed, self.typed_glyphs, strict=True))
        n, typed = len(pieces), [0]

        def typing(_, alpha):
            k = min(n, int(alpha * n + 1e-9))  # characters typed by now
            for p, g in pieces[typed[0]: k]:
                if len(g):
                    self.show(p.row, g, self.container)
            typed[0] = max(typed[0], k)
            p = pieces[k - 1][0] if k else None
            self.set_cursor(*((p.row, p.col + p.width) if p else (0, 0)))

        self.set_cursor(0, 0)
        self.wait(0.6)
        self.play(UpdateFromAlphaFunc(VGroup(self.container, self.cursor), typing, rate_func=linear),
                  run_time=max(1.0, n / self.layout.type_speed))
        self.settle()
        self.wait(0.4)  # Enter

    # ---- the stack -------------------------------------------------------------------------------

    def build_stack(self):
        th, trace, lay = self.params.theme, self.params.trace, self.layout
        self.view = TraceView(trace)
        self.group, self.n_repeats = repeated_group(trace.pattern)
        latent = trace.meta.get("model_config", {}).get("moe_latent_size") is not None
        x0, pw = lay.panel_x, lay.panel_width
        self.blocks = VGroup()
        for c in self.group:
            kind = BY_CHAR[c]
            b = Block(kind.display_title(latent), kind.name, th, width=lay.block_width, height=lay.block_height,
                      label_width=lay.block_width - lay.lane_inset - 0.1, lane_inset=lay.lane_inset)
            b.title.scale(0.8, about_edge=LEFT).shift(DOWN * lay.block_height * 0.14)  # no layer tag under it: centred
            self.blocks.add(b)
        self.blocks.arrange(UP, buff=lay.block_gap)
        self.blocks.move_to([x0 + lay.block_width / 2, lay.stack_y, 0])
        if len(self.group) % 2 == 0:
            self.blocks.shift(DOWN * (lay.block_height + lay.block_gap) / 2)
        brace = RepeatBrace(self.blocks, th, count=self.n_repeats, direction=RIGHT)
        pitch = lay.block_height + lay.block_gap
        lane_x = self.blocks[0].lane_point[0]
        self.input_point = np.array([lane_x, self.blocks[0].lane_point[1] - pitch, 0])
        self.output_point = np.array([lane_x, self.blocks[-1].lane_point[1] + pitch, 0])
        span = lambda r: f"{r * len(self.group)}–{(r + 1) * len(self.group) - 1}"
        inp = VGroup(label(f"token in: it climbs {self.n_repeats} times,", font_size=18, color=th.muted),
                     label("layers " + ", ".join(span(r) for r in range(self.n_repeats)), font_size=18,
                           color=th.muted)).arrange(DOWN, buff=0.06, aligned_edge=LEFT)
        inp.next_to(self.input_point, RIGHT, buff=0.3).align_to(self.input_point + UP * 0.12, UP)
        if inp.get_right()[0] > x0 + pw:
            inp.scale_to_fit_width(x0 + pw - inp.get_left()[0])
        out = label("out: next-token prediction", font_size=18, color=th.muted)
        out.next_to(self.output_point, RIGHT, buff=0.3)
        n_layers = len(trace.pattern)
        title = label(f"inside the model: {n_layers} layers", font_size=20, color=th.text, weight="BOLD",
                      max_width=pw)
        title.move_to([x0, lay.header_y, 0], aligned_edge=LEFT + UP)
        n_prompt = trace.n_prompt_tokens
        self.phase_words = {"prefill": f"prefill: {n_prompt} prompt tokens at once",
                            "decode": "decode: one token at a time"}
        self.phases = {k: label(s, font_size=18, color=th.muted, max_width=pw) for k, s in self.phase_words.items()}
        for cap in self.phases.values():
            cap.next_to(title, DOWN, buff=0.14, aligned_edge=LEFT)
        self.phase = VGroup()
        legend = self.legend().move_to([x0, lay.legend_y, 0], aligned_edge=LEFT + UP)
        # OpenMoji's licence (CC BY-SA 4.0) asks for credit: on screen throughout, as emoji are
        self.credit = label(EMOJI_CREDIT, font_size=18, color=th.muted, max_width=pw)
        self.credit.move_to([x0, -config.frame_height / 2 + 0.14, 0], aligned_edge=LEFT + DOWN)
        self.panel = VGroup(self.blocks, brace, inp, out, title, legend, self.credit)
        self.marker = Marker(th, intensity=0.3, min_size=0.14, max_size=0.4).move_to(self.input_point)
        self.marker.set_opacity(0)

    def legend(self) -> VGroup:
        th = self.params.theme
        line = lambda s: label(s, font_size=18, color=th.muted)
        shades = tint_shades(th)

        def chip(text, shade):
            t = label(text, font_size=18, color=th.text)
            box = Rectangle(width=t.width + 0.08, height=0.34, stroke_width=0, fill_color=shade, fill_opacity=1)
            under = Rectangle(width=box.width - 2 * UNDERLINE_INSET, height=UNDERLINE, stroke_width=0,
                              fill_color=underline_color(th), fill_opacity=1)
            return VGroup(box, t.move_to(box), under.move_to(box.get_bottom() + UP * UNDERLINE / 2))

        def swatch(*pieces):  # samples on the terminal's own background, where the shades are drawn
            inner = VGroup(*pieces)
            back = RoundedRectangle(width=inner.width + 0.14, height=inner.height + 0.12, corner_radius=0.05,
                                    stroke_color=th.muted, stroke_width=1, fill_color=th.panel, fill_opacity=1)
            return VGroup(back, inner.move_to(back))

        tokens = swatch(VGroup(chip("Tok", shades[0]), chip("ens", shades[1])).arrange(RIGHT, buff=0))
        robot = token_label("🤖", font_size=21, halo=th.emoji_halo)
        halves = VGroup(*[Rectangle(width=0.3, height=0.34, stroke_width=0, fill_color=s, fill_opacity=1)
                          for s in shades]).arrange(RIGHT, buff=0)
        split = swatch(halves, robot.move_to(halves))
        icons = [Marker(th, intensity=1.0, max_size=0.26), tokens, split]
        texts = [("a token in a layer;", "size: its update norm"),
                 ("shade, underline:", "one per token"),
                 ("a split shade: one emoji,", "bytes from 2+ tokens")]
        column = max(i.width for i in icons) + 0.2
        rows = VGroup()
        for icon, (a, b) in zip(icons, texts, strict=True):
            words = VGroup(line(a), line(b)).arrange(DOWN, buff=0.06, aligned_edge=LEFT)
            icon.move_to([icon.width / 2, 0, 0])
            words.move_to([column, 0, 0], aligned_edge=LEFT)
            rows.add(VGroup(icon, words))
        rows.arrange(DOWN, buff=0.13, aligned_edge=LEFT)
        pw = self.layout.panel_width
        return rows.scale_to_fit_width(pw) if rows.width > pw else rows

    def set_phase(self, name: str):
        self.remove(self.phase)
        self.phase = self.phases[name]
        if name == "prefill":
            say(self, self.phase_words[name])
        self.add(self.phase)
        self.add(self.container, self.cursor, self.marker)

    def climb(self, phase: float, levels) -> tuple[np.ndarray, float]:
        """The marker's place and intensity `phase` (0..1) of the way through a token's climbs: once per repeat,
        from the input point through each block to the output point; levels[layer] is the size in each layer."""
        G, R = len(self.group), self.n_repeats
        x = min(max(phase, 0.0), 1.0) * R
        r = min(int(x), R - 1)
        u = x - r
        stations = (np.arange(G) + 1) / (G + 1)
        inside = [float(levels[r * G + j]) for j in range(G)]
        before = float(levels[r * G - 1]) if r else 0.3
        v = float(np.interp(u, [0.0, *stations, 1.0], [before, *inside, inside[-1]]))
        return self.input_point + u * (self.output_point - self.input_point), v

    def layer_phase(self, layer: int) -> float:
        """The phase at which the marker stands in `layer`'s block."""
        G, R = len(self.group), self.n_repeats
        return (layer // G + (layer % G + 1) / (G + 1)) / R

    def prefill(self):
        trace = self.params.trace
        levels = self.view.intensity[:, : trace.n_prompt_tokens].mean(axis=1)
        self.set_phase("prefill")
        self.marker.set_opacity(1)

        def go(m, alpha):
            pos, v = self.climb(alpha, levels)
            m.set_intensity(v).move_to(pos)

        self.play(UpdateFromAlphaFunc(self.marker, go, rate_func=linear), run_time=self.layout.prefill_time)
        self.set_phase("decode")

    # ---- decode ----------------------------------------------------------------------------------

    def next_batch(self, start: int, stops=()) -> int:
        """Scroll for token `start`, then the end of the batch from it: the tokens that fit without scrolling, up
        to the next of `stops` (where a paragraph begins)."""
        self.scroll_to(self.needs_row[start])
        last = self.first_row + self.window.rows - 1
        end, T = start + 1, self.params.trace.n_tokens
        while end < T and end - start < self.layout.batch and self.needs_row[end] <= last and end not in stops:
            end += 1
        return end

    def stream(self, tokens: range) -> bool:
        """Stream `tokens` in one play: each appears at the start of its step and its marker climbs the stack.
        Returns True if the scene stops here (stop_at)."""
        pace, intensity = self.params.pace, self.view.intensity
        run_time, stop = len(tokens) * pace, False
        if self.stop_at is not None and self.stop_at[0] in tokens:
            t, layer = self.stop_at
            run_time, stop = ((t - tokens.start) + self.layer_phase(layer)) * pace, True
        arrived = [tokens.start - 1]

        def step(_, alpha):
            tau = alpha * run_time / pace
            k = min(int(tau + 1e-9), len(tokens) - 1)
            t = tokens.start + k
            for s in range(arrived[0] + 1, t + 1):
                for row, mob in self.pieces[s]:
                    self.show(row, mob, self.container)
            arrived[0] = max(arrived[0], t)
            self.set_cursor(*self.cursor_after[t])
            pos, v = self.climb(tau - k, intensity[:, t])
            self.marker.set_intensity(v).move_to(pos)

        self.play(UpdateFromAlphaFunc(VGroup(self.container, self.cursor, self.marker), step, rate_func=linear),
                  run_time=run_time)
        self.settle()
        return stop

    # ---- the end ---------------------------------------------------------------------------------

    def finish(self):
        """The program ends: the marker goes, the shell prompt comes back."""
        self.marker.set_opacity(0)
        p = self.again[-1]
        self.scroll_to(p.row)
        for q, g in zip(self.again, self.again_glyphs, strict=True):
            if len(g):
                self.show(q.row, g)
        self.set_cursor(p.row, p.col + p.width)
        self.remove(self.phase)
        self.add(self.container, self.cursor, self.marker)
        self.wait(1.5)

    def show_card(self):
        th = self.params.theme
        w = self.window
        card = RoundedRectangle(width=w.frame.width, height=w.frame.height, corner_radius=0.16,
                                stroke_color=th.muted, stroke_width=1.5, fill_color=th.panel, fill_opacity=1)
        self.card = card.move_to(w.frame)
        self.play(FadeIn(card), run_time=0.6)
        points = model_points(self.params.trace)
        width = w.frame.width - 0.8
        any_quoted = any(p.quoted for p in points)
        heading = "What the answer says, and what this model is" if any_quoted else \
            "What transformers are said to be, and what this model is"
        head = label(heading, font_size=24, color=th.text, weight="BOLD", max_width=width)
        head.move_to(card.get_corner(UP + LEFT) + [0.4, -0.35, 0], aligned_edge=UP + LEFT)
        self.add(head)
        say(self, heading)
        self.wait(1.0)
        top = y = head.get_bottom()[1] - 0.3
        kinds = {0: ("mamba",), 1: ("attention",), 2: (), 3: ("mamba",)}  # the blocks each point is about
        shown = []
        for i, point in enumerate(points):
            row = self.card_row(point, width)  # built with its left edge at x = 0
            if shown and y - row.height < card.get_bottom()[1] + 0.2:  # no room left: a fresh page
                self.remove(*shown)
                shown, y = [], top
            row.shift([card.get_left()[0] + 0.4, y - row.get_top()[1], 0])
            y = row.get_bottom()[1] - 0.24
            shown.append(row)
            for b in self.blocks:
                b.set_active(b.kind in kinds.get(i, ()))
            self.add(row)
            say(self, f"{point.emoji} “{point.claim}”: {point.fact}" if point.quoted else
                f"{point.emoji} {point.claim}: {point.fact}")
            self.wait(1.5 + len(f"{point.claim} {point.fact}".split()) / 6)  # time to read it
        for b in self.blocks:
            b.set_active(False)
        self.wait(1.5)

    def card_row(self, point: Point, width: float) -> VGroup:
        """The point's emoji, then what was said (muted) and what this model is, wrapped to fit `width` (never
        scaled: the text keeps its size)."""
        th = self.params.theme
        icon = token_label(point.emoji, font_size=30, halo=th.emoji_halo)
        said = f"“{point.claim}”" if point.quoted else point.claim
        body = VGroup(*wrapped(said, width - 0.7, lambda s: token_label(s, font_size=18, color=th.muted,
                                                                         halo=th.emoji_halo)),
                      *wrapped(point.fact, width - 0.7, lambda s: label(s, font_size=19, color=th.text)))
        body.arrange(DOWN, buff=0.07, aligned_edge=LEFT)
        body.move_to([0.7, 0, 0], aligned_edge=LEFT + UP)
        icon.move_to([0.25, body.get_top()[1] - 0.2, 0])
        return VGroup(icon, body)


def answer_text(trace: Trace, start: int, end: int) -> str:
    """The text of tokens start..end-1, their bytes decoded together (an emoji split across tokens is whole)."""
    return b"".join(bytes.fromhex(str(h)) for h in trace.token_hex[start:end]).decode("utf-8", "replace")


def paragraph_starts(trace: Trace) -> list[int]:
    """The answer tokens that begin a paragraph: the first one, then the first with text after a blank line."""
    P, T = trace.n_prompt_tokens, trace.n_tokens
    starts = [P]
    for t in range(P + 1, T):
        before = answer_text(trace, starts[-1], t)
        if re.search(r"\n[ \t]*\n\s*$", before) and answer_text(trace, t, t + 1).strip():
            starts.append(t)
    return starts


def merge_paths(mobs) -> tuple[list[VMobject], list]:
    """(merged, rest): the plain pieces among mobs (shades, letters: filled paths with no outline) merged into one
    path per fill colour, shades first; emoji drawings and anything else as they are."""
    paths: dict[tuple, VMobject] = {}
    rest = []
    for mob in mobs:
        for leaf in mob.submobjects if type(mob) is VGroup else [mob]:  # a unit's letters and emoji, or a shade
            plain = not leaf.submobjects and isinstance(leaf, VMobject) and leaf.get_stroke_width() == 0 and \
                leaf.get_fill_opacity() == 1
            if not plain:
                rest.append(leaf)
                continue
            key = (not isinstance(leaf, Rectangle), ManimColor(leaf.get_fill_color()).to_hex())
            if key not in paths:
                paths[key] = VMobject(fill_color=key[1], fill_opacity=1, stroke_width=0)
            paths[key].append_vectorized_mobject(leaf)
    return [paths[k] for k in sorted(paths, key=lambda k: k[0])], rest


def wrapped(text: str, width: float, make) -> list:
    """text as lines made by make(line), each at most `width` wide: wrapped at fewer characters until they fit."""
    for chars in range(90, 10, -4):
        lines = [make(s) for s in textwrap.wrap(text, chars)]
        if max(line.width for line in lines) <= width:
            return lines
    return lines


# Only when Manim renders this file: its [CLI] defaults, then the parameters (one line and exit 2 if bad).
if is_render_entry(__file__):
    or_exit(start_render, CONFIG_FILE)
    EmojiChat.params = or_exit(resolve_params)
