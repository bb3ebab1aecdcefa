"""The strategies of the warm-up and decay schedules (`warmup_cosine`, `wsd`,
`constant_cooldown`): their options become the schedule their trial trains and stores, their
peak is given or a range test's, and options that cannot hold together are refused when the
strategy is made (a suite is read), naming the strategy."""

from __future__ import annotations

import optuna
import pytest
import torch

from lrbench.errors import ConfigError
from lrbench.storage.records import record_attrs
from lrbench.strategies import STRATEGY_GROUPS, RunContext, get_strategy
from lrbench.tasks import get_task
from lrbench.tools import ScheduleSpec, replay_schedule

optuna.logging.set_verbosity(optuna.logging.WARNING)

NEW = ("warmup_cosine", "wsd", "constant_cooldown")


def digits_ctx(epochs: int = 4) -> RunContext:
    task = get_task("digits")
    return RunContext(
        task,
        task.prepare(torch.device("cpu")),
        optuna.create_study(direction=task.direction),
        budget_epochs=epochs,
        epochs_per_trial=epochs,
    )


@pytest.mark.parametrize("name", NEW)
def test_a_heuristic_whose_schedule_has_its_name(name):
    assert STRATEGY_GROUPS[name] == "heuristic"
    _, spec = get_strategy(name, lr=0.01).configure(digits_ctx())
    assert spec.name == name


@pytest.mark.parametrize(
    "name, options, schedule",
    [
        (
            "warmup_cosine",
            {},
            {"interval": "step", "warmup_fraction": 0.05, "eta_min": 0.0},
        ),
        (
            "warmup_cosine",
            {"warmup": 30, "interval": "epoch", "eta_min": 1e-4},
            {"interval": "epoch", "warmup": 30, "eta_min": 1e-4},
        ),
        (
            "wsd",
            {"decay": "linear", "decay_fraction": 0.2},
            {
                "interval": "step",
                "warmup_fraction": 0.05,
                "decay_fraction": 0.2,
                "decay": "linear",
            },
        ),
        (
            "constant_cooldown",
            {"interval": "epoch"},
            {"interval": "epoch", "cooldown_fraction": 0.2, "cooldown": "1-sqrt"},
        ),
    ],
)
def test_options_become_the_schedule_with_every_default_spelt_out(name, options, schedule):
    # Spelt out, the stored schedule replays the same even if a default changes later.
    lr, spec = get_strategy(name, lr=0.02, **options).configure(digits_ctx())
    assert lr == 0.02 and spec == ScheduleSpec(name, schedule)


@pytest.mark.parametrize("name", NEW)
def test_the_trial_stores_a_schedule_that_replays_to_its_recorded_rates(name):
    ctx = digits_ctx()
    get_strategy(name, lr=0.01, interval="epoch").run(ctx)
    (trial,) = ctx.study.trials
    record = record_attrs(trial.user_attrs)
    spec = ScheduleSpec.parse(record["schedule"].split())
    rates = replay_schedule(spec, 0.01, epochs=4, steps_per_epoch=ctx.steps_per_epoch)
    recorded = [h["lr"] for h in record["history"]]
    assert [rates[h["steps"]] for h in record["history"]] == pytest.approx(recorded, rel=1e-12)
    assert recorded[-1] == 0.0  # each decays to 0 at the trial's end


@pytest.mark.parametrize("name", NEW)
def test_without_lr_the_peak_is_the_range_tests_suggestion(name):
    ctx = digits_ctx()
    lr, _ = get_strategy(name, num_iter=8).configure(ctx)
    assert lr == ctx.range_test().suggestions["valley"]
    assert ctx.spent_steps() == 8  # the range test, charged


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("wsd", {"warmup_fraction": 0.5, "decay_fraction": 0.6}, "add up to more than the trial"),
        ("warmup_cosine", {"warmup_fraction": 1.0}, "leaves nothing after the warm-up"),
        ("wsd", {"decay_fraction": 1.5}, "option decay_fraction=1.5 must be at most 1"),
        ("constant_cooldown", {"cooldown_fraction": 0}, "cooldown_fraction=0 must be positive"),
        ("wsd", {"decay": "exp"}, "unknown decay 'exp'; choose one of linear, cosine, 1-sqrt"),
        ("constant_cooldown", {"cooldown": "cosine"}, "unknown cooldown 'cosine'"),
        ("warmup_cosine", {"interval": "batch"}, "unknown interval 'batch'"),
        ("warmup_cosine", {"warmup": -1}, "option warmup=-1 must be at least 0"),
        ("constant_cooldown", {"warmup": 5}, "unknown option(s) warmup"),
        ("wsd", {"warmup": 3, "warmup_fraction": 0.1}, "warmup_fraction, not both"),
        ("wsd", {"warmup_fraction": 0.95}, "add up to more than the trial"),  # with the 0.1 decay
    ],
)
def test_options_that_cannot_hold_are_refused_naming_the_strategy(name, options, message):
    with pytest.raises(ConfigError, match=f"strategy '{name}'") as e:
        get_strategy(name, **options)
    assert message in str(e.value)


def test_a_warmup_count_goes_to_the_schedule_alone():
    _, spec = get_strategy("wsd", lr=0.01, warmup=3).configure(None)
    assert spec.options["warmup"] == 3 and "warmup_fraction" not in spec.options
