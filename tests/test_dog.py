"""The `dog` strategy: DoG's step size as the paper describes it, and its iterate average as
what is evaluated. Real data (digits), CPU, seconds."""

from __future__ import annotations

import math

import dog
import optuna
import pytest
import torch
from torch import nn

from lrbench.storage.records import record_attrs
from lrbench.strategies import RunContext, get_strategy
from lrbench.strategies.dog import AveragedIterates, has_batch_norm
from lrbench.tasks import get_task
from lrbench.tasks.digits import Digits
from lrbench.tools import build_optimizer
from lrbench.training import train

optuna.logging.set_verbosity(optuna.logging.WARNING)
CPU = torch.device("cpu")

# `RunContext.train_trial` does not take evaluation weights yet: until it passes them on to
# `TrainOptions`, a run of the strategy stops with a TypeError. Strict, so that the wiring
# shows as an unexpected pass and this mark goes.


class BNDigits(Digits):
    name = "digits_bn"

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits")
    return task, task.prepare(CPU)


def make_ctx(task, data, epochs: int = 10) -> RunContext:
    study = optuna.create_study(direction=task.direction)
    return RunContext(task, data, study, seed=1, budget_epochs=epochs, epochs_per_trial=epochs)


def dog_trial(strategy, ctx: RunContext):
    """The trial's configuration and training options as the strategy gives them."""
    lr, schedule = strategy.configure(ctx)
    config = ctx.trial_config(lr, schedule=schedule, **strategy.trial_options(ctx))
    return config, strategy.evaluation_weights_for(ctx)


class Recorded(AveragedIterates):
    """DoG's averaged weights that note, at every evaluation, the weights put in and the
    trained ones they replace."""

    def __init__(self, model: nn.Module, gamma: float) -> None:
        super().__init__(model, gamma)
        self.entered: list[dict[str, torch.Tensor]] = []
        self.replaced: list[dict[str, torch.Tensor]] = []

    def __enter__(self):
        super().__enter__()
        self.replaced.append(self.trained)
        self.entered.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return self


def test_dog_is_evaluated_and_kept_at_the_averagers_weights(digits):
    task, data = digits
    ctx = make_ctx(task, data)
    strategy = get_strategy("dog")
    config, _ = dog_trial(strategy, ctx)
    seen = {}

    def recorded(model, optimizer):
        seen["w"] = Recorded(model, strategy.opts.avg_gamma)
        seen["optimizer"] = optimizer
        return seen["w"]

    averaged = train(task, config, data=data, evaluation_weights=recorded, keep_best_state=True)
    plain = train(task, config, data=data, keep_best_state=True)
    w = seen["w"]
    assert type(seen["optimizer"]) is dog.DoG and config.lr == 1.0
    train_losses = [r.train_loss for r in averaged.history]
    assert train_losses == [r.train_loss for r in plain.history], "trained weights put back"
    assert len(w.entered) == len(averaged.history) == 10  # one evaluation per epoch
    for entered, replaced in zip(w.entered, w.replaced):
        assert any(not torch.equal(entered[k], replaced[k]) for k in entered)
    # The evaluated and kept weights are the averager's own: at the best epoch, and at the end.
    best = w.entered[averaged.best_epoch - 1]
    assert all(torch.equal(best[k], v) for k, v in averaged.best_state.items())
    last = w.averager.averaged_model.state_dict()
    assert all(torch.equal(w.entered[-1][k], v) for k, v in last.items())
    w.averager.averaged_model.eval()
    with torch.no_grad():
        assert (
            float(task.evaluate(w.averager.averaged_model, data.val)) == averaged.history[-1].val
        )
    assert [r.val for r in averaged.history] != [r.val for r in plain.history]


def test_dog_step_size_grows_from_its_tiny_initial_movement(digits):
    # In float64, the movement of each step is measured against the gradient that caused it.
    task, data = digits
    torch.manual_seed(0)
    model = task.build_model().double()
    opt = build_optimizer("dog", model.parameters(), 1.0, reps_rel=1e-6)
    params = list(model.parameters())
    flat = lambda ts: torch.cat([t.detach().flatten() for t in ts])
    x0 = flat(params).clone()
    generator = torch.Generator().manual_seed(0)
    etas, distances = [], []
    for _ in range(6):  # 6 epochs, 102 steps
        for x, y in task.train_batches(data, generator):
            before = flat(params).clone()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x.double()), y).backward()
            g = flat(p.grad for p in params)
            opt.step()
            after = flat(params)
            etas.append(float((before - after).norm() / g.norm()))  # x_t+1 = x_t - eta_t g_t
            distances.append(float((after - x0).norm()))
            if len(etas) == 1:
                g0 = float(g.norm())
    # The first step moves the weights by r_eps = reps_rel * (1 + |x0|) (DoG's eta_0 is
    # r_eps / sqrt(|g0|^2 + eps), eps = 1e-8). Rounding: the update and the difference each
    # round every weight x_i by u |x_i| (together, a vector of norm <= 2 u |x0|) against a
    # movement of r_eps; the norms add about N u each.
    r_eps = 1e-6 * (1 + float(x0.norm()))
    tol = 4 * 2.0**-53 * (float(x0.norm()) / r_eps + len(x0))
    assert distances[0] == pytest.approx(r_eps * g0 / math.sqrt(g0**2 + 1e-8), rel=tol)
    assert etas[0] == pytest.approx(r_eps / math.sqrt(g0**2 + 1e-8), rel=tol)
    # ... and from there the distance travelled sets the step size, which grows by orders of
    # magnitude while the weights move away from their start (the paper's warm-up, no schedule).
    assert distances[-1] > 1e3 * r_eps
    assert max(etas) > 1e2 * etas[0]


def test_the_initial_movement_follows_the_packages_advice_and_options_pass_through(digits):
    task, data = digits
    ctx = make_ctx(task, data)
    bn_task = BNDigits()
    bn_ctx = make_ctx(bn_task, bn_task.prepare(CPU))
    rng = torch.get_rng_state()
    assert not has_batch_norm(task) and has_batch_norm(bn_task)
    assert torch.equal(torch.get_rng_state(), rng), "the question leaves the global RNG alone"
    strategy = get_strategy("dog")
    assert strategy.trial_options(ctx)["optimizer"] == "dog"
    assert strategy.optimizer_kwargs(ctx) == {"reps_rel": 1e-6}
    assert strategy.optimizer_kwargs(bn_ctx) == {"reps_rel": 1e-4}
    given = get_strategy("dog", reps_rel=1e-5, weight_decay=1e-4, layerwise=True)
    assert given.optimizer_kwargs(bn_ctx) == {"reps_rel": 1e-5, "weight_decay": 1e-4}
    assert given.trial_options(ctx)["optimizer"] == "ldog"
    weights = given.evaluation_weights_for(ctx)(task.build_model(), None)
    assert isinstance(weights, AveragedIterates) and weights.averager.gamma == 8.0
    assert (
        get_strategy("dog", avg_gamma=2)
        .evaluation_weights(task.build_model(), None)
        .averager.gamma
        == 2
    )


def test_ldog_trains_with_a_step_size_per_tensor(digits):
    task, data = digits
    config, factory = dog_trial(get_strategy("dog", layerwise=True), make_ctx(task, data, 1))
    seen = {}

    def capture(model, optimizer):
        seen["optimizer"] = optimizer
        return factory(model, optimizer)

    train(task, config, data=data, evaluation_weights=capture)
    (group,) = seen["optimizer"].param_groups
    assert type(seen["optimizer"]) is dog.LDoG
    assert len(set(float(eta) for eta in group["eta"])) == len(group["params"]) == 4


def test_the_dog_strategy_trains_one_trial_evaluated_at_the_average(digits):
    task, data = digits
    ctx = make_ctx(task, data, epochs=4)
    strategy = get_strategy("dog")
    strategy.run(ctx)
    (trial,) = ctx.study.get_trials(deepcopy=False)
    attrs = record_attrs(trial.user_attrs)
    assert attrs["optimizer"] == "dog" and attrs["schedule"].startswith("constant")
    assert attrs["steps"] == ctx.spent_steps() == 4 * ctx.steps_per_epoch
    config, factory = dog_trial(strategy, make_ctx(task, data, epochs=4))
    averaged = train(task, config, data=data, evaluation_weights=factory)
    assert [e["val"] for e in attrs["history"]] == [r.val for r in averaged.history]
