"""The numbers the attention scene shows, read from a trace (numpy only: notebooks and tests use it without Manim).

    kv_head_of(4, 2)                   # [0, 0, 1, 1]: the key/value head each query head reads (GQA)
    view = AttentionView(trace)
    view.weights(layer, head)          # (T, T) causal softmax weights of one head
    view.top_keys(layer, t, head, 3)   # [(key, weight), ...]: where token t looks most
    view.repeated_pairs()              # [(a, b), ...]: positions holding the same token id
    view.similarity(layer, a, b)       # cosine of the residual vectors entering `layer` at a and b
    view.sharpest_look(min_back=8)     # the largest weight any head puts on one token at least 8 back
    view.cache()                       # per model call: tokens held, KV cache bytes, Mamba-2 state bytes

Every number comes from the trace: attention weights (`attn_weights`), the residual vectors entering chosen
layers (group `resid_detail`), the generation cache's sizes (group `cache`) and `model_config`. Nothing is
estimated here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toy_model.trace_file import Trace


def kv_head_of(n_q: int, n_kv: int) -> list[int]:
    """The key/value head each of n_q query heads reads in grouped-query attention: consecutive query heads
    share one, as torch's scaled_dot_product_attention(enable_gqa=True) repeats each KV head n_q / n_kv times
    (repeat_interleave), which is what toy_model.layers.Attention runs."""
    assert n_kv > 0 and n_q % n_kv == 0, f"{n_q} query heads cannot share {n_kv} key/value heads evenly"
    return [h // (n_q // n_kv) for h in range(n_q)]


def weight_level(w: np.ndarray) -> np.ndarray:
    """How brightly a weight in [0, 1] is drawn: its square root, so that weights spread thinly over many tokens
    (0.02 each over 50 tokens) still show against a few strong ones."""
    return np.sqrt(np.clip(np.asarray(w, np.float64), 0.0, 1.0))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors: 1 same direction, 0 unrelated, -1 opposite (0 if either is zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


@dataclass(frozen=True)
class Look:
    """One head's weight on one key for one query token."""

    layer: int
    head: int
    query: int
    key: int
    weight: float

    @property
    def back(self) -> int:
        return self.query - self.key


@dataclass(frozen=True)
class CacheSizes:
    """What generation keeps after each model call s (the prefill, then one decode step per token)."""

    tokens: np.ndarray  # (S,) tokens held
    kv_bytes: np.ndarray  # (S,) keys and values of every attention layer together
    state_bytes: np.ndarray  # (S,) conv window and SSM state of every Mamba-2 layer together
    kv_per_token: list[int]  # bytes per token of each attention layer (its cache over its token count)
    state_per_layer: list[int]  # bytes of each Mamba-2 layer's state (the same at every step)


class AttentionView:
    """The attention scene's numbers from one trace (see the module docstring)."""

    def __init__(self, trace: Trace):
        self.trace = trace
        cfg = trace.meta.get("model_config", {})
        self.n_q = int(trace.attn_weights.shape[2])
        self.n_kv = int(cfg.get("num_key_value_heads", self.n_q))
        self.head_dim = cfg.get("head_dim")
        self.d_model = cfg.get("d_model")
        self.attention_layers = trace.layers_of("attention")

    # ---- patterns
    def weights(self, layer: int, head: int) -> np.ndarray:
        """(T, T) weights of one head: row = query token, column = key token; zero above the diagonal."""
        return self.trace.attn_weights[self.trace.layer_slot(layer), :, head, :]

    def top_keys(self, layer: int, t: int, head: int, n: int = 3) -> list[tuple[int, float]]:
        """The n keys token t weighs most in one head, largest first (ties: the earlier token)."""
        row = self.trace.attention(layer, t)[head]
        order = np.argsort(-row, kind="stable")[:n]
        return [(int(k), float(row[k])) for k in order]

    def sharpest_row(self, layer: int) -> int:
        """The query token for which one head of `layer` puts the most weight on a single earlier token, other
        than the first token (<|endoftext|>, where heads with nothing to fetch often rest) and itself."""
        w = self.trace.attn_weights[self.trace.layer_slot(layer)]  # (T, Q, T)
        T = w.shape[0]
        earlier = np.tril(np.ones((T, T), bool), k=-1)
        earlier[:, 0] = False
        best = np.where(earlier[:, None, :], w, -1.0).max(axis=(1, 2))
        return int(np.argmax(best)) if (best >= 0).any() else T - 1

    def sharpest_look(self, min_back: int = 8, layers: list[int] | None = None) -> Look | None:
        """The largest weight any head (of `layers`, default all attention layers) puts on one token at least
        min_back tokens before the query, the first token excepted; None if the trace is too short."""
        best = None
        T = self.trace.n_tokens
        allowed = np.tril(np.ones((T, T), bool), k=-min_back)
        allowed[:, 0] = False
        if not allowed.any():
            return None
        for layer in layers or self.attention_layers:
            w = self.trace.attn_weights[self.trace.layer_slot(layer)]  # (T, Q, T)
            masked = np.where(allowed[:, None, :], w, -1.0)
            q, h, k = np.unravel_index(int(np.argmax(masked)), masked.shape)
            if best is None or masked[q, h, k] > best.weight:
                best = Look(layer, int(h), int(q), int(k), float(masked[q, h, k]))
        return best

    # ---- order
    def repeated_pairs(self) -> list[tuple[int, int]]:
        """Every (a, b), a < b, of positions that hold the same token id, in order of b then a."""
        seen: dict[int, list[int]] = {}
        pairs = []
        for t, tid in enumerate(self.trace.token_ids.tolist()):
            pairs += [(a, t) for a in seen.get(tid, [])]
            seen.setdefault(tid, []).append(t)
        return pairs

    def featured_pair(self) -> tuple[int, int] | None:
        """The repeated token to show: among tokens with a letter or digit, the pair farthest apart; else any
        pair farthest apart; None if no token repeats."""
        pairs = self.repeated_pairs()
        if not pairs:
            return None

        def wordy(t: int) -> bool:
            return any(ch.isalnum() for ch in self.trace.display_text(t))

        pool = [p for p in pairs if wordy(p[0])] or pairs
        return max(pool, key=lambda p: (p[1] - p[0], -p[0]))

    def resid_layers(self) -> list[int]:
        """The layers whose incoming residual vectors the trace holds (group resid_detail)."""
        return self.trace.resid_detail_layers.tolist() if self.trace.has("resid_detail") else []

    def residual(self, layer: int, t: int) -> np.ndarray:
        """The residual vector (d,) entering `layer` at token t: what its RMSNorm reads."""
        j = self.resid_layers().index(layer)
        return self.trace.resid_detail_in[j, t]

    def similarity(self, layer: int, a: int, b: int) -> float:
        return cosine(self.residual(layer, a), self.residual(layer, b))

    # ---- cost
    def cache(self) -> CacheSizes:
        """The cache group summed by kind. Needs the trace's 'cache' group."""
        tr = self.trace
        tokens = tr.cache_tokens.astype(np.int64)
        by = tr.cache_bytes.astype(np.int64)  # (S, L)
        attn, mamba = tr.layers_of("attention"), tr.layers_of("mamba")
        return CacheSizes(tokens=tokens, kv_bytes=by[:, attn].sum(axis=1), state_bytes=by[:, mamba].sum(axis=1),
                          kv_per_token=[int(by[-1, i] // tokens[-1]) for i in attn],
                          state_per_layer=[int(by[-1, i]) for i in mamba])
