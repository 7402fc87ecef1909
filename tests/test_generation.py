"""The Generation scene: the prompt goes in together, then one token per call; the memory bars are the trace's
recorded cache sizes; the numbers at scale are the published configurations' through the same formulas;
parameters and traces it cannot use stop with one line; every text is legible.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from manim import AnimationGroup, tempconfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scenes"))

import generation  # noqa: E402
from frames import is_marker_green  # noqa: E402
from generation import (  # noqa: E402
    Generation,
    GenParams,
    kib,
    nice_ceiling,
    nice_ticks,
    repeating_group,
    resolve_params,
    size,  # noqa: E402
)
from legible import illegible, near, still  # noqa: E402

from toy_model.published import NANO, SUPER, generation_memory, kv_bytes_per_token  # noqa: E402
from toy_model.trace_file import GROUPS, Trace, load_trace, save_trace  # noqa: E402
from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio  # noqa: E402
from toy_model.viz.params import ParamError  # noqa: E402
from toy_model.viz.theme import THEMES  # noqa: E402

DEFAULT_TRACE = ROOT / "traces" / "default.npz"


@pytest.fixture(scope="module")
def trace():
    return load_trace(DEFAULT_TRACE)


def params_for(trace, theme="dark", pace=0.5):
    return GenParams(trace, DEFAULT_TRACE, pace, THEMES[theme])


def edited(trace, **changes) -> Trace:
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for name, fn in changes.items():
        fn(arrays[name])
    return Trace(arrays, dict(trace.meta))


def shown(scene) -> str:
    return " ".join(m.original_text for top in scene.mobjects for m in top.get_family()
                    if hasattr(m, "original_text"))


def chart_pixels(frame, scene, color) -> int:
    """Pixels of a colour inside the chart's plot area."""
    lay = scene.layout
    r0, c0 = scene.to_pixel([lay.chart_left, lay.chart_bottom + lay.chart_height, 0])
    r1, c1 = scene.to_pixel([lay.right, lay.chart_bottom, 0])
    return int(near(frame[r0:r1, c0:c1], color, 30).sum())


# ------------------------------------------------------------------------------------------------
# prefill and decode


def test_the_prompt_goes_in_together_a_marker_per_token(trace):
    frame, scene = still(Generation, "prefill:in", params=params_for(trace))
    P = trace.n_prompt_tokens
    assert len(scene.markers) == int(trace.cache_tokens[0]) == P
    for m in scene.markers:  # each marker is drawn, in green, below the stack
        r, c = scene.to_pixel(m.get_center())
        assert is_marker_green(frame[r - 1:r + 2, c - 1:c + 2]).any()
        assert m.get_top()[1] < scene.blocks.get_bottom()[1]
    assert [chip[1].original_text for chip in scene.row] == [
        generation.show_spaces(trace.display_text(t)) for t in range(P)]


def test_each_decode_step_adds_one_token_and_one_row(trace):
    k = 5
    frame, scene = still(Generation, f"decode:{k}", params=params_for(trace))
    n = int(trace.cache_tokens[k])
    assert len(scene.bars) == k + 1  # one bar per model call so far
    (j,) = scene.kept  # the attention block
    assert len(scene.kv_rows[j][0]) == n  # one row of keys and values per token in the cache
    assert scene.row[-1][1].original_text == generation.show_spaces(trace.display_text(n))  # its prediction
    assert is_marker_green(frame).sum() == 0  # the marker has gone through: no green left


# ------------------------------------------------------------------------------------------------
# memory follows the recorded cache sizes


def test_the_bars_are_the_recorded_bytes(trace):
    th = THEMES["dark"]
    attention = trace.layers_of("attention")
    mamba = trace.layers_of("mamba")
    base, scene = still(Generation, "memory", params=params_for(trace))
    s = len(trace.cache_tokens) - 1
    # per layer: the Mamba-2 bar and the KV bar stand in the recorded ratio
    (j,) = scene.kept
    kv_width = scene.kv_rows[j][0].width
    assert kv_width == pytest.approx(trace.cache_bytes[s, attention[0]] * scene.unit, rel=0.02)
    assert "42 rows, 21 KiB" in shown(scene) and "19.75 KiB, always" in shown(scene)

    more_kv = edited(trace, cache_bytes=lambda a: a.__setitem__((slice(None), attention), a[:, attention] * 2))
    frame, scene2 = still(Generation, "memory", params=params_for(more_kv))
    assert chart_pixels(frame, scene2, th.attention) > 1.5 * chart_pixels(base, scene, th.attention)
    assert f"42 rows, {kib(2 * trace.cache_bytes[s, attention[0]])}" in shown(scene2)

    less_state = edited(trace, cache_bytes=lambda a: a.__setitem__((slice(None), mamba), a[:, mamba] // 2))
    frame, scene3 = still(Generation, "memory", params=params_for(less_state))
    ratio = chart_pixels(frame, scene3, th.mamba) / chart_pixels(base, scene, th.mamba)
    assert 0.35 < ratio < 0.65, ratio
    assert f"{kib(trace.cache_bytes[0, mamba[0]] // 2)}, always" in shown(scene3)


def test_the_mamba_bar_splits_conv_and_state_when_the_formulas_agree(trace):
    _, scene = still(Generation, "prefill", params=params_for(trace))
    assert [line.original_text for line in scene.mamba_split] == ["outlined: conv, 3.75 KiB",
                                                                  "solid: SSM state, 16 KiB"]
    assert scene.mamba_split[0] in scene.mobjects or scene.mamba_split in scene.mobjects
    assert scene.mamba_parts(20224) == [("conv", 3840), ("ssm", 16384)]
    assert scene.mamba_parts(20000) == [("all", 20000)]  # bytes the formulas do not give: one bar


# ------------------------------------------------------------------------------------------------
# at scale


def test_the_numbers_at_scale_come_from_the_published_configurations(trace):
    _, scene = still(Generation, "scale", params=params_for(trace), beats=("scale",))
    text = shown(scene)
    for m in (NANO, SUPER):
        per = kv_bytes_per_token(m.n_attention, m.n_kv_heads, m.head_dim)
        hybrid, full = generation_memory(m, generation.CONTEXT), generation_memory(m, generation.CONTEXT, True)
        assert f"KV: {m.n_attention} × 2 × {m.n_kv_heads} × {m.head_dim} × 2 B = {size(per)} per token" in text
        assert f"= {size(hybrid['state'])}, flat" in text
        assert size(hybrid["kv"]) in text and size(full["kv"]) in text
        assert f"at {hybrid['state'] / per:,.0f} tokens" in text
    assert (size(6 * 2 ** 30), size(29 * 2 ** 30), size(8 * 2 ** 30), size(48 * 2 ** 30)) == \
        ("6 GiB", "29 GiB", "8 GiB", "48 GiB")  # the white paper's arithmetic, at 2^20 tokens
    assert "KV per token = attention layers × 2 (keys and values) × KV heads × head dim × 2 bytes (bf16)." in text


def test_number_helpers():
    assert [nice_ceiling(v) for v in (0.3, 1, 1.2, 2.2, 3, 48, 181.5)] == [0.5, 1, 2, 2.5, 5, 50, 200]
    assert nice_ticks(200) == [0, 50, 100, 150, 200] and nice_ticks(42, 5) == [0, 10, 20, 30, 40]
    assert kib(512) == "512 B" and kib(20224) == "19.75 KiB" and kib(21504) == "21 KiB"
    assert size(49082368) == "46.8 MiB" and size(170229760) == "162 MiB"
    assert repeating_group("MEM*EMEM*EMEM*E") == ("MEM*E", 3) and repeating_group("ME*") == ("ME*", 1)


# ------------------------------------------------------------------------------------------------
# legibility, colours, timing


@pytest.fixture(scope="module")
def whole_scene(trace):
    pace, durations, small = 0.5, [], []

    def walk(anim, run_time=None):
        durations.append(anim.run_time if run_time is None else run_time)
        if isinstance(anim, AnimationGroup):
            for a in anim.animations:
                walk(a)

    class Recording(Generation):
        def play(self, *animations, **kwargs):
            for a in animations:
                walk(a.build() if hasattr(a, "build") else a, kwargs.get("run_time"))
            small.extend(illegible(self.mobjects))
            return super().play(*animations, **kwargs)

        def wait(self, *args, **kwargs):
            small.extend(illegible(self.mobjects))
            return super().wait(*args, **kwargs)

    with tempconfig({"dry_run": True, "quality": "low_quality", "disable_caching": True, "progress_bar": "none",
                     "verbosity": "ERROR"}):
        scene = Recording(params=params_for(trace, pace=pace))
        scene.renderer.update_frame = lambda *args, **kwargs: None
        scene.render()
    return durations, small, pace


def test_every_text_is_legible_at_every_moment(whole_scene):
    _, small, _ = whole_scene
    assert not small, sorted(set(small))[:10]


def test_the_shortest_step_is_the_scenes_shortest_animation(whole_scene):
    durations, _, pace = whole_scene
    assert min(durations) / pace == pytest.approx(generation.SHORTEST_STEP)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_colours_have_contrast_and_green_is_the_markers_alone(trace, theme):
    th = THEMES[theme]
    for c in (th.mamba, th.attention, th.muted, th.text):  # bars, lines, axes
        assert contrast_ratio(c, th.background) >= GRAPHIC_CONTRAST
    for bg in (th.background, th.panel):
        assert contrast_ratio(th.text, bg) >= TEXT_CONTRAST and contrast_ratio(th.muted, bg) >= TEXT_CONTRAST
    for stop, beats in (("memory", ("generate",)), ("scale", ("scale",))):
        frame, scene = still(Generation, stop, params=params_for(trace, theme), beats=beats)
        assert is_marker_green(frame).sum() == 0, stop  # no marker on screen: no green at all
        assert near(frame, th.background).mean() > 0.4
        assert not illegible(scene.mobjects, 1080)


# ------------------------------------------------------------------------------------------------
# parameters


def replace_pattern(trace, pattern):
    """The trace with one MoE layer fewer and another pattern (a valid trace the stack cannot draw)."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for n in ("moe_scores", "moe_topk_ids", "moe_topk_weights", "moe_latent_norm", "moe_shared_share",
              "moe_correction_bias"):
        arrays[n] = arrays[n][:-1]
    return Trace(arrays, dict(trace.meta) | {"pattern": pattern})


@pytest.mark.parametrize("env,message", [
    ({"TOY_THEME": "sepia"}, "TOY_THEME='sepia': the theme must be 'dark' or 'light'"),
    ({"TOY_PACE": "0.05"}, "TOY_PACE='0.05': at 15 fps the pace must be at least 0.07 s per decode step"),
    ({"TOY_PACE": "9"}, "TOY_PACE='9': at 15 fps the pace must be between 0.07 and 5 seconds per decode step"),
    ({"TOY_TRACE": "/nonexistent/t.npz"}, "TOY_TRACE: trace file not found: /nonexistent/t.npz"),
])
def test_bad_parameters_are_named_in_one_line(env, message):
    with pytest.raises(ParamError) as err:
        resolve_params(env, frame_rate=15)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_traces_the_scene_cannot_use(tmp_path, trace):
    plain = Trace({k: v for k, v in trace.arrays.items() if k not in GROUPS["cache"]}, dict(trace.meta))
    path = save_trace(plain, tmp_path / "plain.npz")
    with pytest.raises(ParamError) as err:
        resolve_params({"TOY_TRACE": str(path)}, frame_rate=15)
    assert str(err.value) == ("TOY_TRACE: this trace has no 'cache' arrays (schema version 2); record one with "
                              "python -m toy_model trace (it records the cache group always)")
    odd = replace_pattern(trace, "MEM*EMEM*EMEM*-")
    odd.arrays["cache_bytes"][:, 14] = 0  # the MLP layer keeps nothing
    path = save_trace(odd, tmp_path / "odd.npz")
    with pytest.raises(ParamError, match=r"pattern 'MEM\*EMEM\*EMEM\*-' repeats no group of at most 8 layers"):
        resolve_params({"TOY_TRACE": str(path)}, frame_rate=15)


def test_defaults_config_and_notebook(tmp_path, trace, monkeypatch):
    p = resolve_params({}, frame_rate=15)
    assert (p.pace, p.theme.name) == (0.5, "dark") and p.trace_path.resolve() == DEFAULT_TRACE.resolve()
    cfg = tmp_path / "manim.cfg"
    cfg.write_text(f"[generation]\ntrace = {DEFAULT_TRACE}\npace = 1\ntheme = light\n")
    assert resolve_params({"TOY_PACE": "0.8"}, cfg, frame_rate=15).pace == 0.8
    assert resolve_params({}, cfg, frame_rate=15).theme.name == "light"
    for name in ("TOY_THEME", "TOY_PACE", "TOY_TRACE"):
        monkeypatch.setenv(name, "bad")  # a notebook's scene reads none of them
    frame, _ = still(Generation, "prefill:in", params=params_for(trace, "light"))
    assert frame.shape == (480, 854, 3)
    with pytest.raises(ParamError, match="Generation needs params"):
        Generation()


def test_manim_cli_stops_with_one_line_before_rendering(tmp_path):
    env = {**os.environ, "TOY_PACE": "0.01"}
    cmd = [sys.executable, "-m", "manim", "render", "-ql", "--media_dir", str(tmp_path / "media"),
           str(ROOT / "scenes" / "generation.py")]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: TOY_PACE='0.01': at 15 fps the pace must be at least 0.07")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "media").exists()
