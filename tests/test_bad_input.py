"""A corpus of bad input: each case runs the real CLI and must exit 2 with one clear message
(naming the file, key or value, and what to do), no traceback, and the storage unchanged.

Every case starts from a storage that already holds a complete run of SUITE, and compares
the SQLite file's checksum before and after.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lrbench.cli import main
from lrbench.storage.records import record_attrs, run_attrs

FASHION = Path("/usr/share/datasets/fashion-mnist")

SUITE = """\
[suite]
name = "bad"
seeds = [0]
budget_epochs = 2

[tasks.bowl]
task = "functions"
options = { function = "bowl" }
target = 0.01
epochs_per_trial = 1
low = 1e-3
high = 0.1

[[strategies]]
name = "fixed"
lr = 0.01
"""
STRATEGY = '[[strategies]]\nname = "fixed"\nlr = 0.01\n'


def suite_with(old: str, new: str) -> str:
    assert old in SUITE, old
    return SUITE.replace(old, new)


def strategy(text: str) -> str:
    return suite_with(STRATEGY, text)


# name -> (suite text or None for the valid one, extra CLI args, texts the message must hold)
SUITE_CASES: dict[str, tuple[str | None, list[str], list[str]]] = {
    "malformed TOML": ("[suite\nbudget_epochs = 2\n", [], ["not valid TOML"]),
    "unknown top-level key": (SUITE + "[extras]\n", [], ["extras: unknown key", "allowed"]),
    "unknown suite key": (
        suite_with("seeds", "seed = 1\nseeds"),
        [],
        ["suite.seed: unknown key", "allowed"],
    ),
    "unknown task key": (
        suite_with("target = 0.01", "target = 0.01\ntargett = 0.01"),
        [],
        ["tasks.bowl.targett: unknown key"],
    ),
    "unknown strategy option": (strategy('[[strategies]]\nname = "grid"\nm = 3\n'), [], ["m"]),
    "budget of the wrong type": (
        suite_with("budget_epochs = 2", 'budget_epochs = "two"'),
        [],
        ["suite.budget_epochs", "'two'"],
    ),
    "negative seed": (suite_with("seeds = [0]", "seeds = [-1]"), [], ["suite.seeds", "-1"]),
    "unknown task": (suite_with('task = "functions"', 'task = "mnist"'), [], ["'mnist'"]),
    "unknown strategy": (
        strategy('[[strategies]]\nname = "bogo"\n'),
        [],
        ["unknown strategy 'bogo'", "choose one of"],
    ),
    "unknown optimizer": (
        suite_with("low = 1e-3", 'optimizer = "adamw2"\nlow = 1e-3'),
        [],
        ["tasks.bowl.optimizer", "'adamw2'", "choose one of"],
    ),
    "unknown strategy optimizer": (
        strategy('[[strategies]]\nname = "fixed"\nlr = 0.01\noptimizer = "sgdd"\n'),
        [],
        ["strategies[0].optimizer", "'sgdd'"],
    ),
    "low above high": (
        suite_with("low = 1e-3", "low = 0.5"),
        [],
        ["tasks.bowl.low", "must be below high"],
    ),
    "zero budget": (
        suite_with("budget_epochs = 2", "budget_epochs = 0"),
        [],
        ["suite.budget_epochs", "must be positive"],
    ),
    "negative task budget": (
        suite_with("low = 1e-3", "budget_epochs = -5\nlow = 1e-3"),
        [],
        ["tasks.bowl.budget_epochs", "must be positive"],
    ),
    "zero epochs per trial": (
        suite_with("epochs_per_trial = 1", "epochs_per_trial = 0"),
        [],
        ["tasks.bowl.epochs_per_trial", "must be positive"],
    ),
    "non-finite low": (suite_with("low = 1e-3", "low = nan"), [], ["tasks.bowl.low"]),
    "task option of the wrong type": (
        suite_with('options = { function = "bowl" }', "options = { steps_per_epoch = 'ten' }"),
        [],
        ["tasks.bowl.options", "steps_per_epoch", "'ten'"],
    ),
    "unknown task option": (
        suite_with('options = { function = "bowl" }', "options = { hidden = 5 }"),
        [],
        ["tasks.bowl.options", "hidden", "known"],
    ),
    "grid n not a number": (
        strategy('[[strategies]]\nname = "grid"\nn = "six"\n'),
        [],
        ["strategies[0]", "n", "'six'"],
    ),
    "grid n zero": (
        strategy('[[strategies]]\nname = "grid"\nn = 0\n'),
        [],
        ["strategies[0]", "n"],
    ),
    "sigdigit k zero": (
        strategy('[[strategies]]\nname = "sigdigit"\nk = 0\n'),
        [],
        ["strategies[0]", "k"],
    ),
    "clr bounds typo": (
        strategy('[[strategies]]\nname = "clr"\nbounds = "smiht"\n'),
        [],
        ["strategies[0]", "bounds", "'smiht'"],
    ),
    "fixed lr not a number": (
        strategy('[[strategies]]\nname = "fixed"\nlr = "abc"\n'),
        [],
        ["strategies[0]", "lr", "'abc'"],
    ),
    "fixed lr infinite": (strategy('[[strategies]]\nname = "fixed"\nlr = inf\n'), [], ["lr"]),
    "fixed lr negative": (strategy('[[strategies]]\nname = "fixed"\nlr = -0.1\n'), [], ["lr"]),
    "label with a slash": (
        strategy('[[strategies]]\nname = "fixed"\nlabel = "a/b"\nlr = 0.01\n'),
        [],
        ["strategies[0].label", "'a/b'"],
    ),
    "label used twice": (
        SUITE + STRATEGY,
        [],
        ["strategies[1].label", "used twice"],
    ),
    "zero train subset": (
        SUITE + "[data]\ntrain_subset = 0\n",
        [],
        ["data.train_subset", "must be positive"],
    ),
    "budget changed since the stored run": (
        suite_with("budget_epochs = 2", "budget_epochs = 3"),
        [],
        ["'bad/bowl/fixed/seed0'", "budget_epochs=2.0", "3.0", "another --storage"],
    ),
    "strategy option changed since the stored run": (
        suite_with("lr = 0.01", "lr = 0.02"),
        [],
        ["'bad/bowl/fixed/seed0'", "strategy_options", "another --storage"],
    ),
    # Every identity setting is compared, also for a complete run (which no worker opens).
    "task option changed since the stored run": (
        suite_with('function = "bowl"', 'function = "wavy"'),
        [],
        ["'bad/bowl/fixed/seed0'", "task_options", "'wavy'", "another --storage"],
    ),
    "optimizer changed since the stored run": (
        suite_with("high = 0.1", 'high = 0.1\noptimizer = "adam"'),
        [],
        ["'bad/bowl/fixed/seed0'", "optimizer='sgd'", "'adam'", "another --storage"],
    ),
    "optimizer changed since the stored run, two workers": (
        suite_with("high = 0.1", 'high = 0.1\noptimizer = "adam"'),
        ["--workers", "2"],
        ["'bad/bowl/fixed/seed0'", "optimizer='sgd'", "'adam'", "another --storage"],
    ),
    "training subset changed since the stored run": (
        SUITE + "[data]\ntrain_subset = 300\n",
        [],
        ["'bad/bowl/fixed/seed0'", "train_subset=None", "300", "another --storage"],
    ),
    "control naming no strategy": (
        suite_with("budget_epochs = 2", 'budget_epochs = 2\ncontrol = "grid"'),
        [],
        ["suite.control", "'grid' is no strategy's label", "fixed"],
    ),
    "--only matching nothing": (None, ["--only", "bowl/tpe"], ["--only 'bowl/tpe'", "matches no"]),
    "--workers 0": (None, ["--workers", "0"], ["--workers must be at least 1"]),
    "retired --worker-index": (
        None,
        ["--num-workers", "2", "--worker-index", "0"],
        ["--num-workers/--worker-index are gone", "--workers N"],
    ),
    "bad heartbeat": (None, ["--grace-period", "0"], ["--grace-period must be at least 1"]),
    "no CUDA device": (None, ["--device", "cuda"], ["--device cuda", "--device cpu"]),
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A storage holding the complete run of SUITE."""
    folder = tmp_path_factory.mktemp("stored")
    (folder / "bad.toml").write_text(SUITE)
    db = folder / "bad.db"
    args = ["run", str(folder / "bad.toml"), "--storage", f"sqlite:///{db}", "--quiet"]
    assert main([*args, "--device", "cpu"]) == 0
    return db


@pytest.fixture
def storage(stored, tmp_path) -> Path:
    db = tmp_path / "bad.db"
    # SQLite's backup, not a file copy: the stored run may still sit in the open write-ahead log.
    with (
        contextlib.closing(sqlite3.connect(stored)) as src,
        contextlib.closing(sqlite3.connect(db)) as dst,
    ):
        src.backup(dst)
    return db


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clear_error(argv: list[str], expected: list[str], capsys, db: Path) -> str:
    before = checksum(db)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    for text in expected:
        assert text in err, f"{text!r} not in: {err}"
    assert checksum(db) == before, "the storage was changed"
    return err


@pytest.mark.parametrize("case", list(SUITE_CASES))
def test_a_bad_suite_or_run_option(case, storage, tmp_path, capsys, monkeypatch):
    text, extra, expected = SUITE_CASES[case]
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "suite.toml"
    path.write_text(SUITE if text is None else text)
    argv = ["run", str(path), "--storage", f"sqlite:///{storage}", "--quiet", *extra]
    err = assert_clear_error(argv, expected, capsys, storage)
    if text is not None and "--" not in case:
        assert str(path) in err or "stored" in err  # the file, or the stored run, is named


# name -> (CLI args, texts the message must hold); the storage is passed where one is used
CLI_CASES: dict[str, tuple[list[str], list[str]]] = {
    "missing suite file": (["run", "nosuch.toml"], ["nosuch.toml", "no such suite file"]),
    "unknown suite name": (["run", "nosuch"], ["no suite named 'nosuch'"]),
    "unreachable PostgreSQL": (
        ["run", "SUITE", "--storage", "postgresql://nobody@127.0.0.1:1/x"],
        ["postgresql://nobody@127.0.0.1:1/x", "cannot open"],
    ),
    "SQLite folder that cannot be created": (
        ["run", "SUITE", "--storage", "sqlite:////proc/lrbench/x.db"],
        ["/proc/lrbench", "writable folder"],
    ),
    "SQLite path that is a folder": (
        ["run", "SUITE", "--storage", "sqlite:///FOLDER"],
        ["is a folder", "name a file"],
    ),
    "train at an infinite rate": (
        ["train", "functions", "--lr", "inf"],
        ["--lr inf", "positive and finite"],
    ),
    "train at a NaN rate": (["train", "functions", "--lr", "nan"], ["--lr nan"]),
    "train at a non-numeric rate": (["train", "functions", "--lr", "abc"], ["'abc'"]),
    "train an unknown task": (["train", "mnist", "--lr", "0.1"], ["'mnist'"]),
    "train with an unknown optimizer": (
        ["train", "functions", "--lr", "0.1", "--optimizer", "sgdd"],
        ["'sgdd'"],
    ),
    "train with an unknown schedule": (
        ["train", "functions", "--lr", "0.1", "--schedule", "wobbly"],
        ["'wobbly'"],
    ),
    "train for zero epochs": (["train", "functions", "--lr", "0.1", "--epochs", "0"], ["epochs"]),
    "task option of the wrong type": (
        ["train", "digits", "--lr", "0.1", "--task-opt", "hidden=big"],
        ["hidden", "'big'", "integer"],
    ),
    "range test to an infinite rate": (
        ["range-test", "functions", "--end-lr", "inf"],
        ["--end-lr inf", "positive and finite"],
    ),
    "range test ending below its start": (
        ["range-test", "functions", "--start-lr", "1", "--end-lr", "0.1"],
        ["start_lr", "end_lr"],
    ),
    "range test plot in an unknown format": (
        ["range-test", "functions", "--num-iter", "5", "--plot", "x.xyz"],
        ["x.xyz", "'xyz'", ".png"],
    ),
    "report of a suite never run": (
        ["report", "nosuch", "--storage", "sqlite:///STORAGE"],
        ["holds no run of suite 'nosuch'", "lrbench run"],
    ),
}


def fill(argv: list[str], tmp_path: Path, storage: Path) -> list[str]:
    (tmp_path / "suite.toml").write_text(SUITE)
    (tmp_path / "folder.db").mkdir()
    swap = {
        "SUITE": str(tmp_path / "suite.toml"),
        "sqlite:///STORAGE": f"sqlite:///{storage}",
        "sqlite:///FOLDER": f"sqlite:///{tmp_path / 'folder.db'}",
    }
    return [swap.get(a, a) for a in argv]


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_a_bad_command_line(case, storage, tmp_path, capsys, monkeypatch):
    argv, expected = CLI_CASES[case]
    monkeypatch.chdir(tmp_path)
    argv = fill(argv, tmp_path, storage)
    try:
        assert_clear_error(argv, expected, capsys, storage)
    except SystemExit as e:  # argparse's own errors: exit 2 with a usage line
        assert e.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and all(t in err for t in expected), err


# --------------------------------------------------------------------------------------------- #
# Data: missing, truncated, corrupt
# --------------------------------------------------------------------------------------------- #
VAE_SUITE = """\
[suite]
name = "badvae"
budget_epochs = 1
[data]
train_subset = 200
data_root = "ROOT"
[tasks.fmnist_vae]
options = { val_size = 100 }
[[strategies]]
name = "fixed"
lr = 0.001
"""
FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def fashion_root(tmp_path: Path, broken: str | None, how: str) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for name in FASHION_FILES:
        if name != broken:
            shutil.copy(FASHION / f"{name}.gz", root / f"{name}.gz")
        elif how == "truncated":
            (root / name).write_bytes(
                gzip.decompress((FASHION / f"{name}.gz").read_bytes())[:5000]
            )
        elif how == "garbage":
            (root / f"{name}.gz").write_bytes(b"this is not gzip data at all" * 10)
    return root


DATA_CASES = {
    "empty data root": (None, "none", ["does not hold Fashion-MNIST", "drop --data-root"]),
    "incomplete data root": (
        "t10k-labels-idx1-ubyte",
        "missing",
        ["does not hold Fashion-MNIST", "incomplete"],
    ),
    "truncated images file": ("train-images-idx3-ubyte", "truncated", ["train-images-idx3"]),
    "corrupt gzip file": ("train-labels-idx1-ubyte", "garbage", ["train-labels-idx1-ubyte.gz"]),
}


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed (Debian package)")
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(case, storage, tmp_path, capsys, monkeypatch):
    broken, how, expected = DATA_CASES[case]
    monkeypatch.chdir(tmp_path)
    if how == "none":
        root = tmp_path / "data"
        root.mkdir()
    else:
        root = fashion_root(tmp_path, broken, how)
    path = tmp_path / "vae.toml"
    path.write_text(VAE_SUITE.replace("ROOT", str(root)))
    argv = ["run", str(path), "--storage", f"sqlite:///{storage}", "--quiet", "--device", "cpu"]
    assert_clear_error(argv, [str(root), *expected], capsys, storage)


# --------------------------------------------------------------------------------------------- #
# Not errors: a diverging rate is recorded and the run goes on
# --------------------------------------------------------------------------------------------- #
def test_a_diverging_rate_is_recorded_and_the_run_completes(tmp_path, capsys):
    path = tmp_path / "div.toml"
    path.write_text(suite_with("lr = 0.01", "lr = 0.5").replace('name = "bad"', 'name = "div"'))
    url = f"sqlite:///{tmp_path / 'div.db'}"
    assert main(["run", str(path), "--storage", url, "--quiet", "--device", "cpu"]) == 0
    study = optuna.load_study(study_name="div/bowl/fixed/seed0", storage=url)
    assert study.user_attrs["status"] == "complete"
    assert [record_attrs(t.user_attrs)["diverged"] for t in study.trials] == [True]
    assert study.trials[0].state == TrialState.COMPLETE


def test_out_of_memory_fails_the_trial_with_the_reason_and_exits_2(tmp_path, capsys):
    """A model of 64e9 weights: the allocation is refused at once (unless the machine lets a
    process overcommit without limit, where the test cannot make one)."""
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1":
        pytest.skip("this machine overcommits memory without limit: no allocation is refused")
    path = tmp_path / "oom.toml"
    path.write_text(
        "[suite]\nname = 'oom'\nbudget_epochs = 1\n[tasks.digits]\ntarget = 0.9\n"
        "options = { hidden = 1_000_000_000 }\n[[strategies]]\nname = 'fixed'\nlr = 0.01\n"
    )
    url = f"sqlite:///{tmp_path / 'oom.db'}"
    assert main(["run", str(path), "--storage", url, "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "out of memory" in err and "hidden" in err, err
    study = optuna.load_study(study_name="oom/digits/fixed/seed0", storage=url)
    assert study.user_attrs["status"] == "running"  # not complete: resumable with a fix
    [trial] = study.trials
    assert trial.state == TrialState.FAIL and "allocate" in trial.user_attrs["fail_reason"]
    # The run trained nothing: with the model fixed it runs, not refused as another run.
    path.write_text(path.read_text().replace("1_000_000_000", "16"))
    assert main(["run", str(path), "--storage", url, "--quiet", "--device", "cpu"]) == 0
    study = optuna.load_study(study_name="oom/digits/fixed/seed0", storage=url)
    assert study.user_attrs["status"] == "complete"
    assert run_attrs(study.user_attrs)["task_options"]["hidden"] == 16
