"""The trace file boundary: load_trace refuses every bad file with one TraceError line, and never raises
anything else, hangs or allocates past its limits. Cases are grouped by family: the zip / zlib layer, size
limits, the members, the metadata, what the scenes rely on; then fuzzing with hypothesis.

Needs only numpy and the shipped traces/default.npz (trimmed to a few tokens), no model."""

import json
import os
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toy_model import trace_file as tf
from toy_model.trace_file import (
    ARRAYS,
    MAX_META_BYTES,
    MAX_META_DEPTH,
    MAX_TEXT_CHARS,
    MAX_TRACE_BYTES,
    MAX_ZIP_DIRECTORY,
    Trace,
    TraceError,
    load_trace,
    make_trace,
    save_trace,
)
from toy_model.viz.views import TraceView

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT / "traces" / "default.npz"
N_TOKENS = 12  # the trimmed trace: a small file (about 10 KB) keeps the fuzzing fast


# ------------------------------------------------------------------------------------------------
# a small valid trace and ways to write (bad) files


def trim(trace: Trace, T: int) -> Trace:
    arrays = {}
    for name, spec in ARRAYS.items():
        arrays[name] = trace.arrays[name][tuple(slice(0, T) if s == "T" else slice(None) for s in spec.shape)]
    return make_trace(arrays, dict(trace.meta, n_prompt_tokens=min(trace.n_prompt_tokens, T)))


@pytest.fixture(scope="module")
def small() -> Trace:
    return trim(load_trace(DEFAULT_TRACE), N_TOKENS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trace_file")


@pytest.fixture(scope="module")
def small_members(small) -> list[tuple[str, bytes]]:
    return members_of(small)


@pytest.fixture(scope="module")
def small_bytes(small, workdir) -> bytes:
    return save_trace(small, workdir / "small.npz").read_bytes()


def npy(a, allow_pickle=False) -> bytes:
    f = BytesIO()
    np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=allow_pickle)
    return f.getvalue()


def npy_header(descr: str, shape: tuple, fortran: bool = False) -> bytes:
    """A version 1.0 .npy header as numpy writes it, for any (even impossible) shape and dtype."""
    text = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    pad = -(10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def meta_npy(meta: dict) -> bytes:
    return npy(np.array(json.dumps(meta, ensure_ascii=False)))


def members_of(trace: Trace, meta: dict | None = None) -> list[tuple[str, bytes]]:
    return [(f"{n}.npy", npy(a)) for n, a in trace.arrays.items()] + \
        [("meta.npy", meta_npy(trace.meta if meta is None else meta))]


def write_zip(path: Path, members, method=zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names warn
        with zipfile.ZipFile(path, "w", method) as z:
            for name, data in members:
                z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress_type=method)
    return path


def write_arrays(path: Path, trace: Trace, meta: dict | None = None, **replace) -> Path:
    """A file of trace's arrays, some replaced, written without validation (np.savez)."""
    arrays = {k: v for k, v in trace.arrays.items()} | replace
    np.savez(path, **arrays, meta=np.array(json.dumps(trace.meta if meta is None else meta)))
    return path


def raw_zip(entries: list[dict]) -> bytes:
    """A zip written by hand, so every field can lie. Entry keys: name, data (as stored), method (8),
    crc (0), file_size (required), flags (0), local_flags / local_method (as the directory's)."""
    out, directory = b"", b""
    for e in entries:
        name = e["name"].encode()
        method, flags = e.get("method", zipfile.ZIP_DEFLATED), e.get("flags", 0)
        offset = len(out)
        out += struct.pack(zipfile.structFileHeader, b"PK\x03\x04", 20, 0, e.get("local_flags", flags),
                           e.get("local_method", method), 0, 0x21, e.get("crc", 0), len(e["data"]), e["file_size"],
                           len(name), 0) + name + e["data"]
        directory += struct.pack(zipfile.structCentralDir, b"PK\x01\x02", 20, 3, 20, 0, flags, method, 0, 0x21,
                                 e.get("crc", 0), len(e["data"]), e["file_size"], len(name), 0, 0, 0, 0, 0,
                                 offset) + name
    end = struct.pack(zipfile.structEndArchive, b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory),
                      len(out), 0)
    return out + directory + end


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def entry(name: str, data: bytes, **fields) -> dict:
    """An honest deflated raw_zip entry (fields override)."""
    return {"name": name, "data": deflate(data), "crc": zlib.crc32(data), "file_size": len(data)} | fields


def honest_entries(trace: Trace) -> list[dict]:
    return [entry(name, data) for name, data in members_of(trace)]


def member_data_span(blob: bytes, member: str) -> tuple[int, int]:
    """Where a member's stored (compressed) bytes lie in a zip."""
    with zipfile.ZipFile(BytesIO(blob)) as z:
        info = z.getinfo(member)
    header = struct.unpack(zipfile.structFileHeader, blob[info.header_offset:info.header_offset + 30])
    start = info.header_offset + 30 + header[10] + header[11]
    return start, start + info.compress_size


def patch(blob: bytes, at: int, new: bytes) -> bytes:
    return blob[:at] + new + blob[at + len(new):]


def local_header_at(blob: bytes, member: str) -> int:
    with zipfile.ZipFile(BytesIO(blob)) as z:
        return z.getinfo(member).header_offset


def directory_entry_at(blob: bytes, member: str) -> int:
    name = member.encode()
    return next(i for i in _find_all(blob, b"PK\x01\x02") if blob[i + 46:i + 46 + len(name)] == name)


def _find_all(blob: bytes, sig: bytes):
    i = blob.find(sig)
    while i >= 0:
        yield i
        i = blob.find(sig, i + 1)


def refused(path, *fragments) -> str:
    """load_trace(path) raises TraceError: one line holding every fragment."""
    with pytest.raises(TraceError) as err:
        load_trace(path)
    text = str(err.value)
    assert type(err.value) is TraceError
    assert "\n" not in text and "\r" not in text and text == text.strip(), text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


def loads_or_refuses(path) -> Trace | None:
    """The fuzzing property: a Trace whose every use by a scene works, or one TraceError line."""
    try:
        trace = load_trace(path)
    except TraceError as e:
        text = str(e)
        assert text and "\n" not in text and "\r" not in text, text
        return None
    assert isinstance(trace, Trace)
    use_like_a_scene(trace)
    return trace


def use_like_a_scene(trace: Trace) -> None:
    """What the scenes do with a loaded trace, through the kit's views (without drawing)."""
    view = TraceView(trace)
    cfg = trace.meta.get("model_config", {})
    f"top-{cfg.get('num_experts_per_tok', 'k')} of {cfg.get('n_routed_experts', 'N')}".encode()
    for t in range(trace.n_tokens):
        trace.display_text(t).encode("utf-8")
        "".join(str(trace.token_text[s]) for s in range(max(0, t - 24), t)).encode("utf-8")
        for _, text, p in trace.predictions(t):
            text.encode("utf-8")
            assert 0 <= p <= 1 + 1e-4
        for i in range(trace.n_layers):
            kind = trace.layer_kind(i)
            if kind == "mamba":
                assert all(v.size >= 1 for v in view.mamba_levels(i, t))
            elif kind == "moe":
                view.moe_levels(i, t)
            elif kind == "attention":
                assert view.attention_keys(i, t, 5)[0].size >= 1


# ------------------------------------------------------------------------------------------------
# what loads


def test_round_trip_of_the_small_trace(small, workdir):
    path = save_trace(small, workdir / "round.npz")
    loaded = load_trace(path)
    assert loaded.meta == json.loads(json.dumps(small.meta))
    for name in ARRAYS:
        np.testing.assert_array_equal(loaded.arrays[name], small.arrays[name])
    use_like_a_scene(loaded)


def test_other_layouts_numpy_writes_load(small, tmp_path):
    """Uncompressed (np.savez), Fortran order, big-endian and other int / float widths all load as values."""
    fortran = {n: np.asfortranarray(a) for n, a in small.arrays.items()}
    other = {n: a.astype(a.dtype.newbyteorder(">")) if a.dtype.kind in "iufU" else a
             for n, a in small.arrays.items()}
    other["attn_weights"] = small.attn_weights.astype(np.float16)
    other["token_ids"] = small.token_ids.astype(np.uint16)
    for i, arrays in enumerate([fortran, other]):
        path = write_arrays(tmp_path / f"t{i}.npz", small, **arrays)
        loaded = load_trace(path)
        for name in ARRAYS:
            np.testing.assert_allclose(loaded.arrays[name].astype(small.arrays[name].dtype), small.arrays[name],
                                       rtol=1e-3) if ARRAYS[name].kind == "float" else \
                np.testing.assert_array_equal(loaded.arrays[name], small.arrays[name])
        use_like_a_scene(loaded)


def test_a_trace_without_some_layer_kinds_loads(small, tmp_path):
    """A pattern without a kind gives its arrays a first dimension of 0; the free sizes may then be 0 too."""
    arrays = {k: v for k, v in small.arrays.items()}
    T = small.n_tokens
    for name, spec in ARRAYS.items():
        if spec.shape[0] in ("Lm", "Le", "La"):
            free = {"H": 0, "E": 0, "k": 0, "Q": 0, "T": T}
            arrays[name] = np.zeros(tuple(0 if i == 0 else free[s] for i, s in enumerate(spec.shape)),
                                    arrays[name].dtype)
    arrays = arrays | {n: small.arrays[n][:2] for n in ("resid_norm_in", "resid_norm_out", "update_norm")}
    trace = make_trace(arrays, small.meta | {"pattern": "--"})
    loaded = load_trace(save_trace(trace, tmp_path / "mlp.npz"))
    assert loaded.n_layers == 2
    use_like_a_scene(loaded)


# ------------------------------------------------------------------------------------------------
# family 1: the zip and zlib layer


def _flip(blob: bytes, at: int) -> bytes:
    return patch(blob, at, bytes([blob[at] ^ 0xFF]))


def _zip_case(case: str, blob: bytes, small: Trace, path: Path) -> Path:
    if case == "flipped byte in a compressed member":
        start, end = member_data_span(blob, "attn_weights.npy")
        blob = _flip(blob, (start + end) // 2)
    elif case == "encrypted (local header)":
        at = local_header_at(blob, "token_ids.npy")
        blob = patch(blob, at + 6, struct.pack("<H", 1))
    elif case == "encrypted (directory)":
        at = directory_entry_at(blob, "token_ids.npy")
        blob = patch(blob, at + 8, struct.pack("<H", 1))
    elif case == "strong encryption (local header)":
        at = local_header_at(blob, "meta.npy")
        blob = patch(blob, at + 6, struct.pack("<H", 0x40))
    elif case == "unknown method (local header)":
        blob = patch(blob, local_header_at(blob, "pred_ids.npy") + 8, struct.pack("<H", 99))
    elif case == "unknown method (directory)":
        blob = patch(blob, directory_entry_at(blob, "pred_ids.npy") + 10, struct.pack("<H", 99))
    elif case == "bzip2 (a method numpy never writes)":
        blob = patch(blob, directory_entry_at(blob, "pred_ids.npy") + 10, struct.pack("<H", 12))
        blob = patch(blob, local_header_at(blob, "pred_ids.npy") + 8, struct.pack("<H", 12))
    elif case == "methods disagree":
        blob = patch(blob, local_header_at(blob, "pred_ids.npy") + 8, struct.pack("<H", 0))
    elif case == "bad CRC":
        at = directory_entry_at(blob, "update_norm.npy")
        crc = struct.unpack("<L", blob[at + 16:at + 20])[0] ^ 1
        blob = patch(patch(blob, at + 16, struct.pack("<L", crc)),
                     local_header_at(blob, "update_norm.npy") + 14, struct.pack("<L", crc))
    elif case == "truncated to half":
        blob = blob[: len(blob) // 2]
    elif case == "truncated before the end record":
        blob = blob[:-5]
    elif case == "empty file":
        blob = b""
    elif case == "one byte":
        blob = b"P"
    elif case == "garbage directory":
        end = blob.index(b"PK\x05\x06")
        start = struct.unpack("<L", blob[end + 16:end + 20])[0]
        blob = blob[:start] + bytes(range(256)) * ((end - start) // 256) + blob[start + (end - start) // 256 * 256:]
    elif case == "directory offset past the end":
        end = blob.index(b"PK\x05\x06")
        blob = patch(blob, end + 16, struct.pack("<L", 2**32 - 1))
    elif case == "local header offset wrong":
        blob = patch(blob, directory_entry_at(blob, "meta.npy") + 42, struct.pack("<L", 3))
    elif case == "names in header and directory differ":
        at = local_header_at(blob, "token_ids.npy")
        blob = patch(blob, at + 30, b"T")
    elif case == "huge directory":
        end = blob.index(b"PK\x05\x06")
        blob = patch(blob, end + 12, struct.pack("<L", 10**8))
    elif case == "zip64 end record":
        end = blob.index(b"PK\x05\x06")
        blob = blob[:end] + b"PK\x06\x07" + bytes(16) + blob[end:]
    elif case == "text file":
        blob = b"hello, not a trace"
    elif case == "npy file":
        blob = npy(np.zeros(3))
    elif case == "zip of another kind":
        blob = open(write_zip(path, [("readme.txt", b"hi")]), "rb").read()
    elif case == "empty zip":
        blob = struct.pack(zipfile.structEndArchive, b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0)
    path.write_bytes(blob)
    return path


ZIP_CASES = {
    "flipped byte in a compressed member": ["array 'attn_weights' is truncated or corrupted"],
    "encrypted (local header)": ["array 'token_ids' is encrypted"],
    "encrypted (directory)": ["array 'token_ids' is encrypted"],
    "strong encryption (local header)": ["metadata 'meta' is encrypted"],
    "unknown method (local header)": ["array 'pred_ids' uses zip compression method 99"],
    "unknown method (directory)": ["array 'pred_ids' uses zip compression method 99"],
    "bzip2 (a method numpy never writes)": ["compression method 12", "stored (0) or deflated (8)"],
    "methods disagree": ["array 'pred_ids' is corrupted", "disagree on the compression method"],
    "bad CRC": ["array 'update_norm' is truncated or corrupted (Bad CRC-32"],
    "truncated to half": ["is not a trace: not a readable .npz archive (no zip end record"],
    "truncated before the end record": ["not a readable .npz archive"],
    "empty file": ["is not a trace: the file is empty"],
    "one byte": ["not a readable .npz archive (it is not a zip file)"],
    "garbage directory": ["not a readable .npz archive (Bad magic number for central directory)"],
    "directory offset past the end": ["array 'attn_weights' is truncated or corrupted (no zip header"],
    "local header offset wrong": ["metadata 'meta' is truncated or corrupted (no zip header"],
    "names in header and directory differ": ["array 'token_ids' is truncated or corrupted (File name in directory"],
    "huge directory": ["its zip directory is 100000000 bytes", str(MAX_ZIP_DIRECTORY)],
    "zip64 end record": ["ZIP64 archive"],
    "text file": ["is not a trace: not a readable .npz archive"],
    "npy file": ["is not a trace: it holds a single array, not an .npz archive"],
    "zip of another kind": ["is not a trace: no 'meta' entry"],
    "empty zip": ["is not a trace: no 'meta' entry"],
}


@pytest.mark.parametrize("case", ZIP_CASES)
def test_zip_layer_damage_is_one_line(small, small_bytes, tmp_path, case):
    path = _zip_case(case, small_bytes, small, tmp_path / "t.npz")
    refused(path, str(path), *ZIP_CASES[case])


def test_not_a_regular_file(tmp_path):
    refused(tmp_path / "nope.npz", "trace file not found: ")
    refused(tmp_path, "is a folder, not a .npz file")
    if hasattr(os, "mkfifo"):  # opening a FIFO for reading would wait forever for a writer
        fifo = tmp_path / "fifo.npz"
        os.mkfifo(fifo)
        refused(fifo, "is a FIFO (named pipe), not a regular file")
    if Path("/dev/zero").exists():  # endless
        refused("/dev/zero", "is a character device, not a regular file")


def test_odd_paths_stay_on_one_line(small_bytes, tmp_path):
    path = tmp_path / "two\nlines.npz"
    path.write_bytes(b"junk")
    refused(path, "two\\nlines.npz")
    refused("bad\0path.npz", "cannot read trace")


@pytest.mark.parametrize("member", list(ARRAYS) + ["meta"])
def test_a_flipped_byte_in_any_member_names_it(small, small_bytes, tmp_path, member):
    """Real corruption of each member of a valid file: one byte flipped at several places in its data.

    The last bytes of a deflate stream hold its end-of-block codes: zipfile has every byte of the member (with
    a good CRC) before it decodes those, so a flip there may go unnoticed, the data being intact.
    """
    start, end = member_data_span(small_bytes, f"{member}.npy")
    path = tmp_path / "t.npz"
    for at in sorted({start, start + 1, start + 3, (start + end) // 2}):
        path.write_bytes(_flip(small_bytes, at))
        refused(path, f"{member}'")
    for at in range(end - 3, end):
        path.write_bytes(_flip(small_bytes, at))
        loaded = loads_or_refuses(path)
        if loaded is not None:
            for name in ARRAYS:
                np.testing.assert_array_equal(loaded.arrays[name], small.arrays[name])


# ------------------------------------------------------------------------------------------------
# family 2: sizes, checked before decompressing


def _size_case(case: str, small: Trace, path: Path) -> Path:
    entries = honest_entries(small)

    def replace(name, data=None, **fields):
        i = next(i for i, e in enumerate(entries) if e["name"] == name)
        entries[i] = entry(name, data, **fields) if data is not None else entries[i] | fields

    if case == "shape of 10**12 elements":
        replace("token_ids.npy", npy_header("<i4", (10**12,)))
    elif case == "huge dtype":
        replace("token_text.npy", npy_header("<U200000000", (2,)))
    elif case == "negative shape":
        replace("token_ids.npy", npy_header("<i4", (-1,)))
    elif case == "a size spelled True":
        replace("token_ids.npy", npy_header("<i4", (True,)) + bytes(4))
    elif case == "too many dimensions":
        replace("token_ids.npy", npy_header("<i4", (1,) * 40))
    elif case == "member size over the budget":
        replace("attn_weights.npy", file_size=MAX_TRACE_BYTES + 1)
    elif case == "members together over the budget":
        replace("attn_weights.npy", file_size=MAX_TRACE_BYTES // 2 + 1)
        replace("moe_scores.npy", file_size=MAX_TRACE_BYTES // 2 + 1)
    elif case == "meta over its budget":
        replace("meta.npy", file_size=MAX_META_BYTES + 1)
    elif case == "meta array over its budget":
        replace("meta.npy", npy_header("<U2000000", ()))
    elif case == "header and directory disagree":
        data = npy(small.token_ids)
        replace("token_ids.npy", data, file_size=len(data) + 4)
    elif case == "directory says less than the data":  # with the CRC of what it says: only the header can tell
        data = npy(small.token_ids)
        replace("token_ids.npy", data, file_size=len(data) - 4, crc=zlib.crc32(data[:-4]))
    elif case == "directory says less, bad CRC":
        data = npy(small.token_ids)
        replace("token_ids.npy", data, file_size=len(data) - 4)
    elif case == "header too long":
        replace("token_ids.npy", b"\x93NUMPY\x02\x00" + struct.pack("<L", 10**9))
    elif case == "header not a dict":
        replace("token_ids.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 12) + b"[1, 2, 3]   ")
    elif case == "header bad dtype":
        replace("token_ids.npy", npy_header("<x9", (3,)))
    elif case == "npy version 3.0":
        replace("token_ids.npy", b"\x93NUMPY\x03\x00" + npy(small.token_ids)[8:])
    elif case == "not an npy member":
        replace("token_ids.npy", b"PK\x03\x04 not numpy at all")
    elif case == "pickled objects":
        replace("token_text.npy", npy(np.array(list(small.token_text), dtype=object), allow_pickle=True))
    elif case == "structured dtype":
        replace("token_ids.npy", npy(np.zeros(small.n_tokens, dtype=[("a", "<i4")])))
    elif case == "empty dtype":
        replace("token_text.npy", npy_header("<U0", (small.n_tokens,)))
    path.write_bytes(raw_zip(entries))
    return path


SIZE_CASES = {
    "shape of 10**12 elements": ["array 'token_ids' declares shape (1000000000000) of <i4, 4000000000000 bytes",
                                 "more than a trace may hold (256 MiB)"],
    "huge dtype": ["array 'token_text' declares shape (2) of <U200000000, 1600000000 bytes", "(256 MiB)"],
    "negative shape": ["array 'token_ids' has a bad .npy header (shape (-1))"],
    "a size spelled True": [f"array 'token_text' has shape ({N_TOKENS}), expected (1) (n_tokens)"],
    "too many dimensions": ["array 'token_ids' has a bad .npy header"],
    "member size over the budget": [f"array 'attn_weights' is {MAX_TRACE_BYTES + 1} bytes uncompressed",
                                    "(256 MiB)"],
    "members together over the budget": ["its members are", "bytes uncompressed, more than a trace may hold"],
    "meta over its budget": [f"metadata 'meta' is {MAX_META_BYTES + 1} bytes uncompressed", "(4 MiB)"],
    "meta array over its budget": ["metadata 'meta' declares shape () of <U2000000, 8000000 bytes", "(4 MiB)"],
    "header and directory disagree": ["array 'token_ids' is corrupted (its .npy header declares"],
    "directory says less than the data": ["array 'token_ids' is corrupted (its .npy header declares 48 bytes of "
                                          "data, the zip directory 44)"],
    "directory says less, bad CRC": ["array 'token_ids' is truncated or corrupted (Bad CRC-32"],
    "header too long": ["array 'token_ids' has a 1000000000-byte .npy header"],
    "header not a dict": ["array 'token_ids' has a bad .npy header"],
    "header bad dtype": ["array 'token_ids' has a bad .npy header"],
    "npy version 3.0": ["array 'token_ids' has .npy format version 3.0"],
    "not an npy member": ["array 'token_ids' is not a .npy array"],
    "pickled objects": ["array 'token_text' cannot be read without pickle"],
    "structured dtype": ["array 'token_ids' has dtype |V4, not plain numbers or text"],
    "empty dtype": ["array 'token_text' has dtype <U0, not plain numbers or text"],
}


@pytest.mark.parametrize("case", SIZE_CASES)
def test_sizes_are_checked_before_decompressing(small, tmp_path, case):
    path = _size_case(case, small, tmp_path / "t.npz")
    refused(path, *SIZE_CASES[case])


def test_a_real_oversized_meta_is_refused(small, tmp_path):
    meta = small.meta | {"prompt": "x" * (MAX_META_BYTES // 4)}
    path = write_zip(tmp_path / "t.npz", members_of(small, meta))
    refused(path, "metadata 'meta' is", "bytes uncompressed, more than a trace may hold (4 MiB)")
    with pytest.raises(TraceError, match=r"metadata takes \d+ bytes as stored, more than .*\(4 MiB\)"):
        make_trace(small.arrays, meta)


def test_a_file_over_the_budget_is_refused_unread(tmp_path):
    path = tmp_path / "big.npz"
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04")
        f.truncate(MAX_TRACE_BYTES + 1)  # sparse: no disk used
    refused(path, f"the file is {MAX_TRACE_BYTES + 1} bytes, more than a trace may hold (256 MiB)")


def test_save_refuses_what_load_would_refuse(small, tmp_path, monkeypatch):
    monkeypatch.setattr(tf, "MAX_TRACE_BYTES", 64 * 1024)
    with pytest.raises(TraceError, match=r"the trace takes \d+ bytes as stored, more than a trace may hold"):
        save_trace(small, tmp_path / "t.npz")
    assert not list(tmp_path.iterdir())
    monkeypatch.setattr(tf, "MAX_TRACE_BYTES", 128 * 1024)  # a file written under a larger limit
    path = write_arrays(tmp_path / "t.npz", small)
    monkeypatch.setattr(tf, "MAX_TRACE_BYTES", 64 * 1024)
    refused(path, "more than a trace may hold (0.0625 MiB)")


# ---- decompression bombs

BOMB_GIB = 2


def deflated_zeros(header: bytes, n_mib: int) -> bytes:
    """header then n_mib MiB of zeros as one raw deflate stream (~1 KB per MiB), built in milliseconds: after a
    full flush deflate starts afresh, so one compressed MiB can be repeated."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + block * n_mib + b"\x03\x00"  # an empty final block


@pytest.fixture(scope="module")
def bombs(small, workdir) -> dict[str, Path]:
    """Archives whose attn_weights (or meta) inflates to 2 GiB of zeros, lying in different ways."""
    n = BOMB_GIB * 1024
    real = n << 20
    honest = npy_header("<f4", (real // 4,))
    small_header = npy_header("<f4", (100,))
    meta_header = npy_header("<U100", ())
    meta = entry("meta.npy", meta_npy(small.meta))
    variants = {
        # the directory says 2 GiB: refused from the directory alone
        "honest sizes": [meta, {"name": "attn_weights.npy", "data": deflated_zeros(honest, n),
                                "file_size": len(honest) + real}],
        # the directory says 1 KB (with the CRC of that KB), the .npy header 2 GiB: refused at the header
        "directory lies": [meta, {"name": "attn_weights.npy", "data": deflated_zeros(honest, n), "file_size": 1000,
                                  "crc": zlib.crc32((honest + bytes(1000))[:1000])}],
        # both say 400 bytes of data, the stream goes on for 2 GiB: zipfile stops at the declared size, bad CRC
        "directory and header lie": [meta, {"name": "attn_weights.npy", "data": deflated_zeros(small_header, n),
                                            "file_size": len(small_header) + 400}],
        # the same in the metadata
        "meta lies": [{"name": "meta.npy", "data": deflated_zeros(meta_header, n),
                       "file_size": len(meta_header) + 400}],
    }
    paths = {}
    for name, entries in variants.items():
        paths[name] = workdir / f"bomb-{name.replace(' ', '-')}.npz"
        paths[name].write_bytes(raw_zip(entries))
    return paths


BOMB_MESSAGES = {
    "honest sizes": f"array 'attn_weights' is {(BOMB_GIB << 30) + 128} bytes uncompressed, more than",
    "directory lies": f"array 'attn_weights' declares shape ({(BOMB_GIB << 30) // 4}) of <f4",
    "directory and header lie": "array 'attn_weights' is truncated or corrupted (Bad CRC-32",
    "meta lies": "metadata 'meta' is truncated or corrupted (Bad CRC-32",
}


@pytest.mark.parametrize("variant", BOMB_MESSAGES)
def test_decompression_bombs_are_refused_quickly_in_little_memory(bombs, variant):
    path = bombs[variant]
    assert path.stat().st_size < 4 << 20  # a few MB on disk for 2 GiB inflated
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        refused(path, BOMB_MESSAGES[variant])
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 10, f"{elapsed:.1f} s"  # a regression guard (observed: milliseconds), not a benchmark
    assert peak < 32 << 20, f"peak {peak / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------------------------
# family 3: the members


def _member_case(case: str, small: Trace, path: Path) -> Path:
    members = members_of(small)
    if case == "unknown member":
        members.append(("extra.npy", npy(np.zeros(3))))
    elif case == "not .npy":
        members.append(("notes.txt", b"hello"))
    elif case == "no extension":
        members.append(("token_ids", npy(small.token_ids)))
    elif case == "in a folder":
        members.append(("sub/token_ids.npy", npy(small.token_ids)))
    elif case == "a folder":
        members.append(("sub/", b""))
    elif case == "twice":
        members.append(("token_ids.npy", npy(small.token_ids)))
    elif case == "meta twice":
        members.append(("meta.npy", meta_npy(small.meta)))
    elif case == "newline in the name":
        members.append(("a\nb.npy", b""))
    elif case == "not ASCII":
        members.append(("tökens.npy", b""))
    elif case == "missing array":
        members = [m for m in members if m[0] != "mamba_delta.npy"]
    return write_zip(path, members)


MEMBER_CASES = {
    "unknown member": "unknown member 'extra.npy' (not an array of the trace format, schema version 2)",
    "not .npy": "member 'notes.txt' is not named like an array (<name>.npy)",
    "no extension": "member 'token_ids' is not named like an array",
    "in a folder": "member 'sub/token_ids.npy' is not named like an array",
    "a folder": "member 'sub/' is a folder; a trace holds only .npy arrays",
    "twice": "member 'token_ids.npy' appears twice",
    "meta twice": "member 'meta.npy' appears twice",
    "newline in the name": "member 'a\\nb.npy' is not named like an array",
    "not ASCII": "member 'tökens.npy' is not named like an array",
    "missing array": "missing array 'mamba_delta'",
}


@pytest.mark.parametrize("case", MEMBER_CASES)
def test_members_must_be_the_format_arrays(small, tmp_path, case):
    refused(_member_case(case, small, tmp_path / "t.npz"), MEMBER_CASES[case])


def test_an_unknown_member_is_never_decompressed(small, tmp_path, monkeypatch):
    """Refused by its name alone: here it is a bomb whose sizes lie, and nothing is opened at all."""
    entries = honest_entries(small) + [{"name": "extra.npy", "data": deflated_zeros(b"", 64), "file_size": 10}]
    path = tmp_path / "t.npz"
    path.write_bytes(raw_zip(entries))
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))
    refused(path, "unknown member 'extra.npy'")
    assert opened == []


def test_make_trace_refuses_unknown_arrays(small):
    with pytest.raises(TraceError, match="unknown array 'extra'"):
        make_trace(small.arrays | {"extra": np.zeros(3)}, small.meta)
    with pytest.raises(TraceError, match="unknown array 'meta'"):
        make_trace(small.arrays | {"meta": np.array("{}")}, small.meta)


# ------------------------------------------------------------------------------------------------
# family 4: the metadata


def nested(depth: int):
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def _meta_case(case: str, small: Trace, path: Path) -> Path:
    members = [m for m in members_of(small) if m[0] != "meta.npy"]
    meta, raw = dict(small.meta), None
    if case == "not 0-d":
        raw = npy(np.array([json.dumps(meta)]))
    elif case == "not unicode":
        raw = npy(np.array(1.5))
    elif case == "bytes":
        raw = npy(np.array(json.dumps(meta).encode()))
    elif case == "not JSON":
        raw = npy(np.array("{not json"))
    elif case == "a list":
        raw = npy(np.array("[1, 2]"))
    elif case == "100000 nested lists":
        raw = npy(np.array("[" * 100_000 + "]" * 100_000))
    elif case == "nested past the limit":
        meta["model_config"] = meta["model_config"] | {"deep": nested(MAX_META_DEPTH + 5)}
    elif case == "lone surrogate in prompt (JSON escape)":
        raw = npy(np.array(json.dumps(meta | {"prompt": "hi \ud800"})))  # ensure_ascii: written as \ud800
    elif case == "lone surrogate in generated_text (raw)":
        raw = npy(np.array(json.dumps(meta | {"generated_text": "a\udfffb"}, ensure_ascii=False)))
    elif case == "lone surrogate in model_config":
        meta["model_config"] = meta["model_config"] | {"kernels": ["x", "\udc80"]}
    elif case == "lone surrogate in a key":
        meta["\ud83e"] = 1
    elif case == "past U+10FFFF":
        text = json.dumps(meta)
        codes = np.array([ord(c) for c in text] + [0x110000], dtype=np.uint32)
        raw = npy(codes.view(f"<U{len(codes)}").reshape(()))
    elif case == "wrong type":
        meta["n_prompt_tokens"] = "3"
    elif case == "bool for an int":
        meta["seed"] = True
    elif case == "an integer of 5000 digits":
        raw = npy(np.array(json.dumps(meta)[:-1] + ', "big": ' + "9" * 5000 + "}"))
    elif case == "model_config disagrees with the arrays":
        meta["model_config"] = meta["model_config"] | {"n_routed_experts": 8}
    elif case == "model_config k is not an int":
        meta["model_config"] = meta["model_config"] | {"num_experts_per_tok": "4"}
    elif case == "n_prompt_tokens 0":
        meta["n_prompt_tokens"] = 0
    elif case == "n_prompt_tokens past the end":
        meta["n_prompt_tokens"] = small.n_tokens + 1
    elif case == "bad pattern":
        meta["pattern"] = "MEX"
    if raw is None:
        raw = npy(np.array(json.dumps(meta)))
    return write_zip(path, members + [("meta.npy", raw)])


META_CASES = {
    "not 0-d": "bad metadata: 'meta' must be a 0-d unicode array holding JSON, got dtype <U",
    "not unicode": "'meta' must be a 0-d unicode array holding JSON, got dtype <f8 shape ()",
    "bytes": "'meta' must be a 0-d unicode array holding JSON, got dtype |S",
    "not JSON": "bad metadata JSON (Expecting property name",
    "a list": "bad metadata JSON (expected an object, got list)",
    "100000 nested lists": "bad metadata JSON (nested too deeply)",
    "nested past the limit": f"metadata 'model_config' is nested more than {MAX_META_DEPTH} levels deep",
    "lone surrogate in prompt (JSON escape)": "metadata 'prompt' holds text that does not encode as UTF-8 (U+D800",
    "lone surrogate in generated_text (raw)": "bad metadata: the JSON text holds text that does not encode as UTF-8",
    "lone surrogate in model_config": "metadata 'model_config' holds text that does not encode as UTF-8 (U+DC80",
    "lone surrogate in a key": "metadata '\\ud83e' holds text that does not encode as UTF-8 (U+D83E",
    "past U+10FFFF": "the JSON text holds text that does not encode as UTF-8",
    "wrong type": "metadata key 'n_prompt_tokens' has the wrong type (str)",
    "bool for an int": "metadata key 'seed' has the wrong type (bool)",
    "an integer of 5000 digits": "bad metadata JSON (Exceeds the limit (4300 digits)",
    "model_config disagrees with the arrays": "metadata model_config 'n_routed_experts' is 8, but the arrays have "
                                              "E = 16",
    "model_config k is not an int": "metadata model_config 'num_experts_per_tok' is '4', but the arrays have k = 4",
    "n_prompt_tokens 0": f"metadata n_prompt_tokens is 0, expected 1..{N_TOKENS}",
    "n_prompt_tokens past the end": f"metadata n_prompt_tokens is {N_TOKENS + 1}, expected 1..{N_TOKENS}",
    "bad pattern": "metadata pattern 'MEX' is not a layer pattern",
}


@pytest.mark.parametrize("case", META_CASES)
def test_bad_metadata_is_one_line(small, tmp_path, case):
    refused(_meta_case(case, small, tmp_path / "t.npz"), META_CASES[case])


# ------------------------------------------------------------------------------------------------
# family 5: what the scenes rely on, checked at load (and by make_trace, so such a trace is never saved)


def _sized(small: Trace, H=None, E=None, k=None, Q=None) -> dict:
    """The arrays with some free sizes changed (values zero; ids 0..k-1)."""
    a = {n: v for n, v in small.arrays.items()}
    T, Lm, Le, La = small.n_tokens, len(small.layers_of("mamba")), len(small.layers_of("moe")), \
        len(small.layers_of("attention"))
    if H is not None:
        for n in ("mamba_delta", "mamba_decay", "mamba_state_norm"):
            a[n] = np.zeros((Lm, T, H), np.float32)
    if E is not None:
        a["moe_scores"], a["moe_correction_bias"] = np.zeros((Le, T, E), np.float32), np.zeros((Le, E), np.float32)
    if k is not None:
        a["moe_topk_ids"] = np.broadcast_to(np.arange(k, dtype=np.int32), (Le, T, k)).copy()
        a["moe_topk_weights"] = np.ones((Le, T, k), np.float32)
    if Q is not None:
        a["attn_weights"] = np.zeros((La, T, Q, T), np.float32)
    return a


def _edited(small: Trace, name: str, at, value) -> dict:
    a = {n: v for n, v in small.arrays.items()}
    a[name] = a[name].copy()
    a[name][at] = value
    return a


def _texts(small: Trace, name: str, at, text: str) -> dict:
    a = {n: v for n, v in small.arrays.items()}
    values = a[name].tolist()
    target = values
    for i in at[:-1]:
        target = target[i]
    target[at[-1]] = text
    a[name] = np.array(values)
    return a


def _past_unicode(small: Trace) -> dict:
    a = {n: v for n, v in small.arrays.items()}
    codes = tf._codepoints(a["token_text"]).copy()
    codes[2, 0] = 0x110000
    a["token_text"] = codes.view(a["token_text"].dtype).reshape(a["token_text"].shape)
    return a


SCENE_CASES = {
    "no routed experts": (lambda s: _sized(s, E=0, k=1), "the pattern has MoE layers but the arrays have no "
                          "routed experts (E = 0)"),
    "no chosen experts": (lambda s: _sized(s, k=0), "no expert is chosen per token (k = 0)"),
    "k larger than E": (lambda s: _sized(s, E=2, k=4), "each token chooses k = 4 experts, but there are only E = 2"),
    "no Mamba-2 heads": (lambda s: _sized(s, H=0), "the pattern has Mamba-2 layers but the arrays have no Mamba-2 "
                         "heads (H = 0)"),
    "no query heads": (lambda s: _sized(s, Q=0), "the pattern has attention layers but the arrays have no query "
                       "heads (Q = 0)"),
    "an expert chosen twice": (lambda s: _edited(s, "moe_topk_ids", (1, 3), [5, 5, 1, 2]),
                               "array 'moe_topk_ids' chooses the same expert twice for one token (MoE layer slot 1, "
                               "token 3)"),
    "expert id past E": (lambda s: _edited(s, "moe_topk_ids", (1, 2, 0), 16),
                         "array 'moe_topk_ids' holds expert ids outside 0..15"),
    "negative token id": (lambda s: _edited(s, "token_ids", 0, -1), "array 'token_ids' holds negative token ids"),
    "probability above 1": (lambda s: _edited(s, "pred_probs", (0, 0), 1.5),
                            "array 'pred_probs' holds values outside [0, 1]"),
    "attention weight above 1": (lambda s: _edited(s, "attn_weights", (0, 0, 0, 0), 2.0),
                                 "array 'attn_weights' holds values outside [0, 1]"),
    "decay above 1": (lambda s: _edited(s, "mamba_decay", (0, 0, 0), 1.01),
                      "array 'mamba_decay' holds values outside [0, 1]"),
    "negative shared share": (lambda s: _edited(s, "moe_shared_share", (0, 0), -0.1),
                              "array 'moe_shared_share' holds values outside [0, 1]"),
    "negative norm": (lambda s: _edited(s, "update_norm", (0, 0), -1.0), "array 'update_norm' holds negative values"),
    "negative gate weight": (lambda s: _edited(s, "moe_topk_weights", (0, 0, 0), -1.0),
                             "array 'moe_topk_weights' holds negative values"),
    "inf": (lambda s: _edited(s, "moe_latent_norm", (0, 0), np.inf), "array 'moe_latent_norm' holds NaN or inf"),
    "lone surrogate in token_text": (lambda s: _texts(s, "token_text", (3,), "a\ud800"),
                                     "array 'token_text' holds text that does not encode as UTF-8: a lone surrogate "
                                     "or a code point past U+10FFFF (U+D800 at [3], character 1)"),
    "lone surrogate in pred_text": (lambda s: _texts(s, "pred_text", (1, 4), "\udfff"),
                                    "array 'pred_text' holds text that does not encode as UTF-8"),
    "lone surrogate in token_hex": (lambda s: _texts(s, "token_hex", (0,), "\ud800"),
                                    "array 'token_hex' holds text that does not encode as UTF-8"),
    "past U+10FFFF in token_text": (_past_unicode, "array 'token_text' holds text that does not encode as UTF-8"),
    "newline in token_text": (lambda s: _texts(s, "token_text", (2,), "a\nb"),
                              "array 'token_text' holds a control character (display text shows them escaped, e.g. "
                              "'\\x01') (U+000A at [2], character 1)"),
    "NUL inside pred_text": (lambda s: _texts(s, "pred_text", (0, 0), "a\x00b"),
                             "array 'pred_text' holds a control character"),
    "DEL in token_text": (lambda s: _texts(s, "token_text", (0,), "\x7f"), "holds a control character (display text "
                          "shows them escaped, e.g. '\\x01') (U+007F at [0], character 0)"),
    "token_hex not hex": (lambda s: _texts(s, "token_hex", (1,), "zz"),
                          "array 'token_hex' holds a character that is not a lowercase hex digit (U+007A at [1]"),
    "token_hex upper case": (lambda s: _texts(s, "token_hex", (1,), "AB"), "not a lowercase hex digit (U+0041"),
    "token_hex of odd length": (lambda s: _texts(s, "token_hex", (1,), "abc"),
                                "array 'token_hex' holds hex of odd length at [1]"),
    "over-long token text": (lambda s: _texts(s, "token_text", (5,), "x" * (MAX_TEXT_CHARS + 1)),
                             f"array 'token_text' holds an entry of {MAX_TEXT_CHARS + 1} characters at [5]"),
    "no tokens": (lambda s: {n: v[tuple(slice(0, 0) if d == "T" else slice(None) for d in ARRAYS[n].shape)]
                             for n, v in s.arrays.items()}, "the trace holds no tokens"),
    "wrong dtype": (lambda s: s.arrays | {"moe_topk_ids": s.moe_topk_ids.astype(np.float32)},
                    "array 'moe_topk_ids' has dtype float32, expected an integer dtype"),
    "complex floats": (lambda s: s.arrays | {"pred_probs": s.pred_probs.astype(np.complex64)},
                       "array 'pred_probs' has dtype complex64, expected a float dtype"),
    "bytes for text": (lambda s: s.arrays | {"token_text": np.char.encode(s.token_text, "utf-8")},
                       "array 'token_text' has dtype |S"),
}


@pytest.mark.parametrize("case", SCENE_CASES)
def test_what_scenes_rely_on_is_checked_at_load(small, tmp_path, case):
    build, message = SCENE_CASES[case]
    arrays = build(small)
    refused(write_arrays(tmp_path / "t.npz", small, **arrays), message)
    with pytest.raises(TraceError) as err:
        make_trace(arrays, small.meta)
    assert message in str(err.value)


def test_save_and_make_trace_refuse_bad_metadata(small, tmp_path):
    for meta, message in [(small.meta | {"prompt": "\ud800"}, "metadata 'prompt' holds text that does not encode"),
                          (small.meta | {"extra": object()}, "metadata cannot be written as JSON"),
                          (small.meta | {"deep": nested(5000)}, "is nested more than 32 levels deep")]:
        with pytest.raises(TraceError, match=message):
            save_trace(Trace(small.arrays, meta), tmp_path / "t.npz")
    assert not list(tmp_path.iterdir())


def test_save_into_a_bad_path_is_a_trace_error(small, tmp_path):
    with pytest.raises(TraceError, match=r"cannot write the trace to .*: it is a folder, not a regular file"):
        save_trace(small, tmp_path)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# family 6: fuzzing. Every input gives a Trace a scene can use, or one TraceError line.

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _structure_offsets(blob: bytes) -> list[int]:
    """Offsets of the zip's headers and directory, where a flipped byte tests the structure, not zlib."""
    offsets = []
    for sig in (b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"):
        for at in _find_all(blob, sig):
            offsets += range(at, min(at + 60, len(blob)))
    return offsets


mutation = st.tuples(st.sampled_from(["flip", "flip structure", "set structure", "truncate", "insert", "delete",
                                      "copy"]),
                     st.integers(0, 2**32), st.integers(0, 2**32), st.binary(min_size=1, max_size=32))


def mutate(blob: bytes, ops, structure: list[int] | None = None) -> bytes:
    structure = _structure_offsets(blob) if structure is None else structure
    for op, i, j, data in ops:
        if not blob:
            break
        at = i % len(blob)
        if op == "flip":
            blob = patch(blob, at, bytes([blob[at] ^ (data[0] or 1)]))
        elif op in ("flip structure", "set structure") and structure:
            at = structure[i % len(structure)] % len(blob)
            new = blob[at] ^ (data[0] or 1) if op == "flip structure" else data[0]
            blob = patch(blob, at, bytes([new]))
        elif op == "truncate":
            blob = blob[:at]
        elif op == "insert":
            blob = blob[:at] + data + blob[at:]
        elif op == "delete":
            blob = blob[:at] + blob[at + 1 + j % 64:]
        elif op == "copy":
            src = j % len(blob)
            blob = blob[:at] + blob[src:src + 1 + j % 256] + blob[at:]
    return blob


@FUZZ
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_fuzz_mutated_trace_files(small_bytes, workdir, ops):
    path = workdir / "fuzz-mutated.npz"
    path.write_bytes(mutate(small_bytes, ops))
    loads_or_refuses(path)


@FUZZ
@given(member=st.sampled_from(list(ARRAYS) + ["meta"]), ops=st.lists(mutation, min_size=1, max_size=3))
def test_fuzz_mutated_members_in_a_sound_zip(small_members, workdir, member, ops):
    """The zip is sound, a member's .npy bytes are not: its header (the first 128 bytes) or its data."""
    members = [(n, mutate(d, ops, list(range(128))) if n == f"{member}.npy" else d) for n, d in small_members]
    loads_or_refuses(write_zip(workdir / "fuzz-members.npz", members))


@FUZZ
@given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"]),
       data=st.binary(max_size=512))
def test_fuzz_random_bytes(workdir, prefix, data):
    path = workdir / "fuzz-random.npz"
    path.write_bytes(prefix + data)
    assert loads_or_refuses(path) is None


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3),
                           max_leaves=10)
dtypes = st.sampled_from(["<f4", ">f8", "<f2", "<i4", "|u1", "<i8", "<U5", "|S3", "|b1", "<c8", "<M8[s]", "|O",
                          "<m8[D]", "<U1"])
shapes = st.lists(st.integers(0, 4), max_size=4).map(tuple)


@st.composite
def npz_archives(draw, trace: Trace):
    """np.savez archives near a valid trace: some members replaced, dropped or added, random metadata."""
    arrays = dict(trace.arrays)
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(list(ARRAYS)) | st.text(min_size=1, max_size=6))
        if draw(st.booleans()):
            arrays.pop(name, None)
        else:
            dtype = np.dtype(draw(dtypes))
            shape = draw(shapes | st.just(arrays.get(name, np.zeros(0)).shape))
            values = draw(st.sampled_from([0, 1, -1, 0.5, 2**40, np.nan, "\ud800", "ab"]))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # NaN cast to int
                    arrays[name] = np.full(shape, values, dtype=dtype)
            except (ValueError, TypeError, OverflowError):
                arrays[name] = np.zeros(shape, dtype)
    meta = dict(trace.meta)
    for key in draw(st.lists(st.sampled_from(list(meta) + ["x"]), max_size=2)):
        meta[key] = draw(json_values)
    meta_array = draw(st.sampled_from([np.array(json.dumps(meta)), np.array(json.dumps(draw(json_values))),
                                       np.array(json.dumps(meta, ensure_ascii=False)), np.zeros(2)]))
    return arrays | {"meta": meta_array}


@FUZZ
@given(data=st.data())
def test_fuzz_structurally_valid_archives(small, workdir, data):
    arrays = data.draw(npz_archives(small))
    path = workdir / "fuzz-structured.npz"
    try:
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    except (ValueError, TypeError):  # a name numpy itself cannot write
        return
    loads_or_refuses(path)
