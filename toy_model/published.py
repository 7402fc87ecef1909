"""Published configurations of the real models, each value with its source, and the arithmetic scenes and
notebooks show at scale (KV cache against Mamba-2 state, LatentMoE's savings).

Nothing here is measured or estimated by us: every number is a value from a published configuration, or is
computed from such values by the functions below, which say their formula. Sources:

    MEGATRON   Megatron-LM examples/post_training/modelopt/conf/nvidia/NVIDIA-Nemotron-3-*-BF16.sh
    NEMOTRON3  the Nemotron 3 white paper, arXiv 2512.20856
    NEMOTRONH  the Nemotron-H paper, arXiv 2504.03624

torch-free: scenes import it.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = {
    "MEGATRON": "Megatron-LM examples/post_training/modelopt/conf/nvidia/NVIDIA-Nemotron-3-*-BF16.sh",
    "NEMOTRON3": "Nemotron 3 white paper, arXiv 2512.20856",
    "NEMOTRONH": "Nemotron-H paper, arXiv 2504.03624",
}


@dataclass(frozen=True)
class Published:
    """One published model. Layer counts by kind come from its pattern where the pattern is published."""

    name: str
    source: str  # a key of SOURCES
    n_mamba: int  # Mamba-2 layers (M)
    n_moe: int  # MoE layers (E)
    n_attention: int  # attention layers (*)
    n_mlp: int  # dense MLP layers (-)
    d_model: int | None = None
    n_q_heads: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    mamba_heads: int | None = None
    mamba_head_dim: int | None = None
    ssm_state: int | None = None  # N
    n_groups: int | None = None  # G
    conv_kernel: int | None = None
    chunk_size: int | None = None
    n_experts: int | None = None
    top_k: int | None = None
    expert_width: int | None = None  # one routed expert's intermediate width
    shared_width: int | None = None
    latent: int | None = None  # l; None = plain MoE
    routed_scaling: float | None = None
    params_total: str | None = None  # as the name publishes it ("30B")
    params_active: str | None = None
    pattern: str | None = None  # the published hybrid pattern, where our sources give it

    @property
    def n_layers(self) -> int:
        return self.n_mamba + self.n_moe + self.n_attention + self.n_mlp


NANO = Published(
    "Nemotron 3 Nano 30B-A3B", "MEGATRON", n_mamba=23, n_moe=23, n_attention=6, n_mlp=0,
    d_model=2688, n_q_heads=32, n_kv_heads=2, head_dim=128, mamba_heads=64, mamba_head_dim=64, ssm_state=128,
    n_groups=8, conv_kernel=4, chunk_size=128, n_experts=128, top_k=6, expert_width=1856, shared_width=3712,
    latent=None, routed_scaling=2.5, params_total="30B", params_active="3B",
    pattern="MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME")
SUPER = Published(
    "Nemotron 3 Super 120B-A12B", "MEGATRON", n_mamba=40, n_moe=40, n_attention=8, n_mlp=0,
    d_model=4096, n_q_heads=32, n_kv_heads=2, head_dim=128, mamba_heads=128, mamba_head_dim=64, ssm_state=128,
    n_groups=8, conv_kernel=4, chunk_size=128, n_experts=512, top_k=22, expert_width=2688, shared_width=5376,
    latent=1024, routed_scaling=5.0, params_total="120B", params_active="12B")
ULTRA = Published(
    "Nemotron 3 Ultra 550B-A55B", "NEMOTRON3", n_mamba=48, n_moe=48, n_attention=12, n_mlp=0,
    d_model=8192, n_q_heads=64, n_kv_heads=2, head_dim=128, mamba_heads=256, mamba_head_dim=64, ssm_state=128,
    n_groups=8, conv_kernel=4, chunk_size=128, n_experts=512, top_k=22, expert_width=5120, shared_width=10240,
    latent=2048, routed_scaling=5.0, params_total="550B", params_active="55B")
NEMOTRON_H_8B = Published("Nemotron-H 8B", "NEMOTRONH", n_mamba=24, n_moe=0, n_attention=4, n_mlp=24,
                          params_total="8B")
NEMOTRON_H_56B = Published("Nemotron-H 56B", "NEMOTRONH", n_mamba=54, n_moe=0, n_attention=10, n_mlp=54,
                           params_total="56B")
MODELS = (NEMOTRON_H_8B, NEMOTRON_H_56B, NANO, SUPER, ULTRA)


# ------------------------------------------------------------------------------------------------
# memory while generating


def kv_bytes_per_token(n_attention: int, n_kv_heads: int, head_dim: int, bytes_per_value: int = 2) -> int:
    """KV cache per token: attention layers x 2 (K and V) x KV heads x head dim x bytes (bf16: 2)."""
    return n_attention * 2 * n_kv_heads * head_dim * bytes_per_value


def mamba_state_bytes(n_mamba: int, heads: int, head_dim: int, state: int, bytes_per_value: int = 4) -> int:
    """The SSM state, the same at any length: Mamba-2 layers x heads x head dim x N x bytes (fp32: 4)."""
    return n_mamba * heads * head_dim * state * bytes_per_value


def conv_state_bytes(n_mamba: int, heads: int, head_dim: int, groups: int, state: int, kernel: int,
                     bytes_per_value: int = 2) -> int:
    """The conv window: Mamba-2 layers x (d_inner + 2 G N) channels x (kernel - 1) inputs x bytes."""
    return n_mamba * (heads * head_dim + 2 * groups * state) * (kernel - 1) * bytes_per_value


def generation_memory(m: Published, n_tokens: int, all_attention: bool = False) -> dict[str, int]:
    """Bytes of what generation keeps after n_tokens for model m: {'kv': ..., 'state': ...}. all_attention:
    the same number of layers, every Mamba-2 layer replaced by attention (the 'same-size transformer')."""
    n_attn = m.n_attention + (m.n_mamba if all_attention else 0)
    kv = kv_bytes_per_token(n_attn, m.n_kv_heads, m.head_dim) * n_tokens
    if all_attention:
        return {"kv": kv, "state": 0}
    state = mamba_state_bytes(m.n_mamba, m.mamba_heads, m.mamba_head_dim, m.ssm_state)
    state += conv_state_bytes(m.n_mamba, m.mamba_heads, m.mamba_head_dim, m.n_groups, m.ssm_state, m.conv_kernel)
    return {"kv": kv, "state": state}


# ------------------------------------------------------------------------------------------------
# LatentMoE


def routed_expert_params(width_in: int, expert_width: int) -> int:
    """One squared-ReLU expert: up (m x in) and down (in x m) projections."""
    return 2 * width_in * expert_width


def latent_savings(m: Published) -> dict[str, float]:
    """What the latent projection buys for model m: alpha = d / l; one routed expert's weights and one token's
    all-to-all traffic (the vector sent to each chosen expert) shrink by alpha."""
    assert m.latent, f"{m.name} has no latent projection"
    alpha = m.d_model / m.latent
    return {"alpha": alpha,
            "expert_params_full": routed_expert_params(m.d_model, m.expert_width),
            "expert_params_latent": routed_expert_params(m.latent, m.expert_width),
            "traffic_full": m.top_k * m.d_model, "traffic_latent": m.top_k * m.latent}
