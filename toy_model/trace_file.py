"""The trace file: a model's activations, token by token and layer by layer, in one numpy .npz.

    model --(toy_model.trace, torch)--> trace.npz --(this module, numpy only)--> scenes, notebooks

A trace is a plain `np.savez_compressed` archive, loadable with `allow_pickle=False`: one array per
recorded quantity plus `meta`, a 0-d unicode array holding JSON (schema version, model config,
prompt, seed, generated text). Arrays are stacked per layer kind (all Mamba-2 layers together, all
MoE layers together, ...) so nothing is padded; `meta["pattern"]` maps layer i to its stack and
slot. `ARRAYS` below is the format's single source of truth: `load_trace` checks every entry and
docs/trace_format.md describes the same table.

This module must not import torch (directly or through toy_model/__init__, which is lazy): the
scenes read traces without the model.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1  # bump on any change a version-1 reader would misread; load_trace reads only this one
FORMAT_NAME = "toy_model.trace"
N_PREDICTIONS = 5  # P, top next-token predictions kept per position

# Layer pattern characters and the stack each kind's arrays live in (same letters as HybridConfig.pattern).
KIND_OF_CHAR = {"M": "mamba", "E": "moe", "*": "attention", "-": "mlp"}
STACK_DIM = {"mamba": "Lm", "moe": "Le", "attention": "La"}

# Shape symbols: L layers, Lm / Le / La layers of each kind, T tokens, P predictions, H Mamba-2 heads,
# E routed experts, k experts per token, Q attention query heads.
DIM_NAMES = {"L": "n_layers", "Lm": "n_mamba_layers", "Le": "n_moe_layers", "La": "n_attention_layers",
             "T": "n_tokens", "P": "n_predictions", "H": "mamba_heads", "E": "n_experts",
             "k": "experts_per_token", "Q": "attention_heads"}


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[str, ...]
    kind: str  # "int", "float" or "text"
    doc: str


ARRAYS: dict[str, ArraySpec] = {
    # ---- tokens and predictions
    "token_ids": ArraySpec(("T",), "int", "token id at each position, prompt then generated tokens"),
    "token_text": ArraySpec(("T",), "text", "display text of each token: a multi-byte character split across "
                            "tokens is shown whole on the token that completes it ('' on the earlier ones); "
                            "newline as '↵', tab as '⇥', other control characters as '\\x01' etc."),
    "token_hex": ArraySpec(("T",), "text", "the token's raw bytes as lowercase hex (e.g. 'f09f'), "
                           "for tokens whose text is ''"),
    "pred_ids": ArraySpec(("T", "P"), "int", "top-5 next-token predictions after this position, "
                          "most likely first"),
    "pred_probs": ArraySpec(("T", "P"), "float", "their probabilities (softmax of the logits, "
                            "temperature 1)"),
    "pred_text": ArraySpec(("T", "P"), "text", "their display text in context (completes a pending "
                           "multi-byte character; '' if still partial)"),
    # ---- the residual stream, every layer
    "resid_norm_in": ArraySpec(("L", "T"), "float", "L2 norm of the residual stream entering block i"),
    "resid_norm_out": ArraySpec(("L", "T"), "float", "L2 norm of the residual stream leaving block i"),
    "update_norm": ArraySpec(("L", "T"), "float", "L2 norm of block i's update mixer(norm(x)), "
                             "the part it adds to the stream"),
    # ---- Mamba-2 (M)
    "mamba_delta": ArraySpec(("Lm", "T", "H"), "float", "Delta = softplus(dt + dt_bias) per head: "
                             "how much of this token is written into the state"),
    "mamba_decay": ArraySpec(("Lm", "T", "H"), "float", "exp(A Delta) per head, in (0, 1): the fraction "
                             "of the previous state kept"),
    "mamba_state_norm": ArraySpec(("Lm", "T", "H"), "float", "Frobenius norm of each head's (P, N) state "
                                  "after this token"),
    # ---- MoE / LatentMoE (E)
    "moe_scores": ArraySpec(("Le", "T", "E"), "float", "sigmoid router score of every routed expert"),
    "moe_topk_ids": ArraySpec(("Le", "T", "k"), "int", "the k chosen experts (top-k of score + "
                              "correction bias)"),
    "moe_topk_weights": ArraySpec(("Le", "T", "k"), "float", "their gate weights: scores renormalised over "
                                  "the k, times routed_scaling_factor"),
    "moe_latent_norm": ArraySpec(("Le", "T"), "float", "L2 norm of the latent vector z = W_down x "
                                 "(of x itself for a plain MoE)"),
    "moe_shared_share": ArraySpec(("Le", "T"), "float", "|shared| / (|routed| + |shared|): the shared "
                                  "expert's share of the update"),
    "moe_correction_bias": ArraySpec(("Le", "E"), "float", "the router's e_score_correction_bias (constant "
                                     "over a trace)"),
    # ---- attention (*)
    "attn_weights": ArraySpec(("La", "T", "Q", "T"), "float", "softmax attention weights [layer, query, "
                              "head, key]; rows sum to 1, zero for keys after the query (causal)"),
}

# Metadata keys every trace must carry, with their JSON types.
META_REQUIRED = {"format": str, "schema_version": int, "pattern": str, "prompt": str, "n_prompt_tokens": int,
                 "seed": int, "temperature": (int, float), "chat": bool, "generated_text": str,
                 "model_config": dict}


class TraceError(ValueError):
    """A trace file or trace that cannot be used, said in one line (the CLI prints it as `error: ...`)."""


# ------------------------------------------------------------------------------------------------
# the in-memory trace


@dataclass
class Trace:
    """All arrays of ARRAYS (numpy arrays) plus the metadata dict; built by `make_trace` or `load_trace`."""

    arrays: dict[str, np.ndarray]
    meta: dict

    def __getattr__(self, name):  # trace.update_norm etc.
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"Trace has no attribute {name!r}")

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

    # ---- normalised views for drawing
    def update_intensity(self, percentile: float = 99.0) -> np.ndarray:
        """update_norm scaled into [0, 1] over the whole trace (L, T), 1 at its 99th percentile and above.

        A percentile rather than the maximum: the first token's updates are often far larger than any
        other (an attention-sink-like outlier) and would flatten everything else to nothing.
        """
        u = self.arrays["update_norm"].astype(np.float64)
        top = float(np.percentile(u, percentile)) if u.size else 0.0
        return (np.clip(u / top, 0.0, 1.0) if top > 0 else np.zeros_like(u)).astype(np.float32)

    def state_level(self) -> np.ndarray:
        """mamba_state_norm scaled into [0, 1] per Mamba-2 layer (Lm, T, H): 1 is its largest state."""
        s = self.arrays["mamba_state_norm"].astype(np.float64)
        if s.size == 0:
            return s.astype(np.float32)
        top = s.reshape(s.shape[0], -1).max(axis=1)[:, None, None]
        return np.where(top > 0, s / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)

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


def validate(trace: Trace, where: str = "trace") -> None:
    """Raise TraceError naming the first problem: metadata, a missing array, dtype, shape or values."""
    meta, arrays = trace.meta, trace.arrays
    if meta.get("format") != FORMAT_NAME:
        raise TraceError(f"{where} is not a trace (metadata format is {meta.get('format')!r}, "
                         f"expected {FORMAT_NAME!r})")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise TraceError(f"{where} has unsupported schema version {version!r} "
                         f"(this loader reads version {SCHEMA_VERSION})")
    for key, typ in META_REQUIRED.items():
        if key not in meta:
            raise TraceError(f"{where}: metadata key {key!r} is missing")
        if not isinstance(meta[key], typ) or (typ is int and isinstance(meta[key], bool)):
            raise TraceError(f"{where}: metadata key {key!r} has the wrong type ({type(meta[key]).__name__})")
    pattern = meta["pattern"]
    bad = sorted(set(pattern) - set(KIND_OF_CHAR))
    if not pattern or bad:
        raise TraceError(f"{where}: metadata pattern {pattern!r} is not a layer pattern of M, E, * and -")

    for name in ARRAYS:
        if name not in arrays:
            raise TraceError(f"{where}: missing array {name!r}")

    dims: dict[str, int] = {
        "L": len(pattern), "Lm": pattern.count("M"), "Le": pattern.count("E"), "La": pattern.count("*"),
        "P": N_PREDICTIONS,
    }
    for name, spec in ARRAYS.items():
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

    T = dims["T"]
    if T < 1:
        raise TraceError(f"{where}: the trace holds no tokens")
    if not 1 <= meta["n_prompt_tokens"] <= T:
        raise TraceError(f"{where}: metadata n_prompt_tokens is {meta['n_prompt_tokens']}, "
                         f"expected 1..{T} (the number of tokens)")
    topk = arrays["moe_topk_ids"]
    if topk.size and (topk.min() < 0 or topk.max() >= dims["E"]):
        raise TraceError(f"{where}: array 'moe_topk_ids' holds expert ids outside 0..{dims['E'] - 1}")
    for name in ("token_ids", "pred_ids"):
        if arrays[name].size and arrays[name].min() < 0:
            raise TraceError(f"{where}: array {name!r} holds negative token ids")
    probs = arrays["pred_probs"]
    if probs.size and (probs.min() < 0 or probs.max() > 1 + 1e-4):
        raise TraceError(f"{where}: array 'pred_probs' holds values outside [0, 1]")


# ------------------------------------------------------------------------------------------------
# files


def save_trace(trace: Trace, path: str | os.PathLike) -> Path:
    """Validate, then write `path` atomically (a temp file in the same folder, then rename)."""
    validate(trace, "trace")
    path = Path(path)
    for name in trace.arrays:
        if trace.arrays[name].dtype.kind == "O" or name == "meta":
            raise TraceError(f"trace: array {name!r} cannot be saved (object arrays and the name 'meta' are "
                             f"not allowed)")
    meta_json = json.dumps(trace.meta, sort_keys=True, ensure_ascii=False)
    payload = {name: np.ascontiguousarray(a) for name, a in trace.arrays.items()}
    payload["meta"] = np.array(meta_json)  # 0-d '<U...' array: JSON without pickle
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise TraceError(f"cannot write trace to {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise TraceError(f"cannot write trace to {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a trace is an ordinary file
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise TraceError(f"cannot write trace to {path}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_trace(path: str | os.PathLike) -> Trace:
    """Read and validate a trace, or raise TraceError naming exactly what is wrong."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"trace file not found: {path}")
    if path.is_dir():
        raise TraceError(f"trace path {path} is a folder, not a .npz file")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise TraceError(f"{path} is not a trace: not a readable .npz archive ({_first_line(e)})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise TraceError(f"{path} is not a trace: it holds a single array, not an .npz archive")
    with npz:
        if "meta" not in npz.files:
            raise TraceError(f"{path} is not a trace: no 'meta' entry")
        arrays = {}
        for name in npz.files:
            try:
                arrays[name] = npz[name]
            except ValueError as e:  # object arrays need pickle
                raise TraceError(f"{path}: array {name!r} cannot be read without pickle ({_first_line(e)})") \
                    from None
            except (OSError, zipfile.BadZipFile, EOFError) as e:
                raise TraceError(f"{path}: array {name!r} is truncated or corrupted ({_first_line(e)})") \
                    from None
    meta_arr = arrays.pop("meta")
    if meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        raise TraceError(f"{path}: bad metadata: 'meta' must be a 0-d unicode array holding JSON, "
                         f"got dtype {meta_arr.dtype} shape {_shape_str(meta_arr.shape)}")
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}: bad metadata JSON ({e})") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{path}: bad metadata JSON (expected an object, got {type(meta).__name__})")
    trace = Trace(arrays, meta)
    validate(trace, str(path))
    return trace


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
