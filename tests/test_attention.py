"""The Attention scene: its frames follow the trace; parameters and traces it cannot use stop with one line.

Frames come from in-process dry runs of the scene stopped after a beat (`stop_after`); the renderer then draws
the scene as it stands and `renderer.get_frame()` is exactly what that moment shows. Numbers on screen are
checked against numpy computations from the trace's arrays, and pixels against the colours the kit draws.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from manim import Text, config, tempconfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scenes"))

import attention  # noqa: E402
from attention import BEATS, Attention, AttnParams, kib, resolve_params  # noqa: E402
from frames import is_marker_green  # noqa: E402

from toy_model.published import kv_bytes_per_token  # noqa: E402
from toy_model.trace_file import Trace, load_trace, make_trace, save_trace  # noqa: E402
from toy_model.viz.attention_view import AttentionView, cosine, kv_head_of  # noqa: E402
from toy_model.viz.heads import weight_rgb  # noqa: E402
from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio, small_texts  # noqa: E402
from toy_model.viz.matrix import HeatColors  # noqa: E402
from toy_model.viz.params import ParamError  # noqa: E402
from toy_model.viz.theme import THEMES  # noqa: E402

TRACE = ROOT / "traces" / "attention.npz"
ROW = 22  # a row of layer 3 with a clear look back (token 22 '.', head 0 puts 0.72 on token 20)


@pytest.fixture(scope="module")
def trace():
    return load_trace(TRACE)


def params_for(trace, layer=3, row=ROW, theme="dark", pace=0.14):  # the least pace: fewest frames
    return AttnParams(trace, TRACE, layer, row, pace, THEMES[theme])


def edited(trace, meta=None, **changes) -> Trace:
    """A copy of trace with arrays changed in place (edited(t, attn_weights=lambda a: ...)), validated."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for name, fn in changes.items():
        fn(arrays[name])
    return make_trace(arrays, dict(trace.meta) | (meta or {}))


class Recording(Attention):
    """The scene, keeping at the end of every beat the frame as it stands and what a legibility check needs."""

    def __init__(self, *args, **kwargs):
        self.frames, self.notes = {}, {}
        super().__init__(*args, **kwargs)

    def after_beat(self, beat):
        self.renderer.static_image = None
        self.draw(self)
        self.frames[beat] = self.renderer.get_frame()[..., :3].copy()
        self.notes[beat] = {"small": small_texts(self.mobjects, 480),
                            "texts": [m for top in self.mobjects for m in top.get_family() if isinstance(m, Text)]}


def still(params, stop_after=None, quality="low_quality"):
    """(frame RGB (H, W, 3), scene) at the end of beat `stop_after` (None: the whole scene); scene.frames holds
    the frame at the end of every beat up to there."""
    with tempconfig({"dry_run": True, "quality": quality, "disable_caching": True, "progress_bar": "none",
                     "verbosity": "ERROR"}):
        scene = Recording(params=params, stop_after=stop_after)
        scene.draw = scene.renderer.update_frame
        scene.renderer.update_frame = lambda *args, **kwargs: None  # only the beats' last frames matter
        scene.render()
        scene.to_pixel = _to_pixel_fn(scene.frames[BEATS[0]].shape)
    return scene.frames[stop_after or BEATS[-1]], scene


@pytest.fixture(scope="module", params=["dark", "light"])
def whole(request, trace):
    """(theme, scene) of the whole scene over the bundled trace, rendered once per theme."""
    return request.param, still(params_for(trace, theme=request.param))[1]


@pytest.fixture(scope="module")
def dark(trace):
    return still(params_for(trace))[1]


def _to_pixel_fn(shape):
    h, w = shape[:2]
    fw, fh = config.frame_width, config.frame_height

    def to_pixel(point):
        """(x, y) pixel of a scene point."""
        return int((point[0] + fw / 2) / fw * w), int((fh / 2 - point[1]) / fh * h)

    return to_pixel


def pixel_box(scene, mob):
    """(x0, y0, x1, y1) pixels of a mobject's bounding box."""
    x0, y0 = scene.to_pixel(mob.get_corner([-1, 1, 0]))
    x1, y1 = scene.to_pixel(mob.get_corner([1, -1, 0]))
    return x0, y0, x1, y1


def rgb(color):
    h = color.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)])


def cell_pixel(frame, scene, h, i, j):
    x, y = scene.to_pixel(scene.heatmaps[h].cell_center(i, j))
    return frame[y, x].astype(int)


def one_hot(trace, layer, q, head, key):
    """attn_weights edited so that query token q of `head` puts all its weight on `key` (rows still sum to 1,
    causal)."""
    slot = trace.layer_slot(layer)

    def edit(a):
        a[slot, q, head] = 0.0
        a[slot, q, head, key] = 1.0

    return edit


# ------------------------------------------------------------------------------------------------
# the heatmaps follow the trace


def test_heatmap_cells_are_the_recorded_weights(trace, whole):
    """Every cell of every head is drawn in weight_rgb of its weight: sample a spread of cells."""
    theme, scene = whole
    frame = scene.frames["maps"]
    view = AttentionView(trace)
    T = trace.n_tokens
    for h in range(view.n_q):
        w = view.weights(3, h)
        for i, j in [(0, 0), (ROW, 20), (ROW, 0), (T - 1, T - 1), (T - 1, 5), (17, 7), (30, 12)]:
            want = np.round(weight_rgb(np.array(w[i, j]), THEMES[theme])).astype(int)
            np.testing.assert_allclose(cell_pixel(frame, scene, h, i, j), want, atol=2, err_msg=f"head {h} ({i}, {j})")
        # above the diagonal: the background (masked, transparent)
        np.testing.assert_array_equal(cell_pixel(frame, scene, h, 3, 30), rgb(THEMES[theme].background))


def test_changing_one_row_changes_that_row_of_that_head_only(trace):
    q, head, key = 33, 2, 5
    frame0, scene = still(params_for(trace), "maps")  # stopped there: the same pieces as the edited run
    frame1, _ = still(params_for(edited(trace, attn_weights=one_hot(trace, 3, q, head, key))), "maps")
    changed = np.argwhere((frame0 != frame1).any(axis=-1))
    assert len(changed), "the edit changed nothing on screen"
    hm = scene.heatmaps[head]
    x0, y0, _, _ = pixel_box(scene, hm.image)
    top_row = scene.to_pixel(hm.cell_center(q, 0) + [0, hm.cell_height / 2, 0])[1]
    bottom_row = scene.to_pixel(hm.cell_center(q, 0) - [0, hm.cell_height / 2, 0])[1]
    right = scene.to_pixel(hm.cell_center(q, q) + [hm.cell_width / 2, 0, 0])[0]
    ys, xs = changed[:, 0], changed[:, 1]
    assert ys.min() >= top_row - 1 and ys.max() <= bottom_row + 1, (ys.min(), ys.max(), top_row, bottom_row)
    assert xs.min() >= x0 - 1 and xs.max() <= right + 1
    th = THEMES["dark"]
    np.testing.assert_allclose(cell_pixel(frame1, scene, head, q, key), rgb(th.text), atol=2)  # weight 1
    np.testing.assert_allclose(cell_pixel(frame1, scene, head, q, key + 3), rgb(th.cell_off), atol=2)  # weight 0
    for other in {0, 1, 2, 3} - {head}:
        box = pixel_box(scene, scene.heatmaps[other])
        assert not (frame0[box[1]:box[3], box[0]:box[2]] != frame1[box[1]:box[3], box[0]:box[2]]).any()


def test_the_row_lists_the_keys_each_head_weighs_most(trace, dark):
    scene = dark
    view = AttentionView(trace)
    for h, keys in enumerate(scene.key_lists):
        top = view.top_keys(3, ROW, h, 3)
        row_w = trace.attn_weights[trace.layer_slot(3), ROW, h, : ROW + 1]
        assert [k for k, _ in top] == list(np.argsort(-row_w, kind="stable")[:3])
        for (k, w), row in zip(top, keys.rows, strict=True):
            assert row[0].original_text.startswith(f"{k} ‘"), row[0].original_text
            assert row[2].original_text == f"{w:.2f}"
        # the largest is framed in its map, on the picked row
        np.testing.assert_allclose(scene.picks[h].get_center(), scene.heatmaps[h].cell_center(ROW, top[0][0]),
                                   atol=1e-6)
        np.testing.assert_allclose(scene.row_boxes[h].get_center()[1], scene.heatmaps[h].cell_center(ROW, 0)[1],
                                   atol=1e-6)
    # an edited row: head 1 of token 22 looks at token 4 alone
    _, scene = still(params_for(edited(trace, attn_weights=one_hot(trace, 3, ROW, 1, 4))), "row")
    first = scene.key_lists[1].rows[0]
    assert first[0].original_text.startswith("4 ‘") and first[2].original_text == "1.00"
    np.testing.assert_allclose(scene.picks[1].get_center(), scene.heatmaps[1].cell_center(ROW, 4), atol=1e-6)


def test_the_auto_row_is_the_sharpest_look_back(trace):
    view = AttentionView(trace)
    r = view.sharpest_row(3)
    w = trace.attn_weights[trace.layer_slot(3)]
    best = max(w[t, h, k] for t in range(trace.n_tokens) for h in range(4) for k in range(1, t))
    assert max(w[r, h, k] for h in range(4) for k in range(1, r)) == best
    assert resolve_params({}, frame_rate=15).row == r


# ------------------------------------------------------------------------------------------------
# grouped-query attention as the model runs it


def test_query_heads_read_the_key_value_heads_the_model_repeats():
    """kv_head_of is what toy_model.layers.Attention computes: attention per query head with the key/value head
    kv_head_of names reproduces the module's output."""
    import torch

    from toy_model import HybridConfig
    from toy_model.layers import Attention as AttentionLayer

    cfg = HybridConfig(kernels="torch")
    layer = AttentionLayer(cfg).eval()
    x = torch.randn(1, 7, cfg.d_model, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = layer(x)
        q = layer.q_proj(x).view(1, 7, layer.n_q, layer.hd).transpose(1, 2)
        k = layer.k_proj(x).view(1, 7, layer.n_kv, layer.hd).transpose(1, 2)
        v = layer.v_proj(x).view(1, 7, layer.n_kv, layer.hd).transpose(1, 2)
        kv = kv_head_of(layer.n_q, layer.n_kv)
        mask = torch.ones(7, 7, dtype=torch.bool).tril()
        heads = []
        for h in range(layer.n_q):
            s = (q[:, h] @ k[:, kv[h]].transpose(-1, -2)) * layer.hd**-0.5
            heads.append(torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v[:, kv[h]])
        got = layer.o_proj(torch.stack(heads, 1).transpose(1, 2).reshape(1, 7, -1))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert kv_head_of(4, 2) == [0, 0, 1, 1] and kv_head_of(32, 2) == [0] * 16 + [1] * 16


@pytest.mark.parametrize("n_kv", [2, 1, 4])
def test_the_diagram_links_each_query_head_to_its_key_value_head(trace, n_kv):
    cfg = dict(trace.meta["model_config"], num_key_value_heads=n_kv)
    _, scene = still(params_for(edited(trace, meta={"model_config": cfg})), "heads")
    d = scene.gqa
    assert len(d.queries) == 4 and len(d.kvs) == n_kv
    for h, link in enumerate(d.links):
        np.testing.assert_allclose(link.get_start(), d.queries[h].get_bottom(), atol=1e-6)
        np.testing.assert_allclose(link.get_end(), d.kvs[kv_head_of(4, n_kv)[h]].get_top(), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# no positional encoding: the residual vectors


def test_the_same_token_enters_layer_0_identical_and_layer_3_different(trace, dark):
    shown = dark.order_shown
    a, b = shown["pair"]
    assert trace.token_ids[a] == trace.token_ids[b] and (a, b) == (6, 15)  # ' emoji' in the prompt and the answer
    layers = trace.resid_detail_layers.tolist()
    e_a, e_b = (trace.resid_detail_in[layers.index(0), t] for t in (a, b))
    r_a, r_b = (trace.resid_detail_in[layers.index(3), t] for t in (a, b))
    assert np.array_equal(e_a, e_b)  # the embedding: the same row of the table
    note0, note1 = shown["notes"]
    assert note0[0].original_text == "cos 1.00" and note0[1].original_text == "identical"
    cos = float(r_a @ r_b / np.linalg.norm(r_a) / np.linalg.norm(r_b))
    assert note1[0].original_text == f"cos {cos:.2f}" and len(note1) == 1 and cos < 0.5
    assert shown["layer"] == 3


def test_the_order_beat_follows_the_residual_vectors(trace):
    """Make the vectors entering layer 3 at the two positions equal: the scene then says so."""
    j = trace.resid_detail_layers.tolist().index(3)

    def same(a):
        a[j, 15] = a[j, 6]

    _, scene = still(params_for(edited(trace, resid_detail_in=same)), "order")
    note1 = scene.order_shown["notes"][1]
    assert [m.original_text for m in note1] == ["cos 1.00", "identical"]


def test_the_order_beat_uses_the_chosen_layer_when_recorded(trace):
    _, scene = still(params_for(trace, layer=13, row=18), "order")
    a, b = scene.order_shown["pair"]
    assert scene.order_shown["layer"] == 13
    j = trace.resid_detail_layers.tolist().index(13)
    cos = cosine(trace.resid_detail_in[j, a], trace.resid_detail_in[j, b])
    assert scene.order_shown["notes"][1][0].original_text == f"cos {cos:.2f}"


# ------------------------------------------------------------------------------------------------
# why only a few layers attend: the numbers


def test_cache_numbers_come_from_the_trace(trace, dark):
    shown = dark.cost_shown
    attn = trace.layers_of("attention")
    mamba = trace.layers_of("mamba")
    per_token = int(sum(trace.cache_bytes[-1, i] for i in attn) // trace.cache_tokens[-1])
    cfg = trace.meta["model_config"]
    assert shown["kv_per_token"] == per_token == kv_bytes_per_token(len(attn), cfg["num_key_value_heads"],
                                                                     cfg["head_dim"], 4)
    np.testing.assert_array_equal(trace.cache_bytes[:, attn].sum(1), per_token * trace.cache_tokens)  # linear
    state = int(trace.cache_bytes[-1, mamba].sum())
    assert shown["state"] == state and (trace.cache_bytes[:, mamba].sum(1) == state).all()  # constant
    texts = [m.original_text for m in shown["readings"]]
    assert texts == [kib(per_token * trace.n_tokens), kib(state), f"after {trace.n_tokens} tokens of this trace"]
    # the bars' lengths: the cache's against the state's, as the numbers say
    kv_bar, state_bar = shown["bars"]
    assert kv_bar.width / state_bar.width == pytest.approx(per_token * trace.n_tokens / state, rel=1e-3)
    look = shown["look"]
    w = trace.attn_weights
    assert look.weight == pytest.approx(float(w[trace.layer_slot(look.layer), look.query, look.head, look.key]))
    assert look.back >= 8 and look.key > 0


def test_the_sharpest_look_follows_the_trace(trace):
    """Give one head a perfect far look: the cost beat reports that one."""
    edit = one_hot(trace, 8, 40, 1, 3)
    _, scene = still(params_for(edited(trace, attn_weights=edit)), "cost")
    look = scene.cost_shown["look"]
    assert (look.layer, look.head, look.query, look.key, look.weight) == (8, 1, 40, 3, 1.0)
    text = " ".join(line.original_text for line in scene.cost_shown["left"][1])
    assert "layer 8, query head 1, token 40" in text and "1.00 of its weight on token 3" in text
    assert "37 tokens back" in text


# ------------------------------------------------------------------------------------------------
# legibility


def test_every_text_is_large_enough_and_contrasts(whole):
    theme, scene = whole
    th = THEMES[theme]
    assert list(scene.notes) == list(BEATS)
    for beat, note in scene.notes.items():
        assert note["small"] == [], (beat, note["small"])
        for t in note["texts"]:
            color = t.get_fill_color().to_hex()
            worst = min(contrast_ratio(color, th.background), contrast_ratio(color, th.panel))
            assert worst >= TEXT_CONTRAST, (beat, t.text, color, worst)


def test_graphics_contrast_and_no_green(whole):
    theme, scene = whole
    th = THEMES[theme]
    heat = HeatColors.for_theme(th)
    for color in (th.attention, th.mamba, th.moe, th.muted, th.text, heat.negative, heat.positive):
        assert contrast_ratio(color, th.background) >= GRAPHIC_CONTRAST, color
    top = "#" + "".join(f"{int(round(c)):02x}" for c in weight_rgb(np.array(1.0), th))
    assert contrast_ratio(top, th.background) >= GRAPHIC_CONTRAST
    for beat in ("heads", "maps", "row", "order"):  # no emoji on screen there: not one green pixel
        assert not is_marker_green(scene.frames[beat]).any(), beat


def test_at_1080p_the_heatmap_cells_are_crisp(trace):
    """Nearest-neighbour pixels: inside a cell every pixel has the cell's colour (no blur across cells)."""
    frame, scene = still(params_for(trace), "maps", quality="high_quality")
    hm = scene.heatmaps[0]
    for i, j in [(ROW, 20), (10, 3), (40, 39)]:
        c = hm.cell_center(i, j)
        x0, y0 = scene.to_pixel(c + [-hm.cell_width * 0.3, hm.cell_height * 0.3, 0])
        x1, y1 = scene.to_pixel(c + [hm.cell_width * 0.3, -hm.cell_height * 0.3, 0])
        patch = frame[y0:y1 + 1, x0:x1 + 1].reshape(-1, 3)
        assert len(patch) >= 9 and (patch == patch[0]).all(), (i, j)


# ------------------------------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize("env,message", [
    ({"TOY_LAYER": "4"}, "TOY_LAYER='4': layer 4 is a Latent MoE layer; the attention layers are 3, 8, 13"),
    ({"TOY_LAYER": "x"}, "TOY_LAYER='x': the layer must be auto or one of the trace's attention layers: 3, 8, 13"),
    ({"TOY_LAYER": "15"}, "TOY_LAYER='15': the trace has layers 0-14; its attention layers are 3, 8, 13"),
    ({"TOY_ROW": "42"}, "TOY_ROW='42': token 42 is outside the trace, which has 42 tokens (0-41)"),
    ({"TOY_ROW": "first"}, "TOY_ROW='first': the row must be auto or a token number, 0-41"),
    ({"TOY_PACE": "0.1"}, "TOY_PACE='0.1': at 15 fps the pace must be at least 0.14 s per step"),
    ({"TOY_PACE": "6"}, "TOY_PACE='6': at 15 fps the pace must be between 0.14 and 5 seconds per step"),
    ({"TOY_THEME": "sepia"}, "TOY_THEME='sepia': the theme must be 'dark' or 'light'"),
    ({"TOY_TRACE": "/nonexistent.npz"}, "TOY_TRACE: trace file not found: /nonexistent.npz"),
    ({"TOY_TRACE": str(ROOT / "traces" / "default.npz")},
     "TOY_TRACE: this trace holds the residual vectors entering layers: 3; the scene needs layer 0 and an attention "
     "layer (3, 8, 13); record one with python -m toy_model trace --detail resid:0 --detail resid:3"),
])
def test_bad_parameters_are_named_in_one_line(env, message):
    with pytest.raises(ParamError) as err:
        resolve_params(env, frame_rate=15)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_traces_the_scene_cannot_show_are_named(trace, tmp_path):
    no_repeats = edited(trace, token_ids=lambda a: a.__setitem__(slice(None), np.arange(len(a)) + 300))
    path = save_trace(no_repeats, tmp_path / "unique.npz")
    with pytest.raises(ParamError, match="TOY_TRACE: no token appears twice in this trace"):
        resolve_params({"TOY_TRACE": str(path)})
    arrays = {k: v for k, v in trace.arrays.items() if not k.startswith("cache_")}
    path = save_trace(make_trace(arrays, trace.meta), tmp_path / "nocache.npz")
    with pytest.raises(ParamError, match="TOY_TRACE: this trace has no 'cache' arrays"):
        resolve_params({"TOY_TRACE": str(path)})


def test_config_file_defaults_and_env_override(tmp_path, trace):
    p = resolve_params({}, frame_rate=15)  # the shipped scenes/manim.cfg
    assert p.trace_path.resolve() == TRACE.resolve() and (p.layer, p.theme.name, p.pace) == (3, "dark", 1.0)
    cfg = tmp_path / "manim.cfg"
    save_trace(trace, tmp_path / "mine.npz")
    cfg.write_text("[attention]\ntrace = mine.npz\nlayer = 8\nrow = 30\npace = 0.5\ntheme = light\n")
    p = resolve_params({}, cfg, frame_rate=15)
    assert (p.trace_path, p.layer, p.row, p.pace, p.theme.name) == (tmp_path / "mine.npz", 8, 30, 0.5, "light")
    p = resolve_params({"TOY_LAYER": "13", "TOY_ROW": "auto", "TOY_THEME": "dark"}, cfg, frame_rate=15)
    assert (p.layer, p.row, p.theme.name) == (13, AttentionView(trace).sharpest_row(13), "dark")
    cfg.write_text("[attention]\nrows = 3\n")
    with pytest.raises(ParamError, match=r"\[attention\] has a key 'rows' the scene does not know"):
        resolve_params({}, cfg)


def test_the_scene_needs_params_from_python_and_reads_no_environment(trace, monkeypatch):
    for name in ("TOY_THEME", "TOY_PACE", "TOY_TRACE", "TOY_LAYER", "TOY_ROW"):
        monkeypatch.setenv(name, "nonsense")  # read by nothing when the scene is built from Python
    _, scene = still(params_for(trace, theme="light"), "heads")
    assert scene.camera.background_color.to_hex().upper() == THEMES["light"].background.upper()
    with pytest.raises(ParamError, match="Attention needs params"):
        Attention()


def test_importing_the_scene_file_changes_nothing():
    code = textwrap.dedent(f"""
        import copy, os, sys
        import manim
        before_cfg, before_env = copy.deepcopy(dict(manim.config.items())), dict(os.environ)
        sys.path.insert(0, {str(ROOT / "scenes")!r})
        import attention
        assert attention.Attention.params is None
        changed = [k for k in before_cfg if before_cfg[k] != dict(manim.config.items())[k]]
        assert not changed and dict(os.environ) == before_env, changed
    """)
    env = {**os.environ, "TOY_LAYER": "4", "TOY_PACE": "-1"}
    r = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr


def manim_render(tmp_path, env, *args, timeout=300):
    cmd = [sys.executable, "-m", "manim", "render", "-ql", "--media_dir", str(tmp_path / "media"), *args,
           str(ROOT / "scenes" / "attention.py")]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)


def test_manim_cli_stops_with_one_line_before_rendering(tmp_path):
    r = manim_render(tmp_path, {"TOY_LAYER": "4"})
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: TOY_LAYER='4': layer 4 is a Latent MoE layer; the attention layers are "
                                "3, 8, 13"), r.stderr
    assert "Traceback" not in r.stdout + r.stderr and not (tmp_path / "media").exists()


@pytest.mark.slow
def test_real_render_at_the_least_pace(tmp_path):
    """A -ql render through the CLI at the least pace 15 fps allows: no animation too short for a frame, and a
    video with the scene's frames."""
    import av

    r = manim_render(tmp_path, {"TOY_PACE": "0.14", "TOY_ROW": "18"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "is too short for the current frame rate" not in r.stdout + r.stderr and "WARNING" not in r.stdout, \
        r.stdout[-2000:]
    (video,) = (tmp_path / "media").rglob("Attention.mp4")
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames[0].shape == (480, 854, 3) and len(frames) > 60


# ------------------------------------------------------------------------------------------------
# the bundled trace


def test_bundled_trace_is_small_and_has_what_the_scene_needs(trace):
    assert TRACE.stat().st_size < 2_000_000
    assert attention.trace_problem(trace) is None
    assert trace.resid_detail_layers.tolist() == [0, 3, 8, 13] and trace.has("cache")
    assert trace.meta["prompt"] == "Explain transformers with emoji"


@pytest.mark.slow
def test_bundled_trace_records_again():
    """traces/attention.npz is what the bundled weights give today (re-record it after retraining)."""
    from toy_model.model import DEFAULT_WEIGHTS, load_pretrained
    from toy_model.tokenizer import load_tokenizer
    from toy_model.trace import Detail, file_sha256, record_trace
    from traces import assert_same_recording  # tests/traces.py, shared with test_trace and test_emoji_chat

    shipped = load_trace(TRACE)
    m = shipped.meta
    rerecord = ("re-record it: python -m toy_model trace --detail resid:0 --detail resid:3 --detail resid:8 "
                "--detail resid:13 --out traces/attention.npz")
    assert m["weights"].endswith(file_sha256(DEFAULT_WEIGHTS)[:16]), f"recorded from other weights; {rerecord}"
    fresh = record_trace(load_pretrained(kernels="torch"), load_tokenizer(), m["prompt"], m["max_new_tokens"],
                         m["seed"], m["temperature"], m["chat"], progress=False, detail=Detail.from_meta(m))
    assert_same_recording(fresh, shipped, rerecord)
