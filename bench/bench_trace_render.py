"""Benchmark: recording a trace, and rendering the BlockFlow scene on this machine's CPU.

    python bench/bench_trace_render.py            # trace timings, -ql render, -qh render
    python bench/bench_trace_render.py --no-qh    # skip the slow 1080p60 render

Measures
- trace recording of a 64-token prompt (one parallel prefill, every recorder on), median of --runs,
  and of the same prompt plus 32 generated tokens (decode steps on the cache);
- `manim render scenes/block_flow.py` at -ql (median of --render-runs) and -qh (one run), each in a
  fresh process with the scene's default parameters, caching off;
- the peak resident memory of each render process (ru_maxrss from os.wait4 in a small wrapper).
Prints a markdown table and writes bench/results/cpu-render.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "scenes" / "block_flow.py"
RESULTS = ROOT / "bench" / "results" / "cpu-render.json"
PROMPT_TOKENS = 64


def bench_trace(runs: int) -> dict:
    import torch

    from toy_model import HybridConfig, HybridLM
    from toy_model.model import DEFAULT_WEIGHTS, load_pretrained
    from toy_model.tokenizer import load_tokenizer
    from toy_model.trace import trace_from_ids

    tok = load_tokenizer()
    if DEFAULT_WEIGHTS.exists():
        model, weights = load_pretrained(kernels="torch"), "bundled"
    else:  # the numbers depend on sizes, not on trained values
        torch.manual_seed(0)
        model, weights = HybridLM(HybridConfig(kernels="torch")).eval(), "random init (no bundled weights)"
    text = ("The hybrid model mixes Mamba-2 layers, which keep a fixed-size state, with a few attention "
            "layers and many small experts. ") * 8
    ids = ([tok.eot_id] + tok.encode(text))[:PROMPT_TOKENS]
    assert len(ids) == PROMPT_TOKENS

    def timed(generate: int) -> list[float]:
        out = []
        for _ in range(runs + 1):  # the first run warms up and is dropped
            t0 = time.perf_counter()
            trace_from_ids(model, tok, ids, generate=generate)
            out.append(time.perf_counter() - t0)
        return out[1:]

    prefill = timed(0)
    gen = timed(32)
    return {"weights": weights, "prompt_tokens": PROMPT_TOKENS, "runs": runs,
            "prefill_s_median": statistics.median(prefill), "prefill_s_all": prefill,
            "prefill_plus_32_s_median": statistics.median(gen), "prefill_plus_32_s_all": gen}


# Runs the render from a small process: a child forked from this one (torch and the model loaded) would
# report this process's memory as its own peak until it execs.
_WRAPPER = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(f'PEAK_RSS_KB {usage.ru_maxrss}', file=sys.stderr)\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def render(quality: str, media: Path) -> dict:
    """One `manim render` in a fresh process: wall time, peak RSS, and the video's length."""
    cmd = [sys.executable, "-m", "manim", "render", quality, "--disable_caching", "--progress_bar", "none",
           "--media_dir", str(media), str(SCENE)]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"render {quality} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    peak_kb = int(proc.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
    video = next(media.rglob("BlockFlow.mp4"))
    import av

    with av.open(str(video)) as c:
        stream = c.streams.video[0]
        frames = stream.frames or sum(1 for _ in c.decode(video=0))
        seconds = float(c.duration / 1e6) if c.duration else None
        size = f"{stream.codec_context.width}x{stream.codec_context.height}"
    return {"quality": quality, "wall_s": wall, "peak_rss_mb": peak_kb / 1024, "video_s": seconds,
            "frames": frames, "resolution": size, "video_mb": video.stat().st_size / 1e6}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="trace recordings per measurement (median)")
    ap.add_argument("--render-runs", type=int, default=1, help="-ql renders (median)")
    ap.add_argument("--no-qh", action="store_true", help="skip the 1080p60 render")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "scenes"))
    from block_flow import resolve_params

    params = resolve_params()  # the defaults the renders will use (manim.cfg, environment)
    results = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "scene_defaults": {"trace": str(params.trace_path.relative_to(ROOT)
                                        if params.trace_path.is_relative_to(ROOT) else params.trace_path),
                           "tokens": len(params.tokens), "pace_s": params.pace, "theme": params.theme.name},
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"trace recording ({args.runs} runs each) ...", flush=True)
    results["trace"] = bench_trace(args.runs)
    renders = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.render_runs):
            print(f"render -ql ({i + 1}/{args.render_runs}) ...", flush=True)
            renders.append(render("-ql", Path(tmp) / f"ql{i}"))
        ql = dict(renders[0], wall_s=statistics.median(r["wall_s"] for r in renders),
                  wall_s_all=[r["wall_s"] for r in renders],
                  peak_rss_mb=max(r["peak_rss_mb"] for r in renders))
        results["render_ql"] = ql
        if not args.no_qh:
            print("render -qh (one run) ...", flush=True)
            results["render_qh"] = render("-qh", Path(tmp) / "qh")

    tr = results["trace"]
    rows = [
        ("trace: 64-token prompt (prefill)", f"{tr['prefill_s_median'] * 1000:.0f} ms",
         f"median of {tr['runs']}"),
        ("trace: 64-token prompt + 32 generated", f"{tr['prefill_plus_32_s_median']:.2f} s",
         f"median of {tr['runs']}"),
    ]
    for key, name in (("render_ql", "-ql 480p15"), ("render_qh", "-qh 1080p60")):
        if key in results:
            r = results[key]
            runs = len(r.get("wall_s_all", [r["wall_s"]]))
            rows.append((f"render {name}: {r['frames']} frames, {r['video_s']:.1f} s of video",
                         f"{r['wall_s']:.1f} s", f"{'median of ' + str(runs) if runs > 1 else 'one run'}, "
                         f"peak RSS {r['peak_rss_mb']:.0f} MB"))
    d = results["scene_defaults"]
    print(f"\nMachine: {results['machine']['cpus']} CPUs, {results['machine']['platform']}; "
          f"trace weights: {tr['weights']}; scene: {d['tokens']} tokens at {d['pace_s']} s per block\n")
    print("| measurement | time | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
