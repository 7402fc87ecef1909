"""The talk: every scene's slides, rendered in parallel, as one offline HTML deck and one PowerPoint file.

    python -m toy_model.talk                                  # ./render.sh talk; every scene, in TALK order
    python -m toy_model.talk --scenes block_flow,attention --quality 1080p60 --theme light --jobs 4

Each scene's slide version (scenes/talk.py: the scene itself, pausing at the beats it marks) is rendered by
Manim in its own process and media folder, up to --jobs at a time, all into one work folder beside the
outputs (OUT/.talk-<quality>-<theme>/). A scene whose slides are there and were made from the same files (its
scene file, the kit, the traces: a fingerprint) is not rendered again, so a talk build interrupted halfway
resumes where it stopped, and a changed scene is rendered afresh. Two builds into one work folder take turns
(a lock). Then manim-slides converts the slides, in the talk's order, to OUT/talk.html (one file: reveal.js,
styles and every video inline; it opens with no network, from any folder) and OUT/talk.pptx (one slide per
slide, with its video and speaker notes). Both are written to a temporary file and renamed. Prints the two
paths.

Progress goes to standard error: a line per scene as each of its slides starts (with its share of the scene
once a render of the same scene has told how long it is: any quality, kept in OUT/.talk.lengths.json), and a
line each time a scene is done, with the whole talk's share.

The same split runs on a cluster under its own scheduler: one job per scene, each running
`manim render <quality flag> scenes/talk.py <Scene>Slides` in a shared work folder (each job with its own
--media_dir), then one `manim-slides convert` over the work folder's slides/ (see the README).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from toy_model.files import OutputError, atomic_output, exit_on_sigterm
from toy_model.options import OneLineParser
from toy_model.renders import QUALITIES, QUIET, SCENES, Children, in_parallel, last_line
from toy_model.viz.progress import read_events

REPO = Path(__file__).resolve().parents[1]
ENTRY = REPO / "scenes" / "talk.py"
TALK = ("hybrid_map", "block_flow", "mamba2_ssd", "latent_moe", "attention", "generation", "emoji_chat")
REVEALJS = Path(sys.prefix) / "share" / "toy-model-revealjs"  # filled by ./render.sh's set-up: see revealjs_cache
POLL = 1.0  # seconds between looks at the scenes' progress


class TalkError(Exception):
    """A bad option or a failed step, in one line."""


def scenes_of(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise TalkError("--scenes is empty: give names such as block_flow,attention")
    for n in names:
        if n not in SCENES:
            raise TalkError(f"--scenes: unknown scene '{n}' (the scenes: {', '.join(TALK)})")
    return sorted(set(names), key=names.index)


def revealjs_cache() -> Path:
    """An XDG cache folder holding manim-slides' reveal.js assets, so that --offline needs no network."""
    cache = REVEALJS / "cache"
    if not (cache / "manim-slides" / "revealjs6.0.1" / "reveal.js").is_file():
        raise TalkError(f"reveal.js is missing from {REVEALJS}: run ./render.sh talk (its set-up fetches it)")
    return cache


def fingerprint(scene: str, options: str, root: Path = REPO) -> str:
    """What a scene's slides are made from: its scene file, scenes/talk.py and manim.cfg, the whole toy_model
    package (the kit, the trace reader) and the traces, and the build's options (theme, the chat's beats)."""
    h = hashlib.sha256(f"{scene}|{options}".encode())
    files = [root / "scenes" / f"{scene}.py", root / "scenes" / "talk.py", root / "scenes" / "manim.cfg",
             *sorted((root / "toy_model").rglob("*.py")), *sorted((root / "traces").glob("*.npz"))]
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def mmss(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


class Build:
    """One talk build: the scenes' renders, their progress, the lengths learnt from earlier builds."""

    def __init__(self, scenes: list[str], quality: str, theme: str | None, out: Path, log,
                 chat_beats: str | None = None):
        self.scenes, self.quality, self.theme, self.log = scenes, quality, theme, log
        self.work = out / f".talk-{quality}-{theme or 'default'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")}  # each scene's own defaults
        if theme:
            self.env["TOY_THEME"] = theme
        if chat_beats:
            self.env["TOY_BEATS"] = chat_beats  # emoji_chat's alone
        self.prints = {s: fingerprint(s, f"{theme}|{chat_beats if s == 'emoji_chat' else None}") for s in scenes}
        self.lengths_file = out / ".talk.lengths.json"
        self.lengths = self.read_lengths()
        self.done: set[str] = set()
        self.active: set[str] = set()  # the scenes rendering now (worker threads add and remove them)
        self.seen: dict[str, int] = {}  # scene -> beats reported so far
        self.children = Children()
        self.lock = threading.Lock()
        self.started = time.monotonic()

    # ---- what earlier builds learnt
    def read_lengths(self) -> dict:
        try:
            data = json.loads(self.lengths_file.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def length(self, scene: str) -> dict | None:
        entry = self.lengths.get(self.prints[scene])
        return entry if isinstance(entry, dict) and entry.get("time", 0) > 0 else None

    def learn(self, scene: str, end: dict, beats: int) -> None:
        with self.lock:
            kept = {k: v for k, v in self.read_lengths().items()  # one entry per scene and theme: the latest
                    if not (isinstance(v, dict) and v.get("scene") == scene and v.get("theme") == self.theme)}
            self.lengths = kept | {self.prints[scene]: {"scene": scene, "theme": self.theme, "time": end["time"],
                                                        "plays": end["plays"], "beats": beats}}
            try:
                with atomic_output(self.lengths_file, "talk lengths") as tmp:
                    tmp.write_text(json.dumps(self.lengths, indent=1), encoding="utf-8")
            except OutputError:
                pass  # only progress estimates are lost

    # ---- rendering
    def finished(self, scene: str) -> bool:
        cls = f"{SCENES[scene]}Slides"
        mark = self.work / f".{cls}.done"
        return (self.work / "slides" / f"{cls}.json").is_file() and mark.is_file() and \
            mark.read_text().strip() == self.prints[scene]

    def render(self, scene: str) -> float:
        """Render one scene's slides into work/slides (unless finished); the seconds it took (0: it was there)."""
        cls = f"{SCENES[scene]}Slides"
        if self.finished(scene):
            return 0.0
        t0 = time.monotonic()
        media, progress = self.work / f"media-{scene}", self.work / f"progress-{scene}.jsonl"
        shutil.rmtree(media, ignore_errors=True)
        progress.unlink(missing_ok=True)
        (self.work / f".{cls}.done").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "manim", "render", QUALITIES[self.quality][0], *QUIET, "--media_dir",
               str(media), str(ENTRY), cls]
        with self.lock:
            self.active.add(scene)
        try:
            rc, err = self.children.run(cmd, cwd=self.work, env=self.env | {"TOY_PROGRESS": str(progress)})
        finally:
            with self.lock:
                self.active.discard(scene)
        if rc != 0:
            raise TalkError(f"{scene}: the render failed: {last_line(err)}")
        events = read_events(progress)
        end = next((e for e in events if e["event"] == "end"), None)
        if end is not None:
            self.learn(scene, end, sum(e["event"] == "beat" for e in events))
        shutil.rmtree(media, ignore_errors=True)  # the slides keep their own copies of the videos
        progress.unlink(missing_ok=True)
        (self.work / f".{cls}.done").write_text(self.prints[scene])
        return time.monotonic() - t0

    # ---- progress
    def running(self) -> list[str]:
        with self.lock:
            return sorted(self.active)

    def overall(self) -> str:
        """How many scenes are done, and the whole talk's share of video done when every scene's length is known."""
        said = f"{len(self.done)}/{len(self.scenes)} scenes done"
        known = {s: self.length(s) for s in self.scenes}
        total = sum(k["time"] for k in known.values() if k)
        if all(known.values()) and total > 0:
            now = sum(known[s]["time"] for s in self.done)
            for s in self.running():
                events = read_events(self.work / f"progress-{s}.jsonl")
                if events:
                    now += min(events[-1]["time"], known[s]["time"])
            said += f", talk {100 * now / total:.0f}%"
            elapsed = time.monotonic() - self.started
            if 0.05 < now / total < 1:
                said += f", about {mmss(elapsed * (total - now) / now)} left"
        return said

    def report(self) -> None:
        """A line for each running scene whose next slide has begun since the last look."""
        for scene in self.running():
            events = read_events(self.work / f"progress-{scene}.jsonl")
            beats = [e for e in events if e["event"] == "beat"]
            if len(beats) <= self.seen.get(scene, 0):
                continue
            self.seen[scene] = len(beats)
            at, known = events[-1]["time"], self.length(scene)
            if known:
                share = f"slide {len(beats)} of {known['beats']}, {100 * min(at / known['time'], 1):.0f}% " \
                        f"({mmss(at)} of {mmss(known['time'])} of its video)"
            else:
                share = f"slide {len(beats)} ({mmss(at)} of video so far)"
            self.log(f"[talk] {scene}: {share} · {self.overall()} · {mmss(time.monotonic() - self.started)}")

    def finished_one(self, scene: str, seconds: float) -> None:
        self.done.add(scene)
        what = "already rendered" if seconds == 0 else f"rendered in {seconds:.0f} s"
        self.log(f"[talk] {scene}: {what} · {self.overall()} · {mmss(time.monotonic() - self.started)}")

    @contextlib.contextmanager
    def locked(self):
        """The work folder to this build alone: another build into it waits (the renders and the conversions)."""
        path = self.work / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise TalkError(f"{path} is a symbolic link: move it away") from None
            raise TalkError(f"cannot open {path}: {e.strerror or e}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise TalkError(f"{path} is not a regular file: move it away")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.log(f"[talk] another talk build is using {self.work}: waiting for it to finish")
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def render_all(self, jobs: int) -> None:
        """Every scene's slides, up to `jobs` at once (a failure, Ctrl-C or SIGTERM stops them all; their slides
        stay unmarked, so the next build renders them again)."""
        tasks = {s: (lambda s=s: self.render(s)) for s in self.scenes}
        in_parallel(tasks, jobs, self.finished_one, self.children, poll=POLL, look=self.report)


def convert(work: Path, scenes: list[str], to: str, out: Path) -> Path:
    """manim-slides convert of the scenes' slides, in order, to `out` (a temporary file renamed into place)."""
    classes = [f"{SCENES[s]}Slides" for s in scenes]
    env = os.environ | {"XDG_CACHE_HOME": str(revealjs_cache())}
    extra = ["--one-file", "--offline"] if to == "html" else []
    with atomic_output(out, f"talk {to}") as tmp:
        dest = Path(tmp).with_suffix(f".{to}")  # manim-slides picks the format by the name's suffix
        try:
            cmd = [sys.executable, "-m", "manim_slides", "convert", "--to", to, *extra, "--folder", "slides",
                   *classes, str(dest)]
            r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if r.returncode != 0 or not dest.is_file():
                raise TalkError(f"converting to {to} failed: {last_line(r.stderr or r.stdout)}")
            os.replace(dest, tmp)
        finally:
            dest.unlink(missing_ok=True)
    return out


def build(scenes: list[str], quality: str, theme: str | None, out: Path, jobs: int, log=print,
          chat_beats: str | None = None) -> tuple[Path, Path]:
    """Render the scenes' slides (in parallel, resuming) and convert them; (html, pptx)."""
    if not out.is_dir():
        raise TalkError(f"--out '{out}' is not a folder")
    revealjs_cache()  # before any work: the deck needs it
    b = Build(scenes, quality, theme, out, log, chat_beats)
    (b.work / "slides").mkdir(parents=True, exist_ok=True)
    with b.locked():
        b.render_all(jobs)
        html = convert(b.work, scenes, "html", out / "talk.html")
        pptx = convert(b.work, scenes, "pptx", out / "talk.pptx")
    return html, pptx


def main(argv=None) -> int:
    ap = OneLineParser(prog="python -m toy_model.talk", description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default=",".join(TALK), help="comma-separated, in the talk's order")
    ap.add_argument("--quality", default="preview", choices=list(QUALITIES))
    ap.add_argument("--theme", choices=["dark", "light"])
    ap.add_argument("--chat-beats", choices=["paragraph", "token"],
                    help="where the chat pauses: each paragraph of its answer (its default) or each token")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="scenes rendered at once")
    ap.add_argument("--out", default=str(REPO / "media" / "talk"), help="folder for talk.html and talk.pptx")
    args = ap.parse_args(argv)
    exit_on_sigterm()
    try:
        if args.jobs < 1:
            raise TalkError(f"--jobs must be at least 1, not {args.jobs}")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise TalkError(f"--out '{out}' is not a folder")
        scenes = scenes_of(args.scenes)
        out.mkdir(parents=True, exist_ok=True)
        html, pptx = build(scenes, args.quality, args.theme, out, args.jobs,
                           log=lambda s: print(s, file=sys.stderr, flush=True), chat_beats=args.chat_beats)
    except (TalkError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(html)
    print(pptx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
