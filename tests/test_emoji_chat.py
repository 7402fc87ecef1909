"""The EmojiChat scene: the terminal shows the trace's answer up to the token under way, each token's marker climbs
the stack the trace names, the card's numbers come from the trace; parameters stop with one line; the bundled
trace is small, loads and records again.

Frames come from in-process dry runs stopped when a chosen token's marker reaches a chosen layer (as in
tests/test_block_flow.py): `renderer.get_frame()` is then exactly what that moment of the video shows.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from frames import is_marker_green
from manim import UP, Scene, config, tempconfig
from toy_model.scenes import emoji_chat
from toy_model.scenes.emoji_chat import ChatParams, EmojiChat, model_points, repeated_group, resolve_params

from toy_model.trace_file import ARRAYS, Trace, load_trace
from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio, small_texts
from toy_model.viz.params import ParamError
from toy_model.viz.terminal import (
    TerminalText,
    TerminalWindow,
    Unit,
    lay_out,
    stream_units,
    tint_shades,
    token_spans,
    token_tints,
    typed_units,
    underline_color,
)
from toy_model.viz.theme import THEMES

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT / "traces" / "emoji_chat.npz"


@pytest.fixture(scope="module")
def trace():
    return load_trace(TRACE)


def params_for(trace, theme="dark", pace=0.25):
    return ChatParams(trace, TRACE, pace, THEMES[theme])


def edited(trace, **changes) -> Trace:
    """A copy of trace with some arrays changed in place: edited(t, update_norm=lambda a: ...)."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for name, fn in changes.items():
        fn(arrays[name])
    return Trace(arrays, dict(trace.meta))


def quiet():
    return tempconfig({"dry_run": True, "quality": "low_quality", "disable_caching": True, "progress_bar": "none",
                       "verbosity": "ERROR"})


def draw_last(scene):
    """Render the scene without drawing its intermediate frames; the frame as the scene ends (RGB)."""
    draw = scene.renderer.update_frame
    scene.renderer.update_frame = lambda *args, **kwargs: None
    scene.render()
    scene.renderer.static_image = None
    draw(scene)
    return scene.renderer.get_frame()[..., :3].copy()


def still(params, stop_at):
    """(frame, scene) when token stop_at[0]'s marker reaches layer stop_at[1]."""
    with quiet():
        scene = EmojiChat(params=params, stop_at=stop_at)
        return draw_last(scene), scene


def pixel_box(mob, shape, pad=0.0):
    """(x0, y0, x1, y1) pixel box of a mobject in a frame of `shape`."""
    h, w = shape[:2]
    fw, fh = config.frame_width, config.frame_height
    (left, bottom), (right, top) = mob.get_corner([-1, -1, 0])[:2], mob.get_corner([1, 1, 0])[:2]
    return (int((left + fw / 2) / fw * w - pad), int((fh / 2 - top) / fh * h - pad),
            int(np.ceil((right + fw / 2) / fw * w + pad)), int(np.ceil((fh / 2 - bottom) / fh * h + pad)))


def crop(frame, box):
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1]


def answer_text(trace, t) -> str:
    """The answer up to token t as the trace's token_text has it (newline shown as ↵, tab as ⇥)."""
    return "".join(str(s) for s in trace.token_text[trace.n_prompt_tokens: t + 1]).replace("↵", "\n").replace(
        "⇥", "\t")


def word_ends(trace) -> list[int]:
    """Answer tokens of three letters or more after which a space or a line break comes: a word is complete
    there (so the answer so far wraps as the whole answer does)."""
    P, T = trace.n_prompt_tokens, trace.n_tokens
    return [t for t in range(P, T - 1) if str(trace.token_text[t + 1])[:1] in (" ", "↵")
            and len(str(trace.token_text[t]).strip(" ")) >= 3 and str(trace.token_text[t]).strip(" ").isalpha()]


# ------------------------------------------------------------------------------------------------
# the text: what the tokens print, and where it goes


def test_stream_units_print_what_token_text_shows(trace):
    """Token by token, the characters that appear are the trace's token_text (a character split over tokens
    appears whole with the token that completes it, as token_text shows it)."""
    P, T = trace.n_prompt_tokens, trace.n_tokens
    units = stream_units([bytes.fromhex(str(h)) for h in trace.token_hex[P:]], P)
    for t in range(P, T):
        shown = "".join(u.text for u in units if u.token == t)
        assert shown.replace("\n", "↵") == str(trace.token_text[t]), t
    assert "".join(u.text for u in units) == trace.generated_text
    # the bytes of every character are shared out among the tokens that carried them
    split = [u for u in units if len(u.shares) > 1]
    assert split and all(abs(sum(s for _, s in u.shares) - 1) < 1e-9 for u in units)
    robot = next(u for u in units if u.text == "🤖")  # f0 9f | a4 | 96: bytes in three tokens
    t = robot.token
    assert robot.shares == ((t - 2, 0.5), (t - 1, 0.25), (t, 0.25))
    assert str(trace.token_hex[t - 1]) == "a4" and str(trace.token_text[t - 1]) == ""
    assert str(trace.token_text[t]) == "🤖"


def test_a_bad_byte_is_a_replacement_character():
    units = stream_units([b"a\xf0\x9f", b"b"], first=5)
    assert [u.text for u in units] == ["a", "\ufffd", "b"]
    assert units[1].shares == ((5, 1.0),) and units[2].shares == ((6, 1.0),)


def test_layout_keeps_line_breaks_wraps_words_and_gives_emoji_two_columns():
    placed, row, col = lay_out(typed_units("ab cd\nxy 🤖z\tq"), cols=8)
    where = {p.unit.text: (p.row, p.col, p.width) for p in placed if p.unit.text.strip()}
    assert where["a"] == (0, 0, 1) and where["d"] == (0, 4, 1)
    assert where["x"] == (1, 0, 1) and where["🤖"] == (1, 3, 2) and where["z"] == (1, 5, 1)
    assert where["q"] == (1, 8, 1) or where["q"][0] == 2  # the tab takes the row's rest: q goes on
    # a word that would cross the edge moves to the next row whole; one longer than a row is broken
    placed, _, _ = lay_out(typed_units("hello world"), cols=8)
    assert [(p.unit.text, p.row, p.col) for p in placed if p.unit.text in "hw"] == [("h", 0, 0), ("w", 1, 0)]
    placed, _, _ = lay_out(typed_units("abcdefghij"), cols=8)
    assert [p.row for p in placed] == [0] * 8 + [1] * 2
    # nothing lies beyond the right edge
    placed, _, _ = lay_out(typed_units("abcdefgh i\n"), cols=8)
    assert all(p.col + p.width <= 8 for p in placed)


def test_token_spans_split_an_emoji_by_its_bytes():
    units = [Unit("a", ((3, 1.0),)), Unit("📄", ((3, 0.75), (4, 0.25))), Unit("b", ((4, 1.0),))]
    placed, _, _ = lay_out(units, cols=10)
    spans = token_spans(placed)
    assert spans[3, 0] == [0.0, 2.5] and spans[4, 0] == [2.5, 4.0]


# ------------------------------------------------------------------------------------------------
# frames: the terminal


def reference(scene, text) -> np.ndarray:
    """The frame of a plain terminal (the scene's window, scroll and command) with `text` typed after the
    command: no token shades, no stack, the kit's layout of the text itself."""
    th, lay = scene.params.theme, scene.layout

    class Plain(Scene):
        def construct(self):
            self.camera.background_color = th.background
            w = TerminalWindow(th, width=lay.window_width, height=lay.window_height, font_size=lay.font_size,
                               title="bash — toy_model").move_to(scene.window.get_center())
            placed, row, _ = lay_out(typed_units(scene.command), w.cols)
            more, _, _ = lay_out(typed_units(text), w.cols, row + 1, 0)
            placed += more
            colors = [th.muted if p.unit.text == "$" and p.col == 0 else th.text for p in placed]
            self.add(w)
            for p, g in zip(placed, TerminalText(w, placed, colors, halo=th.emoji_halo).glyphs, strict=True):
                if scene.first_row <= p.row < scene.first_row + w.rows:
                    self.add(g.shift(UP * scene.first_row * w.lh))

    with quiet():
        return draw_last(Plain())


def ink(frame, scene, tolerance=60) -> np.ndarray:
    """Pixels of the text area in the text's colour, to `tolerance` (glyphs; not the shades, the cursor or the
    window)."""
    th = scene.params.theme
    text = np.array([int(th.text[i:i + 2], 16) for i in (1, 3, 5)])
    area = crop(frame, pixel_box(scene.window.frame, frame.shape, pad=-8))
    return np.abs(area.astype(int) - text).sum(axis=-1) < tolerance


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("which", [12, -30])  # early in the answer, and late, with the window scrolled
def test_the_terminal_shows_the_answer_up_to_the_token(trace, theme, which):
    t = word_ends(trace)[which]
    frame, scene = still(params_for(trace, theme), (t, 0))
    if which < 0:
        assert scene.first_row > 0, "the window should have scrolled by then"
    full, less = reference(scene, answer_text(trace, t)), reference(scene, answer_text(trace, t - 1))
    assert ink(full, scene).sum() > ink(less, scene).sum() + 20  # token t draws something
    # the same glyphs in the same places (the shades behind the scene's text change only anti-aliased edges)
    assert unmatched(frame, full, scene) == 0
    assert unmatched(frame, less, scene) > 20


def unmatched(a, b, scene) -> int:
    """Pixels of glyph ink (the text's colour, closely) in either frame with no ink, loosely, in the other
    within one pixel."""
    return _unmatched(ink(a, scene, 30), ink(b, scene)) + _unmatched(ink(b, scene, 30), ink(a, scene))


def _unmatched(a, b) -> int:
    def grow(m):
        g = m.copy()
        g[1:] |= m[:-1]
        g[:-1] |= m[1:]
        h = g.copy()
        h[:, 1:] |= g[:, :-1]
        h[:, :-1] |= g[:, 1:]
        return h

    return int((a & ~grow(b)).sum())


def test_an_emoji_appears_with_the_token_that_completes_it(trace):
    """🤖's bytes come in three tokens (2 + 1 + 1 bytes): the first two shade their part of its cells and draw
    nothing, the third shades the rest and draws it (the legend explains the split shade)."""
    P = trace.n_prompt_tokens
    units = stream_units([bytes.fromhex(str(h)) for h in trace.token_hex[P:]], P)
    (first, _), (middle, _), (done, _) = next(u for u in units if u.text == "🤖").shares
    th = THEMES["light"]  # no halo around the drawing
    shades = [np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)]) for c in tint_shades(th)]
    panel = np.array([int(th.panel[i:i + 2], 16) for i in (1, 3, 5)])

    def cell(stop):
        frame, scene = still(params_for(trace, "light"), (stop, 0))
        unit = next(p for p in scene.answer if p.unit.text == "🤖")
        w = scene.window
        y = w.row_center(unit.row - scene.first_row) + 0.4 * w.lh  # in the shade, above the drawing
        h, wd = frame.shape[:2]
        x0 = (w.cell_left(unit.col) / config.frame_width + 0.5) * wd
        y0 = int((0.5 - y / config.frame_height) * h)
        cw = w.cw / config.frame_width * wd
        sample = lambda f: frame[y0, int(x0 + f * 2 * cw)].astype(int)  # f of the way across its two cells
        box = (int(x0), int(y0) - 12, int(x0 + 2 * cw), int(y0) + 12)
        return sample, crop(frame, box)

    near = lambda a, b: np.abs(a - b).sum() < 20
    sample, before = cell(middle)  # (the cursor waits on the first of the two cells)
    assert near(sample(-0.25), shades[first % 2])  # the space before, with the first 2 bytes of the emoji
    assert near(sample(0.62), shades[middle % 2])  # the third byte
    assert near(sample(0.9), panel)  # the last byte has not come
    sample, after = cell(done)
    assert near(sample(0.9), shades[done % 2])
    assert np.abs(after.astype(int) - before.astype(int)).sum(axis=-1).max() > 100  # the robot is drawn now


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_token_shades_alternate_and_keep_text_readable(trace, theme):
    th = THEMES[theme]
    shades = tint_shades(th)
    assert shades[0] != shades[1]
    assert all(contrast_ratio(th.text, s) >= TEXT_CONTRAST for s in shades)
    assert not any(int(s[3:5], 16) - max(int(s[1:3], 16), int(s[5:7], 16)) > 30 for s in shades)  # no green
    # the shades are quiet; the token boundaries show at the graphics contrast through the underlines' gaps
    under = underline_color(th)
    assert all(contrast_ratio(under, c) >= GRAPHIC_CONTRAST for c in (th.panel, *shades))
    assert under.lower() != th.text.lower()


def test_every_token_is_underlined_with_a_gap_at_each_boundary(trace):
    """Side by side on a row, two tokens' underlines never touch: a viewer sees where each token ends."""
    th = THEMES["dark"]
    w = TerminalWindow(th)
    P = trace.n_prompt_tokens
    units = stream_units([bytes.fromhex(str(h)) for h in trace.token_hex[P:]], P)
    placed, _, _ = lay_out(units, w.cols)
    tints = token_tints(w, placed, tint_shades(th), underline_color(th))
    spans = token_spans(placed)
    assert set(tints) == set(spans)
    lines = {}
    for (t, row), group in tints.items():
        shade, *under = group.submobjects
        assert len(under) == 1 and under[0].get_bottom()[1] >= shade.get_bottom()[1] - 1e-9
        lines.setdefault(row, []).append((under[0].get_left()[0], under[0].get_right()[0], t))
    for row, segs in lines.items():
        segs.sort()
        for (_, right, t), (left, _, u) in zip(segs, segs[1:], strict=False):
            assert left - right >= 0.03, (row, t, u)  # a visible gap (2 px at 480p) between neighbours


def test_a_different_answer_gives_a_different_frame(trace):
    t = word_ends(trace)[20]

    def other_word(a):  # the tokens up to t spell another word at t: ' text' -> ' wxyz' and so on
        a[t] = "".join(f"{ord(c):02x}" for c in " " + "w" * (len(bytes.fromhex(str(a[t]))) - 1))

    frame, scene = still(params_for(trace), (t, 0))
    other, _ = still(params_for(edited(trace, token_hex=other_word)), (t, 0))
    box = pixel_box(scene.window.frame, frame.shape)
    assert (crop(frame, box) != crop(other, box)).any(axis=-1).sum() > 30


# ------------------------------------------------------------------------------------------------
# frames: the small stack


def stack_green(frame, scene):
    box = pixel_box(scene.blocks, frame.shape, pad=30)
    mask = np.zeros(frame.shape[:2], bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = is_marker_green(frame[y0:y1, x0:x1])
    return mask


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("layer", [0, 3, 6, 14])
def test_the_marker_is_in_the_block_the_trace_names(trace, theme, layer):
    t = trace.n_prompt_tokens + 40
    frame, scene = still(params_for(trace, theme), (t, layer))
    green = stack_green(frame, scene)
    assert green.sum() > 15, "no marker pixels over the stack"
    ys, xs = np.nonzero(green)
    G = len(scene.group)
    for j, block in enumerate(scene.blocks):
        x0, y0, x1, y1 = pixel_box(block.box, frame.shape)
        inside = ((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).mean()
        assert inside == (1.0 if j == layer % G else 0.0), (j, inside)
    assert scene.group[layer % G] == trace.pattern[layer]  # the block stands for the layer's kind
    # only the marker is green: not the terminal's text, shades, cursor or emoji
    assert not is_marker_green(crop(frame, pixel_box(scene.window.frame, frame.shape))).any()


def test_the_marker_size_follows_the_update_norm(trace):
    t, layer = trace.n_prompt_tokens + 40, 7
    top = float(trace.update_norm.max())

    def with_update(v):
        return edited(trace, update_norm=lambda a: a.__setitem__((layer, t), v))

    big, scene = still(params_for(with_update(top)), (t, layer))
    small, _ = still(params_for(with_update(0.0)), (t, layer))
    assert stack_green(big, scene).sum() > 3 * stack_green(small, scene).sum() > 0


def test_the_marker_climbs_once_per_repeat(trace):
    """The stop phases put the marker in each layer's block, in layer order, within the token's step."""
    _, scene = still(params_for(trace), (trace.n_prompt_tokens, 0))
    phases = [scene.layer_phase(i) for i in range(len(trace.pattern))]
    assert phases == sorted(phases) and 0 < phases[0] and phases[-1] < 1
    levels = np.linspace(0.1, 0.9, len(trace.pattern))
    for i, ph in enumerate(phases):
        pos, v = scene.climb(ph, levels)
        assert np.allclose(pos, scene.blocks[i % len(scene.group)].lane_point) and v == pytest.approx(levels[i])


# ------------------------------------------------------------------------------------------------
# the closing card


def test_the_card_reads_its_numbers_from_the_trace(trace):
    points = model_points(trace)
    assert [p.quoted for p in points] == [True] * 4  # the bundled answer makes all four points itself
    assert all(p.claim.strip("…") in trace.generated_text.replace("\n", " ") for p in points)
    text = " ".join(p.fact for p in points)
    cfg, P = trace.meta["model_config"], trace.n_prompt_tokens
    group, reps = repeated_group(trace.pattern)
    for number in (len(trace.pattern), trace.pattern.count("M"), trace.pattern.count("*"), reps,
                   trace.n_tokens - P, P, cfg["mamba_n_heads"], cfg["mamba_head_dim"], cfg["ssm_state_size"],
                   cfg["chunk_size"]):
        assert str(number) in text, number
    assert group in text and trace.pattern in text
    # other numbers in the config give other sentences
    meta = dict(trace.meta) | {"model_config": cfg | {"chunk_size": 64, "ssm_state_size": 24}}
    other = " ".join(p.fact for p in model_points(Trace(trace.arrays, meta)))
    assert "chunks of 64" in other and "× 24 numbers" in other


def test_the_card_says_what_explanations_say_when_the_answer_does_not(trace):
    meta = dict(trace.meta) | {"generated_text": "Mamba is a snake 🐍."}
    points = model_points(Trace(trace.arrays, meta))
    assert not any(p.quoted for p in points) and points[0].claim.startswith("transformers add")


def test_the_scene_ends_on_the_card_with_the_credit(trace):
    short = truncated(trace, 12)
    with quiet():
        scene = EmojiChat(params=params_for(short, pace=0.2))
        frame = draw_last(scene)
    assert scene.credit in scene.get_mobject_family_members()  # OpenMoji's credit, on screen with the emoji
    assert not small_texts([scene.panel, *scene.mobjects[-5:]]), small_texts([scene.panel, *scene.mobjects[-5:]])
    assert frame.std() > 10
    # the card's rows (here the general points: the first 12 tokens quote none) lie inside the card
    card = scene.card
    after = [m for m in scene.mobjects[scene.mobjects.index(card) + 1:] if len(m.get_all_points())]
    assert len(after) >= 2, after  # the title and at least one row (a long card turns a page)
    for m in after:
        assert card.get_left()[0] < m.get_left()[0] < m.get_right()[0] < card.get_right()[0]
        assert card.get_bottom()[1] < m.get_bottom()[1] < m.get_top()[1] < card.get_top()[1]


def truncated(trace, n) -> Trace:
    """The trace cut after its first n answer tokens (for quick whole-scene runs)."""
    T = trace.n_prompt_tokens + n
    arrays = {}
    for name, a in trace.arrays.items():
        shape = ARRAYS[name].shape
        index = tuple(slice(0, T) if d == "T" else slice(None) for d in shape)
        arrays[name] = a[index]
    text = "".join(str(s) for s in arrays["token_text"][trace.n_prompt_tokens:]).replace("↵", "\n")
    return Trace(arrays, dict(trace.meta) | {"generated_text": text})


# ------------------------------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize("env,message", [
    ({"TOY_THEME": "purple"}, "TOY_THEME='purple': the theme must be 'dark' or 'light'"),
    ({"TOY_PACE": "fast"}, "TOY_PACE='fast': the pace must be a number of seconds per token"),
    ({"TOY_PACE": "0.1"}, "TOY_PACE='0.1': at 15 fps the pace must be at least 0.20 s per token (its shortest "
                          "step, a third of the pace, must last one frame)"),
    ({"TOY_PACE": "6"}, "TOY_PACE='6': at 15 fps the pace must be between 0.20 and 5 seconds per token"),
    ({"TOY_PACE": "nan"}, "the pace must be between 0.20 and 5"),
    ({"TOY_TRACE": "/nonexistent/t.npz"}, "TOY_TRACE: trace file not found: /nonexistent/t.npz"),
])
def test_bad_parameters_are_one_line(env, message):
    with pytest.raises(ParamError) as err:
        resolve_params(env, frame_rate=15)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_least_pace_gives_each_climb_a_frame():
    assert resolve_params({"TOY_PACE": "0.2"}, frame_rate=15).pace == 0.2
    assert resolve_params({"TOY_PACE": "0.05"}, frame_rate=60).pace == 0.05
    with pytest.raises(ParamError, match="at 60 fps the pace must be at least 0.05 s per token"):
        resolve_params({"TOY_PACE": "0.04"}, frame_rate=60)


def test_defaults_come_from_the_config_file(tmp_path, trace):
    p = resolve_params({})
    assert p.trace_path.resolve() == TRACE.resolve() and p.pace == 0.25 and p.theme.name == "dark"
    cfg = tmp_path / "manim.cfg"
    cfg.write_text("[emoji_chat]\npace = 0.5\ntheme = light\ntokens = 5\n")
    with pytest.raises(ParamError, match=r"\[emoji_chat\] has a key 'tokens' the scene does not know: the keys are "
                                         r"trace, pace, theme"):
        resolve_params({}, cfg)
    cfg.write_text("[emoji_chat]\npace = 0.5\ntheme = light\n")
    p = resolve_params({"TOY_TOKENS": "3"}, cfg, frame_rate=15)  # TOY_TOKENS is block_flow's: not read here
    assert (p.pace, p.theme.name) == (0.5, "light")


def test_a_trace_without_an_answer_is_refused(tmp_path, trace):
    from toy_model.trace_file import save_trace

    path = save_trace(truncated(trace, 0), tmp_path / "prompt_only.npz")
    with pytest.raises(ParamError, match="TOY_TRACE: the trace prompt_only.npz has no generated tokens"):
        resolve_params({"TOY_TRACE": str(path)}, frame_rate=15)


def test_a_notebook_builds_the_scene_without_the_environment(monkeypatch, trace):
    for name in ("TOY_THEME", "TOY_PACE", "TOY_TRACE"):
        monkeypatch.setenv(name, "nonsense")  # would fail if anything read them
    _, scene = still(params_for(truncated(trace, 6), "light"), (trace.n_prompt_tokens + 2, 4))
    assert scene.marker.get_center()[1] == pytest.approx(scene.blocks[4].lane_point[1])
    with pytest.raises(ParamError, match="EmojiChat needs params"):
        EmojiChat()


def test_manim_render_with_a_bad_value_is_one_line(tmp_path):
    media = tmp_path / "media"
    cmd = [sys.executable, "-m", "manim", "--hide-splash", "render", "-ql", "--dry_run", "--media_dir", str(media),
           "-v", "WARNING", "--progress_bar", "none", str(ROOT / "scenes" / "emoji_chat.py")]
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TOY_PACE": "0.1"}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip() == ("error: TOY_PACE='0.1': at 15 fps the pace must be at least 0.20 s per token (its "
                                "shortest step, a third of the pace, must last one frame)")
    assert not media.exists()


# ------------------------------------------------------------------------------------------------
# the bundled trace


def test_the_bundled_trace_is_small_whole_and_loads(trace):
    assert TRACE.stat().st_size < 2 * 10**6
    assert trace.meta["schema_version"] == 1 and sorted(trace.arrays) == sorted(ARRAYS)
    assert trace.meta["stop_reason"] == "eot" and trace.meta["max_new_tokens"] > trace.n_tokens - trace.n_prompt_tokens
    assert trace.attn_weights.dtype == np.float16  # see toy_model/bundled_traces.py
    assert trace.meta["prompt"] == "Explain transformers with emoji"
    assert emoji_chat.DEFAULT_TRACE.resolve() == TRACE.resolve()


@pytest.mark.slow
def test_the_bundled_trace_records_again():
    """traces/emoji_chat.npz is what the bundled weights give today, on this CPU or another; the float16
    attention weights are compared at float16's precision (tests/traces.py)."""
    from toy_model.bundled_traces import RECIPES, record
    from toy_model.model import DEFAULT_WEIGHTS
    from toy_model.trace import file_sha256
    from traces import assert_same_recording

    shipped = load_trace(TRACE)
    rerecord = "re-record it: python -m toy_model.bundled_traces emoji_chat"
    assert shipped.meta["weights"].endswith(file_sha256(DEFAULT_WEIGHTS)[:16]), \
        f"traces/emoji_chat.npz was recorded from other weights; {rerecord}"
    fresh = record("emoji_chat", compact=False)  # float32, as recorded
    fresh = Trace({n: fresh.arrays[n] for n in shipped.arrays}, fresh.meta)  # version 1's arrays, as shipped
    assert fresh.attn_weights.dtype == np.float32
    assert_same_recording(fresh, shipped, rerecord)
    assert RECIPES["emoji_chat"].path == TRACE


@pytest.mark.slow
def test_a_real_render_at_the_least_pace(tmp_path, trace):
    """Through the manim CLI, a short answer at the least pace 15 fps allows: no warning (every animation lasts
    a frame), the marker green over the stack while tokens stream, and the video as long as the story."""
    import av

    from toy_model.trace_file import save_trace

    path = save_trace(truncated(trace, 16), tmp_path / "short.npz")
    cmd = [sys.executable, "-m", "manim", "render", "-ql", "--disable_caching", "--media_dir", str(tmp_path / "m"),
           str(ROOT / "scenes" / "emoji_chat.py")]
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TOY_TRACE": str(path), "TOY_PACE": "0.2"},
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "WARNING" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    (video,) = (tmp_path / "m").rglob("EmojiChat.mp4")
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames[0].shape == (480, 854, 3)
    right = [is_marker_green(f[:380, 570:770]).sum() > 10 for f in frames]  # the stack, above the legend
    # typing, prefill, 16 tokens x 0.2 s, the prompt again, the card: about 30 s
    assert 300 < len(frames) < 700, len(frames)
    assert sum(right) > 16 * 0.2 * 15 * 0.8


@pytest.mark.parametrize("beats", ["paragraph", "token"])
def test_the_talk_pauses_at_each_paragraph_or_each_token(trace, tmp_path, beats):
    """The slide version's beats in the answer: one per paragraph (the default), or one per token (TOY_BEATS=token),
    each with notes; here up to the 30th answer token, where the second paragraph is under way."""
    from dataclasses import replace

    from toy_model.scenes.emoji_chat import paragraph_starts

    from toy_model.viz.progress import Progress, read_events

    P = trace.n_prompt_tokens
    stop = P + 30
    log = tmp_path / "progress.jsonl"
    with quiet():
        scene = EmojiChat(params=replace(params_for(trace), beats=beats), stop_at=(stop, 0))
        scene.progress = Progress.to(str(log))
        draw_last(scene)
        scene.progress.stream.close()
    notes = [e["notes"] for e in read_events(log) if e["event"] == "beat"]
    answer = [n for n in notes if n.startswith("Decode")]
    assert len(notes) == 2 + len(answer) and all(n.strip() for n in notes)  # the command, the prefill, the answer
    if beats == "token":
        assert len(answer) == stop - P + 1 and answer[1].startswith(f"Decode, token {P + 1} of ")
    else:
        starts = [s for s in paragraph_starts(trace) if s <= stop]
        assert len(answer) == len(starts) == 2 and answer[1].startswith("Decode, paragraph 2 of 6")


def test_the_beats_must_be_paragraph_or_token(tmp_path):
    with pytest.raises(ParamError, match="TOY_BEATS='lines': the beats must be 'paragraph' or 'token'"):
        resolve_params({"TOY_BEATS": "lines"}, frame_rate=15)
