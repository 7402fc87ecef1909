"""Talk mode: the scenes as slides (the same frames, with pauses and speaker notes), the offline HTML deck in a
real browser (Debian's Chromium through Playwright, no network), the PowerPoint file read back, and the talk
build's resume and bad options."""

import fcntl
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from toy_model.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/lib/chromium/chromium")
TALK_SCENES = "hybrid_map,latent_moe"  # two short scenes: one deck from several scenes


def run_talk(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "toy_model.talk", "--out", str(out), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    out = tmp_path_factory.mktemp("talk")
    r = run_talk(out, "--scenes", TALK_SCENES, "--jobs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    work = next(out.glob(".talk-*"))
    slides = {name: json.loads((work / "slides" / f"{name}.json").read_text())["slides"]
              for name in ("HybridMapSlides", "LatentMoESlides")}
    return out, r, work, slides


def test_the_talk_prints_its_two_files(talk):
    out, r, _, slides = talk
    assert r.stdout.split() == [str(out / "talk.html"), str(out / "talk.pptx")]
    assert all(len(s) >= 4 for s in slides.values())  # each scene pauses at its beats
    notes = [s["notes"] for ss in slides.values() for s in ss]
    assert all(n.strip() for n in notes)  # every slide has speaker notes
    assert any("Nemotron 3 Super" in n for n in notes) and any("max / mean" in n for n in notes)


def test_the_build_shows_progress_per_scene_and_overall(talk):
    _, r, _, _ = talk
    lines = r.stderr.splitlines()
    for scene in TALK_SCENES.split(","):
        assert any(line.startswith(f"[talk] {scene}: slide ") for line in lines), r.stderr
        assert any(line.startswith(f"[talk] {scene}: rendered in ") for line in lines), r.stderr
    assert "1/2 scenes done" in r.stderr and "2/2 scenes done" in r.stderr


def serve_offline(page):
    """Every request but the deck's own file and its inline data refused: the deck must not need them."""
    refused = []

    def route(request):
        if request.request.url.startswith(("file:", "data:", "blob:")):
            request.continue_()
        else:
            refused.append(request.request.url)
            request.abort()

    page.route("**/*", route)
    return refused


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium: ./render.sh test installs Debian's chromium")
def test_the_html_deck_plays_offline_in_a_browser(talk, tmp_path):
    """The deck, moved to another folder, opened in headless Chromium with every network request refused: it
    loads, has a slide per manim-slides slide, each slide's video is inline and plays, the right arrow moves on,
    and the speaker notes are there."""
    from playwright.sync_api import sync_playwright

    out, _, _, slides = talk
    n_slides = sum(len(s) for s in slides.values())
    moved = tmp_path / "elsewhere" / "deck.html"
    moved.parent.mkdir()
    shutil.copy(out / "talk.html", moved)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            refused = serve_offline(page)
            page.goto(moved.as_uri())
            page.wait_for_function("window.Reveal && Reveal.isReady()", timeout=60_000)
            assert page.evaluate("Reveal.getTotalSlides()") == n_slides
            sources = page.eval_on_selector_all(
                ".slides > section", "els => els.map(e => e.getAttribute('data-background-video') || '')")
            assert len(sources) == n_slides and all(s.startswith("data:video/mp4;base64,") for s in sources)
            page.keyboard.press("ArrowRight")
            page.wait_for_function("Reveal.getIndices().h === 1", timeout=10_000)
            first = slides["HybridMapSlides"][1]["notes"]
            assert first.split()[0] in page.evaluate("Reveal.getSlideNotes()")
            for i in range(n_slides):  # every slide's video decodes and plays: its time moves on
                page.evaluate(f"Reveal.slide({i})")
                page.wait_for_function(
                    "(() => { const v = document.querySelector('.slide-background.present video');"
                    " return v && v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0 })()",
                    timeout=30_000)
            assert page.evaluate("Reveal.getIndices().h") == n_slides - 1
            assert not refused, refused[:3]  # everything is inside the one file
        finally:
            browser.close()


def test_the_pptx_has_a_slide_per_slide_with_its_video_and_notes(talk):
    from pptx import Presentation

    out, _, _, slides = talk
    notes = [s["notes"].strip() for name in ("HybridMapSlides", "LatentMoESlides") for s in slides[name]]
    deck = Presentation(str(out / "talk.pptx"))
    assert len(deck.slides) == len(notes)
    for slide, want in zip(deck.slides, notes, strict=True):
        movies = [sh for sh in slide.shapes if sh.shape_type is not None and "MEDIA" in str(sh.shape_type)]
        assert len(movies) == 1
        assert slide.notes_slide.notes_text_frame.text.strip() == want


def test_an_interrupted_talk_resumes(talk, tmp_path):
    """Finished scenes are not rendered again; one whose render did not finish, or whose files changed since,
    is. With the scenes' lengths learnt, the progress lines give each scene's share and the talk's."""
    out, _, work, _ = talk
    (out / "talk.html").unlink()
    r = run_talk(out, "--scenes", TALK_SCENES)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.count("already rendered") == 2 and (out / "talk.html").is_file()
    (work / ".HybridMapSlides.done").unlink()  # its render was cut short
    (work / ".LatentMoESlides.done").write_text("0" * 16)  # rendered from other files
    r = run_talk(out, "--scenes", TALK_SCENES)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "hybrid_map: rendered in" in r.stderr and "latent_moe: rendered in" in r.stderr
    assert re.search(r"\[talk\] (hybrid_map|latent_moe): slide \d+ of \d+, \d+% ", r.stderr), r.stderr
    assert "talk 100%" in r.stderr


def test_two_builds_into_one_folder_take_turns(talk):
    """While another build holds the work folder, a second waits for it, then goes on (here: all rendered)."""
    import threading

    out, _, work, _ = talk
    lines: list[str] = []
    with open(work / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = subprocess.Popen([sys.executable, "-m", "toy_model.talk", "--out", str(out), "--scenes", TALK_SCENES],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while not any("another talk build is using" in line for line in lines) and time.monotonic() < deadline:
                assert p.poll() is None, lines  # it must wait, not go on
                time.sleep(0.2)
            assert any("another talk build is using" in line for line in lines), lines
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    p.wait(timeout=300)
    reader.join(timeout=60)
    err = "".join(lines)
    assert p.returncode == 0 and err.count("already rendered") == 2, err


def test_the_slides_are_the_scenes_frames(tmp_path):
    """The slide version of a scene is the scene itself: its slides' videos, end to end, are the plain render's
    frames."""
    media = tmp_path / "media"
    common = [sys.executable, "-m", "manim", "render", "-ql", "--disable_caching", "-v", "WARNING",
              "--progress_bar", "none", "--media_dir", str(media)]
    subprocess.run([*common, str(ROOT / "scenes" / "hybrid_map.py"), "HybridMap"], cwd=tmp_path, check=True)
    subprocess.run([*common, str(ROOT / "scenes" / "talk.py"), "HybridMapSlides"], cwd=tmp_path, check=True)
    plain = read_frames(media / "videos" / "hybrid_map" / "480p15" / "HybridMap.mp4")
    slides = json.loads((tmp_path / "slides" / "HybridMapSlides.json").read_text())["slides"]
    assert len(slides) >= 4
    parts = [f for s in slides for f in read_frames(tmp_path / s["file"])]
    assert len(parts) == len(plain)
    worst = max(float(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(parts, plain, strict=True))
    assert worst <= 8, worst  # the same pictures (video coding may move a value by a few levels)


@pytest.mark.parametrize(("args", "message"), [
    (["--scenes", "slides"], "--scenes: unknown scene 'slides'"),
    (["--scenes", ","], "--scenes is empty"),
    (["--jobs", "0"], "--jobs must be at least 1, not 0"),
])
def test_bad_options_are_one_line(tmp_path, args, message):
    r = run_talk(tmp_path, *args)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not r.stdout
    assert not list(tmp_path.iterdir())  # nothing written


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run_talk(tmp_path / "file")
    assert r.returncode == 2 and "is not a folder" in r.stderr and (tmp_path / "file").read_text() == "x"

