"""The Triton MoE experts against their references, and the whole model on the Triton kernels.

On CPU the kernels run under TRITON_INTERPRET=1 (set in conftest.py when no CUDA device is
present, before triton is imported), so the shapes are tiny; the `gpu` tests repeat the comparisons on
CUDA in bf16 and fp16.
"""

import pytest
import torch
from checks import assert_close, needs_cuda

import toy_model
import toy_model.kernels as kernels
from toy_model import HybridConfig, HybridLM
from toy_model.kernels import KernelUnavailable, moe_experts
from toy_model.kernels.moe import moe_align_blocks, moe_experts_loop, moe_experts_ref, moe_experts_triton
from toy_model.model import DEFAULT_WEIGHTS


def routing(kind, T, E, k, device="cpu"):
    """topk_ids (T, k): distinct experts per token, chosen by `kind`."""
    if kind == "random":
        return torch.stack([torch.randperm(E, device=device)[:k] for _ in range(T)])
    if kind == "empty_expert":  # expert 1 never chosen
        pool = torch.tensor([e for e in range(E) if e != 1], device=device)
        return torch.stack([pool[torch.randperm(len(pool), device=device)[:k]] for _ in range(T)])
    if kind == "all_on_one":  # every token on expert E - 1 (k = 1)
        return torch.full((T, k), E - 1, device=device, dtype=torch.long)
    if kind == "all_experts":  # k = E: every token on every expert, in shuffled slot order
        return torch.stack([torch.randperm(E, device=device) for _ in range(T)])
    raise ValueError(kind)


def make_inputs(T, l, m, E, k, kind, device="cpu", dtype=torch.float32):
    return dict(
        z=torch.randn(T, l, device=device, dtype=dtype),
        topk_ids=routing(kind, T, E, k, device),
        topk_weights=torch.rand(T, k, device=device),
        w_up=(torch.randn(E, m, l, device=device) / l ** 0.5).to(dtype),
        w_down=(torch.randn(E, l, m, device=device) / m ** 0.5).to(dtype),
    )


def call(fn, inp):
    return fn(inp["z"], inp["topk_ids"], inp["topk_weights"], inp["w_up"], inp["w_down"])

GRAD_INPUTS = ["z", "topk_weights", "w_up", "w_down"]


def gradients(inp):
    """{function name: {input: gradient}} of sum(out * g) for the kernel and the reference, same g."""
    g = torch.randn(inp["z"].shape, device=inp["z"].device)
    grads = {}
    for fn in (moe_experts_triton, moe_experts_ref):
        leaves = {k: (v.detach().clone().requires_grad_() if k in GRAD_INPUTS else v) for k, v in inp.items()}
        (call(fn, leaves) * g).sum().backward()
        grads[fn.__name__] = {k: leaves[k].grad for k in GRAD_INPUTS}
    return grads



# (T, l, m, E, k, routing): m = 80 spans two N tiles; 17 tokens on one expert span two M blocks.
CASES = {
    "random": (20, 32, 80, 6, 2, "random"),
    "empty_expert": (12, 16, 48, 5, 2, "empty_expert"),
    "all_on_one_k1": (17, 32, 48, 4, 1, "all_on_one"),
    "k_eq_E": (6, 16, 32, 4, 4, "all_experts"),
}


def test_moe_align_blocks_pads_each_expert_in_the_indices_only():
    T, E, k, bm = 13, 5, 2, 4
    ids = routing("empty_expert", T, E, k)
    sorted_ids, block_expert, padded_offsets = moe_align_blocks(ids, E, bm)
    flat = ids.reshape(-1)
    sentinel = T * k
    assert (padded_offsets.diff() % bm == 0).all()
    assert padded_offsets[2] - padded_offsets[1] == 0  # the empty expert owns no block
    for e in range(E):
        seg = sorted_ids[padded_offsets[e]:padded_offsets[e + 1]]
        real = seg[seg != sentinel]
        assert torch.equal(real, (flat == e).nonzero().flatten())  # this expert's pairs, in order
        assert (seg[len(real):] == sentinel).all()  # padding only at the end of the segment
        assert (block_expert[padded_offsets[e] // bm:padded_offsets[e + 1] // bm] == e).all()
    used = int(padded_offsets[-1]) // bm
    assert (block_expert[used:] == -1).all() and (sorted_ids[padded_offsets[-1]:] == sentinel).all()


@pytest.mark.parametrize("case", list(CASES))
def test_moe_forward_matches_references(case):
    inp = make_inputs(*CASES[case])
    out = call(moe_experts_triton, inp)
    assert out.dtype == torch.float32
    assert_close(out, call(moe_experts_ref, inp), 1e-5, 1e-5, "vs sort-by-expert reference")
    assert_close(out, call(moe_experts_loop, inp), 1e-5, 1e-5, "vs per-token, per-expert loop")


@pytest.mark.parametrize("case", ["random", "empty_expert", "all_on_one_k1", "k_eq_E"])
def test_moe_gradients_match_autograd_through_reference(case):
    inp = make_inputs(*CASES[case])
    names = GRAD_INPUTS
    grads = gradients(inp)
    for k in names:
        assert_close(grads["moe_experts_triton"][k], grads["moe_experts_ref"][k], 1e-5, 1e-5, f"d{k}")
    if case == "empty_expert":
        assert (grads["moe_experts_triton"]["w_up"][1] == 0).all()


def test_moe_gradient_of_weights_only():
    inp = make_inputs(*CASES["random"])
    w = inp["topk_weights"].clone().requires_grad_()
    call(moe_experts_triton, inp | dict(topk_weights=w)).sum().backward()
    w2 = inp["topk_weights"].clone().requires_grad_()
    call(moe_experts_ref, inp | dict(topk_weights=w2)).sum().backward()
    assert_close(w.grad, w2.grad, 1e-5, 1e-5, "d topk_weights")


def test_moe_dispatch(monkeypatch):
    inp = make_inputs(*CASES["random"])
    args = (inp["z"], inp["topk_ids"], inp["topk_weights"], inp["w_up"], inp["w_down"])
    assert_close(moe_experts(*args, kernels="triton"), moe_experts_ref(*args), 1e-5, 1e-5, "kernels='triton'")
    monkeypatch.setattr(kernels.moe, "moe_experts_triton", None)  # "auto" on CPU must not touch it
    assert_close(moe_experts(*args, kernels="auto"), moe_experts_ref(*args), 0, 0, "kernels='auto'")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(KernelUnavailable, match="TRITON_INTERPRET=1"):
        moe_experts(*args, kernels="triton")


# ---- the model on the kernels


TINY = dict(pattern="MEM*E", vocab_size=64, d_model=32, mamba_n_heads=4, mamba_head_dim=16, ssm_state_size=16,
            n_groups=2, chunk_size=16, n_routed_experts=4, num_experts_per_tok=2, moe_latent_size=16,
            moe_intermediate_size=32, moe_shared_expert_intermediate_size=32, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16)


@pytest.mark.slow
def test_tiny_model_forward_and_backward_on_triton(monkeypatch):
    calls = []
    for module, name in ((kernels.ssd, "ssd_scan_triton"), (kernels.moe, "moe_experts_triton")):
        fn = getattr(module, name)
        spy = lambda *a, _fn=fn, _name=name, **k: calls.append(_name) or _fn(*a, **k)
        monkeypatch.setattr(module, name, spy)
    torch.manual_seed(0)
    model = HybridLM(HybridConfig(**TINY, kernels="torch"))
    ids = torch.randint(0, 64, (1, 21))  # 21 tokens: two chunks, the second partial
    grads, logits = {}, {}
    for backend in ("torch", "triton"):
        model.zero_grad()
        model.cfg.kernels = backend
        out = model(ids)
        out.float().square().mean().backward()
        logits[backend] = out.detach()
        grads[backend] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert sorted(set(calls)) == ["moe_experts_triton", "ssd_scan_triton"]  # the kernels did run
    assert_close(logits["triton"], logits["torch"], 1e-5, 1e-5, "logits")
    assert grads["triton"].keys() == grads["torch"].keys()
    for n, g in grads["torch"].items():
        assert_close(grads["triton"][n], g, 1e-4, 1e-5 * max(1.0, g.abs().max().item()), f"grad {n}")


def test_tiny_model_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    model = HybridLM(HybridConfig(**TINY, kernels="triton"))
    with pytest.raises(KernelUnavailable, match="needs a CUDA device or TRITON_INTERPRET=1"):
        model(torch.randint(0, 64, (1, 4)))


@pytest.mark.slow
def test_bundled_model_logits_triton_equal_torch():
    # Not a skip: the trained weights ship with the repository.
    assert DEFAULT_WEIGHTS.exists(), f"{DEFAULT_WEIGHTS} is missing"
    prompt = torch.tensor([[72, 105, 32, 116, 104, 101, 114, 101, 44, 32, 77, 97, 109, 98, 97]])  # fixed ids
    with torch.no_grad():
        ref = toy_model.load_pretrained(kernels="torch")(prompt)
        out = toy_model.load_pretrained(kernels="triton")(prompt)
    assert_close(out, ref, 1e-5, 1e-5, "logits, kernels='triton' vs 'torch'")


# ---- on a GPU: the same comparisons in bf16 and fp16, at the benchmark's expert sizes


GPU_DTYPES = {  # dtype: (torch dtype, rtol, atol)
    "bf16": (torch.bfloat16, 3e-2, 5e-2),
    "fp16": (torch.float16, 1e-2, 1e-2),
    "fp32": (torch.float32, 1e-4, 1e-4),
}
GPU_CASES = {
    "decode": (8, 256, 512, 64, 8, "random"),
    "prefill": (1024, 256, 512, 64, 8, "random"),
    "empty_expert": (100, 256, 512, 16, 4, "empty_expert"),
    "all_on_one_k1": (300, 128, 192, 8, 1, "all_on_one"),
    "k_eq_E": (64, 128, 256, 8, 8, "all_experts"),
}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("case", list(GPU_CASES))
@pytest.mark.parametrize("dtype", list(GPU_DTYPES))
def test_moe_forward_on_gpu(dtype, case):
    torch_dtype, rtol, atol = GPU_DTYPES[dtype]
    inp = make_inputs(*GPU_CASES[case], device="cuda", dtype=torch_dtype)
    assert_close(call(moe_experts_triton, inp), call(moe_experts_ref, inp), rtol, atol, f"out ({dtype})")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("case", ["prefill", "empty_expert", "k_eq_E"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_moe_gradients_on_gpu(dtype, case):
    torch_dtype, rtol, atol = GPU_DTYPES[dtype]
    inp = make_inputs(*GPU_CASES[case], device="cuda", dtype=torch_dtype)
    names = GRAD_INPUTS
    grads = gradients(inp)
    for k in names:
        want = grads["moe_experts_ref"][k]
        scaled_atol = atol * want.abs().max().item()  # gradients sum over tokens: scale atol with them
        assert_close(grads["moe_experts_triton"][k], want, rtol, scaled_atol, f"d{k} ({dtype})")


@pytest.mark.gpu
@needs_cuda
def test_tiny_model_on_gpu_triton_equals_torch():
    torch.manual_seed(0)
    model = HybridLM(HybridConfig(**TINY, kernels="torch")).cuda()
    ids = torch.randint(0, 64, (2, 40), device="cuda")
    with torch.no_grad():
        ref = model(ids)
        model.cfg.kernels = "triton"
        out = model(ids)
    assert_close(out, ref, 1e-4, 1e-4, "logits on CUDA")
