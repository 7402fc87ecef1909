"""Conversion between HybridLM and Hugging Face transformers' NemotronH (`NemotronHForCausalLM`).

    from_nemotron_h(config_dict, state_dict) -> HybridLM   a NemotronHConfig dict (config.json) + weights
    to_nemotron_h(model) -> (config_dict, state_dict)      NemotronHConfig(**config_dict) builds the reference
    load_nemotron_h_checkpoint(directory) -> HybridLM      config.json + *.safetensors shards, local only
    save_nemotron_h_checkpoint(model, directory)           config.json + model.safetensors

Weights come in two layouts, and from_nemotron_h reads both:
- the module's: NemotronHForCausalLM.state_dict(), `model.`-prefixed, the routed experts stacked
  into `experts.up_proj` (E, m, l) and `experts.down_proj` (E, l, m). Ours is the same without the
  `model.` prefix (`lm_head.weight` is the same in both); to_nemotron_h returns this layout.
- the checkpoint's: what NVIDIA publishes and save_pretrained writes (transformers converts it on
  load), `backbone.`-prefixed, one `experts.{j}.up_proj.weight` (m, l) and `experts.{j}.down_proj.weight`
  (l, m) per expert. save_nemotron_h_checkpoint writes this layout.
Nothing here imports transformers: a config is read as the plain dict HF writes, with NemotronHConfig's
defaults for missing keys and its legacy spellings (`hybrid_override_pattern`, the `mamba_*` aliases,
the "mamba" / "attention" layer types).

What deliberately does not carry over:
- NemotronHConfig features we do not implement raise ConfigError naming the key (biases, grouped
  routing, unnormalised gates, other activations, tied embeddings, ...). Settings that do not change
  the forward pass of an fp32 model in eval mode (dropout, cache, kernel and init options, token ids)
  are ignored; `_IGNORED` lists them with the reason. Keys NemotronHConfig does not know (`rope_theta`
  in some config.json files) are ignored too, as transformers does.
- Delta is limited by `time_step_limit` (default (0, inf)) in prefill and decode, as mamba_ssm's `dt_limit` and
  NVIDIA's own modeling code do, so a converted model computes what the checkpoint was trained to compute.
  transformers up to 5.24 instead clamps Delta below at `time_step_min` in its chunked (prefill) path only,
  not in its decode step (5.25 follows `time_step_limit`); to reproduce such a forward, pass
  `time_step_limit=(time_step_min, inf)` as an override.
- Any HybridConfig field can be overridden on import: `from_nemotron_h(cfg, state, kernels="torch", ...)`.
- Weights in dtypes the model cannot use (float8 with or without scales, integers, booleans, complex) are
  refused by name; so are shard names in an index that point outside the checkpoint folder.
- Multi-token prediction: `num_nextn_predict_layers` > 0 checkpoints carry extra layers under `mtp.`.
  They are dropped, as NemotronHForCausalLM itself does: we only run next-token prediction.
- `max_position_embeddings` <-> `max_seq_len`: neither model has anything positional; both numbers only
  state the longest context the weights are meant for, so the value is copied unchanged.
- `kernels` and `router_bias_update_rate` have no NemotronH counterpart: they are dropped on export and
  take our defaults on import. The token ids (bos, eos, pad) carry over both ways unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path, PurePosixPath

import torch

from toy_model.config import ConfigError, HybridConfig
from toy_model.files import atomic_output
from toy_model.kinds import BY_CHAR, BY_HF_TYPE
from toy_model.model import HybridLM, WeightsError, build_model, check_dtypes, check_finite

# NemotronHConfig's defaults (transformers 5.x) for the keys we read; a config.json may leave any out.
_HF_DEFAULTS = {
    "vocab_size": 131072, "hidden_size": 4096, "layer_norm_epsilon": 1e-5, "max_position_embeddings": 4096,
    "mamba_num_heads": 128, "mamba_head_dim": 64, "ssm_state_size": 128, "n_groups": 8, "conv_kernel": 4,
    "chunk_size": 128, "time_step_min": 1e-3, "time_step_max": 0.1, "time_step_limit": (0.0, math.inf),
    "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_latent_size": None, "moe_intermediate_size": 7688,
    "moe_shared_expert_intermediate_size": 7688, "routed_scaling_factor": 1.0, "intermediate_size": 21504,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "initializer_range": 0.02,
    "num_nextn_predict_layers": 0, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
}

# NemotronH key -> HybridConfig field, for everything that carries over one to one.
_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "d_model",
    "layer_norm_epsilon": "norm_eps",
    "max_position_embeddings": "max_seq_len",  # advisory in both models (see the module docstring)
    "mamba_num_heads": "mamba_n_heads",
    "mamba_head_dim": "mamba_head_dim",
    "ssm_state_size": "ssm_state_size",
    "n_groups": "n_groups",
    "conv_kernel": "conv_kernel",
    "chunk_size": "chunk_size",
    "time_step_min": "time_step_min",  # also the lower clamp of Delta, in both mixers
    "time_step_max": "time_step_max",
    "n_routed_experts": "n_routed_experts",
    "num_experts_per_tok": "num_experts_per_tok",
    "moe_latent_size": "moe_latent_size",
    "moe_intermediate_size": "moe_intermediate_size",
    "moe_shared_expert_intermediate_size": "moe_shared_expert_intermediate_size",
    "routed_scaling_factor": "routed_scaling_factor",
    "intermediate_size": "intermediate_size",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "initializer_range": "initializer_range",
    "time_step_limit": "time_step_limit",
    "pad_token_id": "pad_token_id",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
}
_FLOAT_FIELDS = {"layer_norm_epsilon", "time_step_min", "time_step_max", "routed_scaling_factor",
                 "initializer_range"}

# NemotronH keys whose value must be the one we implement: key -> (that value, what another value means).
# A missing key takes that value, which is also NemotronHConfig's default.
_REQUIRED = {
    "tie_word_embeddings": (False, "LM head tied to the embedding"),
    "use_bias": (False, "biases on the Mamba-2 in_proj / out_proj"),
    "mamba_proj_bias": (False, "biases on the Mamba-2 projections"),
    "mlp_bias": (False, "biases on the MLPs, experts and latent projections"),
    "attention_bias": (False, "biases on the attention projections"),
    "use_conv_bias": (True, "a Mamba-2 conv1d without bias"),
    "mlp_hidden_act": ("relu2", "another MLP / expert activation than squared ReLU"),
    "mamba_hidden_act": ("silu", "another Mamba-2 activation than SiLU"),
    "n_shared_experts": (1, "another number of shared experts than one"),
    "n_group": (1, "group-limited routing"),
    "topk_group": (1, "group-limited routing"),
    "norm_topk_prob": (True, "top-k gate weights not normalised over k"),
    "sliding_window": (None, "sliding-window attention"),
}

# Keys deliberately ignored, with the reason (tests check that every NemotronHConfig field is accounted for).
_IGNORED = {
    "attention_dropout": "training only", "hidden_dropout": "training only",
    "use_cache": "generation option", "num_logits_to_keep": "generation option",
    "output_router_logits": "output option",
    "use_mamba_kernels": "deprecated, no effect", "mamba_ssm_cache_dtype": "decode cache precision",
    "residual_in_fp32": "no effect in fp32", "moe_shared_expert_overlap": "communication overlap only",
    "expand": "unused: d_inner is mamba_num_heads x mamba_head_dim",
    "time_step_floor": "initialisation only", "rescale_prenorm_residual": "initialisation only",
    "num_hidden_layers": "deprecated, the layer list decides", "mtp_layers_block_type": "MTP is dropped",
    "num_nextn_predict_layers": "MTP is dropped",
}

# Legacy spellings NemotronHConfig still accepts; like it, the legacy key wins when both are given.
_LEGACY_ALIASES = {
    "mamba_n_groups": "n_groups", "mamba_d_conv": "conv_kernel", "mamba_expand": "expand",
    "mamba_dt_min": "time_step_min", "mamba_dt_max": "time_step_max", "mamba_dt_limit": "time_step_limit",
    "mamba_dt_init_floor": "time_step_floor", "mamba_conv_bias": "use_conv_bias",
    "mamba_chunk_size": "chunk_size",
}
_ATTRIBUTE_MAP = {"layer_types": "layers_block_type", "num_local_experts": "n_routed_experts"}

_DEFAULT_PATTERN = "ME*-"  # NemotronHConfig's default layers_block_type

_MTP_PREFIXES = ("mtp.", "model.mtp.", "backbone.mtp.")
_PREFIXES = ("model.", "backbone.")  # the module's, the checkpoint's
_KEY_NOTE = "names shown without the 'model.' / 'backbone.' prefix, experts stacked"
_EXPERT_KEY = re.compile(r"(layers\.\d+\.mixer\.experts)\.(\d+)\.(up_proj|down_proj)\.weight")


# ----------------------------------------------------------------------------------------------
# config


def _decode_floats(obj):
    """transformers 5 writes inf in config.json as {"__float__": "Infinity"}, older files as Infinity."""
    if isinstance(obj, dict):
        if set(obj) == {"__float__"} and obj["__float__"] in ("Infinity", "-Infinity", "NaN"):
            return float(obj["__float__"].lower().replace("infinity", "inf"))
        return {k: _decode_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_decode_floats(v) for v in obj]
    return obj


def _normalise(config_dict: dict) -> dict:
    d = _decode_floats(config_dict)
    for old, new in _LEGACY_ALIASES.items():
        if old in d:
            d[new] = d.pop(old)
    for old, new in _ATTRIBUTE_MAP.items():
        if old in d:
            d.setdefault(new, d.pop(old))
    return d


def _pattern(d: dict) -> str:
    types = d.get("layers_block_type")
    if types is not None:  # wins over hybrid_override_pattern, as in NemotronHConfig
        if not isinstance(types, (list, tuple)) or not types:
            raise ConfigError(f"NemotronH config: layers_block_type must be a non-empty list, got {types!r}")
        bad = [t for t in types if t not in BY_HF_TYPE]
        if bad:
            raise ConfigError(f"NemotronH config: unknown layer type {bad[0]!r} in layers_block_type "
                              f"(known: {', '.join(sorted(BY_HF_TYPE))})")
        return "".join(BY_HF_TYPE[t].char for t in types)
    pattern = d.get("hybrid_override_pattern")
    if pattern is None:
        return _DEFAULT_PATTERN
    if not isinstance(pattern, str) or not pattern or set(pattern) - set(BY_CHAR):
        raise ConfigError(f"NemotronH config: hybrid_override_pattern must be a non-empty string of "
                          f"M, E, *, -; got {pattern!r}")
    return pattern


def _check_supported(d: dict) -> None:
    model_type = d.get("model_type", "nemotron_h")
    if model_type != "nemotron_h":
        raise ConfigError(f"not a NemotronH config: model_type is {model_type!r}, expected 'nemotron_h'")
    for key, (value, meaning) in _REQUIRED.items():
        if key in d and d[key] != value:
            raise ConfigError(f"NemotronH config sets {key}={d[key]!r} ({meaning}), which toy_model does not "
                              f"implement (supported: {key}={value!r})")


def config_from_nemotron_h(config_dict: dict, **overrides) -> HybridConfig:
    """HybridConfig for a NemotronHConfig dict (`to_dict()` or a checkpoint's config.json); `overrides` set any
    HybridConfig field afterwards (e.g. kernels="torch", or time_step_limit=(time_step_min, inf) to match the
    prefill of transformers up to 5.24)."""
    if not isinstance(config_dict, dict):
        raise ConfigError(f"NemotronH config must be a dict, got {type(config_dict).__name__}")
    d = _normalise(config_dict)
    _check_supported(d)
    fields = {}
    for key, name in _FIELDS.items():
        value = d.get(key, _HF_DEFAULTS[key])
        if key in _FLOAT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"NemotronH config: {key} must be a number, got {value!r}")
            value = float(value)
        fields[name] = value
    if fields["num_key_value_heads"] is None:  # NemotronHConfig's fallback: plain multi-head attention
        fields["num_key_value_heads"] = fields["num_attention_heads"]
    if isinstance(fields["time_step_limit"], (list, tuple)) and len(fields["time_step_limit"]) == 2:
        fields["time_step_limit"] = [None if v is not None and v == math.inf else v for v in fields["time_step_limit"]]
    fields.update(pattern=_pattern(d))
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(HybridConfig) if f.init})
    if unknown:
        raise ConfigError(f"unknown HybridConfig field(s) to override: {', '.join(unknown)}")
    try:
        return HybridConfig.from_dict(fields | overrides)
    except ConfigError as e:
        raise ConfigError(f"NemotronH config: {e}") from None


def config_to_nemotron_h(cfg: HybridConfig) -> dict:
    """A dict that builds the same architecture with NemotronHConfig(**dict), ready for config.json."""
    d = {"model_type": "nemotron_h", "architectures": ["NemotronHForCausalLM"],
         "layers_block_type": [BY_CHAR[c].hf_type for c in cfg.pattern]}
    for key, name in _FIELDS.items():
        value = getattr(cfg, name)
        d[key] = float(value) if key in _FLOAT_FIELDS else value
    d.update({key: value for key, (value, _) in _REQUIRED.items()})
    d["time_step_limit"] = list(cfg.time_step_limit)  # inf stays inf: json writes Infinity, as NVIDIA's files do
    d["num_nextn_predict_layers"] = 0
    return d


# ----------------------------------------------------------------------------------------------
# weights


def _state_from_nemotron_h(state_dict: dict) -> dict:
    """Our state dict from either layout (see the module docstring)."""
    state = {}
    experts = {}  # (layers.{i}.mixer.experts, up_proj | down_proj) -> {j: (m, l) or (l, m)}
    for key, value in state_dict.items():
        if key.startswith(_MTP_PREFIXES):
            continue  # multi-token prediction layers: we only run next-token prediction
        check_dtypes({key: value}, "NemotronH weights")
        if key == "lm_head.weight":
            name = key
        elif key.startswith(_PREFIXES):
            name = key.split(".", 1)[1]
        else:
            raise WeightsError(f"NemotronH weights hold {key!r}, which is neither under 'model.' / "
                               f"'backbone.' nor 'lm_head.weight'")
        if m := _EXPERT_KEY.fullmatch(name):
            experts.setdefault((m[1], m[3]), {})[int(m[2])] = value
        elif name in state:
            raise WeightsError(f"NemotronH weights hold {name} twice (under both 'model.' and 'backbone.')")
        else:
            state[name] = value
    for (prefix, proj), per_expert in experts.items():
        name = f"{prefix}.{proj}"
        if name in state:
            raise WeightsError(f"NemotronH weights hold {name} both stacked and per expert")
        absent = sorted(set(range(len(per_expert))) - set(per_expert))
        if absent:
            raise WeightsError(f"NemotronH weights: {prefix}.{absent[0]}.{proj}.weight is missing")
        shapes = {tuple(v.shape) for v in per_expert.values()}
        if len(shapes) > 1:
            raise WeightsError(f"NemotronH weights: the experts' {prefix}.*.{proj}.weight differ in shape "
                               f"({', '.join(map(str, sorted(shapes)))})")
        # fp32 here already: the model is fp32, and shards may disagree on dtype
        state[name] = torch.stack([per_expert[j].float() for j in range(len(per_expert))])  # (E, out, in)
    return state


def _checkpoint_layout(state: dict) -> dict:
    """The module's layout (to_nemotron_h) -> the checkpoint's: backbone.*, one tensor per expert."""
    out = {}
    for key, value in state.items():
        if key != "lm_head.weight":
            key = "backbone." + key.removeprefix("model.")
        if key.endswith((".experts.up_proj", ".experts.down_proj")):
            prefix, proj = key.rsplit(".", 1)
            out.update({f"{prefix}.{j}.{proj}.weight": w.clone() for j, w in enumerate(value)})
        else:
            out[key] = value
    return out


def from_nemotron_h(config_dict: dict, state_dict: dict, **overrides) -> HybridLM:
    """HybridLM in fp32 and eval mode from a NemotronH config dict and a state dict in either layout
    (the module's or the checkpoint's), tensors in float16, bfloat16, float32 or float64. `overrides` set
    HybridConfig fields (see config_from_nemotron_h)."""
    cfg = config_from_nemotron_h(config_dict, **overrides)
    return build_model(cfg, _state_from_nemotron_h(state_dict), source=f"NemotronH weights ({_KEY_NOTE})").eval()


def to_nemotron_h(model: HybridLM) -> tuple[dict, dict]:
    """(config dict, state dict) for NemotronHForCausalLM, in the module's layout; fp32 copies."""
    state = {(k if k == "lm_head.weight" else "model." + k): v.detach().clone()
             for k, v in model.state_dict().items()}
    return config_to_nemotron_h(model.cfg), state


# ----------------------------------------------------------------------------------------------
# checkpoint directories (what save_pretrained writes and the Hub serves, read from local disk only)


def _read_shard(path: Path) -> dict:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as e:
        raise WeightsError(f"weights file {path} is truncated or corrupted ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        what = "nested too deeply" if isinstance(e, RecursionError) else _first_line(e)
        raise ConfigError(f"{path} is not readable JSON ({what})") from None


def load_nemotron_h_checkpoint(directory: str | Path, **overrides) -> HybridLM:
    """HybridLM (fp32, eval) from a local NemotronH checkpoint: config.json plus one or more safetensors
    shards (those named by model.safetensors.index.json when it exists, else every *.safetensors).
    `overrides` set HybridConfig fields (see config_from_nemotron_h)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsError(f"checkpoint directory not found: {directory}")
    if not (directory / "config.json").is_file():
        raise WeightsError(f"no config.json in {directory}")
    config_dict = _read_json(directory / "config.json")
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index)
        weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
        if not isinstance(weight_map, dict):
            raise WeightsError(f"{index} has no weight_map")
        if not all(isinstance(v, str) for v in weight_map.values()):
            raise WeightsError(f"{index}: every weight_map value must be a shard file name (a string)")
        names = sorted(set(weight_map.values()))
        for name in names:
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if len(parts) != 1 or parts[0] in (".", "..") or not name.strip():
                raise WeightsError(f"{index} names a shard outside the checkpoint folder ({name!r}); shard names "
                                   f"must be plain file names inside {directory}")
    else:
        names = sorted(p.name for p in directory.glob("*.safetensors"))
    if not names:
        raise WeightsError(f"no *.safetensors files in {directory}")
    state = {}
    for name in names:
        if not (directory / name).is_file():
            raise WeightsError(f"shard {name} named in {index.name} is missing from {directory}")
        shard = _read_shard(directory / name)
        twice = sorted(state.keys() & shard.keys())
        if twice:
            raise WeightsError(f"tensor {twice[0]} is stored in more than one shard (again in {name})")
        state.update(shard)
    return from_nemotron_h(config_dict, state, **overrides)


def save_nemotron_h_checkpoint(model: HybridLM, directory: str | Path, dtype: torch.dtype = torch.float32):
    """Write config.json and model.safetensors (each to a temp file, then renamed) into directory, in
    the checkpoint layout NVIDIA publishes and save_pretrained writes.

    e_score_correction_bias stays fp32 whatever `dtype` is, as in the reference: small differences between
    expert scores decide the routing. time_step_limit's inf is written as `Infinity`, as in NVIDIA's
    config.json files (transformers 4 and 5 both read it).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise WeightsError(f"cannot save a checkpoint into {directory}: it is not a folder")
    config_dict, state = to_nemotron_h(model)
    check_finite(state, "the model's weights")
    directory.mkdir(parents=True, exist_ok=True)
    others = sorted(p.name for p in directory.glob("*.safetensors") if p.name != "model.safetensors")
    others += [p.name for p in directory.glob("*.safetensors.index.json")]
    if others:
        raise WeightsError(f"{directory} already holds other weights ({others[0]}), which a loader would mix "
                           f"with these: save into an empty directory")
    config_dict["dtype"] = str(dtype).removeprefix("torch.")
    tensors = {k: v.to(torch.float32 if k.endswith("e_score_correction_bias") else dtype).contiguous()
               for k, v in _checkpoint_layout(state).items()}
    with atomic_output(directory / "model.safetensors", "weights") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_output(directory / "config.json", "config") as tmp:
        tmp.write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
