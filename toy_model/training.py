"""Training the bundled model on CPU: data, loop, checkpoints, evaluation in bits per byte.

The corpus (toy_model/corpus.py) is generated offline, tokenised once, and its documents joined with
<|endoftext|>. Batches are random windows of that stream, drawn from a generator seeded by
(seed, step), so a run resumed from a checkpoint sees exactly the batches an unbroken run would.
After every optimiser step the MoE correction biases take one sign-rule step toward balanced load.

    python -m toy_model train                 # default run, writes toy_model/data/model.safetensors
    python -m toy_model train --resume        # continue from runs/train/checkpoint.safetensors
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from toy_model.config import ConfigError, HybridConfig
from toy_model.model import DEFAULT_WEIGHTS, HybridLM, load_pretrained, load_state


@dataclass
class TrainConfig:
    steps: int = 700  # the default run: ~2.7 epochs, about 12 minutes on 2 idle CPU cores
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decay down to lr * this
    warmup: int = 60
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    corpus_seed: int = 0
    eval_every: int = 300
    checkpoint_every: int = 100
    run_dir: str = "runs/train"
    out: str = str(DEFAULT_WEIGHTS)


# ----------------------------------------------------------------------------------------------
# data


def token_stream(docs: list[str], tokenizer) -> torch.Tensor:
    """All documents as one id stream, each one preceded by <|endoftext|>."""
    ids: list[int] = []
    for doc in docs:
        ids.append(tokenizer.eot_id)
        ids.extend(tokenizer.encode(doc))
    ids.append(tokenizer.eot_id)
    return torch.tensor(ids, dtype=torch.long)


def get_batch(stream: torch.Tensor, step: int, tc: TrainConfig):
    gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
    starts = torch.randint(0, len(stream) - tc.seq_len - 1, (tc.batch_size,), generator=gen)
    x = torch.stack([stream[s : s + tc.seq_len] for s in starts.tolist()])  # (B, T)
    y = torch.stack([stream[s + 1 : s + tc.seq_len + 1] for s in starts.tolist()])
    return x, y


def lr_at(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    progress = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * (tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# ----------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def eval_bits_per_byte(model: HybridLM, stream: torch.Tensor, n_bytes: int, seq_len: int = 256) -> float:
    """Cross-entropy of the whole stream in bits, per byte of text it encodes."""
    model.eval()
    total_nats = 0.0
    for s in range(0, len(stream) - 1, seq_len):
        x = stream[s : s + seq_len][None]
        y = stream[s + 1 : s + seq_len + 1][None]
        x = x[:, : y.size(1)]
        logits = model(x)
        total_nats += torch.nn.functional.cross_entropy(logits[0], y[0], reduction="sum").item()
    return total_nats / math.log(2) / n_bytes


def unigram_bits_per_byte(train: torch.Tensor, val: torch.Tensor, vocab_size: int, n_bytes: int) -> float:
    """The baseline: each token predicted from its training frequency alone (add-one smoothing)."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    logp = torch.log2(counts / counts.sum())
    return -logp[val[1:]].sum().item() / n_bytes


def text_bytes(docs: list[str]) -> int:
    return sum(len(d.encode("utf-8", "surrogateescape")) for d in docs)


# ----------------------------------------------------------------------------------------------
# checkpoints: model and AdamW moments in safetensors, the step and configs as JSON metadata


def save_checkpoint(path: Path, model: HybridLM, opt: torch.optim.Optimizer, step: int, tc: TrainConfig):
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    names = {p: n for n, p in model.named_parameters()}
    for p, st in opt.state.items():
        for key in ("exp_avg", "exp_avg_sq"):
            tensors[f"optim.{names[p]}.{key}"] = st[key].contiguous()
        adam_step = float(st["step"])
    meta = {"step": str(step), "train_config": json.dumps(asdict(tc)), "config": model.cfg.to_json(),
            "adam_step": str(adam_step if opt.state else 0.0)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path, model: HybridLM, opt: torch.optim.Optimizer) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, f"checkpoint {path}")
    adam_step = torch.tensor(float(meta["adam_step"]))
    for name, p in model.named_parameters():
        if f"optim.{name}.exp_avg" in tensors:
            opt.state[p] = {"step": adam_step.clone(), "exp_avg": tensors[f"optim.{name}.exp_avg"],
                            "exp_avg_sq": tensors[f"optim.{name}.exp_avg_sq"]}
    return int(meta["step"])


# ----------------------------------------------------------------------------------------------
# the loop


def make_optimizer(model: HybridLM, tc: TrainConfig) -> torch.optim.AdamW:
    # No weight decay on norms, biases and the SSM's per-head parameters (A_log, D, dt_bias).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=(0.9, 0.95))


def train(tc: TrainConfig, cfg: HybridConfig | None = None, resume: bool = False, progress: bool = True,
          log=print, until: int | None = None) -> dict | None:
    """Train from scratch (or resume), write the final weights to tc.out, return the summary.

    `until` stops after that step as if the run were interrupted (the checkpoint is kept).
    """
    from toy_model.corpus import build_corpus
    from toy_model.tokenizer import load_tokenizer

    cfg = cfg or HybridConfig()
    tokenizer = load_tokenizer()
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ConfigError(f"vocab_size is {cfg.vocab_size}, but the tokenizer has {tokenizer.vocab_size} tokens")
    train_docs, val_docs = build_corpus(tc.corpus_seed)
    train_ids, val_ids = token_stream(train_docs, tokenizer), token_stream(val_docs, tokenizer)
    val_bytes = text_bytes(val_docs)
    log(f"corpus: {len(train_ids):,} train tokens ({text_bytes(train_docs):,} bytes), "
        f"{len(val_ids):,} held-out tokens ({val_bytes:,} bytes)")

    torch.manual_seed(tc.seed)
    model = HybridLM(cfg)
    opt = make_optimizer(model, tc)
    ckpt = Path(tc.run_dir) / "checkpoint.safetensors"
    start = 0
    if resume:
        if not ckpt.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from at {ckpt}")
        start = load_checkpoint(ckpt, model, opt)
        log(f"resumed from {ckpt} at step {start}")

    model.train()
    tokens_per_step = tc.batch_size * tc.seq_len
    t0 = time.time()
    stop = tc.steps if until is None else min(until, tc.steps)
    bar = tqdm(range(start, stop), initial=start, total=tc.steps, disable=not progress,
               desc="train", unit="step", dynamic_ncols=True)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc)
        x, y = get_batch(train_ids, step, tc)
        _, loss = model(x, targets=y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        model.update_router_biases()
        elapsed = time.time() - t0
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{(step + 1 - start) * tokens_per_step / elapsed:,.0f}")
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == stop:
            save_checkpoint(ckpt, model, opt, step + 1, tc)
        if tc.eval_every and (step + 1) % tc.eval_every == 0 and step + 1 < tc.steps:
            bpb = eval_bits_per_byte(model, val_ids[:20_000], val_bytes * 20_000 // len(val_ids))
            model.train()
            bar.write(f"step {step + 1}: held-out ~{bpb:.3f} bits/byte")
    bar.close()
    train_seconds = time.time() - t0
    if stop < tc.steps:
        return None

    model.eval()
    val_bpb = eval_bits_per_byte(model, val_ids, val_bytes)
    unigram_bpb = unigram_bits_per_byte(train_ids, val_ids, cfg.vocab_size, val_bytes)
    summary = {"steps": tc.steps, "seed": tc.seed, "train_seconds": round(train_seconds, 1),
               "tokens_seen": tc.steps * tokens_per_step, "val_bits_per_byte": round(val_bpb, 4),
               "unigram_bits_per_byte": round(unigram_bpb, 4),
               "reduction_vs_unigram": round(1 - val_bpb / unigram_bpb, 4)}
    out = Path(tc.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out, extra_metadata={"training": summary, "train_config": asdict(tc)})
    # The shipped weights are fp16: measure what ships, not what was trained.
    shipped = load_pretrained(out, kernels="torch")
    summary["shipped_val_bits_per_byte"] = round(eval_bits_per_byte(shipped, val_ids, val_bytes), 4)
    model.save(out, extra_metadata={"training": summary, "train_config": asdict(tc)})
    log(json.dumps(summary, indent=2))
    return summary
