"""Tests for lrbench.train on real data (digits; a Fashion-MNIST subset): determinism,
divergence, budget cuts, callbacks, cost accounting, the best state, the recorded rates."""

from __future__ import annotations

import json
import math

import pytest
import torch

import lrbench.tasks._data as data
from lrbench.errors import ConfigError
from lrbench.tasks import DataOptions, get_task
from lrbench.tools import ScheduleSpec, build_optimizer
from lrbench.training import TrainConfig, resolve_device, train

CPU = torch.device("cpu")
FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
TIMING_FIELDS = {"seconds", "eval_seconds"}


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("LRBENCH_DATA", raising=False)


@pytest.fixture(scope="module")
def digits():
    task = get_task("digits")
    return task, task.prepare(CPU)


@pytest.fixture(scope="module")
def fmnist():
    d = data.FASHION_MNIST_DEBIAN_DIR
    if not all((d / f"{n}.gz").is_file() or (d / n).is_file() for n in FASHION_FILES):
        pytest.skip(f"Fashion-MNIST not installed in {d}")
    task = get_task("fmnist_vae", val_size=2000, hidden=512)
    return task, task.prepare(CPU, DataOptions(train_subset=10000))


def numbers(result) -> list[tuple]:
    """Everything in a result's history except wall-clock times."""
    return [tuple(v for k, v in vars(r).items() if k not in TIMING_FIELDS) for r in result.history]


def run(task, d, lr, epochs, **kw):
    schedule = kw.pop("schedule", None)
    cfg_kw = {k: kw.pop(k) for k in ("optimizer", "seed", "max_steps") if k in kw}
    return train(
        task,
        TrainConfig.for_task(task, lr, epochs=epochs, schedule=schedule, **cfg_kw),
        data=d,
        **kw,
    )


# -- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_history_different_seed_differs(digits):
    task, d = digits
    a = run(task, d, 1e-2, 5, seed=3)
    b = run(task, d, 1e-2, 5, seed=3)
    c = run(task, d, 1e-2, 5, seed=4)
    assert numbers(a) == numbers(b)  # bit for bit: floats compared with ==
    assert (a.best_val, a.best_epoch, a.test) == (b.best_val, b.best_epoch, b.test)
    assert [r.train_loss for r in a.history] != [r.train_loss for r in c.history]
    assert all(x.train_loss != y.train_loss for x, y in zip(a.history, c.history))


def test_vae_determinism_includes_the_latent_noise(fmnist):
    task, d = fmnist
    a = run(task, d, 1e-3, 1, seed=0, max_steps=25, evaluate_test=False)
    b = run(task, d, 1e-3, 1, seed=0, max_steps=25, evaluate_test=False)
    c = run(task, d, 1e-3, 1, seed=1, max_steps=25, evaluate_test=False)
    assert numbers(a) == numbers(b)
    assert a.history[0].train_loss != c.history[0].train_loss
    assert a.history[0].val != c.history[0].val


# -- divergence -----------------------------------------------------------------------------------


def test_digits_huge_sgd_lr_diverges_without_exception(digits):
    task, d = digits
    result = run(task, d, 1e4, 5, optimizer="sgd")
    assert result.diverged
    assert len(result.history) == 1  # ends after the epoch in which it diverged...
    assert result.epochs == len(result.history) == 1  # ...and that whole epoch is counted
    assert result.steps == d.steps_per_epoch
    assert math.isnan(result.history[-1].val)
    assert result.best_val is None and result.best_epoch is None and result.test is None
    assert not result.cut and not result.stopped


def test_vae_huge_adam_lr_diverges_and_counts_its_epochs(fmnist):
    task, d = fmnist
    result = run(task, d, 10.0, 3)
    assert result.diverged
    assert 1 <= len(result.history) <= 3
    assert result.epochs == len(result.history)
    assert result.steps == len(result.history) * d.steps_per_epoch
    assert math.isnan(result.history[-1].val)
    assert all(math.isfinite(r.val) for r in result.history[:-1])


def test_callback_not_called_after_divergence(digits):
    task, d = digits
    seen = []
    result = run(task, d, 1e4, 3, optimizer="sgd", callback=lambda r: seen.append(r.epoch))
    assert result.diverged and seen == []


# -- budget cut and callback ----------------------------------------------------------------------


def test_max_steps_cuts_mid_epoch(digits):
    task, d = digits
    spe = d.steps_per_epoch  # 17
    result = run(task, d, 1e-2, 5, max_steps=40)
    assert result.steps == 40
    assert result.cut and not result.stopped and not result.diverged
    assert result.epochs == pytest.approx(40 / spe)
    assert len(result.history) == math.ceil(40 / spe)
    last = result.history[-1]
    assert last.steps == 40 and last.epochs_done == pytest.approx(40 / spe)
    assert math.isfinite(last.val)  # the partial epoch is still evaluated


def test_max_steps_on_an_epoch_boundary(digits):
    task, d = digits
    spe = d.steps_per_epoch
    result = run(task, d, 1e-2, 5, max_steps=2 * spe)
    assert result.steps == 2 * spe and result.cut
    assert result.epochs == 2 and len(result.history) == 2


@pytest.mark.parametrize("extra", [0, 100])
def test_max_steps_at_or_beyond_the_trial_is_not_a_cut(digits, extra):
    task, d = digits
    spe = d.steps_per_epoch
    result = run(task, d, 1e-2, 3, max_steps=3 * spe + extra)
    assert result.steps == 3 * spe and not result.cut and result.epochs == 3


def test_callback_returning_true_stops(digits):
    task, d = digits
    seen = []

    def stop_at_two(record):
        seen.append(record.epoch)
        return record.epoch == 2

    result = run(task, d, 1e-2, 6, callback=stop_at_two)
    assert result.stopped and not result.cut and not result.diverged
    assert seen == [1, 2]
    assert len(result.history) == 2 and result.epochs == 2
    assert result.steps == 2 * d.steps_per_epoch


def test_callback_returning_falsy_goes_on(digits):
    task, d = digits
    result = run(task, d, 1e-2, 3, callback=lambda r: None)
    assert not result.stopped and len(result.history) == 3


# -- accounting -----------------------------------------------------------------------------------


def test_step_and_epoch_accounting(digits):
    task, d = digits
    progress = []
    result = run(task, d, 1e-2, 4, progress=progress.append)
    spe = d.steps_per_epoch
    assert spe == len(d.train) // task.batch_size
    assert result.steps == result.epochs * spe == 4 * spe
    assert [r.epoch for r in result.history] == [1, 2, 3, 4]
    assert [r.steps for r in result.history] == [spe, 2 * spe, 3 * spe, 4 * spe]
    assert [r.epochs_done for r in result.history] == [1.0, 2.0, 3.0, 4.0]
    assert progress == result.history
    assert result.seconds == pytest.approx(sum(r.seconds for r in result.history))
    assert result.eval_seconds >= sum(r.eval_seconds for r in result.history) - 1e-9
    assert all(r.seconds > 0 and r.eval_seconds > 0 for r in result.history)


def test_accounting_with_a_train_subset():
    task = get_task("digits")
    d = task.prepare(CPU, DataOptions(train_subset=1000))
    result = run(task, d, 1e-2, 2)
    assert d.steps_per_epoch == 1000 // 64  # the last partial batch is dropped
    assert result.steps == 2 * d.steps_per_epoch


def test_result_to_dict_is_json(digits):
    task, d = digits
    out = json.loads(json.dumps(run(task, d, 1e-2, 2).to_dict()))
    assert out["task"] == "digits" and out["optimizer"] == "adam" and out["schedule"] == "constant"
    assert len(out["history"]) == 2 and out["history"][1]["steps"] == 2 * d.steps_per_epoch


# -- best state and test metric -------------------------------------------------------------------


def manual_train(task, d, lr, epochs, seed):
    """The engine's loop written out by hand (adam, constant rate, CPU)."""
    torch.manual_seed(seed)
    model = task.build_model()
    opt = build_optimizer("adam", model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in task.train_batches(d, g):
            loss = task.loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    return model


def test_test_metric_comes_from_the_best_validation_epoch(digits):
    task, d = digits
    result = run(task, d, 1e-2, 20, seed=0)
    vals = [r.val for r in result.history]
    assert result.best_val == max(vals)
    assert result.best_epoch == vals.index(max(vals)) + 1
    assert result.best_epoch < 20, (
        "pick a setting whose best epoch is not the last, or the test proves nothing"
    )

    best = manual_train(task, d, 1e-2, result.best_epoch, seed=0)
    last = manual_train(task, d, 1e-2, 20, seed=0)
    with torch.no_grad():
        assert float(task.evaluate(best, d.val)) == result.best_val
        assert float(task.evaluate(last, d.val)) == vals[-1]
        assert float(task.evaluate(best, d.test)) == result.test
    assert any(not torch.equal(a, b) for a, b in zip(best.parameters(), last.parameters()))

    # Training only to the best epoch gives the same best state and test number.
    short = run(task, d, 1e-2, result.best_epoch, seed=0)
    assert (short.best_epoch, short.best_val, short.test) == (
        result.best_epoch,
        result.best_val,
        result.test,
    )


def test_minimised_metric_keeps_the_lowest(fmnist):
    task, d = fmnist
    result = run(task, d, 1e-3, 2, max_steps=60, evaluate_test=False)
    vals = [r.val for r in result.history]
    assert result.best_val == min(vals) and result.test is None


# -- recorded learning rates ----------------------------------------------------------------------


def test_history_lr_follows_a_per_epoch_schedule(digits):
    task, d = digits
    result = run(task, d, 1e-2, 5, schedule=ScheduleSpec("step", {"step_size": 2, "gamma": 0.5}))
    assert [r.lr for r in result.history] == pytest.approx(
        [1e-2 * 0.5 ** (e // 2) for e in range(1, 6)], rel=1e-12
    )
    assert result.schedule == "step step_size=2 gamma=0.5"


def test_history_lr_follows_a_per_step_schedule(digits):
    task, d = digits
    epochs, spe, eta_min = 4, d.steps_per_epoch, 1e-4
    result = run(task, d, 1e-2, epochs, schedule=ScheduleSpec("cosine", {"eta_min": eta_min}))
    expected = [
        eta_min + 0.5 * (1e-2 - eta_min) * (1 + math.cos(math.pi * e * spe / (epochs * spe)))
        for e in range(1, epochs + 1)
    ]
    assert [r.lr for r in result.history] == pytest.approx(expected, rel=1e-6)
    assert result.history[-1].lr == pytest.approx(eta_min)


def test_history_lr_of_triangular_cycle(digits):
    task, d = digits
    spe = d.steps_per_epoch
    up = spe * 2  # step_size_epochs=2
    result = run(task, d, 1e-2, 4, schedule=ScheduleSpec("triangular", {"base_lr": 1e-3}))
    # After e epochs the cycle has run e*spe steps: up to the peak at epoch 2, back to base at epoch 4.
    triangle = lambda it: (
        1e-3 + (1e-2 - 1e-3) * max(0.0, 1 - abs(it / up - 2 * math.floor(1 + it / (2 * up)) + 1))
    )  # noqa: E731
    assert [r.lr for r in result.history] == pytest.approx(
        [triangle(e * spe) for e in range(1, 5)], rel=1e-9
    )
    assert result.history[1].lr == pytest.approx(1e-2)
    assert result.history[3].lr == pytest.approx(1e-3)


def test_one_cycle_history_ends_at_its_minimum_not_beyond(digits):
    # cifar10's default schedule: linear annealing. The last record used to show a negative rate.
    task, d = digits
    result = run(
        task,
        d,
        1e-2,
        3,
        schedule=ScheduleSpec("one_cycle", {"pct_start": 0.25, "anneal_strategy": "linear"}),
    )
    lrs = [r.lr for r in result.history]
    assert all(v > 0 for v in lrs)
    assert lrs[-1] == pytest.approx(1e-2 / (25 * 1e4), rel=1e-6)
    assert not result.diverged


def test_budget_cut_epoch_does_not_step_the_epoch_schedule(digits):
    task, d = digits
    spe = d.steps_per_epoch
    result = run(
        task, d, 1e-2, 5, max_steps=spe + 3, schedule=ScheduleSpec("exponential", {"gamma": 0.5})
    )
    assert [r.lr for r in result.history] == pytest.approx([5e-3, 5e-3])


# -- configuration and devices --------------------------------------------------------------------


def test_train_config_for_task_defaults_and_overrides():
    cifar = get_task("cifar10", arch="resnet9", width=8)
    cfg = TrainConfig.for_task(cifar)
    assert (cfg.lr, cfg.optimizer, cfg.epochs) == (0.4, "nesterov", 10)
    assert cfg.optimizer_kwargs == {"weight_decay": 5e-4}
    assert cfg.schedule.name == "one_cycle"
    other = TrainConfig.for_task(cifar, 0.1, optimizer="adam", epochs=3, schedule=ScheduleSpec())
    assert other.optimizer_kwargs == {}  # the task's weight decay belongs to its own optimizer
    assert (other.lr, other.epochs, other.schedule.name) == (0.1, 3, "constant")
    with pytest.raises(ConfigError, match="epochs must be positive"):
        TrainConfig.for_task(cifar, 0.1, epochs=0)


def test_bad_optimizer_or_lr_in_train_is_config_error(digits):
    task, d = digits
    with pytest.raises(ConfigError, match="unknown optimizer 'adamax2'"):
        run(task, d, 1e-2, 1, optimizer="adamax2")
    with pytest.raises(ConfigError, match="learning rate must be positive"):
        run(task, d, -1e-2, 1)
    with pytest.raises(ConfigError, match="unknown option"):
        run(task, d, 1e-2, 1, schedule=ScheduleSpec("step", {"gama": 0.1}))


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    assert resolve_device(CPU) is CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_config_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")


# -- extra metrics -------------------------------------------------------------------------------


def test_extra_metrics_of_a_task_are_recorded_every_epoch(digits):
    task, d = digits

    class WithExtras(type(task)):
        def extra_metrics(self, model, split):
            assert not model.training and not torch.is_grad_enabled()
            return {
                "n_val": torch.tensor(float(len(split))),
                "twice": 2 * self.evaluate(model, split),
            }

    extra = WithExtras(**task.options)
    result = run(extra, d, 1e-2, 2)
    assert [r.extras["n_val"] for r in result.history] == [float(len(d.val))] * 2
    for r in result.history:
        assert r.extras["twice"] == pytest.approx(2 * r.val)
    # None by default.
    assert all(r.extras == {} for r in run(task, d, 1e-2, 1).history)


def test_unknown_train_options_are_a_clear_type_error(digits):
    task, d = digits
    with pytest.raises(TypeError, match="train: .*evaluate_tset"):
        run(task, d, 1e-2, 1, evaluate_tset=False)
