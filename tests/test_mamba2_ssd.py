"""The Mamba2SSD scene: its numbers are the trace's (and agree with the model's kernels), its frames follow the
trace, parameters and traces it cannot use stop with one line, and every text is legible.

Frames come from in-process dry runs stopped at a named moment (legible.still); the beats a test does not need
are left out (Mamba2SSD(beats=...)).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from manim import AnimationGroup, tempconfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scenes"))

import mamba2_ssd  # noqa: E402
from frames import is_marker_green  # noqa: E402
from legible import illegible, near, rgb, still  # noqa: E402
from mamba2_ssd import Mamba2SSD, SSDParams, resolve_params, sci  # noqa: E402

from toy_model.kernels.ssd import segsum as torch_segsum  # noqa: E402
from toy_model.kernels.ssd import ssd_recurrent_ref, ssd_scan_ref  # noqa: E402
from toy_model.trace_file import GROUPS, Trace, load_trace, save_trace  # noqa: E402
from toy_model.viz import duality  # noqa: E402
from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio  # noqa: E402
from toy_model.viz.matrix import HeatColors  # noqa: E402
from toy_model.viz.params import ParamError  # noqa: E402
from toy_model.viz.theme import THEMES  # noqa: E402

DEFAULT_TRACE = ROOT / "traces" / "default.npz"
LAYER, HEAD = 0, 1  # the default trace's detail head


@pytest.fixture(scope="module")
def trace():
    return load_trace(DEFAULT_TRACE)


def params_for(trace, theme="dark", chunk=8, pace=0.4):
    return SSDParams(trace, DEFAULT_TRACE, LAYER, HEAD, chunk, pace, THEMES[theme])


def edited(trace, **changes) -> Trace:
    """A copy of trace with some arrays changed in place: edited(t, mamba_decay=lambda a: ...)."""
    arrays = {k: v.copy() for k, v in trace.arrays.items()}
    for name, fn in changes.items():
        fn(arrays[name])
    return Trace(arrays, dict(trace.meta))


def cells(frame, scene, heatmap, rows, cols):
    """The frame's colour at the centre of each cell (rows x cols, 3) of a heatmap."""
    out = np.zeros((rows, cols, 3), int)
    for i in range(rows):
        for j in range(cols):
            r, c = scene.to_pixel(heatmap.cell_center(i, j))
            out[i, j] = frame[r, c]
    return out


# ------------------------------------------------------------------------------------------------
# the numbers: three forms, one answer, and the model's own kernels agree


def torch_inputs(head):
    f = lambda a: torch.tensor(a, dtype=torch.float64)
    x, B, C = f(head.x)[None, :, None], f(head.B)[None, :, None], f(head.C)[None, :, None]
    dt = torch.log(torch.expm1(f(head.delta)))[None, :, None]  # softplus(dt) = Delta
    A, D = torch.tensor([head.A], dtype=torch.float64), torch.tensor([head.D], dtype=torch.float64)
    return x, dt, A, B, C, D


def test_the_three_forms_agree_with_the_models_kernels_and_the_recording(trace):
    head = duality.HeadDetail.from_trace(trace, LAYER, HEAD)
    # the recorded decay is exp(A Delta): the scene builds L from it
    np.testing.assert_allclose(head.decay, np.exp(head.A * head.delta), rtol=1e-5, atol=1e-6)
    y_rec, h_rec = duality.recurrence(head)
    x, dt, A, B, C, D = torch_inputs(head)
    y_ref, _, states = ssd_recurrent_ref(x, dt, A, B, C, D=D, return_all_states=True)  # float32 inside
    np.testing.assert_allclose(y_rec, y_ref[0, :, 0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(h_rec, states[0, :, 0].numpy(), rtol=1e-5, atol=1e-7)
    # ... and match what the model recorded (computed in float32, partly by the chunked scan)
    assert duality.max_diff(y_rec, head.y) < 1e-5 and duality.max_diff(h_rec, head.state) < 1e-6
    assert duality.max_diff(duality.matrix_output(head), y_rec) < 1e-12
    for Q in (1, 3, 8, 32, 42, 64):
        scan = duality.chunked_scan(head, Q)
        y_chunk, final = ssd_scan_ref(x, dt, A, B, C, Q, D=D, return_final_states=True)  # computes in float32
        np.testing.assert_allclose(scan.y, y_chunk[0, :, 0].numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(scan.final, final[0, 0].numpy(), rtol=1e-5, atol=1e-7)
        assert duality.max_diff(scan.y, y_rec) < 1e-12
        for c in range(1, scan.n_chunks):  # the state passed into chunk c is the recurrence's after its start
            assert duality.max_diff(scan.entering[c], h_rec[c * Q - 1]) < 1e-12
    a = np.random.default_rng(0).normal(size=(3, 9))
    got, want = duality.segsum(a), torch_segsum(torch.tensor(a)).numpy()
    assert np.array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], atol=1e-12)


def test_the_head_must_be_recorded(trace):
    assert duality.detail_heads(trace) == [(LAYER, HEAD)]
    with pytest.raises(AssertionError, match="not recorded"):
        duality.HeadDetail.from_trace(trace, 0, 3)


# ------------------------------------------------------------------------------------------------
# frames follow the trace


def test_the_state_grid_shows_the_recorded_state_row_by_column(trace):
    """h is P x N: rows are the head's channels, columns the state's; a positive cell is orange, a negative
    one blue, zero grey."""
    t = 3

    def state(a):
        a[0, t] = 0.0
        a[0, t, 5, 7] = 1.0
        a[0, t, 20, 3] = -1.0

    frame, scene = still(Mamba2SSD, f"token:{t}", params=params_for(edited(trace, mamba_detail_state=state)),
                         beats=("recurrence",))
    grid = cells(frame, scene, scene.h_map, 32, 16)
    colors = HeatColors.for_theme(THEMES["dark"])
    assert np.abs(grid[5, 7] - rgb(colors.positive)).sum() < 20
    assert np.abs(grid[20, 3] - rgb(colors.negative)).sum() < 20
    zero = np.abs(grid - rgb(colors.zero)).sum(axis=-1) < 12
    assert zero.sum() == 32 * 16 - 2


def test_the_state_keeps_what_the_decay_says(trace):
    """The keep step shows a_t times the state before: a decay near 0 leaves almost nothing, 1 keeps all."""
    t = 12
    frames = {}
    for a_t in (1.0, 0.01):
        tr = edited(trace, mamba_decay=lambda a, v=a_t: a.__setitem__((0, t, HEAD), v))
        frame, scene = still(Mamba2SSD, f"keep:{t}", params=params_for(tr), beats=("recurrence",))
        zero = rgb(HeatColors.for_theme(THEMES["dark"]).zero)
        frames[a_t] = np.abs(cells(frame, scene, scene.h_map, 32, 16) - zero).sum(axis=-1).mean()
    assert frames[1.0] > 4 * frames[0.01], frames
    # and the bar of token t in the decay chart is a_t high
    tr = edited(trace, mamba_decay=lambda a: a.__setitem__((0, t, HEAD), 0.25))
    _, scene = still(Mamba2SSD, f"keep:{t}", params=params_for(tr), beats=("recurrence",))
    bars = scene.decay_chart.bars
    assert bars[t].height == pytest.approx(0.25 * scene.layout.chart_height, rel=1e-3)
    assert bars[t].fill_color.to_hex().upper() == THEMES["dark"].text.upper()  # the current token is lit


def test_the_decay_mask_changes_exactly_where_a_decay_does(trace):
    """L_ij = a_(j+1) ... a_i: changing a_k changes the cells with j < k <= i, and no other."""
    k, T = 20, trace.n_tokens
    base, scene = still(Mamba2SSD, "matrix", params=params_for(trace), beats=("matrix",))
    tr = edited(trace, mamba_decay=lambda a: a.__setitem__((0, k, HEAD), 0.05))
    other, scene2 = still(Mamba2SSD, "matrix", params=params_for(tr), beats=("matrix",))
    L_map = scene.maps[1]
    changed = np.abs(cells(base, scene, L_map, T, T) - cells(other, scene2, L_map, T, T)).sum(axis=-1) > 6
    i, j = np.indices((T, T))
    where = (j < k) & (k <= i)
    assert not (changed & ~where).any(), np.argwhere(changed & ~where)[:5]
    L_new = duality.decay_mask(np.log(tr.mamba_decay[0, :, HEAD].astype(float)))
    visible = where & (L_new > 10 ** -(mamba2_ssd.DECADES - 0.2))  # above the log scale's floor after the change
    assert visible.sum() > 20 and changed[visible].mean() > 0.95


def test_a_tokens_B_changes_its_column(trace):
    """M_ij = (C_i . B_j) Delta_j L_ij: flipping B_j's sign flips column j of C B^T and of M, nothing else."""
    j0, T = 17, trace.n_tokens
    base, scene = still(Mamba2SSD, "matrix", params=params_for(trace), beats=("matrix",))
    tr = edited(trace, mamba_detail_B=lambda a: a.__setitem__((0, j0), -a[0, j0]))
    other, scene2 = still(Mamba2SSD, "matrix", params=params_for(tr), beats=("matrix",))
    lower = ~scene.upper
    visible = {0: np.abs(scene.scores[:, j0]) > 0.05 * np.abs(scene.scores[lower]).max(),  # C B^T: every row
               2: (np.abs(scene.M[:, j0]) > scene.m_max * 10 ** -(mamba2_ssd.DECADES - 0.2))}  # M: rows i >= j0
    assert visible[0].sum() > 10 and visible[2].sum() > 5
    for k in (0, 2):
        grid = scene.maps[k]
        changed = np.abs(cells(base, scene, grid, T, T) - cells(other, scene2, grid, T, T)).sum(axis=-1) > 6
        assert changed[visible[k], j0].mean() > 0.95, k
        changed[:, j0] = False
        assert not changed.any(), (k, np.argwhere(changed)[:5])


def test_the_chunk_size_cuts_the_matrix(trace):
    frame, scene = still(Mamba2SSD, "chunks:3", params=params_for(trace, chunk=6), beats=("chunks",))
    assert scene.scan.chunk_size == 6 and scene.scan.n_chunks == 7
    texts = " ".join(m.original_text for m in scene.get_top_level_mobjects() for m in m.get_family()
                     if hasattr(m, "original_text"))
    assert "chunks of Q = 6 tokens" in texts and "the model uses Q = 32" in texts


def test_the_numbers_shown_are_computed_from_the_trace(trace):
    """The chunk check names the difference between the passed state and the recorded one; the table the one
    between the recorded y and the recurrence: edit the recording and the numbers follow."""
    def shown(scene):
        return " ".join(m.original_text for top in scene.mobjects for m in top.get_family()
                        if hasattr(m, "original_text"))

    _, scene = still(Mamba2SSD, "chunks:3", params=params_for(trace), beats=("chunks",))
    head = scene.head
    assert sci(duality.max_diff(scene.scan.entering[2], head.state[15])) in shown(scene)
    tr = edited(trace, mamba_detail_state=lambda a: a.__setitem__((0, 15, 0, 0), a[0, 15, 0, 0] + 0.5))
    _, scene = still(Mamba2SSD, "chunks:3", params=params_for(tr), beats=("chunks",))
    assert "(max difference 5.0 × 10⁻¹)" in shown(scene).replace("\n", " ")
    tr = edited(trace, mamba_detail_y=lambda a: a.__setitem__((0, 30, 4), a[0, 30, 4] + 0.25))
    _, scene = still(Mamba2SSD, "close", params=params_for(tr), beats=("close",))
    assert "2.5 × 10⁻¹ (float32)" in shown(scene)
    assert sci(duality.max_diff(scene.y_matrix, scene.y_rec)) in shown(scene)


# ------------------------------------------------------------------------------------------------
# legibility, colours, timing: the whole scene, every play


@pytest.fixture(scope="module")
def whole_scene(trace):
    """Every animation's duration and every play's too-small texts, over one dry run of the whole scene."""
    pace, durations, small = 0.4, [], []

    def walk(anim, run_time=None):
        durations.append(anim.run_time if run_time is None else run_time)
        if isinstance(anim, AnimationGroup):
            for a in anim.animations:
                walk(a)

    class Recording(Mamba2SSD):
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
    assert min(durations) / pace == pytest.approx(mamba2_ssd.SHORTEST_STEP)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_colours_have_contrast_and_green_is_the_markers_alone(trace, theme):
    th = THEMES[theme]
    colors = HeatColors.for_theme(th)
    for c in (colors.positive, colors.negative, colors.ramp_top):  # the scales' ends
        assert contrast_ratio(c, th.background) >= GRAPHIC_CONTRAST
    for c in (th.mamba, th.attention, th.muted):  # outlines, arrows, frames
        assert contrast_ratio(c, th.background) >= GRAPHIC_CONTRAST
    for bg in (th.background, th.panel):
        assert contrast_ratio(th.text, bg) >= TEXT_CONTRAST and contrast_ratio(th.muted, bg) >= TEXT_CONTRAST
    for stop, beats in (("token:41", ("recurrence",)), ("row", ("matrix",)), ("chunks:4", ("chunks",))):
        frame, scene = still(Mamba2SSD, stop, params=params_for(trace, theme), beats=beats)
        assert is_marker_green(frame).sum() == 0, stop  # this scene has no marker: no green at all
        assert near(frame, th.background).mean() > 0.3  # drawn on the theme's background
        assert not illegible(scene.mobjects, 1080)


def test_every_symbol_is_explained(trace):
    _, scene = still(Mamba2SSD, "token:1", params=params_for(trace), beats=("recurrence",))
    symbols = {row[0].original_text for row in scene.glossary.rows if len(row) > 1}
    assert {"h", "xₜ", "Bₜ", "Cₜ", "Δₜ", "A", "aₜ", "D", "yₜ"} <= symbols
    assert all(row in scene.mobjects for row in scene.glossary.rows)  # all on screen after the first two tokens


# ------------------------------------------------------------------------------------------------
# parameters


def without_detail(trace) -> Trace:
    arrays = {k: v for k, v in trace.arrays.items() if k not in GROUPS["mamba_detail"]}
    return Trace(arrays, dict(trace.meta))


@pytest.mark.parametrize("env,message", [
    ({"TOY_THEME": "purple"}, "TOY_THEME='purple': the theme must be 'dark' or 'light'"),
    ({"TOY_PACE": "0.1"}, "TOY_PACE='0.1': at 15 fps the pace must be at least 0.14 s per token"),
    ({"TOY_HEAD": "3"}, "TOY_HEAD='3': layer 0 head 3 is not recorded in detail (the trace has layer 0 head 1); "
                        "record it with python -m toy_model trace --detail mamba:0:3"),
    ({"TOY_LAYER": "2"}, "TOY_LAYER='2': no head of layer 2 is recorded in detail (the trace has layer 0 head 1); "
                         "record one with python -m toy_model trace --detail mamba:2:HEAD"),
    ({"TOY_LAYER": "1"}, "TOY_LAYER='1': layer 1 is not a Mamba-2 layer of this trace (its Mamba-2 layers: "
                         "0, 2, 5, 7, 10, 12)"),
    ({"TOY_HEAD": "one"}, "TOY_HEAD='one': the head must be a whole number or auto"),
    ({"TOY_CHUNK": "2"}, "TOY_CHUNK='2': the chunk size must be a whole number from 4 to 42"),
    ({"TOY_CHUNK": "43"}, "TOY_CHUNK='43': the chunk size must be a whole number from 4 to 42"),
    ({"TOY_TRACE": "/nonexistent/t.npz"}, "TOY_TRACE: trace file not found: /nonexistent/t.npz"),
])
def test_bad_parameters_are_named_in_one_line(env, message):
    with pytest.raises(ParamError) as err:
        resolve_params(env, frame_rate=15)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_trace_without_the_detail_says_how_to_record_one(tmp_path, trace):
    path = save_trace(without_detail(trace), tmp_path / "plain.npz")
    with pytest.raises(ParamError) as err:
        resolve_params({"TOY_TRACE": str(path)}, frame_rate=15)
    assert str(err.value) == ("TOY_TRACE: this trace has no 'mamba_detail' arrays (schema version 2); record one "
                              "with python -m toy_model trace --detail mamba:LAYER:HEAD")


def test_defaults_and_config(tmp_path, trace):
    p = resolve_params({}, frame_rate=15)
    assert (p.layer, p.head, p.chunk, p.pace, p.theme.name) == (0, 1, 8, 0.4, "dark")
    assert p.trace_path.resolve() == DEFAULT_TRACE.resolve()
    cfg = tmp_path / "manim.cfg"
    cfg.write_text(f"[mamba2_ssd]\ntrace = {DEFAULT_TRACE}\nlayer = 0\nhead = 1\nchunk = 6\npace = 1\n"
                   f"theme = light\n")
    p = resolve_params({"TOY_CHUNK": "12"}, cfg, frame_rate=15)
    assert (p.chunk, p.pace, p.theme.name) == (12, 1.0, "light")
    cfg.write_text("[mamba2_ssd]\ntokens = 3\n")
    with pytest.raises(ParamError, match=r"\[mamba2_ssd\] has a key 'tokens' the scene does not know"):
        resolve_params({}, cfg)


def test_from_a_notebook_without_the_environment(trace, monkeypatch):
    for name in ("TOY_THEME", "TOY_PACE", "TOY_TRACE", "TOY_HEAD", "TOY_LAYER", "TOY_CHUNK"):
        monkeypatch.setenv(name, "bad")  # nothing reads them
    frame, scene = still(Mamba2SSD, "table", params=params_for(trace, "light"), beats=("close",))
    assert frame.shape == (480, 854, 3)
    with pytest.raises(ParamError, match="Mamba2SSD needs params"):
        Mamba2SSD()
    with pytest.raises(ParamError, match="beats 'proof'"):
        Mamba2SSD(params=params_for(trace), beats=("proof",))


def test_importing_the_scene_files_changes_nothing():
    code = f"""
import copy, os, sys
import manim
before_cfg, before_env = copy.deepcopy(dict(manim.config.items())), dict(os.environ)
sys.path.insert(0, {str(ROOT / "scenes")!r})
import mamba2_ssd, generation
after = dict(manim.config.items())
assert not [k for k in before_cfg if before_cfg[k] != after[k]]
assert dict(os.environ) == before_env
assert mamba2_ssd.Mamba2SSD.params is None and generation.Generation.params is None
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | {"TOY_THEME": "purple",
                                                                               "TOY_HEAD": "9"}
    r = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr


def test_manim_cli_stops_with_one_line_before_rendering(tmp_path):
    env = {**os.environ, "TOY_HEAD": "3"}
    cmd = [sys.executable, "-m", "manim", "render", "-ql", "--media_dir", str(tmp_path / "media"),
           str(ROOT / "scenes" / "mamba2_ssd.py")]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: TOY_HEAD='3': layer 0 head 3 is not recorded in detail")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "media").exists()
