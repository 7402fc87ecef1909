"""HybridConfig: every size of the hybrid Mamba-2 / LatentMoE / attention model in one dataclass.

Field names follow the Nemotron-H reference (transformers' NemotronHConfig) where one exists, and
each field carries the paper's symbol. The default is a toy: small enough to train on two CPU cores
in minutes, shaped like the real thing (latent ratio d/l = 4, 16 experts with top-4, GQA, several
Mamba-2 heads and groups).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

# One character per layer, as in the reference's `hybrid_override_pattern`.
LAYER_KINDS = {"M": "mamba", "E": "moe", "*": "attention", "-": "mlp"}


class ConfigError(ValueError):
    """A configuration a user wrote that cannot build a model (said in one line by the CLI)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


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
    time_step_min: float = 1e-3  # Delta is clamped below at this (reference clamps at time_step_min)
    time_step_max: float = 0.1  # upper end of the dt_bias initialisation range

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

    # ---- derived in __post_init__ (not constructor arguments)
    n_layers: int = dataclasses.field(init=False)
    d_inner: int = dataclasses.field(init=False)  # H * P
    conv_dim: int = dataclasses.field(init=False)  # channels through conv1d: x, B, C
    in_proj_size: int = dataclasses.field(init=False)  # z, x, B, C, dt
    expert_in_size: int = dataclasses.field(init=False)  # l, or d for a plain MoE

    def __post_init__(self):
        bad = sorted(set(self.pattern) - set(LAYER_KINDS))
        _check(len(self.pattern) > 0, "pattern is empty: give at least one layer character (M, E, *, -)")
        _check(not bad, f"unknown pattern character(s) {''.join(bad)!r} in pattern {self.pattern!r}; "
               f"allowed: M (Mamba-2), E (MoE), * (attention), - (MLP)")
        for name in ("vocab_size", "d_model", "max_seq_len", "mamba_n_heads", "mamba_head_dim", "ssm_state_size",
                     "n_groups", "conv_kernel", "chunk_size", "n_routed_experts", "num_experts_per_tok",
                     "moe_intermediate_size", "moe_shared_expert_intermediate_size", "intermediate_size",
                     "num_attention_heads", "num_key_value_heads", "head_dim"):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) > 0,
                   f"{name} must be a positive integer, got {getattr(self, name)!r}")
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
            _check(isinstance(self.moe_latent_size, int) and 0 < self.moe_latent_size <= self.d_model,
                   f"moe_latent_size ({self.moe_latent_size}) must be in 1..d_model ({self.d_model})")
        _check(self.kernels in ("auto", "torch", "triton"),
               f"kernels must be 'auto', 'torch' or 'triton', got {self.kernels!r}")
        _check(0 < self.time_step_min < self.time_step_max, "need 0 < time_step_min < time_step_max")

        self.n_layers = len(self.pattern)
        self.d_inner = self.mamba_n_heads * self.mamba_head_dim
        self.conv_dim = self.d_inner + 2 * self.n_groups * self.ssm_state_size
        self.in_proj_size = self.d_inner + self.conv_dim + self.mamba_n_heads  # order: z, x, B, C, dt
        self.expert_in_size = self.moe_latent_size if self.moe_latent_size is not None else self.d_model

    # ---- serialisation (JSON, never pickle)
    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, d: dict) -> HybridConfig:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(d) - known)
        _check(not unknown, f"unknown config field(s): {', '.join(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> HybridConfig:
        return cls.from_dict(json.loads(s))

    def layer_kind(self, i: int) -> str:
        return LAYER_KINDS[self.pattern[i]]
