"""Bad input at the command line and in files: one line, exit status 2, no traceback, nothing half-written.

Grouped by family, as the README's "Bad input" section lists them: usage errors, sampling values, prompts,
output paths (folders, devices, FIFOs, sockets, symlinks, two writers at once, SIGTERM), training options
and checkpoints, configs and weights (with fuzz tests of their parsers). Trace files have their own
tests/test_trace_file.py; the scene's parameters and render.sh theirs.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toy_model import ConfigError, HybridConfig, HybridLM, WeightsError
from toy_model.__main__ import main
from toy_model.files import OutputError, atomic_output, check_output
from toy_model.generation import PromptError, generate_text
from toy_model.model import DEFAULT_WEIGHTS, read_weights
from toy_model.tokenizer import load_tokenizer
from toy_model.trace import record_trace
from toy_model.trace_file import load_trace
from toy_model.training import TrainConfig, TrainError, train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(vocab_size=1024, d_model=32, mamba_n_heads=2, mamba_head_dim=16, ssm_state_size=16, n_groups=1,
            chunk_size=16, n_routed_experts=4, num_experts_per_tok=2, moe_latent_size=8, moe_intermediate_size=16,
            moe_shared_expert_intermediate_size=32, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
            pattern="ME*", max_seq_len=64)
fuzz = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def cli(capsys):
    """Run `python -m toy_model ...` in this process: (exit status, stdout, stderr)."""
    previous = signal.getsignal(signal.SIGTERM)

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err
    yield run
    signal.signal(signal.SIGTERM, previous)


def assert_one_line(code, err, needle):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Random weights with the tokenizer's vocabulary (fast to load and run)."""
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    torch.manual_seed(0)
    HybridLM(HybridConfig(**TINY)).save(path)
    return path


# ------------------------------------------------------------------------------------------------
# usage errors: argparse's own, in one line


@pytest.mark.parametrize("args, needle", [
    ([], "the following arguments are required: command"),
    (["paint"], "invalid choice: 'paint'"),
    (["generate", "--colour", "red"], "unrecognized arguments: --colour red"),
    (["generate", "--max-new-tokens"], "expected one argument"),
    (["generate", "--max-new-tokens", "-1"], "must be 0 or more, got -1"),
    (["generate", "--max-new-tokens", "ten"], "expected a whole number, got 'ten'"),
    (["generate", "--temperature", "nan"], "expected a finite number, got 'nan'"),
    (["generate", "--temperature", "inf"], "expected a finite number, got 'inf'"),
    (["generate", "--temperature", "-0.5"], "must be 0 (greedy) or more"),
    (["generate", "--seed", "-1"], "must be in 0..4294967295, got -1"),
    (["generate", "--seed", str(2**32)], "must be in 0..4294967295"),
    (["generate", "--kernels", "cuda"], "invalid choice: 'cuda'"),
    (["generate", "--prompt", "a", "--prompt-file", "b"], "not allowed with argument --prompt"),
    (["trace", "--generate", "-3", "--out", "t.npz"], "must be 0 or more, got -3"),
    (["trace", "--seed", "1.5", "--out", "t.npz"], "expected a whole number, got '1.5'"),
    (["trace"], "the following arguments are required: --out"),
    (["train", "--steps", "0"], "must be 1 or more, got 0"),
    (["train", "--batch-size", "-4"], "must be 1 or more"),
    (["train", "--lr", "0"], "must be more than 0"),
    (["train", "--lr", "nan"], "expected a finite number"),
    (["train", "--seq-len", "1e3"], "expected a whole number"),
])
def test_usage_errors_are_one_line(cli, args, needle):
    code, _, err = cli(*args)
    assert_one_line(code, err, needle)


# ------------------------------------------------------------------------------------------------
# sampling values through the library (the CLI refuses them in its option types)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(temperature=float("nan")), "temperature must be a finite number"),
    (dict(temperature=float("inf")), "temperature must be a finite number"),
    (dict(temperature=-1.0), "temperature must be a finite number, 0 (greedy) or more"),
    (dict(seed=-1), "seed must be a whole number in 0..4294967295"),
    (dict(seed=2**40), "seed must be a whole number"),
    (dict(seed=1.0), "seed must be a whole number"),
    (dict(max_new_tokens=-1), "number of new tokens must be a whole number, 0 or more"),
    (dict(max_new_tokens=True), "number of new tokens must be a whole number"),
])
@pytest.mark.parametrize("entry", ["generate", "trace"])
def test_sampling_values_are_checked_in_generate_and_trace_alike(tiny_weights, kwargs, needle, entry):
    from toy_model.model import load_pretrained

    model, tok = load_pretrained(tiny_weights), load_tokenizer()
    args = dict(temperature=0.0, seed=0, max_new_tokens=2) | kwargs
    with pytest.raises(PromptError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        if entry == "generate":
            generate_text(model, tok, "hi", **args)
        else:
            record_trace(model, tok, "hi", generate=args["max_new_tokens"], seed=args["seed"],
                         temperature=args["temperature"], progress=False)


def test_trace_refuses_weights_of_another_vocabulary_like_generate(cli, tmp_path):
    other = tmp_path / "v64.safetensors"
    HybridLM(HybridConfig(**(TINY | {"vocab_size": 64}))).save(other)
    for command in (["generate"], ["trace", "--out", tmp_path / "t.npz"]):
        code, _, err = cli(*command, "--weights", other, "--max-new-tokens" if command[0] == "generate"
                           else "--generate", "1")
        assert_one_line(code, err, "a vocabulary of 64 tokens, the tokenizer has 1024")
    assert not (tmp_path / "t.npz").exists()


def test_generate_output_never_fails_on_a_cut_character_or_a_narrow_terminal():
    """A token limit that cuts an emoji in half, printed to an ASCII-only terminal: U+FFFD / '?', exit 0."""
    from toy_model.model import load_pretrained

    tok = load_tokenizer()
    _, new = generate_text(load_pretrained(kernels="torch"), tok, max_new_tokens=120)
    cut = next(n for n in range(1, len(new)) if not _decodes(tok.decode_bytes(new[:n])))
    env = os.environ | {"PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    for encoding in ("ascii", "utf-8", "latin-1"):
        r = subprocess.run([sys.executable, "-m", "toy_model", "generate", "--max-new-tokens", str(cut)],
                           capture_output=True, env=env | {"PYTHONIOENCODING": encoding}, timeout=300)
        assert r.returncode == 0 and not r.stderr, r.stderr
        shown = r.stdout.decode(encoding)
        assert shown.rstrip("\n").endswith("?" if encoding != "utf-8" else "\ufffd"), shown


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# ------------------------------------------------------------------------------------------------
# prompts from a file or standard input


def test_prompt_file_and_stdin(cli, tiny_weights, tmp_path, monkeypatch):
    long_prompt = "Explain Mamba with emoji 🐍\nand keep it short"
    path = tmp_path / "prompt.txt"
    path.write_text(long_prompt + "\n", encoding="utf-8")
    code, _, err = cli("trace", "--prompt-file", path, "--weights", tiny_weights, "--generate", "1",
                       "--out", tmp_path / "a.npz", "--quiet")
    assert code == 0, err
    assert load_trace(tmp_path / "a.npz").meta["prompt"] == long_prompt
    monkeypatch.setattr(sys, "stdin", open(path, encoding="utf-8"))  # noqa: SIM115 - closed by monkeypatch
    code, _, err = cli("trace", "--prompt-file", "-", "--weights", tiny_weights, "--generate", "1",
                       "--out", tmp_path / "b.npz", "--quiet")
    assert code == 0, err
    assert load_trace(tmp_path / "b.npz").meta["prompt"] == long_prompt


@pytest.mark.parametrize("content, needle", [
    (None, "cannot read the prompt from"),
    ("folder", "is a folder, not a text file"),
    (b"\xff\xfeabc", "is not UTF-8 text (byte 0 is 0xff)"),
    (b"", "the prompt is empty"),
    (b"   \n", "the prompt is empty"),
    (b"word " * 300_000, "is over 1 MiB"),
    (b"word " * 600, "exceeds the supported context"),
])
@pytest.mark.parametrize("command", ["generate", "trace"])
def test_bad_prompt_files_are_one_line(cli, tiny_weights, tmp_path, content, needle, command):
    path = tmp_path / "prompt.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    extra = ["--out", tmp_path / "t.npz"] if command == "trace" else []
    code, _, err = cli(command, "--prompt-file", path, "--weights", tiny_weights, *extra)
    assert_one_line(code, err, needle)
    assert not (tmp_path / "t.npz").exists()


# ------------------------------------------------------------------------------------------------
# output paths: only regular files are written; symlinks are followed; nothing half-written


def _special(kind: str, tmp_path: Path) -> Path:
    if kind == "folder":
        (tmp_path / "out").mkdir()
        return tmp_path / "out"
    if kind == "device":
        return Path("/dev/null")
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return tmp_path / "fifo"
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(tmp_path / "sock"))
        return tmp_path / "sock"
    if kind == "link to device":
        (tmp_path / "link").symlink_to("/dev/null")
        return tmp_path / "link"
    if kind == "missing folder":
        return tmp_path / "no" / "t.out"
    raise AssertionError(kind)


SPECIAL = [("folder", "it is a folder"), ("device", "it is a character device"),
           ("fifo", "it is a FIFO (named pipe)"), ("socket", "it is a socket"),
           ("link to device", "(a link to /dev/null): it is a character device"),
           ("missing folder", "does not exist")]


@pytest.mark.parametrize("kind, needle", SPECIAL, ids=[k for k, _ in SPECIAL])
@pytest.mark.parametrize("command", ["trace", "train"])
def test_outputs_other_than_regular_files_are_refused_and_left_alone(cli, tiny_weights, tmp_path, kind, needle,
                                                                       command):
    target = _special(kind, tmp_path)
    before = os.stat(target) if os.path.lexists(target) and kind != "missing folder" else None
    if command == "trace":
        code, _, err = cli("trace", "--weights", tiny_weights, "--generate", "1", "--out", target, "--quiet")
    else:
        config = tmp_path / "tiny.json"
        config.write_text(json.dumps(TINY))
        code, _, err = cli("train", "--config", config, "--steps", "1", "--seq-len", "32",
                           "--run-dir", tmp_path / "run", "--out", target, "--quiet")
    assert_one_line(code, err, needle)
    if before is not None:  # the node itself: same inode, same kind, nothing written into it
        after = os.stat(target)
        assert (after.st_ino, after.st_mode, after.st_size) == (before.st_ino, before.st_mode, before.st_size)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()  # refused before any training


def test_a_symlink_is_written_through_and_kept(cli, tiny_weights, tmp_path):
    real, link, dangling = tmp_path / "real.npz", tmp_path / "link.npz", tmp_path / "dangling.npz"
    real.write_bytes(b"old")
    link.symlink_to(real)
    dangling.symlink_to(tmp_path / "created.npz")
    for out in (link, dangling):
        code, _, err = cli("trace", "--weights", tiny_weights, "--generate", "1", "--out", out, "--quiet")
        assert code == 0, err
        assert out.is_symlink()
    assert load_trace(real).n_tokens > 0 and load_trace(tmp_path / "created.npz").n_tokens > 0


def test_two_writers_of_one_path_never_mix(tmp_path):
    """Unique temp files, whole renames: the result is one writer's bytes or the other's."""
    target = tmp_path / "out.bin"
    with atomic_output(target) as a, atomic_output(target) as b:
        assert a != b and a.parent == b.parent == tmp_path
        a.write_bytes(b"A" * 100_000)
        b.write_bytes(b"B" * 50_000)
    assert target.read_bytes() == b"A" * 100_000  # the outer one renamed last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_two_trace_runs_at_once_each_write_a_whole_file(tiny_weights, tmp_path):
    out = tmp_path / "t.npz"
    cmd = [sys.executable, "-m", "toy_model", "trace", "--weights", str(tiny_weights), "--out", str(out), "--quiet"]
    runs = [subprocess.Popen(cmd + ["--prompt", p, "--generate", "20"], stderr=subprocess.PIPE)
            for p in ("first prompt", "second prompt")]
    assert all(r.wait(timeout=300) == 0 for r in runs)
    assert load_trace(out).meta["prompt"] in ("first prompt", "second prompt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


def test_sigterm_removes_the_temp_file(tmp_path):
    """SIGTERM while an output is half-written unwinds like Ctrl-C: the temp file goes, the old file stays."""
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    code = textwrap.dedent(f"""
        import os, signal
        from toy_model.files import atomic_output, exit_on_sigterm
        exit_on_sigterm()
        with atomic_output({str(target)!r}) as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_check_output_names_a_read_only_file(tmp_path):
    ro = tmp_path / "ro.bin"
    ro.write_bytes(b"x")
    ro.chmod(0o444)
    if os.access(ro, os.W_OK):
        pytest.skip("running as a user who can write read-only files (root)")
    with pytest.raises(OutputError, match="read-only"):
        check_output(ro)


# ------------------------------------------------------------------------------------------------
# training: options, outputs and checkpoints, checked before any work


def small_run(tmp_path, **kw) -> TrainConfig:
    return TrainConfig(**dict(steps=2, batch_size=2, seq_len=32, warmup=1, eval_every=0, checkpoint_every=100,
                              run_dir=str(tmp_path / "run")) | kw)


SILENT = dict(progress=False, log=lambda *a: None)


@pytest.mark.parametrize("change, needle", [
    (dict(seq_len=65), "seq_len must be a whole number, 1..64"),
    (dict(steps=0), "steps must be a whole number, 1 or more"),
    (dict(batch_size=2.0), "batch_size must be a whole number"),
    (dict(seed=-5), "seed must be a whole number, 0..4294967295"),
    (dict(lr=float("nan")), "lr must be a finite number above 0"),
    (dict(lr=-1e-3), "lr must be a finite number above 0"),
    (dict(weight_decay=float("inf")), "weight_decay must be a finite number of 0 or more"),
])
def test_training_options_are_checked_before_any_work(tmp_path, change, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        train(small_run(tmp_path, **change), HybridConfig(**TINY), **SILENT)
    assert not (tmp_path / "run").exists()


def test_training_never_writes_into_the_repository_by_default(tmp_path):
    before = DEFAULT_WEIGHTS.stat()
    tc = small_run(tmp_path)
    assert tc.out is None and tc.out_path == tmp_path / "run" / "model.safetensors"
    train(tc, HybridConfig(**TINY), **SILENT)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    after = DEFAULT_WEIGHTS.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    cfg, _, _ = read_weights(tmp_path / "run" / "model.safetensors")
    assert cfg.eos_token_id == load_tokenizer().eot_id  # the weights say which token ends an answer


def test_a_run_that_diverges_stops_naming_the_step_and_saves_nothing(tmp_path):
    with pytest.raises(TrainError, match=r"step \d: the loss .* or its gradient is not finite.*nothing was written"):
        train(small_run(tmp_path, lr=1e30, grad_clip=1e30), HybridConfig(**TINY | {"initializer_range": 10.0}),
              **SILENT)
    assert not list((tmp_path / "run").glob("*.safetensors"))


def test_non_finite_weights_are_never_saved(tmp_path):
    model = HybridLM(HybridConfig(**TINY))
    with torch.no_grad():
        model.norm_f.weight[3] = float("inf")
    with pytest.raises(WeightsError, match="norm_f.weight holds NaN or inf; nothing was written"):
        model.save(tmp_path / "w.safetensors")
    model.norm_f.weight.data.fill_(1e6)  # finite in fp32, inf in the fp16 file
    with pytest.raises(WeightsError, match="in float16 are not finite"):
        model.save(tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    train(small_run(tmp), HybridConfig(**TINY), until=1, **SILENT)
    return tmp / "run" / "checkpoint.safetensors"


def _rewrite(checkpoint, dest, drop=(), meta_change=None):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(checkpoint), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys() if not k.startswith(drop or "\0")}
    meta = {k: v for k, v in (meta | (meta_change or {})).items() if v is not None}
    save_file(tensors, str(dest), metadata=meta)


@pytest.mark.parametrize("damage, needle", [
    ("missing", "no checkpoint to resume from at"),
    ("folder", "it is a folder, not a regular file"),
    ("truncated", "is truncated or corrupted"),
    ("garbage", "is truncated or corrupted"),
    ("no step", "is incomplete: its metadata lacks a valid step"),
    ("bad step", "is incomplete: its metadata lacks a valid step, adam_step or config"),
    ("no optimiser", "is incomplete: the optimiser state of"),
    ("no weights", "missing embeddings.weight"),
    ("other config", "was written for another model config"),
])
def test_resume_from_a_bad_checkpoint_is_one_line(cli, checkpoint, tmp_path, damage, needle):
    run = tmp_path / "run"
    run.mkdir()
    dest = run / "checkpoint.safetensors"
    data = checkpoint.read_bytes()
    if damage == "folder":
        dest.mkdir()
    elif damage == "truncated":
        dest.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        dest.write_bytes(data[:8] + b"\x00" * 64 + data[72:])
    elif damage == "no step":
        _rewrite(checkpoint, dest, meta_change={"step": None})
    elif damage == "bad step":
        _rewrite(checkpoint, dest, meta_change={"step": "one"})
    elif damage == "no optimiser":
        _rewrite(checkpoint, dest, drop="optim.")
    elif damage == "no weights":
        _rewrite(checkpoint, dest, drop="model.embeddings")
    elif damage == "other config":
        _rewrite(checkpoint, dest, meta_change={"config": HybridConfig(**TINY | {"d_model": 48}).to_json()})
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    code, _, err = cli("train", "--config", config, "--steps", "2", "--batch-size", "2", "--seq-len", "32",
                       "--run-dir", run, "--resume", "--quiet")
    assert_one_line(code, err, needle)
    assert not (run / "model.safetensors").exists()


def test_run_dir_that_is_a_file_is_refused(cli, tmp_path):
    (tmp_path / "run").write_text("a file")
    code, _, err = cli("train", "--steps", "1", "--run-dir", tmp_path / "run")
    assert_one_line(code, err, "is not a folder")


def test_a_config_too_big_for_this_machine_is_refused_before_allocation(tmp_path):
    huge = HybridConfig(**TINY | {"d_model": 4_000_000, "moe_latent_size": 8})
    with pytest.raises(TrainError, match="parameters, which need .* GiB to train"):
        train(small_run(tmp_path), huge, **SILENT)


# ------------------------------------------------------------------------------------------------
# configs and weights metadata


@pytest.mark.parametrize("text, needle", [
    (b'{"d_model": true}', "d_model must be a positive integer, got True"),
    (b'{"d_model": "128"}', "d_model must be a positive integer, got '128'"),
    (b'{"norm_eps": "1e-5"}', "norm_eps must be a number"),
    (b'{"norm_eps": 0}', "norm_eps must be a number in (0, 1]"),
    (b'{"routed_scaling_factor": -2.5}', "routed_scaling_factor must be a number"),
    (b'{"chunk_size": 0}', "chunk_size must be a positive integer"),
    (b'{"time_step_min": 1.0}', "need time_step_min < time_step_max"),
    (b'{"initializer_range": 1e400}', "initializer_range must be a number"),
    (b'{"pattern": "MEM*E", "colour": 1}', "unknown config field(s): colour"),
    (b'[1, 2]', "must hold a JSON object"),
    (b'{"d_model": 12\xff8}', "cannot read the config file"),
    (b'[' * 100_000 + b']' * 100_000, "nested too deeply"),
    (b'{"norm_eps": NaN}', "norm_eps must be a number"),
])
def test_bad_training_configs_are_one_line(cli, tmp_path, text, needle):
    path = tmp_path / "cfg.json"
    path.write_bytes(text)
    code, _, err = cli("train", "--config", path, "--run-dir", tmp_path / "run")
    assert_one_line(code, err, needle)
    assert not (tmp_path / "run").exists()


def _weights_with_config(tmp_path, config_text: str) -> Path:
    from safetensors.torch import load_file, save_file

    path = tmp_path / "w.safetensors"
    save_file(load_file(str(DEFAULT_WEIGHTS)), str(path), metadata={"config": config_text})
    return path


@pytest.mark.parametrize("config_text, needle", [
    ('{"d_model": false}', "invalid config: d_model must be a positive integer, got False"),
    ('{"vocab_size": 1024, "norm_eps": Infinity}', "not valid JSON"),
    ('{"norm_eps": "small"}', "invalid config: norm_eps must be a number"),
    ("[" * 50_000, "not valid JSON"),
    ('{"d_model": 1000000, "moe_latent_size": 32}', "do not match this model's config"),
    ('"a string"', "invalid config: a config must be a JSON object"),
])
def test_weights_with_a_bad_config_are_one_line(cli, tmp_path, config_text, needle):
    code, _, err = cli("generate", "--weights", _weights_with_config(tmp_path, config_text))
    assert_one_line(code, err, needle)


@fuzz
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=8),
       st.dictionaries(st.sampled_from(sorted(HybridConfig().to_dict())),
                       st.none() | st.booleans() | st.integers(-3, 5000) | st.floats() | st.text(max_size=4)
                       | st.lists(st.none() | st.floats(), max_size=3), max_size=6))
def test_config_parsers_raise_only_config_error(anything, fields):
    """Random JSON and random field values: a HybridConfig or ConfigError, never another exception."""
    from toy_model.convert import config_from_nemotron_h

    for attempt in (lambda: HybridConfig.from_json(json.dumps(anything)),
                    lambda: HybridConfig.from_dict(fields),
                    lambda: config_from_nemotron_h(anything if isinstance(anything, dict) else {"x": anything}),
                    lambda: config_from_nemotron_h({"hidden_size": 48} | {k: v for k, v in fields.items()
                                                                          if k != "kernels"})):
        try:
            attempt()
        except ConfigError as e:
            assert "\n" not in str(e)


@pytest.fixture(scope="module")
def small_weights_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fz") / "w.safetensors"
    HybridLM(HybridConfig(**TINY | {"vocab_size": 64, "d_model": 16, "moe_latent_size": 4})).save(path)
    return path.read_bytes()


@fuzz
@given(st.data())
def test_weights_reader_raises_only_weights_error(small_weights_bytes, tmp_path, data):
    """Mutated, truncated and random weights files: read_weights returns or raises WeightsError."""
    raw = bytearray(small_weights_bytes)
    how = data.draw(st.sampled_from(["flip", "truncate", "random", "header"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "random":
        raw = bytearray(data.draw(st.binary(max_size=200)))
    else:  # a mutation inside the JSON header, where the config lives
        n = int.from_bytes(raw[:8], "little")
        raw[data.draw(st.integers(8, 8 + n - 1))] = data.draw(st.sampled_from(b'{}[]":,0129eE.-tnf \\\xff'))
    path = tmp_path / "w.safetensors"
    path.write_bytes(bytes(raw))
    try:
        read_weights(path)
    except WeightsError as e:
        assert "\n" not in str(e)
