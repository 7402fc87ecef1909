"""A trace seen for drawing: its values scaled into [0, 1] and picked per layer and token.

The trace format (toy_model.trace_file) holds what the model computed; this module decides how it is
drawn: how big a marker is, how high a state bar stands, how brightly an expert or a token lights. Every
picture in the kit reads numbers from here, so a scaling is chosen once. numpy only (notebooks and tests
use it without Manim).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from toy_model.trace_file import Trace


def update_intensity(trace: Trace, percentile: float = 99.0) -> np.ndarray:
    """update_norm scaled into [0, 1] over the whole trace (L, T), 1 at its 99th percentile and above.

    A percentile rather than the maximum: the first token's updates are often far larger than any other
    (an attention-sink-like outlier) and would flatten everything else to nothing.
    """
    u = trace.arrays["update_norm"].astype(np.float64)
    top = float(np.percentile(u, percentile)) if u.size else 0.0
    return (np.clip(u / top, 0.0, 1.0) if top > 0 else np.zeros_like(u)).astype(np.float32)


def state_level(trace: Trace) -> np.ndarray:
    """mamba_state_norm scaled into [0, 1] per Mamba-2 layer (Lm, T, H): 1 is that layer's largest state."""
    s = trace.arrays["mamba_state_norm"].astype(np.float64)
    if s.size == 0:
        return s.astype(np.float32)
    top = s.reshape(s.shape[0], -1).max(axis=1)[:, None, None]
    return np.where(top > 0, s / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


@dataclass
class TraceView:
    """The drawing scalings of one trace, computed once (see the module docstring)."""

    trace: Trace
    intensity: np.ndarray = field(init=False)  # (L, T) in [0, 1]: the update's size at each layer
    state: np.ndarray = field(init=False)  # (Lm, T, H) in [0, 1]: Mamba-2 state per head

    def __post_init__(self):
        self.intensity = update_intensity(self.trace)
        self.state = state_level(self.trace)

    # ---- per layer kind: what a block's detail shows for token t
    def mamba_levels(self, layer: int, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(before, decayed, after) state levels per head: the state after token t - 1, that state times
        exp(A Delta_t) (what the recurrence keeps), and the state after token t (with the token written in)."""
        level = self.state[self.trace.layer_slot(layer)]
        before = level[t - 1] if t > 0 else np.zeros_like(level[t])
        return before, before * self.trace.mamba(layer, t)["decay"], level[t]

    def moe_levels(self, layer: int, t: int) -> tuple[np.ndarray, float]:
        """(levels (E,), shared): each chosen expert lit by its gate weight (the largest at 1), unchosen at
        0; shared is the shared expert's share of the update."""
        m = self.trace.moe(layer, t)
        levels = np.zeros(self.n_experts)
        levels[m["topk_ids"]] = m["topk_weights"] / max(float(m["topk_weights"].max()), 1e-9)
        return levels, m["shared_share"]

    def attention_keys(self, layer: int, t: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, levels): the n earlier tokens token t attends to most (averaged over heads), in text order,
        each lit by its weight (the largest at 1); tokens below 2% of the largest are left out."""
        w = self.trace.attention(layer, t).mean(axis=0)  # (t + 1,)
        keys = np.argsort(-w, kind="stable")[:n]
        keys = np.sort(keys[w[keys] >= 0.02 * w.max()])
        return keys, w[keys] / max(float(w.max()), 1e-9)

    # ---- sizes
    @property
    def n_experts(self) -> int:
        return int(self.trace.moe_scores.shape[2])

    @property
    def n_mamba_heads(self) -> int:
        return int(self.trace.mamba_state_norm.shape[2])

    @property
    def config(self) -> dict:
        return self.trace.meta.get("model_config", {})
