"""lrbench.tools._schedules.replay_schedule: a trial's rates rebuilt from its schedule alone equal the
rates the engine recorded while training it (the report's schedules figure relies on this)."""

from __future__ import annotations

import pytest
import torch

from lrbench.tasks import get_task
from lrbench.tools import ScheduleSpec, replay_schedule
from lrbench.training import TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits")
    return task, task.prepare(torch.device("cpu"))


@pytest.mark.parametrize(
    ("optimizer", "spec"),
    [
        ("adam", ScheduleSpec("one_cycle", {"pct_start": 0.3})),  # per step
        ("sgd", ScheduleSpec("triangular2", {"step_size_epochs": 1})),  # per step, cycling
        ("sgd", ScheduleSpec("step", {"step_size": 2, "gamma": 0.5})),  # per epoch
        ("momentum", ScheduleSpec("exponential", {"gamma": 0.7})),  # per epoch
        ("adam", ScheduleSpec("warmup_cosine", {"warmup_fraction": 0.2})),  # composed, per step
        ("adam", ScheduleSpec("wsd", {"interval": "epoch", "warmup": 1, "decay": "cosine"})),
        ("sgd", ScheduleSpec("constant_cooldown", {"cooldown_fraction": 0.5})),  # 1-sqrt
        ("adam", ScheduleSpec("seed002_cosine", {"warmup": 2})),  # LambdaLR, per epoch
    ],
    ids=lambda v: v.name if isinstance(v, ScheduleSpec) else v,
)
def test_replayed_rates_are_the_rates_the_engine_recorded(digits, optimizer, spec):
    task, data = digits
    epochs, spe = 5, data.steps_per_epoch
    config = TrainConfig.for_task(task, 0.02, epochs=epochs, optimizer=optimizer, schedule=spec)
    result = train(task, config, data=data, evaluate_test=False)
    assert not result.diverged and len(result.history) == epochs

    rates = replay_schedule(spec, 0.02, epochs=epochs, steps_per_epoch=spe, optimizer=optimizer)

    assert len(rates) == epochs * spe + 1
    recorded = [r.lr for r in result.history]
    assert [rates[r.steps] for r in result.history] == pytest.approx(recorded, rel=1e-12)
    assert len(set(recorded)) > 1  # the schedule really moved the rate


def test_a_budget_cut_epoch_does_not_step_a_per_epoch_schedule(digits):
    task, data = digits
    spe = data.steps_per_epoch
    spec = ScheduleSpec("exponential", {"gamma": 0.5})
    config = TrainConfig.for_task(task, 0.02, epochs=5, schedule=spec, max_steps=spe + 3)
    result = train(task, config, data=data, evaluate_test=False)
    assert [r.steps for r in result.history] == [spe, spe + 3]

    rates = replay_schedule(spec, 0.02, epochs=5, steps_per_epoch=spe, steps=spe + 3)

    assert len(rates) == spe + 4
    assert [rates[r.steps] for r in result.history] == pytest.approx(
        [r.lr for r in result.history]
    )
    assert rates[-1] == pytest.approx(0.01)  # stepped once, after the one full epoch


def test_one_cycle_replay_peaks_at_pct_start_and_ends_at_its_minimum():
    rates = replay_schedule(
        ScheduleSpec("one_cycle", {"pct_start": 0.3}),
        0.1,
        epochs=2,
        steps_per_epoch=10,
        optimizer="adam",
    )
    assert len(rates) == 21
    # The peak lies 30 % into the schedule's 21 points (20 steps, plus the one that makes the
    # trial end on the minimum): between steps 5 and 6.
    assert max(rates) == pytest.approx(0.1, rel=0.01) and rates.index(max(rates)) in (5, 6)
    assert rates[0] == pytest.approx(0.1 / 25)  # torch's default div_factor
    assert rates[-1] == pytest.approx(0.1 / 25 / 1e4)  # final_div_factor, not one step beyond
