"""The unsupervised study's tables: paired SimCLR differences by seed, zero-shot against
chance, and a duplicated row is an error, never averaged."""

from __future__ import annotations

import importlib.util
import json

import pytest

from jtl.errors import JtlError
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("unsup_table",
                                              ROOT / "experiments/unsupervised/table.py")
table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table)


def cluster(encoder, seed, nmi):
    return {"key": f"cluster/m2u/{encoder}/{seed}", "table": "cluster", "direction": "m2u",
            "encoder": encoder, "seed": seed, "cluster_nmi": nmi, "cluster_ari": nmi / 2,
            "cluster_probe_accuracy": 0.9}


def test_paired_difference_and_zero_shot_verdict(tmp_path):
    rows = [cluster("simclr", s, v) for s, v in enumerate([0.60, 0.62, 0.64])]
    rows += [cluster("random_init", s, v) for s, v in enumerate([0.50, 0.51, 0.55])]
    rows += [{"key": f"zero_shot/mnist/usps/{s}", "table": "zero_shot", "seen_on": "mnist",
              "scored_on": "usps", "seed": s, "zero_shot_unseen_balanced_accuracy": a,
              "zero_shot_unseen_accuracy": 0.9, "zero_shot_unseen_majority": 0.7,
              "zero_shot_unseen_chance": 0.5, "zero_shot_seen_balanced_accuracy": 0.9}
             for s, a in enumerate([0.8, 0.82, 0.85])]
    text = table.render(rows)
    # Paired differences 10, 11, 9 (x100): mean +10.0, CI excludes 0.
    assert "| random-init encoder | +10.0 [" in text and "] | yes |" in text
    assert "| MNIST | USPS | 82.3 [" in text and "| 50 | yes |" in text


def test_a_duplicate_row_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    row = json.dumps(cluster("simclr", 0, 0.6))
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(JtlError, match="twice"):
        table.load(path)
