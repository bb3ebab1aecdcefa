"""Self-tuning strategies (schedulefree, prodigy, dadapt, dog), the QMC and GP samplers, and the
engine hooks they use: an optimizer with train/eval modes, evaluation weights that differ from
the trained ones, and batch-norm recalibration. Real data (digits), CPU, seconds."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from scipy.stats import qmc as scipy_qmc
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lrbench.storage.records import record_attrs
from lrbench.strategies import GROUPS, REGISTRY, STRATEGY_GROUPS, RunContext, get_strategy
from lrbench.strategies.tpe import TPEStrategy
from lrbench.tasks import get_task
from lrbench.tasks.digits import Digits
from lrbench.tools import build_optimizer
from lrbench.training import (
    EvaluationWeights,
    TrainConfig,
    optimizer_has_modes,
    train,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)
CPU = torch.device("cpu")
NEW = [
    "schedulefree",
    "prodigy",
    "prodigy+cosine",
    "dadapt",
    "dog",
    "qmc",
    "qmc+hyperband",
    "gp",
    "gp+median",
]
TASKS = {"digits": ({}, 1e-4, 1.0), "functions": ({"function": "bowl"}, 1e-4, 0.1)}
TIMES = {"seconds", "eval_seconds"}


def make_ctx(task_name: str, seed: int = 0, budget: float = 6, per_trial: int = 2) -> RunContext:
    options, low, high = TASKS[task_name]
    task = get_task(task_name, **options)
    study = optuna.create_study(direction=task.direction)
    return RunContext(
        task, task.prepare(CPU), study, seed=seed, budget_epochs=budget,
        epochs_per_trial=per_trial, low=low, high=high,
    )  # fmt: skip


def stored(study: optuna.Study) -> list[tuple]:
    """Every stored number of a run's trials except wall-clock times."""
    out = []
    for t in study.get_trials(deepcopy=False):
        history = [
            {k: v for k, v in e.items() if k not in TIMES}
            for e in record_attrs(t.user_attrs)["history"]
        ]
        attrs = {
            k: v for k, v in record_attrs(t.user_attrs).items() if k not in TIMES | {"history"}
        }
        out.append((t.params, t.value, t.state, attrs, history))
    return out


# -- the strategies ------------------------------------------------------------------------------


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("name", NEW)
def test_new_strategy_completes_charges_what_it_trained_and_is_deterministic(name, task_name):
    runs = []
    for _ in range(2):
        ctx = make_ctx(task_name, seed=3)
        get_strategy(name).run(ctx)
        runs.append(ctx)
    ctx = runs[0]
    trials = ctx.study.get_trials(deepcopy=False)
    assert trials and all(t.state.is_finished() for t in trials)
    for t in trials:
        assert (
            record_attrs(t.user_attrs)["steps"]
            == record_attrs(t.user_attrs)["history"][-1]["steps"]
        )
    spent = sum(record_attrs(t.user_attrs)["steps"] for t in trials)
    assert ctx.spent_steps() == spent <= ctx.budget_steps()
    if STRATEGY_GROUPS[name] == "self-tuning":
        # One configuration, no search: one trial of the run's epochs per trial.
        assert len(trials) == 1 and spent == 2 * ctx.steps_per_epoch
    else:
        assert spent == ctx.budget_steps()
    assert stored(runs[0].study) == stored(runs[1].study), "same seed, same stored values"


@pytest.mark.parametrize(
    "task_name, name, optimizer",
    [
        ("digits", "schedulefree", "schedulefree_adamw"),
        ("functions", "schedulefree", "schedulefree_sgd"),
        ("digits", "dadapt", "dadapt_adam"),
        ("functions", "dadapt", "dadapt_sgd"),
        ("digits", "prodigy", "prodigy"),
        ("functions", "prodigy+cosine", "prodigy"),
    ],
)
def test_self_tuning_strategies_pick_the_variant_of_the_tasks_optimizer(
    name, task_name, optimizer
):
    ctx = make_ctx(task_name)
    get_strategy(name).run(ctx)
    (trial,) = ctx.study.get_trials(deepcopy=False)
    assert record_attrs(trial.user_attrs)["optimizer"] == optimizer
    expected_schedule = "cosine" if name == "prodigy+cosine" else "constant"
    assert record_attrs(trial.user_attrs)["schedule"].startswith(expected_schedule)


def test_schedulefree_defaults_follow_the_package():
    digits, bowl = make_ctx("digits"), make_ctx("functions")
    sf = get_strategy("schedulefree")
    assert sf.configure(digits)[0] == 0.0025  # AdamWScheduleFree's default, AlgoPerf's rate
    assert sf.configure(bowl)[0] == pytest.approx(10 * bowl.task.default_lr)
    # Warm-up: 2% of the trial's steps.
    warmup = round(0.02 * 2 * digits.steps_per_epoch)
    assert sf.optimizer_kwargs(digits) == {"warmup_steps": warmup}
    assert (
        get_strategy("schedulefree", warmup_steps=7).optimizer_kwargs(digits)["warmup_steps"] == 7
    )
    assert get_strategy("prodigy").configure(digits)[0] == get_strategy("dadapt").opts.lr == 1.0


def test_the_registry_lists_a_group_for_every_strategy():
    assert set(STRATEGY_GROUPS) == set(REGISTRY)
    assert set(STRATEGY_GROUPS.values()) == set(GROUPS)
    assert {n for n, g in STRATEGY_GROUPS.items() if g == "self-tuning"} == {
        "schedulefree", "prodigy", "prodigy+cosine", "dadapt", "dog",
    }  # fmt: skip
    assert STRATEGY_GROUPS["qmc"] == STRATEGY_GROUPS["gp"] == STRATEGY_GROUPS["tpe"] == "search"
    assert STRATEGY_GROUPS["fixed"] == "baseline" and STRATEGY_GROUPS["clr"] == "heuristic"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:The balance properties of Sobol")
def test_qmc_trials_are_the_scrambled_sobol_points_of_the_run_seed():
    ctx = make_ctx("digits", seed=5, budget=8)
    get_strategy("qmc").run(ctx)
    ours = [t.params["lr"] for t in ctx.study.get_trials(deepcopy=False)]
    n = len(ours)
    assert n >= 4
    # A QMCSampler used directly, same scramble: its first trial comes from its independent
    # sampler (it does not know the space yet), then the Sobol points in order.
    seed = get_strategy("qmc").trial_seed(ctx, 0)
    direct = optuna.create_study(
        sampler=optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    )
    direct.optimize(lambda t: t.suggest_float("lr", ctx.low, ctx.high, log=True), n_trials=n + 1)
    assert ours == pytest.approx([t.params["lr"] for t in direct.trials[1:]], rel=1e-12)
    # ... which are scipy's scrambled Sobol points on the log scale.
    u = scipy_qmc.Sobol(1, scramble=True, seed=seed).random(n)[:, 0]
    lo, hi = math.log(ctx.low), math.log(ctx.high)
    assert ours == pytest.approx(list(np.exp(lo + u * (hi - lo))), rel=1e-9)


def test_tpe_sets_multivariate_and_constant_liar_explicitly():
    sampler = TPEStrategy().sampler_for(make_ctx("digits"), 0)
    assert sampler._multivariate is True and sampler._constant_liar is True
    assert sampler._n_ei_candidates == 24


# -- the engine hooks ----------------------------------------------------------------------------


class BNDigits(Digits):
    """Digits with a batch-norm layer, to test recalibration."""

    name = "digits_bn"

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits")
    return task, task.prepare(CPU)


@pytest.fixture(scope="module")
def bn_digits():
    task = BNDigits()
    return task, task.prepare(CPU)


def run(task, data, optimizer: str, lr: float, epochs: int = 3, **options):
    config = TrainConfig.for_task(task, lr, epochs=epochs, optimizer=optimizer, seed=1)
    return train(task, config, data=data, keep_best_state=True, **options)


class Capture(EvaluationWeights):
    """Plain evaluation weights that remember the trial's model and optimizer."""

    def __init__(self, model, optimizer) -> None:
        self.model, self.optimizer = model, optimizer


def test_optimizers_with_modes_are_recognised():
    params = [nn.Parameter(torch.zeros(2))]
    assert optimizer_has_modes(build_optimizer("schedulefree_adamw", params, 1e-3))
    assert optimizer_has_modes(build_optimizer("schedulefree_sgd", params, 1e-2))
    for name in ("adam", "sgd", "prodigy", "dadapt_adam", "dadapt_sgd", "dog", "ldog"):
        assert not optimizer_has_modes(build_optimizer(name, params, 1.0))


def test_schedulefree_is_evaluated_and_kept_at_its_eval_mode_weights(digits):
    task, data = digits
    seen = {}

    def factory(model, optimizer):
        seen["w"] = Capture(model, optimizer)
        return seen["w"]

    result = run(
        task, data, "schedulefree_adamw", 0.0025, evaluate_test=False, evaluation_weights=factory
    )
    assert result.best_epoch == 3  # the last epoch: the model still holds its weights
    model, optimizer = seen["w"].model, seen["w"].optimizer
    x = {k: v.clone() for k, v in model.state_dict().items()}  # eval mode: the average
    assert all(torch.equal(x[k], result.best_state[k]) for k in x), "kept: the eval-mode weights"
    model.eval()
    with torch.no_grad():
        assert float(task.evaluate(model, data.val)) == result.best_val
        optimizer.train()  # the weights the gradients are taken at
        y_val = float(task.evaluate(model, data.val))
    assert any(not torch.equal(x[k], v) for k, v in model.state_dict().items())
    assert y_val != result.best_val, "evaluating the train-mode weights gives another metric"


def test_schedulefree_test_metric_is_that_of_the_kept_state(digits):
    task, data = digits
    result = run(task, data, "schedulefree_adamw", 0.0025)
    model = task.build_model()
    model.load_state_dict(result.best_state)
    model.eval()
    with torch.no_grad():
        assert float(task.evaluate(model, data.test)) == result.test


def bn_stats(result) -> torch.Tensor:
    return torch.cat([result.best_state["1.running_mean"], result.best_state["1.running_var"]])


def train_losses(result) -> list[float]:
    return [r.train_loss for r in result.history]


def test_batch_norm_is_recalibrated_for_eval_mode_weights_without_touching_training(bn_digits):
    task, data = bn_digits
    auto = run(task, data, "schedulefree_adamw", 0.0025)
    off = run(task, data, "schedulefree_adamw", 0.0025, recalibrate_bn=False)
    assert train_losses(auto) == train_losses(off), "recalibration draws its own batches"
    assert not torch.equal(bn_stats(auto), bn_stats(off)), "statistics recomputed"
    # A plain optimizer evaluates the trained weights: no recalibration unless asked for.
    adam = run(task, data, "adam", 1e-2)
    adam_off = run(task, data, "adam", 1e-2, recalibrate_bn=False)
    forced = run(task, data, "adam", 1e-2, recalibrate_bn=True)
    assert torch.equal(bn_stats(adam), bn_stats(adam_off))
    assert not torch.equal(bn_stats(forced), bn_stats(adam))
    assert train_losses(forced) == train_losses(adam)


class EMAWeights(EvaluationWeights):
    """An exponential moving average of the weights, evaluated instead of them: the kind of
    evaluation weights a task's recipe can plug in."""

    recalibrate_bn = True

    def __init__(self, model, optimizer) -> None:
        self.model = model
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
        self.saved: dict[str, torch.Tensor] | None = None

    def after_step(self) -> None:
        self.ema.update_parameters(self.model)

    def __enter__(self):
        self.saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        with torch.no_grad():
            for p, q in zip(self.model.parameters(), self.ema.module.parameters()):
                p.copy_(q)
        return self

    def __exit__(self, *exc) -> None:
        self.model.load_state_dict(self.saved)


def test_an_average_of_the_weights_plugs_in_as_evaluation_weights(bn_digits):
    task, data = bn_digits
    seen = {}

    def factory(model, optimizer):
        seen["w"] = EMAWeights(model, optimizer)
        return seen["w"]

    plain = run(task, data, "adam", 1e-2)
    ema = run(task, data, "adam", 1e-2, evaluation_weights=factory)
    assert train_losses(ema) == train_losses(plain), "the trained weights are restored"
    assert [r.val for r in ema.history] != [r.val for r in plain.history]
    assert not torch.equal(bn_stats(ema), bn_stats(plain)), "recalibrated for the average"
    if ema.best_epoch == len(ema.history):
        averaged = dict(seen["w"].ema.module.named_parameters())
        assert all(torch.equal(averaged[k], ema.best_state[k]) for k in averaged)


def test_a_model_without_batch_norm_is_never_recalibrated(digits, monkeypatch):
    task, data = digits
    calls = []
    monkeypatch.setattr(
        "lrbench.training._forms.update_bn", lambda *a, **k: calls.append(1)
    )  # would be called if it ran
    run(task, data, "schedulefree_adamw", 0.0025, epochs=1, recalibrate_bn=True)
    assert calls == []
