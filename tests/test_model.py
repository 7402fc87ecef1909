"""The model's maths: references against naive forms, prefill/decode, routing, configs, weights."""

import subprocess
import sys

import pytest
import torch

from toy_model import ConfigError, HybridConfig, HybridLM, WeightsError, load_pretrained
from toy_model.cache import MambaCache
from toy_model.kernels.moe import moe_experts_loop, moe_experts_ref
from toy_model.kernels.ssd import ssd_recurrent_ref, ssd_scan_ref, ssd_step

TINY = dict(vocab_size=64, d_model=32, mamba_n_heads=4, mamba_head_dim=8, ssm_state_size=16, n_groups=2,
            chunk_size=8, n_routed_experts=8, num_experts_per_tok=2, moe_latent_size=8,
            moe_intermediate_size=16, moe_shared_expert_intermediate_size=32, intermediate_size=32,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_seq_len=128)


def ssd_inputs(b, l, h, p, g, n, init):
    x = torch.randn(b, l, h, p)
    dt = torch.randn(b, l, h)
    A = -torch.rand(h) * 4 - 0.1
    B, C = torch.randn(b, l, g, n), torch.randn(b, l, g, n)
    D, dt_bias = torch.randn(h), torch.randn(h)
    s0 = torch.randn(b, h, p, n) if init else None
    return x, dt, A, B, C, D, dt_bias, s0


@pytest.mark.parametrize("l,chunk", [(1, 8), (8, 8), (13, 8), (40, 16)])
@pytest.mark.parametrize("g", [1, 2, 4])
@pytest.mark.parametrize("init", [False, True])
def test_ssd_chunked_equals_recurrence(l, chunk, g, init):
    x, dt, A, B, C, D, dt_bias, s0 = ssd_inputs(2, l, 4, 8, g, 16, init)
    y, final = ssd_scan_ref(x, dt, A, B, C, chunk, D=D, dt_bias=dt_bias, initial_states=s0,
                            return_final_states=True, dt_limit=(1e-3, float("inf")))
    y2, final2 = ssd_recurrent_ref(x, dt, A, B, C, D, dt_bias, s0, dt_limit=(1e-3, float("inf")))
    torch.testing.assert_close(y, y2, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(final, final2, rtol=1e-4, atol=1e-4)


def test_ssd_step_continues_the_scan():
    x, dt, A, B, C, D, dt_bias, _ = ssd_inputs(1, 10, 4, 8, 2, 16, False)
    y, state = ssd_scan_ref(x[:, :9], dt[:, :9], A, B[:, :9], C[:, :9], 4, D=D, dt_bias=dt_bias,
                            return_final_states=True)
    y_last, _ = ssd_step(state, x[:, 9], dt[:, 9], A, B[:, 9], C[:, 9], D, dt_bias)
    y_full = ssd_scan_ref(x, dt, A, B, C, 4, D=D, dt_bias=dt_bias)
    torch.testing.assert_close(y_last, y_full[:, 9], rtol=1e-4, atol=1e-5)


def test_ssd_long_sequence_is_finite():
    x, dt, A, B, C, D, dt_bias, _ = ssd_inputs(1, 600, 2, 4, 1, 16, False)
    y = ssd_scan_ref(x, dt + 5, A * 50, B, C, 64, D=D, dt_bias=dt_bias)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("T,E,k", [(1, 4, 1), (23, 8, 2), (17, 6, 6)])
def test_moe_dispatch_equals_per_token_loop(T, E, k):
    z = torch.randn(T, 8)
    ids = torch.stack([torch.randperm(E)[:k] for _ in range(T)])
    w = torch.rand(T, k)
    w_up, w_down = torch.randn(E, 16, 8), torch.randn(E, 8, 16)
    torch.testing.assert_close(moe_experts_ref(z, ids, w, w_up, w_down), moe_experts_loop(z, ids, w, w_up, w_down),
                               rtol=1e-5, atol=1e-4)


def test_moe_idle_expert_and_single_expert():
    z = torch.randn(9, 8)
    w_up, w_down = torch.randn(5, 16, 8), torch.randn(5, 8, 16)
    ids = torch.full((9, 1), 3)  # every token on expert 3, experts 0, 1, 2, 4 idle
    w = torch.rand(9, 1)
    torch.testing.assert_close(moe_experts_ref(z, ids, w, w_up, w_down), moe_experts_loop(z, ids, w, w_up, w_down),
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("pattern", ["MEM*E" * 2, "M*-E", "*M"])
@pytest.mark.parametrize("latent", [8, None])
def test_prefill_then_decode_equals_full_sequence(pattern, latent):
    model = HybridLM(HybridConfig(pattern=pattern, **(TINY | {"moe_latent_size": latent}))).eval()
    idx = torch.randint(0, 64, (2, 21))
    with torch.no_grad():
        full = model(idx)
        cache = model.new_cache()
        parts = [model(idx[:, :11], cache=cache)] + [model(idx[:, t : t + 1], cache=cache) for t in range(11, 21)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-4, atol=1e-4)


def test_generate_greedy_matches_argmax_of_full_forward():
    model = HybridLM(HybridConfig(**TINY)).eval()
    idx = torch.randint(0, 64, (1, 5))
    out = model.generate(idx, 6)
    with torch.no_grad():
        logits = model(out[:, :-1])
    assert torch.equal(logits[0, 4:].argmax(-1), out[0, 5:])


def test_router_bias_follows_the_sign_rule():
    cfg = HybridConfig(**TINY)
    model = HybridLM(cfg).train()
    gate = model.layers[1].mixer.gate
    opt = torch.optim.SGD(model.parameters(), lr=10.0)  # a huge step: any gradient path to the bias would show
    _, loss = model(torch.randint(0, 64, (2, 16)), targets=torch.randint(0, 64, (2, 16)))
    load = gate.load.clone()
    assert load.sum() == 2 * 16 * cfg.num_experts_per_tok
    loss.backward()
    assert gate.weight.grad is not None and gate.weight.grad.abs().sum() > 0  # the router itself does learn
    assert gate.e_score_correction_bias.grad is None  # a buffer: backward never reaches it
    assert all(p is not gate.e_score_correction_bias for p in model.parameters())
    opt.step()
    assert torch.equal(gate.e_score_correction_bias, torch.zeros_like(gate.e_score_correction_bias))
    model.update_router_biases()  # only the sign rule moves it
    expected = cfg.router_bias_update_rate * torch.sign(load.mean() - load)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(gate.e_score_correction_bias, expected)
    assert gate.load.sum() == 0
    # The bias changes the choice of experts but not the gate weights of a chosen expert.
    x = torch.randn(5, cfg.d_model)
    scores, ids, w = gate(x)
    gate.e_score_correction_bias.zero_()
    gate.e_score_correction_bias[0] = 10.0
    _, ids2, w2 = gate(x)
    assert (ids2 == 0).any(dim=1).all()
    chosen = scores.gather(1, ids2)
    torch.testing.assert_close(w2, chosen / chosen.sum(1, keepdim=True) * cfg.routed_scaling_factor)


def mamba2_per_step(mixer, u):
    """One Mamba-2 layer written from the published maths, token by token, with no limit on Delta at all:
    in_proj -> causal conv + SiLU -> Delta = softplus(dt + dt_bias) -> s = exp(A Delta) s + Delta B x^T,
    y = C s + D x -> gated RMSNorm per group -> out_proj. u (T, d) -> (T, d)."""
    cfg = mixer.cfg
    H, P, G, N, K = cfg.mamba_n_heads, cfg.mamba_head_dim, cfg.n_groups, cfg.ssm_state_size, cfg.conv_kernel
    zxbcdt = u @ mixer.in_proj.weight.T
    z, xBC, dt = zxbcdt.split([cfg.d_inner, cfg.conv_dim, H], dim=-1)
    w, bias = mixer.conv1d.weight[:, 0], mixer.conv1d.bias  # (conv_dim, K)
    A = -torch.exp(mixer.A_log)
    s = torch.zeros(H, P, N)
    out = []
    for t in range(u.shape[0]):
        window = [xBC[t - K + 1 + j] if t - K + 1 + j >= 0 else torch.zeros(cfg.conv_dim) for j in range(K)]
        conv = sum(w[:, j] * window[j] for j in range(K)) + bias
        conv = conv * torch.sigmoid(conv)
        x, B, C = conv.split([cfg.d_inner, G * N, G * N])
        x, B, C = x.view(H, P), B.view(G, N), C.view(G, N)
        y = torch.zeros(H, P)
        for h in range(H):
            g = h // (H // G)
            delta = torch.log1p(torch.exp(dt[t, h] + mixer.dt_bias[h]))  # softplus, unclamped
            s[h] = torch.exp(A[h] * delta) * s[h] + delta * torch.outer(x[h], B[g])
            y[h] = s[h] @ C[g] + mixer.D[h] * x[h]
        gated = y.reshape(-1) * z[t] * torch.sigmoid(z[t])
        groups = gated.view(G, -1)
        normed = groups / torch.sqrt(groups.pow(2).mean(-1, keepdim=True) + cfg.norm_eps)
        out.append(mixer.out_proj.weight @ (normed.reshape(-1) * mixer.norm.weight))
    return torch.stack(out)


@torch.no_grad()
def test_mamba2_layer_with_the_default_limit_is_the_unclamped_recurrence():
    """The checkpoints' maths (mamba_ssm's dt_limit, NVIDIA's code): Delta limited by time_step_limit, (0, inf)
    by default, in prefill and decode alike. Checked against a per-step loop written from the paper, on weights
    where most Delta fall far below time_step_min, so a clamp there would show."""
    from toy_model.layers import Mamba2Mixer

    cfg = HybridConfig(**TINY)
    assert cfg.time_step_limit == (0.0, float("inf"))
    mixer = Mamba2Mixer(cfg)
    torch.nn.init.normal_(mixer.in_proj.weight, std=0.3)
    torch.nn.init.normal_(mixer.out_proj.weight, std=0.2)
    mixer.dt_bias.uniform_(-12.0, -8.0)  # softplus(dt + dt_bias) around 1e-4, below time_step_min = 1e-3
    mixer.A_log.uniform_(3.0, 5.0)  # A from -20 to -150, so Delta still decides how much is kept
    u = torch.randn(1, 21, cfg.d_model)
    expected = mamba2_per_step(mixer, u[0])
    delta = torch.nn.functional.softplus(mixer.in_proj(u)[..., -cfg.mamba_n_heads:] + mixer.dt_bias)
    assert (delta < cfg.time_step_min).float().mean() > 0.9
    prefill = mixer(u)[0]
    torch.testing.assert_close(prefill, expected, rtol=1e-4, atol=1e-5)
    cache = MambaCache()  # decode: the prefix in parallel, then one token at a time on the cached states
    steps = [mixer(u[:, :13], cache)[0]] + [mixer(u[:, t:t + 1], cache)[0] for t in range(13, 21)]
    torch.testing.assert_close(torch.cat(steps), expected, rtol=1e-4, atol=1e-5)
    # The clamp the earlier code (and transformers' prefill) applies gives another layer on these weights.
    mixer.dt_limit = (cfg.time_step_min, float("inf"))
    assert (mixer(u)[0] - expected).abs().max() > 1e-3


@torch.no_grad()
def test_a_finite_time_step_limit_bounds_delta_in_every_path():
    x, dt, A, B, C, D, dt_bias, _ = ssd_inputs(1, 12, 4, 8, 2, 16, False)
    limit = (0.2, 0.6)
    y_scan, s_scan = ssd_scan_ref(x, dt * 3, A, B, C, 4, D=D, dt_bias=dt_bias, return_final_states=True,
                                  dt_limit=limit)
    y_rec, s_rec = ssd_recurrent_ref(x, dt * 3, A, B, C, D, dt_bias, dt_limit=limit)
    torch.testing.assert_close(y_scan, y_rec, rtol=1e-4, atol=1e-4)
    state = torch.zeros(1, 4, 8, 16)
    for t in range(12):
        y_t, state = ssd_step(state, x[:, t], dt[:, t] * 3, A, B[:, t], C[:, t], D, dt_bias, dt_limit=limit)
        torch.testing.assert_close(y_t, y_rec[:, t], rtol=1e-4, atol=1e-4)
    y_free = ssd_recurrent_ref(x, dt * 3, A, B, C, D, dt_bias)[0]
    assert (y_free - y_rec).abs().max() > 1e-2  # the limit was active


@pytest.mark.parametrize("kwargs,needle", [
    (dict(pattern="MEX*"), "unknown pattern character"),
    (dict(pattern=""), "pattern is empty"),
    (dict(mamba_n_heads=6, n_groups=4), "n_groups (4) must divide mamba_n_heads (6)"),
    (dict(num_attention_heads=6, num_key_value_heads=4), "num_key_value_heads (4) must divide"),
    (dict(num_experts_per_tok=20), "exceeds n_routed_experts"),
    (dict(d_model=0), "d_model must be a positive integer"),
    (dict(d_model=True), "d_model must be a positive integer, got True"),
    (dict(d_model=32.0), "d_model must be a positive integer, got 32.0"),
    (dict(head_dim="32"), "head_dim must be a positive integer, got '32'"),
    (dict(norm_eps=0.0), "norm_eps must be a number in (0, 1]"),
    (dict(norm_eps=float("nan")), "norm_eps must be a number"),
    (dict(norm_eps="1e-5"), "norm_eps must be a number"),
    (dict(routed_scaling_factor=float("inf")), "routed_scaling_factor must be a number"),
    (dict(routed_scaling_factor=False), "routed_scaling_factor must be a number"),
    (dict(initializer_range=-0.02), "initializer_range must be a number"),
    (dict(time_step_min=0.5, time_step_max=0.1), "need time_step_min < time_step_max"),
    (dict(time_step_min=0.0), "time_step_min must be a number"),
    (dict(time_step_limit=(0.5, 0.1)), "time_step_limit must satisfy 0 <= low < high"),
    (dict(time_step_limit=(float("nan"), 1.0)), "time_step_limit must hold two numbers"),
    (dict(time_step_limit=(0.0,)), "time_step_limit must be a pair"),
    (dict(chunk_size=10**6), "chunk_size must be at most 4096"),
    (dict(moe_latent_size=8.5), "moe_latent_size (8.5) must be null or an integer"),
    (dict(kernels=["torch"]), "kernels must be 'auto', 'torch' or 'triton'"),
    (dict(pattern=["M"]), "pattern must be a string"),
    (dict(eos_token_id=5000), "eos_token_id must be null or a token id in 0..1023"),
    (dict(bos_token_id=True), "bos_token_id must be null or a token id"),
    (dict(router_bias_update_rate=-0.1), "router_bias_update_rate must be a number in [0, 1]"),
])
def test_bad_config_names_the_constraint(kwargs, needle):
    with pytest.raises(ConfigError, match=None) as e:
        HybridConfig(**kwargs)
    assert needle in str(e.value)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    HybridLM(HybridConfig(**TINY)).save(path)
    return path


def test_weights_round_trip(tiny_weights):
    model = load_pretrained(tiny_weights)
    assert model.cfg == HybridConfig(**TINY)
    assert not model.training


def test_weights_errors(tiny_weights, tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_pretrained(tmp_path / "nope.safetensors")
    data = tiny_weights.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        load_pretrained(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all" * 10)
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        load_pretrained(garbage)
    with pytest.raises(WeightsError, match="another config"):
        load_pretrained(tiny_weights, config=HybridConfig(**(TINY | {"d_model": 48})))
    # Weights whose tensors do not fit the config they claim.
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_weights))
    state["lm_head.weight"] = torch.zeros(3, 3)
    wrong = tmp_path / "wrong.safetensors"
    save_file(state, str(wrong), metadata={"config": HybridConfig(**TINY).to_json()})
    with pytest.raises(WeightsError, match="lm_head.weight has shape"):
        load_pretrained(wrong)
    state = load_file(str(tiny_weights))
    state["norm_f.weight"][0] = float("nan")
    nan = tmp_path / "nan.safetensors"
    save_file(state, str(nan), metadata={"config": HybridConfig(**TINY).to_json()})
    with pytest.raises(WeightsError, match="NaN"):
        load_pretrained(nan)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "toy_model", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,needle", [
    (["generate", "--prompt", ""], "the prompt is empty"),
    (["generate", "--prompt", "word " * 400], "exceeds the supported context"),
    (["generate", "--weights", "/nonexistent/w.safetensors"], "weights file not found"),
])
def test_cli_bad_input_is_one_line(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_cli_bad_config_is_one_line(tmp_path):
    r = run_cli("train", "--pattern", "MEX*", "--out", str(tmp_path / "w.safetensors"))
    assert r.returncode == 2 and "unknown pattern character(s) 'X'" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "cfg.json"
    bad.write_text('{"mamba_n_heads": 6, "n_groups": 4}')
    r = run_cli("train", "--config", str(bad), "--out", str(tmp_path / "w.safetensors"))
    assert r.returncode == 2 and "n_groups (4) must divide mamba_n_heads (6)" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and not (tmp_path / "w.safetensors").exists()


def test_cli_corrupted_and_foreign_weights(tiny_weights, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_weights.read_bytes()[:100])
    r = run_cli("generate", "--weights", str(bad))
    assert r.returncode == 2 and "truncated or corrupted" in r.stderr and "Traceback" not in r.stderr
    # tiny weights have a 64-token vocabulary: the shipped tokenizer cannot drive them
    r = run_cli("generate", "--weights", str(tiny_weights))
    assert r.returncode == 2 and "another config" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("info", "--weights", str(tiny_weights))
    assert r.returncode == 0 and "d_model 32," in r.stdout and "parameters" in r.stdout
