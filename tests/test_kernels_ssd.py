"""The Triton SSD scan against its references, and the backend selection in toy_model.kernels.

On CPU the kernels run under TRITON_INTERPRET=1 (set in conftest.py when no CUDA device is
present, before triton is imported), so the shapes are tiny; the `gpu` tests repeat the comparisons on
CUDA in bf16 and fp16.
"""

import pytest
import torch
from checks import assert_close, needs_cuda

import toy_model.kernels as kernels
from toy_model.kernels import KernelUnavailable, resolve_backend, ssd_scan
from toy_model.kernels.ssd import ssd_recurrent_ref, ssd_scan_ref, ssd_scan_triton

INF = float("inf")




def make_inputs(b, l, h, p, g, n, with_init, device="cpu", dtype=torch.float32):
    """Random SSD inputs at the model's scale: Delta around 0.7, decays exp(A Delta) in 0.3 .. 0.7."""
    f32 = dict(device=device, dtype=torch.float32)
    return dict(
        x=torch.randn(b, l, h, p, device=device, dtype=dtype),
        dt=torch.randn(b, l, h, device=device, dtype=dtype),
        A=-(torch.rand(h, **f32) + 0.5),
        B=(torch.randn(b, l, g, n, **f32) / n ** 0.5).to(dtype),
        C=torch.randn(b, l, g, n, device=device, dtype=dtype),
        D=torch.randn(h, **f32),
        dt_bias=torch.randn(h, **f32) * 0.5,
        initial_states=torch.randn(b, h, p, n, **f32) if with_init else None,
    )


def call(fn, inp, chunk_size, dt_limit=(0.0, INF), return_final_states=True):
    return fn(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk_size, D=inp["D"],
              dt_bias=inp["dt_bias"], initial_states=inp["initial_states"],
              return_final_states=return_final_states, dt_limit=dt_limit)


# (b, l, h, p, g, n, chunk, dt_limit): l = 1; l not a multiple of the chunk (with p and n not powers of 2);
# a single full chunk with g = h; several chunks with g = 1 and a finite dt limit; a chunk size that is
# neither a power of two nor 16 or more (masked tiles).
CASES = {
    "l1": (1, 1, 2, 16, 1, 16, 16, (0.0, INF)),
    "ragged": (2, 37, 4, 24, 2, 20, 16, (1e-3, INF)),
    "one_chunk_g_eq_h": (1, 32, 4, 16, 4, 16, 32, (0.0, INF)),
    "g1_chunks": (1, 70, 2, 16, 1, 16, 16, (0.05, 0.5)),
    "chunk10": (2, 23, 2, 16, 2, 16, 10, (0.0, INF)),
}


@pytest.mark.parametrize("with_init", [False, True], ids=["zero_init", "init"])
@pytest.mark.parametrize("case", list(CASES))
def test_ssd_forward_matches_references(case, with_init):
    b, l, h, p, g, n, Q, dt_limit = CASES[case]
    inp = make_inputs(b, l, h, p, g, n, with_init)
    y, final = call(ssd_scan_triton, inp, Q, dt_limit)
    y_ref, final_ref = call(ssd_scan_ref, inp, Q, dt_limit)
    assert y.dtype == final.dtype == torch.float32
    assert_close(y, y_ref, 1e-5, 1e-5, "y vs chunked reference")
    assert_close(final, final_ref, 1e-5, 1e-5, "final states vs chunked reference")
    y_rec, final_rec = ssd_recurrent_ref(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], inp["D"],
                                         inp["dt_bias"], inp["initial_states"], dt_limit)
    assert_close(y, y_rec, 1e-5, 1e-5, "y vs per-timestep recurrence")
    assert_close(final, final_rec, 1e-5, 1e-5, "final states vs per-timestep recurrence")


@pytest.mark.parametrize("case", ["ragged", "chunk10"])
def test_ssd_chunk_states_match_the_reference(case):
    """The states entering each chunk (what toy_model.capture records) are the same on both paths."""
    b, l, h, p, g, n, Q, dt_limit = CASES[case]
    inp = make_inputs(b, l, h, p, g, n, with_init=True)
    args = (inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], Q)
    kw = dict(D=inp["D"], dt_bias=inp["dt_bias"], initial_states=inp["initial_states"], dt_limit=dt_limit,
              return_chunk_states=True)
    y, final, states = ssd_scan_triton(*args, **kw)
    y_ref, final_ref, states_ref = ssd_scan_ref(*args, **kw)
    assert states.shape == (b, -(-l // Q), h, p, n)
    assert_close(states, states_ref, 1e-5, 1e-5, "chunk states")
    assert_close(states[:, 0], inp["initial_states"], 0, 0, "the first chunk starts from the initial state")


def test_ssd_without_final_states_D_or_dt_bias():
    inp = make_inputs(2, 20, 2, 16, 1, 16, with_init=False) | dict(D=None, dt_bias=None)
    y = call(ssd_scan_triton, inp, 16, return_final_states=False)
    assert torch.is_tensor(y) and y.shape == (2, 20, 2, 16)
    assert_close(y, call(ssd_scan_ref, inp, 16, return_final_states=False), 1e-5, 1e-5, "y")


def test_ssd_strided_inputs_like_the_mixer():
    """x, B and C as views into one packed tensor (as the Mamba-2 mixer passes them)."""
    b, l, h, p, g, n = 1, 19, 2, 16, 1, 16
    xBC = torch.randn(b, l, h * p + 2 * g * n)
    x, B, C = xBC.split([h * p, g * n, g * n], dim=-1)
    dtA = torch.randn(b, l, h + 3)[..., 1:h + 1]  # non-contiguous dt as well
    inp = make_inputs(b, l, h, p, g, n, with_init=True) | dict(
        x=x.reshape(b, l, h, p), B=B.reshape(b, l, g, n), C=C.reshape(b, l, g, n), dt=dtA)
    assert not inp["x"].is_contiguous()
    for got, want in zip(call(ssd_scan_triton, inp, 16), call(ssd_scan_ref, inp, 16), strict=True):
        assert_close(got, want, 1e-5, 1e-5, "strided inputs")


def test_ssd_no_nan_on_long_strongly_decaying_sequences():
    """Cumulative sums of A Delta reach -1e4: masked or far-away exponents must give 0, never NaN."""
    b, l, h, p, g, n = 1, 300, 2, 16, 1, 16
    inp = make_inputs(b, l, h, p, g, n, with_init=True)
    inp["A"] = torch.tensor([-60.0, -0.01])
    inp["dt"] = inp["dt"] + 3.0
    y, final = call(ssd_scan_triton, inp, 64)
    assert torch.isfinite(y).all() and torch.isfinite(final).all()
    y_ref, final_ref = call(ssd_scan_ref, inp, 64)
    assert_close(y, y_ref, 1e-5, 1e-4, "y")
    assert_close(final, final_ref, 1e-5, 1e-4, "final")


@pytest.mark.parametrize("case", ["ragged", "g1_chunks"])
def test_ssd_gradients_match_autograd_through_reference(case):
    b, l, h, p, g, n, Q, dt_limit = CASES[case]
    inp = make_inputs(b, l, h, p, g, n, with_init=True)
    names = ["x", "dt", "A", "B", "C", "D", "dt_bias", "initial_states"]
    gy = torch.randn(b, l, h, p)
    gs = torch.randn(b, h, p, n)
    grads = {}
    for fn in (ssd_scan_triton, ssd_scan_ref):
        leaves = {k: v.detach().clone().requires_grad_() for k, v in inp.items()}
        y, final = call(fn, leaves, Q, dt_limit)
        ((y * gy).sum() + (final * gs).sum()).backward()
        grads[fn.__name__] = {k: leaves[k].grad for k in names}
    for k in names:
        assert_close(grads["ssd_scan_triton"][k], grads["ssd_scan_ref"][k], 1e-5, 1e-5, f"d{k}")


def test_ssd_gradient_through_y_only():
    inp = make_inputs(1, 20, 2, 16, 1, 16, with_init=True)
    x = inp["x"].clone().requires_grad_()
    s0 = inp["initial_states"].clone().requires_grad_()
    y = ssd_scan_triton(x, inp["dt"], inp["A"], inp["B"], inp["C"], 16, D=inp["D"], initial_states=s0)
    y.square().sum().backward()
    x2, s02 = x.detach().clone().requires_grad_(), s0.detach().clone().requires_grad_()
    y2 = ssd_scan_ref(x2, inp["dt"], inp["A"], inp["B"], inp["C"], 16, D=inp["D"], initial_states=s02)
    y2.square().sum().backward()
    assert_close(x.grad, x2.grad, 1e-5, 1e-5, "dx")
    assert_close(s0.grad, s02.grad, 1e-5, 1e-5, "d initial_states")


def test_ssd_rejects_bad_shapes():
    inp = make_inputs(1, 8, 4, 16, 3, 16, with_init=False)
    with pytest.raises(ValueError, match="groups"):
        call(ssd_scan_triton, inp, 16)


# ---- backend selection (toy_model.kernels)


def test_auto_backend_on_cpu_is_torch(monkeypatch):
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    assert resolve_backend("auto", torch.device("cuda")) == "triton"

    def boom(*args, **kwargs):
        raise AssertionError("the Triton path ran")
    monkeypatch.setattr(kernels.ssd, "ssd_scan_triton", boom)
    inp = make_inputs(1, 5, 2, 16, 1, 16, with_init=False)
    y = ssd_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 16, kernels="auto")
    assert y.shape == (1, 5, 2, 16)


def test_triton_backend_under_interpreter_runs_the_kernels(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    calls = []
    spy = lambda *a, **k: calls.append(1) or ssd_scan_triton(*a, **k)
    monkeypatch.setattr(kernels.ssd, "ssd_scan_triton", spy)
    inp = make_inputs(1, 5, 2, 16, 1, 16, with_init=False)
    ssd_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 16, kernels="triton")
    assert calls == [1]


def test_triton_backend_on_cpu_without_interpreter_says_why(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    inp = make_inputs(1, 5, 2, 16, 1, 16, with_init=False)
    with pytest.raises(KernelUnavailable, match="needs a CUDA device or TRITON_INTERPRET=1"):
        ssd_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 16, kernels="triton")
    with pytest.raises(ValueError, match="kernels must be"):
        resolve_backend("cuda", torch.device("cpu"))


# ---- on a GPU: the same comparisons in bf16 and fp16, at shapes nearer to the model's


GPU_DTYPES = {  # dtype: (torch dtype, rtol, atol)
    "bf16": (torch.bfloat16, 3e-2, 5e-2),
    "fp16": (torch.float16, 1e-2, 1e-2),
    "fp32": (torch.float32, 1e-4, 1e-4),
}
GPU_CASES = {
    "l1": (2, 1, 8, 64, 2, 64, 64),
    "ragged": (2, 1000, 8, 64, 2, 128, 256),
    "g_eq_h": (1, 256, 4, 32, 4, 16, 64),
    "g1_p80_n48": (2, 300, 4, 80, 1, 48, 128),
}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("with_init", [False, True], ids=["zero_init", "init"])
@pytest.mark.parametrize("case", list(GPU_CASES))
@pytest.mark.parametrize("dtype", list(GPU_DTYPES))
def test_ssd_forward_on_gpu(dtype, case, with_init):
    torch_dtype, rtol, atol = GPU_DTYPES[dtype]
    b, l, h, p, g, n, Q = GPU_CASES[case]
    inp = make_inputs(b, l, h, p, g, n, with_init, device="cuda", dtype=torch_dtype)
    y, final = call(ssd_scan_triton, inp, Q, (1e-3, INF))
    y_ref, final_ref = call(ssd_scan_ref, inp, Q, (1e-3, INF))
    assert torch.isfinite(y).all()
    assert_close(y, y_ref, rtol, atol, f"y ({dtype})")
    final_atol = atol * max(1.0, final_ref.abs().max().item() / 10)  # states grow with the sequence
    assert_close(final, final_ref, rtol, final_atol, f"final ({dtype})")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_ssd_gradients_on_gpu(dtype):
    torch_dtype, rtol, atol = GPU_DTYPES[dtype]
    inp = make_inputs(2, 300, 4, 64, 2, 64, with_init=True, device="cuda", dtype=torch_dtype)
    names = ["x", "dt", "A", "B", "C", "D", "dt_bias", "initial_states"]
    grads = {}
    for fn in (ssd_scan_triton, ssd_scan_ref):
        leaves = {k: v.detach().clone().requires_grad_() for k, v in inp.items()}
        y, final = call(fn, leaves, 128, (1e-3, INF))
        (y.square().mean() + final.square().mean()).backward()
        grads[fn.__name__] = {k: leaves[k].grad for k in names}
    for k in names:
        want = grads["ssd_scan_ref"][k]
        scaled_atol = atol * want.abs().max().item()  # gradients sum over steps: scale atol with them
        assert_close(grads["ssd_scan_triton"][k], want, rtol, scaled_atol, f"d{k} ({dtype})")
