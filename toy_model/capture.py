"""Capture: the one way to look inside a forward pass, by receiving what the normal path computes anyway.

    capture = Capture()
    logits = model(idx, capture=capture)     # the same computation as model(idx), bit for bit (tested)
    capture.calls[-1].layers[3]["x"]         # what layer 3 handed over in that call

The model passes one LayerCapture to each block; a block and its mixer call `put(name=tensor, ...)` at the
points where those tensors exist in the ordinary forward (the residual stream in and the update out, the
Mamba-2 scan's inputs, chunk states and output, the router's scores and choices, the attention queries and
keys). Nothing is recomputed inside the model for recording; toy_model.trace derives what a trace stores
(norms, per-token states, attention weights) from these tensors afterwards. With capture=None every `put`
is skipped, so the forward costs nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class LayerCapture(dict):
    """One layer's tensors in one model call, by name (detached; the model's own tensors, not copies)."""

    def put(self, **tensors: torch.Tensor) -> None:
        self.update({name: t.detach() if isinstance(t, torch.Tensor) else t for name, t in tensors.items()})


@dataclass
class Call:
    """One model call (a prefill of T tokens, or one decode step): per-layer captures, the logits, and the
    cache's bytes per layer after it (when a cache was used)."""

    layers: list[LayerCapture]
    logits: torch.Tensor | None = None  # (b, T, V)
    cache_bytes: list[int] | None = None
    n_tokens: int = 0


@dataclass
class Capture:
    calls: list[Call] = field(default_factory=list)

    def new_call(self, n_layers: int) -> Call:
        call = Call([LayerCapture() for _ in range(n_layers)])
        self.calls.append(call)
        return call
