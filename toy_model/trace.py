"""Recording a trace: run the model on a prompt, then generate token by token, and keep its internals.

    prompt -> prefill (all prompt tokens at once) -> decode (one token per step, on the cache)
           -> per model call, toy_model.capture.Capture receives what each layer computes anyway
           -> derived here: residual and update norms, Delta / decay / per-token state norms, router
              scores and choices, attention weights, cache sizes [, the detail groups asked for]
           -> toy_model.trace_file.Trace -> .npz

Recording never changes the computation: the model runs its ordinary forward with a Capture attached
(tests/test_trace.py checks the logits bit for bit). What a trace stores that the forward never forms, such
as the state after every token inside a chunk or the softmax weights that scaled_dot_product_attention keeps
to itself, is derived here from the captured tensors (the chunk states the scan passed on, the queries and
keys).

Every token in the trace has been through the model, so every row is real: when generation stops at
the length limit, the last generated token gets one more decode step. A prompt token and a generated
token are recorded from the same computation (parallel prefill and cached decode agree to float
rounding; tests/test_trace.py checks it).

The file format lives in toy_model/trace_file.py (numpy only); this module is the only part that
needs torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from toy_model.capture import Call, Capture
from toy_model.generation import DEFAULT_PROMPT, check_sampling, check_vocabulary, encode_prompt
from toy_model.kernels.ssd import discretize, segsum
from toy_model.trace_file import N_PREDICTIONS, TextStream, Trace, TraceError, display_texts, make_trace, save_trace

DEFAULT_GENERATE = 32  # tokens generated for the default trace: enough for a sentence, small on disk


@dataclass(frozen=True)
class Detail:
    """The optional groups to record: Mamba-2 (layer, head) pairs in full, and layers whose incoming residual
    vectors to keep (toy_model.trace_file.GROUPS)."""

    mamba_heads: tuple[tuple[int, int], ...] = ()
    resid_layers: tuple[int, ...] = ()

    @classmethod
    def from_meta(cls, meta: dict) -> Detail:
        """The Detail a trace was recorded with (its metadata), to record it again."""
        d = meta.get("detail") or {}
        return cls(tuple(tuple(h) for h in d.get("mamba_heads", ())), tuple(d.get("resid_layers", ())))

    def check(self, model) -> None:
        kinds = [block.kind for block in model.layers]
        for layer, head in self.mamba_heads:
            if not (0 <= layer < len(kinds) and kinds[layer] == "mamba"):
                raise TraceError(f"--detail mamba:{layer}:{head}: layer {layer} is not a Mamba-2 layer (the Mamba-2 "
                                 f"layers are {', '.join(str(i) for i, k in enumerate(kinds) if k == 'mamba')})")
            if not 0 <= head < model.cfg.mamba_n_heads:
                raise TraceError(f"--detail mamba:{layer}:{head}: head {head} is outside "
                                 f"0..{model.cfg.mamba_n_heads - 1}")
        for layer in self.resid_layers:
            if not 0 <= layer < len(kinds):
                raise TraceError(f"--detail resid:{layer}: layer {layer} is outside 0..{len(kinds) - 1}")


def default_detail(model) -> Detail:
    """What `trace` records in detail unless told otherwise: head 1 of the first Mamba-2 layer (the deep-dive
    scenes' default) and the residual entering the first attention layer. Small: about 100 KB for the default
    trace."""
    kinds = [block.kind for block in model.layers]
    mamba = [i for i, k in enumerate(kinds) if k == "mamba"]
    attn = [i for i, k in enumerate(kinds) if k == "attention"]
    heads = ((mamba[0], min(1, model.cfg.mamba_n_heads - 1)),) if mamba else ()
    return Detail(mamba_heads=heads, resid_layers=tuple(attn[:1]))


def parse_detail(specs: list[str], model) -> Detail:
    """`mamba:LAYER:HEAD` and `resid:LAYER` items (repeatable, or comma-separated) -> Detail, checked against the
    model; 'default' adds default_detail(model), 'none' adds nothing."""
    heads, resid = [], []
    for item in (x.strip() for spec in specs for x in spec.split(",")):
        if not item or item == "none":
            continue
        if item == "default":
            heads += default_detail(model).mamba_heads
            resid += default_detail(model).resid_layers
            continue
        kind, *nums = item.split(":")
        try:
            values = [int(n) for n in nums]
        except ValueError:
            values = None
        if kind == "mamba" and values is not None and len(values) == 2:
            heads.append(tuple(values))
        elif kind == "resid" and values is not None and len(values) == 1:
            resid.append(values[0])
        else:
            raise TraceError(f"--detail {item!r}: expected mamba:LAYER:HEAD, resid:LAYER, default or none")
    detail = Detail(tuple(dict.fromkeys(heads)), tuple(dict.fromkeys(resid)))
    detail.check(model)
    return detail


@torch.no_grad()
def record_ids(model, tokenizer, prompt_ids: list[int], generate: int = 0, temperature: float = 0.0,
               seed: int = 0, progress: bool = False) -> tuple[list[int], list[Call], str]:
    """Prefill prompt_ids, generate up to `generate` tokens; returns (all ids, the captured model calls, stop
    reason). Stops early at <|endoftext|> (not included in the ids). Every returned id has been through the
    model."""
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

    capture = Capture()
    threads = torch.get_num_threads()
    # One thread: the toy model gains nothing from more (and oversubscribed cores slow it 100x), and a
    # fixed thread count keeps float reductions, hence the trace, identical from run to run.
    torch.set_num_threads(1)
    try:
        out = model.generate(idx, generate, temperature=temperature, seed=seed, stop_id=tokenizer.eot_id,
                             on_token=on_token, capture=capture)[0].tolist()
        new = out[len(prompt_ids):]
        stop = "length"
        if new and new[-1] == tokenizer.eot_id:
            new, stop = new[:-1], "eot"
        elif new:
            # generate() samples the last token without running it; run it so its row is real too
            model(torch.tensor([[new[-1]]], device=idx.device), cache=state["cache"], capture=capture)
        if bar is not None:
            bar.update(generate - bar.n)
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    ids = list(prompt_ids) + new
    calls = capture.calls
    n_rows = sum(c.logits.shape[1] for c in calls)
    assert n_rows == len(ids), f"recorded {n_rows} rows for {len(ids)} tokens"
    return ids, calls, stop


# ------------------------------------------------------------------------------------------------
# derived from the captured tensors


def _rows(calls: list[Call], i: int, key: str, flat: bool = False) -> torch.Tensor:
    """Layer i's captured `key` over all calls, time first: (T, ...). The batch of one is dropped (flat: the
    tensor is already (batch * time, ...), as the MoE's token rows are)."""
    return torch.cat([c.layers[i][key] if flat else c.layers[i][key][0] for c in calls], dim=0)


def _token_states(mixer, cap) -> torch.Tensor:
    """The state after every token of one call, (T, H, P, N) fp32, from what the scan passed on: each token's
    state is its chunk's entering state decayed to it plus what the chunk wrote up to it (the chunked scan's
    step 2 without summing to the chunk's end). A decode step is its own final state."""
    if cap["chunk_states"] is None:  # a decode step: the recurrence ran one token
        return cap["final_state"][0][None].float()
    x, dt, B = cap["x"][0].float(), cap["dt"][0], cap["B"][0].float()  # (T, H, P), (T, H), (T, G, N)
    T, H, P = x.shape
    G = B.shape[1]
    Q = mixer.cfg.chunk_size
    delta = discretize(dt, mixer.dt_bias, mixer.dt_limit)  # (T, H)
    a = cap["A"][None, :] * delta  # (T, H)
    xd = x * delta[..., None]
    Bh = B.repeat_interleave(H // G, dim=1)  # (T, H, N)
    pad = (-T) % Q
    if pad:
        a, xd, Bh = (torch.nn.functional.pad(t, (0, 0) * (t.dim() - 1) + (0, pad)) for t in (a, xd, Bh))
    c = (T + pad) // Q
    a = a.view(c, Q, H).permute(0, 2, 1)  # (c, H, Q)
    L = torch.exp(segsum(a))  # (c, H, Q, Q): decay from token j to token t inside a chunk
    written = torch.einsum("chts,cshn,cshp->cthpn", L, Bh.view(c, Q, H, -1), xd.view(c, Q, H, P))
    kept = torch.exp(torch.cumsum(a, dim=-1)).permute(0, 2, 1)[..., None, None] * cap["chunk_states"][0][:, None]
    return (written + kept).reshape(c * Q, H, P, -1)[:T]


def _attention_weights(cap) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_h)) over the causal keys: (T, n_q, S), as scaled_dot_product_attention applies."""
    q, k = cap["q"][0], cap["k"][0]  # (n_q, T, hd), (n_kv, S, hd)
    T, S = q.shape[1], k.shape[1]
    kr = k.repeat_interleave(q.shape[0] // k.shape[0], dim=0)
    att = (q @ kr.transpose(-2, -1)) * cap["scale"]  # (n_q, T, S)
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    return torch.softmax(att.float().masked_fill(~mask, float("-inf")), dim=-1).transpose(0, 1)


@torch.no_grad()
def _assemble(model, tokenizer, ids: list[int], calls: list[Call], detail: Detail = Detail()) -> dict[str, np.ndarray]:
    """Captured calls -> the arrays of trace_file.ARRAYS and GROUPS (float32 / int32 / int64 / unicode)."""
    cfg = model.cfg
    T = len(ids)
    kinds = [block.kind for block in model.layers]
    f32 = lambda a: np.ascontiguousarray(torch.as_tensor(a).cpu().numpy() if isinstance(a, torch.Tensor) else a,
                                         dtype=np.float32)
    resid_in = [_rows(calls, i, "resid_in").float() for i in range(len(kinds))]  # (T, d) each
    update = [_rows(calls, i, "update").float() for i in range(len(kinds))]
    arrays: dict[str, np.ndarray] = {
        "resid_norm_in": f32(torch.stack([r.norm(dim=-1) for r in resid_in])),
        "resid_norm_out": f32(torch.stack([(r + u).norm(dim=-1) for r, u in zip(resid_in, update, strict=True)])),
        "update_norm": f32(torch.stack([u.norm(dim=-1) for u in update])),
    }
    mamba = [i for i, k in enumerate(kinds) if k == "mamba"]
    moe = [i for i, k in enumerate(kinds) if k == "moe"]
    attn = [i for i, k in enumerate(kinds) if k == "attention"]
    H, E, k, Q = cfg.mamba_n_heads, cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.num_attention_heads

    # Mamba-2: Delta and the decay per head, and each head's state norm after every token
    states = {i: torch.cat([_token_states(model.layers[i].mixer, c.layers[i]) for c in calls]) for i in mamba}
    deltas = {i: discretize(_rows(calls, i, "dt"), model.layers[i].mixer.dt_bias, model.layers[i].mixer.dt_limit)
              for i in mamba}
    arrays["mamba_delta"] = f32([deltas[i] for i in mamba] if mamba else np.zeros((0, T, H)))
    arrays["mamba_decay"] = f32([torch.exp(calls[0].layers[i]["A"] * deltas[i]) for i in mamba]
                                if mamba else np.zeros((0, T, H)))
    arrays["mamba_state_norm"] = f32([states[i].flatten(-2).norm(dim=-1) for i in mamba]
                                     if mamba else np.zeros((0, T, H)))
    # MoE: the router's scores and choices, the latent's size, the shared expert's share of the update
    if moe:
        routed = [_rows(calls, i, "routed", flat=True).float().norm(dim=-1) for i in moe]
        shared = [_rows(calls, i, "shared", flat=True).float().norm(dim=-1) for i in moe]
        arrays["moe_scores"] = f32([_rows(calls, i, "scores", flat=True) for i in moe])
        arrays["moe_topk_ids"] = np.ascontiguousarray([_rows(calls, i, "topk_ids", flat=True).numpy() for i in moe],
                                                      dtype=np.int32)
        arrays["moe_topk_weights"] = f32([_rows(calls, i, "topk_weights", flat=True) for i in moe])
        arrays["moe_latent_norm"] = f32([_rows(calls, i, "latent", flat=True).float().norm(dim=-1) for i in moe])
        arrays["moe_shared_share"] = f32([s / (r + s + 1e-12) for r, s in zip(routed, shared, strict=True)])
        arrays["moe_correction_bias"] = f32([calls[-1].layers[i]["correction_bias"] for i in moe])
    else:
        arrays.update(moe_scores=f32(np.zeros((0, T, E))), moe_topk_ids=np.zeros((0, T, k), np.int32),
                      moe_topk_weights=f32(np.zeros((0, T, k))), moe_latent_norm=f32(np.zeros((0, T))),
                      moe_shared_share=f32(np.zeros((0, T))), moe_correction_bias=f32(np.zeros((0, E))))
    # Attention: each call's rows (T_call, Q, S_call) placed into a (T, Q, T) grid, S growing
    att = np.zeros((len(attn), T, Q, T), dtype=np.float32)
    for slot, i in enumerate(attn):
        row = 0
        for c in calls:
            w = _attention_weights(c.layers[i]).cpu().numpy()
            att[slot, row:row + w.shape[0], :, :w.shape[2]] = w
            row += w.shape[0]
    arrays["attn_weights"] = att

    # the cache after each call (group "cache")
    arrays["cache_tokens"] = np.asarray([c.n_tokens for c in calls], dtype=np.int64)
    arrays["cache_bytes"] = np.asarray([c.cache_bytes for c in calls], dtype=np.int64)
    # detail groups, only as asked
    if detail.mamba_heads:
        rows = {"x": [], "B": [], "C": [], "y": [], "state": [], "A": [], "D": [], "chunk": []}
        for layer, head in detail.mamba_heads:
            mixer, g = model.layers[layer].mixer, head // (H // cfg.n_groups)
            rows["x"].append(_rows(calls, layer, "x")[:, head])
            rows["B"].append(_rows(calls, layer, "B")[:, g])
            rows["C"].append(_rows(calls, layer, "C")[:, g])
            rows["y"].append(_rows(calls, layer, "y")[:, head])
            rows["state"].append(states[layer][:, head])
            rows["A"].append(calls[0].layers[layer]["A"][head])
            rows["D"].append(mixer.D[head])
            rows["chunk"].append(calls[0].layers[layer]["chunk_states"][0][:, head])
        arrays.update(mamba_detail_heads=np.asarray(detail.mamba_heads, dtype=np.int32),
                      mamba_detail_A=f32(torch.stack(rows["A"])), mamba_detail_D=f32(torch.stack(rows["D"])),
                      mamba_detail_x=f32(torch.stack(rows["x"])), mamba_detail_B=f32(torch.stack(rows["B"])),
                      mamba_detail_C=f32(torch.stack(rows["C"])), mamba_detail_y=f32(torch.stack(rows["y"])),
                      mamba_detail_state=f32(torch.stack(rows["state"])),
                      mamba_detail_chunk_states=f32(torch.stack(rows["chunk"])))
    if detail.resid_layers:
        arrays.update(resid_detail_layers=np.asarray(detail.resid_layers, dtype=np.int32),
                      resid_detail_in=f32(torch.stack([resid_in[i] for i in detail.resid_layers])))

    # tokens, text and predictions
    logits = torch.cat([c.logits[0] for c in calls], dim=0)  # (T, V)
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
        pred_probs=f32(top.values),
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
                 weights: str | None = None, detail: Detail | None = None) -> Trace:
    """Trace the model on a prompt (chat template unless chat=False) and `generate` new tokens.

    Raises generation.PromptError for an empty prompt or one that does not fit the context.
    `weights` (a name or hash) only goes into the metadata; `detail` picks the optional groups (default: none).
    """
    check_sampling(temperature, seed, generate)
    prompt_ids = encode_prompt(tokenizer, prompt, model.cfg.max_seq_len, generate, chat)
    return trace_from_ids(model, tokenizer, prompt_ids, generate, seed, temperature, progress,
                          prompt=prompt, chat=chat, weights=weights, detail=detail)


def trace_from_ids(model, tokenizer, prompt_ids: list[int], generate: int = 0, seed: int = 0,
                   temperature: float = 0.0, progress: bool = False, prompt: str | None = None,
                   chat: bool = False, weights: str | None = None, detail: Detail | None = None) -> Trace:
    """Trace given prompt token ids (no template added) and `generate` new tokens."""
    check_sampling(temperature, seed, generate)
    check_vocabulary(model, tokenizer)
    detail = detail or Detail()
    detail.check(model)
    model.eval()
    ids, calls, stop = record_ids(model, tokenizer, prompt_ids, generate, temperature, seed, progress)
    arrays = _assemble(model, tokenizer, ids, calls, detail)
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
        "detail": {"mamba_heads": [list(h) for h in detail.mamba_heads], "resid_layers": list(detail.resid_layers)},
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
    parser.add_argument("--detail", action="append", metavar="WHAT",
                        help="what to record in full, repeatable: mamba:LAYER:HEAD (inputs, B, C, outputs and the "
                             "P x N state of one Mamba-2 head), resid:LAYER (the residual vectors entering a layer), "
                             "none, or default (the first Mamba-2 layer's head 1 and the first attention layer; "
                             "what the deep-dive scenes use)")
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
    detail = parse_detail(args.detail or ["default"], model)
    trace = record_trace(model, load_tokenizer(), prompt, args.generate, args.seed, args.temperature,
                         chat=not args.raw, progress=not getattr(args, "quiet", False),
                         weights=f"{weights.name} sha256:{file_sha256(weights)[:16]}", detail=detail)
    save_trace(trace, out)
    n_gen = trace.n_tokens - trace.n_prompt_tokens
    print(f"wrote {out}: {trace.n_tokens} tokens ({trace.n_prompt_tokens} prompt + {n_gen} generated), "
          f"{len(trace.pattern)} layers")
    return 0
