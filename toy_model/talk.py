"""The talk: every scene's slides, rendered in parallel, as one offline HTML deck and one PowerPoint file.

    python -m toy_model.talk                                  # ./render.sh talk; every scene, in TALK order
    python -m toy_model.talk --scenes block_flow,attention --quality 1080p60 --theme light --jobs 4

Each scene's slide version (scenes/talk.py: the scene itself, pausing at the beats it marks) is rendered by
Manim in its own process and media folder, up to --jobs at a time, all into one work folder beside the
outputs (OUT/.talk-<options>/). A scene whose slides are already there is not rendered again: a talk build
interrupted halfway resumes where it stopped. Then manim-slides converts the slides, in the talk's order, to
OUT/talk.html (one file: reveal.js, styles and every video inline; it opens with no network, from any folder)
and OUT/talk.pptx (one slide per slide, with its video and speaker notes). Both are written to a temporary
file and renamed. Prints the two paths. Progress goes to standard error.

The same split runs on a cluster under its own scheduler: one job per scene, each running
`manim render <quality flag> scenes/talk.py <Scene>Slides` in a shared work folder (each job with its own
--media_dir), then one `manim-slides convert` over the work folder's slides/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from toy_model.options import OneLineParser

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "scenes" / "talk.py"
TALK = ("hybrid_map", "block_flow", "mamba2_ssd", "latent_moe", "attention", "generation", "emoji_chat")
CLASSES = {"hybrid_map": "HybridMap", "block_flow": "BlockFlow", "mamba2_ssd": "Mamba2SSD",
           "latent_moe": "LatentMoE", "attention": "Attention", "generation": "Generation",
           "emoji_chat": "EmojiChat"}
QUALITIES = {"preview": "-ql", "1080p60": "-qh", "4k": "-qk"}
REVEALJS = Path(sys.prefix) / "share" / "toy-model-revealjs"  # filled by ./render.sh's set-up: see revealjs_cache


class TalkError(Exception):
    """A bad option or a failed step, in one line."""


def scenes_of(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise TalkError("--scenes is empty: give names such as block_flow,attention")
    for n in names:
        if n not in CLASSES:
            raise TalkError(f"--scenes: unknown scene '{n}' (the scenes: {', '.join(TALK)})")
    return sorted(set(names), key=names.index)


def revealjs_cache() -> Path:
    """An XDG cache folder holding manim-slides' reveal.js assets, so that --offline needs no network."""
    cache = REVEALJS / "cache"
    if not (cache / "manim-slides" / "revealjs6.0.1" / "reveal.js").is_file():
        raise TalkError(f"reveal.js is missing from {REVEALJS}: run ./render.sh talk (its set-up fetches it)")
    return cache


def render_one(scene: str, work: Path, quality: str, env: dict) -> float:
    """Render one scene's slides into work/slides (skipped when already there); the seconds it took."""
    cls = f"{CLASSES[scene]}Slides"
    if (work / "slides" / f"{cls}.json").is_file() and (work / f".{cls}.done").is_file():
        return 0.0
    t0 = time.monotonic()
    media = work / f"media-{scene}"
    cmd = [sys.executable, "-m", "manim", "render", QUALITIES[quality], "--disable_caching", "-v", "WARNING",
           "--progress_bar", "none", "--media_dir", str(media), str(ENTRY), cls]
    r = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise TalkError(f"{scene}: the render failed: {last}")
    shutil.rmtree(media, ignore_errors=True)  # the slides keep their own copies of the videos
    (work / f".{cls}.done").write_text("")
    return time.monotonic() - t0


def convert(work: Path, scenes: list[str], to: str, out: Path) -> Path:
    """manim-slides convert of the scenes' slides, in order, to `out` (a temporary file renamed into place)."""
    from toy_model.files import atomic_output

    classes = [f"{CLASSES[s]}Slides" for s in scenes]
    env = os.environ | {"XDG_CACHE_HOME": str(revealjs_cache())}
    extra = ["--one-file", "--offline"] if to == "html" else []
    with atomic_output(out, f"talk {to}") as tmp:
        dest = Path(tmp).with_suffix(f".{to}")
        cmd = [sys.executable, "-m", "manim_slides", "convert", "--to", to, *extra, "--folder", "slides",
               *classes, str(dest)]
        r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if r.returncode != 0 or not dest.is_file():
            last = ((r.stderr or r.stdout).strip().splitlines() or ["(no message)"])[-1]
            raise TalkError(f"converting to {to} failed: {last}")
        os.replace(dest, tmp)
    return out


def build(scenes: list[str], quality: str, theme: str | None, out: Path, jobs: int, log=print) -> tuple[Path, Path]:
    """Render the scenes' slides (in parallel, resuming) and convert them; (html, pptx)."""
    if not out.is_dir():
        raise TalkError(f"--out '{out}' is not a folder")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")}
    if theme:
        env["TOY_THEME"] = theme
    key = hashlib.sha256(f"{quality}|{theme}".encode()).hexdigest()[:10]
    work = out / f".talk-{quality}-{theme or 'default'}-{key}"
    (work / "slides").mkdir(parents=True, exist_ok=True)
    started, done = time.monotonic(), 0
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(render_one, s, work, quality, env): s for s in scenes}
        for f in as_completed(futures):
            seconds = f.result()
            done += 1
            what = "already rendered" if seconds == 0 else f"rendered in {seconds:.0f} s"
            log(f"[talk] {done}/{len(scenes)} {futures[f]}: {what} ({time.monotonic() - started:.0f} s in all)")
    html = convert(work, scenes, "html", out / "talk.html")
    pptx = convert(work, scenes, "pptx", out / "talk.pptx")
    return html, pptx


def main(argv=None) -> int:
    ap = OneLineParser(prog="python -m toy_model.talk", description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default=",".join(TALK), help="comma-separated, in the talk's order")
    ap.add_argument("--quality", default="preview", choices=sorted(QUALITIES))
    ap.add_argument("--theme", choices=["dark", "light"])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="scenes rendered at once")
    ap.add_argument("--out", default=str(REPO / "media" / "talk"), help="folder for talk.html and talk.pptx")
    args = ap.parse_args(argv)
    try:
        if args.jobs < 1:
            raise TalkError(f"--jobs must be at least 1, not {args.jobs}")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise TalkError(f"--out '{out}' is not a folder")
        scenes = scenes_of(args.scenes)
        out.mkdir(parents=True, exist_ok=True)
        html, pptx = build(scenes, args.quality, args.theme, out, args.jobs,
                           log=lambda s: print(s, file=sys.stderr, flush=True))
    except TalkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(html)
    print(pptx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
