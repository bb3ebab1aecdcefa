"""Every strategy on a tiny budget on real tasks: it completes, and charges exactly what it trained."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from lrbench.cli import main
from lrbench.errors import ConfigError
from lrbench.storage.records import record_attrs
from lrbench.strategies import STRATEGIES, STRATEGY_GROUPS, RunContext, get_strategy
from lrbench.strategies.sigdigit import plateau_rule
from lrbench.tasks import get_task
from lrbench.training import task_range_test

optuna.logging.set_verbosity(optuna.logging.WARNING)

TASKS = {
    # task options, search range, epochs per trial, budget
    "digits": ({}, 1e-4, 1.0, 2, 6),
    "functions": ({"function": "bowl"}, 1e-4, 0.1, 2, 6),
}


def make_ctx(task_name: str, seed: int = 0, budget: float | None = None, **kw) -> RunContext:
    options, low, high, per_trial, default_budget = TASKS[task_name]
    task = get_task(task_name, **options)
    data = task.prepare(torch.device("cpu"))
    study = optuna.create_study(direction=task.direction)
    return RunContext(
        task,
        data,
        study,
        seed=seed,
        budget_epochs=budget or default_budget,
        epochs_per_trial=per_trial,
        low=low,
        high=high,
        **kw,
    )


def test_the_registry_has_every_strategy_of_the_design():
    assert set(STRATEGIES) == {
        "grid",
        "random",
        "tpe",
        "sigdigit",
        "range_test",
        "clr",
        "one_cycle",
        "cosine",
        "sgdr",
        "warmup_cosine",
        "wsd",
        "constant_cooldown",
        "step",
        "exp",
        "fixed",
        "tpe+median",
        "tpe+hyperband",
        "random+hyperband",
        "qmc",
        "qmc+hyperband",
        "gp",
        "gp+median",
        "schedulefree",
        "prodigy",
        "prodigy+cosine",
        "dadapt",
        "dog",
        "pbt",
    }
    assert all(STRATEGIES[name].strip() for name in STRATEGIES)


# `dog` passes its evaluation weights to `RunContext.train_trial`, which does not take them yet:
# a TypeError until it passes them on to `TrainOptions` (then this mark goes).


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_completes_a_tiny_budget_and_charges_exactly(name, task_name):
    ctx = make_ctx(task_name)
    strategy = get_strategy(
        name, **({"num_iter": 8} if "num_iter" in get_strategy(name).options else {})
    )
    strategy.run(ctx)
    study = ctx.study
    trials = study.get_trials(deepcopy=False)
    assert trials, "no trial ran"
    spe = ctx.steps_per_epoch
    overhead = study.user_attrs.get("overhead_steps", 0)
    if "range_test" in study.user_attrs:
        assert overhead == study.user_attrs["range_test"]["num_steps"] > 0
    for t in trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED), (t.number, t.state)
        history = record_attrs(t.user_attrs)["history"]
        # What a trial charged is what it trained: its step count, to the step.
        assert record_attrs(t.user_attrs)["steps"] == history[-1]["steps"]
        assert record_attrs(t.user_attrs)["epochs"] == pytest.approx(
            record_attrs(t.user_attrs)["steps"] / spe
        )
        assert len(t.intermediate_values) == sum(1 for r in history if r["val"] is not None)
    spent = overhead + sum(record_attrs(t.user_attrs)["steps"] for t in trials)
    assert spent <= ctx.budget_steps()
    assert ctx.spent_steps() == spent
    if STRATEGY_GROUPS[name] == "search":
        assert spent == ctx.budget_steps(), "a search spends its whole budget"
    # Resuming a finished run adds nothing.
    strategy.run(ctx)
    assert len(study.get_trials(deepcopy=False)) == len(trials)


@pytest.mark.parametrize(
    "name", ["tpe+median", "tpe+hyperband", "random+hyperband", "qmc+hyperband", "gp+median"]
)
def test_pruned_variants_prune_and_record_it(name):
    ctx = make_ctx("digits", budget=40)
    ctx.epochs_per_trial = 4
    get_strategy(name).run(ctx)
    trials = ctx.study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(trials) > 10 and pruned, "the pruner was consulted and stopped some trials"
    for t in pruned:
        assert record_attrs(t.user_attrs)["pruned"] is True
        assert record_attrs(t.user_attrs)["epochs"] < 4
    assert ctx.spent_steps() == ctx.budget_steps()


def test_a_diverged_trial_is_recorded_with_the_untrained_value_and_the_search_goes_on():
    ctx = make_ctx("functions", budget=8)
    get_strategy("grid", n=4).run(ctx)  # rates 1e-4 .. 0.1: SGD on the bowl diverges above 0.05
    trials = ctx.study.get_trials(deepcopy=False)
    diverged = [t for t in trials if record_attrs(t.user_attrs)["diverged"]]
    assert diverged and len(trials) == 4
    for t in diverged:
        assert t.state == TrialState.COMPLETE
        assert (
            t.value == record_attrs(t.user_attrs)["initial_val"] == pytest.approx(88.0)
        )  # f(2, 2), no better than untrained
        assert t.params["lr"] > 0.05


def test_sigdigit_search_follows_the_digit_rounds():
    ctx = make_ctx("functions", budget=40)
    ctx.epochs_per_trial = 1
    get_strategy("sigdigit", decade=0.01).run(ctx)
    lrs = [
        t.params["lr"] for t in ctx.study.trials if record_attrs(t.user_attrs)["phase"] == "search"
    ]
    assert lrs[:9] == [0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
    # The two best first-round rates on the bowl are 0.04 and 0.03: round two refines both.
    assert lrs[9:13] == [0.044, 0.043, 0.042, 0.041]


def test_plateau_rule_needs_stale_best_and_a_worse_block_mean():
    rule = plateau_rule(3, lambda a, b: a < b)  # minimising
    assert not rule([5, 4, 3, 3.5, 3.6])  # fewer than 2 x patience epochs
    assert rule([3, 3.2, 3.1, 3.3, 3.4, 3.5])  # best five epochs ago; mean 3.4 worse than 3.1
    # Stale for three epochs, but the last block's mean (3.6) beats the block before (4).
    assert not rule([5, 4, 3, 3.5, 3.6, 3.7])
    assert not rule([5, 4, 3, 3.5, 3.6, 2.9])  # improved in the last block
    # Stale for 3 epochs, but the last block's mean (3.1) beats the block before (3.5).
    assert not rule([4, 3.5, 3, 3.1, 3.1, 3.1])
    maximising = plateau_rule(2, lambda a, b: a > b)
    assert maximising([0.9, 0.85, 0.8, 0.7]) and not maximising([0.5, 0.9, 0.8, 0.95])


def test_sigdigit_exploit_carries_weights_abandons_by_patience_and_walks_again():
    ctx = make_ctx("digits", budget=60)
    ctx.epochs_per_trial = 1
    strategy = get_strategy(
        "sigdigit", decade=0.01, digits=1, patience=2, max_epochs_per_rate=6, passes=2
    )
    strategy.run(ctx)  # one round of 9 one-epoch trials, then the exploit stretches
    study = ctx.study
    exploit = [t for t in study.trials if record_attrs(t.user_attrs)["phase"] == "exploit"]
    kept = study.user_attrs["sigdigit_kept"]
    assert len(kept) == 2
    # The kept list walked twice, in order.
    assert [t.params["lr"] for t in exploit] == kept + kept
    first = exploit[0]
    assert record_attrs(first.user_attrs)["initial_val"] < 0.3  # fresh initialisation: near chance
    rule = plateau_rule(2, ctx.task.is_better)
    # Each stretch has one of three legal endings, whichever the CPU's float rounding leads to:
    # divergence (its weights are dropped), the patience rule's first firing, or the per-rate
    # cap. The next stretch starts from the weights the last stretch that did not diverge
    # ended with (the fresh initialisation before any), never from scratch.
    carried = record_attrs(first.user_attrs)["initial_val"]
    for trial in exploit:
        record = record_attrs(trial.user_attrs)
        vals = [r["val"] for r in record["history"]]
        assert record["initial_val"] == pytest.approx(carried)
        if record["diverged"]:
            assert vals[-1] is None and None not in vals[:-1]
            assert not any(rule(vals[:n]) for n in range(1, len(vals)))
            continue
        assert rule(vals) or len(vals) == 6
        assert not any(rule(vals[:n]) for n in range(1, len(vals)))
        carried = vals[-1]
    # Every step is charged: the trials' steps are what the budget counts, within the budget.
    steps = sum(record_attrs(t.user_attrs)["steps"] for t in study.trials)
    assert steps == ctx.spent_steps() <= ctx.budget_steps()
    assert all(record_attrs(t.user_attrs)["planned_epochs"] <= 6 for t in exploit)


def test_range_test_on_digits_task_suggests_inside_the_range_and_restores_nothing_needed():
    task = get_task("digits")
    data = task.prepare(torch.device("cpu"))
    result = task_range_test(task, data, start_lr=1e-5, end_lr=1.0, num_iter=40)
    assert set(result.suggestions) == {
        "steepest",
        "minimum/10",
        "valley",
        "slide",
        "base_lr",
        "max_lr",
    }
    assert all(1e-5 <= v <= 1.0 for v in result.suggestions.values())
    assert result.suggestions["base_lr"] < result.suggestions["max_lr"]
    diverging = task_range_test(
        task, data, optimizer="sgd", start_lr=1e-3, end_lr=1e4, num_iter=60
    )
    assert diverging.stopped_early and diverging.num_steps < 60


def test_a_run_whose_range_test_was_stored_before_the_slide_rule_resumes_with_it():
    from lrbench.storage.records import RunKeys
    from lrbench.tools import suggest_lrs

    ctx = make_ctx("digits")
    stored = ctx.range_test(start_lr=1e-5, end_lr=1.0, num_iter=40).to_dict()
    del stored["suggestions"]["slide"]  # as a run stored it before the rule existed
    ctx.study.set_user_attr(RunKeys.RANGE_TEST, stored)
    spent = ctx.spent_steps()
    get_strategy("range_test", rule="slide", num_iter=40).run(ctx)
    (trial,) = ctx.study.get_trials(deepcopy=False)
    slide = suggest_lrs(stored["lrs"], stored["losses"], 1e-5, 1.0, num_iter=stored["num_iter"])[
        "slide"
    ]
    assert trial.params["lr"] == float(f"{slide:.6g}")
    assert ctx.study.user_attrs[RunKeys.RANGE_TEST] == stored, "the stored test is reused"
    assert ctx.spent_steps() == spent + record_attrs(trial.user_attrs)["steps"]


def test_range_test_cli_json_and_plot(tmp_path, capsys):
    plot = tmp_path / "rt.png"
    assert (
        main(
            [
                "range-test",
                "digits",
                "--start-lr",
                "1e-5",
                "--end-lr",
                "1",
                "--num-iter",
                "30",
                "--device",
                "cpu",
                "--plot",
                str(plot),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["lrs"]) == len(out["losses"]) == out["num_steps"] == 30
    assert set(out["suggestions"]) == {
        "steepest",
        "minimum/10",
        "valley",
        "slide",
        "base_lr",
        "max_lr",
    }
    assert plot.stat().st_size > 1000


def test_range_test_cli_prints_every_rule_in_order(capsys):
    argv = ["range-test", "digits", "--start-lr", "1e-5", "--end-lr", "1", "--num-iter", "30"]
    assert main([*argv, "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rules = [line.split()[0] for line in lines[1:]]
    assert rules == ["steepest", "minimum/10", "valley", "slide", "base_lr", "max_lr"]
    assert all(1e-5 <= float(line.split()[1]) <= 1.0 for line in lines[1:])


def test_bad_strategy_options_are_config_errors():
    with pytest.raises(ConfigError, match="unknown option"):
        get_strategy("grid", steps=3)
    with pytest.raises(ConfigError, match="unknown pruner"):
        get_strategy("tpe", pruner="sometimes")
    with pytest.raises(ConfigError, match="unknown strategy"):
        get_strategy("bayes")
    ctx = make_ctx("digits")
    with pytest.raises(ConfigError, match="rule"):
        get_strategy("range_test", rule="middle", num_iter=5).run(ctx)
    with pytest.raises(ConfigError, match="0 < low < high"):
        make_ctx("digits").__class__(ctx.task, ctx.data, ctx.study, low=1.0, high=0.1)
    assert not math.isnan(ctx.spent_epochs())


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("grid", {"n": "six"}, r"strategy 'grid': option n='six' is not an integer"),
        ("grid", {"n": 2.5}, r"option n=2.5 is not an integer"),
        ("sigdigit", {"k": 0}, r"strategy 'sigdigit': option k=0 must be at least 1"),
        ("sigdigit", {"exploit": "maybe"}, r"option exploit='maybe' is not true or false"),
        ("sigdigit", {"decade": -0.01}, r"option decade=-0.01 must be positive"),
        ("clr", {"mode": "sawtooth"}, r"strategy 'clr': unknown mode 'sawtooth'; choose one of"),
        ("clr", {"bounds": "max/5"}, r"unknown bounds 'max/5'"),
        ("fixed", {"lr": 0}, r"strategy 'fixed': option lr=0 must be positive"),
        ("one_cycle", {"num_iter": 1}, r"option num_iter=1 must be at least 2"),
        ("cosine", {"rule": "middle"}, r"unknown rule 'middle'"),
        ("tpe", {"n_startup_trials": None}, r"option n_startup_trials needs a value"),
    ],
)
def test_option_values_are_checked_when_the_strategy_is_made(name, options, message):
    with pytest.raises(ConfigError, match=message):
        get_strategy(name, **options)


def test_options_are_coerced_and_defaulted_in_one_place():
    grid = get_strategy("grid", n="6")
    assert grid.opts.n == 6 and grid.options == {"pruner": "none", "n": 6}
    assert get_strategy("sigdigit", exploit="false", decade="0.01").opts.decade == 0.01
    assert get_strategy("sigdigit", exploit="false").opts.exploit is False
    # A float option keeps an integer as written, so a stored schedule reads as before.
    assert get_strategy("clr").opts.step_size_epochs == 2
    assert isinstance(get_strategy("clr").opts.step_size_epochs, int)
    # Variants are their class with a preset option, checked the same way.
    assert get_strategy("tpe+hyperband").opts.pruner == "hyperband"
    with pytest.raises(ConfigError, match="unknown option.*known: pruner, n_startup_trials"):
        get_strategy("tpe", n_startup=3)
