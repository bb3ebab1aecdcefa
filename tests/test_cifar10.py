"""The cifar10 task's airbench94-class recipe, piece by piece, on CPU: patch whitening,
batch augmentation, test-time augmentation, the optimizer's parameter groups and Lookahead,
the default schedule, and short trainings on the small real-format copy (`cifar10_root`)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import lr_scheduler

from lrbench.cli import main
from lrbench.errors import ConfigError
from lrbench.tasks import DataOptions, get_task
from lrbench.tasks._augment import (
    AlternatingFlips,
    translate,
    tta_logits,
    tta_views,
)
from lrbench.tasks._cifar10_net import AirNet, ResNet9, Whiten, patches, whitening_filters
from lrbench.tasks.cifar10 import Cifar10
from lrbench.tools import Lookahead, ScheduleSpec, build_optimizer, build_schedule
from lrbench.training import TrainConfig, train

CPU = torch.device("cpu")
SMALL = {"width": 4, "batch_size": 64}


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("LRBENCH_DATA", raising=False)


@pytest.fixture(scope="module")
def small(cifar10_root):
    task = get_task("cifar10", **SMALL)
    return task, task.prepare(CPU, DataOptions(str(cifar10_root)))


# -- whitening ------------------------------------------------------------------------------------


def correlated_images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated (blurred noise
    mixed across channels), so their 2x2 patches are far from white."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 40, 40, generator=g)
    x = F.avg_pool2d(x, 5, stride=1)[:, :, :32, :32] * 3
    mix = torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.4], [0.1, 0.6, 1.0]])
    return torch.einsum("dc,nchw->ndhw", mix, x)


def second_moment(p: torch.Tensor) -> torch.Tensor:
    return p.T @ p / len(p)


def test_whitening_filters_whiten_the_patches():
    x = correlated_images()
    before = second_moment(patches(x, 2))
    assert (before - torch.eye(12)).abs().max() > 0.5  # far from white to start with
    w = whitening_filters(x, 2, eps=1e-6)
    assert w.shape == (24, 3, 2, 2)
    torch.testing.assert_close(w[12:], -w[:12])  # both signs of every component
    out = F.conv2d(x, w[:12])  # (N, 12, 31, 31): each channel is one whitened component
    after = second_moment(out.permute(0, 2, 3, 1).reshape(-1, 12))
    torch.testing.assert_close(after, torch.eye(12), atol=1e-3, rtol=0)


def test_whiten_layer_fits_on_its_first_training_batch_only_and_stays_frozen():
    layer = Whiten(3)
    assert not layer.weight.requires_grad and layer.bias.requires_grad
    x = correlated_images(16)
    layer.eval()
    layer(x)  # evaluation never fits
    assert not bool(layer.fitted)
    layer.train()
    layer(x)
    torch.testing.assert_close(layer.weight, whitening_filters(x))
    fitted = layer.weight.clone()
    layer(correlated_images(16, seed=1))  # later batches do not refit
    torch.testing.assert_close(layer.weight, fitted)
    # A state carries the fit: loading it into a fresh layer does not refit on its next batch.
    fresh = Whiten(3)
    fresh.load_state_dict(layer.state_dict())
    fresh.train()
    fresh(correlated_images(16, seed=2))
    torch.testing.assert_close(fresh.weight, fitted)


# -- the network ----------------------------------------------------------------------------------


def test_airnet_shape_frozen_scales_and_bias_rate_tags():
    net = AirNet(8)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [bn.num_features for bn in bns] == [8, 8, 32, 32, 32, 32]
    for bn in bns:
        assert not bn.weight.requires_grad and torch.all(bn.weight == 1)
        assert bn.bias.lr_scale == 64.0
    convs = [m for m in net.modules() if type(m) is nn.Conv2d]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (24, 8),
        (8, 8),
        (8, 32),
        (32, 32),
        (32, 32),
        (32, 32),
    ]
    # Identity start: the second conv of a group passes its input through unchanged.
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(convs[1](x), x)


# -- augmentation ---------------------------------------------------------------------------------


def test_translate_moves_pixels_and_reflects_at_the_border(small):
    _, d = small
    x = d.train.x[:6]
    dy = torch.tensor([0, 1, -2, 2, -1, 0])
    dx = torch.tensor([0, -1, 2, 0, 1, -2])
    out = translate(x, dy, dx, 2)
    for i in range(6):
        a, b = int(dy[i]), int(dx[i])
        # Output (r, c) is input (r - dy, c - dx) wherever that is inside the image.
        inner = out[i, :, max(a, 0) : 32 + min(a, 0), max(b, 0) : 32 + min(b, 0)]
        src = x[i, :, max(-a, 0) : 32 + min(-a, 0), max(-b, 0) : 32 + min(-b, 0)]
        assert torch.equal(inner, src)
    # At a border the image reflects: shifted right by 1, column 0 shows input column 1.
    assert torch.equal(out[1, :, 1:, 0], x[1, :, :-1, 1])


def test_random_translation_is_some_shift_within_the_padding(cifar10_root):
    task = get_task("cifar10", **SMALL, flip="none", pad=2)
    d = task.prepare(CPU, DataOptions(str(cifar10_root)))
    x, _ = next(task.train_batches(d, torch.Generator().manual_seed(0)))
    # With no flips, an epoch's first draw is its order: replayed here to name each source.
    perm = torch.randperm(len(d.train), generator=torch.Generator().manual_seed(0))
    source = d.train.x[perm[: len(x)]]
    shifts = [(a, b) for a in range(-2, 3) for b in range(-2, 3)]
    found = []
    for i in range(16):
        one = source[i : i + 1]
        match = [
            s
            for s in shifts
            if torch.equal(x[i : i + 1], translate(one, *map(torch.tensor, ([s[0]], [s[1]])), 2))
        ]
        assert match, f"image {i} is no translation of its input"
        found.append(match[0])
    assert len(set(found)) > 1


def _index_of(images: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """For each image, the index of the pool image it is (up to a left-right mirror): row sums
    do not change under a mirror, and every image of the real copy has its own."""
    key = lambda t: t.sum(-1).flatten(1)  # noqa: E731
    return torch.cdist(key(images), key(pool)).argmin(1)


def test_training_batches_keep_labels_and_alternate_flips(small, cifar10_root):
    task = get_task("cifar10", **SMALL, pad=0)
    d = task.prepare(CPU, DataOptions(str(cifar10_root)))
    g = torch.Generator().manual_seed(0)
    flipped_by_epoch = []
    for _ in range(3):
        flipped = {}
        for x, y in task.train_batches(d, g):
            idx = _index_of(x, d.train.x)
            assert torch.equal(y, d.train.y[idx])  # labels travel with their images
            for k, j in enumerate(idx.tolist()):
                same = torch.equal(x[k], d.train.x[j])
                mirrored = torch.equal(x[k], d.train.x[j].flip(2))
                assert same or mirrored  # a true mirror image, pixel for pixel
                flipped[j] = mirrored and not same
        flipped_by_epoch.append(flipped)
    first, second, third = flipped_by_epoch
    assert 0.3 < sum(first.values()) / len(first) < 0.7
    both = first.keys() & second.keys()
    assert len(both) > 600
    assert all(first[j] != second[j] for j in both)  # every image the other way round
    assert all(first[j] == third[j] for j in first.keys() & third.keys())


def test_alternating_flips_are_kept_per_trial_generator():
    flips = AlternatingFlips()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = flips.epoch_mask(100, g1, CPU)
    assert torch.equal(flips.epoch_mask(100, g1, CPU), ~a)
    assert torch.equal(flips.epoch_mask(100, g2, CPU), a)  # a new trial starts over


# -- test-time augmentation -----------------------------------------------------------------------


def test_tta_logits_are_the_mean_over_the_views(small):
    _, d = small
    torch.manual_seed(0)
    model = AirNet(4).eval()
    x = d.val.x[:16]
    views = tta_views(x, 2)
    assert len(views) == 6
    assert torch.equal(views[1], x.flip(3))
    assert torch.equal(views[2][:, :, :-1, :-1], x[:, :, 1:, 1:])  # one pixel up-left
    assert torch.equal(views[4][:, :, 1:, 1:], x[:, :, :-1, :-1])  # one pixel down-right
    assert torch.equal(views[3], views[2].flip(3))
    with torch.no_grad():
        expected = torch.stack([model(v) for v in views]).mean(0)
        torch.testing.assert_close(tta_logits(model, x, 2), expected)
        torch.testing.assert_close(tta_logits(model, x, 0), model(x))


def test_evaluate_is_the_accuracy_of_the_mean_logits(small):
    task, d = small
    torch.manual_seed(0)
    model = task.build_model().eval()
    with torch.no_grad():
        acc = float(task.evaluate(model, d.val))
        logits = tta_logits(model, d.val.x, 2)
    assert acc == pytest.approx(float((logits.argmax(1) == d.val.y).float().mean()))


# -- optimizer and schedule -----------------------------------------------------------------------


def test_batch_norm_biases_get_their_own_rate_and_the_same_per_step_decay():
    task = get_task("cifar10", width=4)
    model = task.build_model()
    opt = build_optimizer(
        task.default_optimizer, model.parameters(), task.default_lr, **task.optimizer_kwargs
    )
    assert len(opt.param_groups) == 2
    base, biases = opt.param_groups
    assert base["lr"] == task.default_lr == 1.5
    assert biases["lr"] == pytest.approx(64 * base["lr"])
    assert biases["lr"] * biases["weight_decay"] == pytest.approx(
        base["lr"] * base["weight_decay"]
    )
    bn_biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in biases["params"]} == bn_biases
    assert opt.defaults["momentum"] == 0.85 and opt.defaults["nesterov"]


@pytest.mark.parametrize(
    "spec",
    [
        ScheduleSpec("cyclic", {"base_lr": 0.1, "max_lr": 1.0}),
        ScheduleSpec("one_cycle"),
        ScheduleSpec("cosine"),
    ],
)
def test_schedules_keep_the_bias_groups_ratio(spec):
    opt = build_optimizer(
        "nesterov", AirNet(4).parameters(), 1.0, weight_decay=1e-3, lookahead_k=5
    )
    built = build_schedule(spec, opt, lr=1.0, epochs=2, steps_per_epoch=5)
    for _ in range(7):
        opt.step()
        built.after_step()
        base, biases = (g["lr"] for g in opt.param_groups)
        assert biases == pytest.approx(64 * base)


def test_lookahead_is_idle_at_a_constant_rate_and_averages_as_the_rate_anneals():
    def run(schedule: bool, lookahead: bool):
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        kw = {"lookahead_k": 5} if lookahead else {}
        opt = build_optimizer("nesterov", model.parameters(), 0.1, **kw)
        sched = lr_scheduler.LinearLR(opt, 1.0, 0.0, total_iters=20) if schedule else None
        x, y = torch.randn(32, 4), torch.randn(32, 2)
        for _ in range(20):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
            if sched:
                sched.step()
        return model.weight.detach().clone()

    torch.testing.assert_close(run(False, True), run(False, False), rtol=0, atol=0)
    assert not torch.allclose(run(True, True), run(True, False))
    assert Lookahead.default_decay == pytest.approx(0.95**5)


def test_lookahead_averages_the_weights_it_starts_from_not_those_it_was_built_with():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = build_optimizer("sgd", model.parameters(), 1e-3, lookahead_k=1)
    loaded = {k: v + 10.0 for k, v in model.state_dict().items()}
    model.load_state_dict(loaded)  # as a trial continuing from an earlier state does
    sched = lr_scheduler.LinearLR(opt, 1.0, 0.0, total_iters=4)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).sum().backward()
        opt.step()
        sched.step()
    torch.testing.assert_close(model.weight, loaded["weight"], atol=0.05, rtol=0)


def test_default_schedule_is_torchs_warm_up_then_linear_decay():
    task = get_task("cifar10", width=4)
    model = task.build_model()
    opt = build_optimizer(
        task.default_optimizer, model.parameters(), task.default_lr, **task.optimizer_kwargs
    )
    total = 100
    built = build_schedule(
        task.default_schedule, opt, lr=task.default_lr, epochs=10, steps_per_epoch=total // 10
    )
    assert isinstance(built.scheduler, lr_scheduler.OneCycleLR) and built.interval == "step"
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(total):
        opt.step()
        built.after_step()
        lrs.append(opt.param_groups[0]["lr"])
    peak = task.default_lr
    top = max(range(len(lrs)), key=lrs.__getitem__)
    # The peak falls between two steps (23% of 101 schedule points), so no step sits on it.
    assert lrs[0] == pytest.approx(0.2 * peak) and lrs[top] == pytest.approx(peak, rel=0.02)
    assert 20 <= top <= 26  # 23% of the steps
    up, down = torch.tensor(lrs[: top + 1]).diff(), torch.tensor(lrs[top + 1 :]).diff()
    assert torch.allclose(up, up[0], rtol=1e-4) and up[0] > 0  # linear warm-up
    assert torch.allclose(down, down[0], rtol=1e-4) and down[0] < 0  # linear decay
    assert lrs[-1] == pytest.approx(0.07 * peak)  # near zero: the reference's end point
    assert opt.param_groups[1]["lr"] == pytest.approx(64 * lrs[-1])  # groups keep their ratio


def test_options_defaults_and_resnet9_kept():
    task = get_task("cifar10")
    assert (task.default_lr, task.batch_size, task.default_epochs) == (1.5, 1024, 10)
    assert task.options["width"] == 64 and task.options["arch"] == "airbench"
    assert get_task("cifar10", batch_size=512).default_lr == pytest.approx(0.75)
    old = get_task("cifar10", arch="resnet9", width=4)
    assert isinstance(old.build_model(), ResNet9)
    assert (old.default_lr, old.batch_size) == (0.4, 512)
    assert old.optimizer_kwargs == {"weight_decay": 5e-4}
    assert Cifar10.default_lr == 1.5  # class attributes describe the default architecture
    with pytest.raises(ConfigError, match="unknown arch 'vgg'"):
        get_task("cifar10", arch="vgg")
    with pytest.raises(ConfigError, match="flip must be"):
        get_task("cifar10", flip="sometimes")


# -- training -------------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss_on_real_images(small):
    task, d = small
    x, y = d.train.x[:256], d.train.y[:256]
    torch.manual_seed(0)
    model = task.build_model()
    opt = build_optimizer(
        task.default_optimizer, model.parameters(), task.default_lr, **task.optimizer_kwargs
    )
    model.train()
    with torch.no_grad():
        before = float(task.loss(model, (x, y)))
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for batch in task.train_batches(d, g):
            opt.zero_grad()
            task.loss(model, batch).backward()
            opt.step()
    with torch.no_grad():
        after = float(task.loss(model, (x, y)))
    assert after < before - 0.05  # from ln 10; label smoothing and a 4-wide net learn slowly


def test_training_is_deterministic_on_cpu(small):
    task, d = small
    cfg = TrainConfig.for_task(task, epochs=2, seed=3)
    a = train(task, cfg, data=d)
    b = train(task, cfg, data=d)
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert [r.val for r in a.history] == [r.val for r in b.history]
    assert a.test == b.test
    c = train(task, TrainConfig.for_task(task, epochs=2, seed=4), data=d)
    assert [r.train_loss for r in c.history] != [r.train_loss for r in a.history]


def test_cli_train_without_lr_uses_the_task_defaults(capsys, cifar10_root):
    code = main(
        [
            "train",
            "cifar10",
            "--train-subset",
            "128",
            "--epochs",
            "1",
            "--task-opt",
            "width=4",
            "--data-root",
            str(cifar10_root),
            "--device",
            "cpu",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    task = get_task("cifar10", width=4)
    assert result["lr"] == task.default_lr
    assert result["optimizer"] == "nesterov"
    assert result["schedule"] == task.default_schedule.describe()
    assert result["steps"] == 1  # 128 images: one batch of everything
    assert "epoch   1" in err  # progress still reaches stderr with --json
