"""Split renders: one scene's video rendered as parts, cut at its beats, on many cores or many machines, then joined.

    python -m toy_model.split plan block_flow --parts 4 --quality 4k      # the parts' commands, one per line
    python -m toy_model.split run block_flow --parts 4 --jobs 4 --quality 4k --out block_flow.mp4
    python -m toy_model.split run hybrid_map --parts 2 --out map.webm -- --format webm -t    # Manim options

A part is a Manim render of the whole scene with `-n FIRST,LAST`: Manim runs the scene's story from the start
but draws and encodes only animations FIRST to LAST, so every part starts from exactly the state the whole
render has there, and the parts' videos joined (toy_model.video.join, which copies their packets) are the
whole render's frames. Parts are cut where the scene marks a beat (toy_model.viz.slides.beat): in block_flow
a token range, the prefill or one decoded token per beat; in the deep dives, a step. `plan` finds the beats by
running the scene with every animation skipped (the kit draws nothing for a skipped play, so this costs what
building the scene's pieces costs), and balances the parts by video time. Every part, and the plan, must see
the same scene parameters (TOY_* variables, scenes/manim.cfg) and frame rate.

`run` renders the parts here, up to --jobs at a time, each in its own media folder under a temporary folder
beside --out, and joins them with their subtitles. On a cluster, run the plan's commands as jobs of its own
scheduler (each into its own --media_dir), then `python -m toy_model.video join OUT PART...` in the plan's order.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from toy_model.files import OutputError, check_output, exit_on_sigterm
from toy_model.options import OneLineParser
from toy_model.renders import QUALITIES, QUIET, SCENES, Children, in_parallel, last_line, scene_env

REPO = Path(__file__).resolve().parents[1]


class SplitError(Exception):
    """A bad option or a failed step, in one line."""


def scene_file(scene: str) -> Path:
    if scene not in SCENES:
        raise SplitError(f"unknown scene '{scene}' (the scenes: {', '.join(SCENES)})")
    return REPO / "scenes" / f"{scene}.py"


def made_suffix(extra: list[str]) -> str:
    """The video Manim writes with these options: .mp4, or what --format says, or .mov for a transparent one."""
    fmt = next((a.split("=", 1)[1] for a in extra if a.startswith("--format=")), None)
    if fmt is None and "--format" in extra and extra.index("--format") + 1 < len(extra):
        fmt = extra[extra.index("--format") + 1]
    if fmt is not None:
        return f".{fmt.lower()}"
    transparent = "-t" in extra or "--transparent" in extra
    return ".mov" if transparent else ".mp4"


def find_beats(scene: str, quality: str, extra: list[str] = ()) -> tuple[list[dict], dict]:
    """(beats, end) of the scene at this quality's frame rate: every beat's first play and time, and the
    scene's plays and length, from a render that skips every animation (at 480p: nothing is drawn)."""
    from toy_model.viz.progress import read_events

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "progress.jsonl"
        cmd = [sys.executable, "-m", "manim", "render", "-ql", "--frame_rate", str(QUALITIES[quality][2]), *QUIET,
               *extra, "--dry_run", "-n", str(10**9), "--media_dir", str(Path(tmp) / "media"),
               str(scene_file(scene)), SCENES[scene]]
        rc, err = Children().run(cmd, cwd=tmp, env=scene_env() | {"TOY_PROGRESS": str(log)})
        if rc != 0:
            raise SplitError(f"{scene}: planning failed: {last_line(err)}")
        events = read_events(log)
    beats = [e for e in events if e["event"] == "beat"]
    end = next((e for e in events if e["event"] == "end"), None)
    if end is None:
        raise SplitError(f"{scene}: the planning render did not finish")
    return beats, end


def cut(beats: list[dict], end: dict, parts: int) -> list[tuple[int, int | None]]:
    """At most `parts` ranges of plays (first, last or None for the end), cut at beats, of about equal video
    time: each cut is the beat nearest to its share of the whole."""
    starts = sorted({(b["play"], b["time"]) for b in beats if 0 < b["play"] < end["plays"]})
    chosen: list[int] = []
    for k in range(1, min(parts, len(starts) + 1)):
        target = k * end["time"] / parts
        later = [(abs(t - target), p) for p, t in starts if not chosen or p > chosen[-1]]
        if later:
            chosen.append(min(later)[1])
    bounds = [0, *chosen]
    return [(a, (bounds[i + 1] - 1) if i + 1 < len(bounds) else None) for i, a in enumerate(bounds)]


def part_command(scene: str, quality: str, first: int, last: int | None, media: str, extra=()) -> list[str]:
    span = f"{first},{last}" if last is not None else str(first)
    return ["manim", "render", QUALITIES[quality][0], *QUIET, *extra, "-n", span, "--media_dir", media,
            str(scene_file(scene)), SCENES[scene]]


def part_video(media: Path, scene: str, quality: str, suffix: str) -> Path:
    video = media / "videos" / scene / QUALITIES[quality][1] / f"{SCENES[scene]}{suffix}"
    if not video.is_file():
        raise SplitError(f"{scene}: a part finished but wrote no video at {video}")
    return video


def run(scene: str, parts: int, jobs: int, quality: str, out: Path, extra=(), log=print) -> Path:
    """Render the scene in parts (up to `jobs` at once) and join them into `out`, with its subtitles beside it."""
    from toy_model.video import join

    extra = list(extra)
    suffix = made_suffix(extra)
    if out.suffix.lower() != suffix:
        raise SplitError(f"--out '{out}': these options make a {suffix} video (give --format after -- for "
                         f"another)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SplitError(f"--out '{out}': cannot create its folder ({e.strerror or e})") from None
    check_output(out, "video")
    check_output(out.with_suffix(".srt"), "subtitles")
    started = time.monotonic()
    beats, end = find_beats(scene, quality, extra)
    ranges = cut(beats, end, parts)
    log(f"[split] {scene}: {end['plays']} animations, {end['time']:.1f} s of video, in {len(ranges)} parts "
        f"(planned in {time.monotonic() - started:.0f} s)")
    children, env = Children(), scene_env(drop=("TOY_PROGRESS",))  # the parts report by finishing
    with tempfile.TemporaryDirectory(prefix=".split-", dir=out.parent) as tmp:

        def render(i: int, first: int, last: int | None) -> Path:
            media = Path(tmp) / f"part-{i}"
            cmd = part_command(scene, quality, first, last, str(media), extra)
            rc, err = children.run([sys.executable, "-m", *cmd], cwd=tmp, env=env)
            if rc != 0:
                raise SplitError(f"{scene}: part {i + 1} (animations {first} to "
                                 f"{last if last is not None else 'the end'}) failed: {last_line(err)}")
            return part_video(media, scene, quality, suffix)

        videos: dict[int, Path] = {}

        def done(i: str, video) -> None:
            videos[int(i)] = video
            log(f"[split] {scene}: part {int(i) + 1} done, {len(videos)}/{len(ranges)} "
                f"({time.monotonic() - started:.0f} s)")

        tasks = {str(i): (lambda i=i, a=a, b=b: render(i, a, b)) for i, (a, b) in enumerate(ranges)}
        in_parallel(tasks, jobs, done, children)
        join([videos[i] for i in range(len(ranges))], out)
    return out


def main(argv=None) -> int:
    from toy_model.video import VideoError

    ap = OneLineParser(prog="python -m toy_model.split", description=__doc__.splitlines()[0],
                       epilog="Options after -- go to every part's manim render, e.g. -- -t for a transparent "
                              "video.")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in ("plan", "run"):
        p = sub.add_parser(name)
        p.add_argument("scene", help=", ".join(SCENES))
        p.add_argument("--parts", type=int, default=os.cpu_count() or 1, help="at most this many parts")
        p.add_argument("--quality", default="preview", choices=list(QUALITIES))
        if name == "run":
            p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parts rendered at once")
            p.add_argument("--out", required=True, help="the joined video (.mp4, .mov or .webm)")
            p.add_argument("--quiet", action="store_true", help="no progress lines")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    exit_on_sigterm()
    try:
        scene_file(args.scene)
        if args.parts < 1:
            raise SplitError(f"--parts must be at least 1, not {args.parts}")
        if args.command == "run":
            if args.jobs < 1:
                raise SplitError(f"--jobs must be at least 1, not {args.jobs}")
            out = Path(args.out)
            if out.suffix.lower() not in (".mp4", ".mov", ".webm"):
                raise SplitError(f"--out '{out}': the video must end in .mp4, .mov or .webm")
            log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
            print(run(args.scene, args.parts, args.jobs, args.quality, out, extra, log=log))
            return 0
        beats, end = find_beats(args.scene, args.quality, extra)
        ranges = cut(beats, end, args.parts)
        medias = [f"parts/{args.scene}-{i}" for i in range(len(ranges))]
        for (a, b), media in zip(ranges, medias, strict=True):
            print(" ".join(part_command(args.scene, args.quality, a, b, media, extra)))
        cls, qdir, suffix = SCENES[args.scene], QUALITIES[args.quality][1], made_suffix(extra)
        print(f"# then: python -m toy_model.video join {args.scene}{suffix} "
              + " ".join(f"{m}/videos/{args.scene}/{qdir}/{cls}{suffix}" for m in medias))
    except (SplitError, VideoError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
