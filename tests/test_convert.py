"""Parity with transformers' NemotronH: same weights, same logits (fp32, 1e-4), both directions.

Every model is built from a random tiny config (no download) and every weight is randomised with a
meaningful magnitude, the SSM parameters and the router's correction bias included.
"""

import dataclasses
import json
import math
import re

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import NemotronHConfig, NemotronHForCausalLM  # noqa: E402

from toy_model.config import ConfigError, HybridConfig  # noqa: E402
from toy_model.convert import (  # noqa: E402
    _FIELDS,
    _IGNORED,
    _REQUIRED,
    config_from_nemotron_h,
    config_to_nemotron_h,
    from_nemotron_h,
    load_nemotron_h_checkpoint,
    save_nemotron_h_checkpoint,
    to_nemotron_h,
)
from toy_model.model import HybridLM, WeightsError, mamba_layers  # noqa: E402

transformers.logging.set_verbosity_error()  # "falling back to the PyTorch implementation" for every kernel
transformers.logging.disable_progress_bar()  # save_pretrained / from_pretrained progress bars

ATOL = 1e-4
TYPES = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}


def hf_config_dict(pattern: str, **overrides) -> dict:
    """A tiny NemotronHConfig as a dict; sizes deliberately all different so a swapped one shows."""
    d = dict(vocab_size=96, hidden_size=48, layers_block_type=[TYPES[c] for c in pattern],
             num_attention_heads=4, num_key_value_heads=2, head_dim=12, intermediate_size=80,
             mamba_num_heads=4, mamba_head_dim=10, ssm_state_size=8, n_groups=2, conv_kernel=4, chunk_size=16,
             n_routed_experts=8, num_experts_per_tok=3, moe_intermediate_size=24,
             moe_shared_expert_intermediate_size=40, moe_latent_size=16, routed_scaling_factor=2.5,
             max_position_embeddings=256, layer_norm_epsilon=1e-5, time_step_min=1e-3, time_step_max=0.1)
    d.update(overrides)
    return d


# (name, pattern, config overrides, sequence length, attention implementation)
CASES = [
    # 1:1 KV heads, 2 Mamba groups, latent MoE, T = 37 over chunks of 16 (two full chunks and a partial one)
    ("mha-g2-latent", "MEM*E-", dict(num_key_value_heads=4), 37, "eager"),
    # 2:1 KV heads, 1 group, plain MoE, T = 21 over chunks of 8
    ("gqa2-g1-plain", "M*-EME", dict(n_groups=1, mamba_num_heads=6, chunk_size=8, moe_latent_size=None), 21,
     "sdpa"),
    # 4:1 KV heads, 4 groups of 2 heads, latent 24 on d 64, T = 45 over chunks of 16
    ("gqa4-g4-latent", "*EM-M*E",
     dict(vocab_size=128, hidden_size=64, num_attention_heads=8, num_key_value_heads=2, head_dim=8,
          mamba_num_heads=8, mamba_head_dim=8, n_groups=4, moe_latent_size=24, n_routed_experts=6,
          num_experts_per_tok=2, routed_scaling_factor=5.0), 45, "eager"),
]


@torch.no_grad()
def randomise_(model: torch.nn.Module, seed: int) -> None:
    """Every persistent tensor, by name, at a scale that makes it matter (works for both models' names)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(t, std=1.0, mean=0.0):
        return torch.randn(t.shape, generator=gen) * std + mean

    def uniform(t, lo, hi):
        return torch.rand(t.shape, generator=gen) * (hi - lo) + lo

    for name, t in model.state_dict().items():
        parts = name.split(".")
        leaf, owner = parts[-1], parts[-2] if len(parts) > 1 else ""
        if leaf == "A_log":
            new = uniform(t, -1.0, 2.5)  # A in [-12, -0.4]
        elif leaf == "dt_bias":
            new = uniform(t, -5.0, 1.0)  # Delta = softplus(...) from about 0.007 to 1.3
        elif leaf == "D":
            new = randn(t, 0.5, 1.0)
        elif leaf == "e_score_correction_bias":
            new = randn(t, 0.3)  # as large as the spread of the sigmoid scores: it changes the top-k
        elif owner.startswith("norm"):
            new = randn(t, 0.3, 1.0)
        elif owner == "conv1d":
            new = randn(t, 0.4 if leaf == "weight" else 0.3)
        elif owner == "experts":
            new = randn(t, t.shape[-1] ** -0.5)  # (E, out, in)
        elif owner == "embeddings":
            new = randn(t)
        else:
            assert leaf == "weight" and t.dim() == 2, name
            new = randn(t, t.shape[1] ** -0.5)
        t.copy_(new)


def build_hf(config_dict: dict, attn: str = "eager", seed: int | None = 1) -> NemotronHForCausalLM:
    hf = NemotronHForCausalLM(NemotronHConfig(**config_dict, attn_implementation=attn)).float().eval()
    if seed is not None:
        randomise_(hf, seed)
    return hf


def hf_logits(hf, idx):
    with torch.no_grad():
        return hf(input_ids=idx, use_cache=False).logits.float()


def our_logits(model, idx):
    with torch.no_grad():
        return model(idx)


def max_diff(a, b) -> float:
    return (a - b).abs().max().item()


def hf_prefill_limit(d: dict) -> tuple[float, float]:
    """The limit on Delta in transformers' chunked (prefill) path, as the installed version computes it: up to 5.24
    it clamps below at time_step_min whatever time_step_limit says (the checkpoints' own maths, mamba_ssm's and
    NVIDIA's, does not); from 5.25 it follows time_step_limit. Parity with its forward takes this override."""
    hf = NemotronHForCausalLM(NemotronHConfig(**d))
    limit = next(m.time_step_limit for m in hf.modules() if hasattr(m, "time_step_limit"))
    return (float(limit[0]), float(limit[1]))


def assert_close(a, b, what: str):
    d = (a - b).abs()
    assert d.max().item() <= ATOL, f"{what}: max abs diff {d.max().item():.3g}, mean {d.mean().item():.3g}"


def tokens(vocab: int, T: int, seed: int = 2):
    return torch.randint(0, vocab, (2, T), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------
# parity


@pytest.mark.parametrize("name, pattern, overrides, T, attn", CASES, ids=[c[0] for c in CASES])
def test_hf_to_ours(name, pattern, overrides, T, attn):
    d = hf_config_dict(pattern, **overrides)
    hf = build_hf(d, attn)
    model = from_nemotron_h(hf.config.to_dict(), hf.state_dict(), kernels="torch", time_step_limit=hf_prefill_limit(d))
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    idx = tokens(d["vocab_size"], T)
    ref = hf_logits(hf, idx)
    out = our_logits(model, idx)
    print(f"{name}: HF -> ours max abs logit diff {max_diff(out, ref):.3g}")
    assert_close(out, ref, f"{name} HF -> ours")

    # The correction bias really decides routing here: without it the logits move far beyond tolerance.
    for block in model.layers:
        if block.kind == "moe":
            block.mixer.gate.e_score_correction_bias.zero_()
    assert max_diff(our_logits(model, idx), ref) > 1e-2


@pytest.mark.parametrize("name, pattern, overrides, T, attn", CASES, ids=[c[0] for c in CASES])
def test_ours_to_hf(name, pattern, overrides, T, attn):
    d = hf_config_dict(pattern, **overrides)
    cfg = config_from_nemotron_h(d, kernels="torch", time_step_limit=hf_prefill_limit(d))
    model = HybridLM(cfg).eval()
    randomise_(model, seed=3)
    config_dict, state = to_nemotron_h(model)
    hf = build_hf(config_dict, attn, seed=None)
    hf.load_state_dict(state, strict=True)
    idx = tokens(cfg.vocab_size, T)
    ref = hf_logits(hf, idx)
    print(f"{name}: ours -> HF max abs logit diff {max_diff(our_logits(model, idx), ref):.3g}")
    assert_close(our_logits(model, idx), ref, f"{name} ours -> HF")


@pytest.mark.parametrize("name, pattern, overrides, T, attn", CASES, ids=[c[0] for c in CASES])
def test_round_trip(name, pattern, overrides, T, attn):
    hf = build_hf(hf_config_dict(pattern, **overrides), attn)
    hf_state = hf.state_dict()
    model = from_nemotron_h(hf.config.to_dict(), hf_state)
    config_dict, state = to_nemotron_h(model)
    assert state.keys() == hf_state.keys()
    for k, v in hf_state.items():
        assert torch.equal(state[k], v), k
    # HybridConfig -> NemotronHConfig -> HybridConfig changes nothing (kernels has no HF counterpart)
    assert config_from_nemotron_h(NemotronHConfig(**config_dict).to_dict()) == model.cfg
    model2 = from_nemotron_h(config_dict, state)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values(),
                                                  strict=True))


def test_delta_limit_follows_the_checkpoint_not_transformers_prefill():
    """By default Delta is limited by time_step_limit, (0, inf): what mamba_ssm and NVIDIA's code compute. Where
    many Delta fall below time_step_min, a clamp there changes the logits. transformers up to 5.24 clamps there
    in its prefill; the override reproduces it exactly. transformers 5.25 follows time_step_limit: then our
    default is its forward."""
    d = hf_config_dict("M*ME", time_step_min=0.05)
    hf = build_hf(d)
    limits = set()
    for block in hf.model.layers:
        if block.block_type == "linear_attention":
            limits.add(tuple(block.mixer.time_step_limit))
            with torch.no_grad():  # softplus from 0.001 to 0.31: most Deltas fall below 0.05
                block.mixer.dt_bias.uniform_(-7.0, -1.0)
    (hf_limit,) = limits
    assert hf_limit in ((0.05, math.inf), (0.0, math.inf))  # the old prefill clamp, or the config's limit
    idx = tokens(d["vocab_size"], 30)
    ref = hf_logits(hf, idx)
    faithful = from_nemotron_h(hf.config.to_dict(), hf.state_dict())
    assert faithful.cfg.time_step_limit == (0.0, math.inf)
    assert all(m.dt_limit == (0.0, math.inf) for m in mamba_layers(faithful))
    clamped = from_nemotron_h(hf.config.to_dict(), hf.state_dict(), time_step_limit=(0.05, math.inf))
    assert max_diff(our_logits(faithful, idx), our_logits(clamped, idx)) > 1e-3  # the clamp matters here
    like_hf = clamped if hf_limit == (0.05, math.inf) else faithful
    print(f"transformers' limit {hf_limit}: max abs logit diff {max_diff(our_logits(like_hf, idx), ref):.3g}")
    assert_close(our_logits(like_hf, idx), ref, f"Delta limited to {hf_limit}")


def test_time_step_limit_is_read_and_written_not_replaced():
    d = hf_config_dict("ME", time_step_min=0.01, time_step_limit=[0.002, 0.5])
    cfg = config_from_nemotron_h(d)
    assert cfg.time_step_limit == (0.002, 0.5)  # neither end replaced by time_step_min or dropped
    assert config_to_nemotron_h(cfg)["time_step_limit"] == [0.002, 0.5]
    legacy = {k: v for k, v in d.items() if k != "time_step_limit"} | {"mamba_dt_limit": [0.003, math.inf]}
    assert config_from_nemotron_h(legacy).time_step_limit == (0.003, math.inf)
    infinite = json.loads(json.dumps(hf_config_dict("ME", time_step_limit=[0.0, math.inf])))
    assert config_from_nemotron_h(infinite).time_step_limit == (0.0, math.inf)
    hf5 = hf_config_dict("ME", time_step_limit=[0.0, {"__float__": "Infinity"}])  # transformers 5's JSON for inf
    assert config_from_nemotron_h(hf5).time_step_limit == (0.0, math.inf)


def test_any_field_can_be_overridden_on_import():
    d = hf_config_dict("ME*")
    cfg = config_from_nemotron_h(d, kernels="torch", max_seq_len=64, router_bias_update_rate=0.0)
    assert (cfg.kernels, cfg.max_seq_len, cfg.router_bias_update_rate) == ("torch", 64, 0.0)
    with pytest.raises(ConfigError, match="unknown HybridConfig field.*colour"):
        config_from_nemotron_h(d, colour="red")
    with pytest.raises(ConfigError, match="time_step_limit"):
        config_from_nemotron_h(d, time_step_limit=(1.0, 0.5))


def test_export_keeps_the_token_ids():
    d = hf_config_dict("ME", bos_token_id=11, eos_token_id=[12, 13], pad_token_id=14)
    out = config_to_nemotron_h(config_from_nemotron_h(d))
    assert (out["bos_token_id"], out["eos_token_id"], out["pad_token_id"]) == (11, [12, 13], 14)
    defaults = config_to_nemotron_h(config_from_nemotron_h(hf_config_dict("ME")))  # NemotronHConfig's own
    assert (defaults["bos_token_id"], defaults["eos_token_id"], defaults["pad_token_id"]) == (1, 2, 0)
    assert NemotronHConfig(**out).eos_token_id == [12, 13]


# ----------------------------------------------------------------------------------------------
# configs


def test_every_nemotron_h_field_is_accounted_for():
    """Mapped, required to have the value we implement, or ignored with a reason: nothing slips through."""
    handled = set(_FIELDS) | set(_REQUIRED) | set(_IGNORED) | {"layers_block_type", "time_step_limit"}
    generic = {f.name for f in dataclasses.fields(transformers.PreTrainedConfig)}
    own = {f.name for f in dataclasses.fields(NemotronHConfig)} - generic
    assert own - handled == set()


def test_missing_keys_take_the_nemotron_h_defaults():
    assert config_from_nemotron_h({}) == config_from_nemotron_h(NemotronHConfig().to_dict())


def test_legacy_spellings():
    modern = hf_config_dict("MEM*E-", n_groups=4, conv_kernel=3, chunk_size=32, time_step_min=0.01,
                            time_step_max=0.2)
    legacy = {k: v for k, v in modern.items()
              if k not in ("layers_block_type", "n_groups", "conv_kernel", "chunk_size", "time_step_min",
                           "time_step_max", "n_routed_experts")}
    legacy.update(hybrid_override_pattern="MEM*E-", mamba_n_groups=4, mamba_d_conv=3, mamba_chunk_size=32,
                  mamba_dt_min=0.01, mamba_dt_max=0.2, mamba_dt_limit=[0.0, math.inf], mamba_conv_bias=True,
                  num_local_experts=modern["n_routed_experts"], num_hidden_layers=6)
    expected = config_from_nemotron_h(modern)
    assert expected.pattern == "MEM*E-" and expected.n_groups == 4 and expected.conv_kernel == 3
    assert config_from_nemotron_h(legacy) == expected
    assert config_from_nemotron_h(NemotronHConfig(**legacy).to_dict()) == expected  # HF reads it the same
    old_types = modern | {"layers_block_type": ["mamba", "moe", "mamba", "attention", "moe", "mlp"]}
    assert config_from_nemotron_h(old_types) == expected


def test_config_to_nemotron_h_round_trips_through_json():
    cfg = HybridConfig(kernels="torch")
    d = json.loads(json.dumps(config_to_nemotron_h(cfg)))  # time_step_limit's inf survives as Infinity
    hf_cfg = NemotronHConfig(**d)
    assert hf_cfg.hybrid_override_pattern == cfg.pattern and hf_cfg.moe_latent_size == cfg.moe_latent_size
    assert config_from_nemotron_h(hf_cfg.to_dict(), kernels="torch") == cfg


@pytest.mark.parametrize("overrides, named", [
    (dict(n_group=2, topk_group=1), "n_group"),
    (dict(norm_topk_prob=False), "norm_topk_prob"),
    (dict(use_bias=True), "use_bias"),
    (dict(mamba_proj_bias=True), "mamba_proj_bias"),
    (dict(mlp_bias=True), "mlp_bias"),
    (dict(attention_bias=True), "attention_bias"),
    (dict(mlp_hidden_act="silu"), "mlp_hidden_act"),
    (dict(mamba_hidden_act="gelu"), "mamba_hidden_act"),
    (dict(use_conv_bias=False), "use_conv_bias"),
    (dict(mamba_conv_bias=False), "use_conv_bias"),
    (dict(n_shared_experts=2), "n_shared_experts"),
    (dict(time_step_limit=[0.5, 0.1]), "time_step_limit"),
    (dict(time_step_limit="fast"), "time_step_limit"),
    (dict(layer_norm_epsilon="1e-5"), "layer_norm_epsilon must be a number"),
    (dict(hidden_size=True), "d_model must be a positive integer"),
    (dict(time_step_min=float("nan")), "time_step_min"),
    (dict(routed_scaling_factor=float("inf")), "routed_scaling_factor"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(eos_token_id=100000), "eos_token_id"),
    (dict(tie_word_embeddings=True), "tie_word_embeddings"),
    (dict(sliding_window=16), "sliding_window"),
    (dict(model_type="llama"), "model_type"),
    (dict(layers_block_type=["linear_attention", "indexed_attention"]), "indexed_attention"),
    (dict(layers_block_type=None, hybrid_override_pattern="M*X"), "hybrid_override_pattern"),
    (dict(moe_latent_size=100), "moe_latent_size"),
])
def test_unsupported_features_raise_config_error(overrides, named):
    with pytest.raises(ConfigError) as e:
        config_from_nemotron_h(hf_config_dict("ME*-", **overrides))
    assert named in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------
# weights


@pytest.fixture(scope="module")
def hf_tiny():
    hf = build_hf(hf_config_dict("ME*-"))
    return hf.config.to_dict(), hf.state_dict()


@pytest.mark.parametrize("edit, says", [
    (lambda s: s.pop("model.layers.1.mixer.gate.e_score_correction_bias"), "missing layers.1.mixer.gate"),
    (lambda s: s.update({"model.layers.0.mixer.in_proj.bias": torch.zeros(1)}), "unexpected layers.0.mixer"),
    (lambda s: s.update({"model.norm_f.weight": torch.ones(7)}), "norm_f.weight has shape (7,)"),
    (lambda s: s.update({"transformer.wte.weight": torch.ones(1)}), "neither under 'model.'"),
    (lambda s: s.update({"backbone.embeddings.weight": torch.ones(1)}), "embeddings.weight twice"),
    (lambda s: s.update({"model.norm_f.weight": torch.ones(48, dtype=torch.int64)}), "norm_f.weight is int64"),
    (lambda s: s.update({"model.norm_f.weight": torch.ones(48, dtype=torch.bool)}), "norm_f.weight is bool"),
    (lambda s: s.update({"model.norm_f.weight": torch.ones(48, dtype=torch.complex64)}), "is complex64"),
    (lambda s: s.update({"model.norm_f.weight": torch.ones(48).to(torch.float8_e4m3fn)}),
     "norm_f.weight is float8_e4m3fn, which toy_model cannot load (a quantised checkpoint"),
    (lambda s: s.update({"model.layers.0.mixer.in_proj.weight_scale_inv": torch.ones(1, 1)}),
     "in_proj.weight_scale_inv is a quantisation scale"),
])
def test_mismatched_state_dict_raises_weights_error(hf_tiny, edit, says):
    config_dict, state = hf_tiny
    state = dict(state)
    edit(state)
    with pytest.raises(WeightsError, match=re.escape(says)):
        from_nemotron_h(config_dict, state)


def test_checkpoint_layout_errors(hf_tiny):
    config_dict, state = hf_tiny
    per_expert = {}
    for k, v in state.items():
        k = k.replace("model.", "backbone.", 1)
        if k.endswith((".experts.up_proj", ".experts.down_proj")):
            prefix, proj = k.rsplit(".", 1)
            per_expert.update({f"{prefix}.{j}.{proj}.weight": w for j, w in enumerate(v)})
        else:
            per_expert[k] = v
    assert from_nemotron_h(config_dict, per_expert).cfg.pattern == "ME*-"
    gap = {k: v for k, v in per_expert.items() if k != "backbone.layers.1.mixer.experts.2.up_proj.weight"}
    with pytest.raises(WeightsError, match="experts.2.up_proj.weight is missing"):
        from_nemotron_h(config_dict, gap)
    short = {k: v for k, v in per_expert.items() if ".experts.7." not in k}
    with pytest.raises(WeightsError, match=r"experts.up_proj has shape \(7, "):
        from_nemotron_h(config_dict, short)
    stacked = "model.layers.1.mixer.experts.up_proj"
    both = per_expert | {stacked: state[stacked]}
    with pytest.raises(WeightsError, match="both stacked and per expert"):
        from_nemotron_h(config_dict, both)


def test_mtp_layers_are_dropped(hf_tiny):
    config_dict, state = hf_tiny
    mtp = {"mtp.layers.0.mixer.q_proj.weight": torch.ones(4, 48), "mtp.layers.1.norm.weight": torch.ones(48)}
    model = from_nemotron_h(config_dict | {"num_nextn_predict_layers": 1}, state | mtp)
    assert torch.equal(model.embeddings.weight, state["model.embeddings.weight"])


def test_bf16_state_dict_loads_into_fp32(hf_tiny):
    config_dict, state = hf_tiny
    bf16 = {k: v.to(torch.bfloat16) for k, v in state.items()}
    model = from_nemotron_h(config_dict, bf16)
    for k, v in to_nemotron_h(model)[1].items():
        assert v.dtype == torch.float32 and torch.equal(v, bf16[k].float()), k


# ----------------------------------------------------------------------------------------------
# checkpoint directories


def test_load_sharded_bf16_checkpoint_written_by_hf(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf = build_hf(hf_config_dict("MEM*E-")).to(torch.bfloat16)
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    assert (tmp_path / "model.safetensors.index.json").exists()
    model = load_nemotron_h_checkpoint(tmp_path)
    ours = to_nemotron_h(model)[1]
    for k, v in hf.state_dict().items():
        assert ours[k].dtype == torch.float32 and torch.equal(ours[k], v.float()), k


def safetensors_layout(directory) -> dict:
    """{name: (shape, dtype)} over every shard in directory."""
    from safetensors import safe_open

    out = {}
    for path in directory.glob("*.safetensors"):
        with safe_open(str(path), framework="pt") as f:
            out.update({k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()})
    return out


def test_save_checkpoint_loads_in_hf_and_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = HybridLM(config_from_nemotron_h(hf_config_dict("M*E-M"), kernels="torch")).eval()
    randomise_(model, seed=4)
    ours_dir, hf_dir = tmp_path / "ours", tmp_path / "hf"
    save_nemotron_h_checkpoint(model, ours_dir)
    assert sorted(p.name for p in ours_dir.iterdir()) == ["config.json", "model.safetensors"]
    hf = NemotronHForCausalLM.from_pretrained(ours_dir, attn_implementation="eager").eval()
    idx = tokens(model.cfg.vocab_size, 25)
    assert_close(our_logits(model, idx), hf_logits(hf, idx), "saved checkpoint, HF from_pretrained")
    # the same file layout as save_pretrained writes (backbone.*, one tensor per expert)
    hf.save_pretrained(hf_dir)
    assert safetensors_layout(ours_dir) == safetensors_layout(hf_dir)
    back = load_nemotron_h_checkpoint(ours_dir, kernels="torch")
    assert back.cfg == model.cfg
    for (k, a), b in zip(model.state_dict().items(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_save_checkpoint_in_bf16_keeps_the_router_bias_in_fp32(tmp_path):
    model = HybridLM(config_from_nemotron_h(hf_config_dict("ME")))
    save_nemotron_h_checkpoint(model, tmp_path, dtype=torch.bfloat16)
    layout = safetensors_layout(tmp_path)
    assert layout["backbone.layers.1.mixer.gate.e_score_correction_bias"][1] == "F32"
    assert layout["backbone.layers.1.mixer.gate.weight"][1] == "BF16"
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"


def test_checkpoint_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_nemotron_h_checkpoint(tmp_path / "nope")
    with pytest.raises(WeightsError, match="no config.json"):
        load_nemotron_h_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(hf_config_dict("ME")))
    with pytest.raises(WeightsError, match="no \\*.safetensors"):
        load_nemotron_h_checkpoint(tmp_path)
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(WeightsError, match="truncated or corrupted"):
        load_nemotron_h_checkpoint(tmp_path)
    model = HybridLM(config_from_nemotron_h(hf_config_dict("ME")))
    with pytest.raises(WeightsError, match="already holds other weights"):
        save_nemotron_h_checkpoint(model, tmp_path)


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors",
                                   "..", "a\\..\\..\\b.safetensors"])
def test_index_naming_a_shard_outside_the_folder_is_refused(tmp_path, shard):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "outside.safetensors").write_bytes(b"")
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(hf_config_dict("ME")))
    index = {"weight_map": {"backbone.embeddings.weight": shard}}
    (tmp_path / "ckpt" / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="outside the checkpoint folder"):
        load_nemotron_h_checkpoint(tmp_path / "ckpt")


def test_deeply_nested_config_json_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_nemotron_h_checkpoint(tmp_path)
    (tmp_path / "config.json").write_bytes(b'{"hidden_size": "\xff\xfe"}')
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_nemotron_h_checkpoint(tmp_path)
