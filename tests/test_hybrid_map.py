"""The HybridMap scene: every strip shows its model's published layers (counts, and the order where published),
its frames follow the data, its text is legible, and bad parameters stop with one line."""

import dataclasses
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

import hybrid_map  # noqa: E402
from frames import is_marker_green  # noqa: E402
from hybrid_map import HybridMap, MapParams, resolve_params  # noqa: E402
from legible import illegible  # noqa: E402

from toy_model.published import (  # noqa: E402
    MODELS,
    NANO,
    SOURCES,
    ULTRA,
    from_config,
    kind_counts,
    param_counts,
    pattern_counts,
)
from toy_model.trace_file import load_trace  # noqa: E402
from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio  # noqa: E402
from toy_model.viz.params import ParamError  # noqa: E402
from toy_model.viz.strips import GroupedStrip, PatternStrip  # noqa: E402
from toy_model.viz.theme import THEMES  # noqa: E402

DEFAULT_TRACE = ROOT / "traces" / "default.npz"


def still(params, stop_at=None, quality="low_quality"):
    """(frame RGB (H, W, 3), scene) at the end (stop_at=None) or once the rows are drawn ('rows')."""
    with tempconfig({"dry_run": True, "quality": quality, "disable_caching": True, "progress_bar": "none",
                     "verbosity": "ERROR"}):
        scene = HybridMap(params=params, stop_at=stop_at)
        draw = scene.renderer.update_frame
        scene.renderer.update_frame = lambda *args, **kwargs: None
        scene.render()
        scene.renderer.static_image = None
        draw(scene)
        frame = scene.renderer.get_frame()[..., :3].copy()
        h, w = frame.shape[:2]
        fw, fh = config.frame_width, config.frame_height
        scene.to_px = lambda x, y: (int((x + fw / 2) / fw * w), int((fh / 2 - y) / fh * h))
    return frame, scene


def rgb(hex_color):
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def colour_at(frame, scene, mob):
    x, y = scene.to_px(*mob.get_center()[:2])
    return frame[y, x].astype(int)


@pytest.fixture(scope="module")
def shipped():
    return still(hybrid_map.default_params(), "rows")


# ------------------------------------------------------------------------------------------------
# the data


def test_published_patterns_agree_with_published_counts():
    for m in MODELS:
        if m.pattern is not None:
            assert pattern_counts(m.pattern) == kind_counts(m), m.name
            assert m.n_layers == len(m.pattern)
        assert m.source in SOURCES and (m.pattern_source or m.source) in SOURCES
    assert ULTRA.pattern is None  # counts only in our sources: drawn without an order


def test_the_toy_row_is_the_trace_s_config():
    cfg = load_trace(DEFAULT_TRACE).meta["model_config"]
    toy = from_config(cfg)
    assert (toy.pattern, toy.d_model, toy.n_experts, toy.top_k, toy.latent) == (
        cfg["pattern"], cfg["d_model"], cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_latent_size"])


@pytest.mark.parametrize("overrides", [{}, {"pattern": "ME*-M", "moe_latent_size": None}])
def test_parameter_counts_are_the_model_s(overrides):
    """param_counts (what the toy row shows) counts what HybridLM builds; active leaves out the unchosen
    experts."""
    from toy_model.config import HybridConfig
    from toy_model.model import HybridLM

    cfg = dataclasses.replace(HybridConfig(), **overrides) if overrides else HybridConfig()
    model = HybridLM(cfg)
    total, active = param_counts(cfg.to_dict())
    assert total == sum(p.numel() for p in model.parameters())
    unchosen = cfg.pattern.count("E") * (cfg.n_routed_experts - cfg.num_experts_per_tok) \
        * 2 * cfg.expert_in_size * cfg.moe_intermediate_size
    assert active == total - unchosen


# ------------------------------------------------------------------------------------------------
# strips show the data


def test_each_strip_shows_its_model_s_published_counts(shipped):
    _, scene = shipped
    assert len(scene.strips) == len(scene.params.models) == 1 + len(MODELS)
    for m, strip in zip(scene.params.models, scene.strips, strict=True):
        shown = strip.counts()
        assert shown == kind_counts(m), m.name
        if m.pattern is not None:  # cell by cell, in the published order
            assert isinstance(strip, PatternStrip) and "".join(c.kind for c in strip.cells) == m.pattern
        else:
            assert isinstance(strip, GroupedStrip)
    # one scale: a strip's length is its layer count
    lengths = {m.name: s.width for m, s in zip(scene.params.models, scene.strips, strict=True)}
    nano, h56 = lengths[NANO.name], lengths["Nemotron-H 56B"]
    assert nano / h56 == pytest.approx(52 / 118, rel=0.02)


def test_a_strip_without_a_published_order_says_so(shipped):
    _, scene = shipped
    i = [m.name for m in scene.params.models].index(ULTRA.name)
    words = [t.original_text for t in scene.rows[i].get_family() if isinstance(t, Text)]
    assert any("layer order not published" in w for w in words)
    for row, m in zip(scene.rows, scene.params.models, strict=True):  # and only that one
        if m.pattern is not None:
            assert not any("not published" in t.original_text for t in row.get_family() if isinstance(t, Text))


def test_a_changed_pattern_changes_its_cells(shipped):
    """Swap the first two layers of Nano's published pattern (same counts): those two cells swap colours, and no
    other pixel of the frame changes."""
    before, scene = shipped
    swapped = dataclasses.replace(NANO, pattern="EM" + NANO.pattern[2:])
    models = tuple(swapped if m is NANO else m for m in scene.params.models)
    after, scene2 = still(dataclasses.replace(scene.params, models=models), "rows")
    th = THEMES["dark"]
    row = [m.name for m in models].index(NANO.name)
    cells = scene2.strips[row].cells
    assert np.abs(colour_at(before, scene, scene.strips[row].cells[0]) - rgb(th.mamba)).sum() < 30
    assert np.abs(colour_at(after, scene2, cells[0]) - rgb(th.moe)).sum() < 30
    assert np.abs(colour_at(after, scene2, cells[1]) - rgb(th.mamba)).sum() < 30
    diff = np.abs(before.astype(int) - after.astype(int)).sum(axis=2) > 24
    ys, xs = np.nonzero(diff)
    assert len(xs) > 10
    x0, y1 = scene.to_px(*cells[0].get_corner([-1, -1, 0])[:2])
    x1, y0 = scene.to_px(*cells[1].get_corner([1, 1, 0])[:2])
    assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1


def test_a_pattern_that_disagrees_with_its_counts_is_refused(shipped):
    _, scene = shipped
    wrong = dataclasses.replace(NANO, pattern="E" + NANO.pattern[1:])  # one M became an E
    with pytest.raises(ParamError, match="Nemotron 3 Nano 30B-A3B: its pattern has"):
        HybridMap(params=dataclasses.replace(scene.params, models=(wrong,)))


def test_rows_name_their_sources(shipped):
    _, scene = shipped
    words = " ".join(t.original_text for top in scene.mobjects for t in top.get_family() if isinstance(t, Text))
    for m in scene.params.models:
        for key in hybrid_map.source_keys(m):
            assert f"[{hybrid_map.SOURCE_TAGS[key]}]" in words
            assert hybrid_map.SOURCE_SHORT[key] in words


# ------------------------------------------------------------------------------------------------
# legibility


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("stop", ["rows", None])
def test_text_is_large_and_contrasted(theme, stop):
    frame, scene = still(hybrid_map.default_params(theme), stop)
    for px in (480, 1080):
        assert illegible(scene.mobjects, px) == []
    th = THEMES[theme]
    for t in (m for top in scene.mobjects for m in top.get_family() if isinstance(m, Text)):
        assert contrast_ratio(t.get_fill_color().to_hex(), th.background) >= TEXT_CONTRAST, t.original_text
    for m in (m for top in scene.mobjects for m in top.get_family()):
        if isinstance(m, Rectangle) and m.get_fill_opacity() > 0.9 and m.get_fill_color().to_hex().upper() \
                != th.background.upper():
            assert contrast_ratio(m.get_fill_color().to_hex(), th.background) >= GRAPHIC_CONTRAST
    assert not is_marker_green(frame).any()
    fw, fh = config.frame_width, config.frame_height
    for top in scene.mobjects:
        assert -fw / 2 <= top.get_left()[0] and top.get_right()[0] <= fw / 2
        assert -fh / 2 <= top.get_bottom()[1] and top.get_top()[1] <= fh / 2


# ------------------------------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize("env,message", [
    ({"TOY_PACE": "fast"}, "TOY_PACE='fast': the pace must be a number of seconds per row"),
    ({"TOY_PACE": "9"}, "TOY_PACE='9': at 15 fps the pace must be between 0.14 and 5 seconds per row"),
    ({"TOY_THEME": "sepia"}, "TOY_THEME='sepia': the theme must be 'dark' or 'light'"),
    ({"TOY_TRACE": "/no/such.npz"}, "TOY_TRACE: trace file not found: /no/such.npz"),
])
def test_bad_parameters_say_so_in_one_line(env, message):
    with pytest.raises(ParamError) as err:
        resolve_params(env, frame_rate=15)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_the_defaults():
    p = resolve_params({}, frame_rate=15)
    assert p.pace == 1.0 and p.theme.name == "dark"
    assert [m.name for m in p.models[1:]] == [m.name for m in MODELS]
    assert p.models[0].pattern == load_trace(DEFAULT_TRACE).pattern


def test_a_notebook_builds_it_without_the_environment(monkeypatch):
    monkeypatch.setenv("TOY_THEME", "sepia")  # read by nothing here
    _, scene = still(MapParams(models=(NANO, ULTRA), pace=0.5, theme=THEMES["light"]), "rows")
    assert [s.counts() for s in scene.strips] == [kind_counts(NANO), kind_counts(ULTRA)]
    with pytest.raises(ParamError, match="HybridMap needs params"):
        HybridMap()


def test_importing_the_scene_file_changes_nothing():
    code = f"""
        import copy, os, sys
        import manim
        before_cfg, before_env = copy.deepcopy(dict(manim.config.items())), dict(os.environ)
        sys.path.insert(0, {str(ROOT / "scenes")!r})
        import hybrid_map
        after = dict(manim.config.items())
        assert not [k for k in before_cfg if before_cfg[k] != after[k]]
        assert dict(os.environ) == before_env and hybrid_map.HybridMap.params is None
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | {"TOY_THEME": "sepia"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd="/", capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr


def test_manim_cli_refuses_a_bad_pace_in_one_line(tmp_path):
    media = tmp_path / "media"
    cmd = [sys.executable, "-m", "manim", "--hide-splash", "render", "-ql", "--dry_run", "--media_dir", str(media),
           "-v", "WARNING", "--progress_bar", "none", str(ROOT / "scenes" / "hybrid_map.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | {"TOY_PACE": "0.05"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error: TOY_PACE='0.05': at 15 fps the pace must be at least 0.14 s per row",
                                        lines[0]), lines
    assert not media.exists()


@pytest.mark.slow
def test_manim_cli_renders_it_with_no_arguments(tmp_path):
    """`manim render -ql scenes/hybrid_map.py` from the repo root: the bundled trace and data, a video."""
    media = tmp_path / "media"
    cmd = [sys.executable, "-m", "manim", "--hide-splash", "render", "-ql", "--media_dir", str(media),
           "-v", "WARNING", "--progress_bar", "none", str(ROOT / "scenes" / "hybrid_map.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(media.rglob("HybridMap.mp4"))
