"""The course in notebooks/: committed clean, and each notebook runs top to bottom in a fresh kernel and shows
what it teaches.

Each notebook runs with TOY_NOTEBOOK_FAST=1 (its heavy cells use fewer tokens and training steps, the same
code), then one extra cell, run in the same kernel, reads the notebook's own variables and checks a claim the
notebook makes to the learner.
"""

import json
import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MARK = "NOTEBOOK-CHECK "

# What each notebook claims, as code run after it (it prints MARK + a JSON object of named booleans/values).
CLAIMS = {
    "01_tour": """
import numpy as np
ok = {
    "the stream leaving block i enters block i+1":
        bool(np.allclose(trace.resid_norm_out[:-1], trace.resid_norm_in[1:], rtol=1e-5)),
    "pattern counts": counts == {"Mamba-2": 6, "MoE": 6, "Attention": 3},
}
""",
    "02_mamba2_ssd": """
import numpy as np
scale = np.abs(y_rec).max()
ok = {
    "recurrence == matrix": bool(np.abs(y_rec - y_mat).max() <= 1e-5 * scale),
    "recurrence == chunked scan": bool(np.abs(y_rec - y_chunk).max() <= 1e-5 * scale),
    "recurrence == the model's recorded y": bool(np.abs(y_rec - trace.mamba_detail_y[0]).max() <= 1e-4 * scale),
    "Triton kernel == recurrence": bool(np.abs(y_triton - y_rec).max() <= 1e-4 * scale),
    "M is lower triangular": bool(np.all(np.triu(M, 1) == 0)),
}
""",
    "03_latent_moe": """
ok = {
    "the recorded gates are the normalised unbiased scores":
        bool(np.allclose(gates, trace.moe_topk_weights[slot, t], rtol=1e-5)),
    "every MoE layer's load is more skewed without the bias": bool((rows[:, 1] > rows[:, 0]).all()),
    "Super's latent divides expert weights by d / l": s["expert_params_full"] == 4 * s["expert_params_latent"],
}
""",
    "04_attention_memory": """
import numpy as np
ok = {
    "the KV cache grows by the same bytes every token":
        bool(np.all(np.diff(kv) == np.diff(kv)[0]) and np.diff(kv)[0] > 0),
    "the Mamba-2 state does not grow": bool(np.all(state == state[0])),
    "attention rows are causal": bool(np.all(np.triu(att[:, 0, :], 1) == 0)),
}
""",
    "05_make_your_own": """
ok = {
    "the checkpoint directory loads to the same logits": bool(same),
    "the trained model beats the unigram baseline": summary["val_bits_per_byte"] < summary["unigram_bits_per_byte"],
    "the trace is of the variant (its own pattern)": my_trace.pattern == mine.cfg.pattern != "MEM*E" * 3,
}
""",
}


def test_every_notebook_has_a_claim_checked():
    assert [p.stem for p in NOTEBOOKS] == sorted(CLAIMS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebooks_carry_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {i} has outputs"
    # a course notebook opens with what the learner will see, and ends with exercises and hideable answers
    assert "What you will see" in nb.cells[0].source
    assert any("## Exercises" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert any("solution" in c.metadata.get("tags", []) for c in nb.cells)


def run_notebook(path: Path, tmp_path: Path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CLAIMS[path.stem] + f"\nimport json\nprint({MARK!r} + json.dumps(ok))"))
    os.environ["TOY_NOTEBOOK_FAST"] = "1"  # inherited by the kernel
    try:
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
    finally:
        os.environ.pop("TOY_NOTEBOOK_FAST", None)
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_what_it_teaches(path, tmp_path):
    nb = run_notebook(path, tmp_path)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    line = next(ln for ln in text.splitlines() if ln.startswith(MARK))
    claims = json.loads(line[len(MARK):])
    assert all(claims.values()), claims
    # no wall of warnings: nothing on stderr but progress bars
    noise = [o["text"] for o in outputs if o.output_type == "stream" and o.name == "stderr"
             and "Warning" in o["text"]]
    assert not noise, noise[:3]
    # every %%manim cell showed its clip, embedded (the notebook keeps it when moved or exported)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%manim"):
            html = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
            assert "<video" in html and "base64" in html, f"{path.name}: a clip did not embed"
    # the repository gets nothing: the notebook worked in a temporary folder
    assert not (ROOT / "notebooks" / "media").exists()
