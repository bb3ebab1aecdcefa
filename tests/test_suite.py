"""Suite files: the `reference` figures a strategy is compared against, and their validation."""

from __future__ import annotations

import re

import pytest

from lrbench.errors import ConfigError
from lrbench.running import budget_warnings, load_suite

SUITE = """
[suite]
budget_epochs = 10
[tasks.digits]
target = 0.9
[[strategies]]
name = "fixed"
lr = 0.01
{reference}
"""


def _write(tmp_path, reference: str):
    p = tmp_path / "s.toml"
    p.write_text(SUITE.format(reference=reference))
    return p


def test_reference_is_read_as_sorted_epoch_value_pairs(tmp_path):
    suite = load_suite(_write(tmp_path, "reference = { 100 = 234.16, 50 = 235.11 }"))
    assert suite.strategies[0].reference == ((50, 235.11), (100, 234.16))
    assert "reference" not in suite.strategies[0].options  # not handed to the strategy


# Seed 002's table 6 (best-so-far validation homework NLL at 50 / 100 / 200 / 400 epochs), each
# cosine row's figures at the epochs its author's run logs put them (see studies/seed002.toml).
TABLE_6 = {
    "fixed-0.0003": {50: 235.11, 100: 234.16, 200: 233.66, 400: 233.53},
    "fixed-0.00038": {50: 235.01, 100: 234.17, 200: 233.61, 400: 233.39},
    "fixed-0.00041": {50: 234.63, 100: 234.23, 200: 233.71, 400: 233.53},
    "cosine-50": {50: 233.74},
    "cosine-100": {50: 234.44, 100: 233.30},
    "cosine-200": {50: 234.75, 100: 233.95},
    "cosine-400": {50: 235.90, 100: 235.35, 200: 234.79, 400: 234.24},
}
SEED_RECIPE = {"schedule": "seed002_cosine", "lr": 1e-3, "optimizer_reset": "epoch"}


def test_shipped_seed002_suite_carries_table_6_whole():
    suite = load_suite("seed002")
    rows = {s.label: s for s in suite.strategies}
    assert {label: dict(rows[label].reference) for label in TABLE_6} == TABLE_6
    tasks = {t.label: t for t in suite.tasks}
    for n in (50, 100, 200, 400):
        assert tasks[f"vae{n}"].epochs_per_trial == tasks[f"vae{n}"].budget_epochs == n
        assert tasks[f"vae{n}"].name == "fmnist_vae"
        cosine = rows[f"cosine-{n}"]
        assert (cosine.name, cosine.options, cosine.tasks) == ("cosine", SEED_RECIPE, (f"vae{n}",))
    for label, lr in [
        ("fixed-0.0003", 3e-4),
        ("fixed-0.00038", 3.8e-4),
        ("fixed-0.00041", 4.1e-4),
    ]:
        assert (rows[label].name, rows[label].options, rows[label].tasks) == (
            "fixed",
            {"lr": lr},
            ("vae400",),
        )
    # The rows lrbench ran before the seed's recipe was known, kept under their own labels.
    for n in (50, 100):
        variant = rows[f"cosine-{n}-peak3e-4-per-batch"]
        assert (variant.options, variant.tasks) == ({"lr": 3e-4}, (f"vae{n}",))
    assert suite.seeds == (0,) and suite.name == "seed002"
    assert budget_warnings(suite) == []


def test_the_fixed_rows_are_the_runs_already_stored():
    # Their study names and settings must not move: `fixed` rows running elsewhere resume.
    names = {r.study_name for r in load_suite("seed002").runs() if r.strategy.name == "fixed"}
    assert names == {
        "seed002/vae400/fixed-0.0003/seed0",
        "seed002/vae400/fixed-0.00038/seed0",
        "seed002/vae400/fixed-0.00041/seed0",
    }


def test_shipped_ablation_trains_the_seeds_recipe_and_fixed_with_and_without_the_reset():
    suite = load_suite("seed002_ablation")
    assert len(suite.seeds) >= 3
    (task,) = suite.tasks
    assert (task.name, task.epochs_per_trial, task.budget_epochs, task.options) == (
        "fmnist_vae",
        50,
        50,
        {},
    )
    assert suite.data.train_subset is None  # the full training set
    configs = {(s.name, tuple(sorted(s.options.items()))) for s in suite.strategies}
    recipe = {"schedule": "seed002_cosine", "lr": 1e-3}
    assert configs == {
        ("cosine", tuple(sorted({**recipe, "optimizer_reset": "epoch"}.items()))),
        ("cosine", tuple(sorted(recipe.items()))),
        ("fixed", (("lr", 3e-4), ("optimizer_reset", "epoch"))),
        ("fixed", (("lr", 3e-4),)),
    }
    assert budget_warnings(suite) == []


@pytest.mark.parametrize(
    "reference, where",
    [
        ('reference = { "fifty" = 235.0 }', "strategies[0].reference"),
        ("reference = { 0 = 235.0 }", "strategies[0].reference"),
        ('reference = { 50 = "low" }', "strategies[0].reference.50"),
        ("reference = 235.0", "strategies[0].reference"),
    ],
)
def test_bad_reference_names_the_key(tmp_path, reference, where):
    with pytest.raises(ConfigError, match=re.escape(f"s.toml: {where}:")):
        load_suite(_write(tmp_path, reference))


TWO_TASKS = """
[suite]
budget_epochs = 10
seeds = [0, 1]
[tasks.digits]
target = 0.9
seeds = [0, 1, 2, 3]
[tasks.bowl]
task = "functions"
options = {{ function = "bowl" }}
target = 0.01
{bowl_seeds}
[[strategies]]
name = "fixed"
lr = 0.01
[[strategies]]
name = "grid"
"""


def test_a_task_runs_every_strategy_on_its_own_seeds_else_the_suites(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(TWO_TASKS.format(bowl_seeds=""))
    seeds: dict[tuple[str, str], list[int]] = {}
    for r in load_suite(p).runs():
        seeds.setdefault((r.task.label, r.strategy.label), []).append(r.seed)
    assert seeds == {
        ("digits", "fixed"): [0, 1, 2, 3],
        ("digits", "grid"): [0, 1, 2, 3],
        ("bowl", "fixed"): [0, 1],
        ("bowl", "grid"): [0, 1],
    }


@pytest.mark.parametrize(
    "bowl_seeds, message",
    [
        ("seeds = []", "non-empty list"),
        ("seeds = [1, 1]", "repeated seed"),
        ("seeds = [-3]", "out of range"),
        ('seeds = "0"', "seeds"),
    ],
)
def test_bad_task_seeds_name_the_task_and_key(tmp_path, bowl_seeds, message):
    p = tmp_path / "s.toml"
    p.write_text(TWO_TASKS.format(bowl_seeds=bowl_seeds))
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_suite(p)
    assert "tasks.bowl" in str(err.value) and "seeds" in str(err.value)
