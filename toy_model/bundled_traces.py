"""Traces shipped in traces/ that are more than one `python -m toy_model trace` command: how each is recorded,
so a test can record it again and compare (and a maintainer can re-record it after retraining).

    python -m toy_model.bundled_traces emoji_chat     # writes traces/emoji_chat.npz

emoji_chat.npz is the bundled model's whole answer to the default prompt, for scenes/emoji_chat.py: what

    python -m toy_model trace --generate 400 --out traces/emoji_chat.npz

records (the answer ends at <|endoftext|> after 284 tokens; 400 is only the cap), kept to the arrays of schema
version 1 (the optional groups of version 2 are not needed by the scene), with `attn_weights` stored as
float16. The format allows any float dtype; float16 halves that array, the largest by far ((La, T, Q, T):
3 x 294 x 4 x 294), which keeps the file under 2 MB (about 1.3 MB instead of 2.2 MB). Its values are rounded
to float16's 11 significant bits (relative error at most 2^-11, about 5e-4; 2^-25 absolute below 2^-14), far
finer than anything a scene draws.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toy_model.trace_file import ARRAYS, Trace, make_trace, save_trace

TRACES = Path(__file__).resolve().parents[1] / "traces"


@dataclass(frozen=True)
class Recipe:
    path: Path
    prompt: str | None = None  # None: the default prompt
    generate: int = 400
    float16: tuple[str, ...] = ()  # float arrays stored as float16
    schema_version: int = 1  # 1: only the arrays of version 1 are kept


RECIPES = {"emoji_chat": Recipe(TRACES / "emoji_chat.npz", generate=400, float16=("attn_weights",))}


def record(name: str, *, compact: bool = True) -> Trace:
    """Record the bundled trace `name` with the bundled weights; compact=False keeps every array float32 (what the
    recording computed, before the float16 rounding)."""
    import torch

    from toy_model.generation import DEFAULT_PROMPT
    from toy_model.model import DEFAULT_WEIGHTS, load_pretrained
    from toy_model.tokenizer import load_tokenizer
    from toy_model.trace import file_sha256, record_trace

    r = RECIPES[name]
    with torch.no_grad():
        trace = record_trace(load_pretrained(DEFAULT_WEIGHTS, kernels="torch"), load_tokenizer(),
                             r.prompt or DEFAULT_PROMPT, r.generate, progress=False,
                             weights=f"{DEFAULT_WEIGHTS.name} sha256:{file_sha256(DEFAULT_WEIGHTS)[:16]}")
    return compacted(trace, r) if compact else trace


def compacted(trace: Trace, recipe: Recipe) -> Trace:
    """The trace as the recipe stores it: version 1's arrays only (if asked), some of them as float16."""
    names = ARRAYS if recipe.schema_version == 1 else trace.arrays
    arrays = {n: trace.arrays[n].astype(np.float16) if n in recipe.float16 else trace.arrays[n] for n in names}
    return make_trace(arrays, dict(trace.meta) | {"schema_version": recipe.schema_version})


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    unknown = [n for n in names if n not in RECIPES]
    if not names or unknown:
        print(f"error: give the traces to record: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    for name in names:
        trace = record(name)
        path = save_trace(trace, RECIPES[name].path)
        print(f"wrote {path}: {trace.n_tokens} tokens ({trace.n_prompt_tokens} prompt), "
              f"{path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
