"""What generation keeps between tokens: per Mamba-2 layer a conv window and an SSM state of fixed size, per
attention layer a KV cache that grows by one row per token. MoE and MLP layers keep nothing.

    cache = model.new_cache()          # ModelCache: one entry per layer (None for MoE / MLP)
    model(prompt_ids, cache=cache)     # prefill fills it
    model(next_id, cache=cache)        # each decode step reads and extends it
    cache.layer_bytes()                # [bytes per layer]: constant for Mamba-2, growing for attention

This is the reason the hybrid exists: the few attention layers pay per token of context, the many Mamba-2
layers do not (the Generation scene draws these byte counts, recorded per step in traces).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


@dataclass
class MambaCache:
    """A Mamba-2 layer's recurrent state: the last (kernel - 1) conv inputs and the (H, P, N) SSM state."""

    conv: torch.Tensor | None = None  # (b, conv_dim, kernel - 1)
    ssm: torch.Tensor | None = None  # (b, H, P, N), fp32

    @property
    def nbytes(self) -> int:
        return _nbytes(self.conv) + _nbytes(self.ssm)


@dataclass
class KVCache:
    """An attention layer's keys and values for every token so far."""

    k: torch.Tensor | None = None  # (b, n_kv, S, head_dim)
    v: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return _nbytes(self.k) + _nbytes(self.v)

    @property
    def n_tokens(self) -> int:
        return 0 if self.k is None else int(self.k.shape[2])


class ModelCache(list):
    """One entry per layer: a MambaCache, a KVCache, or None for layers that keep nothing; `n_tokens` counts
    the tokens it has seen."""

    n_tokens: int = 0

    def layer_bytes(self) -> list[int]:
        return [0 if c is None else c.nbytes for c in self]

    @property
    def nbytes(self) -> int:
        return sum(self.layer_bytes())


CACHE_OF_KIND = {"mamba": MambaCache, "attention": KVCache}  # layer kind -> what it keeps
