"""Every notebook in notebooks/ runs top to bottom on the tiny runs of `tests.analysis.tiny`
(any cell raising fails the test), and a bad run dir stops it with jtl's one-line message.

The runs are passed the way papermill does it: a cell assigning the parameters is inserted
after the cell tagged `parameters`. Executed with nbclient in a fresh kernel.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from jtl.measures import ntg
from tests.analysis.tiny import Study

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("inspect_run", "domain_confusion", "negative_transfer", "what_moved")


def parameters_index(nb: nbformat.NotebookNode) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook has exactly one cell tagged 'parameters'"
    return tagged[0]


def execute(name: str, **params: Any) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(parameters_index(nb) + 1, nbformat.v4.new_code_cell(source))
    # One OpenMP thread in the kernel: t-SNE's spin ~8x slower on a busy 2-core CPU.
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute(
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    return nb


def outputs(nb: nbformat.NotebookNode, kind: str) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if kind in o.get("data", {}) or o.get("name") == kind]


def test_notebooks_are_stored_without_outputs_and_with_parameters():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        parameters_index(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def params_for(name: str, tiny: Study) -> dict[str, Any]:
    finetuned = {"all layers, 3/class": str(tiny.grid / "finetune" / "pc3" / "seed0"),
                 "block 0 frozen": str(tiny.freeze)}
    return {"inspect_run": {"RUN_DIR": str(tiny.source), "STEP": "best"},
            "domain_confusion": {"BEFORE_DIR": str(tiny.source),
                                 "AFTER_DIR": str(tiny.adapted), "MAX_POINTS": 100},
            "negative_transfer": {"GRID_DIR": str(tiny.grid)},
            "what_moved": {"SOURCE_DIR": str(tiny.source), "FINETUNED_DIRS": finetuned},
            }[name]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_tiny_runs(name: str, tiny: Study):
    nb = execute(name, **params_for(name, tiny))
    assert outputs(nb, "image/png"), f"{name} drew no figure"
    text = "".join(o.get("text", "") for o in outputs(nb, "stdout"))
    if name == "negative_transfer":  # the NTG table has one row per fine-tuned size
        tables = "".join(o["data"]["text/plain"] for o in outputs(nb, "text/plain"))
        assert "ntg_verdict" in tables
        assert any(v in tables for v in (ntg.NEGATIVE, ntg.POSITIVE, ntg.INCONCLUSIVE))
    if name == "inspect_run":
        assert str(tiny.source) in text


def test_a_bad_run_dir_stops_the_notebook_with_a_clear_message(tiny: Study, tmp_path: Path):
    with pytest.raises(CellExecutionError) as missing:
        execute("what_moved", SOURCE_DIR=str(tmp_path / "nope"), FINETUNED_DIRS={})
    no_ckpt = tmp_path / "no_checkpoint"
    shutil.copytree(tiny.source / ".hydra", no_ckpt / ".hydra")
    with pytest.raises(CellExecutionError) as empty:
        execute("inspect_run", RUN_DIR=str(no_ckpt))
    for err, what in ((missing, "does not exist"), (empty, "holds no checkpoint")):
        assert err.value.ename == "JtlError" and what in err.value.evalue
        assert "orbax" not in str(err.value)
