"""toy_model: a small, faithful Nemotron-H / Nemotron 3 style hybrid LM (Mamba-2, LatentMoE, attention).

Names are imported lazily so that numpy-only modules (the trace loader used by the scenes) can be
imported without pulling in torch.
"""

import importlib

_EXPORTS = {
    "ConfigError": "toy_model.config",
    "HybridConfig": "toy_model.config",
    "HybridLM": "toy_model.model",
    "WeightsError": "toy_model.model",
    "load_pretrained": "toy_model.model",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'toy_model' has no attribute {name!r}")
