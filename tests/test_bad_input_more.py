"""More bad input, tried as a new user would: absurd numbers that once passed validation, names
too long for a file name, storage files that are not lrbench's, values accepted silently.

Each case runs the real CLI and must exit 2 with one clear message, no traceback, and nothing
stored changed (the helpers and fixtures are test_bad_input's).
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import test_bad_input as base
from test_bad_input import (
    FASHION,
    SUITE,
    assert_clear_error,
    fashion_root,
    strategy,
    suite_with,
)

from lrbench.cli import main

# The fixtures: a storage holding the complete run of SUITE, and a copy of it per test.
stored, storage = base.stored, base.storage

LONG = "x" * 300
BOWL = 'task = "functions"\noptions = { function = "bowl" }'


def digits_with(options: str) -> str:
    return suite_with(BOWL, f'task = "digits"\noptions = {options}')


# name -> (suite text, extra CLI args, texts the message must hold)
SUITE_CASES: dict[str, tuple[str, list[str], list[str]]] = {
    # Absurd numbers
    "infinite budget": (
        suite_with("budget_epochs = 2", "budget_epochs = inf"),
        [],
        ["suite.budget_epochs", "finite"],
    ),
    "budget of 1e308 epochs": (
        suite_with("budget_epochs = 2", "budget_epochs = 1e308"),
        [],
        ["suite.budget_epochs", "at most"],
    ),
    "infinite task budget": (
        suite_with("low = 1e-3", "budget_epochs = inf\nlow = 1e-3"),
        [],
        ["tasks.bowl.budget_epochs", "finite"],
    ),
    "task budget of 1e308 epochs": (
        suite_with("low = 1e-3", "budget_epochs = 1e308\nlow = 1e-3"),
        [],
        ["tasks.bowl.budget_epochs", "at most"],
    ),
    "infinite high": (suite_with("high = 0.1", "high = inf"), [], ["tasks.bowl.high", "finite"]),
    "huge epochs per trial": (
        suite_with("epochs_per_trial = 1", "epochs_per_trial = 9223372036854775807"),
        [],
        ["tasks.bowl.epochs_per_trial", "at most"],
    ),
    "grid n of 2**63-1": (
        strategy('[[strategies]]\nname = "grid"\nn = 9223372036854775807\n'),
        [],
        ["strategies[0]", "n=9223372036854775807", "at most"],
    ),
    "sigdigit digits of 2**63-1": (
        strategy('[[strategies]]\nname = "sigdigit"\ndigits = 9223372036854775807\n'),
        [],
        ["strategies[0]", "digits", "at most"],
    ),
    "seed of 2**63-1": (
        suite_with("seeds = [0]", "seeds = [9223372036854775807]"),
        [],
        ["suite.seeds", "9223372036854775807", "at most"],
    ),
    "100,000 seeds": (
        suite_with("seeds = [0]", f"seeds = [{', '.join(map(str, range(100_000)))}]"),
        [],
        ["suite.seeds", "100000 seeds", "at most 10000"],
    ),
    "negative hidden width": (
        digits_with("{ hidden = -3 }"),
        [],
        ["tasks.bowl.options", "hidden", "-3", "at least 1"],
    ),
    "zero hidden width": (
        digits_with("{ hidden = 0 }"),
        [],
        ["tasks.bowl.options", "hidden", "at least 1"],
    ),
    "zero batch size": (
        digits_with("{ batch_size = 0 }"),
        [],
        ["tasks.bowl.options", "batch_size", "at least 1"],
    ),
    "negative validation size": (
        digits_with("{ val_size = -1 }"),
        [],
        ["tasks.bowl.options", "val_size", "at least 1"],
    ),
    "zero steps per epoch": (
        suite_with('{ function = "bowl" }', "{ steps_per_epoch = 0 }"),
        [],
        ["tasks.bowl.options", "steps_per_epoch", "at least 1"],
    ),
    "zero VAE layers": (
        suite_with(BOWL, 'task = "fmnist_vae"\noptions = { layers = 0 }'),
        [],
        ["tasks.bowl.options", "layers", "at least 1"],
    ),
    "negative cifar10 width": (
        suite_with(BOWL, 'task = "cifar10"\noptions = { width = -8 }'),
        [],
        ["tasks.bowl.options", "width", "at least 1"],
    ),
    "negative cifar10 padding": (
        suite_with(BOWL, 'task = "cifar10"\noptions = { pad = -1 }'),
        [],
        ["tasks.bowl.options", "pad", "at least 0"],
    ),
    "huge training subset": (
        SUITE + "[data]\ntrain_subset = 1000000000000\n",
        [],
        ["data.train_subset", "at most"],
    ),
    # Names that become file names
    "300-character suite name": (
        suite_with('name = "bad"', f'name = "{LONG}"'),
        [],
        ["suite.name", "too long", "at most 100"],
    ),
    "300-character task label": (
        suite_with("[tasks.bowl]", f"[tasks.{LONG}]"),
        [],
        ["tasks.xxxx", "too long", "at most 100"],
    ),
    "300-character strategy label": (
        strategy(f'[[strategies]]\nname = "fixed"\nlabel = "{LONG}"\n'),
        [],
        ["strategies[0].label", "too long", "at most 100"],
    ),
    # Accepted silently before
    "NaN target": (suite_with("target = 0.01", "target = nan"), [], ["tasks.bowl.target", "nan"]),
    "infinite target": (
        suite_with("target = 0.01", "target = inf"),
        [],
        ["tasks.bowl.target", "finite"],
    ),
    "strategy for no task": (
        strategy('[[strategies]]\nname = "fixed"\ntasks = []\n'),
        [],
        ["strategies[0].tasks", "empty", "drop the key"],
    ),
    "NaN reference value": (
        strategy('[[strategies]]\nname = "fixed"\nreference = { 50 = nan }\n'),
        [],
        ["strategies[0].reference.50", "finite"],
    ),
    # Already refused: kept so that they stay refused
    "strategy tasks as a string": (
        strategy('[[strategies]]\nname = "fixed"\ntasks = "bowl"\n'),
        [],
        ["strategies[0].tasks", "a list"],
    ),
    "strategy for an unknown task": (
        strategy('[[strategies]]\nname = "fixed"\ntasks = ["bowll"]\n'),
        [],
        ["strategies[0].tasks", "'bowll'"],
    ),
    "task that is not a table": (
        suite_with("[tasks.bowl]", "[tasks]\nbowl = 5\n[tasks.other]"),
        [],
        ["tasks.bowl", "expected a table"],
    ),
    "zero low": (suite_with("low = 1e-3", "low = 0"), [], ["tasks.bowl.low", "positive"]),
    "negative high": (suite_with("high = 0.1", "high = -1"), [], ["tasks.bowl.high"]),
    "fractional train subset": (
        SUITE + "[data]\ntrain_subset = 2.5\n",
        [],
        ["data.train_subset", "an integer"],
    ),
    "download not a boolean": (
        SUITE + '[data]\ndownload = "yes"\n',
        [],
        ["data.download", "true/false"],
    ),
    "unknown data key": (SUITE + "[data]\nroot = 'x'\n", [], ["data.root", "unknown key"]),
    "unknown function": (
        suite_with('function = "bowl"', 'function = "bowel"'),
        [],
        ["tasks.bowl.options", "'bowel'"],
    ),
    "empty suite name": (suite_with('name = "bad"', 'name = ""'), [], ["suite.name"]),
    "budget as a boolean": (
        suite_with("budget_epochs = 2", "budget_epochs = true"),
        [],
        ["suite.budget_epochs", "boolean"],
    ),
    "seeds not a list": (suite_with("seeds = [0]", "seeds = 0"), [], ["suite.seeds", "a list"]),
    "strategy name missing": (strategy("[[strategies]]\nlr = 0.01\n"), [], ["name", "missing"]),
    "no strategies": (
        suite_with('[[strategies]]\nname = "fixed"\nlr = 0.01\n', ""),
        [],
        ["strategies"],
    ),
    # Options of the run command
    "--workers 10000": (SUITE, ["--workers", "10000"], ["--workers 10000", "at most"]),
    "--workers -3": (SUITE, ["--workers", "-3"], ["--workers must be at least 1"]),
    "--heartbeat-interval 0": (SUITE, ["--heartbeat-interval", "0"], ["--heartbeat-interval"]),
    "--only with an unknown task": (SUITE, ["--only", "nosuch/*"], ["--only 'nosuch/*'"]),
}


@pytest.mark.parametrize("case", list(SUITE_CASES))
def test_a_bad_suite(case, storage, tmp_path, capsys, monkeypatch):
    """Refused into a storage holding runs (unchanged) and into a new one (never created)."""
    text, extra, expected = SUITE_CASES[case]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "suite.toml"
    path.write_text(text)
    argv = ["run", str(path), "--quiet", "--device", "cpu", *extra]
    assert_clear_error([*argv, "--storage", f"sqlite:///{storage}"], expected, capsys, storage)
    fresh = tmp_path / "fresh.db"
    assert main([*argv, "--storage", f"sqlite:///{fresh}"]) == 2
    assert not fresh.exists(), "a new storage was created"
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------------------------- #
# Command lines
# --------------------------------------------------------------------------------------------- #
TRAIN = ["train", "functions", "--epochs", "1"]
RANGE = ["range-test", "functions", "--num-iter", "5"]

# name -> (CLI args, texts the message must hold)
CLI_CASES: dict[str, tuple[list[str], list[str]]] = {
    "step schedule of step size 0": (
        [*TRAIN, "--schedule", "step", "step_size=0"],
        ["schedule", "step_size", "at least 1"],
    ),
    "step schedule with a word for gamma": (
        [*TRAIN, "--schedule", "step", "gamma=abc"],
        ["schedule", "gamma", "'abc'"],
    ),
    "exponential schedule of gamma 0": (
        [*TRAIN, "--schedule", "exponential", "gamma=0"],
        ["schedule", "gamma", "positive"],
    ),
    "cosine schedule of T_max -5": (
        [*TRAIN, "--schedule", "cosine", "T_max=-5"],
        ["schedule", "T_max", "at least 1"],
    ),
    "train with seed -1": ([*TRAIN, "--seed", "-1"], ["--seed -1", "0 to"]),
    "train with seed 2**63-1": ([*TRAIN, "--seed", "9223372036854775807"], ["--seed", "0 to"]),
    "train with hidden=0": (
        ["train", "digits", "--task-opt", "hidden=0"],
        ["hidden", "at least 1"],
    ),
    "train with hidden=-3": (
        ["train", "digits", "--task-opt", "hidden=-3"],
        ["hidden", "-3", "at least 1"],
    ),
    "train on 10**12 examples": (
        ["train", "digits", "--train-subset", "1000000000000"],
        ["--train-subset 1000000000000", "at most"],
    ),
    "train on -5 examples": (
        ["train", "digits", "--train-subset", "-5"],
        ["--train-subset -5", "positive"],
    ),
    "train for 10**12 epochs": (
        ["train", "functions", "--epochs", "1000000000000"],
        ["--epochs 1000000000000", "at most"],
    ),
    "train on an unknown device": ([*TRAIN, "--device", "tpu"], ["'tpu'"]),
    "train with an unknown optimizer reset": (
        [*TRAIN, "--optimizer-reset", "always"],
        ["optimizer_reset", "'always'"],
    ),
    "task option without a value": ([*TRAIN, "--task-opt", "function"], ["'function'"]),
    "range test plot into a missing folder": (
        [*RANGE, "--plot", "MISSING/x.png"],
        ["--plot", "nosuch/dir", "does not exist"],
    ),
    "range test with seed -1": ([*RANGE, "--seed", "-1"], ["--seed -1", "0 to"]),
    "range test of one step": (["range-test", "functions", "--num-iter", "1"], ["num_iter"]),
    "range test from a negative rate": ([*RANGE, "--start-lr", "-1"], ["--start-lr -1"]),
    "range test with hidden=0": (
        ["range-test", "digits", "--task-opt", "hidden=0"],
        ["hidden", "at least 1"],
    ),
    "run into a missing folder": (
        ["run", "SUITE", "--storage", "sqlite:///MISSING/x.db"],
        ["nosuch/dir", "does not exist"],
    ),
    "calibrate for 0 epochs": (
        ["calibrate", "functions", "--epochs", "0"],
        ["--epochs", "at least 1", "got 0"],
    ),
    "calibrate for -2 epochs": (
        ["calibrate", "functions", "--epochs", "-2"],
        ["--epochs", "got -2"],
    ),
    "calibrate over 100,000 seeds": (
        ["calibrate", "functions", "--seeds", "100000"],
        ["--seeds 100000", "at most"],
    ),
    "calibrate from seed -1": (["calibrate", "functions", "--first-seed", "-1"], ["--first-seed"]),
    "calibrate at an infinite rate": (["calibrate", "functions", "--lr", "inf"], ["--lr inf"]),
    "calibrate with hidden=0": (
        ["calibrate", "digits", "--task-opt", "hidden=0"],
        ["hidden", "at least 1"],
    ),
    "calibrate an unknown task": (["calibrate", "nosuch"], ["nosuch"]),
    "bench sizes not numbers": (
        ["bench", "--population", "--sizes", "abc"],
        ["--sizes", "'abc'"],
    ),
    "bench size 0": (["bench", "--population", "--sizes", "4,0"], ["--sizes", "at least 1"]),
    "bench for 0 epochs": (["bench", "functions", "--epochs", "0"], ["--epochs", "at least 1"]),
    "bench with -1 loader workers": (
        ["bench", "fmnist_vae", "--num-workers", "-1"],
        ["--num-workers", "at least 0"],
    ),
    "bench an unknown task": (["bench", "nosuch"], ["'nosuch'"]),
    "report into a file": (
        ["report", "bad", "--storage", "sqlite:///STORAGE", "--out", "AFILE"],
        ["--out", "not a folder"],
    ),
    "report of a suite name too long": (
        ["report", LONG, "--storage", "sqlite:///STORAGE"],
        ["holds no run of suite"],
    ),
    "list with an argument": (["list", "tasks"], ["unrecognized arguments"]),
}


def fill(argv: list[str], tmp_path: Path, db: Path) -> list[str]:
    (tmp_path / "suite.toml").write_text(SUITE)
    (tmp_path / "afile").write_text("not a folder")
    missing = tmp_path / "nosuch" / "dir"
    swap = {
        "MISSING/x.png": str(missing / "x.png"),
        "sqlite:///MISSING/x.db": f"sqlite:///{missing / 'x.db'}",
        "SUITE": str(tmp_path / "suite.toml"),
        "sqlite:///STORAGE": f"sqlite:///{db}",
        "AFILE": str(tmp_path / "afile"),
    }
    return [swap.get(a, a) for a in argv]


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_a_bad_command_line(case, storage, tmp_path, capsys, monkeypatch):
    argv, expected = CLI_CASES[case]
    monkeypatch.chdir(tmp_path)
    try:
        assert_clear_error(fill(argv, tmp_path, storage), expected, capsys, storage)
    except SystemExit as e:  # argparse's own errors: exit 2 with a usage line
        assert e.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and all(t in err for t in expected), err
    assert not (tmp_path / "nosuch").exists(), "a missing folder was created"


def test_bench_of_a_task_without_a_dataloader_baseline_runs_without_it(capsys, monkeypatch):
    assert main(["bench", "digits", "--epochs", "1", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "engine" in captured.out
    assert "no DataLoader baseline for digits" in captured.err, captured.err


# --------------------------------------------------------------------------------------------- #
# Storage files that are not lrbench's
# --------------------------------------------------------------------------------------------- #
def foreign_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('keep me')")
        db.commit()


def damaged_copy(db: Path, path: Path) -> None:
    """The stored run with one page of a table overwritten: SQLite's header stays valid."""
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 6 * page, len(data)
    data[3 * page : 4 * page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    # Read-write, so that closing removes the -wal / -shm files a read-only look leaves.
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True)) as db:
        with pytest.raises(sqlite3.DatabaseError):  # as damaged as it should be
            assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def make_file(kind: str, db: Path, path: Path) -> None:
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("name,value\na,1\n" * 50)
    elif kind == "foreign":
        foreign_sqlite(path)
    elif kind == "damaged":
        damaged_copy(db, path)


# name -> (command, file kind, texts the message must hold)
STORAGE_CASES: dict[str, tuple[str, str, list[str]]] = {
    "report on a 0-byte file": ("report", "empty", ["no lrbench runs stored in"]),
    "report on a text file": ("report", "text", ["not an SQLite database"]),
    "report on another application's SQLite": ("report", "foreign", ["another application"]),
    "report on a damaged storage": ("report", "damaged", ["damaged", "quick_check"]),
    "run into a text file": ("run", "text", ["not an SQLite database"]),
    "run into another application's SQLite": ("run", "foreign", ["another application"]),
    "run into a damaged storage": ("run", "damaged", ["damaged", "quick_check"]),
}


@pytest.mark.parametrize("case", list(STORAGE_CASES))
def test_a_storage_that_is_not_ours(case, storage, tmp_path, capsys, monkeypatch):
    command, kind, expected = STORAGE_CASES[case]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "other.db"
    make_file(kind, storage, path)
    (tmp_path / "suite.toml").write_text(SUITE)
    target = str(tmp_path / "suite.toml") if command == "run" else "bad"
    argv = [command, target, "--storage", f"sqlite:///{path}"]
    if command == "run":
        argv += ["--quiet", "--device", "cpu"]
    before = sorted(tmp_path.iterdir())
    assert_clear_error(argv, [str(path), *expected], capsys, path)
    assert sorted(tmp_path.iterdir()) == before, "a file was created"


def test_run_into_an_empty_file_makes_it_a_storage(tmp_path, capsys):
    """A 0-byte file is an empty SQLite database: `run` may create its storage there."""
    (tmp_path / "suite.toml").write_text(SUITE)
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    argv = ["run", str(tmp_path / "suite.toml"), "--storage", f"sqlite:///{path}", "--quiet"]
    assert main([*argv, "--device", "cpu"]) == 0


# --------------------------------------------------------------------------------------------- #
# Data: damaged in other ways, found through --data-root or $LRBENCH_DATA
# --------------------------------------------------------------------------------------------- #
DATA_CASES = {
    "labels file truncated": ("train-labels-idx1-ubyte", "truncated", ["train-labels-idx1"]),
    "test images truncated": ("t10k-images-idx3-ubyte", "truncated", ["t10k-images-idx3"]),
    "test labels not gzip": ("t10k-labels-idx1-ubyte", "garbage", ["t10k-labels-idx1-ubyte.gz"]),
}


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (Debian package)")
@pytest.mark.parametrize("via", ["--data-root", "LRBENCH_DATA"])
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_for_train(case, via, storage, tmp_path, capsys, monkeypatch):
    broken, how, expected = DATA_CASES[case]
    monkeypatch.chdir(tmp_path)
    root = fashion_root(tmp_path, broken, how)
    argv = ["train", "fmnist_vae", "--epochs", "1", "--train-subset", "100", "--device", "cpu"]
    if via == "--data-root":
        argv += ["--data-root", str(root)]
    else:
        monkeypatch.setenv("LRBENCH_DATA", str(root))
    assert_clear_error(argv, [str(root), *expected], capsys, storage)


def test_a_data_root_that_is_a_file(storage, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data.gz"
    root.write_bytes(b"not a folder")
    argv = ["range-test", "fmnist_vae", "--num-iter", "5", "--data-root", str(root)]
    assert_clear_error(argv, [str(root)], capsys, storage)


# --------------------------------------------------------------------------------------------- #
# A storage in use, and one only looked at
# --------------------------------------------------------------------------------------------- #
def test_a_storage_another_process_holds_locked_is_in_use_not_damaged(
    tmp_path, capsys, monkeypatch
):
    import lrbench.storage._open as storage_open

    monkeypatch.setattr(storage_open, "SQLITE_BUSY_S", 0.2)  # the wait, shortened
    path = tmp_path / "busy.db"
    foreign_sqlite(path)  # a rollback-journal file: an exclusive lock keeps readers out
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        err = assert_clear_error(
            ["report", "bad", "--storage", f"sqlite:///{path}"], ["locked"], capsys, path
        )
        holder.execute("ROLLBACK")
    assert "damaged" not in err


def test_reporting_a_write_ahead_log_storage_leaves_no_side_files(tmp_path, capsys):
    """Inspected and read, the storage and its folder are as they were: no `-wal` or `-shm`
    (a read-only SQLite connection leaves them behind)."""
    (tmp_path / "suite.toml").write_text(SUITE)
    db = tmp_path / "bad.db"
    run = ["run", str(tmp_path / "suite.toml"), "--storage", f"sqlite:///{db}", "--quiet"]
    assert main([*run, "--device", "cpu"]) == 0
    with contextlib.closing(sqlite3.connect(db)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = sorted(p.name for p in tmp_path.iterdir())
    digest = base.checksum(db)
    out = tmp_path / "report"
    report = ["report", "bad", "--storage", f"sqlite:///{db}", "--out", str(out)]
    # As a user runs it: a process of its own (this one keeps Optuna's connections pooled).
    done = subprocess.run([sys.executable, "-m", "lrbench", *report], capture_output=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "report"])
    assert base.checksum(db) == digest
