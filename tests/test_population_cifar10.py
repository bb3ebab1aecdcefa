"""Populations of the cifar10 nets: K members folded into the channels of one grouped net
(`lrbench.stacking._folded`), each training as a lone trial of its configuration.

Grouped and plain convolutions sum in different orders, and a batch-normed net at a high rate
amplifies float32 rounding within a few steps, so the whole-training comparisons run in
float64, where a member's weights must equal its lone trial's to 1e-9 (a real difference, such
as one batch seen in another order or one frozen weight decayed, is far larger; the population
sums its per-step losses in float32, hence 1e-6 on the mean training loss); the layer-level
ones run in float32 at rounding tolerance.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from lrbench.errors import ConfigError
from lrbench.stacking import StackedStep, fold_input, fold_models, unfold_output
from lrbench.tasks import DataOptions, TaskData, TensorSplit, get_task
from lrbench.tasks._cifar10_net import AirNet, ResNet9
from lrbench.training import TrainConfig, TrainOptions, population_size, train, train_trials

CPU = torch.device("cpu")
SMALL = {"width": 4, "batch_size": 32, "val_size": 100, "tta": 0}
TRAIN = 192  # training images: 6 steps an epoch
REL = 1e-9  # float64
LOSS_REL = 1e-6  # the population's per-step losses are summed in float32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _double(data: TaskData) -> TaskData:
    d = lambda s: TensorSplit(s.x.double(), s.y)  # noqa: E731
    return TaskData(d(data.train), d(data.val), d(data.test), data.steps_per_epoch)


@pytest.fixture(scope="module", params=["airbench", "resnet9"])
def arch_data(request, cifar10_root):
    task = get_task("cifar10", arch=request.param, **SMALL)
    return task, _double(task.prepare(CPU, DataOptions(str(cifar10_root), train_subset=TRAIN)))


def _assert_close_runs(single, member) -> None:
    assert len(member.history) == len(single.history)
    for a, b in zip(single.history, member.history):
        assert a.epoch == b.epoch and a.steps == b.steps and a.lr == b.lr
        assert math.isclose(a.train_loss, b.train_loss, rel_tol=LOSS_REL)
        assert math.isclose(a.val, b.val, rel_tol=REL)
    assert (member.best_epoch, member.diverged, member.cut, member.stopped) == (
        single.best_epoch,
        single.diverged,
        single.cut,
        single.stopped,
    )
    if single.test is not None:
        assert math.isclose(member.test, single.test, rel_tol=REL)
    if single.best_state is not None:
        assert set(member.best_state) == set(single.best_state)
        for name, t in single.best_state.items():
            torch.testing.assert_close(member.best_state[name], t, rtol=REL, atol=REL, msg=name)


# -- the folded layers ---------------------------------------------------------------------------


def _folded_and_lone_pass(net, dtype: torch.dtype):
    """Three members of `net` folded and alone, one forward and backward of each on one batch:
    per member, (lone outputs, folded outputs, lone gradients, folded gradients, lone state,
    folded state), gradients by parameter name."""

    def built(seed):
        torch.manual_seed(seed)
        return net(4).to(dtype)

    lone = [built(seed) for seed in range(3)]  # (a deep copy would drop `lr_scale` tags)
    folded = fold_models([built(seed) for seed in range(3)])
    x = torch.randn(3, 16, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = unfold_output(folded(fold_input(x)), 3)
    out.square().sum().backward()
    names = [n for n, _ in folded.named_parameters()]
    assert names == [n for n, _ in lone[0].named_parameters()]
    state = folded.state_dict()
    members = []
    for k, m in enumerate(lone):
        ref = m(x[k])
        ref.square().sum().backward()
        grads, folded_grads = {}, {}
        for (name, p), q in zip(m.named_parameters(), folded.parameters()):
            assert q.requires_grad == p.requires_grad and getattr(q, "lr_scale", 1) == getattr(
                p, "lr_scale", 1
            )
            if p.grad is not None:
                grads[name], folded_grads[name] = p.grad, q.grad[k]
        member_state = {name: state[name][k] for name in m.state_dict()}
        members.append(
            (ref.detach(), out[k].detach(), grads, folded_grads, m.state_dict(), member_state)
        )
    return members


def _exact(a: torch.Tensor, b: torch.Tensor, name: str) -> None:
    """Equal in float64 up to a few ulps of the tensor's scale (another CPU's kernels may
    sum a grouped and a plain convolution in other orders; a wrong member, batch or frozen
    weight is off by orders of magnitude more)."""
    scale = float(b.abs().max()) if b.is_floating_point() and b.numel() else 1.0
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * max(scale, 1e-300), msg=name)


@pytest.mark.parametrize("net", [AirNet, ResNet9])
def test_a_folded_net_computes_each_member_as_its_lone_net(net):
    """Exactness where it holds, in float64: each member's outputs, gradients, running
    statistics, whitening and counts are its lone net's."""
    for ref, out, grads, folded_grads, state, folded_state in _folded_and_lone_pass(
        net, torch.float64
    ):
        _exact(out, ref, "outputs")
        assert grads.keys() == folded_grads.keys()
        for name, g in grads.items():
            _exact(folded_grads[name], g, name)
        for name, b in state.items():
            _exact(folded_state[name], b, name)


def _relative_error(a: torch.Tensor, exact: torch.Tensor) -> float:
    """Norm-wise relative error of `a` against a float64 result."""
    return float((a.double() - exact).norm() / exact.norm().clamp_min(1e-300))


@pytest.mark.parametrize("net", [AirNet, ResNet9])
def test_a_folded_net_in_float32_is_as_accurate_as_its_lone_net(net):
    """In float32 a member differs from its lone net by rounding only: against the float64
    result, each of its gradients is within 4x the lone net's own float32 error (which on some
    CPUs' kernels is 0.4% for a batch-normed net's first layer), plus float32's epsilon times
    the largest reduction of the pass (a weight gradient sums over a batch's 16 x 32 x 32
    positions)."""
    floor = torch.finfo(torch.float32).eps * 16 * 32 * 32
    exact = _folded_and_lone_pass(net, torch.float64)
    for (_, out, grads, folded_grads, _, _), (ref64, _, grads64, _, _, _) in zip(
        _folded_and_lone_pass(net, torch.float32), exact
    ):
        assert _relative_error(out, ref64) <= 4 * _relative_error(ref64.float(), ref64) + floor
        for name, g64 in grads64.items():
            lone_error = _relative_error(grads[name], g64)
            assert _relative_error(folded_grads[name], g64) <= 4 * lone_error + floor, name


def test_folded_batch_norm_keeps_a_cumulative_average_as_torch_does():
    def built(seed):  # momentum None: running statistics are the mean over all batches
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=None)
        )

    lone = [built(s) for s in range(2)]
    folded = fold_models([built(s) for s in range(2)])
    x = torch.randn(2, 8, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        folded(fold_input(x + step))
        for k, m in enumerate(lone):
            m(x[k] + step)
    state = folded.state_dict()
    for k, m in enumerate(lone):
        for name, b in m.state_dict().items():
            torch.testing.assert_close(state[name][k], b, rtol=1e-5, atol=1e-6, msg=name)


def test_a_layer_without_a_folded_form_is_refused():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.LayerNorm([4, 30, 30]))
    with pytest.raises(ConfigError, match="LayerNorm"):
        fold_models([net, copy.deepcopy(net)])


# -- the data --------------------------------------------------------------------------------------


@pytest.mark.parametrize("flip", ["alternating", "random", "none"])
def test_population_batches_are_each_members_own_training_batches(cifar10_root, flip):
    task = get_task("cifar10", flip=flip, **SMALL)
    data = task.prepare(CPU, DataOptions(str(cifar10_root), train_subset=TRAIN))
    seeds = (0, 5, 9)
    lone_gens = [torch.Generator().manual_seed(s) for s in seeds]
    pop_gens = [torch.Generator().manual_seed(s) for s in seeds]
    for _epoch in range(2):  # the alternating flip's second epoch mirrors the first's others
        lone = [list(task.train_batches(data, g)) for g in lone_gens]
        together = list(task.population_batches(data, pop_gens))
        assert len(together) == len(lone[0])
        for i, (x, y) in enumerate(together):
            assert x.shape[:2] == y.shape == (len(seeds), task.batch_size)
            for k in range(len(seeds)):
                assert torch.equal(x[k], lone[k][i][0]) and torch.equal(y[k], lone[k][i][1])


# -- whole trainings ------------------------------------------------------------------------------


def test_cifar10_members_equal_single_runs(arch_data, float64):
    """The task's default recipe per member: Nesterov with Lookahead and (airbench) the batch-norm
    biases' own rate, the per-step warm-up and decay, whitening fitted to each member's own
    first batch, alternating flips and translations from each member's own generator."""
    task, data = arch_data
    configs = [
        TrainConfig.for_task(task, task.default_lr * f, epochs=2, seed=s)
        for s, f in ((0, 1.0), (1, 0.5), (2, 2.0))
    ]
    singles = [train(task, c, data=data, keep_best_state=True) for c in configs]
    members = train_trials(task, configs, data=data, options=TrainOptions(keep_best_state=True))
    for s, m in zip(singles, members):
        _assert_close_runs(s, m)
    assert set(members[0].best_state) == set(task.build_model().state_dict())
    if task.options["arch"] == "airbench":  # frozen weights stay as they were fitted or set
        best = members[0].best_state
        assert torch.equal(best["groups.0.2.weight"], torch.ones_like(best["groups.0.2.weight"]))
        assert not torch.equal(best["whiten.weight"], members[1].best_state["whiten.weight"])


def test_cifar10_members_of_different_lengths_and_a_stopped_one(arch_data, float64):
    """Members leave the population (their parameters, batch-norm statistics and Lookahead's
    slow weights are compacted away) while the others go on as lone trials."""
    task, data = arch_data
    configs = [TrainConfig.for_task(task, task.default_lr, epochs=e, seed=e) for e in (1, 2, 2)]
    stop = TrainOptions(callback=lambda r: r.epoch >= 1, keep_best_state=True)
    options = [TrainOptions(keep_best_state=True)] * 2 + [stop]
    singles = [
        train(task, c, data=data, callback=o.callback, keep_best_state=True)
        for c, o in zip(configs, options)
    ]
    members = train_trials(task, configs, data=data, options=options)
    assert [len(m.history) for m in members] == [1, 2, 1] and members[2].stopped
    for s, m in zip(singles, members):
        _assert_close_runs(s, m)


def test_the_stacked_step_leaves_cifar10_to_the_members_optimizers(cifar10_root):
    task = get_task("cifar10", **SMALL)
    model = task.build_model()
    from lrbench.tools import build_optimizer

    opts = [
        build_optimizer(task.default_optimizer, model.parameters(), 0.1, **task.optimizer_kwargs)
        for _ in range(2)
    ]
    assert len(opts[0].param_groups) == 2  # the batch-norm biases' own rate
    assert StackedStep.build(opts) is None
    plain = [build_optimizer("sgd", model.parameters(), 0.1, lookahead_k=5) for _ in range(2)]
    assert StackedStep.build(plain) is None  # Lookahead's hooks run only in a member's own step


def test_cifar10_population_support_and_its_limit():
    assert population_size(get_task("cifar10"), torch.device("cuda"), None) == 32
    compiled = get_task("cifar10", compile=True)  # a compiled model has no folded form
    assert population_size(compiled, torch.device("cuda"), None) == 1
    assert compiled.population_form is None and get_task("cifar10").population_form == "folded"
