"""The BlockFlow scene: real frames follow the trace; parameters and bad traces stop with one line.

Frames come from in-process dry runs (no video written) of a scene stopped right after the marker
reaches a chosen layer of a chosen token; the renderer then draws the scene as it stands and
`renderer.get_frame()` is exactly what that moment shows. Manim's golden-frame tests would skip on
this machine's cairo, so we assert on pixels. One slow test renders a real video through the CLI.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from manim import VGroup, config, tempconfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scenes"))

import block_flow  # noqa: E402
from block_flow import BlockFlow, FlowError, resolve_params  # noqa: E402
from frames import is_marker_green  # noqa: E402

from toy_model.trace_file import Trace, load_trace, save_trace  # noqa: E402
from toy_model.viz import captions, emoji  # noqa: E402
from toy_model.viz.details import chip_text  # noqa: E402
from toy_model.viz.emoji import EmojiText, split_emoji  # noqa: E402
from toy_model.viz.params import apply_cli_defaults, parse_tokens  # noqa: E402
from toy_model.viz.text import shorten, show_spaces, text_units  # noqa: E402
from toy_model.viz.theme import THEMES  # noqa: E402

DEFAULT_TRACE = ROOT / "traces" / "default.npz"


@pytest.fixture(scope="module")
def trace():
    return load_trace(DEFAULT_TRACE)


def params_for(trace, tokens, theme="dark", pace=0.3, guide=False):
    return block_flow.FlowParams(trace, DEFAULT_TRACE, tuple(tokens), pace, THEMES[theme], guide)


def edited(trace, **changes) -> Trace:
    """A copy of trace with some arrays changed in place: edited(t, update_norm=lambda a: ...)."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for name, fn in changes.items():
        fn(arrays[name])
    return Trace(arrays, dict(trace.meta))


def still(params, stop_at):
    """(frame RGB (H, W, 3), scene) once the marker of the stop_at[0]-th token reaches layer stop_at[1]."""
    with tempconfig({"dry_run": True, "quality": "low_quality", "disable_caching": True,
                     "progress_bar": "none", "verbosity": "ERROR"}):
        scene = BlockFlow(params=params, stop_at=stop_at)
        # Drawing the intermediate frames of a dry run is wasted work here: draw only the last one.
        draw = scene.renderer.update_frame
        scene.renderer.update_frame = lambda *args, **kwargs: None
        scene.render()
        scene.renderer.static_image = None
        draw(scene)
        frame = scene.renderer.get_frame()[..., :3]
        scene.pixel_box = _pixel_box_fn(frame.shape)
    return frame, scene


def _pixel_box_fn(shape):
    h, w = shape[:2]
    fw, fh = config.frame_width, config.frame_height

    def box(mob, pad=0.0):
        """(x0, y0, x1, y1) pixel box of a mobject."""
        (l, b), (r, t) = mob.get_corner([-1, -1, 0])[:2], mob.get_corner([1, 1, 0])[:2]
        to_x = lambda x: (x + fw / 2) / fw * w
        to_y = lambda y: (fh / 2 - y) / fh * h
        return (int(to_x(l) - pad), int(to_y(t) - pad),
                int(np.ceil(to_x(r) + pad)), int(np.ceil(to_y(b) + pad)))

    return box


def green_in(frame, box):
    x0, y0, x1, y1 = box
    return is_marker_green(frame[y0:y1, x0:x1])


def stack_green(frame, scene):
    """Marker-green pixels over the residual stream and the blocks (the key's sample triangle and the strip's
    marker lie outside)."""
    x0, y0, x1, y1 = scene.pixel_box(VGroup(scene.lane, scene.blocks), pad=2)
    mask = np.zeros(frame.shape[:2], bool)
    mask[y0:y1, x0:x1] = is_marker_green(frame[y0:y1, x0:x1])
    return mask


def pixel(frame, scene, mob):
    x0, y0, x1, y1 = scene.pixel_box(mob)
    return frame[(y0 + y1) // 2, (x0 + x1) // 2].astype(int)


# ------------------------------------------------------------------------------------------------
# frames follow the trace


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("layer", [0, 3, 6, 14])
def test_marker_is_on_the_stream_beside_the_block_the_trace_says(trace, theme, layer):
    t = trace.n_prompt_tokens  # the first generated token
    frame, scene = still(params_for(trace, [t], theme), (0, layer))
    green = stack_green(frame, scene)
    assert green.sum() > 20, "no marker pixels over the stack"
    ys, xs = np.nonzero(green)
    lane = scene.pixel_box(scene.lane.line, pad=12)
    assert ((xs >= lane[0]) & (xs < lane[2])).all(), "marker pixels off the residual stream"
    for j, block in enumerate(scene.blocks):
        x0, y0, x1, y1 = scene.pixel_box(block.box)
        inside = ((ys >= y0) & (ys < y1)).mean()
        assert inside == (1.0 if j == layer % 5 else 0.0), f"block {j}: {inside:.0%} of the marker at its height"
    tag = scene.blocks[layer % 5].tag  # the block names the real layer
    assert tag is scene.blocks[layer % 5].tags[layer // 5] and tag.original_text.startswith(f"layer {layer}")
    box = scene.blocks[layer % 5].box
    assert box.get_left()[0] < tag.get_left()[0] and tag.get_right()[0] < box.get_right()[0]
    assert box.get_bottom()[1] < tag.get_bottom()[1] and tag.get_top()[1] < box.get_top()[1]


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("layer", [0, 2, 5, 9, 13])
def test_the_strip_shows_the_same_layer_and_never_runs_ahead(trace, theme, layer):
    """The unrolled strip's outlined cell, its marker and the outlined block are the layer the token is in."""
    t = trace.n_prompt_tokens
    frame, scene = still(params_for(trace, [t], theme), (0, layer))
    assert scene.strip.outline.get_center() == pytest.approx(scene.strip.cells[layer].get_center())
    assert scene.highlight.get_center() == pytest.approx(scene.blocks[layer % 5].box.get_center())
    assert scene.strip_marker.get_center()[1] == pytest.approx(scene.strip.cells[layer].get_center()[1])
    ys, _ = np.nonzero(is_marker_green(in_box(frame, scene.pixel_box(scene.strip, pad=30))))
    x0, y0, x1, y1 = scene.pixel_box(scene.strip, pad=30)
    c0, cy0, c1, cy1 = scene.pixel_box(scene.strip.cells[layer])
    assert ys.size and (ys + y0 >= cy0 - 3).all() and (ys + y0 <= cy1 + 3).all(), "the strip's marker elsewhere"
    # filled so far: the layers below, not the ones above
    widths = [f.width for f in scene.strip.fills]
    assert all(w > 0.011 for w in widths[: layer + 1]) and all(w < 0.011 for w in widths[layer + 1:])


def test_the_token_keeps_one_size_and_the_write_shows_the_update(trace):
    """The marker is the token: its size is the same in every block. What a block adds shows as the disc at
    its plus on the stream (and the strip's cell), growing with the update's norm."""
    t, layer = trace.n_prompt_tokens, 7
    sizes = []
    for stop in (0, 1, 3, 7):
        frame, scene = still(params_for(trace, [t]), (0, stop))
        sizes.append(int(stack_green(frame, scene).sum()))
    assert max(sizes) - min(sizes) <= 0.1 * max(sizes), sizes  # anti-aliasing where it crosses the arrows
    top = float(trace.update_norm.max())

    def with_update(v):
        return edited(trace, update_norm=lambda a: a.__setitem__((layer, t), v))

    _, big = still(params_for(with_update(top), [t]), (0, layer))
    _, small = still(params_for(with_update(0.0), [t]), (0, layer))
    j = layer % 5
    assert big.lane.discs[j].width == pytest.approx(2 * big.lane.r_max)
    assert small.lane.discs[j].width == pytest.approx(2 * small.lane.r_min)
    assert big.strip.fills[layer].width > 10 * small.strip.fills[layer].width
    # the same token's marker in both: one size
    assert big.marker.width == pytest.approx(small.marker.width)


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("stop", [(0, 4), (1, 3), (1, 14), (2, 8)])
def test_every_text_is_legible(trace, theme, stop):
    """At 480p every line of text is at least 14 px tall (toy_model.viz.legibility): the guide line, the key,
    the captions, the predictions, the chips."""
    from legible import illegible

    P = trace.n_prompt_tokens
    params = params_for(trace, list(range(P + 2)), theme, guide=True)
    _, scene = still(params, stop)
    assert not illegible(scene.mobjects), illegible(scene.mobjects)[:5]
    if stop[0] == 1 and stop[1] < 5:  # the guided token: a line under the stack with the layer's number
        assert scene.guide_line.submobjects and scene.guide_line.get_bottom()[1] > -config.frame_height / 2


def test_the_guide_line_fits_under_the_stack(trace):
    """The guide's line for any layer and answer token stays inside the frame and left of the key: at most two
    lines, whatever the numbers it quotes."""
    from toy_model.viz.views import TraceView

    P = trace.n_prompt_tokens
    with tempconfig({"dry_run": True, "quality": "low_quality"}):
        scene = BlockFlow(params=params_for(trace, [P], guide=True))
        scene.view = TraceView(trace)
        for t in range(P, min(trace.n_tokens, P + 4)):
            for layer in range(trace.n_layers):
                line = scene.guide_caption(layer, t)
                assert line.get_bottom()[1] > -config.frame_height / 2, (t, layer)
                assert line.get_right()[0] < scene.layout.panel_x, (t, layer)
                assert line.get_top()[1] < scene.layout.stack_bottom, (t, layer)


def test_the_prompt_goes_up_together(trace):
    """The prefill: every selected prompt token's marker at the same height, in one pass; then decode alone."""
    P = trace.n_prompt_tokens
    _, scene = still(params_for(trace, list(range(P + 1))), (0, 6))
    markers = scene.marker.submobjects
    assert len(markers) == min(P, scene.layout.prompt_markers)
    rows = sorted({round(m.get_center()[1], 6) for m in markers})
    assert rows[-1] - rows[0] < 0.3 and scene.marker.get_center()[1] == pytest.approx(
        scene.blocks[1].box.get_center()[1], abs=0.15)
    assert "prefill" in scene.caption.header.original_text
    _, scene = still(params_for(trace, list(range(P + 1))), (1, 0))  # the next pass: the first answer token
    assert not scene.marker.submobjects[0].submobjects or isinstance(scene.marker, type(markers[0]))
    assert "decode" in scene.caption.header.original_text


def test_chosen_experts_light_their_cells(trace):
    t, layer = trace.n_prompt_tokens, 6  # layer 6 is the second repeat's first Latent MoE
    slot = trace.layer_slot(layer)

    def choose(ids, weights):
        return edited(trace, moe_topk_ids=lambda a: a.__setitem__((slot, t), ids),
                      moe_topk_weights=lambda a: a.__setitem__((slot, t), weights))

    frames = {}
    for name, ids in (("low", [0, 1, 2, 3]), ("high", [12, 13, 14, 15])):
        frames[name], scene = still(params_for(choose(ids, [1.0, 0.75, 0.5, 0.25]), [t]), (0, layer))
    cells = scene.details[1].cells
    accent = np.array([int(THEMES["dark"].moe[i:i + 2], 16) for i in (1, 3, 5)])
    off = np.array([int(THEMES["dark"].cell_off[i:i + 2], 16) for i in (1, 3, 5)])

    def lit(frame, e):  # 0 = unlit colour, 1 = full accent
        c = pixel(frame, scene, cells[e])
        return float(np.dot(c - off, accent - off) / np.dot(accent - off, accent - off))

    assert lit(frames["low"], 0) > 0.9 and lit(frames["low"], 12) < 0.1
    assert lit(frames["high"], 12) > 0.9 and lit(frames["high"], 0) < 0.1
    # in proportion to the gate weights: 1, 0.75, 0.5, 0.25 of the strongest
    levels = [lit(frames["high"], e) for e in (12, 13, 14, 15)]
    np.testing.assert_allclose(levels, [1.0, 0.75, 0.5, 0.25], atol=0.08)


def test_each_repeat_is_driven_by_its_own_layers(trace):
    """The MoE block shows layer 1, 6 or 11 depending on the repeat: three different choices."""
    t = trace.n_prompt_tokens
    choices = {1: [0, 1, 2, 3], 6: [4, 5, 6, 7], 11: [8, 9, 10, 11]}
    edits = {}
    for layer, ids in choices.items():
        edits.setdefault("moe_topk_ids", []).append((trace.layer_slot(layer), ids))

    def apply(a):
        for slot, ids in edits["moe_topk_ids"]:
            a[slot, t] = ids

    tr = edited(trace, moe_topk_ids=apply)
    for layer, ids in choices.items():
        frame, scene = still(params_for(tr, [t]), (0, layer))
        cells = scene.details[1].cells
        bright = [pixel(frame, scene, c).sum() for c in cells]
        lit = set(np.argsort(bright)[-4:].tolist())
        assert lit == set(ids), f"layer {layer}: lit cells {sorted(lit)}, trace says {ids}"


def test_mamba_bars_show_the_recorded_state(trace):
    t, layer = trace.n_prompt_tokens, 5
    slot = trace.layer_slot(layer)
    peak = float(trace.mamba_state_norm[slot].max())

    def state(a):
        a[slot, t] = peak * np.linspace(1.0, 0.1, a.shape[2])  # head 0 full, the last one low

    frame, scene = still(params_for(edited(trace, mamba_state_norm=state), [t]), (0, layer))
    gauge = scene.details[0]
    heights = [gauge.bars[h].height for h in range(len(gauge.bars))]
    np.testing.assert_allclose(heights, gauge.bar_height * np.linspace(1.0, 0.1, len(heights)), atol=1e-3)
    # and on screen: the first bar's column is lit much higher than the last one's
    accent = np.array([int(THEMES["dark"].mamba[i:i + 2], 16) for i in (1, 3, 5)])

    def lit_rows(h):
        x0, y0, x1, y1 = scene.pixel_box(gauge.wells[h])
        col = frame[y0:y1, (x0 + x1) // 2].astype(int)
        return int((np.abs(col - accent).sum(axis=1) < 60).sum())

    assert lit_rows(0) > 3 * lit_rows(len(heights) - 1)


def test_attention_shows_the_token_it_attends_to(trace):
    t, layer = trace.n_prompt_tokens + 2, 8
    slot = trace.layer_slot(layer)

    def attend(a):
        a[slot, t] = 0.0
        a[slot, t, :, 1] = 1.0  # every head on token 1 alone

    _, scene = still(params_for(edited(trace, attn_weights=attend), [t]), (0, layer))
    strip = scene.details[3].chips  # the chips the attention strip shows for this token
    assert strip.levels == [pytest.approx(1.0)]  # one chip: unattended tokens are not shown
    assert strip.texts[0].original_text == chip_text(trace.display_text(1))


def test_the_caption_names_the_token(trace):
    t = trace.n_prompt_tokens
    _, scene = still(params_for(trace, [t]), (0, 0))
    assert scene.caption.token.original_text == show_spaces(trace.display_text(t))


# ------------------------------------------------------------------------------------------------
# emoji


def emoji_token(trace, text):
    return next(t for t in range(trace.n_tokens) if trace.display_text(t) == text)


def colourful(rgb: np.ndarray) -> np.ndarray:
    """Pixels (..., 3) with a clear hue that is not the marker's green: emoji colours, never the themes'
    greys (text, panels, outlines)."""
    rgb = rgb.astype(np.int16)
    return ((rgb.max(axis=-1) - rgb.min(axis=-1)) > 60) & ~is_marker_green(rgb)


def in_box(frame, box):
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1]


@pytest.fixture
def no_openmoji(monkeypatch):
    """Token text as it was before OpenMoji: every emoji falls back to [U+XXXX]."""
    def clear():
        emoji._emoji_text_proto.cache_clear()

    clear()
    monkeypatch.setattr(emoji, "openmoji_name", lambda seq: None)
    yield
    clear()


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_the_caption_draws_the_emoji(trace, theme):
    text = "📄➡️🧩"
    frame, scene = still(params_for(trace, [emoji_token(trace, text)], theme), (0, 0))
    token = scene.caption.token
    assert token.original_text == text and len(token.emoji) == 3
    chip = in_box(frame, scene.pixel_box(scene.caption.chip))
    assert colourful(chip).sum() > 100, "no emoji colours in the caption"  # the puzzle piece's blue
    # drawn inside the chip, and the credit OpenMoji asks for is on screen
    assert scene.caption.chip.get_left()[0] < token.get_left()[0] < token.get_right()[0] \
        < scene.caption.chip.get_right()[0]
    assert scene.credit in scene.mobjects


def test_without_openmoji_the_caption_shows_code_points(trace, no_openmoji):
    t = emoji_token(trace, "📄➡️🧩")
    frame, scene = still(params_for(trace, [t]), (0, 0))
    token = scene.caption.token
    # ➡ without U+FE0F is a letter of the font: it stays
    assert len(token.emoji) == 0 and token.laid_out == "[U+1F4C4]➡[U+1F9E9]"
    assert colourful(in_box(frame, scene.pixel_box(scene.caption.chip))).sum() == 0
    assert scene.credit not in scene.mobjects  # no emoji drawn, no credit


def test_the_prediction_list_draws_emoji(trace):
    """After the token before '🤖' the model predicts five emoji; each row's name is drawn, in colour but for
    the grey robot."""
    t = emoji_token(trace, "🤖") - 1
    preds = trace.predictions(t)
    assert all(len(text_units(s)) == 1 and split_emoji(s)[0][1] for _, s, _ in preds)
    th = THEMES["dark"]
    plist = captions.PredictionList(th, [(s, p) for _, s, p in preds], actual=0)

    class Still(block_flow.Scene):
        def construct(self):
            self.camera.background_color = th.background
            self.add(plist)

    with tempconfig({"dry_run": True, "quality": "low_quality", "progress_bar": "none", "verbosity": "ERROR"}):
        scene = Still()
        scene.render()
        frame = scene.renderer.get_frame()[..., :3]
        box = _pixel_box_fn(frame.shape)
    for row, (_, s, _) in zip(plist.rows, preds, strict=True):
        name = row[0]
        assert isinstance(name, EmojiText) and name.original_text == s and len(name.emoji) == 1
        assert s == "🤖" or colourful(in_box(frame, box(name))).sum() > 10, s
    # rows of text and rows of emoji: one pitch, and each name on its row's baseline
    mixed = captions.PredictionList(th, [("🤖", 0.5), (",", 0.2), ("␣co", 0.1), ("The", 0.1), ("📄➡️🧩", 0.1)])
    centres = [row[2].get_center()[1] for row in mixed.rows]
    np.testing.assert_allclose(np.diff(centres), -captions.PredictionList.PITCH, atol=1e-6)
    np.testing.assert_allclose([row[0].baseline - c for row, c in zip(mixed.rows, centres, strict=True)], -0.1,
                               atol=1e-6)


def test_the_credit_sits_in_a_free_corner(trace):
    frame, scene = still(params_for(trace, [emoji_token(trace, "🤖")]), (0, 0))
    credit = scene.credit
    assert " ".join(line.original_text for line in credit) == "emoji: OpenMoji CC BY-SA 4.0"
    fw, fh = config.frame_width, config.frame_height
    assert -fw / 2 < credit.get_left()[0] and -fh / 2 < credit.get_bottom()[1]

    def overlap(a, b):
        (al, ab), (ar, at) = a.get_corner([-1, -1, 0])[:2], a.get_corner([1, 1, 0])[:2]
        (bl, bb), (br, bt) = b.get_corner([-1, -1, 0])[:2], b.get_corner([1, 1, 0])[:2]
        return al < br and bl < ar and ab < bt and bb < at

    others = [*scene.labels, scene.blocks, scene.lane, scene.strip, scene.caption, *scene.details]
    assert not [m for m in others if overlap(credit, m)]


@pytest.mark.parametrize("text,runs", [
    ("➡️", [("➡️", "27A1")]),  # U+FE0F in the text, not in OpenMoji's name
    ("👩‍💻", [("👩‍💻", "1F469-200D-1F4BB")]),  # ZWJ sequence
    ("👩🏽‍💻", [("👩🏽‍💻", "1F469-1F3FD-200D-1F4BB")]),  # ... with a skin tone
    ("❤️‍🔥", [("❤️‍🔥", "2764-FE0F-200D-1F525")]),  # U+FE0F in both
    ("🇩🇪", [("🇩🇪", "1F1E9-1F1EA")]),  # flag: two regional letters
    ("1️⃣", [("1️⃣", "0031-FE0F-20E3")]),  # keycap
    ("⚡ fast", [("⚡", "26A1"), (" fast", None)]),  # emoji by default although the font has a glyph
    ("Tokens 📄➡️🧩 are", [("Tokens ", None), ("📄", "1F4C4"), ("➡️", "27A1"), ("🧩", "1F9E9"), (" are", None)]),
    ("a → b © ✓ 1.", [("a → b © ✓ 1.", None)]),  # symbols that are text, not emoji
])
def test_emoji_splitter(text, runs):
    assert split_emoji(text) == runs
    assert "".join(run for run, _ in runs) == text


def test_unknown_emoji_fall_back_to_code_points():
    missing = next(chr(cp) for cp in range(0x1FAFF, 0x1FA00, -1) if emoji.openmoji_name(chr(cp)) is None)
    assert split_emoji(f"x{missing}y") == [(f"x{missing}y", None)]
    e = EmojiText(f"x{missing}y")
    assert len(e.emoji) == 0 and e.laid_out == f"x[U+{ord(missing):04X}]y"
    # a combining accent is composed first (NFC), so Pango draws one glyph per character and the emoji stays
    assert len(EmojiText("e\u0301🤖").emoji) == 1
    # a ZWJ sequence OpenMoji lacks is drawn as its parts
    assert split_emoji("🤖\u200d🐢") == [("🤖", "1F916"), ("🐢", "1F422")]


def test_emoji_are_never_cut_apart():
    assert text_units("a👩‍💻➡️🇩🇪") == ["a", "👩‍💻", "➡️", "🇩🇪"]
    assert shorten("📄➡️🧩📄➡️🧩", 4) == "📄➡️🧩…"
    assert shorten("📄➡️🧩📄➡️🧩", 3, keep_end=True) == "…➡️🧩"
    assert chip_text(" 📄➡️🧩🤖🐢👀⚡") == "📄➡️🧩🤖🐢…"


def test_emoji_sit_on_the_text_line():
    """Centred where a capital's middle is, about a capital high, spaced like letters."""
    e = EmojiText("H🤖H", font_size=36)
    h1, h2 = e.text[0], e.text[-1]
    (robot,) = e.emoji
    assert abs(robot.get_center()[1] - h1.get_center()[1]) < 0.25 * h1.height
    assert 0.9 * h1.height < robot.height < 1.6 * h1.height
    assert h1.get_right()[0] < robot.get_left()[0] < robot.get_right()[0] < h2.get_left()[0]


# ------------------------------------------------------------------------------------------------
# parameters


def test_token_selection(trace):
    T, P = trace.n_tokens, trace.n_prompt_tokens
    assert parse_tokens("all", trace) == tuple(range(T))
    assert parse_tokens("generated", trace) == tuple(range(P, T))
    assert parse_tokens("0-2, 5,1", trace) == (0, 1, 2, 5)
    assert parse_tokens("auto", trace) == tuple(range(P - 1, min(T, P + 9)))
    assert resolve_params({}, frame_rate=15).tokens == tuple(range(P + block_flow.AUTO_ANSWER_TOKENS))


@pytest.mark.parametrize("env,message", [
    ({"TOY_THEME": "purple"}, "TOY_THEME='purple': the theme must be 'dark' or 'light'"),
    ({"TOY_PACE": "fast"}, "TOY_PACE='fast': the pace must be a number"),
    ({"TOY_PACE": "0"}, "TOY_PACE='0': at 15 fps the pace must be at least 0.23 s per block"),
    ({"TOY_PACE": "nan"}, "TOY_PACE='nan': at 15 fps the pace must be between 0.23 and 5 seconds"),
    ({"TOY_PACE": "5.5"}, "TOY_PACE='5.5': at 15 fps the pace must be between 0.23 and 5 seconds"),
    ({"TOY_TOKENS": "3-1"}, "range '3-1' runs backwards"),
    ({"TOY_TOKENS": "x"}, "TOY_TOKENS='x': 'x' is not a token number"),
    ({"TOY_TOKENS": "0-999"}, "token 999 is outside the trace"),
    ({"TOY_TRACE": "/nonexistent/t.npz"}, "TOY_TRACE: trace file not found: /nonexistent/t.npz"),
])
def test_bad_parameters_are_named_in_one_line(env, message):
    with pytest.raises(FlowError) as err:
        resolve_params(env, frame_rate=15)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_trace_files_are_named(tmp_path, trace):
    junk = tmp_path / "junk.npz"
    junk.write_text("not a trace")
    with pytest.raises(FlowError, match="TOY_TRACE: .*junk.npz is not a trace"):
        resolve_params({"TOY_TRACE": str(junk)})
    other = replace_pattern(trace, "MEM*EMEM*EMEM*-")
    path = save_trace(other, tmp_path / "other.npz")
    with pytest.raises(FlowError, match=r"pattern 'MEM\*EMEM\*EMEM\*-' does not repeat a group of at most 6"):
        resolve_params({"TOY_TRACE": str(path)})


def replace_pattern(trace, pattern):
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    arrays["moe_scores"], arrays["moe_topk_ids"], arrays["moe_topk_weights"] = (
        arrays[n][:-1] for n in ("moe_scores", "moe_topk_ids", "moe_topk_weights"))
    for n in ("moe_latent_norm", "moe_shared_share", "moe_correction_bias"):
        arrays[n] = arrays[n][:-1]
    return Trace(arrays, dict(trace.meta) | {"pattern": pattern})


def test_config_file_defaults_and_env_override(tmp_path, trace):
    shutil_copy = save_trace(trace, tmp_path / "mine.npz")
    cfg = tmp_path / "manim.cfg"
    cfg.write_text("[block_flow]\ntrace = mine.npz\ntokens = 2-3\npace = 0.5\ntheme = light\n")
    p = resolve_params({}, cfg)
    assert (p.trace_path, p.tokens, p.pace, p.theme.name) == (shutil_copy, (2, 3), 0.5, "light")
    p = resolve_params({"TOY_TOKENS": "4", "TOY_THEME": "dark", "TOY_PACE": "0.2"}, cfg, frame_rate=60)
    assert (p.tokens, p.pace, p.theme.name) == ((4,), 0.2, "dark")
    cfg.write_text("[block_flow]\ntheme = sepia\n")
    with pytest.raises(FlowError, match=r"manim.cfg \[block_flow\] theme='sepia'"):
        resolve_params({}, cfg)


def test_shipped_config_names_the_default_trace():
    p = resolve_params({})
    assert p.trace_path.resolve() == DEFAULT_TRACE.resolve() and p.theme.name in ("dark", "light")


def manim_render(tmp_path, env, *args, timeout=300):
    env = {**os.environ, **env}
    cmd = [sys.executable, "-m", "manim", "render", "-ql", "--media_dir", str(tmp_path / "media"), *args,
           str(ROOT / "scenes" / "block_flow.py")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("env,message", [
    ({"TOY_THEME": "purple"}, "error: TOY_THEME='purple'"),
    ({"TOY_TRACE": "/nonexistent.npz"}, "error: TOY_TRACE: trace file not found"),
])
def test_manim_cli_stops_with_one_line_before_rendering(tmp_path, env, message):
    r = manim_render(tmp_path, env)
    assert r.returncode == 2
    assert r.stderr.strip().startswith(message) and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "media").exists()  # nothing was set up, let alone rendered


TOO_SHORT = "is too short for the current frame rate"  # Manim's warning for a play() shorter than a frame


@pytest.mark.slow
def test_real_render_of_two_tokens(tmp_path, trace):
    """One real -ql render through the manim CLI at the least pace 15 fps allows: its video has the marker
    inside the stack, and Manim warns of no animation too short for a frame."""
    import av

    t = trace.n_prompt_tokens
    r = manim_render(tmp_path, {"TOY_TOKENS": f"{t}-{t + 1}", "TOY_PACE": "0.23"}, "--disable_caching")
    assert r.returncode == 0, r.stderr[-2000:]
    assert TOO_SHORT not in r.stdout + r.stderr and "WARNING" not in r.stdout + r.stderr, r.stdout[-2000:]
    videos = list((tmp_path / "media").rglob("BlockFlow.mp4"))
    assert len(videos) == 1
    with av.open(str(videos[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert (480, 854, 3) == frames[0].shape
    # the title card (4.8 s), 2 tokens x 15 hops x 0.23 s (the first guided: 5 x 1.5 s), 2 predictions of 2.5 s
    assert 200 <= len(frames) <= 420, len(frames)
    assert sum(is_marker_green(f[:, : f.shape[1] // 2]).sum() > 20 for f in frames) > len(frames) // 2


def test_manims_warning_is_the_one_the_render_test_looks_for():
    """The render test above greps for TOO_SHORT: check that Manim still words its warning that way."""
    import logging

    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("manim")
    level = logger.level  # other tests turn Manim's logging down to errors
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        with tempconfig({"frame_rate": 15}):
            BlockFlow.validate_run_time(0.05, BlockFlow.play, "total run_time")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any(TOO_SHORT in m for m in seen), seen


# ------------------------------------------------------------------------------------------------
# the least pace: every animation of the scene lasts at least one frame


@pytest.mark.parametrize("fps,pace,message", [
    (15, "0.05", "TOY_PACE='0.05': at 15 fps the pace must be at least 0.23 s per block (its shortest step, 0.3 "
                 "of the pace, must last one frame)"),
    (15, "0.22", "TOY_PACE='0.22': at 15 fps the pace must be at least 0.23 s per block"),
    (15, "0.23", None),
    (15, "0.2223", None),  # the move, 0.3 of it, is one frame at 15 fps from 0.2222...
    (15, "5", None),
    (60, "0.05", "TOY_PACE='0.05': at 60 fps the pace must be at least 0.06 s per block"),
    (60, "0.055", "TOY_PACE='0.055': at 60 fps the pace must be at least 0.06 s per block"),
    (60, "0.06", None),
    (60, "5.01", "TOY_PACE='5.01': at 60 fps the pace must be between 0.06 and 5 seconds per block"),
])
def test_the_pace_must_give_every_animation_a_frame(fps, pace, message):
    if message is None:
        assert resolve_params({"TOY_PACE": pace}, frame_rate=fps).pace == float(pace)
        assert float(pace) * block_flow.SHORTEST_STEP >= 1 / fps - 1e-4
    else:
        with pytest.raises(FlowError) as err:
            resolve_params({"TOY_PACE": pace}, frame_rate=fps)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_the_frame_rate_comes_from_manims_config_when_called():
    with tempconfig({"frame_rate": 15}):
        with pytest.raises(FlowError, match="at 15 fps the pace must be at least 0.23"):
            resolve_params({"TOY_PACE": "0.2"})
    with tempconfig({"frame_rate": 60}):
        assert resolve_params({"TOY_PACE": "0.2"}).pace == 0.2


def test_the_shortest_step_is_the_scenes_shortest_animation(trace):
    """SHORTEST_STEP is read off the scene: record every animation (nested ones too) and every wait of a whole
    token, across all three repeats, and find the shortest as a fraction of the pace."""
    from manim import AnimationGroup

    pace, durations = 0.4, []

    def walk(anim, run_time=None):
        durations.append(anim.run_time if run_time is None else run_time)
        if isinstance(anim, AnimationGroup):  # Succession too
            for a in anim.animations:
                walk(a)

    class Recording(BlockFlow):
        def play(self, *animations, **kwargs):
            for a in animations:
                a = a.build() if hasattr(a, "build") else a  # an .animate not yet built
                walk(a, kwargs.get("run_time"))
            return super().play(*animations, **kwargs)

    with tempconfig({"dry_run": True, "quality": "low_quality", "disable_caching": True, "progress_bar": "none",
                     "verbosity": "ERROR"}):
        scene = Recording(params=params_for(trace, [trace.n_prompt_tokens], pace=pace))
        scene.renderer.update_frame = lambda *args, **kwargs: None  # no drawing: only the timings matter
        scene.render()
    assert len(durations) > 3 * 5
    assert min(durations) / pace == pytest.approx(block_flow.SHORTEST_STEP)


# ------------------------------------------------------------------------------------------------
# edits a user might make to scenes/manim.cfg: one line naming the problem, or the edit works


SHIPPED_CFG = (ROOT / "scenes" / "manim.cfg").read_text(encoding="utf-8")
LAST = SHIPPED_CFG.count("\n")  # line numbers, for the messages: the file's last line, [block_flow]'s pace ...
PACE = SHIPPED_CFG.splitlines().index("pace = 1.0") + 1
THEME = SHIPPED_CFG.splitlines().index("theme = dark") + 1  # ... and the theme's


def cfg_edit(name: str, folder: Path) -> bytes:
    """The shipped manim.cfg with one edit, to be written into folder; its trace is the default trace."""
    text = SHIPPED_CFG.replace("trace = ../traces/default.npz", f"trace = {DEFAULT_TRACE}")
    assert text != SHIPPED_CFG
    if name == "percent":  # configparser would read '%' as interpolation; here it is a '%'
        save_trace(load_trace(DEFAULT_TRACE), folder / "100% real.npz")  # relative to the config file
        return text.replace(f"trace = {DEFAULT_TRACE}", "trace = 100% real.npz").encode()
    if name == "percent in [CLI]":
        return text.replace("disable_caching = True", "disable_caching = True\noutput_file = run_100%").encode()
    if name == "invalid UTF-8":
        return text.replace("theme = dark", "theme = dark\n# caf\u00e9").encode("latin-1")
    if name == "byte-order mark":
        return b"\xef\xbb\xbf" + text.encode()
    if name == "bad boolean in [CLI]":
        return text.replace("disable_caching = True", "disable_caching = maybe").encode()
    if name == "bad number in [CLI]":
        return text.replace("disable_caching = True", "frame_rate = fast").encode()
    if name == "quality Manim lacks":
        return text.replace("disable_caching = True", "quality = ultra").encode()
    if name == "duplicate key":  # a second pace right after [block_flow]'s
        return text.replace("pace = 1.0\n", "pace = 1.0\npace = 0.4\n", 1).encode()
    if name == "duplicate section":
        return (text + "\n[CLI]\ndisable_caching = False\n").encode()
    if name == "no [block_flow]":
        return text[:text.index("[block_flow]")].encode()
    if name == "unknown key":
        return text.replace("pace = 1.0", "pase = 1.0", 1).encode()
    if name == "inline comment":
        return text.replace("pace = 1.0", "pace = 0.5  # slower", 1).encode()
    if name == "line without '='":
        return text.replace("theme = dark", "theme dark").encode()
    if name == "key before any section":
        return ("pace = 0.5\n" + text).encode()
    if name == "pace under a frame":
        return text.replace("pace = 1.0", "pace = 0.1", 1).encode()
    raise AssertionError(name)


# (edit, resolve_params' error or None, apply_cli_defaults' error or None); the errors are regexes
CFG_EDITS = [
    ("percent", None, None),
    ("percent in [CLI]", None, None),
    ("invalid UTF-8", rf"manim.cfg line {THEME + 1} is not UTF-8 text \(byte 0xe9\): save the file as UTF-8",
     rf"manim.cfg line {THEME + 1} is not UTF-8 text"),
    ("byte-order mark", None, None),
    ("bad boolean in [CLI]", None, r"manim.cfg \[CLI\] disable_caching='maybe': Manim needs True or False here"),
    ("bad number in [CLI]", None, r"manim.cfg \[CLI\] frame_rate='fast': Manim needs a number here"),
    ("quality Manim lacks", None, r"manim.cfg \[CLI\] quality='ultra': Manim refuses it \(quality must be one of"),
    ("duplicate key", rf"manim.cfg line {PACE + 1}: key 'pace' appears twice in section \[block_flow\]; keep one",
     r"key 'pace' appears twice"),
    ("duplicate section", rf"manim.cfg line {LAST + 2}: section \[CLI\] appears twice; merge the two",
     r"section \[CLI\] appears twice"),
    ("no [block_flow]", None, None),
    ("unknown key", r"manim.cfg \[block_flow\] has a key 'pase' the scene does not know: the keys are trace, "
                    r"tokens, pace, theme", None),
    ("inline comment", r"manim.cfg \[block_flow\] pace='0.5  # slower': a comment must go on a line of its own",
     None),
    ("line without '='", rf"manim.cfg line {THEME}: 'theme dark' is not a 'key = value' line", r"'theme dark' is not"),
    ("key before any section", r"manim.cfg line 1: 'pace = 0.5' comes before any \[section\] header",
     r"comes before any \[section\] header"),
    ("pace under a frame", r"manim.cfg \[block_flow\] pace='0.1': at 15 fps the pace must be at least 0.23 s", None),
]


@pytest.mark.parametrize("edit,params_error,cli_error", CFG_EDITS, ids=[e[0] for e in CFG_EDITS])
def test_config_file_edits(tmp_path, edit, params_error, cli_error):
    cfg = tmp_path / "manim.cfg"
    cfg.write_bytes(cfg_edit(edit, tmp_path))
    if params_error:
        with pytest.raises(FlowError) as err:
            resolve_params({}, cfg, frame_rate=15)
        assert re.search(params_error, str(err.value)) and "\n" not in str(err.value), str(err.value)
    else:
        p = resolve_params({}, cfg, frame_rate=15)
        if edit == "percent":
            assert p.trace_path == tmp_path / "100% real.npz"
        if edit == "no [block_flow]":  # the built-in defaults, the default trace among them
            assert (p.trace_path, p.pace, p.theme.name) == (DEFAULT_TRACE.resolve(), 1.0, "dark")
    with tempconfig({}):
        if cli_error:
            with pytest.raises(FlowError) as err:
                apply_cli_defaults(cfg, argv=[])
            assert re.search(cli_error, str(err.value)) and "\n" not in str(err.value), str(err.value)
        else:
            applied = apply_cli_defaults(cfg, argv=[])
            assert applied["disable_caching"] is True
            if edit == "percent in [CLI]":
                assert applied["output_file"] == config.output_file == "run_100%"


def test_a_missing_config_file_means_the_defaults(tmp_path):
    cfg = tmp_path / "manim.cfg"  # not there
    p = resolve_params({}, cfg, frame_rate=15)
    assert (p.trace_path, p.pace, p.theme.name) == (DEFAULT_TRACE.resolve(), 1.0, "dark")
    assert apply_cli_defaults(cfg, argv=[]) == {}


def scenes_copy(tmp_path: Path, edit: str) -> Path:
    """scenes/ copied into tmp_path with an edited manim.cfg (the repo's own file is never touched)."""
    folder = tmp_path / "scenes"
    folder.mkdir()
    for name in ("block_flow.py",):
        (folder / name).write_bytes((ROOT / "scenes" / name).read_bytes())
    (folder / "manim.cfg").write_bytes(cfg_edit(edit, folder))
    return folder


@pytest.mark.parametrize("edit,message", [
    ("bad boolean in [CLI]", "error: scenes/manim.cfg [CLI] disable_caching='maybe': Manim needs True or False"),
    ("invalid UTF-8", f"error: scenes/manim.cfg line {THEME + 1} is not UTF-8 text (byte 0xe9)"),
    ("duplicate key", f"error: scenes/manim.cfg line {PACE + 1}: key 'pace' appears twice in section [block_flow]"),
    ("pace under a frame", "error: scenes/manim.cfg [block_flow] pace='0.1': at 15 fps the pace must be at "
                           "least 0.23 s per block"),
    ("percent", None),
])
def test_manim_cli_with_an_edited_config(tmp_path, edit, message):
    """Through `manim render` (run from beside the scenes folder, as from the repo root): one line, exit 2, no
    traceback, nothing written; or, for a good edit, a dry run that succeeds."""
    scenes = scenes_copy(tmp_path, edit)
    media = tmp_path / "media"
    cmd = [sys.executable, "-m", "manim", "--hide-splash", "render", "-ql", "--dry_run", "--media_dir", str(media),
           "-v", "WARNING", "--progress_bar", "none", str(scenes / "block_flow.py")]
    r = subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "TOY_TOKENS": "0"}, capture_output=True, text=True,
                       timeout=300)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    if message is None:
        assert r.returncode == 0, r.stderr[-2000:]
        assert not r.stderr.strip() and TOO_SHORT not in r.stdout
    else:
        assert r.returncode == 2
        assert r.stderr.strip().startswith(message) and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not media.exists()  # nothing was set up, let alone rendered


# ------------------------------------------------------------------------------------------------
# manim.cfg [CLI] defaults, wherever Manim runs from


def test_cli_defaults_apply_unless_the_command_line_sets_them(tmp_path, monkeypatch):
    cfg = tmp_path / "manim.cfg"
    cfg.write_text("[CLI]\ndisable_caching = True\nframe_rate = 7\nmax_files_cached = 5\n"
                   "quality = medium_quality\nno_such_key = 1\n")
    with tempconfig({"disable_caching": False}):
        before = config.frame_rate
        applied = apply_cli_defaults(cfg, ["render", "--fps=30", "-ql", "scene.py"])
        # --fps is frame_rate's other flag and -ql sets quality: both left alone
        assert applied == {"disable_caching": True, "max_files_cached": 5}
        assert config.disable_caching is True and config.max_files_cached == 5 and config.frame_rate == before
    with tempconfig({}):
        assert apply_cli_defaults(cfg, ["render", "--disable_caching", "--frame_rate", "30",
                                                   "-q", "l", "--max_files_cached=9", "scene.py"]) == {}
        # Manim has read a config file already: from the working directory, or one it was given
        assert apply_cli_defaults(cfg, ["render", "-c", "other.cfg", "scene.py"]) == {}
        monkeypatch.chdir(tmp_path)
        assert apply_cli_defaults(cfg, ["render", "scene.py"]) == {}


@pytest.mark.slow
def test_render_from_the_repo_root_uses_the_scene_folders_cfg(tmp_path, trace):
    """No --disable_caching given: scenes/manim.cfg's disable_caching = True still holds, so Manim names the
    partial movies uncached_NNNNN instead of hashing every play (the slow part)."""
    assert "disable_caching = True" in (ROOT / "scenes" / "manim.cfg").read_text()
    r = manim_render(tmp_path, {"TOY_TOKENS": "3", "TOY_PACE": "0.23"})
    assert r.returncode == 0, r.stderr[-2000:]
    partial = sorted(p.name for p in (tmp_path / "media").rglob("partial_movie_files/**/*.mp4"))
    assert partial and all(name.startswith("uncached_") for name in partial), partial[:3]
