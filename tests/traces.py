"""Assertions shared by the tests of recorded traces (tests/test_trace.py, tests/test_emoji_chat.py)."""

import numpy as np

from toy_model.trace_file import ALL_ARRAYS, GROUPS


def assert_same_recording(fresh, shipped, hint: str = ""):
    """`fresh` records what `shipped` recorded, allowing for another CPU: float arrays to 1e-4 relative (the math
    libraries pick other kernels per instruction set, so the last bits differ; plus 1e-5 of the array's largest
    value for entries near zero); token ids, text, chosen experts, cache sizes and predicted ids exactly, except
    where a near-tie (two candidates within that tolerance) may swap places.

    An array the shipped file stores at a lower precision is compared at that precision: float16 (as
    traces/emoji_chat.npz stores attn_weights) rounds to 2^-11 relative, so its tolerance is its epsilon, 2^-10,
    which covers that rounding plus the CPU noise; `fresh` may be the float32 recording before the rounding."""
    assert sorted(fresh.arrays) == sorted(shipped.arrays), hint
    for name, b in shipped.arrays.items():
        a, spec = fresh.arrays[name], ALL_ARRAYS[name]
        assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}; {hint}"
        if spec.kind == "float":
            scale = float(np.abs(b).max()) if b.size else 0.0
            rtol = max(1e-4, float(np.finfo(b.dtype).eps))
            np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol,
                                       atol=1e-6 + 1e-5 * scale, err_msg=f"{name}; {hint}")
        elif name in GROUPS["cache"] or name.endswith(("_heads", "_layers")):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}; {hint}")
    for name in ("token_ids", "token_text", "token_hex"):
        np.testing.assert_array_equal(fresh.arrays[name], shipped.arrays[name], err_msg=f"{name}; {hint}")
    # predictions: ranks may swap only between probabilities equal to within the tolerance
    probs = shipped.pred_probs
    tied = np.zeros(probs.shape, dtype=bool)
    close = np.isclose(probs[:, 1:], probs[:, :-1], rtol=1e-4, atol=1e-6)
    tied[:, 1:] |= close
    tied[:, :-1] |= close
    tied[:, -1] = True  # the 5th place may swap with the 6th, which the trace does not hold
    for name in ("pred_ids", "pred_text"):
        a, b = fresh.arrays[name], shipped.arrays[name]
        assert (a == b)[~tied].all(), f"{name} differs away from near-ties; {hint}"
    # experts: the chosen set may differ only where the k-th and (k+1)-th biased scores nearly tie
    biased = shipped.moe_scores + shipped.moe_correction_bias[:, None, :]
    k = shipped.moe_topk_ids.shape[-1]
    ordered = np.sort(biased, axis=-1)[..., ::-1]
    boundary_tie = np.isclose(ordered[..., k - 1], ordered[..., k], rtol=1e-4, atol=1e-6)
    same_set = (np.sort(fresh.moe_topk_ids, -1) == np.sort(shipped.moe_topk_ids, -1)).all(-1)
    assert (same_set | boundary_tie).all(), f"moe_topk_ids: other experts chosen; {hint}"
    assert fresh.meta["generated_text"] == shipped.meta["generated_text"], hint
