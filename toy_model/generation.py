"""Prompts in, text out: the chat format the bundled model was trained on, and checked inputs.

Training documents are separated by <|endoftext|>, and chat documents read
"User: {question}\\nAssistant: {answer}". A prompt therefore starts with <|endoftext|> and ends
with "Assistant:", and generation stops at the next <|endoftext|>.
"""

from __future__ import annotations

import math

import torch

from toy_model.model import WeightsError

DEFAULT_PROMPT = "Explain transformers with emoji"


class PromptError(ValueError):
    """A prompt or sampling setting the model cannot take (said in one line by the CLI)."""


def check_sampling(temperature: float, seed: int, max_new_tokens: int) -> None:
    """PromptError unless temperature is finite and >= 0, seed in 0..2^32-1 and max_new_tokens >= 0."""
    from toy_model.options import MAX_SEED

    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
            not math.isfinite(temperature) or temperature < 0:
        raise PromptError(f"the temperature must be a finite number, 0 (greedy) or more, got {temperature!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise PromptError(f"the seed must be a whole number in 0..{MAX_SEED}, got {seed!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise PromptError(f"the number of new tokens must be a whole number, 0 or more, got {max_new_tokens!r}")


def format_chat(prompt: str) -> str:
    return f"User: {prompt}\nAssistant:"


def encode_prompt(tokenizer, prompt: str, max_len: int, new_tokens: int = 0, chat: bool = True) -> list[int]:
    """Token ids for a prompt, or PromptError if it is empty or does not fit the context."""
    if not prompt or not prompt.strip():
        raise PromptError("the prompt is empty: give some text with --prompt or --prompt-file")
    ids = [tokenizer.eot_id] + tokenizer.encode(format_chat(prompt) if chat else prompt)
    if len(ids) + new_tokens > max_len:
        raise PromptError(f"the prompt is {len(ids)} tokens; with {new_tokens} new tokens that exceeds the "
                          f"supported context of {max_len} tokens")
    return ids


def check_vocabulary(model, tokenizer):
    if model.cfg.vocab_size != tokenizer.vocab_size:
        raise WeightsError(f"these weights were written for another config: a vocabulary of "
                           f"{model.cfg.vocab_size} tokens, the tokenizer has {tokenizer.vocab_size}")


def generate_text(model, tokenizer, prompt: str = DEFAULT_PROMPT, max_new_tokens: int = 200,
                  temperature: float = 0.0, seed: int = 0, chat: bool = True, on_token=None) -> tuple[list, list]:
    """(prompt ids, generated ids) for a prompt; stops at <|endoftext|> (not included)."""
    check_sampling(temperature, seed, max_new_tokens)
    check_vocabulary(model, tokenizer)
    ids = encode_prompt(tokenizer, prompt, model.cfg.max_seq_len, max_new_tokens, chat)
    idx = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    out = model.generate(idx, max_new_tokens, temperature=temperature, seed=seed,
                         stop_id=tokenizer.eot_id, on_token=on_token)[0].tolist()
    new = out[len(ids):]
    if new and new[-1] == tokenizer.eot_id:
        new = new[:-1]
    return ids, new
