"""SSD (Mamba-2 state space duality): the chunked scan and its references.

Shapes (the interface of mamba_ssm's `mamba_chunk_scan_combined`):
    x (b, l, h, p)   dt (b, l, h) raw, before dt_bias and softplus   A (h,) negative
    B, C (b, l, g, n), g groups of h // g heads sharing B and C     D (h,)   dt_bias (h,)
    initial_states / final states (b, h, p, n), fp32

The recurrence every function here computes, per head, with Delta = softplus(dt + dt_bias) limited to
dt_limit (mamba_ssm's argument; (0, inf) limits nothing):
    s_t = exp(A Delta_t) s_{t-1} + Delta_t B_t x_t^T        y_t = C_t s_t + D x_t

- `ssd_scan_ref`: the paper's chunked algorithm in four steps, pure PyTorch (the model's reference
  path, differentiable by autograd).
- `ssd_recurrent_ref`: the per-timestep loop above; slow and obviously right (tests, traces).
- `ssd_step`: one decode step on a cached state.
- `ssd_scan_triton`: the same chunked scan as four Triton kernels (chunk cumsum, chunk state, state
  passing, chunk scan with C.B^T fused), same arguments and results as `ssd_scan_ref`. Its autograd
  Function `SSDScan` runs the forward on the kernels; the backward recomputes `ssd_scan_ref` under
  enable_grad and differentiates it (no Triton backward kernels yet).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


def discretize(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_limit=(0.0, float("inf"))) -> torch.Tensor:
    """Delta = softplus(dt + dt_bias), clamped to dt_limit, in fp32."""
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    return F.softplus(dt).clamp(min=dt_limit[0], max=dt_limit[1])


def segsum(a: torch.Tensor) -> torch.Tensor:
    """Stable segment sum: out[..., i, j] = a[..., j+1] + ... + a[..., i] for j <= i, -inf above.

    Built from a cumsum over a masked repeat instead of cumsum[i] - cumsum[j], which would lose
    precision when both sums are large.
    """
    T = a.size(-1)
    a = a[..., None].expand(*a.shape, T)  # (..., T, T): a[..., i, j] = a_i
    strictly_lower = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=-1)
    a = a.masked_fill(~strictly_lower, 0.0)
    out = torch.cumsum(a, dim=-2)
    lower = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=0)
    return out.masked_fill(~lower, float("-inf"))


def ssd_scan_ref(x, dt, A, B, C, chunk_size, D=None, dt_bias=None, initial_states=None,
                 return_final_states=False, dt_limit=(0.0, float("inf")), return_chunk_states=False):
    """Chunked SSD scan in pure PyTorch. Returns y (b, l, h, p) in fp32 [, final_states (b, h, p, n)]; with
    return_chunk_states, (y, final_states, the state entering each chunk (b, c, h, p, n)), as computed in step 3."""
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    assert h % g == 0, f"groups ({g}) must divide heads ({h})"
    Q = chunk_size
    delta = discretize(dt, dt_bias, dt_limit)  # (b, l, h)

    # The recurrence on (x * Delta, A * Delta) with unit steps is the same scan (the paper's convention).
    xd = x.float() * delta[..., None]  # (b, l, h, p)
    a = A.float()[None, None, :] * delta  # (b, l, h), <= 0
    Bh = B.float().repeat_interleave(h // g, dim=2)  # (b, l, h, n)
    Ch = C.float().repeat_interleave(h // g, dim=2)  # (b, l, h, n)

    pad = (Q - l % Q) % Q  # zero padding at the end changes nothing before it
    if pad:
        xd, a, Bh, Ch = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (xd, a, Bh, Ch))
    c = (l + pad) // Q
    xd = xd.view(b, c, Q, h, p)
    Bh = Bh.view(b, c, Q, h, n)
    Ch = Ch.view(b, c, Q, h, n)
    a = a.view(b, c, Q, h).permute(0, 3, 1, 2)  # (b, h, c, Q)
    a_cum = torch.cumsum(a, dim=-1)  # (b, h, c, Q)

    # 1. intra-chunk outputs: a causal, decaying "attention" C_i . B_j inside each chunk
    L = torch.exp(segsum(a))  # (b, h, c, Q, Q)
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Ch, Bh, L, xd)

    # 2. chunk states: each chunk's end state from its own inputs
    decay_to_end = torch.exp(a_cum[..., -1:] - a_cum)  # (b, h, c, Q)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bh, decay_to_end, xd)  # (b, c, h, p, n)

    # 3. inter-chunk recurrence: pass states across chunk boundaries (the only sequential step)
    if initial_states is None:
        initial_states = torch.zeros(b, h, p, n, device=x.device, dtype=torch.float32)
    states = torch.cat([initial_states.float()[:, None], states], dim=1)  # (b, c+1, h, p, n)
    decay_chunk = torch.exp(segsum(F.pad(a_cum[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    prev_states, final_states = states[:, :-1], states[:, -1]  # (b, c, h, p, n), (b, h, p, n)

    # 4. state -> output: what each chunk's start state contributes inside the chunk
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Ch, prev_states, torch.exp(a_cum))

    y = (y_diag + y_off).reshape(b, c * Q, h, p)[:, :l]
    if D is not None:
        y = y + D.float()[:, None] * x.float()
    return _outputs(y, final_states, prev_states, return_final_states, return_chunk_states)


def ssd_recurrent_ref(x, dt, A, B, C, D=None, dt_bias=None, initial_states=None,
                      dt_limit=(0.0, float("inf")), return_all_states=False):
    """Per-timestep recurrence.

    Returns y (b, l, h, p), final state (b, h, p, n)[, all states (b, l, h, p, n)].
    """
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    delta = discretize(dt, dt_bias, dt_limit)  # (b, l, h)
    Bh = B.float().repeat_interleave(h // g, dim=2)
    Ch = C.float().repeat_interleave(h // g, dim=2)
    s = torch.zeros(b, h, p, n, device=x.device) if initial_states is None else initial_states.float()
    ys, all_states = [], []
    for t in range(l):
        decay = torch.exp(A.float() * delta[:, t])  # (b, h)
        dBx = (delta[:, t, :, None] * x[:, t].float())[..., None] * Bh[:, t, :, None, :]  # (b, h, p, n)
        s = decay[:, :, None, None] * s + dBx
        y = torch.einsum("bhpn,bhn->bhp", s, Ch[:, t])
        if D is not None:
            y = y + D.float()[:, None] * x[:, t].float()
        ys.append(y)
        if return_all_states:
            all_states.append(s)
    y = torch.stack(ys, dim=1) if ys else x.new_zeros(b, 0, h, p, dtype=torch.float32)
    if return_all_states:
        return y, s, torch.stack(all_states, dim=1)
    return y, s


def ssd_step(state, x, dt, A, B, C, D=None, dt_bias=None, dt_limit=(0.0, float("inf"))):
    """One decode step. state (b, h, p, n) fp32, x (b, h, p), dt (b, h), B and C (b, g, n).

    Returns y (b, h, p) fp32 and the new state.
    """
    h, g = x.shape[1], B.shape[1]
    delta = discretize(dt, dt_bias, dt_limit)  # (b, h)
    Bh = B.float().repeat_interleave(h // g, dim=1)  # (b, h, n)
    Ch = C.float().repeat_interleave(h // g, dim=1)
    decay = torch.exp(A.float() * delta)  # (b, h)
    state = decay[..., None, None] * state + (delta[..., None] * x.float())[..., None] * Bh[:, :, None, :]
    y = torch.einsum("bhpn,bhn->bhp", state, Ch)
    if D is not None:
        y = y + D.float()[:, None] * x.float()
    return y, state


# ----------------------------------------------------------------------------------------------
# Triton kernels: the chunked scan as mamba_ssm splits it, C.B^T fused into the chunk scan.
# 1. chunk cumsum   Delta and the cumulative sum of A Delta in each chunk         grid (b, c, h blocks)
# 2. chunk state    each chunk's end state from its own inputs                   grid (b*c, h, p x n blocks)
# 3. state passing  the state entering every chunk, sequential over chunks       grid (b, h, p*n blocks)
# 4. chunk scan     y = (C.B^T decay Delta, causal) x + exp(cum) C s_prev + D x  grid (b*c, h, m x p blocks)
# Delta, the cumsums and the states are fp32; the dots run in the inputs' dtype (fp32 dots as IEEE fp32).
# Every exponent is clamped to <= 0 and every masked product is zeroed with where before it is used,
# so a masked-out entry can never turn into inf * 0 = NaN.


@triton.jit
def _ssd_chunk_cumsum_kernel(
    dt_ptr, A_ptr, dt_bias_ptr, delta_ptr, dA_cum_ptr,
    seqlen, nheads, chunk_size, dt_min, dt_max,
    stride_dt_b, stride_dt_l, stride_dt_h,
    stride_cum_b, stride_cum_h, stride_cum_c, stride_cum_q,
    HAS_DT_BIAS: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_H: tl.constexpr,
):
    pid_b, pid_c, pid_h = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_q = tl.arange(0, BLOCK_Q)
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    t = pid_c * chunk_size + offs_q
    mask_q = (offs_q < chunk_size) & (t < seqlen)
    mask_h = offs_h < nheads
    mask = mask_q[:, None] & mask_h[None, :]

    dt = tl.load(dt_ptr + pid_b * stride_dt_b + t[:, None] * stride_dt_l + offs_h[None, :] * stride_dt_h,
                 mask=mask, other=0.0).to(tl.float32)  # (Q, H)
    if HAS_DT_BIAS:
        dt += tl.load(dt_bias_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)[None, :]
    # softplus with torch's threshold (x > 20 -> x); log1p(u) as log(w) * u / (w - 1), exact in fp32
    u = tl.exp(tl.minimum(dt, 20.0))
    w = 1.0 + u
    log1p_u = tl.where(w == 1.0, u, tl.log(w) * (u / tl.where(w == 1.0, 1.0, w - 1.0)))
    delta = tl.where(dt > 20.0, dt, log1p_u)
    delta = tl.minimum(tl.maximum(delta, dt_min), dt_max)
    delta = tl.where(mask, delta, 0.0)  # steps past the end neither decay nor write the state
    A = tl.load(A_ptr + offs_h, mask=mask_h, other=0.0).to(tl.float32)
    dA_cum = tl.cumsum(delta * A[None, :], axis=0)

    out = (pid_b * stride_cum_b + pid_c * stride_cum_c + offs_h[None, :] * stride_cum_h
           + offs_q[:, None] * stride_cum_q)
    store_mask = (offs_q < chunk_size)[:, None] & mask_h[None, :]
    tl.store(delta_ptr + out, delta, mask=store_mask)
    tl.store(dA_cum_ptr + out, dA_cum, mask=store_mask)


@triton.jit
def _ssd_chunk_state_kernel(
    x_ptr, B_ptr, delta_ptr, dA_cum_ptr, states_ptr,
    seqlen, nchunks, chunk_size, headdim, dstate, heads_per_group,
    stride_x_b, stride_x_l, stride_x_h, stride_x_p,
    stride_B_b, stride_B_l, stride_B_g, stride_B_n,
    stride_cum_b, stride_cum_h, stride_cum_c, stride_cum_q,
    stride_st_b, stride_st_c, stride_st_h, stride_st_p, stride_st_n,
    PRECISION: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_bc, pid_h, pid_pn = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    pid_b, pid_c = pid_bc // nchunks, pid_bc % nchunks
    n_blocks_n = tl.cdiv(dstate, BLOCK_N)
    pid_p, pid_n = pid_pn // n_blocks_n, pid_pn % n_blocks_n
    dot_dtype = x_ptr.dtype.element_ty

    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    x_base = x_ptr + pid_b * stride_x_b + pid_h * stride_x_h
    B_base = B_ptr + pid_b * stride_B_b + (pid_h // heads_per_group) * stride_B_g
    cum_base = pid_b * stride_cum_b + pid_h * stride_cum_h + pid_c * stride_cum_c
    dA_cum_last = tl.load(dA_cum_ptr + cum_base + (chunk_size - 1) * stride_cum_q)

    acc = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, chunk_size, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        t = pid_c * chunk_size + offs_k
        mask_k = (offs_k < chunk_size) & (t < seqlen)
        x = tl.load(x_base + t[None, :] * stride_x_l + offs_p[:, None] * stride_x_p,
                    mask=mask_k[None, :] & (offs_p[:, None] < headdim), other=0.0)  # (P, K)
        B = tl.load(B_base + t[:, None] * stride_B_l + offs_n[None, :] * stride_B_n,
                    mask=mask_k[:, None] & (offs_n[None, :] < dstate), other=0.0)  # (K, N)
        dA_cum = tl.load(dA_cum_ptr + cum_base + offs_k * stride_cum_q, mask=mask_k, other=0.0)
        delta = tl.load(delta_ptr + cum_base + offs_k * stride_cum_q, mask=mask_k, other=0.0)
        # decay from each step to the chunk's end, times Delta
        scale = tl.where(mask_k, tl.exp(tl.minimum(dA_cum_last - dA_cum, 0.0)) * delta, 0.0)
        x = (x.to(tl.float32) * scale[None, :]).to(dot_dtype)
        acc += tl.dot(x, B.to(dot_dtype), input_precision=PRECISION)

    st = (states_ptr + pid_b * stride_st_b + pid_c * stride_st_c + pid_h * stride_st_h
          + offs_p[:, None] * stride_st_p + offs_n[None, :] * stride_st_n)
    tl.store(st, acc, mask=(offs_p[:, None] < headdim) & (offs_n[None, :] < dstate))


@triton.jit
def _ssd_state_passing_kernel(
    states_ptr, dA_cum_ptr, init_ptr, final_ptr,
    nchunks, chunk_size, dim,
    stride_st_b, stride_st_c, stride_st_h,
    stride_cum_b, stride_cum_h, stride_cum_c, stride_cum_q,
    stride_init_b, stride_init_h,
    HAS_INIT: tl.constexpr, BLOCK: tl.constexpr,
):
    # In place: chunk c's own end state is read, then overwritten with the state entering chunk c.
    # The (p, n) dims of states, init and final are flattened to `dim` contiguous values.
    pid_b, pid_h, pid_d = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs = pid_d * BLOCK + tl.arange(0, BLOCK)
    mask = offs < dim
    if HAS_INIT:
        s = tl.load(init_ptr + pid_b * stride_init_b + pid_h * stride_init_h + offs, mask=mask, other=0.0)
    else:
        s = tl.zeros((BLOCK,), dtype=tl.float32)
    st_base = states_ptr + pid_b * stride_st_b + pid_h * stride_st_h + offs
    cum_last = dA_cum_ptr + pid_b * stride_cum_b + pid_h * stride_cum_h + (chunk_size - 1) * stride_cum_q
    for c in range(nchunks):
        own = tl.load(st_base + c * stride_st_c, mask=mask, other=0.0)
        tl.store(st_base + c * stride_st_c, s, mask=mask)
        decay = tl.exp(tl.minimum(tl.load(cum_last + c * stride_cum_c), 0.0))
        s = decay * s + own
    tl.store(final_ptr + pid_b * stride_init_b + pid_h * stride_init_h + offs, s, mask=mask)


@triton.jit
def _ssd_chunk_scan_kernel(
    x_ptr, B_ptr, C_ptr, D_ptr, delta_ptr, dA_cum_ptr, prev_states_ptr, y_ptr,
    seqlen, nchunks, chunk_size, headdim, dstate, heads_per_group,
    stride_x_b, stride_x_l, stride_x_h, stride_x_p,
    stride_B_b, stride_B_l, stride_B_g, stride_B_n,
    stride_C_b, stride_C_l, stride_C_g, stride_C_n,
    stride_cum_b, stride_cum_h, stride_cum_c, stride_cum_q,
    stride_st_b, stride_st_c, stride_st_h, stride_st_p, stride_st_n,
    stride_y_b, stride_y_l, stride_y_h, stride_y_p,
    HAS_D: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_bc, pid_h, pid_mp = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    pid_b, pid_c = pid_bc // nchunks, pid_bc % nchunks
    n_blocks_p = tl.cdiv(headdim, BLOCK_P)
    pid_m, pid_p = pid_mp // n_blocks_p, pid_mp % n_blocks_p
    dot_dtype = x_ptr.dtype.element_ty
    group = pid_h // heads_per_group

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # positions inside the chunk
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)  # the whole state dimension in one tile
    t_m = pid_c * chunk_size + offs_m
    mask_m = (offs_m < chunk_size) & (t_m < seqlen)
    mask_p = offs_p < headdim
    mask_n = offs_n < dstate
    x_base = x_ptr + pid_b * stride_x_b + pid_h * stride_x_h
    cum_base = pid_b * stride_cum_b + pid_h * stride_cum_h + pid_c * stride_cum_c
    dA_cum_m = tl.load(dA_cum_ptr + cum_base + offs_m * stride_cum_q, mask=mask_m, other=0.0)

    C = tl.load(C_ptr + pid_b * stride_C_b + group * stride_C_g + t_m[:, None] * stride_C_l
                + offs_n[None, :] * stride_C_n, mask=mask_m[:, None] & mask_n[None, :], other=0.0)  # (M, N)
    C = C.to(dot_dtype)

    # 4. state -> output: exp(cum_m) C_m s_prev
    s_prev = tl.load(prev_states_ptr + pid_b * stride_st_b + pid_c * stride_st_c + pid_h * stride_st_h
                     + offs_n[:, None] * stride_st_n + offs_p[None, :] * stride_st_p,
                     mask=mask_n[:, None] & mask_p[None, :], other=0.0)  # (N, P) fp32
    acc = tl.dot(C, s_prev.to(dot_dtype), input_precision=PRECISION)
    acc = acc * tl.where(mask_m, tl.exp(tl.minimum(dA_cum_m, 0.0)), 0.0)[:, None]

    # 1. intra-chunk: sum over k <= m of (C_m . B_k) exp(cum_m - cum_k) Delta_k x_k
    B_base = B_ptr + pid_b * stride_B_b + group * stride_B_g
    k_end = tl.minimum((pid_m + 1) * BLOCK_M, chunk_size)  # causal: later positions never contribute
    for k0 in range(0, k_end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        t_k = pid_c * chunk_size + offs_k
        mask_k = (offs_k < chunk_size) & (t_k < seqlen)
        B = tl.load(B_base + t_k[None, :] * stride_B_l + offs_n[:, None] * stride_B_n,
                    mask=mask_n[:, None] & mask_k[None, :], other=0.0)  # (N, K)
        cb = tl.dot(C, B.to(dot_dtype), input_precision=PRECISION)  # (M, K)
        dA_cum_k = tl.load(dA_cum_ptr + cum_base + offs_k * stride_cum_q, mask=mask_k, other=0.0)
        delta_k = tl.load(delta_ptr + cum_base + offs_k * stride_cum_q, mask=mask_k, other=0.0)
        decay = tl.exp(tl.minimum(dA_cum_m[:, None] - dA_cum_k[None, :], 0.0))
        keep = (offs_m[:, None] >= offs_k[None, :]) & mask_k[None, :]
        w = tl.where(keep, cb * decay * delta_k[None, :], 0.0)
        x = tl.load(x_base + t_k[:, None] * stride_x_l + offs_p[None, :] * stride_x_p,
                    mask=mask_k[:, None] & mask_p[None, :], other=0.0)  # (K, P)
        acc += tl.dot(w.to(dot_dtype), x.to(dot_dtype), input_precision=PRECISION)

    x_m = tl.load(x_base + t_m[:, None] * stride_x_l + offs_p[None, :] * stride_x_p,
                  mask=mask_m[:, None] & mask_p[None, :], other=0.0).to(tl.float32)
    if HAS_D:
        acc += tl.load(D_ptr + pid_h).to(tl.float32) * x_m
    tl.store(y_ptr + pid_b * stride_y_b + pid_h * stride_y_h + t_m[:, None] * stride_y_l
             + offs_p[None, :] * stride_y_p, acc, mask=mask_m[:, None] & mask_p[None, :])


def _ssd_blocks(chunk_size: int, headdim: int, dstate: int, device: torch.device) -> dict:
    """Fixed tile sizes (tl.dot needs every dim >= 16; the interpreter wants few, small programs)."""
    q = max(16, triton.next_power_of_2(chunk_size))
    p = max(16, triton.next_power_of_2(headdim))
    n = max(16, triton.next_power_of_2(dstate))
    if device.type != "cuda":
        return dict(Q=q, M=q, K=q, P=p, N_STATE=n, N_SCAN=n, H=16, PASS=1024, warps={})
    return dict(Q=q, M=min(q, 64), K=min(q, 64), P=min(p, 64), N_STATE=min(n, 64), N_SCAN=n, H=16, PASS=1024,
                warps=dict(num_warps=4, num_stages=2))


def _ssd_scan_fwd(x, dt, A, B, C, chunk_size, D, dt_bias, initial_states, dt_limit):
    """Launch the four kernels. Returns y (b, l, h, p), the final states (b, h, p, n) and the states entering
    each chunk (b, c, h, p, n), all fp32."""
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    Q = chunk_size
    c = triton.cdiv(l, Q)
    dev = x.device
    blk = _ssd_blocks(Q, p, n, dev)
    precision = "ieee" if x.dtype == torch.float32 else "tf32"  # tf32 only names the default for 16-bit dots

    delta = torch.empty(b, h, c, Q, device=dev, dtype=torch.float32)
    dA_cum = torch.empty_like(delta)
    states = torch.empty(b, c, h, p, n, device=dev, dtype=torch.float32)
    final = torch.empty(b, h, p, n, device=dev, dtype=torch.float32)
    y = torch.empty(b, l, h, p, device=dev, dtype=torch.float32)
    init = initial_states.float().contiguous() if initial_states is not None else final  # dummy when absent
    dt_bias_arg = dt_bias if dt_bias is not None else A  # dummy pointer, never read
    D_arg = D if D is not None else A

    # 1. chunk cumsum
    _ssd_chunk_cumsum_kernel[(b, c, triton.cdiv(h, blk["H"]))](
        dt, A, dt_bias_arg, delta, dA_cum,
        l, h, Q, float(dt_limit[0]), float(dt_limit[1]),
        *dt.stride(), *dA_cum.stride(),
        HAS_DT_BIAS=dt_bias is not None, BLOCK_Q=blk["Q"], BLOCK_H=blk["H"])
    # 2. chunk states
    grid = (b * c, h, triton.cdiv(p, blk["P"]) * triton.cdiv(n, blk["N_STATE"]))
    _ssd_chunk_state_kernel[grid](
        x, B, delta, dA_cum, states,
        l, c, Q, p, n, h // g,
        *x.stride(), *B.stride(), *dA_cum.stride(), *states.stride(),
        PRECISION=precision, BLOCK_P=blk["P"], BLOCK_N=blk["N_STATE"], BLOCK_K=blk["K"], **blk["warps"])
    # 3. state passing (turns `states` into the state entering each chunk)
    _ssd_state_passing_kernel[(b, h, triton.cdiv(p * n, blk["PASS"]))](
        states, dA_cum, init, final,
        c, Q, p * n,
        states.stride(0), states.stride(1), states.stride(2), *dA_cum.stride(),
        init.stride(0), init.stride(1),
        HAS_INIT=initial_states is not None, BLOCK=blk["PASS"])
    # 4. chunk scan
    grid = (b * c, h, triton.cdiv(Q, blk["M"]) * triton.cdiv(p, blk["P"]))
    _ssd_chunk_scan_kernel[grid](
        x, B, C, D_arg, delta, dA_cum, states, y,
        l, c, Q, p, n, h // g,
        *x.stride(), *B.stride(), *C.stride(), *dA_cum.stride(), *states.stride(), *y.stride(),
        HAS_D=D is not None, PRECISION=precision,
        BLOCK_M=blk["M"], BLOCK_P=blk["P"], BLOCK_N=blk["N_SCAN"], BLOCK_K=blk["K"], **blk["warps"])
    return y, final, states


class SSDScan(torch.autograd.Function):
    """Forward on the Triton kernels; backward recomputes the PyTorch reference and differentiates it."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, dt_bias, initial_states, chunk_size, dt_limit):
        ctx.save_for_backward(x, dt, A, B, C, D, dt_bias, initial_states)
        ctx.chunk_size, ctx.dt_limit = chunk_size, dt_limit
        ctx.set_materialize_grads(False)
        y, final, states = _ssd_scan_fwd(x, dt, A, B, C, chunk_size, D, dt_bias, initial_states, dt_limit)
        ctx.mark_non_differentiable(states)  # returned for inspection (toy_model.capture) only
        return y, final, states

    @staticmethod
    def backward(ctx, dy, dfinal, dstates):
        saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[:len(saved)]
        grads = [None] * len(saved)
        pairs = [(o, g) for o, g in zip((0, 1), (dy, dfinal), strict=True) if g is not None]
        if not pairs or not any(needs):
            return (*grads, None, None)
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(need) if t is not None else None
                      for t, need in zip(saved, needs, strict=True)]
            x, dt, A, B, C, D, dt_bias, init = leaves
            outs = ssd_scan_ref(x, dt, A, B, C, ctx.chunk_size, D=D, dt_bias=dt_bias, initial_states=init,
                                return_final_states=True, dt_limit=ctx.dt_limit)
            wrt = [i for i, t in enumerate(leaves) if t is not None and t.requires_grad]
            got = torch.autograd.grad([outs[o] for o, _ in pairs], [leaves[i] for i in wrt],
                                      [g for _, g in pairs], allow_unused=True)
        for i, gi in zip(wrt, got, strict=True):
            grads[i] = gi
        return (*grads, None, None)


def ssd_scan_triton(x, dt, A, B, C, chunk_size, D=None, dt_bias=None, initial_states=None,
                    return_final_states=False, dt_limit=(0.0, float("inf")), return_chunk_states=False):
    """`ssd_scan_ref` on the Triton kernels (same arguments, same results). y is fp32."""
    b, l, h, p = x.shape
    if (dt.shape != (b, l, h) or A.shape != (h,) or B.dim() != 4 or B.shape[:2] != (b, l)
            or C.shape != B.shape):
        raise ValueError(f"ssd_scan shapes do not fit: x {tuple(x.shape)}, dt {tuple(dt.shape)}, "
                         f"A {tuple(A.shape)}, B {tuple(B.shape)}, C {tuple(C.shape)}; "
                         "want (b,l,h,p), (b,l,h), (h,), (b,l,g,n) twice")
    g, n = B.shape[2], B.shape[3]
    if h % g:
        raise ValueError(f"groups ({g}) must divide heads ({h})")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if initial_states is not None and initial_states.shape != (b, h, p, n):
        raise ValueError(f"initial_states must be (b, h, p, n) = {(b, h, p, n)}, "
                         f"got {tuple(initial_states.shape)}")
    if l == 0:
        y = x.new_zeros(b, 0, h, p, dtype=torch.float32)
        final = (initial_states.float() if initial_states is not None
                 else x.new_zeros(b, h, p, n, dtype=torch.float32))
        states = x.new_zeros(b, 0, h, p, n, dtype=torch.float32)
    else:
        y, final, states = SSDScan.apply(x, dt, A, B, C, D, dt_bias, initial_states, chunk_size, tuple(dt_limit))
    return _outputs(y, final, states, return_final_states, return_chunk_states)


def _outputs(y, final, chunk_states, return_final_states, return_chunk_states):
    """y, or (y, final[, chunk_states]) as asked: the return convention of both scans."""
    if return_chunk_states:
        return y, final, chunk_states
    return (y, final) if return_final_states else y
