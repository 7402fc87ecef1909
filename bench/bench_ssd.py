"""Benchmark: the Triton SSD scan against the PyTorch reference and mamba_ssm (where importable).

    python bench/bench_ssd.py              # CUDA: prints a table, writes bench/results/<device>.json
    python bench/bench_ssd.py --cpu-smoke  # one tiny fp32 shape under the Triton interpreter

Shapes: b = 2, l in {1024, 4096, 16384}, h = 32, p = 64, n = 128, g = 8, chunk 256, bf16. Forward and
backward in milliseconds (median, 20th and 80th percentile of triton.testing.do_bench); the forward also in
achieved GB/s (inputs read once, y written once: the traffic floor) against the device's HBM peak.
"""

import os
import sys

SMOKE = "--cpu-smoke" in sys.argv
if SMOKE:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported

import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
from kernel_bench import print_row, save, speedups, timed  # noqa: E402

sys.path.insert(0, str(ROOT))  # run from a checkout without installing
from toy_model.kernels.ssd import ssd_scan_ref, ssd_scan_triton  # noqa: E402

try:
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
except ImportError:
    mamba_chunk_scan_combined = None

HBM_PEAK_GBS = {"H100 SXM": 3350, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "H200": 4800,
                "A100-SXM4-80GB": 2039, "A100 80GB PCIe": 1935, "A100": 1555, "L40S": 864, "L4": 300}
SHAPE = dict(b=2, h=32, p=64, n=128, g=8, chunk=256, dtype=torch.bfloat16)
SMOKE_SHAPE = dict(b=1, h=2, p=16, n=16, g=1, chunk=16, dtype=torch.float32)



def hbm_peak_gbs() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in HBM_PEAK_GBS.items() if k in name), None)


def make_inputs(l, b, h, p, n, g, dtype, device):
    x = torch.randn(b, l, h, p, device=device, dtype=dtype)
    dt = torch.randn(b, l, h, device=device, dtype=dtype)
    A = -(torch.rand(h, device=device) + 0.5)
    B = (torch.randn(b, l, g, n, device=device) / n ** 0.5).to(dtype)
    C = torch.randn(b, l, g, n, device=device, dtype=dtype)
    D = torch.randn(h, device=device)
    dt_bias = torch.randn(h, device=device) * 0.5
    return [x, dt, A, B, C, D, dt_bias]


def scan(provider, x, dt, A, B, C, D, dt_bias, chunk):
    if provider == "triton":
        return ssd_scan_triton(x, dt, A, B, C, chunk, D=D, dt_bias=dt_bias)
    if provider == "torch":
        return ssd_scan_ref(x, dt, A, B, C, chunk, D=D, dt_bias=dt_bias)
    return mamba_chunk_scan_combined(x, dt, A, B, C, chunk, D=D, dt_bias=dt_bias, dt_softplus=True)


def traffic_bytes(l, b, h, p, n, g, dtype, y_dtype=torch.float32, **_):
    """Inputs read once (x, dt, B, C) and y written once: the least a forward can move."""
    size = torch.empty((), dtype=dtype).element_size()
    y_size = torch.empty((), dtype=y_dtype).element_size()
    return b * l * (h * p + h + 2 * g * n) * size + b * l * h * p * y_size


def bench_ssd(l, provider, mode, b, h, p, n, g, chunk, dtype):
    """(median, p20, p80) ms of one forward, or of one backward on the forward's graph; None: unavailable."""
    if provider == "mamba_ssm" and mamba_chunk_scan_combined is None:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    inputs = make_inputs(l, b, h, p, n, g, dtype, device)
    if mode == "fwd":
        with torch.no_grad():
            return timed(lambda: scan(provider, *inputs, chunk))
    for t in inputs:
        t.requires_grad_(True)
    y = scan(provider, *inputs, chunk)
    dy = torch.randn_like(y)
    return timed(lambda: y.backward(dy, retain_graph=True), grad_to_none=inputs)


def benchmarks(smoke: bool):
    shape = SMOKE_SHAPE if smoke else SHAPE
    providers = ["triton", "torch"] + ([] if smoke else ["mamba_ssm"])
    return [triton.testing.Benchmark(
        x_names=["l"], x_vals=[40] if smoke else [1024, 4096, 16384], line_arg="provider",
        line_vals=providers, line_names=providers, ylabel="ms", plot_name=f"ssd-{mode}",
        args=dict(shape, mode=mode)) for mode in ("fwd", "bwd")]


def run(mark, peak):
    """Run every (shape, provider) of a perf_report and add GB/s; needs neither pandas nor matplotlib."""
    rows = []
    for bench in mark.benchmarks:
        for l in bench.x_vals:
            for provider in bench.line_vals:
                try:
                    ms = mark.fn(l=l, provider=provider, **bench.args)
                except torch.OutOfMemoryError:
                    ms = None
                    torch.cuda.empty_cache()
                row = dict(bench=bench.plot_name, l=l, provider=provider, ms=ms and ms[0],
                           ms_p20=ms and ms[1], ms_p80=ms and ms[2])
                if ms and bench.args["mode"] == "fwd":
                    y_dtype = bench.args["dtype"] if provider == "mamba_ssm" else torch.float32
                    row["GB/s"] = traffic_bytes(l, y_dtype=y_dtype, **bench.args) / (ms[0] * 1e-3) / 1e9
                    row["HBM %"] = 100 * row["GB/s"] / peak if peak else None
                rows.append(row)
                print_row(row)
    return rows




def main():
    if not torch.cuda.is_available() and not SMOKE:
        print("bench_ssd.py needs a CUDA GPU (--cpu-smoke checks the script under the Triton interpreter)")
        return 0
    peak = hbm_peak_gbs()
    mark = triton.testing.perf_report(benchmarks(SMOKE))(bench_ssd)
    rows = run(mark, peak)
    ratios = speedups(rows, "l")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    if SMOKE:
        x = make_inputs(40, **{k: v for k, v in SMOKE_SHAPE.items() if k != "chunk"}, device="cpu")
        err = (scan("triton", *x, 16) - scan("torch", *x, 16)).abs().max().item()
        print(f"cpu smoke ok: triton vs torch max diff {err:.2e}")
        return 0 if err < 1e-4 else 1
    path = save("ssd", dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"), device=torch.cuda.get_device_name(),
        torch=torch.__version__, triton=triton.__version__, mamba_ssm=mamba_chunk_scan_combined is not None,
        hbm_peak_GBs=peak, shape={k: str(v) for k, v in SHAPE.items()}, rows=rows, speedups=ratios))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
