"""HybridLM: the Nemotron-H style stack, with generation and safetensors weights.

    tokens -> embeddings -> [ x = x + mixer(RMSNorm(x)) for each pattern character ] -> RMSNorm -> lm_head

The embedding and the LM head are untied; there are no biases and no positional encoding anywhere.
Generation prefills the prompt in parallel, then decodes one token at a time on a cache that holds,
per layer, the Mamba-2 conv and SSM states or the attention keys and values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from toy_model.cache import CACHE_OF_KIND, ModelCache
from toy_model.capture import Capture, LayerCapture
from toy_model.config import ConfigError, HybridConfig
from toy_model.layers import MIXERS, Mamba2Mixer, RMSNorm

DEFAULT_WEIGHTS = Path(__file__).parent / "data" / "model.safetensors"


class WeightsError(ValueError):
    """A weights file that cannot be loaded into this model (said in one line by the CLI)."""


class Block(nn.Module):
    def __init__(self, cfg: HybridConfig, i: int):
        super().__init__()
        self.kind = cfg.layer_kind(i)
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mixer = MIXERS[self.kind](cfg)

    def forward(self, x, cache=None, capture: LayerCapture | None = None):
        update = self.mixer(self.norm(x), cache, capture)
        if capture is not None:
            capture.put(resid_in=x, update=update)  # the stream leaving is resid_in + update
        return x + update


class HybridLM(nn.Module):
    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self):
        std = self.cfg.initializer_range
        for name, p in self.named_parameters():
            if name.endswith(("A_log", "dt_bias", "D")) or "norm" in name or "conv1d" in name:
                continue  # set by their modules
            nn.init.normal_(p, std=std)
            # Projections that write into the residual stream start small (GPT-2's scaled init).
            if name.endswith(("out_proj.weight", "o_proj.weight", "down_proj.weight", "down_proj",
                              "fc2_latent_proj.weight")):
                p.div_(math.sqrt(2 * self.cfg.n_layers))

    def forward(self, idx, targets=None, cache: ModelCache | None = None, capture: Capture | None = None):
        """idx (B, T) token ids -> logits (B, T, V) [, mean cross-entropy against targets].

        cache: the generation cache (new_cache()), read and extended. capture: receives what each layer computes
        (toy_model.capture); the result is the same either way."""
        call = capture.new_call(len(self.layers)) if capture is not None else None
        x = self.embeddings(idx)  # (B, T, d)
        for i, block in enumerate(self.layers):
            x = block(x, cache[i] if cache is not None else None, call.layers[i] if call is not None else None)
        logits = self.lm_head(self.norm_f(x)).float()
        if cache is not None:
            cache.n_tokens += idx.shape[1]
        if call is not None:
            call.logits = logits.detach()
            call.cache_bytes = cache.layer_bytes() if cache is not None else None
            call.n_tokens = cache.n_tokens if cache is not None else idx.shape[1]
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def new_cache(self) -> ModelCache:
        """A MambaCache per Mamba-2 layer, a KVCache per attention layer, None for the others."""
        return ModelCache(CACHE_OF_KIND[b.kind]() if b.kind in CACHE_OF_KIND else None for b in self.layers)

    def update_router_biases(self):
        for block in self.layers:
            if block.kind == "moe":
                block.mixer.gate.update_bias(self.cfg.router_bias_update_rate)

    # ------------------------------------------------------------------------------------------
    # generation

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None,
                 seed: int = 0, stop_id: int | None = None, on_token=None, capture: Capture | None = None):
        """Continue idx (1, T). temperature 0 is greedy. Returns (1, T + n) with n <= max_new_tokens.

        on_token(step, cache, logits) is called after every model call (prefill is step 0); `capture` is
        passed to every model call (toy_model.trace records through both).
        """
        assert idx.dim() == 2 and idx.size(0) == 1, "generate takes one sequence (1, T)"
        if idx.size(1) + max_new_tokens > self.cfg.max_seq_len:
            raise ValueError(f"prompt ({idx.size(1)} tokens) plus {max_new_tokens} new tokens exceeds the "
                             f"supported context of {self.cfg.max_seq_len} tokens")
        gen = torch.Generator(device="cpu").manual_seed(seed)
        cache = self.new_cache()
        logits = self(idx, cache=cache, capture=capture)[:, -1]  # prefill: the whole prompt in parallel
        out = [idx]
        for step in range(max_new_tokens):
            if on_token is not None:
                on_token(step, cache, logits)
            nxt = sample(logits, temperature, top_k, gen)  # (1, 1)
            out.append(nxt)
            if stop_id is not None and int(nxt) == stop_id:
                break
            if step + 1 < max_new_tokens:
                logits = self(nxt, cache=cache, capture=capture)[:, -1]  # decode: one token on the cached states
        return torch.cat(out, dim=1)

    # ------------------------------------------------------------------------------------------
    # weights

    def save(self, path: str | Path, extra_metadata: dict | None = None, dtype=torch.float16):
        """safetensors with the config as JSON metadata, written atomically (toy_model.files).

        Weights that are not finite are never written: WeightsError names the first such tensor.
        """
        from safetensors.torch import save_file

        from toy_model.files import atomic_output

        state = self.state_dict()
        check_finite(state, "the model's weights")
        tensors = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous() for k, v in state.items()}
        check_finite(tensors, f"the model's weights in {str(dtype).removeprefix('torch.')}")  # fp16 overflows at 65504
        meta = {"config": self.cfg.to_json(), "format": "toy_model/1"}
        meta.update({k: json.dumps(v) for k, v in (extra_metadata or {}).items()})
        with atomic_output(path, "weights") as tmp:
            save_file(tensors, str(tmp), metadata=meta)


def check_finite(state: dict, what: str) -> None:
    """WeightsError naming the first floating-point tensor of `state` that holds NaN or inf."""
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise WeightsError(f"{what} are not finite: {k} holds NaN or inf; nothing was written")


def sample(logits, temperature: float, top_k: int | None, gen: torch.Generator):
    if temperature <= 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.float(), dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=gen).to(logits.device)


# Float dtypes a weights file may hold; the model runs in fp32. Anything else (float8 with or without its
# scales, integers, booleans, complex) is refused by name rather than cast into nonsense.
LOADABLE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_SCALE_SUFFIXES = ("weight_scale", "weight_scale_inv", "input_scale", "scale_inv", "_scale")


def check_dtypes(state: dict, source: str = "weights") -> None:
    """WeightsError naming the first tensor this model cannot use because of its dtype or nature."""
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise WeightsError(f"{source}: {k} is a {type(v).__name__}, not a tensor")
        if v.dtype not in LOADABLE_DTYPES:
            quantised = " (a quantised checkpoint: dequantise it to bf16 first)" if "float8" in str(v.dtype) else ""
            raise WeightsError(f"{source}: {k} is {str(v.dtype).removeprefix('torch.')}, which toy_model cannot "
                               f"load{quantised}; it needs float16, bfloat16, float32 or float64")
        if k.endswith(_SCALE_SUFFIXES):
            raise WeightsError(f"{source}: {k} is a quantisation scale (a float8 checkpoint); toy_model loads only "
                               f"unquantised weights: dequantise it to bf16 first")


def read_weights(path: str | Path) -> tuple[HybridConfig, dict, dict]:
    """(config, state_dict, metadata) from a toy_model safetensors file, or WeightsError naming the problem."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}" if not path.exists() else
                           f"weights path {path} is not a regular file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise WeightsError(f"weights file {path} is truncated or corrupted ({_first_line(e)})") from None
    if "config" not in meta:
        raise WeightsError(f"weights file {path} has no model config in its metadata (not a toy_model file)")
    try:
        fields = json.loads(meta["config"], parse_constant=lambda c: {}[c])
    except (ValueError, KeyError, RecursionError) as e:
        raise WeightsError(f"weights file {path} carries a config that is not valid JSON ({_first_line(e)})") from None
    if isinstance(fields, dict) and "time_step_limit" not in fields:
        # Written before the field existed, by code that always limited Delta below at time_step_min: keep
        # computing what those weights were trained with.
        fields["time_step_limit"] = [fields.get("time_step_min", HybridConfig.time_step_min), None]
    try:
        cfg = HybridConfig.from_dict(fields)
    except (ConfigError, TypeError) as e:
        raise WeightsError(f"weights file {path} carries an invalid config: {e}") from None
    check_dtypes(state, f"weights file {path}")
    return cfg, state, meta


def check_state(own: dict, state: dict, source: str = "weights") -> None:
    """WeightsError naming the first missing, extra, mis-shaped, badly typed or non-finite tensor of `state`
    against `own` (a state dict, or a meta-device one: shapes are all it needs)."""
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise WeightsError(f"{source} do not match this model's config: "
                           + (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}")
                           + f" ({len(missing)} missing, {len(extra)} unexpected tensors)")
    check_dtypes(state, source)
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise WeightsError(f"{source} do not match this model's config: {k} has shape "
                               f"{tuple(state[k].shape)}, the model expects {tuple(v.shape)}")
        if not torch.isfinite(state[k]).all():
            raise WeightsError(f"{source} are corrupted: {k} holds NaN or inf")


def load_state(model: HybridLM, state: dict, source: str = "weights", check: bool = True):
    """Copy state into model, or WeightsError (see check_state; check=False when already checked)."""
    own = model.state_dict()
    if check:
        check_state(own, state, source)
    with torch.no_grad():  # tensor by tensor: a bf16 checkpoint never exists twice in fp32
        for k, v in own.items():
            v.copy_(state[k])


def shapes_of(cfg: HybridConfig) -> dict:
    """The model's state dict on the meta device: every name and shape, no memory spent."""
    with torch.device("meta"):
        return HybridLM(cfg).state_dict()


def build_model(cfg: HybridConfig, state: dict, source: str = "weights") -> HybridLM:
    """A model for cfg holding `state`, checked against the config before any memory is allocated (so a
    config claiming huge sizes fails on the shapes, not on allocation)."""
    check_state(shapes_of(cfg), state, source)
    model = HybridLM(cfg)
    load_state(model, state, source, check=False)
    return model


def load_pretrained(path: str | Path | None = None, kernels: str | None = None,
                    config: HybridConfig | None = None, device="cpu") -> HybridLM:
    """The bundled trained model (or another toy_model safetensors file), in fp32, in eval mode.

    kernels overrides the file's config option ("auto" | "torch" | "triton"). If `config` is given,
    the file must have been written for that config.
    """
    path = DEFAULT_WEIGHTS if path is None else Path(path)
    cfg, state, _ = read_weights(path)
    if config is not None and config.to_dict() | {"kernels": "auto"} != cfg.to_dict() | {"kernels": "auto"}:
        diff = [k for k in cfg.to_dict() if cfg.to_dict()[k] != config.to_dict()[k] and k != "kernels"]
        raise WeightsError(f"weights in {path} were written for another config (differs in: {', '.join(diff)})")
    if kernels is not None:
        cfg = HybridConfig.from_dict(cfg.to_dict() | {"kernels": kernels})
    return build_model(cfg, state, source=f"weights in {path}").to(device).eval()


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def mamba_layers(model: HybridLM) -> list[Mamba2Mixer]:
    return [b.mixer for b in model.layers if b.kind == "mamba"]
