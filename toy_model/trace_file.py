"""The trace file: a model's activations, token by token and layer by layer, in one numpy .npz.

    model --(toy_model.trace, torch)--> trace.npz --(this module, numpy only)--> scenes, notebooks

A trace is a plain `np.savez_compressed` archive, loadable with `allow_pickle=False`: one array per
recorded quantity plus `meta`, a 0-d unicode array holding JSON (schema version, model config,
prompt, seed, generated text). Arrays are stacked per layer kind (all Mamba-2 layers together, all
MoE layers together, ...) so nothing is padded; `meta["pattern"]` maps layer i to its stack and
slot. `ARRAYS` (always present) and `GROUPS` (optional groups, schema version 2: the cache's size per step,
chosen Mamba-2 heads in full, residual vectors entering chosen layers) below are the format's single source
of truth: `load_trace` checks every entry and docs/trace_format.md describes the same tables.

`load_trace` is the boundary: the scenes load a trace before they draw anything, so every check they
rely on is made here, and any file at all gives either a valid Trace or one TraceError line. It reads
the archive itself (zipfile and np.lib.format, never np.load) so that every size is checked against
the limits below before anything is decompressed: a damaged, hostile or enormous file cannot make it
hang, exhaust memory or raise anything else.

This module must not import torch (directly or through toy_model/__init__, which is lazy): the
scenes read traces without the model.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import stat
import struct
import unicodedata
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from toy_model.files import OutputError, atomic_output
from toy_model.kinds import BY_CHAR

SCHEMA_VERSION = 2  # what save_trace writes; bump on any change an older reader would misread
READS_VERSIONS = (1, 2)  # version 1: ARRAYS only; version 2 adds the optional GROUPS
FORMAT_NAME = "toy_model.trace"
N_PREDICTIONS = 5  # P, top next-token predictions kept per position

# Limits. The loader checks them before it decompresses anything (declared sizes first, then every .npy
# header), so a file cannot make it hang or run out of memory. Real traces are far below them: the default
# trace holds 170 KB uncompressed, and a full-context (512-token) trace of the toy model about 13 MB.
MAX_TRACE_BYTES = 256 * 2**20  # the file, and all its members together once uncompressed
MAX_META_BYTES = 4 * 2**20  # the `meta` member uncompressed: 1 Mi characters of JSON (parsed, JSON takes
#                             several times the memory of its text, so it gets a budget of its own)
MAX_META_DEPTH = 32  # nesting of the metadata JSON (a trace's is 2 deep): deeper breaks recursive readers
MAX_TEXT_CHARS = 1024  # characters in one token_text / token_hex / pred_text entry: scenes draw each one
MAX_NPY_HEADER = 4096  # bytes of one .npy header (numpy writes 128 for a trace's arrays)
MAX_ZIP_DIRECTORY = 64 * 2**10  # bytes of the zip's central directory (a trace's 20 members need 2 KB)

# Layer pattern characters (toy_model.kinds) and the stack each kind's arrays live in.
KIND_OF_CHAR = {c: kind.name for c, kind in BY_CHAR.items()}
STACK_DIM = {"mamba": "Lm", "moe": "Le", "attention": "La"}

# Shape symbols: L layers, Lm / Le / La layers of each kind, T tokens, P predictions, H Mamba-2 heads,
# E routed experts, k experts per token, Q attention query heads; for the optional groups: S model calls
# (the prefill, then one per decode step), Dh detail heads, HP head dim, NS state size, CH prefill chunks,
# Dr residual-detail layers, d model width, two a pair.
DIM_NAMES = {"L": "n_layers", "Lm": "n_mamba_layers", "Le": "n_moe_layers", "La": "n_attention_layers",
             "T": "n_tokens", "P": "n_predictions", "H": "mamba_heads", "E": "n_experts",
             "k": "experts_per_token", "Q": "attention_heads", "S": "n_model_calls", "Dh": "n_detail_heads",
             "HP": "mamba_head_dim", "NS": "ssm_state_size", "CH": "n_prefill_chunks",
             "Dr": "n_detail_resid_layers", "d": "d_model", "two": "2"}


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[str, ...]
    kind: str  # "int", "float" or "text"
    doc: str
    range: tuple[float, float] | None = None  # float arrays: the values it may hold, [lo, hi]
    text: str | None = None  # text arrays: "display" (no control characters) or "hex" (lowercase hex digits)


_NONNEG = (0.0, math.inf)  # norms, Delta, gate weights
_UNIT = (0.0, 1.0)  # probabilities, shares, decays

ARRAYS: dict[str, ArraySpec] = {
    # ---- tokens and predictions
    "token_ids": ArraySpec(("T",), "int", "token id at each position, prompt then generated tokens"),
    "token_text": ArraySpec(("T",), "text", "display text of each token: a multi-byte character split across "
                            "tokens is shown whole on the token that completes it ('' on the earlier ones); "
                            "newline as '↵', tab as '⇥', other control characters as '\\x01' etc.",
                            text="display"),
    "token_hex": ArraySpec(("T",), "text", "the token's raw bytes as lowercase hex (e.g. 'f09f'), "
                           "for tokens whose text is ''", text="hex"),
    "pred_ids": ArraySpec(("T", "P"), "int", "top-5 next-token predictions after this position, "
                          "most likely first"),
    "pred_probs": ArraySpec(("T", "P"), "float", "their probabilities (softmax of the logits, "
                            "temperature 1)", range=_UNIT),
    "pred_text": ArraySpec(("T", "P"), "text", "their display text in context (completes a pending "
                           "multi-byte character; '' if still partial)", text="display"),
    # ---- the residual stream, every layer
    "resid_norm_in": ArraySpec(("L", "T"), "float", "L2 norm of the residual stream entering block i",
                               range=_NONNEG),
    "resid_norm_out": ArraySpec(("L", "T"), "float", "L2 norm of the residual stream leaving block i",
                                range=_NONNEG),
    "update_norm": ArraySpec(("L", "T"), "float", "L2 norm of block i's update mixer(norm(x)), "
                             "the part it adds to the stream", range=_NONNEG),
    # ---- Mamba-2 (M)
    "mamba_delta": ArraySpec(("Lm", "T", "H"), "float", "Delta = softplus(dt + dt_bias) per head: "
                             "how much of this token is written into the state", range=_NONNEG),
    "mamba_decay": ArraySpec(("Lm", "T", "H"), "float", "exp(A Delta) per head, in (0, 1]: the fraction "
                             "of the previous state kept", range=_UNIT),
    "mamba_state_norm": ArraySpec(("Lm", "T", "H"), "float", "Frobenius norm of each head's (P, N) state "
                                  "after this token", range=_NONNEG),
    # ---- MoE / LatentMoE (E)
    "moe_scores": ArraySpec(("Le", "T", "E"), "float", "sigmoid router score of every routed expert",
                            range=_UNIT),
    "moe_topk_ids": ArraySpec(("Le", "T", "k"), "int", "the k chosen experts (top-k of score + "
                              "correction bias), distinct"),
    "moe_topk_weights": ArraySpec(("Le", "T", "k"), "float", "their gate weights: scores renormalised over "
                                  "the k, times routed_scaling_factor", range=_NONNEG),
    "moe_latent_norm": ArraySpec(("Le", "T"), "float", "L2 norm of the latent vector z = W_down x "
                                 "(of x itself for a plain MoE)", range=_NONNEG),
    "moe_shared_share": ArraySpec(("Le", "T"), "float", "|shared| / (|routed| + |shared|): the shared "
                                  "expert's share of the update", range=_UNIT),
    "moe_correction_bias": ArraySpec(("Le", "E"), "float", "the router's e_score_correction_bias (constant "
                                     "over a trace)"),
    # ---- attention (*)
    "attn_weights": ArraySpec(("La", "T", "Q", "T"), "float", "softmax attention weights [layer, query, "
                              "head, key]; rows sum to 1, zero for keys after the query (causal)", range=_UNIT),
}
RANGE_SLACK = 1e-4  # float rounding allowed above a range's upper end (a softmax in float16 may exceed 1)

# Optional groups (schema version 2): each is in a trace whole or not at all; a trace without one still
# loads, and a scene that needs one asks with Trace.require(group). The big ones are recorded only for the
# layers and heads asked (python -m toy_model trace --detail ...), so default traces stay small.
GROUPS: dict[str, dict[str, ArraySpec]] = {
    "cache": {
        "cache_tokens": ArraySpec(("S",), "int", "tokens the generation cache holds after model call s (the "
                                  "prefill, then one call per decode step)"),
        "cache_bytes": ArraySpec(("S", "L"), "int", "bytes each layer's cache holds then: a Mamba-2 layer's conv "
                                 "window and SSM state (fixed), an attention layer's keys and values (one row per "
                                 "token), 0 for MoE and MLP layers"),
    },
    "mamba_detail": {
        "mamba_detail_heads": ArraySpec(("Dh", "two"), "int", "the (layer, head) pairs recorded in detail"),
        "mamba_detail_A": ArraySpec(("Dh",), "float", "A = -exp(A_log) of each head (negative)",
                                    range=(-math.inf, 0.0)),
        "mamba_detail_D": ArraySpec(("Dh",), "float", "D of each head: the skip y += D x"),
        "mamba_detail_x": ArraySpec(("Dh", "T", "HP"), "float", "the head's input x_t (after the causal conv and "
                                    "SiLU)"),
        "mamba_detail_B": ArraySpec(("Dh", "T", "NS"), "float", "B_t of the head's group: how the token is "
                                    "written into the state"),
        "mamba_detail_C": ArraySpec(("Dh", "T", "NS"), "float", "C_t of the head's group: how the state is read "
                                    "out"),
        "mamba_detail_y": ArraySpec(("Dh", "T", "HP"), "float", "the scan's output y_t = C_t h_t + D x_t, before "
                                    "the gate and the norm"),
        "mamba_detail_state": ArraySpec(("Dh", "T", "HP", "NS"), "float", "the state h_t (P x N) after each token: "
                                        "h_t = exp(A Delta_t) h_(t-1) + Delta_t x_t B_t^T"),
        "mamba_detail_chunk_states": ArraySpec(("Dh", "CH", "HP", "NS"), "float", "the state entering each chunk "
                                               "of the prefill, as the chunked scan passes it on (its step 3)"),
    },
    "resid_detail": {
        "resid_detail_layers": ArraySpec(("Dr",), "int", "the layers whose incoming residual stream is recorded"),
        "resid_detail_in": ArraySpec(("Dr", "T", "d"), "float", "the residual stream vector entering the layer "
                                     "(what its RMSNorm reads), per token"),
    },
}
GROUP_OF = {name: group for group, specs in GROUPS.items() for name in specs}
ALL_ARRAYS: dict[str, ArraySpec] = ARRAYS | {name: spec for specs in GROUPS.values() for name, spec in specs.items()}

# Metadata keys every trace must carry, with their JSON types.
META_REQUIRED = {"format": str, "schema_version": int, "pattern": str, "prompt": str, "n_prompt_tokens": int,
                 "seed": int, "temperature": (int, float), "chat": bool, "generated_text": str,
                 "model_config": dict}

# model_config keys a scene shows next to the arrays (block_flow's legend: "top-k of E experts"); when a
# trace with MoE layers has them, they must agree with the arrays' sizes.
CONFIG_SIZES = {"n_routed_experts": "E", "num_experts_per_tok": "k"}


class TraceError(ValueError):
    """A trace file or trace that cannot be used, said in one line (the CLI prints it as `error: ...`)."""


# ------------------------------------------------------------------------------------------------
# the in-memory trace


@dataclass
class Trace:
    """All arrays of ARRAYS and of any optional GROUPS (numpy arrays) plus the metadata dict; built by
    `make_trace` or `load_trace`."""

    arrays: dict[str, np.ndarray]
    meta: dict

    def __getattr__(self, name):  # trace.update_norm etc.
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"Trace has no attribute {name!r}")

    # ---- optional groups
    def has(self, group: str) -> bool:
        """Whether the trace holds the optional group (see GROUPS)."""
        return next(iter(GROUPS[group])) in self.arrays

    def require(self, group: str, hint: str = "") -> None:
        """TraceError, in one line, unless the trace holds `group`; `hint` says how to record one."""
        if not self.has(group):
            raise TraceError(f"this trace has no {group!r} arrays (schema version {self.meta.get('schema_version')})"
                             + (f"; {hint}" if hint else ""))

    # ---- sizes
    @property
    def pattern(self) -> str:
        return self.meta["pattern"]

    @property
    def n_layers(self) -> int:
        return len(self.pattern)

    @property
    def n_tokens(self) -> int:
        return int(self.arrays["token_ids"].shape[0])

    @property
    def n_prompt_tokens(self) -> int:
        return int(self.meta["n_prompt_tokens"])

    def is_generated(self, t: int) -> bool:
        return t >= self.n_prompt_tokens

    # ---- layers
    def layer_kind(self, i: int) -> str:
        """'mamba', 'moe', 'attention' or 'mlp' for layer i."""
        return KIND_OF_CHAR[self.pattern[i]]

    def layer_slot(self, i: int) -> int:
        """Index of layer i inside its kind's stack (e.g. the 3rd Mamba-2 layer has slot 2)."""
        return self.pattern[:i].count(self.pattern[i])

    def layers_of(self, kind: str) -> list[int]:
        return [i for i, c in enumerate(self.pattern) if KIND_OF_CHAR[c] == kind]

    def mamba(self, i: int, t: int) -> dict[str, np.ndarray]:
        """Layer i (a Mamba-2 layer) at token t: delta, decay, state_norm (H,) and prev_state_norm (H,)."""
        s = self._slot(i, "mamba")
        norms = self.arrays["mamba_state_norm"][s]
        prev = norms[t - 1] if t > 0 else np.zeros_like(norms[t])
        return {"delta": self.arrays["mamba_delta"][s, t], "decay": self.arrays["mamba_decay"][s, t],
                "state_norm": norms[t], "prev_state_norm": prev}

    def moe(self, i: int, t: int) -> dict[str, np.ndarray]:
        """Layer i (an MoE layer) at token t: scores (E,), topk_ids (k,), topk_weights (k,), latent_norm,
        shared_share."""
        s = self._slot(i, "moe")
        a = self.arrays
        return {"scores": a["moe_scores"][s, t], "topk_ids": a["moe_topk_ids"][s, t],
                "topk_weights": a["moe_topk_weights"][s, t], "latent_norm": float(a["moe_latent_norm"][s, t]),
                "shared_share": float(a["moe_shared_share"][s, t])}

    def attention(self, i: int, t: int) -> np.ndarray:
        """Layer i (an attention layer) at query token t: weights (Q, t + 1) over keys 0..t."""
        return self.arrays["attn_weights"][self._slot(i, "attention"), t, :, : t + 1]

    def _slot(self, i: int, kind: str) -> int:
        assert self.layer_kind(i) == kind, f"layer {i} is {self.layer_kind(i)}, not {kind}"
        return self.layer_slot(i)

    # ---- text
    def display_text(self, t: int) -> str:
        """Token t as text to show: its display text, or its bytes as '‹f0 9f›' when it holds only part of a
        character."""
        text = str(self.arrays["token_text"][t])
        return text if text else _hex_display(str(self.arrays["token_hex"][t]))

    def predictions(self, t: int) -> list[tuple[int, str, float]]:
        """(id, display text, probability) of the top next-token predictions after position t."""
        a = self.arrays
        return [(int(a["pred_ids"][t, j]), str(a["pred_text"][t, j]) or "‹partial›",
                 float(a["pred_probs"][t, j])) for j in range(a["pred_ids"].shape[1])]

    @property
    def generated_text(self) -> str:
        return self.meta["generated_text"]


def _hex_display(hexstr: str) -> str:
    return "‹" + " ".join(hexstr[i:i + 2] for i in range(0, len(hexstr), 2)) + "›"


def make_trace(arrays: dict[str, np.ndarray], meta: dict) -> Trace:
    """A validated Trace from arrays and metadata; fills `format` and `schema_version` if missing."""
    meta = {"format": FORMAT_NAME, "schema_version": SCHEMA_VERSION} | dict(meta)
    trace = Trace({k: np.asarray(v) for k, v in arrays.items()}, meta)
    validate(trace, "trace")
    return trace


# ------------------------------------------------------------------------------------------------
# token text


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("⇥")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch) == "Cc":  # other C0 and C1 controls, DEL
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


class TextStream:
    """Turns token bytes into display text one token at a time, keeping a split UTF-8 character pending
    until the token that completes it. Invalid bytes show as U+FFFD."""

    def __init__(self):
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, piece: bytes) -> str:
        return _escape(self._dec.decode(piece, final=False))

    def peek(self, piece: bytes) -> str:
        """What push(piece) would show, without consuming it (for next-token predictions)."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        dec.setstate(self._dec.getstate())
        return _escape(dec.decode(piece, final=False))


def display_texts(pieces: list[bytes]) -> list[str]:
    """Display text of each token of a sequence, given each token's bytes."""
    stream = TextStream()
    return [stream.push(p) for p in pieces]


# ------------------------------------------------------------------------------------------------
# validation


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _clip(s: str, limit: int = 160) -> str:
    """s on one line, at most `limit` characters (messages quote values and errors from the file)."""
    s = s if s.isprintable() else repr(s)[1:-1]
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return _clip(s.splitlines()[0]) if s else type(e).__name__


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB"


def _meta_json(meta: dict) -> str:
    """The metadata as save_trace writes it."""
    return json.dumps(meta, sort_keys=True, ensure_ascii=False)


def _check_meta_values(meta: dict, where: str) -> None:
    """Metadata that is at most MAX_META_DEPTH deep, whose text encodes as UTF-8, and that save_trace can write
    within MAX_META_BYTES.

    The walk is iterative, so no depth makes it recurse. A lone surrogate ('\\ud800', which JSON can spell
    as an escape) would crash Pango the moment a scene draws it, and it cannot be encoded to UTF-8 anyway.
    """
    stack: list[tuple[object, int, str | None]] = [(meta, 1, None)]
    while stack:
        value, depth, top = stack.pop()
        if depth > MAX_META_DEPTH:
            raise TraceError(f"{where}: metadata {top!r} is nested more than {MAX_META_DEPTH} levels deep")
        if isinstance(value, dict):
            for key, v in value.items():
                stack.append((key, depth, top or str(key)))
                stack.append((v, depth + 1, top or str(key)))
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1, top) for v in value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                raise TraceError(f"{where}: metadata {_clip(repr(top or value), 60)} holds text that does not "
                                 f"encode as UTF-8 (U+{ord(value[e.start]):04X}, a lone surrogate)") from None
    try:
        text = _meta_json(meta)
    except (TypeError, ValueError, RecursionError) as e:
        raise TraceError(f"{where}: metadata cannot be written as JSON ({_first_line(e)})") from None
    if 4 * len(text) > MAX_META_BYTES - MAX_NPY_HEADER:  # stored as '<U...': 4 bytes a character
        raise TraceError(f"{where}: metadata takes {4 * len(text)} bytes as stored, more than a trace may hold "
                         f"({_mib(MAX_META_BYTES)})")


def _codepoints(a: np.ndarray) -> np.ndarray:
    """A unicode array's code points as uint32, with one more axis: its fixed width, padded with NULs."""
    width = a.dtype.itemsize // 4
    if width == 0:
        return np.zeros(a.shape + (0,), np.uint32)
    native = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    return native.view(np.uint32).reshape(a.shape + (width,))


def _text_problem(a: np.ndarray, rule: str | None) -> str | None:
    """What is wrong with the strings of a unicode array (vectorised: a trace may hold millions), or None.

    Numpy strings can hold what Python strings cannot encode (lone surrogates, code points past U+10FFFF);
    they would crash the scene that draws them, or numpy's own str().
    """
    c = _codepoints(a)
    pad = np.flip(np.logical_and.accumulate(np.flip(c == 0, -1), -1), -1)  # trailing NULs: numpy's padding

    def first(mask: np.ndarray, what: str) -> str | None:
        if not mask.any():
            return None
        at = tuple(int(i) for i in np.argwhere(mask)[0])
        return f"{what} (U+{int(c[at]):04X} at {list(at[:-1])}, character {at[-1]})"

    problem = first(((c >= 0xD800) & (c <= 0xDFFF)) | (c > 0x10FFFF),
                    "text that does not encode as UTF-8: a lone surrogate or a code point past U+10FFFF")
    if problem is None and rule == "display":
        problem = first(((c < 0x20) | ((c >= 0x7F) & (c <= 0x9F))) & ~pad,
                        "a control character (display text shows them escaped, e.g. '\\x01')")
    if problem is None and rule == "hex":
        digit = ((c >= 0x30) & (c <= 0x39)) | ((c >= 0x61) & (c <= 0x66))
        problem = first(~digit & ~pad, "a character that is not a lowercase hex digit")
        odd = (~pad).sum(-1) % 2 == 1
        if problem is None and odd.any():
            problem = f"hex of odd length at {[int(i) for i in np.argwhere(odd)[0]]}"
    lengths = (~pad).sum(-1)
    if problem is None and rule is not None and lengths.size and lengths.max() > MAX_TEXT_CHARS:
        at = [int(i) for i in np.argwhere(lengths > MAX_TEXT_CHARS)[0]]
        problem = f"an entry of {int(lengths[tuple(at)])} characters at {at} (at most {MAX_TEXT_CHARS})"
    return problem


def validate(trace: Trace, where: str = "trace") -> None:
    """Raise TraceError naming the first problem: metadata, a missing or unknown array, dtype, shape, values,
    or sizes the scenes cannot draw.

    Everything a scene relies on is checked here, so a scene never fails after it has started rendering.
    """
    meta, arrays = trace.meta, trace.arrays
    if meta.get("format") != FORMAT_NAME:
        raise TraceError(f"{where} is not a trace (metadata format is {_clip(repr(meta.get('format')), 60)}, "
                         f"expected {FORMAT_NAME!r})")
    version = meta.get("schema_version")
    if version not in READS_VERSIONS or isinstance(version, bool):
        raise TraceError(f"{where} has unsupported schema version {_clip(repr(version), 60)} "
                         f"(this loader reads versions {', '.join(map(str, READS_VERSIONS))})")
    for key, typ in META_REQUIRED.items():
        if key not in meta:
            raise TraceError(f"{where}: metadata key {key!r} is missing")
        if not isinstance(meta[key], typ) or (typ is int and isinstance(meta[key], bool)):
            raise TraceError(f"{where}: metadata key {key!r} has the wrong type ({type(meta[key]).__name__})")
    pattern = meta["pattern"]
    bad = sorted(set(pattern) - set(KIND_OF_CHAR))
    if not pattern or bad:
        raise TraceError(f"{where}: metadata pattern {_clip(repr(pattern), 60)} is not a layer pattern of M, E, "
                         f"* and -")
    _check_meta_values(meta, where)

    known = ARRAYS if version == 1 else ALL_ARRAYS
    for name in arrays:
        if name not in known:
            raise TraceError(f"{where}: unknown array {_clip(repr(name), 60)} (not an array of the trace format, "
                             f"schema version {version})")
    for name in ARRAYS:
        if name not in arrays:
            raise TraceError(f"{where}: missing array {name!r}")
    specs = dict(ARRAYS)
    for group, members in GROUPS.items():
        present = [n for n in members if n in arrays]
        if present and len(present) < len(members):
            missing = next(n for n in members if n not in arrays)
            raise TraceError(f"{where}: the {group!r} group is incomplete: it has {present[0]!r} but not {missing!r}")
        if present:
            specs.update(members)

    cfg = meta["model_config"]
    dims: dict[str, int] = {
        "L": len(pattern), "Lm": pattern.count("M"), "Le": pattern.count("E"), "La": pattern.count("*"),
        "P": N_PREDICTIONS, "two": 2,
    }
    for name, spec in specs.items():
        a = arrays[name]
        if spec.kind == "int" and a.dtype.kind not in "iu":
            raise TraceError(f"{where}: array {name!r} has dtype {a.dtype}, expected an integer dtype")
        if spec.kind == "float" and a.dtype.kind != "f":
            raise TraceError(f"{where}: array {name!r} has dtype {a.dtype}, expected a float dtype")
        if spec.kind == "text" and a.dtype.kind != "U":
            raise TraceError(f"{where}: array {name!r} has dtype {a.dtype}, expected a unicode string dtype")
        if a.ndim != len(spec.shape):
            raise TraceError(f"{where}: array {name!r} has shape {_shape_str(a.shape)}, expected "
                             f"{len(spec.shape)} dimensions {_shape_str(DIM_NAMES[s] for s in spec.shape)}")
        for axis, sym in enumerate(spec.shape):
            dims.setdefault(sym, a.shape[axis])  # the first array that has a free size fixes it
        expected = tuple(dims[s] for s in spec.shape)
        if a.shape != expected:
            raise TraceError(f"{where}: array {name!r} has shape {_shape_str(a.shape)}, expected "
                             f"{_shape_str(expected)} {_shape_str(DIM_NAMES[s] for s in spec.shape)}")
        if spec.kind == "float" and not np.isfinite(a).all():
            raise TraceError(f"{where}: array {name!r} holds NaN or inf")
        if spec.range is not None and a.size:
            lo, hi = spec.range
            if a.min() < lo or a.max() > hi + RANGE_SLACK:
                span = "negative values" if hi == math.inf else f"values outside [{lo:g}, {hi:g}]"
                raise TraceError(f"{where}: array {name!r} holds {span}")
        if spec.kind == "text":
            problem = _text_problem(a, spec.text)
            if problem:
                raise TraceError(f"{where}: array {name!r} holds {problem}")

    T, E, k = dims["T"], dims["E"], dims["k"]
    if T < 1:
        raise TraceError(f"{where}: the trace holds no tokens")
    if not 1 <= meta["n_prompt_tokens"] <= T:
        raise TraceError(f"{where}: metadata n_prompt_tokens is {meta['n_prompt_tokens']}, "
                         f"expected 1..{T} (the number of tokens)")
    # Every layer kind present needs something to draw: experts to light, heads to show.
    if dims["Lm"] and dims["H"] < 1:
        raise TraceError(f"{where}: the pattern has Mamba-2 layers but the arrays have no Mamba-2 heads (H = 0)")
    if dims["La"] and dims["Q"] < 1:
        raise TraceError(f"{where}: the pattern has attention layers but the arrays have no query heads (Q = 0)")
    if dims["Le"]:
        if E < 1:
            raise TraceError(f"{where}: the pattern has MoE layers but the arrays have no routed experts (E = 0)")
        if k < 1:
            raise TraceError(f"{where}: the pattern has MoE layers but no expert is chosen per token (k = 0)")
        if k > E:
            raise TraceError(f"{where}: each token chooses k = {k} experts, but there are only E = {E}")
        for key, sym in CONFIG_SIZES.items():
            if key in cfg and (type(cfg[key]) is not int or cfg[key] != dims[sym]):
                raise TraceError(f"{where}: metadata model_config {key!r} is {_clip(repr(cfg[key]), 40)}, but the "
                                 f"arrays have {sym} = {dims[sym]}")
    topk = arrays["moe_topk_ids"]
    if topk.size and (topk.min() < 0 or topk.max() >= E):
        raise TraceError(f"{where}: array 'moe_topk_ids' holds expert ids outside 0..{E - 1}")
    if topk.size:
        same = np.diff(np.sort(topk, axis=-1), axis=-1) == 0
        if same.any():
            slot, t, _ = (int(i) for i in np.argwhere(same)[0])
            raise TraceError(f"{where}: array 'moe_topk_ids' chooses the same expert twice for one token "
                             f"(MoE layer slot {slot}, token {t})")
    for name in ("token_ids", "pred_ids"):
        if arrays[name].size and arrays[name].min() < 0:
            raise TraceError(f"{where}: array {name!r} holds negative token ids")
    _check_groups(arrays, pattern, dims, where)

    # What save_trace writes must be what load_trace reads: the same budget, with room for the .npy headers.
    stored = sum(a.nbytes for a in arrays.values()) + 4 * len(_meta_json(meta))
    if stored > MAX_TRACE_BYTES - (len(arrays) + 1) * MAX_NPY_HEADER:
        raise TraceError(f"{where}: the trace takes {stored} bytes as stored, more than a trace may hold "
                         f"({_mib(MAX_TRACE_BYTES)})")


def _check_groups(arrays: dict[str, np.ndarray], pattern: str, dims: dict[str, int], where: str) -> None:
    """What the optional groups' scenes rely on: indices that name real layers and heads, counts that add up."""
    if "cache_tokens" in arrays:
        tokens, nbytes = arrays["cache_tokens"], arrays["cache_bytes"]
        if tokens.size and (tokens.min() < 1 or np.any(np.diff(tokens) <= 0) or tokens.max() > dims["T"]):
            raise TraceError(f"{where}: array 'cache_tokens' must grow from 1 up to at most the {dims['T']} tokens")
        if nbytes.size and nbytes.min() < 0:
            raise TraceError(f"{where}: array 'cache_bytes' holds negative sizes")
    if "mamba_detail_heads" in arrays:
        for layer, head in arrays["mamba_detail_heads"].tolist():
            if not (0 <= layer < len(pattern) and pattern[layer] == "M" and 0 <= head < dims["H"]):
                raise TraceError(f"{where}: array 'mamba_detail_heads' names ({layer}, {head}), which is not a "
                                 f"Mamba-2 layer and head of this trace")
    if "resid_detail_layers" in arrays:
        layers = arrays["resid_detail_layers"]
        if layers.size and (layers.min() < 0 or layers.max() >= len(pattern)):
            raise TraceError(f"{where}: array 'resid_detail_layers' names a layer outside 0..{len(pattern) - 1}")


# ------------------------------------------------------------------------------------------------
# files


def save_trace(trace: Trace, path: str | os.PathLike) -> Path:
    """Validate, then write `path` atomically through files.atomic_output (a temp file beside it, renamed).

    A path that cannot be written raises TraceError with atomic_output's one-line message, so callers of the
    trace module catch one exception type.
    """
    validate(trace, "trace")  # also refuses unknown arrays (the name 'meta' among them) and object dtypes
    payload = {name: np.ascontiguousarray(a) for name, a in trace.arrays.items()}
    payload["meta"] = np.array(_meta_json(trace.meta))  # 0-d '<U...' array: JSON without pickle
    try:
        with atomic_output(path, "trace") as tmp, open(tmp, "wb") as f:
            _write_npz(f, payload)
    except OutputError as e:
        raise TraceError(str(e)) from None
    return Path(path)


def _write_npz(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """What np.savez_compressed writes (one deflated `name.npy` per array), but byte for byte the same for the
    same arrays: fixed member dates and order, so recording twice gives identical files (np.savez stamps the
    time of writing into every member)."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as member:
                np.lib.format.write_array(member, arrays[name], allow_pickle=False)


def load_trace(path: str | os.PathLike) -> Trace:
    """Read and validate a trace, or raise TraceError naming exactly what is wrong, in one line.

    Any input gives a Trace or a TraceError: never another exception, a hang (a FIFO is refused, not waited
    on) or an allocation beyond the limits above. docs/trace_format.md lists what is refused.
    """
    path = Path(path)
    shown = _clip(str(path), 400)
    with _open_file(path, shown) as f:
        arrays = _read_archive(f, shown)
    meta = _parse_meta(arrays.pop("meta"), shown)
    trace = Trace(arrays, meta)
    validate(trace, shown)
    return trace


_NODE_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _open_file(path: Path, shown: str) -> BinaryIO:
    """The trace file opened for reading. Non-blocking open and fstat: a FIFO or device is refused, never
    waited on or read forever, even if the path changes between a check and the open."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise TraceError(f"trace file not found: {shown}") from None
    except IsADirectoryError:
        raise TraceError(f"trace path {shown} is a folder, not a .npz file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise TraceError(f"cannot read trace {shown}: {_clip(getattr(e, 'strerror', None) or str(e))}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise TraceError(f"trace path {shown} is a folder, not a .npz file")
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _NODE_KINDS if test(mode)), "not a regular file")
            raise TraceError(f"{shown} is not a trace: it is {kind}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# What the zip, zlib and .npy layers raise on a damaged file. Caught only around calls into them, so a bug
# of ours is never reported as a damaged file.
_DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
            NotImplementedError, RuntimeError, OverflowError, LookupError, TypeError)
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")  # a first member, or an empty archive (what np.load accepts)
_END_RECORD = b"PK\x05\x06"
_END_RECORD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez / np.savez_compressed write
_ENCRYPTED = 0x41  # general purpose flag bits 0 (encrypted) and 6 (strong encryption)
_CHUNK = 1 << 20  # members are decompressed this much at a time


def _read_archive(f: BinaryIO, shown: str) -> dict[str, np.ndarray]:
    """Every member of the archive as an array ('meta' included), checked layer by layer: the file, the zip
    directory, the member names, their declared sizes and local headers (all before decompressing
    anything), then each member's .npy header and data."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise TraceError(f"{shown} is not a trace: the file is empty")
    if size > MAX_TRACE_BYTES:
        raise TraceError(f"{shown} is not a trace: the file is {size} bytes, more than a trace may hold "
                         f"({_mib(MAX_TRACE_BYTES)})")
    start = f.read(6)
    if start == b"\x93NUMPY":
        raise TraceError(f"{shown} is not a trace: it holds a single array, not an .npz archive")
    if start[:4] not in _ZIP_STARTS:
        raise TraceError(f"{shown} is not a trace: not a readable .npz archive (it is not a zip file)")
    _check_zip_directory(f, size, shown)
    try:
        zf = zipfile.ZipFile(f)
    except _DAMAGED as e:
        raise TraceError(f"{shown} is not a trace: not a readable .npz archive ({_first_line(e)})") from None
    with zf:
        members = _check_member_names(zf.infolist(), shown)
        total = 0
        for name, info in members.items():
            limit = MAX_META_BYTES if name == "meta" else MAX_TRACE_BYTES
            if info.file_size > limit:
                raise TraceError(f"{shown}: {_what(name)} is {info.file_size} bytes uncompressed, more than a trace "
                                 f"may hold ({_mib(limit)})")
            total += info.file_size
        if total > MAX_TRACE_BYTES:
            raise TraceError(f"{shown}: its members are {total} bytes uncompressed, more than a trace may hold "
                             f"({_mib(MAX_TRACE_BYTES)})")
        for name, info in members.items():
            _check_local_header(f, info, name, shown)
        budget = _Budget(shown)
        return {name: _read_member(zf, info, name, shown, budget) for name, info in members.items()}


def _check_zip_directory(f: BinaryIO, size: int, shown: str) -> None:
    """Refuse a zip whose central directory is larger than a trace's could be, before zipfile reads it.

    zipfile builds an object per directory entry, several times the entry's size: a file of millions of
    tiny entries would take gigabytes. The end record is found the way zipfile finds it.
    """
    f.seek(max(size - (1 << 16) - _END_RECORD_SIZE, 0))
    tail_start = f.tell()
    tail = f.read()
    if len(tail) >= _END_RECORD_SIZE and tail[-_END_RECORD_SIZE:][:4] == _END_RECORD and tail[-2:] == b"\0\0":
        at = len(tail) - _END_RECORD_SIZE
    else:
        at = tail.rfind(_END_RECORD)
    if at < 0 or len(tail) - at < _END_RECORD_SIZE:
        raise TraceError(f"{shown} is not a trace: not a readable .npz archive (no zip end record: the file is "
                         f"truncated or not a zip)")
    directory_size = struct.unpack("<4s4H2LH", tail[at:at + _END_RECORD_SIZE])[5]
    end = tail_start + at
    if end >= 20:
        f.seek(end - 20)
        if f.read(4) == _ZIP64_LOCATOR:
            raise TraceError(f"{shown} is not a trace: it is a ZIP64 archive, which no trace needs")
    if directory_size > MAX_ZIP_DIRECTORY:
        raise TraceError(f"{shown} is not a trace: its zip directory is {directory_size} bytes, more than a "
                         f"trace's could be ({MAX_ZIP_DIRECTORY})")


def _what(name: str) -> str:
    return "metadata 'meta'" if name == "meta" else f"array {name!r}"


def _check_member_names(infos: list[zipfile.ZipInfo], shown: str) -> dict[str, zipfile.ZipInfo]:
    """{array name: its member}. Every member must be `<name>.npy` for a name of ARRAYS or 'meta', once; an
    unknown one is refused by its name alone, never decompressed."""
    if "meta.npy" not in [info.filename for info in infos]:
        raise TraceError(f"{shown} is not a trace: no 'meta' entry")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        member = info.filename
        shown_member = _clip(repr(member), 80)
        if member.endswith("/"):  # not info.is_dir(): that fails on an empty name
            raise TraceError(f"{shown}: member {shown_member} is a folder; a trace holds only .npy arrays")
        name = member[:-4]
        if not (member.endswith(".npy") and name.isascii() and name.isidentifier()):
            raise TraceError(f"{shown}: member {shown_member} is not named like an array (<name>.npy)")
        if name not in ALL_ARRAYS and name != "meta":
            raise TraceError(f"{shown}: unknown member {shown_member} (not an array of the trace format, "
                             f"schema version {SCHEMA_VERSION})")
        if name in members:
            raise TraceError(f"{shown}: member {shown_member} appears twice")
        members[name] = info
    return members


def _check_local_header(f: BinaryIO, info: zipfile.ZipInfo, name: str, shown: str) -> None:
    """The member's local header agrees with the directory, is not encrypted and uses a method numpy writes.

    zipfile trusts the directory's flags and method; the local header is read here so that neither can say
    something else unnoticed.
    """
    try:
        f.seek(info.header_offset)
        raw = f.read(zipfile.sizeFileHeader)
    except (OSError, ValueError, OverflowError):
        raw = b""
    if len(raw) != zipfile.sizeFileHeader or raw[:4] != b"PK\x03\x04":
        raise TraceError(f"{shown}: {_what(name)} is truncated or corrupted (no zip header where the directory "
                         f"says it starts)")
    fields = struct.unpack(zipfile.structFileHeader, raw)
    if (fields[3] | info.flag_bits) & _ENCRYPTED:
        raise TraceError(f"{shown}: {_what(name)} is encrypted (traces never are)")
    for method in (info.compress_type, fields[4]):
        if method not in _METHODS:
            raise TraceError(f"{shown}: {_what(name)} uses zip compression method {method}; a trace uses only "
                             f"stored (0) or deflated (8)")
    if fields[4] != info.compress_type:
        raise TraceError(f"{shown}: {_what(name)} is corrupted (its zip header and the zip directory disagree "
                         f"on the compression method)")


class _Budget:
    """The running total of bytes decompressed: reading stops once it passes MAX_TRACE_BYTES, whatever the
    sizes declared in the zip say."""

    def __init__(self, shown: str):
        self.shown, self.used = shown, 0

    def take(self, n: int, name: str) -> None:
        self.used += n
        if self.used > MAX_TRACE_BYTES:
            raise TraceError(f"{self.shown}: stopped reading at {_what(name)}: the members hold more than a trace "
                             f"may hold ({_mib(MAX_TRACE_BYTES)}) once uncompressed")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, shown: str, budget: _Budget) -> np.ndarray:
    """One member as an array: its .npy header is read and checked first, then its data, in bounded chunks
    and only as many bytes as the header declares (and the zip directory agrees on)."""
    what = _what(name)

    def damaged(e: BaseException) -> TraceError:
        return TraceError(f"{shown}: {what} is truncated or corrupted ({_first_line(e)})")

    def read(member, n: int, part: str) -> bytes:
        try:
            data = member.read(n)
        except _DAMAGED as e:
            raise damaged(e) from None
        if len(data) != n:
            raise TraceError(f"{shown}: {what} is truncated or corrupted (its {part} ends early)")
        budget.take(n, name)
        return data

    try:
        member = zf.open(info)
    except _DAMAGED as e:
        raise damaged(e) from None
    with member:
        magic = read(member, 8, ".npy header")
        if magic[:6] != b"\x93NUMPY":
            raise TraceError(f"{shown}: {what} is not a .npy array")
        version = (magic[6], magic[7])
        if version not in ((1, 0), (2, 0)):
            raise TraceError(f"{shown}: {what} has .npy format version {version[0]}.{version[1]}; a trace uses "
                             f"1.0 or 2.0")
        length = read(member, 2 if version == (1, 0) else 4, ".npy header")
        header_size = int.from_bytes(length, "little")
        if header_size > MAX_NPY_HEADER:
            raise TraceError(f"{shown}: {what} has a {header_size}-byte .npy header, more than a trace's "
                             f"({MAX_NPY_HEADER})")
        header = read(member, header_size, ".npy header")
        parse = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            with warnings.catch_warnings():  # a header in Python 2 style is read, with a warning we do not need
                warnings.simplefilter("ignore")
                shape, fortran_order, dtype = parse(io.BytesIO(length + header), max_header_size=MAX_NPY_HEADER)
        except Exception as e:  # numpy parses the header with ast, tokenize and np.dtype, which raise
            # ValueError, SyntaxError, tokenize.TokenError, TypeError, ... on a damaged one (it is only text)
            raise TraceError(f"{shown}: {what} has a bad .npy header ({_first_line(e)})") from None
        if dtype.hasobject:
            raise TraceError(f"{shown}: {what} cannot be read without pickle (it holds Python objects)")
        if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
            raise TraceError(f"{shown}: {what} has dtype {_clip(dtype.str, 40)}, not plain numbers or text")
        if len(shape) > 32 or min(shape, default=0) < 0:
            raise TraceError(f"{shown}: {what} has a bad .npy header (shape {_clip(_shape_str(shape), 80)})")
        shape = tuple(int(d) for d in shape)  # the header may spell a size as True
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        limit = MAX_META_BYTES if name == "meta" else MAX_TRACE_BYTES
        if nbytes > limit:
            raise TraceError(f"{shown}: {what} declares shape {_shape_str(shape)} of {dtype.str}, {nbytes} bytes, "
                             f"more than a trace may hold ({_mib(limit)})")
        declared = info.file_size - len(magic) - len(length) - header_size
        if nbytes != declared:
            raise TraceError(f"{shown}: {what} is corrupted (its .npy header declares {nbytes} bytes of data, "
                             f"the zip directory {declared})")
        data = bytearray(nbytes)  # at most the member's declared size, which the budget has admitted
        for at in range(0, nbytes, _CHUNK):
            chunk = read(member, min(_CHUNK, nbytes - at), "data")
            data[at:at + len(chunk)] = chunk
        try:
            more = member.read(1)  # reaching the end makes zipfile check the CRC
        except _DAMAGED as e:
            raise damaged(e) from None
        if more:
            raise TraceError(f"{shown}: {what} is corrupted (data after the array)")
    flat = np.frombuffer(data, dtype=dtype, count=count)
    return flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)


def _parse_meta(meta: np.ndarray, shown: str) -> dict:
    """The metadata JSON object from the 'meta' array."""
    if meta.dtype.kind != "U" or meta.ndim != 0:
        raise TraceError(f"{shown}: bad metadata: 'meta' must be a 0-d unicode array holding JSON, "
                         f"got dtype {meta.dtype.str} shape {_shape_str(meta.shape)}")
    problem = _text_problem(meta, None)
    if problem:
        raise TraceError(f"{shown}: bad metadata: the JSON text holds {problem}")
    try:
        value = json.loads(str(meta[()]))
    except RecursionError:
        raise TraceError(f"{shown}: bad metadata JSON (nested too deeply)") from None
    except ValueError as e:
        raise TraceError(f"{shown}: bad metadata JSON ({_first_line(e)})") from None
    if not isinstance(value, dict):
        raise TraceError(f"{shown}: bad metadata JSON (expected an object, got {type(value).__name__})")
    return value
