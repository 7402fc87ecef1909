"""Traces: recording (prefill and decode agree), the .npz format and its validation, the CLI, the default
trace."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from toy_model import HybridConfig, HybridLM
from toy_model.capture import Capture
from toy_model.generation import DEFAULT_PROMPT, PromptError
from toy_model.tokenizer import load_tokenizer
from toy_model.trace import DEFAULT_GENERATE, Detail, _assemble, record_ids, record_trace, trace_from_ids
from toy_model.trace_file import (
    ALL_ARRAYS,
    ARRAYS,
    GROUPS,
    META_REQUIRED,
    SCHEMA_VERSION,
    TextStream,
    Trace,
    TraceError,
    display_texts,
    load_trace,
    make_trace,
    save_trace,
)
from toy_model.viz.views import TraceView
from traces import assert_same_recording  # tests/traces.py, shared with test_emoji_chat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT / "traces" / "default.npz"
BUNDLED_WEIGHTS = ROOT / "toy_model" / "data" / "model.safetensors"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HybridLM(HybridConfig(kernels="torch")).eval()


@pytest.fixture(scope="module")
def trace(model, tok):
    return record_trace(model, tok, DEFAULT_PROMPT, generate=5, progress=False)


def write_npz(path, arrays, meta=None):
    payload = dict(arrays)
    if meta is not None:
        payload["meta"] = np.array(json.dumps(meta))
    np.savez(path, **payload)
    return path


# ------------------------------------------------------------------------------------------------
# token text


def test_split_character_is_shown_whole_on_the_completing_token():
    robot = "🤖".encode()  # 4 bytes
    pieces = [b"Hi", b" " + robot[:2], robot[2:3], robot[3:] + b"!", b"a\nb\t\x01\x7f", b"\xff"]
    assert display_texts(pieces) == ["Hi", " ", "", "🤖!", "a↵b⇥\\x01\\x7f", "�"]


def test_prediction_text_completes_a_pending_character():
    robot = "🤖".encode()
    stream = TextStream()
    stream.push(robot[:2])
    assert stream.peek(robot[2:]) == "🤖"
    assert stream.peek(b"x") == "�x"  # the pending bytes can no longer form a character
    assert stream.push(robot[2:3]) == ""  # peek did not consume anything


# ------------------------------------------------------------------------------------------------
# recording


def test_trace_arrays_have_the_documented_shapes(trace, model):
    cfg = model.cfg
    T = trace.n_tokens
    assert T == trace.n_prompt_tokens + 5 and trace.meta["stop_reason"] == "length"
    assert trace.update_norm.shape == (15, T)
    assert trace.mamba_delta.shape == (6, T, cfg.mamba_n_heads)
    assert trace.moe_topk_ids.shape == (6, T, cfg.num_experts_per_tok)
    assert trace.attn_weights.shape == (3, T, cfg.num_attention_heads, T)
    assert trace.pred_ids.shape == (T, 5)
    assert trace.token_ids[0] == 256 and trace.display_text(0) == "<|endoftext|>"
    assert trace.meta["schema_version"] == SCHEMA_VERSION and trace.meta["prompt"] == DEFAULT_PROMPT


def test_trace_values_are_consistent(trace):
    T = trace.n_tokens
    # the residual stream: block i's output is block i+1's input, and out = in + update
    np.testing.assert_allclose(trace.resid_norm_out[:-1], trace.resid_norm_in[1:], rtol=1e-5)
    assert (trace.resid_norm_out <= trace.resid_norm_in + trace.update_norm + 1e-4).all()
    # attention: causal rows that sum to one
    w = trace.attn_weights
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(np.ones((T, T)), k=1)[None, :, None, :] * w == 0)
    # Mamba-2: decay in (0, 1], Delta within the config's limit
    low, high = trace.meta["model_config"]["time_step_limit"]
    assert ((trace.mamba_decay > 0) & (trace.mamba_decay <= 1)).all()
    assert (trace.mamba_delta > 0).all() and (trace.mamba_delta >= low).all() and high is None
    # router: the chosen experts are the top-k of score + correction bias; gates sum to the scaling factor
    biased = trace.moe_scores + trace.moe_correction_bias[:, None, :]
    k = trace.moe_topk_ids.shape[-1]
    top_k = np.sort(np.argsort(-biased, -1)[..., :k], -1)
    np.testing.assert_array_equal(np.sort(trace.moe_topk_ids, -1), top_k)
    scale = trace.meta["model_config"]["routed_scaling_factor"]
    np.testing.assert_allclose(trace.moe_topk_weights.sum(-1), scale, rtol=1e-5)
    assert ((trace.moe_shared_share >= 0) & (trace.moe_shared_share <= 1)).all()
    # predictions: sorted probabilities, and the greedy choice is the next generated token
    assert (np.diff(trace.pred_probs, axis=1) <= 0).all()
    P = trace.n_prompt_tokens
    np.testing.assert_array_equal(trace.pred_ids[P - 1:-1, 0], trace.token_ids[P:])


def test_prefill_and_decode_record_the_same_computation(trace, model, tok):
    """Generated tokens (decoded one at a time on the cache) match a parallel prefill of the same ids."""
    ids, calls, _ = record_ids(model, tok, trace.token_ids.tolist(), generate=0)
    assert len(calls) == 1  # one parallel pass over every token
    prefill = _assemble(model, tok, ids, calls)
    for name, spec in ARRAYS.items():
        if spec.kind == "float":
            np.testing.assert_allclose(prefill[name], trace.arrays[name], rtol=1e-4, atol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(prefill[name], trace.arrays[name], err_msg=name)


def test_recording_is_deterministic(model, tok, trace):
    again = record_trace(model, tok, DEFAULT_PROMPT, generate=5, progress=False)
    for name in ARRAYS:
        np.testing.assert_array_equal(again.arrays[name], trace.arrays[name], err_msg=name)


def test_generation_stops_at_end_of_text(model, tok, monkeypatch):
    """A trace that ends at <|endoftext|> keeps only tokens that went through the model."""
    original = model.lm_head.forward
    calls = []

    def eot_on_third_call(x):
        out = original(x)
        calls.append(1)
        if len(calls) == 3:
            out = out.clone()
            out[:, -1, tok.eot_id] = 1e4
        return out

    monkeypatch.setattr(model.lm_head, "forward", eot_on_third_call)
    t = record_trace(model, tok, "hi", generate=6, progress=False)
    assert t.meta["stop_reason"] == "eot" and t.n_tokens == t.n_prompt_tokens + 2
    assert tok.eot_id not in t.token_ids[1:].tolist()


def test_bad_prompts_raise_prompt_error(model, tok):
    with pytest.raises(PromptError, match="empty"):
        record_trace(model, tok, "  ", generate=1, progress=False)
    with pytest.raises(PromptError, match="exceeds"):
        record_trace(model, tok, "x " * 600, generate=1, progress=False)


# ------------------------------------------------------------------------------------------------
# the file


def test_save_and_load_round_trip(trace, tmp_path):
    path = save_trace(trace, tmp_path / "t.npz")
    assert sorted(tmp_path.iterdir()) == [path]  # the temp file was renamed, nothing left behind
    loaded = load_trace(path)
    assert loaded.meta == json.loads(json.dumps(trace.meta))
    for name in ARRAYS:
        np.testing.assert_array_equal(loaded.arrays[name], trace.arrays[name])
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only
        assert all(npz[n].dtype.kind != "O" for n in npz.files)


def corrupt(trace, tmp_path, name="bad.npz", drop=(), replace=None, meta=None):
    arrays = {k: v for k, v in trace.arrays.items() if k not in drop} | (replace or {})
    return write_npz(tmp_path / name, arrays, trace.meta | (meta or {}))


@pytest.mark.parametrize("case,message", [
    ("missing file", "trace file not found: "),
    ("text file", "is not a trace: not a readable .npz archive"),
    ("npy file", "is not a trace: it holds a single array"),
    ("zip without meta", "is not a trace: no 'meta' entry"),
    ("other format", "is not a trace (metadata format is 'something.else'"),
    ("missing array", "missing array 'mamba_delta'"),
    ("wrong shape", "array 'update_norm' has shape (15, 3), expected (15, "),
    ("wrong dtype", "array 'moe_topk_ids' has dtype float32, expected an integer dtype"),
    ("schema", "unsupported schema version 99 (this loader reads versions 1, 2)"),
    ("bad json", "bad metadata JSON"),
    ("missing key", "metadata key 'prompt' is missing"),
    ("nan", "array 'mamba_decay' holds NaN or inf"),
    ("expert id", "array 'moe_topk_ids' holds expert ids outside 0..15"),
    ("pickled", "array 'token_text' cannot be read without pickle"),
])
def test_bad_traces_are_named_in_one_line(trace, tmp_path, case, message):
    if case == "missing file":
        path = tmp_path / "nope.npz"
    elif case == "text file":
        path = tmp_path / "t.npz"
        path.write_text("hello")
    elif case == "npy file":
        path = tmp_path / "t.npy"
        np.save(path, np.zeros(3))
    elif case == "zip without meta":
        path = write_npz(tmp_path / "t.npz", {"x": np.zeros(2)})
    elif case == "other format":
        path = corrupt(trace, tmp_path, meta={"format": "something.else"})
    elif case == "missing array":
        path = corrupt(trace, tmp_path, drop=("mamba_delta",))
    elif case == "wrong shape":
        path = corrupt(trace, tmp_path, replace={"update_norm": np.zeros((15, 3), np.float32)})
    elif case == "wrong dtype":
        path = corrupt(trace, tmp_path, replace={"moe_topk_ids": trace.moe_topk_ids.astype(np.float32)})
    elif case == "schema":
        path = corrupt(trace, tmp_path, meta={"schema_version": 99})
    elif case == "bad json":
        arrays = dict(trace.arrays) | {"meta": np.array("{not json")}
        path = tmp_path / "t.npz"
        np.savez(path, **arrays)
    elif case == "missing key":
        meta = {k: v for k, v in trace.meta.items() if k != "prompt"}
        path = write_npz(tmp_path / "t.npz", trace.arrays, meta)
    elif case == "nan":
        bad = trace.mamba_decay.copy()
        bad[0, 0, 0] = np.nan
        path = corrupt(trace, tmp_path, replace={"mamba_decay": bad})
    elif case == "expert id":
        bad = trace.moe_topk_ids.copy()
        bad[1, 2, 0] = 16
        path = corrupt(trace, tmp_path, replace={"moe_topk_ids": bad})
    elif case == "pickled":
        obj = np.array(list(trace.token_text), dtype=object)
        path = tmp_path / "t.npz"
        np.savez(path, **(dict(trace.arrays) | {"token_text": obj, "meta": np.array(json.dumps(trace.meta))}))
    with pytest.raises(TraceError) as err:
        load_trace(path)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_truncated_file_is_reported(trace, tmp_path):
    path = save_trace(trace, tmp_path / "t.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="not a trace|truncated or corrupted"):
        load_trace(path)


def test_make_trace_validates(trace):
    with pytest.raises(TraceError, match="missing array 'attn_weights'"):
        make_trace({k: v for k, v in trace.arrays.items() if k != "attn_weights"}, trace.meta)


def test_save_into_a_missing_folder_says_so(trace, tmp_path):
    with pytest.raises(TraceError, match=r"cannot write the trace to .*t\.npz: folder .*no does not exist"):
        save_trace(trace, tmp_path / "no" / "t.npz")
    assert not (tmp_path / "no").exists()


def test_loader_needs_only_numpy():
    code = ("import sys; import toy_model.trace_file as tf; "
            "assert 'torch' not in sys.modules, 'trace_file pulled in torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_format_doc_lists_every_array_and_metadata_key():
    doc = (ROOT / "docs" / "trace_format.md").read_text(encoding="utf-8")
    for name in list(ALL_ARRAYS) + list(META_REQUIRED) + list(GROUPS):
        assert f"`{name}`" in doc, f"docs/trace_format.md does not describe {name}"


# ------------------------------------------------------------------------------------------------
# command line and the default trace


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "toy_model", "trace", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("w") / "random.safetensors"
    model.save(path)
    return path


def test_cli_writes_a_trace(random_weights, tmp_path):
    out = tmp_path / "t.npz"
    r = run_cli("--prompt", "Hello there", "--generate", "3", "--out", str(out),
                "--weights", str(random_weights), "--quiet")
    assert r.returncode == 0, r.stderr
    t = load_trace(out)
    assert t.meta["prompt"] == "Hello there" and t.n_tokens == t.n_prompt_tokens + 3


@pytest.mark.parametrize("args,message", [
    (["--prompt", " "], "error: the prompt is empty"),
    (["--out", "/nonexistent-folder/t.npz"], "error: cannot write the trace to /nonexistent-folder/t.npz"),
    (["--weights", "/nonexistent.safetensors"], "error: weights file not found"),
])
def test_cli_user_errors_are_one_line(random_weights, tmp_path, args, message):
    base = {"--out": str(tmp_path / "t.npz"), "--weights": str(random_weights), "--generate": "1"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    r = run_cli(*[x for kv in base.items() for x in kv], "--quiet")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().startswith(message) and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_default_trace_ships_and_loads():
    t = load_trace(DEFAULT_TRACE)
    assert t.meta["prompt"] == DEFAULT_PROMPT and t.meta["chat"] is True
    assert t.n_tokens - t.n_prompt_tokens <= DEFAULT_GENERATE
    assert DEFAULT_TRACE.stat().st_size < 400_000


def test_recording_check_sees_a_real_difference(trace):
    """The tolerant comparison still fails on a change bigger than float noise, an id, or other experts."""
    assert_same_recording(trace, trace)

    def other_expert(a):
        a[0, 0, 0] = min(set(range(16)) - set(a[0, 0].tolist()))

    for name, edit in [("update_norm", lambda a: a.__setitem__((0, 0), a[0, 0] * 1.01)),
                       ("token_ids", lambda a: a.__setitem__(1, a[1] + 1)),
                       ("moe_topk_ids", other_expert)]:
        arrays = {k: v.copy() for k, v in trace.arrays.items()}
        edit(arrays[name])
        with pytest.raises(AssertionError):
            assert_same_recording(Trace(arrays, trace.meta), trace)


def test_recording_twice_on_one_machine_gives_identical_files(random_weights, tmp_path):
    """Bit-for-bit on the same machine: same arrays and the same file bytes (no time stamps inside)."""
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for out in paths:
        r = run_cli("--prompt", "Hello there", "--generate", "4", "--out", str(out), "--weights", str(random_weights),
                    "--quiet")
        assert r.returncode == 0, r.stderr
    assert paths[0].read_bytes() == paths[1].read_bytes()


@pytest.mark.slow
def test_default_trace_records_again(tok):
    """The shipped trace is what the bundled weights give today, on this CPU or another (re-record it after
    retraining)."""
    from toy_model.model import load_pretrained
    from toy_model.trace import file_sha256

    shipped = load_trace(DEFAULT_TRACE)
    rerecord = "re-record it: python -m toy_model trace --out traces/default.npz"
    assert shipped.meta["weights"].endswith(file_sha256(BUNDLED_WEIGHTS)[:16]), \
        f"traces/default.npz was recorded from other weights; {rerecord}"
    m = shipped.meta
    fresh = record_trace(load_pretrained(kernels="torch"), tok, m["prompt"], m["max_new_tokens"], m["seed"],
                         m["temperature"], m["chat"], progress=False, detail=Detail.from_meta(m))
    assert_same_recording(fresh, shipped, rerecord)


def test_zip_member_names_are_the_arrays(trace, tmp_path):
    path = save_trace(trace, tmp_path / "t.npz")
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == sorted([f"{n}.npy" for n in trace.arrays] + ["meta.npy"])
    assert set(ARRAYS) <= set(trace.arrays) <= set(ALL_ARRAYS)


# ------------------------------------------------------------------------------------------------
# schema version 2: capture, caches, optional groups


def test_recording_does_not_change_the_computation(model):
    """The forward with a Capture attached is the same computation: logits bit for bit, prefill and decode."""
    idx = torch.randint(0, 1024, (1, 45), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        plain = model(idx)
        captured = model(idx, capture=Capture())
        assert torch.equal(plain, captured)
        a, b = model.new_cache(), model.new_cache()
        out_a = [model(idx[:, :40], cache=a)] + [model(idx[:, t:t + 1], cache=a) for t in range(40, 45)]
        cap = Capture()
        out_b = [model(idx[:, :40], cache=b, capture=cap)] + [model(idx[:, t:t + 1], cache=b, capture=cap)
                                                             for t in range(40, 45)]
    assert all(torch.equal(x, y) for x, y in zip(out_a, out_b, strict=True))
    assert len(cap.calls) == 6 and cap.calls[-1].n_tokens == 45


def test_per_token_states_follow_the_recurrence(model, tok):
    """The states a trace derives from the chunked scan's chunk states are the per-step recurrence's, across
    chunk boundaries (a 70-token prompt over chunks of 32) and through decode steps."""
    from toy_model.kernels.ssd import ssd_recurrent_ref

    ids = torch.randint(0, 1024, (70,), generator=torch.Generator().manual_seed(4)).tolist()
    layer, head = 2, 3
    t = trace_from_ids(model, tok, ids, generate=3, detail=Detail(mamba_heads=((layer, head),)))
    mixer = model.layers[layer].mixer
    x = torch.as_tensor(t.mamba_detail_x[0])[None, :, None]  # (1, T, 1, P)
    delta = torch.as_tensor(t.mamba_delta[t.layer_slot(layer), :, head])
    dt = torch.log(torch.expm1(delta))[None, :, None]  # softplus^-1: feed Delta itself through the recurrence
    B, C = (torch.as_tensor(a[0])[None, :, None] for a in (t.mamba_detail_B, t.mamba_detail_C))
    A = torch.as_tensor(t.mamba_detail_A)
    y, _, states = ssd_recurrent_ref(x, dt, A, B, C, D=torch.as_tensor(t.mamba_detail_D),
                                     return_all_states=True)
    np.testing.assert_allclose(t.mamba_detail_state[0], states[0, :, 0].numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(t.mamba_detail_y[0], y[0, :, 0].numpy(), rtol=1e-3, atol=1e-4)
    norms = t.mamba_state_norm[t.layer_slot(layer), :, head]
    np.testing.assert_allclose(np.linalg.norm(t.mamba_detail_state[0], axis=(1, 2)), norms, rtol=1e-5)
    assert t.mamba_detail_chunk_states.shape[1] == 3 and mixer.cfg.chunk_size == 32  # 70 tokens: 3 chunks


def test_cache_sizes_are_recorded_per_step(trace, model):
    cfg = model.cfg
    P = trace.n_prompt_tokens
    np.testing.assert_array_equal(trace.cache_tokens, np.arange(P, trace.n_tokens + 1))
    kinds = [b.kind for b in model.layers]
    per_token = 2 * cfg.num_key_value_heads * cfg.head_dim * 4  # K and V, fp32
    mamba = 4 * (cfg.conv_dim * (cfg.conv_kernel - 1) + cfg.mamba_n_heads * cfg.mamba_head_dim * cfg.ssm_state_size)
    for i, kind in enumerate(kinds):
        col = trace.cache_bytes[:, i]
        if kind == "attention":
            np.testing.assert_array_equal(col, trace.cache_tokens * per_token)  # one row per token
        elif kind == "mamba":
            assert (col == mamba).all()  # fixed, whatever the length
        else:
            assert (col == 0).all()


def test_resid_detail_is_what_the_norms_measure(model, tok):
    t = record_trace(model, tok, "hello hello hello", generate=2, progress=False, detail=Detail(resid_layers=(3, 0)))
    np.testing.assert_array_equal(t.resid_detail_layers, [3, 0])
    for j, layer in enumerate(t.resid_detail_layers):
        np.testing.assert_allclose(np.linalg.norm(t.resid_detail_in[j], axis=-1), t.resid_norm_in[layer], rtol=1e-5)
    assert not t.has("mamba_detail") and t.has("resid_detail") and t.has("cache")


def test_a_version_1_trace_still_loads():
    """A trace written by the previous code (schema version 1, no groups), kept as a fixture."""
    old = load_trace(ROOT / "tests" / "fixtures" / "trace_v1.npz")
    assert old.meta["schema_version"] == 1 and not any(old.has(g) for g in GROUPS)
    TraceView(old)  # the scenes' views need only the version-1 arrays
    with pytest.raises(TraceError, match="this trace has no 'cache' arrays .* record one"):
        old.require("cache", "record one with python -m toy_model trace")


@pytest.mark.parametrize("args, message", [
    (["--detail", "mamba:1:0"], "layer 1 is not a Mamba-2 layer (the Mamba-2 layers are 0, 2"),
    (["--detail", "mamba:0:9"], "head 9 is outside 0..7"),
    (["--detail", "resid:15"], "layer 15 is outside 0..14"),
    (["--detail", "ssm:0"], "expected mamba:LAYER:HEAD, resid:LAYER, default or none"),
])
def test_bad_detail_is_one_line(random_weights, tmp_path, args, message):
    r = run_cli("--out", str(tmp_path / "t.npz"), "--weights", str(random_weights), "--generate", "1", "--quiet",
                *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "t.npz").exists()
