"""The scene kit (toy_model.viz): importable from anywhere with no side effect, one interface per layer kind."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | env
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd="/", capture_output=True, text=True,
                          timeout=300, env=clean)


def test_importing_the_kit_and_a_scene_file_changes_nothing():
    """Manim's config and the environment are the same before and after importing every kit module and the
    scene files (which read the environment only when Manim renders them)."""
    r = run_python("""
        import copy, importlib, os, pkgutil, sys
        import manim
        before_cfg, before_env = copy.deepcopy(dict(manim.config.items())), dict(os.environ)
        import toy_model.viz
        names = [m.name for m in pkgutil.iter_modules(toy_model.viz.__path__, "toy_model.viz.")]
        for name in names:
            importlib.import_module(name)
        import toy_model.scenes.block_flow
        import toy_model.scenes.emoji_chat
        after_cfg = dict(manim.config.items())
        changed = [k for k in before_cfg if before_cfg[k] != after_cfg[k]]
        assert not changed, changed
        assert dict(os.environ) == before_env
        print(len(names), "modules")
    """, TOY_THEME="purple", TOY_PACE="-1")  # bad values that would exit if anything read them
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[0]) >= 8


def test_views_need_no_manim():
    r = run_python("""
        import sys
        from toy_model.viz.views import TraceView
        assert "manim" not in sys.modules and "torch" not in sys.modules, sorted(sys.modules)[:5]
    """)
    assert r.returncode == 0, r.stderr


def test_a_scene_builds_from_explicit_parameters_without_the_environment(monkeypatch):
    """As in a notebook: no TOY_* variables, explicit parameters, no exit; without parameters, an exception."""
    from manim import tempconfig
    from toy_model.scenes import block_flow

    from toy_model.trace_file import load_trace
    from toy_model.viz.params import ParamError
    from toy_model.viz.theme import THEMES

    for name in ("TOY_THEME", "TOY_PACE", "TOY_TRACE", "TOY_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    trace = load_trace(ROOT / "traces" / "default.npz")
    params = block_flow.FlowParams(trace, ROOT / "traces" / "default.npz", (3,), 0.3, THEMES["light"])
    with tempconfig({"dry_run": True, "quality": "low_quality", "progress_bar": "none", "verbosity": "ERROR"}):
        scene = block_flow.BlockFlow(params=params, stop_at=(0, 2))
        scene.render()
        assert scene.marker.get_center()[1] == pytest.approx(scene.blocks[2].lane_point[1])
        with pytest.raises(ParamError, match="BlockFlow needs params"):
            block_flow.BlockFlow()


def test_one_vocabulary_of_layer_kinds():
    """Config, trace format, conversion, mixers and scenes all read toy_model.kinds."""
    from toy_model.config import HybridConfig
    from toy_model.convert import config_to_nemotron_h
    from toy_model.kinds import BY_CHAR, KINDS
    from toy_model.layers import MIXERS
    from toy_model.trace_file import KIND_OF_CHAR
    from toy_model.viz.details import DETAILS

    cfg = HybridConfig(pattern="ME*-")
    assert [cfg.layer_kind(i) for i in range(4)] == [k.name for k in KINDS]
    assert KIND_OF_CHAR == {k.char: k.name for k in KINDS}
    assert config_to_nemotron_h(cfg)["layers_block_type"] == [k.hf_type for k in KINDS]
    assert {name: cls.__name__ for name, cls in MIXERS.items()} == {k.name: k.mixer for k in KINDS}
    assert set(DETAILS) == {k.name for k in KINDS}  # a picture for every layer kind
    assert BY_CHAR["E"].display_title(latent=True) == "Latent MoE" and BY_CHAR["E"].display_title() == "MoE"


def test_fast_scene_draws_the_frames_scene_draws():
    """FastScene (toy_model.viz.scene) redraws less, yet every frame is the one Scene draws, pixel for pixel: a
    backdrop of text, a static piece that changes between plays, one bar of a group animated at a time, a
    Succession, a wait."""
    import numpy as np
    from manim import (
        DOWN,
        LEFT,
        RIGHT,
        UP,
        Dot,
        Rectangle,
        Scene,
        Square,
        Succession,
        Text,
        Transform,
        VGroup,
        tempconfig,
    )

    from toy_model.viz.scene import FastScene

    def story(scene):
        backdrop = VGroup(*[Text(f"label {i}", font_size=20).shift(UP * (i - 2.5) * 0.6 + 3 * LEFT) for i in range(6)])
        bars = VGroup(*[Rectangle(width=0.3, height=0.2 + 0.1 * i, fill_opacity=1) for i in range(4)])
        bars.arrange(RIGHT, aligned_edge=DOWN).shift(2 * RIGHT)
        box, dot = Square().shift(DOWN * 2), Dot().shift(UP * 3)
        scene.add(backdrop, box, bars, dot)  # the box before the bars: in the still image of every play
        for i in range(4):
            box.set_stroke(width=2 + 2 * i)  # changed between plays: the kept still image must not show the old one
            target = bars[i].copy().stretch(2, 1, about_edge=DOWN)
            scene.play(Transform(bars[i], target), dot.animate.shift(0.4 * RIGHT), run_time=0.2)
        scene.play(Succession(bars[0].animate.set_fill("#FF0000"), dot.animate.shift(UP)), run_time=0.4)
        scene.wait(0.2)

    frames = {}
    for base in (Scene, FastScene):
        scene_class = type(f"Story{base.__name__}", (base,), {"construct": story})
        with tempconfig({"dry_run": True, "quality": "low_quality", "progress_bar": "none", "verbosity": "ERROR",
                         "disable_caching": True}):
            scene, got = scene_class(), []
            scene.renderer.add_frame = lambda frame, num_frames=1, got=got: got.extend([frame.copy()] * num_frames)
            scene.render()
        frames[base] = got
    assert len(frames[Scene]) == len(frames[FastScene]) > 20
    different = [i for i, (a, b) in enumerate(zip(frames[Scene], frames[FastScene], strict=True))
                 if not np.array_equal(a, b)]
    assert not different, f"frames {different[:10]} differ"


@pytest.mark.parametrize("theme_name", ["dark", "light"])
def test_theme_colours_meet_the_contrast_rules(theme_name):
    """WCAG 2 contrast, from the theme's colours: text (and accents used as text, e.g. layer tags) 4.5:1 against
    the backgrounds it sits on; graphics that carry meaning (the marker, lit cells and bars, outlines of empty
    cells) 3:1 against theirs; the token text on a fully lit attention chip 4.5:1."""
    from toy_model.viz.legibility import GRAPHIC_CONTRAST, TEXT_CONTRAST, contrast_ratio
    from toy_model.viz.theme import THEMES, mix

    th = THEMES[theme_name]
    for fg in (th.text, th.muted, th.mamba, th.moe, th.attention):
        for bg in (th.background, th.panel):
            assert contrast_ratio(fg, bg) >= TEXT_CONTRAST, (fg, bg, contrast_ratio(fg, bg))
    for fg in (th.marker, th.mamba, th.moe, th.attention, th.muted):
        for bg in (th.background, th.panel, th.cell_off):
            assert contrast_ratio(fg, bg) >= GRAPHIC_CONTRAST, (fg, bg, contrast_ratio(fg, bg))
    from toy_model.viz.details import lit_fraction

    lit = lit_fraction(th.cell_off, th.attention, th.text)
    assert lit >= 0.35  # a fully attended chip still stands out
    assert contrast_ratio(th.text, mix(th.cell_off, th.attention, lit).to_hex()) >= TEXT_CONTRAST


# ------------------------------------------------------------------------------------------------
# what talks and long renders need from every scene (toy_model.viz.scene, subtitles, progress)


def render_in_process(scene_class, **config):
    """Render a scene class in this process without writing files; the scene, and its frames."""
    from manim import tempconfig

    frames = []
    with tempconfig({"dry_run": True, "quality": "low_quality", "progress_bar": "none", "verbosity": "ERROR",
                     "disable_caching": True} | config):
        scene = scene_class()
        add_frame = scene.renderer.add_frame

        def keep(frame, num_frames=1):
            if not scene.renderer.skip_animations:
                frames.extend([frame.copy()] * num_frames)
            add_frame(frame, num_frames)

        scene.renderer.add_frame = keep
        scene.render()
    return scene, frames


def subtitle_story(scene):
    from manim import Square

    from toy_model.viz.subtitles import say

    square = Square()
    say(scene, "one   two\nthree")  # whitespace folded
    scene.play(square.animate.shift([1, 0, 0]), run_time=0.3)  # 4.5 frames at 15 fps: 5 are written
    say(scene, "one two three")  # the same words: the subtitle goes on
    scene.wait(0.5)  # 7.5 frames: 7
    say(scene, "second")
    scene.play(square.animate.shift([-1, 0, 0]), run_time=0.2)  # 3 frames
    say(scene, None)
    scene.wait(0.4)  # 6 frames, no subtitle
    say(scene, "last")
    scene.play(square.animate.scale(0.5), run_time=0.3)  # 5 frames; ended by the scene's end


def subtitles_of(scene) -> list[tuple[float, float, str]]:
    return [(s.start.total_seconds(), s.end.total_seconds(), s.content)
            for s in scene.renderer.file_writer.subcaptions]


def test_subtitles_last_while_their_words_are_on_screen():
    """say() starts a subtitle at the frame its words appear and ends it at the next say() or the scene's end;
    times count the frames Manim writes."""
    from toy_model.viz.scene import KitScene

    scene, frames = render_in_process(type("Subtitled", (KitScene,), {"construct": subtitle_story}))
    assert len(frames) == 5 + 7 + 3 + 6 + 5
    f = 1 / 15
    want = [(0, 12 * f, "one two three"), (12 * f, 15 * f, "second"), (21 * f, 26 * f, "last")]
    got = subtitles_of(scene)
    assert [s[2] for s in got] == [w[2] for w in want]
    assert all(abs(a - c) < 1e-3 and abs(b - d) < 1e-3 for (a, b, _), (c, d, _) in zip(got, want, strict=True)), got


@pytest.mark.parametrize("start", [1, 2, 3])
def test_a_part_of_a_render_keeps_the_whole_renders_clock(start):
    """Manim's -n START: the skipped plays count in the frames they would have written (KitRenderer), so a part's
    subtitles carry the whole render's times and its frames are the whole render's from START on."""
    import numpy as np

    from toy_model.viz.scene import FastScene, KitScene

    for base in (KitScene, FastScene):
        cls = type(f"Subtitled{base.__name__}", (base,), {"construct": subtitle_story})
        whole, all_frames = render_in_process(cls)
        part, part_frames = render_in_process(cls, from_animation_number=start)
        assert subtitles_of(part) == subtitles_of(whole)
        assert abs(part.time - whole.time) < 1e-9
        skipped = [5, 7, 3, 6, 5][:start]
        tail = all_frames[sum(skipped):]
        assert len(part_frames) == len(tail) and all(np.array_equal(a, b) for a, b in zip(part_frames, tail,
                                                                                          strict=True))


@pytest.mark.parametrize("transparent", [False, True])
def test_a_curtain_fades_to_the_background_or_to_transparent(transparent):
    """A half-drawn Curtain over a white square: in an opaque render, half the background colour over the square;
    in a transparent one (KitCamera), the square's alpha halves and nothing else changes; elsewhere the background
    stays transparent."""
    from manim import FadeIn, ManimColor, Square

    from toy_model.viz.scene import Curtain, KitScene

    background = "#10141A"

    def story(scene):
        scene.camera.background_color = ManimColor(background)
        scene.add(Square(side_length=2, fill_color="#FFFFFF", fill_opacity=1, stroke_width=0))
        curtain = Curtain(background)
        scene.play(FadeIn(curtain, rate_func=lambda t: 0.5 * t), run_time=0.2)
        scene.wait(0.2)  # drawn as the fade left it: half

    scene, frames = render_in_process(type("Curtained", (KitScene,), {"construct": story}), transparent=transparent)
    centre, corner = frames[-1][240, 427], frames[-1][5, 5]
    if transparent:
        assert corner[3] == 0
        assert abs(int(centre[3]) - 128) <= 2 and all(abs(int(c) - 128) <= 2 for c in centre[:3]), centre
    else:
        assert corner[3] == 255 and tuple(corner[:3]) == (0x10, 0x14, 0x1A)
        mixed = [(255 + c) / 2 for c in (0x10, 0x14, 0x1A)]
        assert centre[3] == 255 and all(abs(int(c) - m) <= 2 for c, m in zip(centre[:3], mixed, strict=True)), centre


def test_progress_reports_plays_beats_and_the_end(tmp_path):
    """A KitScene with a Progress reports every play, each beat (the play it starts at, its notes) and the end, as
    JSON lines another process can read while the render goes on."""
    from toy_model.viz.progress import Progress, read_events
    from toy_model.viz.scene import KitScene
    from toy_model.viz.slides import beat

    def story(scene):
        from manim import Square

        beat(scene, "first")
        scene.play(Square().animate.shift([1, 0, 0]), run_time=0.2)
        scene.wait(0.2)
        beat(scene, "second")
        scene.wait(0.4)

    log = tmp_path / "progress.jsonl"
    cls = type("Reported", (KitScene,), {"construct": story, "progress": Progress.to(str(log))})
    render_in_process(cls)
    cls.progress.stream.close()
    events = read_events(log)
    assert [e["event"] for e in events] == ["beat", "play", "play", "beat", "play", "end"]
    beats = [e for e in events if e["event"] == "beat"]
    assert [(b["beat"], b["play"], b["notes"]) for b in beats] == [(0, 0, "first"), (1, 2, "second")]
    assert events[-1]["plays"] == 3 and abs(events[-1]["time"] - (3 + 3 + 6) / 15) < 1e-3
