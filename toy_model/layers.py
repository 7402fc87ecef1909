"""The mixers of the hybrid stack, one per pattern character, with the reference's parameter names.

    M  Mamba2Mixer   selective state space (SSD), a fixed-size state per layer
    E  MoE           sigmoid router, k of N squared-ReLU experts (in a latent space for LatentMoE),
                     plus an always-on shared expert
    *  Attention     causal grouped-query attention, no positional encoding, KV cache
    -  MLP           dense squared-ReLU MLP

Every mixer maps (B, T, d) -> (B, T, d) as forward(x, cache=None, capture=None); the residual and pre-norm
live in model.Block. `cache` is the layer's typed cache (toy_model.cache) during generation; `capture`, when
given, receives tensors the forward computes anyway (toy_model.capture), and nothing else changes.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from toy_model.cache import KVCache, MambaCache
from toy_model.capture import LayerCapture
from toy_model.config import HybridConfig
from toy_model.kernels import moe_experts, ssd_scan
from toy_model.kernels.moe import relu2
from toy_model.kernels.ssd import ssd_step
from toy_model.kinds import KINDS


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight.float() * xf).to(x.dtype)


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * SiLU(z)), normalised separately over each group of d_inner / G channels."""

    def __init__(self, d: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.group_size = group_size
        self.eps = eps

    def forward(self, y, z):
        dtype = y.dtype
        y = y.float() * F.silu(z.float())
        yg = y.view(*y.shape[:-1], -1, self.group_size)  # (..., G, d_inner / G)
        yg = yg * torch.rsqrt(yg.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * yg.view(y.shape).to(dtype)


# ----------------------------------------------------------------------------------------------
# M: Mamba-2


class Mamba2Mixer(nn.Module):
    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg
        H, G, N = cfg.mamba_n_heads, cfg.n_groups, cfg.ssm_state_size
        self.in_proj = nn.Linear(cfg.d_model, cfg.in_proj_size, bias=False)  # order: z, x, B, C, dt
        # Causal depthwise conv over (x, B, C); we pad on the left ourselves so decode can reuse it.
        self.conv1d = nn.Conv1d(cfg.conv_dim, cfg.conv_dim, cfg.conv_kernel, groups=cfg.conv_dim, bias=True)
        self.dt_bias = nn.Parameter(torch.empty(H))
        self.A_log = nn.Parameter(torch.empty(H))
        self.D = nn.Parameter(torch.ones(H))
        self.norm = GatedRMSNorm(cfg.d_inner, cfg.d_inner // G, eps=cfg.norm_eps)
        self.out_proj = nn.Linear(cfg.d_inner, cfg.d_model, bias=False)
        self.dt_limit = cfg.time_step_limit  # (low, high) on Delta, in prefill and decode alike
        self.reset_ssm_parameters()
        self.head_shape = (H, cfg.mamba_head_dim)
        self.group_shape = (G, N)

    @torch.no_grad()
    def reset_ssm_parameters(self):
        cfg = self.cfg
        H = cfg.mamba_n_heads
        # A in [1, 16] per head: a spread of memory lengths from the start (Mamba-2's default).
        self.A_log.copy_(torch.log(torch.empty(H).uniform_(1.0, 16.0)))
        # dt_bias = softplus^-1(Delta) for Delta log-uniform in [time_step_min, time_step_max].
        dt = torch.exp(torch.empty(H).uniform_(math.log(cfg.time_step_min), math.log(cfg.time_step_max)))
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.D.fill_(1.0)

    def forward(self, u, cache: MambaCache | None = None, capture: LayerCapture | None = None):
        cfg = self.cfg
        b, T, _ = u.shape
        H, P = self.head_shape
        G, N = self.group_shape
        z, xBC, dt = self.in_proj(u).split([cfg.d_inner, cfg.conv_dim, H], dim=-1)

        # causal conv1d over time; the cache holds the last (kernel - 1) inputs
        xBC = xBC.transpose(1, 2)  # (b, conv_dim, T)
        k = cfg.conv_kernel
        past = cache.conv if cache is not None else None
        if past is None:
            past = xBC.new_zeros(b, cfg.conv_dim, k - 1)
        xBC_padded = torch.cat([past.to(xBC.dtype), xBC], dim=-1)  # (b, conv_dim, k - 1 + T)
        if cache is not None:
            cache.conv = xBC_padded[:, :, -(k - 1):].detach()
        xBC = F.silu(F.conv1d(xBC_padded, self.conv1d.weight, self.conv1d.bias, groups=cfg.conv_dim))
        x, B, C = xBC.transpose(1, 2).split([cfg.d_inner, G * N, G * N], dim=-1)
        x = x.reshape(b, T, H, P)
        B = B.reshape(b, T, G, N)
        C = C.reshape(b, T, G, N)

        A = -torch.exp(self.A_log.float())  # (H,)
        state = cache.ssm if cache is not None else None
        chunk_states = None
        if cache is not None and T == 1 and state is not None:
            y, new_state = ssd_step(state, x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0], self.D, self.dt_bias,
                                    self.dt_limit)
            y = y[:, None]
        else:
            out = ssd_scan(x, dt, A, B, C, cfg.chunk_size, D=self.D, dt_bias=self.dt_bias, initial_states=state,
                           return_final_states=True, dt_limit=self.dt_limit, kernels=cfg.kernels,
                           return_chunk_states=capture is not None)
            y, new_state = out[0], out[1]
            chunk_states = out[2] if capture is not None else None  # (b, c, H, P, N): entering each chunk
        if capture is not None:
            capture.put(x=x, dt=dt, A=A, B=B, C=C, y=y, initial_state=state, chunk_states=chunk_states,
                        final_state=new_state)
        if cache is not None:
            cache.ssm = new_state.detach()
        y = self.norm(y.reshape(b, T, cfg.d_inner), z)  # gate, then RMSNorm per group
        return self.out_proj(y.to(u.dtype))


# ----------------------------------------------------------------------------------------------
# E: MoE and LatentMoE


class Router(nn.Module):
    """Sigmoid router in fp32; top-k on scores + correction bias, gates from the unbiased scores."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.d_model))
        # A buffer, not a parameter: moved by the sign rule in update_bias(), never by gradient.
        self.register_buffer("e_score_correction_bias", torch.zeros(cfg.n_routed_experts))
        self.register_buffer("load", torch.zeros(cfg.n_routed_experts), persistent=False)
        self.top_k = cfg.num_experts_per_tok
        self.scale = cfg.routed_scaling_factor

    def forward(self, x):  # x (T, d)
        scores = torch.sigmoid(F.linear(x.float(), self.weight.float()))  # (T, E)
        topk_ids = torch.topk(scores.detach() + self.e_score_correction_bias, self.top_k, dim=-1).indices
        w = scores.gather(1, topk_ids)  # (T, k)
        w = w / (w.sum(-1, keepdim=True) + 1e-20) * self.scale
        if self.training:
            self.load += torch.bincount(topk_ids.flatten(), minlength=self.load.numel()).float()
        return scores, topk_ids, w

    @torch.no_grad()
    def update_bias(self, rate: float):
        """Sign rule (DeepSeek-V3): raise the bias of under-loaded experts, lower the over-loaded."""
        if self.load.sum() > 0:
            self.e_score_correction_bias += rate * torch.sign(self.load.mean() - self.load)
        self.load.zero_()


class Experts(nn.Module):
    """The routed experts' weights as two 3-D tensors, as in the reference."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        E, m, l = cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.expert_in_size
        self.up_proj = nn.Parameter(torch.empty(E, m, l))
        self.down_proj = nn.Parameter(torch.empty(E, l, m))


class MLP(nn.Module):
    def __init__(self, d: int, width: int):
        super().__init__()
        self.up_proj = nn.Linear(d, width, bias=False)
        self.down_proj = nn.Linear(width, d, bias=False)

    def forward(self, x):
        return self.down_proj(relu2(self.up_proj(x)))


class MoE(nn.Module):
    """LatentMoE when cfg.moe_latent_size is set (Nemotron 3 Super), otherwise a plain MoE (Nano)."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = Router(cfg)
        self.experts = Experts(cfg)
        self.shared_experts = MLP(cfg.d_model, cfg.moe_shared_expert_intermediate_size)
        self.latent = cfg.moe_latent_size is not None
        if self.latent:
            self.fc1_latent_proj = nn.Linear(cfg.d_model, cfg.moe_latent_size, bias=False)  # d -> l
            self.fc2_latent_proj = nn.Linear(cfg.moe_latent_size, cfg.d_model, bias=False)  # l -> d

    def forward(self, x, cache=None, capture: LayerCapture | None = None):
        shape = x.shape
        x = x.reshape(-1, shape[-1])  # (T, d)
        scores, topk_ids, topk_weights = self.gate(x)
        z = self.fc1_latent_proj(x) if self.latent else x  # (T, l)
        routed = moe_experts(z, topk_ids, topk_weights, self.experts.up_proj, self.experts.down_proj,
                             kernels=self.cfg.kernels).to(x.dtype)
        if self.latent:
            routed = self.fc2_latent_proj(routed)  # (T, d)
        shared = self.shared_experts(x)
        if capture is not None:
            capture.put(scores=scores, topk_ids=topk_ids, topk_weights=topk_weights, latent=z, routed=routed,
                        shared=shared, correction_bias=self.gate.e_score_correction_bias)  # rows (b * T, ...)
        return (routed + shared).view(shape)


class DenseMLP(MLP):
    """'-' layer: one squared-ReLU MLP on the full width."""

    def __init__(self, cfg: HybridConfig):
        super().__init__(cfg.d_model, cfg.intermediate_size)

    def forward(self, x, cache=None, capture=None):
        return super().forward(x)


# ----------------------------------------------------------------------------------------------
# *: attention


class Attention(nn.Module):
    """Causal grouped-query attention. No positional encoding: order reaches it through Mamba-2."""

    def __init__(self, cfg: HybridConfig):
        super().__init__()
        self.n_q, self.n_kv, self.hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, self.n_q * self.hd, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, self.n_kv * self.hd, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, self.n_kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.n_q * self.hd, cfg.d_model, bias=False)

    def forward(self, x, cache: KVCache | None = None, capture: LayerCapture | None = None):
        b, T, _ = x.shape
        q = self.q_proj(x).view(b, T, self.n_q, self.hd).transpose(1, 2)  # (b, n_q, T, hd)
        k = self.k_proj(x).view(b, T, self.n_kv, self.hd).transpose(1, 2)  # (b, n_kv, T, hd)
        v = self.v_proj(x).view(b, T, self.n_kv, self.hd).transpose(1, 2)
        if cache is not None:
            if cache.k is not None:
                k = torch.cat([cache.k, k], dim=2)
                v = torch.cat([cache.v, v], dim=2)
            cache.k, cache.v = k.detach(), v.detach()
        S = k.shape[2]  # keys: the T new tokens after S - T cached ones
        # query i (absolute position S - T + i) sees keys 0 .. S - T + i
        mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)
        if capture is not None:
            capture.put(q=q, k=k, scale=self.hd**-0.5)  # the weights follow from these (toy_model.trace)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        y = y.transpose(1, 2).reshape(b, T, self.n_q * self.hd)
        return self.o_proj(y)


MIXERS = {kind.name: globals()[kind.mixer] for kind in KINDS}  # layer kind name -> its mixer class
