"""Training: reproducible from its seed, resumable, and it learns."""

import torch
from safetensors.torch import load_file

from toy_model.config import HybridConfig
from toy_model.training import TrainConfig, get_batch, lr_at, train

SMALL = HybridConfig(d_model=32, mamba_n_heads=2, mamba_head_dim=16, ssm_state_size=16, n_groups=1, chunk_size=16,
                     n_routed_experts=4, num_experts_per_tok=2, moe_latent_size=8, moe_intermediate_size=16,
                     moe_shared_expert_intermediate_size=32, num_attention_heads=2, num_key_value_heads=1,
                     head_dim=16, pattern="ME*")


def small_run(tmp, name, **kw):
    return TrainConfig(steps=6, batch_size=2, seq_len=32, warmup=2, eval_every=0, checkpoint_every=100,
                       run_dir=str(tmp / name), out=str(tmp / name / "model.safetensors"), **kw)


def test_resumed_run_equals_unbroken_run(tmp_path):
    silent = dict(progress=False, log=lambda *a: None)
    straight = train(small_run(tmp_path, "a"), SMALL, **silent)
    assert train(small_run(tmp_path, "b"), SMALL, until=3, **silent) is None  # "interrupted" after step 3
    resumed = train(small_run(tmp_path, "b"), SMALL, resume=True, **silent)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight["val_bits_per_byte"] == resumed["val_bits_per_byte"]
    # the correction biases moved, by the sign rule only
    bias = a["layers.1.mixer.gate.e_score_correction_bias"].float()
    assert bias.abs().sum() > 0
    assert torch.allclose(bias / SMALL.router_bias_update_rate, bias.div(SMALL.router_bias_update_rate).round(),
                          atol=1e-2)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    silent = dict(progress=False, log=lambda *a: None)
    train(small_run(tmp_path, "a", seed=1), SMALL, **silent)
    train(small_run(tmp_path, "b", seed=1), SMALL, **silent)
    train(small_run(tmp_path, "c", seed=2), SMALL, **silent)
    a, b, c = (load_file(str(tmp_path / n / "model.safetensors")) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_batches_depend_only_on_seed_and_step():
    stream = torch.arange(10_000)
    tc = TrainConfig(batch_size=3, seq_len=8)
    x1, y1 = get_batch(stream, 5, tc)
    x2, y2 = get_batch(stream, 5, tc)
    assert torch.equal(x1, x2) and torch.equal(y1, x1 + 1)
    assert not torch.equal(get_batch(stream, 6, tc)[0], x1)


def test_learning_rate_schedule():
    tc = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, tc) < lr_at(9, tc) == tc.lr
    assert abs(lr_at(99, tc) - 1e-4) < 1e-5
