"""`lrbench bench --all --tiny --device cpu`: every section of the GPU command runs on the CPU,
on the same code paths, and writes its figures as it goes."""

from __future__ import annotations

import json

import pytest

from lrbench.bench._all import SECTIONS
from lrbench.cli import main


def test_the_tiny_mode_runs_every_section_and_writes_each_as_measured(tmp_path, request):
    try:  # CIFAR-10 where the project's JPEG copy is beside the repository, else skipped
        root: str | None = str(request.getfixturevalue("cifar10_root"))
    except pytest.skip.Exception:
        root = None
    argv = ["bench", "--all", "--tiny", "--device", "cpu", "--out", str(tmp_path)]
    assert main(argv + (["--data-root", root] if root else [])) == 0
    results = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in SECTIONS}
    engine = {r["task"]: r for r in results["engine"]["rows"]}
    assert engine["fmnist_vae"]["train_examples"] == 256
    assert engine["fmnist_vae"]["vs_plain_loop"] > 0 and engine["fmnist_vae"]["speedup"] > 0
    population = [r for r in results["population"]["rows"] if r.get("k") is not None]
    assert {(r["task"], r["k"]) for r in population} == {
        (t, k) for t in ("fmnist_vae", "digits") for k in (1, 2)
    }
    sigdigit = results["sigdigit"]
    assert sigdigit["status"] == "measured" and sigdigit["search_complete"]
    assert (
        sigdigit["trials"] == 9 and 1e-3 <= sigdigit["best_rate"] <= 9e-3
    )  # round 1: 0.009 ... 0.001
    if root is None:
        assert results["cifar10"]["status"].startswith("skipped: CIFAR-10 not found")
    else:
        assert results["cifar10"]["status"] == "measured"
        assert 0 <= results["cifar10"]["runs"][0]["test_accuracy"] <= 1
        assert "vs_plain_loop" in engine["cifar10"]
    md = (tmp_path / "bench.md").read_text()
    assert all(f"## {name}\n" in md for name in SECTIONS)


def test_sections_past_the_time_limit_are_left_out_not_failed(tmp_path, capsys):
    assert main(["bench", "--all", "--tiny", "--time-limit", "1e-9", "--out", str(tmp_path)]) == 0
    for name in SECTIONS:
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["status"] == "not reached: the time limit had passed"
    assert main(["bench", "--all", "--time-limit", "0", "--out", str(tmp_path)]) == 2
    assert "--time-limit must be a positive number of seconds" in capsys.readouterr().err
