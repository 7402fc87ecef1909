"""What bench_ssd.py and bench_moe.py share: timing, speed-up ratios, the results file."""

import json
import re
import statistics
import time
from pathlib import Path

import torch
import triton

ROOT = Path(__file__).resolve().parents[1]
QUANTILES = [0.5, 0.2, 0.8]


def timed(fn, grad_to_none=None):
    """(median, p20, p80) milliseconds: do_bench on CUDA, a few wall-clock runs otherwise (smoke only)."""
    if torch.cuda.is_available():
        return tuple(triton.testing.do_bench(fn, quantiles=QUANTILES, grad_to_none=grad_to_none))
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(runs, n=10, method="inclusive")
    return statistics.median(runs), q[1], q[7]


def print_row(row: dict):
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                   if v is not None), flush=True)


def speedups(rows, x_name: str):
    """How many times faster triton is than every other provider, per benchmark and size."""
    ms = {(r["bench"], r[x_name], r["provider"]): r["ms"] for r in rows}
    out = {}
    for (bench, x, provider), t in ms.items():
        if provider != "triton" and t and ms.get((bench, x, "triton")):
            out[f"{bench} {x_name}={x} triton vs {provider}"] = t / ms[(bench, x, "triton")]
    return out


def save(section: str, result: dict):
    """Merge one section into bench/results/<device>.json (each benchmark script writes its own)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name()).strip("-")
    path = ROOT / "bench" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = result
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
