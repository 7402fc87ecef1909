"""CPU benchmarks of the bundled model: size, forward latency, decode and training throughput.

    python bench/bench_model.py [--threads N] [--repeats 7]

Prints a markdown table and writes bench/results/cpu-model-<threads>t.json. Medians over repeats: this machine
is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from toy_model import load_pretrained
from toy_model.training import TrainConfig, make_optimizer


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = load_pretrained(kernels="torch")
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    idx = torch.randint(0, cfg.vocab_size, (1, 256))

    with torch.no_grad():
        forward_s = median_seconds(lambda: model(idx), args.repeats)

    n_decode = 64
    prompt = idx[:, :16]
    decode_s = median_seconds(lambda: model.generate(prompt, n_decode), max(3, args.repeats // 2))
    with torch.no_grad():
        prefill_s = median_seconds(lambda: model(prompt, cache=model.new_cache()), args.repeats)
    decode_tok_s = (n_decode - 1) / max(decode_s - prefill_s, 1e-9)

    tc = TrainConfig()
    train_model = load_pretrained(kernels="torch").train()
    opt = make_optimizer(train_model, tc)
    x = torch.randint(0, cfg.vocab_size, (tc.batch_size, tc.seq_len))

    def train_step():
        _, loss = train_model(x, targets=x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        train_model.update_router_biases()

    train_s = median_seconds(train_step, max(3, args.repeats // 2))
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "parameters": n_params,
        "forward_1x256_ms": round(forward_s * 1e3, 1),
        "decode_tokens_per_s": round(decode_tok_s, 1),
        "train_tokens_per_s": round(tc.batch_size * tc.seq_len / train_s, 0),
        "train_batch": f"{tc.batch_size} x {tc.seq_len}",
    }
    print("| measure | value |\n|---|---|")
    print(f"| parameters | {n_params:,} |")
    print(f"| forward, 1 x 256 tokens (median) | {results['forward_1x256_ms']} ms |")
    print(f"| decode, tokens/s (median, after a 16-token prefill) | {results['decode_tokens_per_s']} |")
    print(f"| training, tokens/s (median, batch {results['train_batch']}) "
          f"| {results['train_tokens_per_s']:,.0f} |")
    out = Path(__file__).parent / "results" / f"cpu-model-{args.threads}t.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
