"""Tests for the `lrbench` command line: in-process through `lrbench.cli.main` (with capsys), and
as a real process through `python -m lrbench` for the exit status and the absence of tracebacks."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

import lrbench.tasks._data as data
from lrbench.cli import main
from lrbench.strategies import STRATEGIES
from lrbench.tasks import TASKS
from lrbench.tools import OPTIMIZERS, SCHEDULES

FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("LRBENCH_DATA", raising=False)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def lrbench_process(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "LRBENCH_DATA"}
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "lrbench", *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def require_fashion_mnist() -> None:
    d = data.FASHION_MNIST_DEBIAN_DIR
    if not all((d / f"{n}.gz").is_file() or (d / n).is_file() for n in FASHION_FILES):
        pytest.skip(f"Fashion-MNIST not installed in {d}")


# -- help and list --------------------------------------------------------------------------------


def test_help_lists_the_subcommands_with_descriptions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: lrbench" in out
    for line in (
        "list      list tasks, strategies, optimizers and schedules",
        "train     train one trial of a task at one learning rate",
        "bench     time the engine's epochs against a plain DataLoader baseline",
    ):
        assert " ".join(line.split()) in " ".join(out.split())


@pytest.mark.parametrize("command", ["train", "bench"])
def test_subcommand_help(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--device", "--data-root", "--train-subset", "--task-opt"):
        assert option in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_list_shows_tasks_optimizers_schedules(capsys):
    code, out, _ = cli(capsys, "list")
    assert code == 0
    sections = {}
    current = None
    groups: dict[str, list[str]] = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.rstrip(":")
            sections[current] = []
        elif line.strip().startswith("["):
            group = groups[line.strip().strip("[]")] = []
        else:
            sections[current].append(line.split()[0])
            if current == "strategies":
                group.append(line.split()[0])
    assert list(sections) == ["tasks", "strategies", "optimizers", "schedules"]
    assert sections["tasks"] == ["fmnist_vae", "cifar10", "digits", "functions"] == list(TASKS)
    # Strategies are listed by group, every one once.
    assert list(groups) == ["search", "population", "heuristic", "baseline", "self-tuning"]
    assert groups["population"] == ["pbt"]
    assert sorted(sections["strategies"]) == sorted(STRATEGIES)
    assert groups["self-tuning"] == ["dadapt", "dog", "prodigy", "prodigy+cosine", "schedulefree"]
    assert {"qmc", "gp", "tpe", "grid"} <= set(groups["search"])
    assert sections["optimizers"] == list(OPTIMIZERS) and len(OPTIMIZERS) == 15
    assert "prodigyopt.Prodigy" in out and "schedulefree.AdamWScheduleFree" in out
    assert sections["schedules"] == list(SCHEDULES)
    assert "one_cycle" in sections["schedules"] and "cosine_warm_restarts" in sections["schedules"]
    assert "torch.optim.SGD (momentum=0.9, nesterov=True)" in out
    assert "target 235.0" in out and "target set by the suite" in out


# -- train ----------------------------------------------------------------------------------------


def test_train_digits_json(capsys):
    code, out, err = cli(
        capsys, "train", "digits", "--lr", "1e-2", "--epochs", "20", "--json", "--device", "cpu"
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    for key in (
        "task",
        "lr",
        "optimizer",
        "epochs",
        "best_epoch",
        "best_val",
        "test",
        "diverged",
        "history",
    ):
        assert key in result
    assert result["task"] == "digits" and result["lr"] == 0.01 and result["optimizer"] == "adam"
    assert result["epochs"] == 20 and len(result["history"]) == 20
    assert result["best_val"] >= 0.9
    assert 0.8 <= result["test"] <= 1.0
    assert result["diverged"] is False
    assert result["device"] == "cpu"
    assert result["history"][0]["epoch"] == 1 and result["history"][-1]["epochs_done"] == 20


def test_train_human_output_with_schedule_and_options(capsys):
    code, out, err = cli(
        capsys,
        "train",
        "digits",
        "--lr",
        "0.05",
        "--epochs",
        "3",
        "--optimizer",
        "momentum",
        "--schedule",
        "step",
        "step_size=1",
        "gamma=0.5",
        "--task-opt",
        "hidden=32",
        "--train-subset",
        "640",
        "--device",
        "cpu",
        "--seed",
        "1",
    )
    assert code == 0, err
    assert "best epoch" in out and "test accuracy of that state" in out
    assert "3 epochs, 30 steps" in out  # 640 examples / batch 64
    # One line per epoch (printed above the progress bar), with the rate at each epoch's end.
    assert "epoch   1" in out and "epoch   3" in out
    assert "lr 0.025 " in out and "lr 0.00625 " in out


def test_train_the_seeds_cosine_recipe_with_a_fresh_adam_every_epoch(capsys):
    argv = ["--lr", "1e-3", "--epochs", "6", "--schedule", "seed002_cosine", "--json"]
    code, out, err = cli(capsys, "train", "digits", *argv, "--optimizer-reset", "epoch")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # The rate after each epoch: the warm-up's 2/5 ... 5/5, the cosine's start, its end.
    rates = [h["lr"] for h in result["history"]]
    assert rates == pytest.approx([4e-4, 6e-4, 8e-4, 1e-3, 1e-3, 0.0], rel=1e-12, abs=1e-18)


def test_train_reports_divergence(capsys):
    code, out, err = cli(capsys, "train", "functions", "--lr", "0.2", "--device", "cpu")
    assert code == 0, err
    assert "diverged at epoch 1 (lr 0.2); 1 epochs counted" in out


def test_train_json_diverged_run_is_still_json(capsys):
    code, out, _ = cli(
        capsys,
        "train",
        "digits",
        "--lr",
        "1e4",
        "--optimizer",
        "sgd",
        "--epochs",
        "3",
        "--json",
        "--device",
        "cpu",
    )
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["diverged"] is True and result["epochs"] == 1
    assert math.isnan(result["history"][0]["val"]) and result["best_val"] is None


# -- errors: exit status 2, a clear message, no traceback -----------------------------------------


def test_missing_fashion_mnist_names_the_searched_places(capsys, tmp_path, monkeypatch):
    empty_root, empty_env, hidden = tmp_path / "root", tmp_path / "env", tmp_path / "not-installed"
    empty_root.mkdir()
    empty_env.mkdir()
    monkeypatch.setenv("LRBENCH_DATA", str(empty_env))
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_DIR", hidden)
    code, out, err = cli(
        capsys,
        "train",
        "fmnist_vae",
        "--lr",
        "1e-3",
        "--data-root",
        str(empty_root),
        "--device",
        "cpu",
    )
    assert code == 2
    assert err.startswith("lrbench: error: Fashion-MNIST not found")
    for place in (empty_root, empty_root / "FashionMNIST" / "raw", empty_env, hidden):
        assert str(place) in err
    assert "apt-get install dataset-fashion-mnist" in err and "--download" in err
    assert "Traceback" not in err and out == ""


def test_missing_data_as_a_process(tmp_path):
    # A real process cannot hide the Debian folder, so use CIFAR-10, which has no system copy.
    proc = lrbench_process(
        "train",
        "cifar10",
        "--lr",
        "0.1",
        "--data-root",
        str(tmp_path),
        "--device",
        "cpu",
        env={"LRBENCH_DATA": str(tmp_path / "env"), "HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 2
    assert "CIFAR-10 not found" in proc.stderr
    assert str(tmp_path / "cifar-10-batches-py") in proc.stderr
    assert str(tmp_path / "env" / "cifar-10-batches-py") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_cifar_file_is_named(capsys, tmp_path, cifar10_root):
    root = tmp_path / "cifar"
    shutil.copytree(cifar10_root, root)
    bad = root / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:5000])  # truncated, as by an interrupted copy
    code, out, err = cli(
        capsys,
        "train",
        "cifar10",
        "--lr",
        "0.1",
        "--epochs",
        "1",
        "--data-root",
        str(root),
        "--task-opt",
        "width=8",
        "batch_size=64",
        "--device",
        "cpu",
    )
    assert code == 2
    assert str(bad) in err
    assert err.startswith("lrbench: error: ")
    assert "Traceback" not in err


def test_cifar_train_from_fixture_via_cli(capsys, cifar10_root):
    code, out, err = cli(
        capsys,
        "train",
        "cifar10",
        "--lr",
        "0.2",
        "--epochs",
        "1",
        "--json",
        "--data-root",
        str(cifar10_root),
        "--task-opt",
        "width=8",
        "batch_size=64",
        "--device",
        "cpu",
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["task"] == "cifar10" and result["optimizer"] == "nesterov"
    assert 0.0 <= result["best_val"] <= 1.0 and result["steps"] == 800 // 64
    assert result["history"][-1]["lr"] > 0


def test_unknown_task(capsys):
    code, out, err = cli(capsys, "train", "imagenet", "--lr", "0.1")
    assert code == 2
    assert "unknown task 'imagenet'" in err
    for name in TASKS:
        assert name in err


def test_unknown_task_as_a_process():
    proc = lrbench_process("train", "imagenet", "--lr", "0.1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "lrbench: error: unknown task 'imagenet'; choose one of "
        "fmnist_vae, cifar10, digits, functions"
    )
    assert proc.stdout == ""


def test_unknown_optimizer(capsys):
    code, _, err = cli(
        capsys, "train", "digits", "--lr", "0.1", "--optimizer", "lion", "--device", "cpu"
    )
    assert code == 2
    assert "unknown optimizer 'lion'" in err and "adamw" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "0"], "learning rate must be positive"),
        (["--lr", "0.1", "--epochs", "0"], "epochs must be positive"),
        (["--lr", "0.1", "--schedule", "warmup"], "unknown schedule 'warmup'"),
        (["--lr", "0.1", "--schedule", "step", "gama=0.5"], "unknown option(s) gama"),
        (["--lr", "0.1", "--schedule", "step", "gamma"], "'gamma' is not KEY=VALUE"),
        (["--lr", "0.1", "--schedule", "wsd", "decay=exp"], "decay must be one of linear, cosine"),
        (
            ["--lr", "0.1", "--epochs", "5", "--schedule", "seed002_cosine"],
            "warmup must be at least 0 and below epochs=5",
        ),
        (
            ["--lr", "0.1", "--optimizer-reset", "batch"],
            "optimizer_reset must be one of none, epoch",
        ),
        (["--lr", "0.1", "--task-opt", "hiden=32"], "unknown option(s) hiden"),
        (["--lr", "0.1", "--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_values_exit_2_naming_them(capsys, argv, message):
    code, _, err = cli(capsys, "train", "digits", *argv)
    assert code == 2
    assert message in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(capsys):
    code, _, err = cli(capsys, "train", "digits", "--lr", "0.1", "--device", "cuda")
    assert code == 2
    assert "no CUDA device is available" in err and "--device cpu" in err


def test_bad_argument_type_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "digits", "--lr", "fast"])
    assert e.value.code == 2
    assert "--lr" in capsys.readouterr().err


# -- bench ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_fmnist_prints_a_speedup(capsys):
    require_fashion_mnist()
    code, out, err = cli(
        capsys,
        "bench",
        "fmnist_vae",
        "--train-subset",
        "2000",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--json",
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("fmnist_vae ")
    assert "2000 training examples" in lines[0] and "speed-up x" in lines[0]
    rows = json.loads(lines[-1])
    assert rows[0]["task"] == "fmnist_vae" and rows[0]["train_examples"] == 2000
    assert rows[0]["speedup"] > 0
    assert rows[0]["speedup"] == pytest.approx(
        rows[0]["dataloader_s_per_epoch"] / rows[0]["engine_s_per_epoch"]
    )


def test_bench_cifar10_baseline_reads_the_same_local_copy(capsys, cifar10_root):
    # The local copy lacks the official md5 sums that torchvision's CIFAR10 checks.
    code, out, err = cli(
        capsys,
        "bench",
        "cifar10",
        "--train-subset",
        "128",
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--data-root",
        str(cifar10_root),
        "--task-opt",
        "cifar10.width=4",
        "cifar10.batch_size=64",
        "--json",
    )
    assert code == 0, err
    rows = json.loads(out.strip().splitlines()[-1])
    assert rows[0]["task"] == "cifar10" and rows[0]["train_examples"] == 128
    assert rows[0]["options"]["width"] == 4 and rows[0]["dataloader_s_per_epoch"] > 0


def test_bench_harness_times_both_sides_on_the_same_trials(capsys):
    assert main(["bench", "--harness", "--trials", "12", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    row = json.loads(out[-1])
    assert row["trials"] == 12 and row["storage"] == "sqlite"
    assert row["ratio"] == row["lrbench_s_per_trial"] / row["plain_s_per_trial"]
    assert all(row[k] > 0 for k in ("lrbench_s_per_trial", "plain_s_per_trial"))
    assert out[0].startswith("harness, 12 trials") and f"x{row['ratio']:.2f}" in out[0]
    assert main(["bench", "--harness", "--trials", "3"]) == 2
    assert "--trials must be at least 10" in capsys.readouterr().err
