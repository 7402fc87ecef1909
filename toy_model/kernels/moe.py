"""MoE experts: k routed squared-ReLU experts per token, weighted by their gates, summed.

Shapes:
    z (T, l)                    tokens in the expert input space (the latent for a LatentMoE)
    topk_ids (T, k) int64       the chosen experts          topk_weights (T, k) fp32 gate weights
    w_up (E, m, l)              experts.up_proj             w_down (E, l, m) experts.down_proj
    returns (T, l) in fp32:     sum_j w_j * down_j(relu(up_j z)^2)

- `moe_align`: sort the (token, slot) pairs by expert; per-expert offsets. The Triton path pads
  these segments to its block size in the indices only.
- `moe_experts_ref`: sort-by-expert dispatch, one dense matmul per expert segment (the model's
  reference path, differentiable by autograd).
- `moe_experts_loop`: per token, per chosen expert; slow and obviously right (tests).
- `moe_align_blocks`: `moe_align` padded to the GEMM block size in the indices (sentinel T*k), no host sync.
- `moe_experts_triton`: the same result from two grouped-GEMM Triton kernels (up with relu^2 fused, down
  with the gate weight applied), the k results per token summed without a per-expert loop. Its autograd
  Function `MoEExperts` runs the backward on Triton as well: the same grouped GEMM for dz and for dH (with
  the relu^2 derivative and the gate gradient fused), a per-expert reduction kernel for dW_up and dW_down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


def relu2(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x).square()


def moe_align(topk_ids: torch.Tensor, n_experts: int):
    """Sort the T*k (token, slot) pairs by expert.

    Returns sorted_pairs (T*k,) flat indices into topk_ids, stable within an expert, and
    offsets (E+1,) so that expert e owns sorted_pairs[offsets[e]:offsets[e+1]].
    """
    flat = topk_ids.reshape(-1)
    sorted_pairs = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=n_experts)
    offsets = F.pad(torch.cumsum(counts, 0), (1, 0))
    return sorted_pairs, offsets


def moe_experts_ref(z, topk_ids, topk_weights, w_up, w_down):
    T, k = topk_ids.shape
    E = w_up.shape[0]
    sorted_pairs, offsets = moe_align(topk_ids, E)
    tokens = sorted_pairs // k  # which token each sorted pair belongs to
    zs = z[tokens]  # (T*k, l), grouped by expert
    out_sorted = torch.empty(T * k, w_down.shape[1], device=z.device, dtype=torch.float32)
    bounds = offsets.tolist()
    for e in range(E):  # one dense GEMM pair per expert segment; empty segments are skipped
        lo, hi = bounds[e], bounds[e + 1]
        if hi > lo:
            out_sorted[lo:hi] = (relu2(zs[lo:hi] @ w_up[e].t()) @ w_down[e].t()).float()
    gates = topk_weights.reshape(-1)[sorted_pairs].float()[:, None]
    out = torch.zeros(T, w_down.shape[1], device=z.device, dtype=torch.float32)
    return out.index_add(0, tokens, out_sorted * gates)


def moe_experts_loop(z, topk_ids, topk_weights, w_up, w_down):
    T, k = topk_ids.shape
    out = torch.zeros(T, w_down.shape[1], dtype=torch.float32, device=z.device)
    for t in range(T):
        for j in range(k):
            e = int(topk_ids[t, j])
            out[t] += topk_weights[t, j].float() * (w_down[e].float() @ relu2(w_up[e].float() @ z[t].float()))
    return out


# ----------------------------------------------------------------------------------------------
# Triton kernels: block-aligned dispatch and two grouped GEMMs (vLLM fused_moe / ScatterMoE scheme).
# The (token, slot) pairs are sorted by expert and each expert's segment is padded to BLOCK_M in the
# index list only (sentinel = T*k); every M-block of the padded list then belongs to one expert.
#   up:    H[row]  = relu(z[token] W_up[e]^T)^2          rows gathered by token, H in padded order
#   down:  Y[pair] = gate[pair] * H[row] W_down[e]^T      scattered to (T*k, l), summed over k per token
# Backward (Triton as well): the same grouped GEMM gives dH and dz, a per-expert reduction kernel the
# weight gradients.
#   dA[row]   = gate * (G[token] W_down[e]) * 2 relu(a)   (relu(a) = sqrt(H)); dgate = <G[token] W_down[e], H>
#   dz[pair]  = dA[row] W_up[e]                             dW_down[e] = sum (gate G[token])^T H
#   dW_up[e]  = sum dA[row]^T z[token]


@triton.jit
def _moe_grouped_gemm_kernel(
    a_ptr, w_ptr, out_ptr, sorted_ids_ptr, block_expert_ptr, gate_ptr, h_ptr, dgate_ptr,
    N, K, num_pairs, top_k,
    stride_am, stride_ak, stride_we, stride_wn, stride_wk, stride_om, stride_on, stride_hm, stride_hn,
    A_BY_TOKEN: tl.constexpr, OUT_BY_PAIR: tl.constexpr, EPILOGUE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """out[row, n] = epilogue(sum_k a[row, k] W[e, n, k]) for the BLOCK_M rows of one expert's block.

    EPILOGUE: "none", "relu2" (up), "gate" (down: times the pair's gate weight), "relu2_grad" (backward
    of down and relu2: times gate * 2 sqrt(h), and the pair's partial dgate = sum_n acc * h).
    """
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    expert = tl.load(block_expert_ptr + pid_m)
    if expert < 0:  # past the last used block (the grid is sized by an upper bound, not a host sync)
        return
    dot_dtype = w_ptr.dtype.element_ty

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # rows of the padded list
    pair = tl.load(sorted_ids_ptr + offs_m)
    valid = pair < num_pairs  # padding rows carry the sentinel
    a_rows = (pair // top_k if A_BY_TOKEN else offs_m).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N

    a_base = a_ptr + a_rows[:, None] * stride_am
    w_base = w_ptr + expert.to(tl.int64) * stride_we + offs_n[None, :] * stride_wn
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        a = tl.load(a_base + offs_k[None, :] * stride_ak, mask=valid[:, None] & mask_k[None, :], other=0.0)
        w = tl.load(w_base + offs_k[:, None] * stride_wk, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc += tl.dot(a.to(dot_dtype), w.to(dot_dtype), input_precision=PRECISION)

    if EPILOGUE == "relu2":
        acc = tl.maximum(acc, 0.0)
        acc = acc * acc
    elif EPILOGUE == "gate":
        acc = acc * tl.load(gate_ptr + pair, mask=valid, other=0.0).to(tl.float32)[:, None]
    elif EPILOGUE == "relu2_grad":
        h = tl.load(h_ptr + offs_m[:, None].to(tl.int64) * stride_hm + offs_n[None, :] * stride_hn,
                    mask=valid[:, None] & mask_n[None, :], other=0.0).to(tl.float32)
        dgate = tl.sum(acc * h, axis=1)  # partial over this N block; the launcher sums the blocks
        tl.store(dgate_ptr + pid_n * num_pairs + pair, dgate, mask=valid)
        gate = tl.load(gate_ptr + pair, mask=valid, other=0.0).to(tl.float32)
        acc = acc * gate[:, None] * 2.0 * tl.sqrt(h)

    out_rows = (pair if OUT_BY_PAIR else offs_m).to(tl.int64)
    tl.store(out_ptr + out_rows[:, None] * stride_om + offs_n[None, :] * stride_on,
             acc.to(out_ptr.dtype.element_ty), mask=valid[:, None] & mask_n[None, :])


@triton.jit
def _moe_grouped_wgrad_kernel(
    x_ptr, y_ptr, out_ptr, sorted_ids_ptr, padded_offsets_ptr, gate_ptr,
    R, S, num_pairs, top_k,
    stride_xm, stride_xr, stride_ym, stride_ys, stride_oe, stride_or, stride_os,
    X_BY_TOKEN: tl.constexpr, Y_BY_TOKEN: tl.constexpr, X_GATED: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """out[e, r, s] = sum over expert e's rows of x[row, r] y[row, s] (a weight gradient).

    x and y rows are either the padded rows themselves or gathered by token; X_GATED scales x's rows
    by their pair's gate weight. An expert without tokens gets zeros.
    """
    expert, pid_rs = tl.program_id(0), tl.program_id(1)
    n_blocks_s = tl.cdiv(S, BLOCK_S)
    pid_r, pid_s = pid_rs // n_blocks_s, pid_rs % n_blocks_s
    dot_dtype = x_ptr.dtype.element_ty
    offs_r = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    mask_r, mask_s = offs_r < R, offs_s < S
    start = tl.load(padded_offsets_ptr + expert).to(tl.int32)
    end = tl.load(padded_offsets_ptr + expert + 1).to(tl.int32)

    acc = tl.zeros((BLOCK_R, BLOCK_S), dtype=tl.float32)
    for k0 in range(start, end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        in_seg = offs_k < end
        pair = tl.load(sorted_ids_ptr + offs_k, mask=in_seg, other=num_pairs)
        valid = pair < num_pairs
        x_rows = (pair // top_k if X_BY_TOKEN else offs_k).to(tl.int64)
        y_rows = (pair // top_k if Y_BY_TOKEN else offs_k).to(tl.int64)
        x = tl.load(x_ptr + x_rows[None, :] * stride_xm + offs_r[:, None] * stride_xr,
                    mask=valid[None, :] & mask_r[:, None], other=0.0)  # (R, K)
        if X_GATED:
            x = x.to(tl.float32) * tl.load(gate_ptr + pair, mask=valid, other=0.0).to(tl.float32)[None, :]
        y = tl.load(y_ptr + y_rows[:, None] * stride_ym + offs_s[None, :] * stride_ys,
                    mask=valid[:, None] & mask_s[None, :], other=0.0)  # (K, S)
        acc += tl.dot(x.to(dot_dtype), y.to(dot_dtype), input_precision=PRECISION)

    tl.store(out_ptr + expert * stride_oe + offs_r[:, None] * stride_or + offs_s[None, :] * stride_os,
             acc.to(out_ptr.dtype.element_ty), mask=mask_r[:, None] & mask_s[None, :])


def moe_align_blocks(topk_ids: torch.Tensor, n_experts: int, block_m: int):
    """`moe_align` padded for the grouped GEMMs, without a host sync.

    Returns sorted_ids (n_blocks * block_m,): pair indices, each expert's segment padded to a multiple of
    block_m with the sentinel T*k; block_expert (n_blocks,): the expert of each block, -1 for unused
    blocks (n_blocks is an upper bound); padded_offsets (E+1,): where each expert's padded segment starts.
    """
    num_pairs = topk_ids.numel()
    sorted_pairs, offsets = moe_align(topk_ids, n_experts)
    counts = offsets.diff()
    padded_offsets = F.pad(torch.cumsum(triton.cdiv(counts, block_m) * block_m, 0), (1, 0))
    n_blocks = triton.cdiv(num_pairs, block_m) + n_experts  # >= sum_e ceil(count_e / block_m)
    expert_sorted = topk_ids.reshape(-1)[sorted_pairs]  # (T*k,) non-decreasing
    rank = torch.arange(num_pairs, device=topk_ids.device) - offsets[expert_sorted]  # place inside the expert
    sorted_ids = torch.full((n_blocks * block_m,), num_pairs, device=topk_ids.device, dtype=torch.int64)
    sorted_ids[padded_offsets[expert_sorted] + rank] = sorted_pairs
    block_start = torch.arange(n_blocks, device=topk_ids.device) * block_m
    block_expert = torch.searchsorted(padded_offsets[1:], block_start, right=True)
    block_expert = torch.where(block_expert < n_experts, block_expert, -1)
    return sorted_ids, block_expert, padded_offsets


def _moe_blocks(num_pairs: int, n_experts: int, dtype: torch.dtype, device: torch.device) -> dict:
    """Fixed tile sizes; BLOCK_M follows the tokens per expert (decode-sized groups waste less padding)."""
    if device.type != "cuda":
        return dict(M=16, N=64, K=32, warps={})
    per_expert = num_pairs / n_experts
    bm = 16 if per_expert <= 16 else 32 if per_expert <= 64 else 64
    bk = 32 if dtype == torch.float32 else 64
    return dict(M=bm, N=64 if bm <= 32 else 128, K=bk, warps=dict(num_warps=4, num_stages=3))


def _grouped_gemm(a, w, out, align, blk, num_pairs, top_k, *, a_by_token, out_by_pair, epilogue, w_nk,
                  gate=None, h=None, dgate=None):
    """Launch _moe_grouped_gemm_kernel; w_nk = (stride of the N dim, stride of the K dim) inside w[e]."""
    sorted_ids, block_expert, _ = align
    N, K = out.shape[1], a.shape[1]
    dummy = out
    grid = (block_expert.numel(), triton.cdiv(N, blk["N"]))
    _moe_grouped_gemm_kernel[grid](
        a, w, out, sorted_ids, block_expert, gate if gate is not None else dummy,
        h if h is not None else dummy, dgate if dgate is not None else dummy,
        N, K, num_pairs, top_k,
        a.stride(0), a.stride(1), w.stride(0), w_nk[0], w_nk[1], out.stride(0), out.stride(1),
        h.stride(0) if h is not None else 0, h.stride(1) if h is not None else 0,
        A_BY_TOKEN=a_by_token, OUT_BY_PAIR=out_by_pair, EPILOGUE=epilogue,
        PRECISION="ieee" if w.dtype == torch.float32 else "tf32",
        BLOCK_M=blk["M"], BLOCK_N=blk["N"], BLOCK_K=blk["K"], **blk["warps"])
    return out


def _grouped_wgrad(x, y, out, align, blk, num_pairs, top_k, *, x_by_token, y_by_token, gate=None):
    """Launch _moe_grouped_wgrad_kernel: out (E, R, S) = per-expert sum of x[row]^T y[row]."""
    sorted_ids, _, padded_offsets = align
    E, R, S = out.shape
    tile = 32 if out.device.type != "cuda" else 64
    grid = (E, triton.cdiv(R, tile) * triton.cdiv(S, tile))
    _moe_grouped_wgrad_kernel[grid](
        x, y, out, sorted_ids, padded_offsets, gate if gate is not None else x,
        R, S, num_pairs, top_k,
        x.stride(0), x.stride(1), y.stride(0), y.stride(1), *out.stride(),
        X_BY_TOKEN=x_by_token, Y_BY_TOKEN=y_by_token, X_GATED=gate is not None,
        PRECISION="ieee" if x.dtype == torch.float32 else "tf32",
        BLOCK_R=tile, BLOCK_S=tile, BLOCK_K=blk["M"], **blk["warps"])
    return out


class MoEExperts(torch.autograd.Function):
    """Forward and backward on the grouped-GEMM Triton kernels."""

    @staticmethod
    def forward(ctx, z, topk_ids, topk_weights, w_up, w_down):
        T, k = topk_ids.shape
        E, m, l = w_up.shape
        num_pairs = T * k
        blk = _moe_blocks(num_pairs, E, z.dtype, z.device)
        align = moe_align_blocks(topk_ids, E, blk["M"])
        gate = topk_weights.reshape(-1).contiguous()  # (T*k,) in pair order
        hidden = torch.empty(align[0].numel(), m, device=z.device, dtype=z.dtype)  # padded rows
        _grouped_gemm(z, w_up, hidden, align, blk, num_pairs, k, a_by_token=True, out_by_pair=False,
                      epilogue="relu2", w_nk=(w_up.stride(1), w_up.stride(2)))
        out_pairs = torch.empty(num_pairs, l, device=z.device, dtype=torch.float32)
        _grouped_gemm(hidden, w_down, out_pairs, align, blk, num_pairs, k, a_by_token=False, out_by_pair=True,
                      epilogue="gate", w_nk=(w_down.stride(1), w_down.stride(2)), gate=gate)
        ctx.save_for_backward(z, gate, w_up, w_down, hidden, *align)
        ctx.blk, ctx.top_k, ctx.weights_dtype = blk, k, topk_weights.dtype
        return out_pairs.view(T, k, l).sum(1)  # combine the k experts of each token

    @staticmethod
    def backward(ctx, grad_out):
        z, gate, w_up, w_down, hidden, *align = ctx.saved_tensors
        blk, k = ctx.blk, ctx.top_k
        T, num_pairs = z.shape[0], gate.numel()
        E, m, l = w_up.shape
        need_z, _, need_gate, need_up, need_down = ctx.needs_input_grad
        g = grad_out.to(w_down.dtype).contiguous()  # (T, l)
        dz = dgate = dw_up = dw_down = None

        if need_down:
            dw_down = _grouped_wgrad(g, hidden, torch.empty_like(w_down), align, blk, num_pairs, k,
                                     x_by_token=True, y_by_token=False, gate=gate)
        if need_z or need_gate or need_up:
            d_pre = torch.empty(hidden.shape, device=z.device, dtype=hidden.dtype)  # dL/d(up output), padded
            dgate_parts = torch.empty(triton.cdiv(m, blk["N"]), num_pairs, device=z.device,
                                      dtype=torch.float32)  # one partial sum per N tile
            _grouped_gemm(g, w_down, d_pre, align, blk, num_pairs, k, a_by_token=True, out_by_pair=False,
                          epilogue="relu2_grad", w_nk=(w_down.stride(2), w_down.stride(1)),
                          gate=gate, h=hidden, dgate=dgate_parts)
            if need_gate:
                dgate = dgate_parts.sum(0).view(T, k).to(ctx.weights_dtype)
            if need_z:
                dz_pairs = torch.empty(num_pairs, l, device=z.device, dtype=torch.float32)
                _grouped_gemm(d_pre, w_up, dz_pairs, align, blk, num_pairs, k, a_by_token=False,
                              out_by_pair=True, epilogue="none", w_nk=(w_up.stride(2), w_up.stride(1)))
                dz = dz_pairs.view(T, k, l).sum(1).to(z.dtype)
            if need_up:
                dw_up = _grouped_wgrad(d_pre, z, torch.empty_like(w_up), align, blk, num_pairs, k,
                                       x_by_token=False, y_by_token=True)
        return dz, None, dgate, dw_up, dw_down


def moe_experts_triton(z, topk_ids, topk_weights, w_up, w_down):
    """`moe_experts_ref` on the Triton kernels (same arguments, same results). Returns (T, l) fp32."""
    T, k = topk_ids.shape
    E, m, l = w_up.shape
    if z.shape != (T, l) or w_down.shape != (E, l, m) or topk_weights.shape != (T, k):
        raise ValueError(f"moe_experts shapes do not fit: z {tuple(z.shape)}, "
                         f"topk_ids {tuple(topk_ids.shape)}, "
                         f"topk_weights {tuple(topk_weights.shape)}, w_up {tuple(w_up.shape)}, "
                         f"w_down {tuple(w_down.shape)}; want (T,l), (T,k), (T,k), (E,m,l), (E,l,m)")
    if not (z.dtype == w_up.dtype == w_down.dtype):
        raise ValueError(f"z, w_up and w_down must share a dtype, got {z.dtype}, {w_up.dtype}, "
                         f"{w_down.dtype}")
    if T * k == 0:
        return z.new_zeros(T, l, dtype=torch.float32)
    return MoEExperts.apply(z, topk_ids, topk_weights, w_up, w_down)
