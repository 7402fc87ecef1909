"""One Mamba-2 head in the three forms of state space duality, from a trace's recorded detail (numpy only).

    head = HeadDetail.from_trace(trace, layer=0, head=1)   # x, B, C, Delta, decay, A, D; recorded y and h
    y, h = recurrence(head)        # 1. h_t = a_t h_(t-1) + Delta_t x_t B_t^T,  y_t = C_t h_t + D x_t
    M = ssd_matrix(head)           # 2. y = M x + D x,  M_ij = (C_i . B_j) L_ij Delta_j  (j <= i, 0 above)
    scan = chunked_scan(head, 8)   # 3. the four steps of the chunked scan (SSD), chunks of 8 tokens

a_t = exp(A Delta_t) is the recorded decay (`mamba_decay`), so the decay mask L_ij = a_(j+1) ... a_i is
built from the trace's own numbers. This is toy_model.kernels.ssd's `ssd_recurrent_ref` and `ssd_scan_ref`
for one head, written again in numpy because scenes never import torch (STYLE: model -> trace -> scenes);
tests check the two against each other. Everything is float64, so the differences the scene shows between
the forms are the float32 rounding of the recorded inputs, not of this arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toy_model.trace_file import Trace

DETAIL_HINT = "record one with python -m toy_model trace --detail mamba:LAYER:HEAD"


def detail_heads(trace: Trace) -> list[tuple[int, int]]:
    """The (layer, head) pairs a trace records in full (its mamba_detail group), in order."""
    if not trace.has("mamba_detail"):
        return []
    return [(int(layer), int(head)) for layer, head in trace.arrays["mamba_detail_heads"]]


@dataclass(frozen=True)
class HeadDetail:
    """A recorded Mamba-2 head, the first T tokens: everything the three forms need (float64)."""

    layer: int
    head: int
    x: np.ndarray  # (T, P) the head's input, after the causal conv and SiLU
    B: np.ndarray  # (T, N) how each token is written into the state
    C: np.ndarray  # (T, N) how the state is read out
    delta: np.ndarray  # (T,) Delta_t, the step size
    decay: np.ndarray  # (T,) a_t = exp(A Delta_t), as recorded
    A: float  # the head's A = -exp(A_log) < 0
    D: float  # the skip: y += D x
    y: np.ndarray  # (T, P) the model's output y_t, as recorded
    state: np.ndarray  # (T, P, N) the model's state h_t after each token, as recorded

    @classmethod
    def from_trace(cls, trace: Trace, layer: int, head: int, n_tokens: int | None = None) -> HeadDetail:
        """The recorded head (layer, head), cut to its first n_tokens; an assert if it is not recorded (the
        scene checks with detail_heads first and says so in one line)."""
        pairs = detail_heads(trace)
        assert (layer, head) in pairs, f"(layer {layer}, head {head}) is not recorded: {pairs}"
        k = pairs.index((layer, head))
        slot = trace.layer_slot(layer)
        a = trace.arrays
        T = trace.n_tokens if n_tokens is None else min(n_tokens, trace.n_tokens)
        f = lambda name: np.asarray(a[name][k][:T], dtype=np.float64)
        return cls(layer, head, x=f("mamba_detail_x"), B=f("mamba_detail_B"), C=f("mamba_detail_C"),
                   delta=np.asarray(a["mamba_delta"][slot, :T, head], np.float64),
                   decay=np.asarray(a["mamba_decay"][slot, :T, head], np.float64),
                   A=float(a["mamba_detail_A"][k]), D=float(a["mamba_detail_D"][k]),
                   y=f("mamba_detail_y"), state=f("mamba_detail_state"))

    @property
    def n_tokens(self) -> int:
        return int(self.x.shape[0])

    @property
    def head_dim(self) -> int:  # P
        return int(self.x.shape[1])

    @property
    def state_size(self) -> int:  # N
        return int(self.B.shape[1])

    @property
    def log_decay(self) -> np.ndarray:
        """log a_t = A Delta_t (T,), from the recorded decay; a decay of 0 becomes a very negative number."""
        return np.log(np.clip(self.decay, 1e-300, 1.0))

    def written(self, t: int) -> np.ndarray:
        """What token t writes into the state: Delta_t x_t B_t^T (P, N)."""
        return self.delta[t] * np.outer(self.x[t], self.B[t])

    def decayed(self, t: int) -> np.ndarray:
        """The recorded state before token t, times a_t: what the state keeps of the past (P, N)."""
        return self.decay[t] * self.state[t - 1] if t > 0 else np.zeros_like(self.state[0])


# ------------------------------------------------------------------------------------------------
# 1. the recurrence


def recurrence(head: HeadDetail) -> tuple[np.ndarray, np.ndarray]:
    """(y (T, P), h (T, P, N)): h_t = a_t h_(t-1) + Delta_t x_t B_t^T, y_t = C_t h_t + D x_t, token by token."""
    T, P, N = head.n_tokens, head.head_dim, head.state_size
    h = np.zeros((P, N))
    ys, hs = np.zeros((T, P)), np.zeros((T, P, N))
    for t in range(T):
        h = head.decay[t] * h + head.written(t)
        hs[t] = h
        ys[t] = h @ head.C[t] + head.D * head.x[t]
    return ys, hs


# ------------------------------------------------------------------------------------------------
# 2. the matrix


def segsum(a: np.ndarray) -> np.ndarray:
    """out[..., i, j] = a[..., j+1] + ... + a[..., i] for j <= i (0 on the diagonal), -inf above: a cumsum
    over a masked repeat (toy_model.kernels.ssd.segsum), so no large sums are subtracted."""
    T = a.shape[-1]
    rep = np.repeat(a[..., :, None], T, axis=-1)  # (..., T, T): rep[..., i, j] = a_i
    rep = np.where(np.tril(np.ones((T, T), bool), -1), rep, 0.0)
    out = np.cumsum(rep, axis=-2)
    return np.where(np.tril(np.ones((T, T), bool)), out, -np.inf)


def decay_mask(log_decay: np.ndarray) -> np.ndarray:
    """L (T, T): L_ij = a_(j+1) ... a_i = exp(A (Delta_(j+1) + ... + Delta_i)) for j <= i, 0 above. How much
    of what token j wrote is left when token i reads: 1 on the diagonal, shrinking away from it."""
    return np.exp(segsum(log_decay))


def scores(head: HeadDetail) -> np.ndarray:
    """C B^T (T, T): (C_i . B_j), the 'query . key' of every pair of tokens."""
    return head.C @ head.B.T


def ssd_matrix(head: HeadDetail) -> np.ndarray:
    """M (T, T) with y = M x + D x: M_ij = (C_i . B_j) L_ij Delta_j for j <= i, 0 above."""
    return scores(head) * decay_mask(head.log_decay) * head.delta[None, :]


def matrix_output(head: HeadDetail) -> np.ndarray:
    """y = M x + D x (T, P): all tokens at once, the same M for every one of the P channels."""
    return ssd_matrix(head) @ head.x + head.D * head.x


# ------------------------------------------------------------------------------------------------
# 3. the chunked scan


@dataclass(frozen=True)
class ChunkedScan:
    """The chunked scan's pieces for chunks of Q tokens (c chunks, the last one maybe shorter)."""

    chunk_size: int  # Q
    y: np.ndarray  # (T, P) y_diag + y_off + D x
    y_diag: np.ndarray  # (T, P) 1. inside each chunk: the diagonal blocks of M
    own_states: np.ndarray  # (c, P, N) 2. each chunk's end state from its own tokens alone
    chunk_decay: np.ndarray  # (c,) a over a whole chunk: the product of its tokens' decays
    entering: np.ndarray  # (c, P, N) 3. the state entering each chunk (passed on chunk to chunk)
    final: np.ndarray  # (P, N) the state after the last chunk
    y_off: np.ndarray  # (T, P) 4. from the state entering the chunk: the off-diagonal blocks of M

    @property
    def n_chunks(self) -> int:
        return int(self.own_states.shape[0])

    def bounds(self, c: int, n_tokens: int) -> tuple[int, int]:
        """Token range [start, end) of chunk c."""
        return c * self.chunk_size, min((c + 1) * self.chunk_size, n_tokens)


def chunked_scan(head: HeadDetail, chunk_size: int) -> ChunkedScan:
    """ssd_scan_ref's four steps for one head (toy_model.kernels.ssd), in numpy."""
    assert chunk_size >= 1, chunk_size
    T, P, N, Q = head.n_tokens, head.head_dim, head.state_size, chunk_size
    c = -(-T // Q)
    pad = c * Q - T  # zeros at the end change nothing before them
    xd = np.pad(head.x * head.delta[:, None], ((0, pad), (0, 0))).reshape(c, Q, P)  # Delta_t x_t
    Bc = np.pad(head.B, ((0, pad), (0, 0))).reshape(c, Q, N)
    Cc = np.pad(head.C, ((0, pad), (0, 0))).reshape(c, Q, N)
    a = np.pad(head.log_decay, (0, pad)).reshape(c, Q)  # log a_t
    a_cum = np.cumsum(a, axis=-1)  # (c, Q): log of the decay from the chunk's start to token l

    # 1. intra-chunk outputs: a causal, decaying "attention" C_i . B_j inside each chunk
    L = np.exp(segsum(a))  # (c, Q, Q)
    y_diag = np.einsum("cln,csn,cls,csp->clp", Cc, Bc, L, xd)

    # 2. chunk states: each chunk's end state from its own inputs
    to_end = np.exp(a_cum[:, -1:] - a_cum)  # (c, Q)
    own = np.einsum("cln,cl,clp->cpn", Bc, to_end, xd)  # (c, P, N)

    # 3. inter-chunk recurrence: pass states across chunk boundaries (the only sequential step)
    chunk_decay = np.exp(a_cum[:, -1])  # (c,)
    entering = np.zeros((c, P, N))
    h = np.zeros((P, N))
    for k in range(c):
        entering[k] = h
        h = chunk_decay[k] * h + own[k]

    # 4. state -> output: what each chunk's entering state contributes inside the chunk
    y_off = np.einsum("cln,cpn,cl->clp", Cc, entering, np.exp(a_cum))

    y_diag, y_off = y_diag.reshape(c * Q, P)[:T], y_off.reshape(c * Q, P)[:T]
    return ChunkedScan(Q, y_diag + y_off + head.D * head.x, y_diag, own, chunk_decay, entering, h, y_off)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0
