"""Each task trains a little on its real data: scikit-learn's digits, Debian's Fashion-MNIST
(a subset), a small real CIFAR-10 copy (the `cifar10_root` fixture) and the 2-D functions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lrbench.tasks._data as data
from lrbench.errors import ConfigError
from lrbench.tasks import TASKS, DataOptions, TensorSplit, get_task
from lrbench.tasks.functions import FUNCTIONS
from lrbench.training import TrainConfig, train

CPU = torch.device("cpu")
FASHION_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

# The Fashion-MNIST subset the fast tests train on: 10,000 training images (of the 58,000 left
# after holding out 2,000 for validation), the homework model, batch 32 (312 steps per epoch).
FMNIST_OPTIONS = {"val_size": 2000}
FMNIST_DATA = DataOptions(train_subset=10000)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("LRBENCH_DATA", raising=False)


def require_fashion_mnist() -> None:
    d = data.FASHION_MNIST_DEBIAN_DIR
    if not all((d / f"{n}.gz").is_file() or (d / n).is_file() for n in FASHION_FILES):
        pytest.skip(f"Fashion-MNIST not installed in {d} (apt-get install dataset-fashion-mnist)")


# -- registry and options -------------------------------------------------------------------------


def test_registry_has_the_four_tasks():
    assert list(TASKS) == ["fmnist_vae", "cifar10", "digits", "functions"]
    for name in TASKS:
        task = get_task(name)
        assert task.name == name
        assert task.direction in ("minimize", "maximize")
        d = task.describe()
        assert d["name"] == name and d["batch_size"] == task.batch_size


def test_design_table_metrics_and_targets():
    assert (
        TASKS["fmnist_vae"].metric,
        TASKS["fmnist_vae"].direction,
        TASKS["fmnist_vae"].default_target,
    ) == ("homework NLL", "minimize", 235.0)
    assert (
        TASKS["cifar10"].metric,
        TASKS["cifar10"].direction,
        TASKS["cifar10"].default_target,
    ) == ("accuracy", "maximize", 0.94)
    assert TASKS["digits"].direction == "maximize"
    assert TASKS["functions"].direction == "minimize"
    assert TASKS["fmnist_vae"].option_defaults["z_dim"] == 10


def test_unknown_task_and_unknown_option_are_config_errors():
    with pytest.raises(ConfigError, match="unknown task 'mnist'"):
        get_task("mnist")
    with pytest.raises(ConfigError, match="unknown option.*widht.*known: width"):
        get_task("cifar10", widht=8)
    with pytest.raises(ConfigError, match="unknown function 'rosenbrock'"):
        get_task("functions", function="rosenbrock")


def test_batch_size_option_overrides_the_class_default_per_instance():
    small = get_task("cifar10", batch_size=64)
    assert small.batch_size == 64
    assert get_task("cifar10").batch_size == 1024


def test_is_better_follows_the_direction():
    assert get_task("digits").is_better(0.9, 0.8) and not get_task("digits").is_better(0.8, 0.8)
    assert get_task("fmnist_vae").is_better(240.0, 250.0)
    assert get_task("functions").worst_value() == math.inf


# -- digits ---------------------------------------------------------------------------------------


def test_digits_trains_to_ninety_percent():
    task = get_task("digits")
    d = task.prepare(CPU)
    # 1797 images: 360 held out for test, 300 of the rest for validation.
    assert (len(d.train), len(d.val), len(d.test)) == (1137, 300, 360)
    assert d.steps_per_epoch == 1137 // 64
    assert d.train.x.dtype == torch.float32 and float(d.train.x.max()) <= 1.0
    result = train(task, TrainConfig.for_task(task, 1e-2, epochs=20, optimizer="adam"), data=d)
    assert not result.diverged
    assert len(result.history) == 20
    assert result.best_val >= 0.9
    assert result.test >= 0.85
    # It learns: the first epoch is well below the best, the loss falls.
    assert result.history[0].train_loss > 2 * result.history[-1].train_loss
    assert result.best_val == max(r.val for r in result.history)


def test_prepare_caches_per_options_and_subset():
    task = get_task("digits")
    assert task.prepare(CPU) is task.prepare(CPU)
    small = task.prepare(CPU, DataOptions(train_subset=100))
    assert len(small.train) == 100 and small.steps_per_epoch == 1
    assert torch.equal(small.train.x, task.prepare(CPU).train.x[:100])
    assert torch.equal(small.val.x, task.prepare(CPU).val.x)  # the subset never touches validation


# -- functions ------------------------------------------------------------------------------------


def test_functions_bowl_sgd_converges_at_small_lr():
    task = get_task("functions")  # bowl, from (2, 2)
    result = train(task, TrainConfig.for_task(task, 0.01, epochs=10))
    assert not result.diverged
    vals = [r.val for r in result.history]
    assert all(a > b for a, b in zip(vals, vals[1:]))
    assert vals[-1] < 0.01  # from f(2, 2) = 88
    assert result.best_val == vals[-1] and result.test == pytest.approx(vals[-1])
    assert result.steps == 100


def test_functions_bowl_sgd_diverges_at_large_lr():
    # SGD on 20x^2 converges only for lr < 2/40 = 0.05.
    task = get_task("functions")
    result = train(task, TrainConfig.for_task(task, 0.2, epochs=10))
    assert result.diverged
    assert math.isnan(result.history[-1].val)
    assert result.best_val is None and result.test is None


def test_functions_wavy_and_start_option():
    task = get_task("functions", function="wavy", start=[1, -1], steps_per_epoch=5)
    assert task.options["start"] == (1.0, -1.0)
    f0 = float(FUNCTIONS["wavy"](torch.tensor(1.0), torch.tensor(-1.0)))
    result = train(task, TrainConfig.for_task(task, 1e-3, epochs=4, optimizer="adam"))
    assert result.steps == 20
    assert result.history[-1].val < f0


# -- fmnist_vae -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae_run():
    """Three epochs of the homework VAE at Adam 1e-3 on the 10k subset, its best state kept."""
    require_fashion_mnist()
    task = get_task("fmnist_vae", **FMNIST_OPTIONS)
    d = task.prepare(CPU, FMNIST_DATA)
    config = TrainConfig.for_task(task, 1e-3, epochs=3)
    return task, d, train(task, config, data=d, keep_best_state=True)


def test_fmnist_vae_is_the_homework_model():
    model = get_task("fmnist_vae").build_model()
    linears = [
        (m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)
    ]
    # Encoder 784-200-200, mean and sigma heads 200-10, decoder 10-200-200-784.
    assert linears == [
        (784, 200),
        (200, 200),
        (200, 10),
        (200, 10),
        (10, 200),
        (200, 200),
        (200, 784),
    ]
    assert sum(p.numel() for p in model.parameters()) == 401_204
    assert isinstance(model.sigma[-1], nn.Softplus) and isinstance(model.decoder[-1], nn.Sigmoid)
    assert get_task("fmnist_vae").batch_size == 32


def test_fmnist_vae_splits_are_real_images(vae_run):
    task, d, _ = vae_run
    assert (len(d.train), len(d.val), len(d.test)) == (10000, 2000, 10000)
    assert d.train.x.shape == (10000, 784) and d.train.y is None
    assert d.train.x.dtype == torch.float32
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) <= 1.0
    # Fashion-MNIST: about half the pixels are background (exactly 0).
    assert 0.3 < float((d.val.x == 0).float().mean()) < 0.7
    assert d.steps_per_epoch == 10000 // 32


def test_fmnist_vae_nll_in_plausible_range_and_falling(vae_run):
    # Measured (seeds 0 and 1): validation homework NLL 277.4 / 275.5 after epoch 1, 261.4 / 260.9
    # after epoch 2, 256.2 / 256.8 after epoch 3. An untrained decoder gives ~545 (784 ln 2).
    _, _, result = vae_run
    assert not result.diverged
    vals = [r.val for r in result.history]
    assert 260.0 <= vals[0] <= 320.0
    assert vals[0] > vals[1] > vals[2]
    assert vals[0] - vals[2] > 10.0
    assert 240.0 <= vals[2] <= 275.0
    # The training loss is the one-sample -ELBO: same scale, a little above.
    assert 280.0 <= result.history[0].train_loss <= 400.0
    assert result.best_epoch == 3
    # The test NLL of the best state is close to its validation NLL (same distribution).
    assert abs(result.test - result.best_val) < 10.0


def test_fmnist_vae_metric_is_kl_plus_reconstruction_at_z_mu(vae_run):
    task, d, result = vae_run
    model = task.build_model()
    model.load_state_dict(result.best_state)
    model.eval()
    x = d.val.x[:500]
    with torch.no_grad():
        h = model.encoder(x)
        mu, sigma = model.mu(h), torch.nn.functional.softplus(model.sigma[0](h))
        y = model.decoder(mu)
        rec = -(x * y.clamp_min(1e-10).log() + (1 - x) * (1 - y).clamp_min(1e-10).log()).sum(-1)
        kl = -0.5 * (1 + sigma.square().clamp_min(1e-10).log() - mu.square() - sigma.square()).sum(
            -1
        )
        by_hand = float((rec + kl).mean())
        torch.manual_seed(1)
        a = float(task.evaluate(model, TensorSplit(x, None)))
        torch.manual_seed(2)  # no sampling: the global RNG does not matter
        b = float(task.evaluate(model, TensorSplit(x, None)))
    assert a == b
    assert a == pytest.approx(by_hand, rel=1e-5)


def test_fmnist_vae_homework_nll_below_elbo_and_iwae_between(vae_run):
    task, d, result = vae_run
    model = task.build_model()
    model.load_state_dict(result.best_state)
    model.eval()
    val = TensorSplit(d.val.x[:500], None)
    with torch.no_grad():
        homework = float(task.evaluate(model, val))
        final = {k: float(v) for k, v in task.final_metrics(model, val).items()}
    # z = mu removes the sampling noise from the reconstruction, so it sits below the -ELBO; the
    # importance-weighted bound (k = 100) is tighter than the one-sample -ELBO.
    assert homework < final["neg_elbo"]
    assert final["iwae_nll"] < final["neg_elbo"]
    assert final["neg_elbo"] - homework < 10.0


def test_fmnist_vae_evaluation_is_deterministic(vae_run):
    task, d, _ = vae_run
    torch.manual_seed(0)
    model = task.build_model()
    with torch.no_grad():
        a, b = float(task.evaluate(model, d.val)), float(task.evaluate(model, d.val))
        elbo = [float(task.extra_metrics(model, d.val)["neg_elbo"]) for _ in range(2)]
    assert a == b and elbo[0] == elbo[1]
    # An untrained decoder: ~ln 2 per pixel.
    assert 784 * math.log(2) * 0.9 < a < 784 * math.log(2) * 1.1


def test_fmnist_vae_validation_in_one_pass_equals_its_two_metrics_apart(vae_run):
    """One encoder pass for the homework NLL and the -ELBO: the very values `evaluate` and
    `extra_metrics` give, on a trained state and across the split's batches."""
    task, d, result = vae_run
    model = task.build_model()
    model.load_state_dict(result.best_state)
    model.eval()
    val = TensorSplit(d.val.x[:2500], None)
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setattr("lrbench.tasks.fmnist_vae.EVAL_BATCH", 1000)  # three batches, the last short
        together = task.validation_metrics(model, val)
        apart = task.evaluate(model, val), task.extra_metrics(model, val)
    assert torch.equal(together[0], apart[0])
    assert together[1].keys() == apart[1].keys() == {"neg_elbo"}
    assert torch.equal(together[1]["neg_elbo"], apart[1]["neg_elbo"])
    assert float(together[0]) < float(together[1]["neg_elbo"])  # at z = mu, below the bound


# -- cifar10 --------------------------------------------------------------------------------------


def test_cifar10_small_net_trains_on_real_images(cifar10_root):
    task = get_task("cifar10", width=8, batch_size=64)
    d = task.prepare(CPU, DataOptions(str(cifar10_root)))
    # The fixture holds 1000 training images: validation is capped at a fifth of them.
    assert (len(d.train), len(d.val), len(d.test)) == (800, 200, 200)
    assert d.train.x.shape[1:] == (3, 32, 32)
    # Normalised with the CIFAR-10 statistics: roughly zero mean, unit spread per channel.
    assert abs(float(d.train.x.mean())) < 0.3
    assert 0.6 < float(d.train.x.std()) < 1.4
    assert sorted(d.train.y.unique().tolist()) == list(range(10))
    result = train(task, TrainConfig.for_task(task, epochs=2), data=d)
    assert result.steps == 2 * (800 // 64)
    assert not result.diverged
    for r in result.history:
        assert math.isfinite(r.train_loss)
        assert 0.0 <= r.val <= 1.0
    assert 0.0 <= result.test <= 1.0
    # Label-smoothed cross entropy starts near ln(10) and does not blow up.
    assert result.history[0].train_loss < 3.0


# Augmentation, test-time augmentation and the recipe's parts: tests/test_cifar10.py.
