"""Benchmark: each scene's preview render time as a multiple of a floor scene's, measured side by side.

    python bench/bench_scenes.py                          # the floor and every scenes/*.py, 3 rounds
    python bench/bench_scenes.py scenes/block_flow.py --rounds 5
    python bench/bench_scenes.py --baseline /tmp/base     # also an earlier version's scenes, e.g. from
        git archive HEAD toy_model scenes traces | tar -x -C /tmp/base
    python bench/bench_scenes.py --baseline /tmp/base --trace /tmp/base/traces/default.npz
        # both versions on one trace (TOY_TRACE), when the default trace has changed between them

The floor (bench/floor.py) is what a scene like block_flow cannot cost less than: the same frames (count
and size) of a still backdrop drawn once, with one marker moving every frame, in one play(). Each render
is `manim render -ql --disable_caching` in a fresh process, from the repo root as a user runs it (the
baseline's from its own folder, its code first on PYTHONPATH), with no TOY_* variables but --trace. Renders
are interleaved: every round renders everything once, in an order rotated each round, so that a busy
spell of a shared machine falls on all of them alike. Reports medians, the ratio of each scene's median to
the floor's (and per frame, for scenes of another length), the same for CPU time (which a busy machine
disturbs less than wall time), and every sample. A scene file that is missing is skipped, one that fails
is reported, not fatal. Writes bench/results/cpu-scenes.json.

Timings from two runs are not comparable on a shared machine; ratios from one run are.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = ROOT / "bench" / "floor.py"
RESULTS = ROOT / "bench" / "results" / "cpu-scenes.json"
QUALITY = "-ql"  # the preview: 480p15


def scene_classes(path: Path) -> list[str]:
    """The classes in a scene file that derive from a *Scene class (Scene, FastScene, ...), by reading it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def base_name(b: ast.expr) -> str:
        return b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")

    return [n.name for n in tree.body
            if isinstance(n, ast.ClassDef) and any(base_name(b).endswith("Scene") for b in n.bases)]


@dataclass
class Entry:
    name: str  # as reported: 'block_flow', 'block_flow.BlockFlow', 'block_flow (baseline)'
    file: Path
    scene: str
    cwd: Path  # where manim runs (the repo root, or the baseline's folder)
    pythonpath: Path | None = None  # code to import first (a baseline's toy_model)
    samples: list[float] = field(default_factory=list)  # wall seconds
    cpu: list[float] = field(default_factory=list)  # CPU seconds (user + system, all threads)
    rss_mb: list[float] = field(default_factory=list)
    video: dict = field(default_factory=dict)
    error: str | None = None


def entries_for(files: list[Path], root: Path, label: str = "", pythonpath: Path | None = None) -> list[Entry]:
    out = []
    for f in files:
        if not f.exists():
            print(f"skipped {f}: no such file", flush=True)
            continue
        classes = scene_classes(f)
        if not classes:
            print(f"skipped {f}: no Scene class in it", flush=True)
        for cls in classes:
            name = f.stem if len(classes) == 1 else f"{f.stem}.{cls}"
            out.append(Entry(name + (f" ({label})" if label else ""), f, cls, root, pythonpath))
    return out


def video_facts(media: Path, scene: str) -> dict:
    import av

    video = next(media.rglob(f"{scene}.mp4"))
    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        frames = stream.frames or sum(1 for _ in c.decode(video=0))
        return {"frames": frames, "resolution": f"{stream.codec_context.width}x{stream.codec_context.height}",
                "video_s": round(float(c.duration / 1e6), 3) if c.duration else None}


def render(entry: Entry, env: dict[str, str]) -> None:
    """One render in a fresh process: its wall time, CPU time and peak memory join the entry's samples."""
    env = dict(env)
    if entry.pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(entry.pythonpath), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        media, log = Path(tmp) / "media", Path(tmp) / "log"
        cmd = [sys.executable, "-m", "manim", "render", QUALITY, "--disable_caching", "--progress_bar", "none",
               "-v", "WARNING", "--media_dir", str(media), str(entry.file), entry.scene]
        with open(log, "wb") as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=entry.cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own CPU time and peak memory
            wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            entry.error = log.read_text(errors="replace")[-2000:]
            return
        entry.samples.append(wall)
        entry.cpu.append(usage.ru_utime + usage.ru_stime)
        entry.rss_mb.append(usage.ru_maxrss / 1024)
        entry.video = entry.video or video_facts(media, entry.scene)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenes", nargs="*", type=Path, help="scene files (default: every scenes/*.py)")
    ap.add_argument("--rounds", type=int, default=3, help="renders of each, interleaved (median)")
    ap.add_argument("--baseline", type=Path, action="append", default=[],
                    help="a folder holding an earlier version (toy_model/, scenes/, traces/): its scenes too")
    ap.add_argument("--trace", type=Path, help="TOY_TRACE for every scene (default: each scene's own default)")
    ap.add_argument("--note", default="", help="a line saved with the results (what the baseline is, ...)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    files = [f.resolve() for f in args.scenes] or sorted((ROOT / "scenes").glob("*.py"))
    entries = [Entry("floor", FLOOR, "Floor", ROOT)] + entries_for(files, ROOT)
    for base in args.baseline:
        base = base.resolve()
        base_files = [base / f.relative_to(ROOT) if f.is_relative_to(ROOT) else f for f in files]
        entries += entries_for(base_files, base, label=f"baseline {base}", pythonpath=base)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_") and k != "FLOOR_FRAMES"}
    if args.trace:
        env["TOY_TRACE"] = str(args.trace.resolve())

    load_before = os.getloadavg()
    for r in range(args.rounds):
        k = r % len(entries)
        for e in entries[k:] + entries[:k]:  # rotated each round
            if e.error is None:
                print(f"round {r + 1}/{args.rounds}: {e.name} ...", flush=True)
                render(e, env)

    floor = entries[0]
    if floor.error or not floor.samples:
        sys.exit(f"the floor did not render:\n{floor.error}")
    floor_s, floor_frames = statistics.median(floor.samples), floor.video["frames"]
    floor_cpu = statistics.median(floor.cpu)
    rows = []
    for e in entries:
        row = {"name": e.name, "file": str(e.file.relative_to(ROOT) if e.file.is_relative_to(ROOT) else e.file),
               "scene": e.scene}
        if e.error or not e.samples:
            row["error"] = e.error or "no samples"
            rows.append(row)
            continue
        med, cpu = statistics.median(e.samples), statistics.median(e.cpu)
        row |= dict(e.video, wall_s_median=round(med, 3), wall_s_all=[round(s, 3) for s in e.samples],
                    ratio_to_floor=round(med / floor_s, 3),
                    ratio_per_frame=round(med / e.video["frames"] / (floor_s / floor_frames), 3),
                    cpu_s_median=round(cpu, 3), cpu_s_all=[round(s, 3) for s in e.cpu],
                    cpu_ratio_to_floor=round(cpu / floor_cpu, 3), peak_rss_mb=round(max(e.rss_mb), 1))
        if len(e.samples) == len(floor.samples):  # a sample in every round: each against that round's floor
            each = [s / f for s, f in zip(e.samples, floor.samples, strict=True)]
            row |= dict(ratio_each_round=[round(x, 3) for x in each],
                        ratio_median_of_rounds=round(statistics.median(each), 3))
        rows.append(row)

    import manim

    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine(), "manim": manim.__version__},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "note": args.note,
        "quality": QUALITY, "rounds": args.rounds, "trace": str(args.trace) if args.trace else "each scene's default",
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "method": "each render a fresh `manim render -ql --disable_caching` process; renders interleaved round by "
                  "round in a rotating order; medians; ratio_to_floor = scene median / floor median (wall time), "
                  "ratio_median_of_rounds = median over rounds of scene / floor in the same round; "
                  "cpu_ratio_to_floor the same for CPU time (user + system, every thread), which a busy machine "
                  "disturbs less",
        "floor": {"file": "bench/floor.py", "frames": floor_frames, "wall_s_median": round(floor_s, 3),
                  "cpu_s_median": round(floor_cpu, 3)},
        "scenes": rows,
    }
    print(f"\n{os.cpu_count()} CPUs, {platform.platform()}; {args.rounds} rounds, interleaved; medians\n")
    print("| scene | frames | render (wall) | x floor | x floor per frame | CPU time | x floor (CPU) |\n"
          "|---|---|---|---|---|---|---|")
    for row in rows:
        if "error" in row:
            print(f"| {row['name']} | | failed: {row['error'].strip().splitlines()[-1][:60]} | | | | |")
        else:
            print(f"| {row['name']} | {row['frames']} | {row['wall_s_median']:.1f} s | {row['ratio_to_floor']:.2f} | "
                  f"{row['ratio_per_frame']:.2f} | {row['cpu_s_median']:.1f} s | {row['cpu_ratio_to_floor']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
