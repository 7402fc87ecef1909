"""Recording a trace: run the model on a prompt, then generate token by token, and keep its internals.

    prompt -> prefill (all prompt tokens at once) -> decode (one token per step, on the cache)
           -> per token and layer: residual norms, the block's update norm, and each mixer's recorder
              (Mamba-2 Delta / decay / state norm, router scores and choices, attention weights)
           -> toy_model.trace_file.Trace -> .npz

Every token in the trace has been through the model, so every row is real: when generation stops at
the length limit, the last generated token gets one more decode step. A prompt token and a generated
token are recorded from the same computation (parallel prefill and cached decode agree to float
rounding; tests/test_trace.py checks it).

The file format lives in toy_model/trace_file.py (numpy only); this module is the only part that
needs torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from toy_model.generation import DEFAULT_PROMPT, check_sampling, check_vocabulary, encode_prompt
from toy_model.trace_file import N_PREDICTIONS, TextStream, Trace, display_texts, make_trace, save_trace

DEFAULT_GENERATE = 32  # tokens generated for the default trace: enough for a sentence, small on disk


class _Recorder:
    """Hooks on every block and the LM head; collects one chunk of rows per model call."""

    def __init__(self, model):
        self.model = model
        self.calls: list[dict] = []  # per model call: {"layers": [per-layer dict], "logits": (T, V)}
        self._layers: list[dict] = []
        self._handles = []

    def __enter__(self):
        for i, block in enumerate(self.model.layers):
            block.mixer.recorder = {}
            self._handles.append(block.register_forward_hook(self._block_hook(i)))
            self._handles.append(block.mixer.register_forward_hook(self._mixer_hook(i)))
        self._handles.append(self.model.lm_head.register_forward_hook(self._head_hook))
        self._start_call()
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        for block in self.model.layers:
            block.mixer.recorder = None

    def _start_call(self):
        self._layers = [{} for _ in self.model.layers]

    def _block_hook(self, i):
        def hook(module, args, output):
            x = args[0]
            self._layers[i]["resid_in"] = x[0].float().norm(dim=-1)  # (T,)
            self._layers[i]["resid_out"] = output[0].float().norm(dim=-1)
        return hook

    def _mixer_hook(self, i):
        def hook(module, args, output):
            rec = self._layers[i]
            rec["update"] = output[0].float().norm(dim=-1)  # (T,): exactly what the block adds
            rec.update(module.recorder)  # this call's internals, written by the mixer's forward
            module.recorder.clear()
        return hook

    def _head_hook(self, module, args, output):
        # The LM head runs last in every forward, so this call's layer records are complete.
        self.calls.append({"layers": self._layers, "logits": output[0].float()})  # logits (T, V)
        self._start_call()


@torch.no_grad()
def record_ids(model, tokenizer, prompt_ids: list[int], generate: int = 0, temperature: float = 0.0,
               seed: int = 0, progress: bool = False) -> tuple[list[int], list[dict], str]:
    """Prefill prompt_ids, generate up to `generate` tokens; returns (all ids, per-call records, stop reason).

    Stops early at <|endoftext|> (not included in the ids). Every returned id has been through the model.
    """
    idx = torch.tensor([prompt_ids], dtype=torch.long, device=next(model.parameters()).device)
    bar = None
    if progress and generate > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=generate, desc="tracing", unit="tok", leave=False)
    state = {}

    def on_token(step, cache, logits):
        state["cache"] = cache
        if bar is not None and step > 0:
            bar.update(1)

    threads = torch.get_num_threads()
    # One thread: the toy model gains nothing from more (and oversubscribed cores slow it 100x), and a
    # fixed thread count keeps float reductions, hence the trace, identical from machine to machine.
    torch.set_num_threads(1)
    try:
        with _Recorder(model) as rec:
            out = model.generate(idx, generate, temperature=temperature, seed=seed, stop_id=tokenizer.eot_id,
                                 on_token=on_token)[0].tolist()
            new = out[len(prompt_ids):]
            stop = "length"
            if new and new[-1] == tokenizer.eot_id:
                new, stop = new[:-1], "eot"
            elif new:
                # generate() samples the last token without running it; run it so its row is real too
                model(torch.tensor([[new[-1]]], device=idx.device), cache=state["cache"])
            if bar is not None:
                bar.update(generate - bar.n)
        calls = rec.calls
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    ids = list(prompt_ids) + new
    n_rows = sum(c["logits"].shape[0] for c in calls)
    assert n_rows == len(ids), f"recorded {n_rows} rows for {len(ids)} tokens"
    return ids, calls, stop


def _cat(calls: list[dict], i: int, key: str, time_dim: int) -> np.ndarray:
    return torch.cat([c["layers"][i][key] for c in calls], dim=time_dim).cpu().numpy()


def _assemble(model, tokenizer, ids: list[int], calls: list[dict]) -> dict[str, np.ndarray]:
    """Per-call records -> the arrays of trace_file.ARRAYS (float32 / int32 / unicode)."""
    cfg = model.cfg
    T = len(ids)
    kinds = [block.kind for block in model.layers]
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)

    arrays: dict[str, np.ndarray] = {
        "resid_norm_in": f32([_cat(calls, i, "resid_in", 0) for i in range(len(kinds))]),
        "resid_norm_out": f32([_cat(calls, i, "resid_out", 0) for i in range(len(kinds))]),
        "update_norm": f32([_cat(calls, i, "update", 0) for i in range(len(kinds))]),
    }
    mamba = [i for i, k in enumerate(kinds) if k == "mamba"]
    moe = [i for i, k in enumerate(kinds) if k == "moe"]
    attn = [i for i, k in enumerate(kinds) if k == "attention"]
    H, E, k, Q = cfg.mamba_n_heads, cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.num_attention_heads

    def stack(layers, key, time_dim, empty_shape):
        if not layers:
            return np.zeros(empty_shape, dtype=np.float32)
        return np.stack([_cat(calls, i, key, time_dim) for i in layers])

    # Mamba-2 recorders hold (b, T, H); drop the batch of one.
    for key, name in (("delta", "mamba_delta"), ("decay", "mamba_decay"), ("state_norm", "mamba_state_norm")):
        arrays[name] = f32(stack(mamba, key, 1, (0, 1, T, H))[:, 0])
    # MoE recorders hold (T, ...) per call
    arrays["moe_scores"] = f32(stack(moe, "scores", 0, (0, T, E)))
    arrays["moe_topk_ids"] = np.ascontiguousarray(stack(moe, "topk_ids", 0, (0, T, k)), dtype=np.int32)
    arrays["moe_topk_weights"] = f32(stack(moe, "topk_weights", 0, (0, T, k)))
    arrays["moe_latent_norm"] = f32(stack(moe, "latent_norm", 0, (0, T)))
    arrays["moe_shared_share"] = f32(stack(moe, "shared_share", 0, (0, T)))
    arrays["moe_correction_bias"] = f32([calls[-1]["layers"][i]["correction_bias"].cpu().numpy() for i in moe]
                                        if moe else np.zeros((0, E)))
    # Attention: (b, Q, T_call, S_call) per call, S growing; place each call's rows into a (Q, T, T) grid.
    att = np.zeros((len(attn), T, Q, T), dtype=np.float32)
    for slot, i in enumerate(attn):
        row = 0
        for c in calls:
            w = c["layers"][i]["attn_weights"][0].float().cpu().numpy()  # (Q, T_call, S)
            n, S = w.shape[1], w.shape[2]
            att[slot, row:row + n, :, :S] = w.transpose(1, 0, 2)
            row += n
    arrays["attn_weights"] = att

    # tokens, text and predictions
    logits = torch.cat([c["logits"] for c in calls], dim=0)  # (T, V)
    probs = torch.softmax(logits, dim=-1)
    top = torch.topk(probs, N_PREDICTIONS, dim=-1)
    pred_ids = top.indices.cpu().numpy().astype(np.int32)
    pieces = [tokenizer.token_bytes(int(t)) for t in ids]
    stream = TextStream()
    pred_text = []
    for t in range(T):
        stream.push(pieces[t])
        pred_text.append([stream.peek(tokenizer.token_bytes(int(p))) for p in pred_ids[t]])
    arrays.update(
        token_ids=np.asarray(ids, dtype=np.int32),
        token_text=np.asarray(display_texts(pieces), dtype=str),
        token_hex=np.asarray([p.hex() for p in pieces], dtype=str),
        pred_ids=pred_ids,
        pred_probs=f32(top.values.cpu().numpy()),
        pred_text=np.asarray(pred_text, dtype=str).reshape(T, N_PREDICTIONS),
    )
    return arrays


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_trace(model, tokenizer, prompt: str = DEFAULT_PROMPT, generate: int = 0, seed: int = 0,
                 temperature: float = 0.0, chat: bool = True, progress: bool = True,
                 weights: str | None = None) -> Trace:
    """Trace the model on a prompt (chat template unless chat=False) and `generate` new tokens.

    Raises generation.PromptError for an empty prompt or one that does not fit the context.
    `weights` (a name or hash) only goes into the metadata.
    """
    check_sampling(temperature, seed, generate)
    prompt_ids = encode_prompt(tokenizer, prompt, model.cfg.max_seq_len, generate, chat)
    return trace_from_ids(model, tokenizer, prompt_ids, generate, seed, temperature, progress,
                          prompt=prompt, chat=chat, weights=weights)


def trace_from_ids(model, tokenizer, prompt_ids: list[int], generate: int = 0, seed: int = 0,
                   temperature: float = 0.0, progress: bool = False, prompt: str | None = None,
                   chat: bool = False, weights: str | None = None) -> Trace:
    """Trace given prompt token ids (no template added) and `generate` new tokens."""
    check_sampling(temperature, seed, generate)
    check_vocabulary(model, tokenizer)
    model.eval()
    ids, calls, stop = record_ids(model, tokenizer, prompt_ids, generate, temperature, seed, progress)
    arrays = _assemble(model, tokenizer, ids, calls)
    n = len(prompt_ids)
    meta = {
        "pattern": model.cfg.pattern,
        "model_config": model.cfg.to_dict(),
        # undecodable bytes of a prompt (surrogate escapes) show as U+FFFD: a trace holds only valid UTF-8
        "prompt": (prompt.encode("utf-8", "surrogateescape") if prompt is not None
                   else tokenizer.decode_bytes(prompt_ids)).decode("utf-8", "replace"),
        "chat": chat,
        "seed": seed,
        "temperature": float(temperature),
        "n_prompt_tokens": n,
        "max_new_tokens": generate,
        "generated_text": tokenizer.decode_bytes(ids[n:]).decode("utf-8", "replace"),
        "stop_reason": stop if generate else "none",
        "weights": weights,
        "recorded_by": "toy_model.trace",
    }
    return make_trace(arrays, meta)


# ------------------------------------------------------------------------------------------------
# command line: python -m toy_model trace ...


def add_trace_arguments(parser) -> None:
    from toy_model import options

    options.add_prompt_arguments(parser, DEFAULT_PROMPT)
    parser.add_argument("--generate", type=options.count, default=DEFAULT_GENERATE, metavar="N",
                        help=f"tokens to generate after the prompt (default {DEFAULT_GENERATE}; "
                             f"0 = the prompt only)")
    parser.add_argument("--out", required=True, help="where to write the trace (.npz)")
    parser.add_argument("--seed", type=options.seed, default=0,
                        help="sampling seed, 0..2^32-1 (matters only with --temperature > 0)")
    parser.add_argument("--temperature", type=options.temperature, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--weights", help="a toy_model safetensors file (default: the bundled weights)")
    parser.add_argument("--raw", action="store_true", help="no chat template: trace the text as it is")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run_trace(args) -> int:
    from toy_model.files import check_output
    from toy_model.model import DEFAULT_WEIGHTS, load_pretrained
    from toy_model.options import prompt_of
    from toy_model.tokenizer import load_tokenizer

    out = Path(args.out)
    check_output(out, "trace")  # before any work
    prompt = prompt_of(args)
    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    model = load_pretrained(weights, kernels="torch")  # CPU reference kernels: deterministic traces
    trace = record_trace(model, load_tokenizer(), prompt, args.generate, args.seed, args.temperature,
                         chat=not args.raw, progress=not getattr(args, "quiet", False),
                         weights=f"{weights.name} sha256:{file_sha256(weights)[:16]}")
    save_trace(trace, out)
    n_gen = trace.n_tokens - trace.n_prompt_tokens
    print(f"wrote {out}: {trace.n_tokens} tokens ({trace.n_prompt_tokens} prompt + {n_gen} generated), "
          f"{len(trace.pattern)} layers")
    return 0
