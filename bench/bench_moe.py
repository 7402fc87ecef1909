"""Benchmark: the Triton MoE experts against a per-expert torch.matmul loop and torch._grouped_mm.

    python bench/bench_moe.py              # CUDA: prints a table, writes bench/results/<device>.json
    python bench/bench_moe.py --cpu-smoke  # one tiny fp32 shape under the Triton interpreter

Shapes: T in {512, 8192} tokens, 64 experts, top-8, latent l = 256, expert width m = 512, bf16. Forward and
backward in milliseconds (median, 20th and 80th percentile of triton.testing.do_bench) and TFLOP/s
(forward 4 T k l m, backward twice that).
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
from toy_model.kernels.moe import moe_align, moe_experts_ref, moe_experts_triton, relu2  # noqa: E402

SHAPE = dict(E=64, k=8, l=256, m=512, dtype=torch.bfloat16)
SMOKE_SHAPE = dict(E=4, k=2, l=32, m=32, dtype=torch.float32)



def grouped_mm_experts(z, topk_ids, topk_weights, w_up, w_down):
    """The vendor baseline: the same sort-by-expert dispatch, both GEMMs as torch._grouped_mm."""
    T, k = topk_ids.shape
    sorted_pairs, offsets = moe_align(topk_ids, w_up.shape[0])
    tokens = sorted_pairs // k
    ends = offsets[1:].to(torch.int32)
    hidden = relu2(torch._grouped_mm(z[tokens], w_up.transpose(1, 2), offs=ends))  # (T*k, m)
    out = torch._grouped_mm(hidden, w_down.transpose(1, 2), offs=ends).float()  # (T*k, l)
    gates = topk_weights.reshape(-1)[sorted_pairs][:, None]
    return torch.zeros(T, w_down.shape[1], device=z.device).index_add(0, tokens, out * gates)


PROVIDERS = {"triton": moe_experts_triton, "loop": moe_experts_ref, "grouped_mm": grouped_mm_experts}


def make_inputs(T, E, k, l, m, dtype, device):
    z = torch.randn(T, l, device=device, dtype=dtype)
    topk_ids = torch.rand(T, E, device=device).topk(k, dim=-1).indices  # k distinct experts, roughly balanced
    topk_weights = torch.rand(T, k, device=device)
    w_up = (torch.randn(E, m, l, device=device) / l ** 0.5).to(dtype)
    w_down = (torch.randn(E, l, m, device=device) / m ** 0.5).to(dtype)
    return [z, topk_ids, topk_weights, w_up, w_down]


def bench_moe(T, provider, mode, E, k, l, m, dtype):
    """(median, p20, p80) ms of one forward, or of one backward on the forward's graph; None: unavailable."""
    fn = PROVIDERS[provider]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    inputs = make_inputs(T, E, k, l, m, dtype, device)
    try:
        if mode == "fwd":
            with torch.no_grad():
                return timed(lambda: fn(*inputs))
        leaves = [inputs[0], inputs[2], inputs[3], inputs[4]]
        for t in leaves:
            t.requires_grad_(True)
        out = fn(*inputs)
        g = torch.randn_like(out)
        return timed(lambda: out.backward(g, retain_graph=True), grad_to_none=leaves)
    except (RuntimeError, AttributeError, NotImplementedError) as e:  # e.g. no torch._grouped_mm here
        if provider == "triton":
            raise
        print(f"  {provider} {mode} unavailable: {str(e).splitlines()[0][:120]}")
        return None


def benchmarks(smoke: bool):
    shape = SMOKE_SHAPE if smoke else SHAPE
    providers = ["triton", "loop"] + ([] if smoke else ["grouped_mm"])
    return [triton.testing.Benchmark(
        x_names=["T"], x_vals=[16] if smoke else [512, 8192], line_arg="provider",
        line_vals=providers, line_names=providers, ylabel="ms", plot_name=f"moe-{mode}",
        args=dict(shape, mode=mode)) for mode in ("fwd", "bwd")]


def run(mark):
    """Run every (shape, provider) of a perf_report and add TFLOP/s; needs neither pandas nor matplotlib."""
    rows = []
    for bench in mark.benchmarks:
        a = bench.args
        for T in bench.x_vals:
            for provider in bench.line_vals:
                try:
                    ms = mark.fn(T=T, provider=provider, **a)
                except torch.OutOfMemoryError:
                    ms = None
                    torch.cuda.empty_cache()
                row = dict(bench=bench.plot_name, T=T, provider=provider, ms=ms and ms[0],
                           ms_p20=ms and ms[1], ms_p80=ms and ms[2])
                if ms:
                    flops = 4 * T * a["k"] * a["l"] * a["m"] * (2 if a["mode"] == "bwd" else 1)
                    row["TFLOP/s"] = flops / (ms[0] * 1e-3) / 1e12
                rows.append(row)
                print_row(row)
    return rows




def main():
    if not torch.cuda.is_available() and not SMOKE:
        print("bench_moe.py needs a CUDA GPU (--cpu-smoke checks the script under the Triton interpreter)")
        return 0
    mark = triton.testing.perf_report(benchmarks(SMOKE))(bench_moe)
    rows = run(mark)
    ratios = speedups(rows, "T")
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    if SMOKE:
        x = make_inputs(16, **SMOKE_SHAPE, device="cpu")
        err = (moe_experts_triton(*x) - moe_experts_ref(*x)).abs().max().item()
        print(f"cpu smoke ok: triton vs loop max diff {err:.2e}")
        return 0 if err < 1e-4 else 1
    path = save("moe", dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"), device=torch.cuda.get_device_name(),
        torch=torch.__version__, triton=triton.__version__, shape={k: str(v) for k, v in SHAPE.items()},
        rows=rows, speedups=ratios))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
