"""The model's two hot paths, the SSD scan and the MoE experts, behind one interface each.

`ssd_scan(...)` and `moe_experts(...)` pick an implementation per call from the model option
`kernels`: "torch" (the PyTorch references), "triton" (the Triton kernels; on CPU only under
TRITON_INTERPRET=1), or "auto" (Triton on CUDA tensors, the references otherwise).
"""

from __future__ import annotations

import os

import torch

from toy_model.kernels import moe, ssd


class KernelUnavailable(RuntimeError):
    """kernels="triton" was asked for where Triton cannot run."""


def interpreter_on() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve_backend(kernels: str, device: torch.device) -> str:
    """"torch" or "triton" for tensors on `device`."""
    if kernels == "torch":
        return "torch"
    if kernels == "auto":
        return "triton" if device.type == "cuda" else "torch"
    if kernels == "triton":
        if device.type != "cuda" and not interpreter_on():
            raise KernelUnavailable(
                f"kernels='triton' needs a CUDA device or TRITON_INTERPRET=1 (tensors are on {device.type}); "
                "use kernels='torch' or 'auto'")
        return "triton"
    raise ValueError(f"kernels must be 'auto', 'torch' or 'triton', got {kernels!r}")


def ssd_scan(x, dt, A, B, C, chunk_size, D=None, dt_bias=None, initial_states=None,
             return_final_states=False, dt_limit=(0.0, float("inf")), kernels="auto", return_chunk_states=False):
    """Chunked SSD scan; see toy_model.kernels.ssd for shapes. y is fp32."""
    fn = ssd.ssd_scan_ref if resolve_backend(kernels, x.device) == "torch" else ssd.ssd_scan_triton
    return fn(x, dt, A, B, C, chunk_size, D=D, dt_bias=dt_bias, initial_states=initial_states,
              return_final_states=return_final_states, dt_limit=dt_limit, return_chunk_states=return_chunk_states)


def moe_experts(z, topk_ids, topk_weights, w_up, w_down, kernels="auto"):
    """Weighted sum of the k chosen squared-ReLU experts per token; see toy_model.kernels.moe."""
    fn = moe.moe_experts_ref if resolve_backend(kernels, z.device) == "torch" else moe.moe_experts_triton
    return fn(z, topk_ids, topk_weights, w_up, w_down)
