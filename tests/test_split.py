"""Split renders (toy_model.split, toy_model.video.join): a scene cut at its beats into parts rendered apart, then
joined, is the whole render, frame for frame and subtitle for subtitle; the plan a cluster runs; bad input."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toy_model.split import cut

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**extra) -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOY_")} | extra


def python(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=env or clean_env(), capture_output=True,
                          text=True, timeout=900)


def test_parts_are_cut_at_beats_by_video_time():
    beats = [{"play": p, "time": t} for p, t in [(0, 0.0), (3, 5.0), (40, 21.0), (60, 40.0), (80, 60.0)]]
    end = {"plays": 100, "time": 80.0}
    assert cut(beats, end, 1) == [(0, None)]
    assert cut(beats, end, 2) == [(0, 59), (60, None)]  # 40 s is the beat nearest half of 80 s
    assert cut(beats, end, 4) == [(0, 39), (40, 59), (60, 79), (80, None)]
    assert cut(beats, end, 9) == [(0, 2), (3, 39), (40, 59), (60, 79), (80, None)]  # no more parts than beats
    assert cut([{"play": 0, "time": 0.0}], end, 4) == [(0, None)]  # a scene with one beat is one part


@pytest.mark.slow
def test_block_flow_in_token_ranges_is_the_whole_render(tmp_path):
    """block_flow's passes (the prefill, then one decoded token per beat) rendered as three parts on two cores
    and joined: the same frames as one render, the same subtitles."""
    import srt

    from toy_model.video import read_frames

    env = clean_env(TOY_TOKENS="9-11", TOY_GUIDE="off")
    r = python("-m", "toy_model.split", "run", "block_flow", "--parts", "3", "--jobs", "2", "--out",
               str(tmp_path / "joined.mp4"), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == str(tmp_path / "joined.mp4") and "in 3 parts" in r.stderr
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "manim", "render", "-ql", "--disable_caching", "-v", "WARNING",
                    "--progress_bar", "none", "--media_dir", str(whole), str(ROOT / "scenes" / "block_flow.py")],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    video = whole / "videos" / "block_flow" / "480p15" / "BlockFlow.mp4"
    joined, plain = read_frames(tmp_path / "joined.mp4"), read_frames(video)
    assert len(joined) == len(plain) > 500
    assert all(np.array_equal(a, b) for a, b in zip(joined, plain, strict=True))
    parsed = lambda p: list(srt.parse(p.read_text(encoding="utf-8")))
    assert parsed(tmp_path / "joined.srt") == parsed(video.with_suffix(".srt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.mp4", "joined.srt", "whole"]  # no part left


def test_the_plan_a_cluster_runs(tmp_path):
    """One manim command per part, covering every animation once and in order, each into its own media folder,
    then the join, of the videos these options make (-t: MOV)."""
    r = python("-m", "toy_model.split", "plan", "hybrid_map", "--parts", "3", "--quality", "4k", "--", "-t")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    commands, join = lines[:-1], lines[-1]
    assert len(commands) == 3 and join.startswith("# then: python -m toy_model.video join hybrid_map.mov ")
    spans, medias = [], []
    for c in commands:
        words = c.split()
        assert words[:3] == ["manim", "render", "-qk"] and "-t" in words and words[-1] == "HybridMap"
        spans.append(words[words.index("-n") + 1])
        medias.append(words[words.index("--media_dir") + 1])
    first = [int(s.split(",")[0]) for s in spans]
    assert first[0] == 0 and spans[-1].isdigit()  # the last part runs to the end
    assert all(int(a.split(",")[1]) + 1 == b for a, b in zip(spans, first[1:], strict=False))  # contiguous
    assert len(set(medias)) == 3 and all(f"{m}/videos/hybrid_map/2160p60/HybridMap.mov" in join for m in medias)


@pytest.mark.parametrize(("args", "message"), [
    (["plan", "slides"], "unknown scene 'slides'"),
    (["plan", "hybrid_map", "--parts", "0"], "--parts must be at least 1, not 0"),
    (["run", "hybrid_map", "--out", "x.avi"], "the video must end in .mp4, .mov or .webm"),
    (["run", "hybrid_map", "--jobs", "0", "--out", "x.mp4"], "--jobs must be at least 1, not 0"),
    (["run", "hybrid_map"], "the following arguments are required: --out"),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    r = python("-m", "toy_model.split", *args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_join_refuses_parts_that_do_not_belong_together(tmp_path):
    """Parts of other sizes, or a file that is no video, are one line; nothing is written."""
    import av

    from toy_model.video import read_frames

    def video(path, width):
        with av.open(str(path), "w") as c:
            s = c.add_stream("libx264", rate=15)
            s.width, s.height, s.pix_fmt = width, 64, "yuv420p"
            for _ in range(3):
                for packet in s.encode(av.VideoFrame.from_ndarray(np.zeros((64, width, 3), np.uint8), "rgb24")):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)

    video(tmp_path / "a.mp4", 64)
    video(tmp_path / "b.mp4", 96)
    (tmp_path / "c.mp4").write_text("not a video")
    for parts, message in ([["a.mp4", "b.mp4"], "differs from"], [["a.mp4", "c.mp4"], "not a video"]):
        r = python("-m", "toy_model.video", "join", "out.mp4", *parts, cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "out.mp4").exists()
    r = python("-m", "toy_model.video", "join", "out.mp4", "a.mp4", "a.mp4", cwd=tmp_path)
    assert r.returncode == 0 and len(read_frames(tmp_path / "out.mp4")) == 6


def test_joined_transparent_webm_parts_stay_transparent(tmp_path):
    """VP9 keeps its alpha in a side channel that the WebM must announce (ALPHA_MODE): the join announces it again,
    so a browser shows the joined video transparent too."""
    import av

    from toy_model.video import read_frames

    def clip(path):
        with av.open(str(path), "w") as c:
            s = c.add_stream("libvpx-vp9", rate=15)
            s.width, s.height, s.pix_fmt = 64, 64, "yuva420p"
            for _ in range(3):
                rgba = np.zeros((64, 64, 4), np.uint8)
                rgba[16:48, 16:48] = (255, 128, 0, 255)  # an opaque square on nothing
                for packet in s.encode(av.VideoFrame.from_ndarray(rgba, "rgba")):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)

    clip(tmp_path / "a.webm")
    r = python("-m", "toy_model.video", "join", "j.webm", "a.webm", "a.webm", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with av.open(str(tmp_path / "j.webm")) as c:
        assert c.streams.video[0].metadata.get("alpha_mode") == "1"
    frames = read_frames(tmp_path / "j.webm", "rgba")
    assert len(frames) == 6 and all(f[0, 0, 3] < 8 and f[32, 32, 3] > 247 for f in frames)
