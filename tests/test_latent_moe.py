"""The LatentMoE scene: its frames follow the trace, its numbers follow the config and toy_model.published, its
text is legible, and bad parameters stop with one line.

Frames come from in-process dry runs stopped at a step ('router 0', 'latent', 'balance', 'unbiased', 'scale');
the renderer then draws the scene as it stands, and `renderer.get_frame()` is what that moment shows.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from manim import Rectangle, Text, config, tempconfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scenes"))

import latent_moe  # noqa: E402
from frames import is_marker_green  # noqa: E402
from latent_moe import LatentMoE, MoEParams, resolve_params  # noqa: E402
from legible import illegible  # noqa: E402

from toy_model.published import SUPER, latent_savings  # noqa: E402
from toy_model.trace_file import Trace, load_trace  # noqa: E402
from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio  # noqa: E402
from toy_model.viz.params import ParamError  # noqa: E402
from toy_model.viz.routing import loads, router_step, skew, top_k  # noqa: E402
from toy_model.viz.theme import THEMES  # noqa: E402

DEFAULT_TRACE = ROOT / "traces" / "default.npz"
LAYER = 1  # the first MoE layer of the default trace
TOKENS = (9, 10, 11)  # what 'auto' picks: the last prompt token and the next two


@pytest.fixture(scope="module")
def trace():
    return load_trace(DEFAULT_TRACE)


def params_for(trace, tokens=TOKENS, theme="dark", layer=LAYER, pace=1.0):
    return MoEParams(trace, DEFAULT_TRACE, layer, tuple(tokens), pace, THEMES[theme])


def edited(trace, **changes) -> Trace:
    """A copy of trace with some arrays changed in place: edited(t, moe_scores=lambda a: ...)."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for name, fn in changes.items():
        fn(arrays[name])
    return Trace(arrays, dict(trace.meta))


def still(params, stop_at, quality="low_quality"):
    """(frame RGB (H, W, 3), scene) at the step stop_at."""
    with tempconfig({"dry_run": True, "quality": quality, "disable_caching": True, "progress_bar": "none",
                     "verbosity": "ERROR"}):
        scene = LatentMoE(params=params, stop_at=stop_at)
        draw = scene.renderer.update_frame
        scene.renderer.update_frame = lambda *args, **kwargs: None  # only the last frame is looked at
        scene.render()
        scene.renderer.static_image = None
        draw(scene)
        frame = scene.renderer.get_frame()[..., :3].copy()
        scene.to_px = _to_px(frame.shape)
    return frame, scene


def _to_px(shape):
    h, w = shape[:2]
    fw, fh = config.frame_width, config.frame_height

    def box(mob, pad=0.0):
        """(x0, y0, x1, y1) pixel box of a mobject (or of a point given as an array)."""
        if isinstance(mob, np.ndarray):
            lo = hi = mob
        else:
            lo, hi = mob.get_corner([-1, -1, 0]), mob.get_corner([1, 1, 0])
        to_x = lambda x: (x + fw / 2) / fw * w
        to_y = lambda y: (fh / 2 - y) / fh * h
        return (int(to_x(lo[0]) - pad), int(to_y(hi[1]) - pad), int(np.ceil(to_x(hi[0]) + pad)),
                int(np.ceil(to_y(lo[1]) + pad)))

    return box


def changed(a, b, tol=24):
    return np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > tol


def inside(mask, box):
    """Share of the True pixels of mask inside box."""
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = box
    return float(((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).mean()) if len(xs) else 0.0


def rgb(hex_color):
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def texts_of(scene):
    return [m for top in scene.mobjects for m in top.get_family() if isinstance(m, Text)]


# ------------------------------------------------------------------------------------------------
# the maths the scene shows is the router's


def test_the_trace_is_what_the_router_computes(trace):
    """top-k of s + b are the recorded choices; the recorded gate weights are the chosen s normalised, times the
    scale. The scene shows the recorded values; this checks they mean what the legend says."""
    k, scale = trace.moe_topk_ids.shape[2], trace.meta["model_config"]["routed_scaling_factor"]
    for layer in trace.layers_of("moe"):
        for t in range(trace.n_tokens):
            r = router_step(trace, layer, t)
            assert set(r.ids.tolist()) == set(top_k(r.biased, k).tolist())
            np.testing.assert_allclose(r.weights, r.scores[r.ids] / r.scores[r.ids].sum() * scale, rtol=1e-5)
            assert (len(r.brought_in) == len(r.pushed_out)) and not set(r.brought_in) & set(r.pushed_out)
    routed, plain = loads(trace, LAYER)
    assert routed.sum() == plain.sum() == trace.n_tokens * k
    # the default trace's first MoE layer: the bias evens the load out (what the scene's part 3 shows)
    assert skew(routed)["cv"] < skew(plain)["cv"] and skew(routed)["max_mean"] < skew(plain)["max_mean"]


# ------------------------------------------------------------------------------------------------
# frames follow the trace


def test_a_score_moves_its_bar_and_nothing_else(trace):
    """Lower one unchosen expert's score: the pixels that change are that expert's column of the chart."""
    t, slot = TOKENS[0], trace.layer_slot(LAYER)
    r = router_step(trace, LAYER, t)
    rest = [e for e in range(len(r.scores)) if e not in r.ids]
    e = min(rest, key=lambda i: r.biased[i])  # the weakest: lowering it cannot change the cut or the choice
    assert r.scores[e] > 0.12
    before, scene = still(params_for(trace), "router 0")
    after, _ = still(params_for(edited(trace, moe_scores=lambda a: a.__setitem__((slot, t, e), 0.02))), "router 0")
    diff = changed(before, after)
    assert diff.sum() > 30
    chart = scene.chart
    col = scene.to_px(VGroupBox(chart.point(e, -0.02) + [-chart.slot / 2, 0, 0],
                                chart.point(e, 1.0) + [chart.slot / 2, 0, 0]))
    assert inside(diff, col) == 1.0, "pixels changed outside the expert's column"
    # the bar's middle was the idle bar colour, and is the background now
    x0, y0, x1, y1 = scene.to_px(np.array(chart.point(e, r.scores[e] * 0.6)))
    assert np.abs(before[y0, x0].astype(int) - rgb(THEMES["dark"].muted)).sum() < 30
    assert np.abs(after[y0, x0].astype(int) - rgb(THEMES["dark"].background)).sum() < 30


def test_a_gate_weight_changes_the_gate_panel_only(trace):
    t, slot = TOKENS[0], trace.layer_slot(LAYER)
    new = np.array([2.0, 0.25, 0.15, 0.1], np.float32)  # still sums to the scale, 2.5
    before, scene = still(params_for(trace), "router 0")
    after, scene2 = still(params_for(edited(trace, moe_topk_weights=lambda a: a.__setitem__((slot, t), new))),
                          "router 0")
    diff = changed(before, after)
    assert diff.sum() > 50
    assert inside(diff, scene.to_px(scene._gates[0], pad=2)) == 1.0
    texts = {m.original_text for m in texts_of(scene2)}
    assert "2.000" in texts and "0.100" in texts
    # w as parts of one bar: the first part, w = 2.0, is 80 % of it
    parts = scene2._gates[0][3][0]
    total = sum(p.width + 0.04 for p in parts)
    assert parts[0].width + 0.04 == pytest.approx(0.8 * total, rel=0.02)


def test_the_chosen_experts_are_the_trace_s(trace):
    """Recorded choices light their bars in the accent, whatever they are."""
    t, slot = TOKENS[0], trace.layer_slot(LAYER)
    ids = np.array([12, 13, 14, 15], np.int32)
    frame, scene = still(params_for(edited(trace, moe_topk_ids=lambda a: a.__setitem__((slot, t), ids))),
                         "router 0")
    chart, th = scene.chart, THEMES["dark"]
    for e in range(len(chart.bars)):
        x0, y0, _, _ = scene.to_px(np.array(chart.point(e, 0.05)))
        want = th.moe if e in ids else th.muted
        assert np.abs(frame[y0, x0].astype(int) - rgb(want)).sum() < 40, e


def test_the_latent_page_shows_the_token_s_numbers(trace):
    t, slot = TOKENS[-1], trace.layer_slot(LAYER)
    before, scene = still(params_for(trace), "latent")
    tr = edited(trace, moe_shared_share=lambda a: a.__setitem__((slot, t), 0.25),
                moe_latent_norm=lambda a: a.__setitem__((slot, t), 7.5))
    after, scene2 = still(params_for(tr), "latent")
    words = " ".join(m.original_text for m in texts_of(scene2))
    assert "‖z‖ = 7.50" in words and "25% of the update" in words
    diff = changed(before, after)
    assert diff.sum() > 50
    # the numbers sit in the right-hand column, right of the update bar
    x_update = scene.to_px(np.array([1.9, 0, 0]))[0]
    assert np.nonzero(diff)[1].min() >= x_update


def test_the_loads_and_the_bias_are_the_trace_s(trace):
    slot = trace.layer_slot(LAYER)

    def all_to_first_four(a):
        a[slot] = np.arange(4)  # every token to experts 0-3

    def bias(a):
        a[slot] = 0.0
        a[slot, 7] = 0.2  # one expert raised

    frame, scene = still(params_for(edited(trace, moe_topk_ids=all_to_first_four, moe_correction_bias=bias)),
                         "balance")
    th = THEMES["dark"]
    charts = [m for m in scene.page if isinstance(m, latent_moe.BarChart)]
    loads_chart, bias_chart = charts[0], charts[1]
    np.testing.assert_array_equal(loads_chart.values, [trace.n_tokens] * 4 + [0] * 12)
    for e, want in ((0, th.moe), (5, th.background)):
        x0, y0, _, _ = scene.to_px(np.array(loads_chart.point(e, 5)))
        assert np.abs(frame[y0, x0].astype(int) - rgb(want)).sum() < 40, e
    assert bias_chart.values[7] == pytest.approx(0.2) and not bias_chart.values[:7].any()
    x0, y0, _, _ = scene.to_px(np.array(bias_chart.point(7, 0.1)))
    assert np.abs(frame[y0, x0].astype(int) - rgb(th.muted)).sum() < 40


def test_without_the_bias_is_recomputed_from_the_scores(trace):
    slot = trace.layer_slot(LAYER)

    def favour(a):
        a[slot, :, 2] = 0.99  # expert 2 would take every token without the bias

    _, scene = still(params_for(edited(trace, moe_scores=favour)), "unbiased")
    charts = [m for m in scene.page if isinstance(m, latent_moe.BarChart)]
    without = charts[-1]
    assert without.values[2] == trace.n_tokens
    words = " ".join(m.original_text for m in texts_of(scene))
    _, plain = loads(edited(trace, moe_scores=favour), LAYER)
    assert f"{skew(plain)['max_mean']:.2f}" in words


def test_at_scale_numbers_come_from_published(trace):
    _, scene = still(params_for(trace), "scale")
    words = " ".join(m.original_text for m in texts_of(scene))
    s = latent_savings(SUPER)
    for value in (s["expert_params_full"], s["expert_params_latent"], s["traffic_full"], s["traffic_latent"]):
        assert f"{value:,}" in words
    assert f"{SUPER.d_model} → {SUPER.latent}" in words
    assert "Megatron-LM" in words and "NVIDIA-Nemotron-3" in words  # the source, named


# ------------------------------------------------------------------------------------------------
# legibility


class VGroupBox:
    """A stand-in with the two corners of a box, for _to_px."""

    def __init__(self, lo, hi):
        self.lo, self.hi = np.minimum(lo, hi), np.maximum(lo, hi)

    def get_corner(self, d):
        return self.lo if d[0] < 0 else self.hi


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("stop", ["router 1", "latent", "unbiased", "scale"])
def test_text_is_large_and_contrasted(trace, theme, stop):
    frame, scene = still(params_for(trace, theme=theme), stop)
    for px in (480, 1080):
        assert illegible(scene.mobjects, px) == [], stop
    th = THEMES[theme]
    for t in texts_of(scene):
        color = t.get_fill_color().to_hex()
        assert min(contrast_ratio(color, th.background), contrast_ratio(color, th.panel)) >= TEXT_CONTRAST, \
            (t.text, color)
    for m in (m for top in scene.mobjects for m in top.get_family()):
        if isinstance(m, Rectangle) and m.get_fill_opacity() > 0.9:
            c = m.get_fill_color().to_hex().upper()
            if c not in (th.background.upper(), th.panel.upper()):
                assert contrast_ratio(c, th.background) >= GRAPHIC_CONTRAST, c
    assert not is_marker_green(frame).any(), "green is the marker's alone"
    # nothing outside the frame
    fw, fh = config.frame_width, config.frame_height
    for top in scene.mobjects:
        assert -fw / 2 <= top.get_left()[0] and top.get_right()[0] <= fw / 2, top
        assert -fh / 2 <= top.get_bottom()[1] and top.get_top()[1] <= fh / 2, top


# ------------------------------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize("env,message", [
    ({"TOY_LAYER": "3"}, "TOY_LAYER='3': layer 3 is not an MoE layer (Attention); the MoE layers of this trace are "
                         "1, 4, 6, 9, 11, 14"),
    ({"TOY_LAYER": "99"}, "TOY_LAYER='99': the trace has layers 0-14"),
    ({"TOY_LAYER": "moe"}, "TOY_LAYER='moe': give auto"),
    ({"TOY_TOKENS": "all"}, "TOY_TOKENS: 42 tokens selected; this scene shows at most 8"),
    ({"TOY_TOKENS": "50"}, "TOY_TOKENS='50': token 50 is outside the trace"),
    ({"TOY_PACE": "0.1"}, "TOY_PACE='0.1': at 15 fps the pace must be at least 0.14 s per step"),
    ({"TOY_THEME": "blue"}, "TOY_THEME='blue': the theme must be 'dark' or 'light'"),
])
def test_bad_parameters_say_so_in_one_line(env, message):
    with pytest.raises(ParamError) as err:
        resolve_params(env, frame_rate=15)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_the_defaults(trace):
    p = resolve_params({}, frame_rate=15)
    assert (p.layer, p.tokens, p.pace, p.theme.name) == (LAYER, TOKENS, 1.0, "dark")
    p = resolve_params({"TOY_LAYER": "14", "TOY_TOKENS": "3,5", "TOY_THEME": "light"}, frame_rate=15)
    assert (p.layer, p.tokens, p.theme.name) == (14, (3, 5), "light")


def test_a_trace_without_moe_layers_is_refused():
    no_moe = Trace({}, {"pattern": "M*M-"})
    with pytest.raises(ParamError, match=r"the trace's pattern 'M\*M-' has no MoE layer"):
        latent_moe.parse_layer("auto", no_moe)


def test_a_notebook_builds_it_from_explicit_parameters(trace, monkeypatch):
    for name in ("TOY_THEME", "TOY_PACE", "TOY_TRACE", "TOY_TOKENS", "TOY_LAYER"):
        monkeypatch.setenv(name, "nonsense")  # read by nothing here
    _, scene = still(params_for(trace, tokens=(20,), layer=4, theme="light"), "router 0")
    assert scene.params.layer == 4
    with pytest.raises(ParamError, match="LatentMoE needs params"):
        LatentMoE()
    with pytest.raises(ParamError, match="layer 3 is not an MoE layer"):
        LatentMoE(params=params_for(trace, layer=3))


def test_importing_the_scene_file_changes_nothing():
    code = f"""
        import copy, os, sys
        import manim
        before_cfg, before_env = copy.deepcopy(dict(manim.config.items())), dict(os.environ)
        sys.path.insert(0, {str(ROOT / "scenes")!r})
        import latent_moe
        after = dict(manim.config.items())
        assert not [k for k in before_cfg if before_cfg[k] != after[k]]
        assert dict(os.environ) == before_env and latent_moe.LatentMoE.params is None
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | {"TOY_LAYER": "3", "TOY_PACE": "-1"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd="/", capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr


def test_manim_cli_refuses_a_bad_layer_in_one_line(tmp_path):
    media = tmp_path / "media"
    cmd = [sys.executable, "-m", "manim", "--hide-splash", "render", "-ql", "--dry_run", "--media_dir", str(media),
           "-v", "WARNING", "--progress_bar", "none", str(ROOT / "scenes" / "latent_moe.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | {"TOY_LAYER": "3"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error: TOY_LAYER='3': layer 3 is not an MoE layer", lines[0]), lines
    assert not media.exists()


def test_more_experts_share_the_chart_s_width(trace):
    """A trace with 32 routed experts (the default one's scores and biases twice over): every bar and every
    label stays in the frame, every other expert is numbered, text stays legible."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    arrays["moe_scores"] = np.concatenate([arrays["moe_scores"], arrays["moe_scores"][..., ::-1]], axis=2)
    arrays["moe_correction_bias"] = np.concatenate([arrays["moe_correction_bias"]] * 2, axis=1)
    meta = dict(trace.meta, model_config=dict(trace.meta["model_config"], n_routed_experts=32))
    wide = Trace(arrays, meta)
    for stop in ("router 0", "unbiased"):
        _, scene = still(params_for(wide), stop)
        assert illegible(scene.mobjects, 480) == []
        charts = [m for m in scene.page if isinstance(m, latent_moe.BarChart)]
        assert all(len(c.bars) == 32 for c in charts)
        assert [t.original_text for t in charts[0].labels] == [str(e) for e in range(0, 32, 2)]
        for c in charts:
            assert -config.frame_width / 2 < c.get_left()[0] and c.get_right()[0] < latent_moe.LAYOUT.panel_x


def test_a_model_without_a_latent_is_refused(trace):
    plain = Trace(trace.arrays, dict(trace.meta, model_config=dict(trace.meta["model_config"], moe_latent_size=None)))
    with pytest.raises(ParamError, match="has no latent projection"):
        LatentMoE(params=params_for(plain))
