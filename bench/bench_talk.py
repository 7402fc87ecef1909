"""Benchmark: the whole talk (every scene's slides, the HTML deck and the PPTX) on this machine.

    python bench/bench_talk.py                     # preview: --jobs 1 and --jobs N interleaved; then 1080p60
    python bench/bench_talk.py --rounds 1 --no-1080p

Each build is `python -m toy_model.talk` into a fresh folder (nothing resumed), in a fresh process tree.
Measures its wall time, the peak memory of the whole process tree (the resident memory of every process of
the build added up, sampled every 0.2 s: with --jobs N, N Manim renders run side by side) and of its largest
single process, each scene's render time (from the build's own progress lines), the slides and the sizes of
the deck and the PPTX. Preview builds run in rounds, --jobs 1 and --jobs N (default: the number of cores)
one after the other in each round, so their ratio is measured side by side; medians are reported. The
1080p60 build runs once (about ten minutes on two cores). Prints a markdown table and writes
bench/results/cpu-talk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cpu-talk.json"


def tree_rss_kb(root: int) -> tuple[int, int]:
    """(sum, largest) resident memory in KiB of `root` and every process below it."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            status = (d / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        kids.setdefault(ppid, []).append(int(d.name))
        rss[int(d.name)] = int(m.group(1)) if m else 0
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += kids.get(pid, [])
    values = [rss.get(p, 0) for p in seen]
    return sum(values), max(values, default=0)


def build(quality: str, jobs: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "toy_model.talk", "--quality", quality, "--jobs", str(jobs), "--out", out]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOY_")}
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak, largest, stop = [0], [0], threading.Event()

        def sample():
            while not stop.is_set():
                total, big = tree_rss_kb(p.pid)
                peak[0], largest[0] = max(peak[0], total), max(largest[0], big)
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, stderr = p.communicate()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        if p.returncode != 0:
            raise SystemExit(f"the talk build failed:\n{stderr[-3000:]}")
        html, pptx = (Path(s) for s in stdout.split())
        slides = sum(len(json.loads(f.read_text())["slides"]) for f in Path(out).glob(".talk-*/slides/*.json"))
        scenes = {m.group(1): int(m.group(2)) for m in re.finditer(r"\[talk\] (\w+): rendered in (\d+) s", stderr)}
        return {"quality": quality, "jobs": jobs, "wall_s": wall, "peak_tree_rss_mb": peak[0] / 1024,
                "peak_process_rss_mb": largest[0] / 1024, "slides": slides, "html_mb": html.stat().st_size / 2**20,
                "pptx_mb": pptx.stat().st_size / 2**20, "scene_s": scenes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="preview rounds (each: --jobs 1, then --jobs N)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-1080p", action="store_true", help="skip the 1080p60 build")
    args = ap.parse_args()

    runs: list[dict] = []
    for r in range(args.rounds):
        for jobs in dict.fromkeys((1, args.jobs)):
            runs.append(build("preview", jobs))
            print(f"round {r + 1}: preview, --jobs {jobs}: {runs[-1]['wall_s']:.0f} s", file=sys.stderr)
    if not args.no_1080p:
        runs.append(build("1080p60", args.jobs))
        print(f"1080p60, --jobs {args.jobs}: {runs[-1]['wall_s']:.0f} s", file=sys.stderr)

    summary = []
    for quality, jobs in dict.fromkeys((r["quality"], r["jobs"]) for r in runs):
        these = [r for r in runs if (r["quality"], r["jobs"]) == (quality, jobs)]
        summary.append({"quality": quality, "jobs": jobs, "n": len(these),
                        "wall_s_median": statistics.median(r["wall_s"] for r in these),
                        "peak_tree_rss_mb_median": statistics.median(r["peak_tree_rss_mb"] for r in these),
                        "peak_process_rss_mb_median": statistics.median(r["peak_process_rss_mb"] for r in these),
                        "slides": these[0]["slides"], "html_mb": these[0]["html_mb"], "pptx_mb": these[0]["pptx_mb"],
                        "scene_s_median": {s: statistics.median(r["scene_s"].get(s, 0) for r in these)
                                           for s in these[0]["scene_s"]}})
    pairs = [(r1, r2) for r1, r2 in zip(runs, runs[1:], strict=False)
             if r1["quality"] == r2["quality"] == "preview" and (r1["jobs"], r2["jobs"]) == (1, args.jobs)]
    speedup = statistics.median(a["wall_s"] / b["wall_s"] for a, b in pairs) if pairs and args.jobs > 1 else None
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
              "summary": summary, "preview_speedup_jobs": speedup, "runs": runs}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print("| build | runs | wall | peak memory, all processes | largest process | slides | deck | PPTX |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['quality']}, --jobs {s['jobs']} | {s['n']} | {s['wall_s_median']:.0f} s | "
              f"{s['peak_tree_rss_mb_median']:.0f} MB | {s['peak_process_rss_mb_median']:.0f} MB | {s['slides']} | "
              f"{s['html_mb']:.0f} MB | {s['pptx_mb']:.0f} MB |")
    if speedup:
        print(f"\npreview, --jobs {args.jobs} against --jobs 1, side by side: {speedup:.2f}x faster (median of "
              f"{len(pairs)} rounds)")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
