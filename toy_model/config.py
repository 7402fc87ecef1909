"""HybridConfig: every size of the hybrid Mamba-2 / LatentMoE / attention model in one dataclass.

Field names follow the Nemotron-H reference (transformers' NemotronHConfig) where one exists, and
each field carries the paper's symbol. The default is a toy: small enough to train on two CPU cores
in minutes, shaped like the real thing (latent ratio d/l = 4, 16 experts with top-4, GQA, several
Mamba-2 heads and groups).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from toy_model.kinds import BY_CHAR, describe_chars

MAX_CHUNK_SIZE = 4096

# Integer fields that must be positive; booleans are refused although Python counts them as ints.
_POSITIVE_INTS = ("vocab_size", "d_model", "max_seq_len", "mamba_n_heads", "mamba_head_dim", "ssm_state_size",
                  "n_groups", "conv_kernel", "chunk_size", "n_routed_experts", "num_experts_per_tok",
                  "moe_intermediate_size", "moe_shared_expert_intermediate_size", "intermediate_size",
                  "num_attention_heads", "num_key_value_heads", "head_dim")
# Float fields: the values that make sense, (low, high, why); low is excluded unless it is 0 and the why says
# "0 switches it off".
_FLOAT_RANGES = {
    "norm_eps": (0.0, 1.0, "a small positive epsilon"),
    "time_step_min": (0.0, 1e3, "Delta's initialisation range"),
    "time_step_max": (0.0, 1e3, "Delta's initialisation range"),
    "routed_scaling_factor": (0.0, 1e3, "the gate weights' scale"),
    "router_bias_update_rate": (0.0, 1.0, "the sign rule's step; 0 switches it off"),
    "initializer_range": (0.0, 10.0, "a standard deviation"),
}


class ConfigError(ValueError):
    """A configuration a user wrote that cannot build a model (said in one line by the CLI)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _time_step_limit(value) -> tuple[float, float]:
    """(low, high) from a pair of numbers, None meaning no limit at that end (JSON null)."""
    _check(isinstance(value, (list, tuple)) and len(value) == 2,
           f"time_step_limit must be a pair (low, high), got {value!r}")
    low, high = value[0], math.inf if value[1] is None else value[1]
    _check(_is_number(low) and _is_number(high) and not math.isnan(low) and not math.isnan(high),
           f"time_step_limit must hold two numbers (null for no upper limit), got {value!r}")
    _check(0 <= low < high and math.isfinite(low),
           f"time_step_limit must satisfy 0 <= low < high (low finite), got {value!r}")
    return float(low), float(high)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


@dataclass
class HybridConfig:
    # ---- stack
    pattern: str = "MEM*E" * 3  # layer pattern: M Mamba-2, E MoE, * attention, - dense MLP
    vocab_size: int = 1024  # V, byte-level BPE (toy_model/tokenizer.py)
    d_model: int = 128  # d, residual stream width (reference: hidden_size)
    norm_eps: float = 1e-5  # RMSNorm epsilon (reference: layer_norm_epsilon)
    max_seq_len: int = 512  # longest context we train on and accept; nothing positional depends on it

    # ---- Mamba-2 mixer
    mamba_n_heads: int = 8  # H
    mamba_head_dim: int = 32  # P; d_inner = H * P
    ssm_state_size: int = 16  # N
    n_groups: int = 2  # G, groups of heads sharing B and C
    conv_kernel: int = 4  # width of the causal depthwise conv1d
    chunk_size: int = 32  # Q, SSD chunk length
    time_step_min: float = 1e-3  # lower end of the dt_bias initialisation range
    time_step_max: float = 0.1  # upper end of the dt_bias initialisation range
    # Delta is limited to [low, high] in every path (prefill, decode, kernels), as mamba_ssm's dt_limit and
    # NVIDIA's modeling code do; the default (0, inf) limits nothing. JSON writes an infinite end as null.
    time_step_limit: tuple[float, float] = (0.0, math.inf)

    # ---- MoE (E) and dense MLP (-)
    n_routed_experts: int = 16  # N_e
    num_experts_per_tok: int = 4  # k
    moe_latent_size: int | None = 32  # l, latent width; None = plain MoE on the full d
    moe_intermediate_size: int = 64  # m, width of one routed expert
    moe_shared_expert_intermediate_size: int = 256  # width of the always-on shared expert
    routed_scaling_factor: float = 2.5  # gate weights are scaled by this after normalising over k
    router_bias_update_rate: float = 1e-3  # gamma of the sign rule for e_score_correction_bias
    intermediate_size: int = 256  # width of a dense '-' MLP

    # ---- attention (*)
    num_attention_heads: int = 4  # n_q
    num_key_value_heads: int = 2  # n_kv, grouped-query attention
    head_dim: int = 32  # d_h

    # ---- which implementation runs the hot paths: "auto" (Triton on CUDA tensors), "torch", "triton"
    kernels: str = "auto"

    initializer_range: float = 0.02  # std of linear / embedding initialisation

    # ---- token ids a checkpoint's config states; metadata only (no computation reads them), kept so an
    # exported config says what its source said. Training fills bos and eos with the tokenizer's
    # <|endoftext|>, which starts prompts and ends answers; None = not stated.
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    # ---- derived in __post_init__ (not constructor arguments)
    n_layers: int = dataclasses.field(init=False)
    d_inner: int = dataclasses.field(init=False)  # H * P
    conv_dim: int = dataclasses.field(init=False)  # channels through conv1d: x, B, C
    in_proj_size: int = dataclasses.field(init=False)  # z, x, B, C, dt
    expert_in_size: int = dataclasses.field(init=False)  # l, or d for a plain MoE

    def __post_init__(self):
        _check(isinstance(self.pattern, str), f"pattern must be a string, got {self.pattern!r}")
        bad = sorted(set(self.pattern) - set(BY_CHAR))
        _check(len(self.pattern) > 0, "pattern is empty: give at least one layer character (M, E, *, -)")
        _check(not bad, f"unknown pattern character(s) {''.join(bad)!r} in pattern {self.pattern!r}; "
               f"allowed: {describe_chars()}")
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            _check(_is_int(value) and value > 0, f"{name} must be a positive integer, got {value!r}")
        for name, (low, high, why) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            off = "0 switches it off" in why
            _check(_is_number(value) and math.isfinite(value) and (low < value or off and value == 0) and value <= high,
                   f"{name} must be a number in {'[' if off else '('}{low:g}, {high:g}] ({why}), got {value!r}")
            setattr(self, name, float(value))
        _check(self.chunk_size <= MAX_CHUNK_SIZE,
               f"chunk_size must be at most {MAX_CHUNK_SIZE} (each chunk is a Q x Q matrix per head), "
               f"got {self.chunk_size}")
        _check(self.mamba_n_heads % self.n_groups == 0,
               f"n_groups ({self.n_groups}) must divide mamba_n_heads ({self.mamba_n_heads})")
        _check(self.num_attention_heads % self.num_key_value_heads == 0,
               f"num_key_value_heads ({self.num_key_value_heads}) must divide num_attention_heads "
               f"({self.num_attention_heads})")
        _check(self.num_experts_per_tok <= self.n_routed_experts,
               f"num_experts_per_tok ({self.num_experts_per_tok}) exceeds n_routed_experts "
               f"({self.n_routed_experts})")
        _check(self.n_routed_experts >= 2, "n_routed_experts must be at least 2 (the reference router needs 2)")
        if self.moe_latent_size is not None:
            _check(_is_int(self.moe_latent_size) and 0 < self.moe_latent_size <= self.d_model,
                   f"moe_latent_size ({self.moe_latent_size!r}) must be null or an integer in 1..d_model "
                   f"({self.d_model})")
        _check(isinstance(self.kernels, str) and self.kernels in ("auto", "torch", "triton"),
               f"kernels must be 'auto', 'torch' or 'triton', got {self.kernels!r}")
        _check(self.time_step_min < self.time_step_max,
               f"need time_step_min < time_step_max, got {self.time_step_min} and {self.time_step_max}")
        self.time_step_limit = _time_step_limit(self.time_step_limit)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            ids = value if isinstance(value, list) and name == "eos_token_id" else [value]
            _check(all(v is None or _is_int(v) and 0 <= v < self.vocab_size for v in ids) and ids != [],
                   f"{name} must be null or a token id in 0..{self.vocab_size - 1}"
                   f"{' (or a list of them)' if name == 'eos_token_id' else ''}, got {value!r}")

        self.n_layers = len(self.pattern)
        self.d_inner = self.mamba_n_heads * self.mamba_head_dim
        self.conv_dim = self.d_inner + 2 * self.n_groups * self.ssm_state_size
        self.in_proj_size = self.d_inner + self.conv_dim + self.mamba_n_heads  # order: z, x, B, C, dt
        self.expert_in_size = self.moe_latent_size if self.moe_latent_size is not None else self.d_model

    # ---- serialisation (JSON, never pickle)
    def to_dict(self) -> dict:
        """The constructor arguments, JSON-ready: an infinite end of time_step_limit becomes None (null)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        d["time_step_limit"] = [None if math.isinf(v) else v for v in self.time_step_limit]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HybridConfig:
        _check(isinstance(d, dict), f"a config must be a JSON object of HybridConfig fields, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(d) - known)
        _check(not unknown, f"unknown config field(s): {', '.join(map(str, unknown))}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, s: str) -> HybridConfig:
        try:
            d = json.loads(s, parse_constant=_no_constant)
        except (json.JSONDecodeError, RecursionError, ValueError) as e:
            raise ConfigError(f"the config is not valid JSON ({_first_line(e)})") from None
        return cls.from_dict(d)

    def layer_kind(self, i: int) -> str:
        """'mamba', 'moe', 'attention' or 'mlp' (toy_model.kinds) for layer i."""
        return BY_CHAR[self.pattern[i]].name
