"""Assertions shared by the kernel tests."""

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def assert_close(actual, expected, rtol, atol, what=""):
    """Elementwise |actual - expected| <= atol + rtol |expected|; on failure, the max and mean difference."""
    actual, expected = actual.float(), expected.float()
    diff = (actual - expected).abs()
    ok = bool((diff <= atol + rtol * expected.abs()).all())
    assert ok, (f"{what}: max diff {diff.max().item():.3e}, mean diff {diff.mean().item():.3e} "
                f"(rtol {rtol}, atol {atol}, max |expected| {expected.abs().max().item():.3e})")
