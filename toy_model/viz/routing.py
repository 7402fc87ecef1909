"""A MoE layer's routing as a trace recorded it, and the same tokens re-routed without the correction bias.

    r = router_step(trace, layer, t)     # scores, bias, the chosen ids and gate weights, what the bias changed
    with_b, without_b = loads(trace, layer)  # tokens per expert: as routed, and top-k of the scores alone
    skew(with_b)                         # {'max_mean': ..., 'cv': ...}

The maths is the router's (toy_model.layers.Router): s = sigmoid(W_g x) for every routed expert; the k chosen
are the top-k of s + b (b = e_score_correction_bias); their gate weights come from s alone, normalised over
the k and times routed_scaling_factor. Everything shown comes from the trace; the only thing computed here is
the what-if (top-k of s with b = 0) and statistics of it. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from toy_model.trace_file import Trace


@dataclass(frozen=True)
class RouterStep:
    """One token at one MoE layer, as recorded."""

    scores: np.ndarray  # (E,) s, the sigmoid score of every routed expert
    bias: np.ndarray  # (E,) b, the correction bias
    ids: np.ndarray  # (k,) the chosen experts, as recorded (top-k of s + b)
    weights: np.ndarray  # (k,) their gate weights, as recorded
    cut: float  # a level of s + b between the k-th chosen and the best one left out
    brought_in: tuple[int, ...]  # chosen thanks to b: not in the top-k of s alone
    pushed_out: tuple[int, ...]  # in the top-k of s alone, left out because of b

    @property
    def biased(self) -> np.ndarray:
        return self.scores + self.bias


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values along the last axis (ties to the lower index, as torch.topk on CPU)."""
    return np.argsort(-values, axis=-1, kind="stable")[..., :k]


def router_step(trace: Trace, layer: int, t: int) -> RouterStep:
    m = trace.moe(layer, t)
    s = np.asarray(m["scores"], dtype=np.float64)
    b = np.asarray(trace.moe_correction_bias[trace.layer_slot(layer)], dtype=np.float64)
    ids = np.asarray(m["topk_ids"])
    k = len(ids)
    biased = s + b
    chosen = set(ids.tolist())
    lowest_in = min(biased[i] for i in chosen)
    rest = [biased[i] for i in range(len(s)) if i not in chosen]
    cut = (lowest_in + max(rest)) / 2 if rest else lowest_in - 0.02
    plain = set(top_k(s, k).tolist())
    return RouterStep(s, b, ids, np.asarray(m["topk_weights"], dtype=np.float64), float(cut),
                      tuple(sorted(chosen - plain)), tuple(sorted(plain - chosen)))


def loads(trace: Trace, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(as routed, bias set to 0): how many of the trace's tokens each expert took at `layer`, from the recorded
    choices, and from the top-k of the recorded scores alone."""
    slot = trace.layer_slot(layer)
    ids = trace.moe_topk_ids[slot]  # (T, k)
    scores = trace.moe_scores[slot]  # (T, E)
    n = scores.shape[1]
    routed = np.bincount(ids.ravel(), minlength=n)
    plain = np.bincount(top_k(scores, ids.shape[1]).ravel(), minlength=n)
    return routed, plain


def skew(load: np.ndarray) -> dict[str, float]:
    """How unevenly the tokens fall: max / mean load, and the coefficient of variation (std / mean)."""
    load = np.asarray(load, dtype=np.float64)
    mean = load.mean()
    return {"max_mean": float(load.max() / mean), "cv": float(load.std() / mean)} if mean > 0 else \
        {"max_mean": 0.0, "cv": 0.0}
