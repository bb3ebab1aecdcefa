"""A suite's published `reference` figures and a task's final test metrics, end to end: run a
tiny homework-VAE suite through the harness, then read both back in runs.csv and the report."""

from __future__ import annotations

import pandas as pd
import pytest

from lrbench.report import make_report
from lrbench.report._results import load_runs, walk
from lrbench.running import run_suite

SUITE = """
[suite]
seeds = [0]
budget_epochs = 2
[data]
train_subset = 256
[tasks.vae]
task = "fmnist_vae"
options = { hidden = 32, val_size = 256, iwae_k = 8 }
target = 235.0
epochs_per_trial = 2
[[strategies]]
name = "fixed"
lr = 3e-3
reference = { 1 = 400.0, 2 = 380.0 }
"""


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from lrbench.tasks._data import FASHION_MNIST_DEBIAN_DIR

    if not (FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("ref")
    path = root / "reftest.toml"
    path.write_text(SUITE)
    storage = f"sqlite:///{root / 'reftest.db'}"
    run_suite(path, storage=storage, device="cpu")
    make_report("reftest", storage=storage, out=root / "report")
    return storage, root / "report"


def test_final_metrics_of_the_chosen_configuration_are_in_runs_csv(stored):
    _, out = stored
    row = pd.read_csv(out / "runs.csv").iloc[0]
    # Stored for the chosen trial: the importance-weighted bound is tighter than the one-sample
    # -ELBO, and both are near the homework NLL (the task's own test metric).
    assert row["test_iwae_nll"] < row["test_neg_elbo"]
    assert abs(row["test_neg_elbo"] - row["test"]) < 30.0


def test_reference_table_sets_best_so_far_beside_the_published_values(stored):
    storage, out = stored
    (run,) = load_runs(storage, "reftest")
    vals = [p.val for p in walk(run)]
    text = (out / "report.md").read_text()
    start = text.index("### Reference figures")
    end = text.find("\n#", start + 1)  # the next heading, of any level
    section = text[start : end if end >= 0 else None]
    rows = [line for line in section.splitlines() if line.startswith("| fixed")]
    assert len(rows) == 2
    for line, epochs, ref in zip(rows, (1, 2), (400.0, 380.0)):
        cells = [c.strip() for c in line.strip("|").split("|")]
        ours = min(vals[:epochs])
        assert cells[1] == str(epochs) and float(cells[3]) == ref
        assert float(cells[4]) == pytest.approx(ours - ref, abs=0.006)
        assert cells[2] == f"{ours:.2f}"  # two decimals, as published tables give them
