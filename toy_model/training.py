"""Training the bundled model on CPU: data, loop, checkpoints, evaluation in bits per byte.

The corpus (toy_model/corpus.py) is generated offline, tokenised once, and its documents joined with
<|endoftext|>. Batches are random windows of that stream, drawn from a generator seeded by
(seed, step), so a run resumed from a checkpoint sees exactly the batches an unbroken run would.
After every optimiser step the MoE correction biases take one sign-rule step toward balanced load.

    python -m toy_model train                 # default run, writes runs/train/model.safetensors
    python -m toy_model train --resume        # continue from runs/train/checkpoint.safetensors
    python -m toy_model train --out toy_model/data/model.safetensors   # replace the bundled weights

Every option and output path is checked before any work; a run whose loss or gradient stops being finite
stops with one line naming the step, and weights that are not finite are never written.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from toy_model.config import ConfigError, HybridConfig
from toy_model.files import OutputError, atomic_output, check_output
from toy_model.model import HybridLM, WeightsError, check_finite, load_pretrained, load_state, shapes_of
from toy_model.options import MAX_SEED


class TrainError(ValueError):
    """A training run that cannot start or go on (said in one line by the CLI)."""


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
    out: str | None = None  # None: <run_dir>/model.safetensors. The bundled weights are replaced only if named.

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out is not None else Path(self.run_dir) / "model.safetensors"

    def check(self, cfg: HybridConfig) -> None:
        """ConfigError naming the first option out of range; nothing is built or written before this passes."""
        def whole(name, low, high=None):
            v = getattr(self, name)
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high)
            if not ok:
                span = f"{low}..{high}" if high is not None else f"{low} or more"
                raise ConfigError(f"training option {name} must be a whole number, {span}, got {v!r}")

        whole("steps", 1)
        whole("batch_size", 1)
        whole("seq_len", 1, cfg.max_seq_len)
        whole("seed", 0, MAX_SEED)
        whole("corpus_seed", 0, MAX_SEED)
        whole("warmup", 0)
        whole("eval_every", 0)
        whole("checkpoint_every", 1)
        for name, low_ok in (("lr", False), ("weight_decay", True), ("grad_clip", False), ("min_lr_ratio", True)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or \
                    not (v >= 0 if low_ok else v > 0):
                raise ConfigError(f"training option {name} must be a finite number "
                                  f"{'of 0 or more' if low_ok else 'above 0'}, got {v!r}")


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
    check_finite(tensors, f"the weights and optimiser state at step {step}")
    meta = {"step": str(step), "train_config": json.dumps(asdict(tc)), "config": model.cfg.to_json(),
            "adam_step": str(adam_step if opt.state else 0.0), "format": "toy_model.checkpoint/1"}
    with atomic_output(path, "checkpoint") as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(path: Path, model: HybridLM, opt: torch.optim.Optimizer) -> int:
    """Restore model and optimiser from `path`, return its step; TrainError naming anything missing or wrong."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise TrainError(f"no checkpoint to resume from at {path}" if not path.exists()
                         else f"the checkpoint {path} is not a regular file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainError(f"the checkpoint {path} is truncated or corrupted ({first})") from None
    try:
        step, adam_step = int(meta["step"]), float(meta["adam_step"])
        saved_cfg = HybridConfig.from_json(meta["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise TrainError(f"the checkpoint {path} is incomplete: its metadata lacks a valid "
                         f"{e.args[0] if isinstance(e, KeyError) else 'step, adam_step or config'}") from None
    if saved_cfg.to_dict() | {"kernels": "auto"} != model.cfg.to_dict() | {"kernels": "auto"}:
        raise TrainError(f"the checkpoint {path} was written for another model config; resume with the same "
                         f"--pattern / --config, or start a new --run-dir")
    if not 0 <= step or not math.isfinite(adam_step):
        raise TrainError(f"the checkpoint {path} is corrupted: step {step}, adam step {adam_step}")
    try:
        load_state(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, f"checkpoint {path}")
    except WeightsError as e:
        raise TrainError(str(e)) from None
    state = {}
    for name, p in model.named_parameters():
        moments = [tensors.get(f"optim.{name}.{key}") for key in ("exp_avg", "exp_avg_sq")]
        if step > 0 and any(m is None or m.shape != p.shape or not torch.isfinite(m).all() for m in moments):
            raise TrainError(f"the checkpoint {path} is incomplete: the optimiser state of {name} is missing, "
                             f"mis-shaped or not finite")
        if moments[0] is not None:
            state[p] = {"step": torch.tensor(adam_step), "exp_avg": moments[0].float(),
                        "exp_avg_sq": moments[1].float()}
    opt.state.update(state)
    return step


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
    """Train from scratch (or resume), write the final weights to tc.out_path, return the summary.

    `until` stops after that step as if the run were interrupted (the checkpoint is kept).
    """
    from toy_model.corpus import build_corpus
    from toy_model.tokenizer import load_tokenizer

    cfg = cfg or HybridConfig()
    tc.check(cfg)
    tokenizer = load_tokenizer()
    if tokenizer.vocab_size != cfg.vocab_size:
        raise ConfigError(f"vocab_size is {cfg.vocab_size}, but the tokenizer has {tokenizer.vocab_size} tokens")
    if cfg.bos_token_id is None and cfg.eos_token_id is None:  # say in the weights what the model was taught
        eot = tokenizer.eot_id
        cfg = HybridConfig.from_dict(cfg.to_dict() | {"bos_token_id": eot, "eos_token_id": eot})
    check_memory(cfg)
    ckpt, out = prepare_outputs(tc)
    train_docs, val_docs = build_corpus(tc.corpus_seed)
    train_ids, val_ids = token_stream(train_docs, tokenizer), token_stream(val_docs, tokenizer)
    val_bytes = text_bytes(val_docs)
    log(f"corpus: {len(train_ids):,} train tokens ({text_bytes(train_docs):,} bytes), "
        f"{len(val_ids):,} held-out tokens ({val_bytes:,} bytes)")

    torch.manual_seed(tc.seed)
    model = HybridLM(cfg)
    opt = make_optimizer(model, tc)
    start = 0
    if resume:
        start = load_checkpoint(ckpt, model, opt)
        if start > tc.steps:
            raise TrainError(f"the checkpoint {ckpt} is at step {start}, beyond --steps {tc.steps}")
        log(f"resumed from {ckpt} at step {start}")

    model.train()
    saved = start  # the step of the newest checkpoint on disk (0: none)
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
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        if not (math.isfinite(loss.item()) and math.isfinite(grad_norm.item())):
            kept = f"the checkpoint of step {saved} in {ckpt} is kept" if saved else "nothing was written"
            raise TrainError(f"step {step + 1}: the loss ({loss.item():.4g}) or its gradient is not finite, so the "
                             f"run stopped before the weights were damaged; {kept} (try a lower --lr)")
        opt.step()
        model.update_router_biases()
        elapsed = time.time() - t0
        bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{(step + 1 - start) * tokens_per_step / elapsed:,.0f}")
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == stop:
            save_checkpoint(ckpt, model, opt, step + 1, tc)
            saved = step + 1
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
    model.save(out, extra_metadata={"training": summary, "train_config": asdict(tc)})
    # The shipped weights are fp16: measure what ships, not what was trained.
    shipped = load_pretrained(out, kernels="torch")
    summary["shipped_val_bits_per_byte"] = round(eval_bits_per_byte(shipped, val_ids, val_bytes), 4)
    model.save(out, extra_metadata={"training": summary, "train_config": asdict(tc)})
    log(json.dumps(summary, indent=2))
    log(f"weights written to {out}")
    return summary


def check_memory(cfg: HybridConfig) -> None:
    """TrainError if the weights, gradients and AdamW moments alone (16 bytes per parameter) exceed this
    machine's memory: a typo such as d_model 128000 is caught in a line, not by the kernel's OOM killer."""
    n = sum(v.numel() for v in shapes_of(cfg).values())
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if 16 * n > ram:
        raise TrainError(f"this config has {n:,} parameters, which need {16 * n / 2**30:.1f} GiB to train "
                         f"(weights, gradients, AdamW moments); this machine has {ram / 2**30:.1f} GiB")


def prepare_outputs(tc: TrainConfig) -> tuple[Path, Path]:
    """(checkpoint path, final weights path), both checked writable before any work; creates the run folder."""
    run_dir = Path(tc.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"--run-dir {run_dir} is not a folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainError(f"cannot create the run folder {run_dir}: {e.strerror or e}") from None
    try:
        return check_output(run_dir / "checkpoint.safetensors", "checkpoint"), check_output(tc.out_path, "weights")
    except OutputError as e:
        raise TrainError(str(e)) from None
