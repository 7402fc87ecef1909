"""Published configurations of the real models, each value with its source, and the arithmetic scenes and
notebooks show at scale (KV cache against Mamba-2 state, LatentMoE's savings).

Nothing here is measured or estimated by us: every number is a value from a published configuration, or is
computed from such values by the functions below, which say their formula. Sources:

    MEGATRON   Megatron-LM examples/post_training/modelopt/conf/nvidia/NVIDIA-Nemotron-3-*-BF16.sh
    NEMOTRON3  the Nemotron 3 white paper, arXiv 2512.20856
    NEMOTRONH  the Nemotron-H paper, arXiv 2504.03624
    BRIDGE     NVIDIA-NeMo/Megatron-Bridge src/megatron/bridge/models/nemotronh/nemotron_h_provider.py
    TOY        this repository's toy model: a trace's model_config (HybridConfig.to_dict())

torch-free: scenes import it.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = {
    "MEGATRON": "Megatron-LM examples/post_training/modelopt/conf/nvidia/NVIDIA-Nemotron-3-*-BF16.sh",
    "NEMOTRON3": "Nemotron 3 white paper, arXiv 2512.20856",
    "NEMOTRONH": "Nemotron-H paper, arXiv 2504.03624",
    "BRIDGE": "NVIDIA-NeMo/Megatron-Bridge src/megatron/bridge/models/nemotronh/nemotron_h_provider.py",
    "TOY": "this repository's toy model: a trace's model_config (HybridConfig.to_dict())",
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
    pattern_source: str | None = None  # a key of SOURCES for the pattern and the widths, where not `source`
    mlp_width: int | None = None  # a dense '-' layer's intermediate width (ffn_hidden_size)

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
    latent=1024, routed_scaling=5.0, params_total="120B", params_active="12B", pattern_source="BRIDGE",
    pattern="MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME")
ULTRA = Published(
    "Nemotron 3 Ultra 550B-A55B", "NEMOTRON3", n_mamba=48, n_moe=48, n_attention=12, n_mlp=0,
    d_model=8192, n_q_heads=64, n_kv_heads=2, head_dim=128, mamba_heads=256, mamba_head_dim=64, ssm_state=128,
    n_groups=8, conv_kernel=4, chunk_size=128, n_experts=512, top_k=22, expert_width=5120, shared_width=10240,
    latent=2048, routed_scaling=5.0, params_total="550B", params_active="55B")
NEMOTRON_H_8B = Published(
    "Nemotron-H 8B", "NEMOTRONH", n_mamba=24, n_moe=0, n_attention=4, n_mlp=24, params_total="8B",
    d_model=4096, n_q_heads=32, n_kv_heads=8, mamba_heads=128, mamba_head_dim=64, ssm_state=128, n_groups=8,
    mlp_width=21504, pattern="M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-", pattern_source="BRIDGE")
NEMOTRON_H_56B = Published(
    "Nemotron-H 56B", "NEMOTRONH", n_mamba=54, n_moe=0, n_attention=10, n_mlp=54, params_total="56B",
    d_model=8192, n_q_heads=64, n_kv_heads=8, mamba_heads=256, mamba_head_dim=64, ssm_state=256, n_groups=8,
    mlp_width=32768, pattern_source="BRIDGE",
    pattern="M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-"
            "M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-")
MODELS = (NEMOTRON_H_8B, NEMOTRON_H_56B, NANO, SUPER, ULTRA)
# The context length Nano, Super and Ultra publish ("1M-token context", NEMOTRON3), counted as 2^20 tokens:
# then KiB per token is GiB at full context.
CONTEXT_TOKENS = 2 ** 20


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


# ------------------------------------------------------------------------------------------------
# layer patterns, and the toy model beside the published ones


def kind_counts(m: Published) -> dict[str, int]:
    """The published layer counts of m by pattern character: {'M': ..., 'E': ..., '*': ..., '-': ...}."""
    return {"M": m.n_mamba, "E": m.n_moe, "*": m.n_attention, "-": m.n_mlp}


def pattern_counts(pattern: str) -> dict[str, int]:
    """Layers of each kind in a pattern string, by character (M, E, *, -)."""
    return {c: pattern.count(c) for c in "ME*-"}


def param_counts(cfg: dict) -> tuple[int, int]:
    """(total, active per token) parameters of a toy_model.HybridLM with config `cfg` (HybridConfig.to_dict()),
    counted from its shapes: embeddings and LM head (untied), an RMSNorm per block and a final one, and per
    layer kind its mixer's weights (toy_model.layers). Active leaves out the routed experts a token does not
    choose: (N - k) x 2 x l x m per MoE layer."""
    d, V = cfg["d_model"], cfg["vocab_size"]
    H, P, G, N = cfg["mamba_n_heads"], cfg["mamba_head_dim"], cfg["n_groups"], cfg["ssm_state_size"]
    d_inner = H * P
    conv_dim = d_inner + 2 * G * N
    E, k, m = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"]
    latent = cfg.get("moe_latent_size")
    l_in = latent if latent is not None else d
    expert = routed_expert_params(l_in, m)
    per_kind = {
        # in_proj (z, x, B, C, dt), conv1d weight and bias, dt_bias, A_log, D, gated norm, out_proj
        "M": d * (d_inner + conv_dim + H) + conv_dim * cfg["conv_kernel"] + conv_dim + 3 * H + d_inner
        + d_inner * d,
        # router, routed experts, shared expert, latent projections
        "E": E * d + E * expert + 2 * d * cfg["moe_shared_expert_intermediate_size"]
        + (2 * d * latent if latent is not None else 0),
        # q, k, v, o
        "*": 2 * d * (cfg["num_attention_heads"] + cfg["num_key_value_heads"]) * cfg["head_dim"],
        "-": 2 * d * cfg["intermediate_size"],
    }
    pattern = cfg["pattern"]
    total = 2 * V * d + d + sum(d + per_kind[c] for c in pattern)
    active = total - pattern.count("E") * (E - k) * expert
    return total, active


def short_count(n: int) -> str:
    """A parameter count as a name publishes one: 1.9M, 30B."""
    for unit, size in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


def from_config(cfg: dict, name: str = "toy model") -> Published:
    """The toy model (any toy_model config, HybridConfig.to_dict()) as a Published row, its counts from its
    pattern and its parameter counts from param_counts; source 'TOY'."""
    pattern = cfg["pattern"]
    counts = pattern_counts(pattern)
    total, active = param_counts(cfg)
    moe = counts["E"] > 0
    return Published(
        name, "TOY", n_mamba=counts["M"], n_moe=counts["E"], n_attention=counts["*"], n_mlp=counts["-"],
        d_model=cfg["d_model"], n_q_heads=cfg["num_attention_heads"], n_kv_heads=cfg["num_key_value_heads"],
        head_dim=cfg["head_dim"], mamba_heads=cfg["mamba_n_heads"], mamba_head_dim=cfg["mamba_head_dim"],
        ssm_state=cfg["ssm_state_size"], n_groups=cfg["n_groups"], conv_kernel=cfg["conv_kernel"],
        chunk_size=cfg["chunk_size"], n_experts=cfg["n_routed_experts"] if moe else None,
        top_k=cfg["num_experts_per_tok"] if moe else None, expert_width=cfg["moe_intermediate_size"] if moe else None,
        shared_width=cfg["moe_shared_expert_intermediate_size"] if moe else None,
        latent=cfg.get("moe_latent_size") if moe else None, routed_scaling=cfg["routed_scaling_factor"],
        params_total=short_count(total), params_active=short_count(active), pattern=pattern,
        mlp_width=cfg["intermediate_size"] if counts["-"] else None)
