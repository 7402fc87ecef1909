"""The bundled model: trained, shipped, and able to answer the demo prompt."""

import subprocess
import sys

import pytest
import torch

from toy_model import load_pretrained
from toy_model.corpus import build_corpus
from toy_model.generation import DEFAULT_PROMPT, generate_text
from toy_model.model import DEFAULT_WEIGHTS, read_weights
from toy_model.tokenizer import load_tokenizer
from toy_model.training import eval_bits_per_byte, text_bytes, token_stream, unigram_bits_per_byte


@pytest.fixture(scope="module")
def model():
    return load_pretrained(kernels="torch")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_shipped_weights_are_small_and_safetensors():
    assert DEFAULT_WEIGHTS.suffix == ".safetensors"
    assert DEFAULT_WEIGHTS.stat().st_size < 5 * 2**20
    cfg, _, meta = read_weights(DEFAULT_WEIGHTS)
    assert cfg.pattern == "MEM*E" * 3 and cfg.moe_latent_size * 4 == cfg.d_model
    assert cfg.n_routed_experts >= 16 and cfg.num_experts_per_tok >= 4
    assert cfg.num_key_value_heads < cfg.num_attention_heads and cfg.n_groups > 1


@pytest.mark.slow
def test_held_out_loss_is_40_percent_below_unigram(model, tokenizer):
    train_docs, val_docs = build_corpus(0)
    train_ids, val_ids = token_stream(train_docs, tokenizer), token_stream(val_docs, tokenizer)
    n_bytes = text_bytes(val_docs)
    unigram = unigram_bits_per_byte(train_ids, val_ids, model.cfg.vocab_size, n_bytes)
    with torch.no_grad():
        bpb = eval_bits_per_byte(model, val_ids, n_bytes)
    assert bpb <= 0.6 * unigram, f"held-out {bpb:.3f} bits/byte vs unigram {unigram:.3f}"


def test_answers_the_default_prompt(model, tokenizer):
    _, new = generate_text(model, tokenizer, DEFAULT_PROMPT, max_new_tokens=300)
    answer = tokenizer.decode(new)
    lowered = answer.lower()
    assert "token" in lowered and "attention" in lowered, answer
    assert "layer" in lowered and ("rnn" in lowered or "parallel" in lowered), answer
    assert sum(ord(ch) > 0x2000 for ch in answer) >= 5, answer  # emoji, not just words


def test_generate_cli_prints_the_answer():
    r = subprocess.run([sys.executable, "-m", "toy_model", "generate", "--max-new-tokens", "120"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "token" in r.stdout.lower()
