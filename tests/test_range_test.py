"""Tests for lrbench.tools._range_test on real data (scikit-learn's digits, 64-64-10 MLP)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lrbench.tools import (
    SUGGESTION_KEYS,
    RangeTestResult,
    clr_bounds,
    lr_range_test,
    suggest_lrs,
)

torch.set_num_threads(1)


# --------------------------------------------------------------------------- #
# fixtures / helpers
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    ds = load_digits()
    x = torch.tensor(ds.data / 16.0, dtype=torch.float32)
    y = torch.tensor(ds.target, dtype=torch.long)
    return x, y


def make_batches(x, y, batch_size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    return [(x[idx], y[idx]) for idx in perm.split(batch_size)]


@pytest.fixture(scope="module")
def batches(digits):
    x, y = digits
    return make_batches(x[:1500], y[:1500])


@pytest.fixture(scope="module")
def val_batches(digits):
    x, y = digits
    return make_batches(x[1500:], y[1500:], batch_size=150, seed=1)


def make_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def make_opt(kind, model, lr=0.01):
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if kind == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    raise AssertionError(kind)


def ce_loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def warm_up(model, opt, batches, steps=3):
    """A few real steps so momentum buffers / Adam moments are non-trivial; grads left in place."""
    for x, y in batches[:steps]:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def snapshot(model, opt):
    return {
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "opt_state": {
            i: {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in s.items()}
            for i, s in opt.state_dict()["state"].items()
        },
        "groups": [dict(g) for g in opt.state_dict()["param_groups"]],
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "opt_attrs": set(vars(opt)),
    }


def assert_same(before, model, opt):
    after = snapshot(model, opt)
    assert before["model"].keys() == after["model"].keys()
    for k in before["model"]:
        assert torch.equal(before["model"][k], after["model"][k]), k
    assert before["opt_state"].keys() == after["opt_state"].keys()
    for i in before["opt_state"]:
        b, a = before["opt_state"][i], after["opt_state"][i]
        assert b.keys() == a.keys()
        for k in b:
            if torch.is_tensor(b[k]):
                assert torch.is_tensor(a[k]) and a[k].dtype == b[k].dtype, (i, k)
                assert torch.equal(b[k], a[k]), (i, k)
            else:
                assert b[k] == a[k], (i, k)
    assert before["groups"] == after["groups"]
    for gb, ga in zip(before["grads"], after["grads"]):
        assert (gb is None) == (ga is None)
        if gb is not None:
            assert torch.equal(gb, ga)
    assert before["modes"] == after["modes"]
    assert before["opt_attrs"] == after["opt_attrs"]


def lr_at_min(result):
    return result.lrs[int(np.nanargmin(result.losses))]


# --------------------------------------------------------------------------- #
# suggestions on real curves
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("kind,start,end", [("sgd", 1e-5, 10.0), ("adam", 1e-6, 1.0)])
def test_suggestions_inside_range_and_ordered(batches, kind, start, end):
    model = make_mlp()
    opt = make_opt(kind, model)
    res = lr_range_test(
        model, opt, batches, nn.CrossEntropyLoss(), start_lr=start, end_lr=end, num_iter=100
    )

    assert set(res.suggestions) == set(SUGGESTION_KEYS)
    # the curve really descends on digits
    assert min(res.losses) < 0.7 * res.losses[0]
    for key, lr in res.suggestions.items():
        assert isinstance(lr, float) and math.isfinite(lr), key
        assert start <= lr <= end, key
    s = res.suggestions
    assert s["base_lr"] < s["max_lr"]
    assert s["steepest"] < lr_at_min(res)
    assert s["max_lr"] <= lr_at_min(res)
    assert s["minimum/10"] == pytest.approx(lr_at_min(res) / 10)
    # the steepest point is on the descending part
    i = res.lrs.index(s["steepest"])
    assert res.losses[i] < res.losses[0]
    assert res.num_steps == len(res.lrs) == len(res.losses) == len(res.raw_losses)


def test_diverges_and_stops_early(batches):
    model = make_mlp()
    opt = make_opt("sgd", model)
    res = lr_range_test(
        model,
        opt,
        batches,
        nn.CrossEntropyLoss(),
        start_lr=1e-4,
        end_lr=100.0,
        num_iter=100,
        diverge_th=5.0,
    )
    assert res.stopped_early
    assert res.num_steps < 100
    assert res.num_steps == len(res.lrs) == len(res.losses) == len(res.raw_losses)
    finite = [v for v in res.losses if math.isfinite(v)]
    last = res.losses[-1]
    assert (not math.isfinite(last)) or last > 5.0 * min(finite)
    # all earlier points were below the threshold
    for k in range(1, len(res.losses) - 1):
        assert res.losses[k] <= 5.0 * min(res.losses[: k + 1])
    for key, lr in res.suggestions.items():
        assert 1e-4 <= lr <= 100.0, key
    assert res.suggestions["base_lr"] < res.suggestions["max_lr"]


def test_no_early_stop_runs_all_steps(batches):
    model = make_mlp()
    opt = make_opt("sgd", model)
    res = lr_range_test(
        model, opt, batches, nn.CrossEntropyLoss(), start_lr=1e-6, end_lr=1e-3, num_iter=30
    )
    assert not res.stopped_early
    assert res.num_steps == 30


# --------------------------------------------------------------------------- #
# restoring state
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_state_restored_bit_identical(batches, kind):
    model = make_mlp()
    opt = make_opt(kind, model, lr=0.003)
    warm_up(model, opt, batches)  # grads left set on purpose
    model.eval()
    model[1].train()  # mixed modes must come back per module
    before = snapshot(model, opt)
    assert before["opt_state"], "warm-up should have created optimizer state"

    res = lr_range_test(
        model, opt, batches, nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=100.0, num_iter=60
    )
    assert res.num_steps > 5
    assert_same(before, model, opt)
    assert "initial_lr" not in opt.param_groups[0]
    assert opt.param_groups[0]["lr"] == 0.003

    # the optimizer still trains normally afterwards (no leftover scheduler wrapper)
    opt.zero_grad()
    F.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    opt.step()


def test_state_restored_when_loop_raises(batches):
    model = make_mlp()
    opt = make_opt("adam", model)
    warm_up(model, opt, batches)
    model.train()
    before = snapshot(model, opt)
    calls = {"n": 0}

    def failing(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("boom at step 5")
        return ce_loss_fn(model, batch)

    with pytest.raises(RuntimeError, match="boom"):
        lr_range_test(
            model, opt, batches, loss_fn=failing, start_lr=1e-3, end_lr=10.0, num_iter=50
        )
    assert calls["n"] == 6
    assert_same(before, model, opt)


def test_restore_false_keeps_training(batches):
    model = make_mlp()
    opt = make_opt("sgd", model)
    w0 = model[0].weight.detach().clone()
    res = lr_range_test(
        model,
        opt,
        batches,
        nn.CrossEntropyLoss(),
        start_lr=1e-3,
        end_lr=1e-1,
        num_iter=10,
        restore=False,
    )
    assert res.num_steps == 10
    assert not torch.equal(w0, model[0].weight)
    assert opt.state  # momentum buffers kept
    assert "initial_lr" not in opt.param_groups[0]
    assert "step" not in vars(opt)


def test_multiple_param_groups_get_same_lr_and_are_restored(batches):
    model = make_mlp()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.1},
            {"params": model[2].parameters(), "lr": 0.01, "momentum": 0.5},
        ],
        lr=0.05,
        momentum=0.9,
    )
    seen = []

    def loss_fn(m, batch):
        seen.append([g["lr"] for g in opt.param_groups])
        return ce_loss_fn(m, batch)

    before = snapshot(model, opt)
    res = lr_range_test(
        model, opt, batches, loss_fn=loss_fn, start_lr=1e-4, end_lr=1e-2, num_iter=8
    )
    assert all(a == b for a, b in seen)
    assert [s[0] for s in seen] == res.lrs
    assert_same(before, model, opt)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]


# --------------------------------------------------------------------------- #
# lr schedules
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_lr_sequence_matches_formula(batches, mode):
    model = make_mlp()
    opt = make_opt("sgd", model)
    start, end, n = 1e-6, 1e-2, 40
    res = lr_range_test(
        model,
        opt,
        batches,
        nn.CrossEntropyLoss(),
        start_lr=start,
        end_lr=end,
        num_iter=n,
        step_mode=mode,
        diverge_th=math.inf,
    )
    assert not res.stopped_early and res.num_steps == n
    i = np.arange(n)
    if mode == "exp":
        expected = start * (end / start) ** (i / (n - 1))
    else:
        expected = start + (end - start) * i / (n - 1)
    np.testing.assert_allclose(res.lrs, expected, rtol=1e-10, atol=0)
    assert res.lrs[0] == pytest.approx(start, rel=1e-12)
    assert res.lrs[-1] == pytest.approx(end, rel=1e-12)
    assert res.step_mode == mode
    assert all(start <= v <= end for v in res.suggestions.values())


def test_batches_are_cycled(batches):
    class Counting:
        def __init__(self, items):
            self.items, self.passes = items, 0

        def __iter__(self):
            self.passes += 1
            return iter(self.items)

    src = Counting(batches[:3])
    model = make_mlp()
    res = lr_range_test(
        model,
        make_opt("sgd", model),
        src,
        nn.CrossEntropyLoss(),
        start_lr=1e-5,
        end_lr=1e-3,
        num_iter=10,
    )
    assert res.num_steps == 10
    assert src.passes == 4  # 3 + 3 + 3 + 1, and no batch fetched beyond the last step


def test_one_shot_iterators(batches):
    model = make_mlp()
    opt = make_opt("sgd", model)

    # an infinite generator is fine
    def forever():
        while True:
            yield from batches

    res = lr_range_test(
        model, opt, forever(), nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=1e-3, num_iter=12
    )
    assert res.num_steps == 12
    # a finite one that runs out cannot be re-iterated: clear error, state restored
    before = snapshot(model, opt)
    with pytest.raises(ValueError, match="re-iterable"):
        lr_range_test(
            model,
            opt,
            iter(batches[:3]),
            nn.CrossEntropyLoss(),
            start_lr=1e-5,
            end_lr=1e-3,
            num_iter=12,
        )
    assert_same(before, model, opt)


# --------------------------------------------------------------------------- #
# loss modes
# --------------------------------------------------------------------------- #
def test_loss_fn_and_criterion_give_same_curve(batches):
    m1 = make_mlp(seed=3)
    r1 = lr_range_test(m1, make_opt("sgd", m1), batches, nn.CrossEntropyLoss(), num_iter=50)
    m2 = make_mlp(seed=3)
    r2 = lr_range_test(m2, make_opt("sgd", m2), batches, loss_fn=ce_loss_fn, num_iter=50)
    assert r1.lrs == r2.lrs
    np.testing.assert_allclose(r1.raw_losses, r2.raw_losses, rtol=1e-6)
    np.testing.assert_allclose(r1.losses, r2.losses, rtol=1e-6)
    assert r1.num_steps == r2.num_steps and r1.stopped_early == r2.stopped_early
    assert r1.suggestions == pytest.approx(r2.suggestions)


def test_val_batches_mode(batches, val_batches):
    model = make_mlp()
    opt = make_opt("sgd", model)
    modes = []

    def loss_fn(m, batch):
        modes.append((m.training, torch.is_grad_enabled()))
        return ce_loss_fn(m, batch)

    model.train()
    res = lr_range_test(
        model,
        opt,
        batches,
        loss_fn=loss_fn,
        val_batches=val_batches,
        start_lr=1e-4,
        end_lr=1.0,
        num_iter=20,
    )
    assert res.loss_source == "val" and res.num_steps == 20
    assert all(math.isfinite(v) for v in res.raw_losses)
    nv = len(val_batches)
    assert len(modes) == 20 * (1 + nv)
    for step in range(20):
        chunk = modes[step * (1 + nv) : (step + 1) * (1 + nv)]
        assert chunk[0] == (True, True)  # training step
        assert all(c == (False, False) for c in chunk[1:])  # eval, no grad
    assert model.training and all(m.training for m in model.modules())

    # recorded value = mean val loss after the step (check the last one with restore=False)
    m2 = make_mlp()
    res2 = lr_range_test(
        m2,
        make_opt("sgd", m2),
        batches,
        nn.CrossEntropyLoss(),
        val_batches=iter(val_batches),
        start_lr=1e-3,
        end_lr=1e-1,
        num_iter=3,
        restore=False,
    )
    with torch.no_grad():
        expected = np.mean([F.cross_entropy(m2(x), y).item() for x, y in val_batches])
    assert res2.raw_losses[-1] == pytest.approx(expected, rel=1e-6)


def test_smoothing_is_bias_corrected_ema(batches):
    model = make_mlp()
    res = lr_range_test(
        model,
        make_opt("sgd", model),
        batches,
        nn.CrossEntropyLoss(),
        start_lr=1e-5,
        end_lr=1e-2,
        num_iter=25,
        smooth_f=0.1,
    )
    beta, avg = 0.9, 0.0
    for i, (raw, sm) in enumerate(zip(res.raw_losses, res.losses)):
        avg = beta * avg + (1 - beta) * raw
        assert sm == pytest.approx(avg / (1 - beta ** (i + 1)), rel=1e-12)
    assert res.losses[0] == pytest.approx(res.raw_losses[0])
    res1 = lr_range_test(
        model,
        make_opt("sgd", model),
        batches,
        nn.CrossEntropyLoss(),
        num_iter=10,
        end_lr=1e-3,
        smooth_f=1.0,
    )
    assert res1.losses == pytest.approx(res1.raw_losses)


# --------------------------------------------------------------------------- #
# output: plot / dict
# --------------------------------------------------------------------------- #
def test_plot_and_to_dict(batches, tmp_path):
    model = make_mlp()
    res = lr_range_test(
        model, make_opt("sgd", model), batches, nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=100.0
    )
    path = tmp_path / "sub" / "range_test.png"
    ax = res.plot(path=path, title="digits MLP")
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for key in SUGGESTION_KEYS:
        assert any(label.startswith(key + " = ") for label in labels), key

    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    for key in ("lrs", "losses", "raw_losses", "suggestions", "num_steps", "stopped_early"):
        assert key in d
    back = RangeTestResult.from_dict(json.loads(text))
    assert (
        back.lrs == res.lrs
        and back.num_steps == res.num_steps
        and back.suggestions == res.suggestions
    )
    # drawing into a given Axes
    from matplotlib.figure import Figure

    fig = Figure()
    ax2 = fig.add_subplot()
    assert back.plot(ax=ax2) is ax2


def test_to_dict_with_nonfinite_loss():
    res = RangeTestResult(
        lrs=[1e-3, 1e-2, 1e-1],
        losses=[2.0, 1.0, math.inf],
        raw_losses=[2.0, 0.5, math.nan],
        num_steps=3,
        stopped_early=True,
        start_lr=1e-3,
        end_lr=1.0,
        step_mode="exp",
    )
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["losses"][-1] is None and d["raw_losses"][-1] is None


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
def test_empty_iterable_raises_and_touches_nothing(batches):
    model = make_mlp()
    opt = make_opt("sgd", model, lr=0.02)
    before = snapshot(model, opt)
    for empty in ([], iter([]), (b for b in [])):
        with pytest.raises(ValueError, match="no batch"):
            lr_range_test(model, opt, empty, nn.CrossEntropyLoss(), restore=False)
        assert_same(before, model, opt)
    with pytest.raises(ValueError, match="val_batches"):
        lr_range_test(model, opt, batches, nn.CrossEntropyLoss(), val_batches=[])


def test_criterion_xor_loss_fn(batches):
    model = make_mlp()
    opt = make_opt("sgd", model)
    with pytest.raises(ValueError, match="exactly one"):
        lr_range_test(model, opt, batches)
    with pytest.raises(ValueError, match="exactly one"):
        lr_range_test(model, opt, batches, nn.CrossEntropyLoss(), loss_fn=ce_loss_fn)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_lr": 1.0, "end_lr": 1.0},
        {"start_lr": 0.0},
        {"start_lr": -1.0},
        {"end_lr": math.inf},
        {"num_iter": 1},
        {"num_iter": 2.5},
        {"step_mode": "cosine"},
        {"smooth_f": 0.0},
        {"smooth_f": 1.5},
        {"diverge_th": 1.0},
    ],
)
def test_bad_arguments(batches, kwargs):
    model = make_mlp()
    with pytest.raises(ValueError):
        lr_range_test(model, make_opt("sgd", model), batches, nn.CrossEntropyLoss(), **kwargs)


def test_criterion_mode_needs_pairs():
    model = make_mlp()
    with pytest.raises(ValueError, match="inputs, targets"):
        lr_range_test(
            model, make_opt("sgd", model), [{"x": torch.zeros(2, 64)}], nn.CrossEntropyLoss()
        )


# --------------------------------------------------------------------------- #
# suggestion rules on synthetic curves
# --------------------------------------------------------------------------- #
def _check(s, start, end):
    assert set(s) == set(SUGGESTION_KEYS)
    for key, v in s.items():
        assert isinstance(v, float) and math.isfinite(v), key
        assert start <= v <= end, key
    assert s["base_lr"] < s["max_lr"]


@pytest.mark.parametrize(
    "curve",
    [
        [],
        [math.nan],
        [1.0],
        [1.0, 2.0],
        [2.0, 1.0],
        [1.0, 1.0, 1.0],
        [3.0, 2.0, 1.0, math.inf],
        [1.0] * 50,
        list(np.linspace(1, 2, 30)),
        list(np.linspace(2, 1, 30)),
        [1.0, 0.5, 2.0, math.nan],
    ],
)
def test_suggestions_degenerate_curves(curve):
    n_lrs = max(len(curve), 1)
    lrs = list(1e-5 * 10 ** (np.arange(n_lrs) * 0.25))[: len(curve)]
    s = suggest_lrs(lrs, curve, 1e-5, 10.0, num_iter=100)
    _check(s, 1e-5, 10.0)


def test_suggestions_on_textbook_curve():
    # flat, then a fall from lr 1e-4 to 1e-1, then divergence
    lrs = np.logspace(-7, 1, 100)
    lx = np.log10(lrs)
    y = 2.3 - 2.0 / (1 + np.exp(-(lx + 2.5) * 3)) + np.where(lx > -1, (lx + 1) ** 2 * 4, 0)
    s = suggest_lrs(list(lrs), list(y), 1e-7, 10.0)
    _check(s, 1e-7, 10.0)
    m = int(np.argmin(y))
    assert s["steepest"] == pytest.approx(10**-2.5, rel=0.25)
    assert s["minimum/10"] == pytest.approx(lrs[m] / 10)
    assert 1e-5 < s["base_lr"] < 10**-2.5 < s["max_lr"] <= lrs[m]
    assert 1e-5 < s["valley"] < lrs[m]
    b3, m3 = clr_bounds(
        RangeTestResult(
            lrs=list(lrs),
            losses=list(y),
            raw_losses=list(y),
            num_steps=100,
            stopped_early=False,
            start_lr=1e-7,
            end_lr=10.0,
            step_mode="exp",
            suggestions=s,
        ),
        rule="max/3",
    )
    assert m3 == s["max_lr"] and b3 == pytest.approx(m3 / 3)


def _fastai_valley_reference(lrs, losses):
    """fastai's ``valley`` suggester, loop for loop (fastai/callback/schedule.py)."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return lrs[idx]


def test_valley_matches_fastai():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = 100
        lrs = np.logspace(-7, 1, n)
        lx = np.log10(lrs)
        y = 2.3 - 2.0 / (1 + np.exp(-(lx + rng.uniform(-4, -1)) * 3)) + rng.normal(0, 0.05, n)
        y = np.convolve(y, np.ones(5) / 5, mode="same")
        s = suggest_lrs(list(lrs), list(y), 1e-7, 10.0)
        # fastai trims num_it//10 at the start and 5 at the end before suggesting
        assert s["valley"] == _fastai_valley_reference(list(lrs[10:-5]), list(y[10:-5])), trial


# The slide rule on curves whose answer is worked out by hand: 100 points, exp-spaced lrs,
# 10 trimmed at the start and 5 at the end, so the rule reads trimmed points t = 0 .. 84 at
# full indices 10 + t.
SLIDE_LRS = np.logspace(-7, 1, 100)


def _trimmed_curve(trimmed):
    """A 100-point curve holding `trimmed` (85 values) where the rules read it, and a value in
    the 15 trimmed-off points that no rule may see (far above everything else)."""
    y = np.full(100, 50.0)
    y[10:95] = trimmed
    return y


def test_slide_finds_the_last_window_with_unequal_end_gradients():
    # A straight descent (gradient -0.01 per point) up to t = K, then the same descent plus
    # 0.02 (t - K)^2. np.gradient's central differences are exact for both pieces: g = -0.01
    # for t < K, g(K) = (y(K+1) - y(K-1)) / 2 = 0, g = -0.01 + 0.04 (t - K) for t > K, and the
    # one-sided last point g(84) = y(84) - y(83) = -0.01 + 0.02 (2 (84 - K) - 1).
    # Windows [r - 15, r], r = 84, 83, ...: while r >= K the right end's gradient is >= 0 and
    # differs from the left end's by at least 0.01 (> 0.005); r = K - 1 is the first window
    # whose ends agree (both -0.01). The suggestion is the left end of the window before it,
    # r = K: t = K - 15.
    K = 60
    t = np.arange(85)
    y = 5.0 - 0.01 * t + np.where(t > K, 0.02 * (t - K) ** 2, 0.0)
    s = suggest_lrs(list(SLIDE_LRS), list(_trimmed_curve(y)), 1e-7, 10.0)
    assert s["slide"] == SLIDE_LRS[10 + K - 15]


def test_slide_on_curves_that_never_fall():
    t = np.arange(85, dtype=float)
    # Flat: every gradient is 0, so the first window (t = 69 .. 84) already agrees: its left end.
    flat = suggest_lrs(list(SLIDE_LRS), list(_trimmed_curve(np.ones(85))), 1e-7, 10.0)
    assert flat["slide"] == SLIDE_LRS[10 + 84 - 15]
    # Rising ever faster, 1 + 0.01 t^2: gradients 15 points apart differ by 0.3 (interior), or
    # more at the one-sided ends, so no window agrees and the slide runs to the first point.
    rising = suggest_lrs(list(SLIDE_LRS), list(_trimmed_curve(1 + 0.01 * t**2)), 1e-7, 10.0)
    assert rising["slide"] == SLIDE_LRS[10]


def test_slide_on_short_curves():
    lrs = list(np.logspace(-5, 0, 30))
    # 30 points: 3 trimmed at each end, 24 read; a straight descent agrees at once, so the
    # first window's left end: t = 23 - 15 = 8, full index 3 + 8.
    s = suggest_lrs(lrs, list(np.linspace(3, 1, 30)), 1e-5, 1.0, num_iter=30)
    assert s["slide"] == lrs[11]
    # 15 points: 13 read, too few for one window (fastai raises); the first point read.
    s = suggest_lrs(lrs[:15], list(np.linspace(3, 1, 15)), 1e-5, 1.0, num_iter=30)
    assert s["slide"] == lrs[1]
    # A curve that diverged at its second step: its one finite point, the start.
    s = suggest_lrs(lrs[:2], [2.0, math.nan], 1e-5, 1.0, num_iter=30)
    assert s["slide"] == 1e-5


def test_a_range_test_stored_before_the_slide_rule_loads_and_gets_it(batches):
    model = make_mlp()
    res = lr_range_test(
        model, make_opt("sgd", model), batches, nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=10.0
    )
    old = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    del old["suggestions"]["slide"]
    old["suggestions"]["valley"] = 1e-3  # what it was stored with is kept, not recomputed
    back = RangeTestResult.from_dict(old)
    assert list(back.suggestions) == list(SUGGESTION_KEYS)
    assert back.suggestions["slide"] == res.suggestions["slide"]
    assert back.suggestions["valley"] == 1e-3
    assert {k: back.suggestions[k] for k in ("steepest", "base_lr", "max_lr")} == {
        k: res.suggestions[k] for k in ("steepest", "base_lr", "max_lr")
    }


def test_clr_bounds_rules(batches):
    model = make_mlp()
    res = lr_range_test(
        model, make_opt("sgd", model), batches, nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=10.0
    )
    base, mx = clr_bounds(res)
    assert (base, mx) == (res.suggestions["base_lr"], res.suggestions["max_lr"])
    for rule, div in (("max/3", 3), ("max/4", 4)):
        b, m = clr_bounds(res, rule=rule)
        assert m == mx and b == pytest.approx(max(mx / div, res.start_lr))
        assert res.start_lr <= b < m <= res.end_lr
    with pytest.raises(ValueError):
        clr_bounds(res, rule="max/10")


def test_the_argument_checks_are_public_and_shared_by_the_command_line(capsys):
    from lrbench.cli import main
    from lrbench.tools import check_range_test_args

    args = check_range_test_args(1e-5, 1, np.int64(30), "linear")
    assert (args.start_lr, args.end_lr, args.num_iter, args.step_mode) == (1e-5, 1.0, 30, "linear")
    assert type(args.num_iter) is int and type(args.end_lr) is float
    with pytest.raises(ValueError, match="num_iter"):
        check_range_test_args(1e-5, 1.0, 1)
    argv = ["range-test", "digits", "--device", "cpu", "--start-lr", "1", "--end-lr", "0.1"]
    assert main(argv) == 2
    assert "range-test: need 0 < start_lr < end_lr" in capsys.readouterr().err
