"""lrbench calibrate: a target from the median best validation value of a reference
configuration over several seeds, printed with its procedure and recorded in the suite."""

from __future__ import annotations

import contextlib
import io
import statistics

import pytest

from lrbench.calibrate import (
    Calibration,
    calibrate_task,
    set_target_text,
)
from lrbench.cli import main
from lrbench.errors import ConfigError
from lrbench.running import load_suite
from lrbench.tasks import DataOptions, get_task

SUITE = """\
[suite]
name = "cal"
seeds = [0]
budget_epochs = 4

[tasks.digits]
target = 0.96                # validation accuracy
epochs_per_trial = 1

[tasks.bowl]
task = "functions"
options = { function = "bowl" }
target = 0.01
epochs_per_trial = 2

[[strategies]]
name = "fixed"
"""


def _cal(values, direction="maximize") -> Calibration:
    return Calibration("t", "t", "m", direction, 0.01, "adam", "constant", 2, [0, 1, 2], values)


def test_the_target_is_the_median_rounded_toward_the_easier_side():
    assert _cal([0.9, 0.95, 0.9466667]).target == 0.946666  # maximize: down
    assert _cal([301.2, 280.0, 300.0000001], "minimize").target == 300.001  # minimize: up
    assert _cal([1.0, 2.0, 3.0, 4.0], "minimize").target == 2.5  # an even count: the mean of two


def test_the_procedure_states_the_reference_seeds_and_values():
    cal = _cal([0.9, 0.95, 0.93])
    assert cal.procedure == (
        "lrbench calibrate: median of the best validation m of the task's default configuration "
        "(adam, lr 0.01, constant) over seeds 0-2, 2 epochs each: 0.9, 0.95, 0.93"
    )


def test_calibrate_task_trains_each_seed_and_takes_the_median():
    task = get_task("digits")
    seen = []
    cal = calibrate_task(
        task,
        epochs=1,
        seeds=[1000, 1001, 1002],
        data_options=DataOptions(train_subset=300),
        device="cpu",
        on_seed=lambda s, v: seen.append((s, v)),
    )
    assert [s for s, _ in seen] == [1000, 1001, 1002]
    assert cal.best_vals == [v for _, v in seen]
    assert cal.target <= statistics.median(cal.best_vals) < cal.target + 1e-5
    assert (cal.lr, cal.optimizer, cal.epochs) == (task.default_lr, "adam", 1)
    assert "train_subset 300" in cal.procedure
    again = calibrate_task(
        task, epochs=1, seeds=[1000], data_options=DataOptions(train_subset=300), device="cpu"
    )
    assert again.best_vals == cal.best_vals[:1]  # same seed, same number on a CPU


def test_set_target_text_replaces_and_records_the_procedure():
    new = set_target_text(SUITE, "digits", 0.95, "median of 5")
    lines = new.splitlines()
    i = lines.index("[tasks.digits]")
    assert lines[i + 1] == 'target_procedure = "median of 5"'
    assert lines[i + 2].startswith("target = 0.95 ") and lines[i + 2].endswith(
        "# validation accuracy"
    )
    assert "target = 0.01" in new  # the other task is untouched
    # Calibrating again replaces the procedure, never stacks a second one.
    twice = set_target_text(new, "digits", 0.94, "median of 7")
    assert twice.count("target_procedure =") == 1 and "median of 7" in twice
    assert "target = 0.94 " in twice and "0.95" not in twice
    # In a table with a `task = ...` line, the target follows it.
    bowl = set_target_text(SUITE, "bowl", 0.5, "p").splitlines()
    j = bowl.index("[tasks.bowl]")
    assert bowl[j + 1 : j + 4] == ['task = "functions"', 'target_procedure = "p"', "target = 0.5"]
    with pytest.raises(ConfigError, match=r"no \[tasks.nope\] table"):
        set_target_text(SUITE, "nope", 1.0, "p")


def test_the_command_prints_and_writes_a_suite_that_still_loads(tmp_path):
    path = tmp_path / "cal.toml"
    path.write_text(SUITE)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                "calibrate",
                str(path),
                "--task",
                "bowl",
                "--seeds",
                "3",
                "--write",
                "--device",
                "cpu",
            ]
        )
    assert code == 0
    out = printed.getvalue()
    assert "seed 1000: best validation f" in out and "seed 1002" in out
    assert "procedure: lrbench calibrate: median of the best validation f" in out
    suite = load_suite(path)
    bowl = next(t for t in suite.tasks if t.label == "bowl")
    # The bowl has no data and SGD from a fixed start: every seed gives the same value.
    proposed = float(out.split("proposed target: ")[1].split()[0])
    assert bowl.target == pytest.approx(proposed, rel=1e-3)
    assert next(t for t in suite.tasks if t.label == "digits").target == 0.96
    assert bowl.target_procedure.startswith("lrbench calibrate: median of the best validation f")


def test_a_bare_task_cannot_be_written(capsys):
    assert main(["calibrate", "functions", "--seeds", "1", "--write"]) == 2
    assert "--write needs a suite" in capsys.readouterr().err


def test_without_a_task_line_the_target_follows_the_tables_comment():
    text = "[tasks.vae]\n# what this task is\noptions = { val_size = 1000 }\ntarget = 285.0\n"
    lines = set_target_text(text, "vae", 294.4, "p").splitlines()
    assert lines == [
        "[tasks.vae]",
        "# what this task is",
        'target_procedure = "p"',
        "target = 294.4",
        "options = { val_size = 1000 }",
    ]
