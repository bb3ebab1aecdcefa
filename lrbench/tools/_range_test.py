"""Learning-rate range test ("LR finder") for any PyTorch model.

Leslie Smith's range test, as popularised by fastai's ``lr_find`` and
``torch-lr-finder``: train for ``num_iter`` optimizer steps while the learning
rate grows from ``start_lr`` to ``end_lr``, record the loss after every step,
stop once the loss diverges, then put the model and optimizer back exactly as
they were and suggest learning rates read off the loss curve (see `lr_range_test` for an
example; `clr_bounds(result, rule="max/4")` gives CLR's bounds, `result.plot(path=...)` the
curve with every suggestion marked).

Learning-rate growth
    Done by real torch schedulers, stepped once after every optimizer step:

    * ``step_mode="exp"``: every param group's lr is set to ``start_lr``, then
      :class:`torch.optim.lr_scheduler.ExponentialLR` with
      ``gamma = (end_lr / start_lr) ** (1 / (num_iter - 1))`` gives
      ``lr_i = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))``.
    * ``step_mode="linear"``: every group's lr is set to ``end_lr``, then
      :class:`torch.optim.lr_scheduler.LinearLR` with
      ``start_factor = start_lr / end_lr``, ``end_factor = 1`` and
      ``total_iters = num_iter - 1`` gives
      ``lr_i = start_lr + (end_lr - start_lr) * i / (num_iter - 1)``.

    Both schedulers use their chained (multiplicative) form, so the recorded
    lrs match the closed forms above to rounding (about 1e-13 relative for
    a few hundred steps), not bit for bit.  All param groups get the same lr
    (per-group ratios are not kept); the test measures one global lr.

Suggestion rules
    See :func:`suggest_lrs`.  All rules read the *smoothed* loss curve (the
    finite prefix of it), so they inherit the lag of the moving average: with
    the default ``smooth_f=0.05`` the smoothed curve trails the raw one by
    roughly 20 steps, i.e. it places features at somewhat larger lrs than the
    raw curve would, as in fastai and torch-lr-finder.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "RangeTestArgs",
    "RangeTestResult",
    "SUGGESTION_KEYS",
    "check_range_test_args",
    "clr_bounds",
    "lr_range_test",
    "suggest_lrs",
]

#: Keys of :attr:`RangeTestResult.suggestions`, in plotting order.
SUGGESTION_KEYS = ("steepest", "minimum/10", "valley", "slide", "base_lr", "max_lr")

#: Fraction of the start-to-minimum drop used by the ``base_lr`` / ``max_lr`` rules.
CLR_DROP_FRACTION = 0.05

_CLR_RULES = ("smith", "max/3", "max/4")

#: fastai's ``slide`` defaults: the window's width in points (``lr_diff``) and how far apart
#: the loss gradients at its two ends may be for it to count as flat (``thresh``).
SLIDE_WINDOW = 15
SLIDE_THRESHOLD = 0.005


# --------------------------------------------------------------------------- #
# Result
# --------------------------------------------------------------------------- #
@dataclass
class RangeTestResult:
    """Outcome of :func:`lr_range_test`.

    ``lrs[i]``, ``losses[i]`` and ``raw_losses[i]`` describe step ``i``: the lr
    used by that optimizer step, the smoothed loss, and the raw loss (train
    loss of that step's batch, or mean validation loss after the step).  The
    diverging step, if any, is the last entry; its loss may be ``inf``/``nan``.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    num_steps: int
    stopped_early: bool
    start_lr: float
    end_lr: float
    step_mode: str
    suggestions: dict[str, float] = field(default_factory=dict)
    num_iter: int | None = None
    smooth_f: float | None = None
    diverge_th: float | None = None
    loss_source: str = "train"  # "train" or "val"

    def to_dict(self) -> dict[str, Any]:
        """Plain, strictly JSON-serialisable dict (non-finite losses become ``None``)."""
        d = dataclasses.asdict(self)
        for key in ("lrs", "losses", "raw_losses"):
            d[key] = [_json_float(v) for v in d[key]]
        d["suggestions"] = {k: _json_float(v) for k, v in d["suggestions"].items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeTestResult:
        """Inverse of :meth:`to_dict` (``None`` losses come back as ``nan``).

        A result stored before a suggestion rule existed gets that rule's suggestion from its
        stored curve; the suggestions it was stored with are kept as they are.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        for key in ("lrs", "losses", "raw_losses"):
            kwargs[key] = [math.nan if v is None else float(v) for v in kwargs.get(key, [])]
        kwargs["suggestions"] = {
            k: math.nan if v is None else float(v)
            for k, v in (kwargs.get("suggestions") or {}).items()
        }
        result = cls(**kwargs)
        if not set(SUGGESTION_KEYS) <= set(result.suggestions):
            computed = suggest_lrs(
                result.lrs,
                result.losses,
                result.start_lr,
                result.end_lr,
                step_mode=result.step_mode,
                num_iter=result.num_iter,
            )
            result.suggestions = {**computed, **result.suggestions}
        return result

    def plot(
        self,
        ax=None,
        path: str | os.PathLike | None = None,
        title: str | None = None,
        show_raw: bool = True,
    ):
        """Plot smoothed loss against lr (log x axis) with every suggestion marked.

        Draws into ``ax`` if given, else into a new stand-alone
        :class:`matplotlib.figure.Figure` on the non-interactive Agg canvas
        (no pyplot, no global backend change; display it with ``ax.figure``).
        Saves to ``path`` (PNG, SVG, ... by extension) when given.  The y axis is
        capped a little above the smoothed curve's level before its minimum so
        that a diverging tail does not flatten the interesting part (the lower
        end includes the raw curve's minimum).  Returns the Axes.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if ax is None:
            fig = Figure(figsize=(8, 5))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot(1, 1, 1)
        fig = ax.figure

        lrs = np.asarray(self.lrs, dtype=float)
        ys = np.asarray(self.losses, dtype=float)
        raw = np.asarray(self.raw_losses, dtype=float)
        n = _finite_prefix_len(ys)
        if show_raw and len(raw):
            ax.plot(lrs, raw, color="0.75", lw=0.8, label="raw loss")
        ax.plot(lrs[:n], ys[:n], color="C0", lw=2, label="smoothed loss")

        self._mark_suggestions(ax, lrs[:n], ys[:n])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(("validation" if self.loss_source == "val" else "training") + " loss")
        _cap_y_axis(ax, ys[:n], raw[:n] if show_raw else raw[:0])
        if title is None:
            title = f"LR range test ({self.step_mode}, {self.num_steps} steps"
            title += ", stopped at divergence)" if self.stopped_early else ")"
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        if path is not None:
            dirname = os.path.dirname(os.fspath(path))
            if dirname:
                os.makedirs(dirname, exist_ok=True)
            fig.savefig(path, dpi=110, bbox_inches="tight")
        return ax

    def _mark_suggestions(self, ax, lrs: np.ndarray, ys: np.ndarray) -> None:
        """A vertical line per suggestion, and a dot where it meets the (finite) curve."""
        n = len(ys)
        for key in SUGGESTION_KEYS:
            lr = self.suggestions.get(key)
            if lr is None or not math.isfinite(lr):
                continue
            color, style = _SUGGESTION_STYLES[key]
            ax.axvline(lr, color=color, ls=style, lw=1.3, label=f"{key} = {lr:.2e}")
            if n >= 1 and lrs[0] <= lr <= lrs[n - 1]:
                y_at = float(np.interp(math.log10(lr), np.log10(lrs), ys))
                ax.plot([lr], [y_at], "o", color=color, ms=6)


#: Colour and line style of each suggestion in :meth:`RangeTestResult.plot`.
_SUGGESTION_STYLES = {
    "steepest": ("C1", "-"),
    "minimum/10": ("C2", "--"),
    "valley": ("C3", "-."),
    "slide": ("C6", "--"),
    "base_lr": ("C4", ":"),
    "max_lr": ("C5", ":"),
}


def _cap_y_axis(ax, ys: np.ndarray, raw: np.ndarray) -> None:
    """Y limits from the smoothed curve's level before its minimum (a diverging tail would
    flatten the rest), down to the raw curve's minimum."""
    if len(ys) < 2:
        return
    m = int(np.argmin(ys))
    lo, hi = float(ys.min()), float(ys[: m + 1].max())
    raw_ok = raw[np.isfinite(raw)]
    if len(raw_ok):  # the raw curve leads the (lagging) smoothed one: keep its dip visible
        lo = min(lo, float(raw_ok.min()))
    span = hi - lo
    if span > 0:
        ax.set_ylim(lo - 0.1 * span, hi + 0.25 * span)


# --------------------------------------------------------------------------- #
# The range test
# --------------------------------------------------------------------------- #
def lr_range_test(  # long for its docstring only: the public API's reference
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable,
    criterion: Callable[[Any, Any], Tensor] | None = None,
    *,
    loss_fn: Callable[[nn.Module, Any], Tensor] | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    step_mode: str = "exp",
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
    val_batches: Iterable | None = None,
    restore: bool = True,
) -> RangeTestResult:
    """Run an lr range test and return the loss curve with lr suggestions.

    Args:
        model: any module; it is put in train mode for the steps.
        optimizer: an optimizer over (some of) the model's parameters.  Every
            param group gets the same lr at each step.  Optimizers whose
            ``step`` requires a closure (LBFGS) are not supported.
        batches: any iterable of batches; re-iterated from the start whenever
            it is exhausted, until ``num_iter`` steps are done.  A one-shot
            iterator (generator) must therefore yield at least ``num_iter``
            batches (or be infinite), else ``ValueError`` once it runs out.
        criterion: ``criterion(model(inputs), targets) -> loss`` with batches
            of ``(inputs, targets)``; both are moved to the model's device
            (tensors, and tensors nested in lists/tuples/dicts).
        loss_fn: ``loss_fn(model, batch) -> scalar loss``; the batch is passed
            through untouched.  Give exactly one of ``criterion``/``loss_fn``.
        start_lr, end_lr: lr range, ``0 < start_lr < end_lr``.
        num_iter: planned number of steps (>= 2).
        step_mode: ``"exp"`` (geometric growth) or ``"linear"``.
        smooth_f: weight of the newest loss in the bias-corrected exponential
            moving average (``beta = 1 - smooth_f``), ``0 < smooth_f <= 1``;
            ``1`` means no smoothing.
        diverge_th: stop once the smoothed loss exceeds ``diverge_th`` times
            the smallest smoothed loss so far (only while that minimum is
            positive) or is not finite.  ``> 1``; ``math.inf`` disables the
            ratio rule.
        val_batches: if given, the loss recorded after each step is the mean
            (unweighted, per batch) of the losses over all ``val_batches``,
            computed with the same criterion/loss_fn under ``torch.no_grad()``
            with the model in eval mode.  A one-shot iterator is read into a
            list once.
        restore: put back the model's ``state_dict``, the optimizer's
            ``state_dict`` (param groups, lrs, momentum buffers, Adam moments,
            step counts), the parameters' ``.grad`` and the optimizer object's
            attributes, also when the loop raises.  The train/eval mode of
            every submodule is put back in all cases.  With ``restore=False``
            the trained weights/optimizer state are kept and every group's lr is
            left where the schedule got to (the scheduler's ``initial_lr`` key
            and its wrapper on ``optimizer.step`` are removed either way).

    Returns:
        :class:`RangeTestResult`; ``num_steps`` counts the optimizer steps
        actually taken (every recorded point is one step, the diverging one
        included), for budget accounting.

    The test reads the loss back (one ``.item()``) every step, which the
    divergence check needs.  It consumes the global torch RNG (dropout,
    shuffling inside ``batches``) and does not restore it.

    Example, on scikit-learn's 8x8 digits with a small MLP and SGD:

    >>> import torch
    >>> from sklearn.datasets import load_digits
    >>> from lrbench import lr_range_test
    >>> x, y = load_digits(return_X_y=True)
    >>> x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
    >>> batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, len(x) - 63, 64)]
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(
    ...     torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    ... )
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> result = lr_range_test(model, optimizer, batches, torch.nn.CrossEntropyLoss(),
    ...                        start_lr=1e-4, end_lr=100.0, num_iter=200)
    >>> result.stopped_early, result.num_steps < 200     # the loss diverged on the way up
    (True, True)
    >>> all(1e-4 <= lr <= 100.0 for lr in result.suggestions.values())
    True
    >>> optimizer.param_groups[0]["lr"]                   # model and optimizer put back
    0.1
    """
    args = check_range_test_args(start_lr, end_lr, num_iter, step_mode, smooth_f, diverge_th)
    if not optimizer.param_groups:
        raise ValueError("lr_range_test: the optimizer has no param groups")
    compute_loss = _loss_function(model, criterion, loss_fn)
    val_batches = _checked_val_batches(val_batches)
    # The first batch is fetched before anything is touched, so that an empty iterable fails
    # with the model and optimizer untouched even when restore=False.
    stream = _cycle(batches)
    stream = itertools.chain([next(stream)], stream)
    with _state_kept(model, optimizer, restore):
        curve = _run_steps(model, optimizer, stream, compute_loss, val_batches, args)
    result = RangeTestResult(
        lrs=curve.lrs,
        losses=curve.smoothed,
        raw_losses=curve.raw,
        num_steps=len(curve.lrs),
        stopped_early=curve.stopped_early,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        step_mode=args.step_mode,
        num_iter=args.num_iter,
        smooth_f=args.smooth_f,
        diverge_th=args.diverge_th,
        loss_source="train" if val_batches is None else "val",
    )
    result.suggestions = suggest_lrs(
        curve.lrs,
        curve.smoothed,
        args.start_lr,
        args.end_lr,
        step_mode=args.step_mode,
        num_iter=args.num_iter,
    )
    return result


@dataclass(frozen=True)
class RangeTestArgs:
    """The checked, normalised numeric arguments of a range test."""

    start_lr: float
    end_lr: float
    num_iter: int
    step_mode: str = "exp"
    smooth_f: float = 0.05
    diverge_th: float = 5.0


def check_range_test_args(
    start_lr: float,
    end_lr: float,
    num_iter: int,
    step_mode: str = "exp",
    smooth_f: float = 0.05,
    diverge_th: float = 5.0,
) -> RangeTestArgs:
    """The arguments of :func:`lr_range_test`, checked; ``ValueError`` names the bad one.

    ``0 < start_lr < end_lr`` (finite), ``num_iter`` an int >= 2, ``step_mode`` ``"exp"`` or
    ``"linear"``, ``0 < smooth_f <= 1``, ``diverge_th > 1``.
    """
    start_lr, end_lr = float(start_lr), float(end_lr)
    if not (math.isfinite(start_lr) and math.isfinite(end_lr) and 0.0 < start_lr < end_lr):
        raise ValueError(
            f"lr_range_test: need 0 < start_lr < end_lr (finite), got start_lr={start_lr}, "
            f"end_lr={end_lr}"
        )
    if isinstance(num_iter, bool) or not isinstance(num_iter, (int, np.integer)) or num_iter < 2:
        raise ValueError(f"lr_range_test: num_iter must be an int >= 2, got {num_iter!r}")
    if step_mode not in ("exp", "linear"):
        raise ValueError(f"lr_range_test: step_mode must be 'exp' or 'linear', got {step_mode!r}")
    if not (0.0 < smooth_f <= 1.0):
        raise ValueError(f"lr_range_test: smooth_f must be in (0, 1], got {smooth_f}")
    if not diverge_th > 1.0:
        raise ValueError(
            f"lr_range_test: diverge_th must be > 1 (math.inf disables it), got {diverge_th}"
        )
    return RangeTestArgs(
        start_lr, end_lr, int(num_iter), step_mode, float(smooth_f), float(diverge_th)
    )


def _loss_function(
    model: nn.Module,
    criterion: Callable[[Any, Any], Tensor] | None,
    loss_fn: Callable[[nn.Module, Any], Tensor] | None,
) -> Callable[[Any], Tensor]:
    """``batch -> loss`` from exactly one of ``criterion`` and ``loss_fn``."""
    if (criterion is None) == (loss_fn is None):
        raise ValueError(
            "lr_range_test: give exactly one of `criterion` (with (inputs, targets) "
            "batches) or `loss_fn(model, batch)`"
        )
    if loss_fn is not None:
        return lambda batch: loss_fn(model, batch)
    device = _module_device(model)

    def compute_loss(batch):
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(
                "lr_range_test: with `criterion`, every batch must be an (inputs, targets) "
                f"pair; got {type(batch).__name__}. Use `loss_fn` for other batch layouts."
            )
        inputs, targets = batch
        return criterion(model(_to_device(inputs, device)), _to_device(targets, device))

    return compute_loss


def _checked_val_batches(val_batches: Iterable | None) -> Iterable | None:
    """A one-shot iterator read into a list once; an empty one is an error."""
    if val_batches is None:
        return None
    if iter(val_batches) is val_batches:
        val_batches = list(val_batches)
    if isinstance(val_batches, Sized) and len(val_batches) == 0:
        raise ValueError("lr_range_test: val_batches is empty")
    return val_batches


@contextlib.contextmanager
def _state_kept(model: nn.Module, optimizer: torch.optim.Optimizer, restore: bool):
    """Put back what a range test changes, also when it raises.

    Always: every submodule's train/eval mode, and the attributes the lr scheduler adds to
    the optimizer object. With ``restore``: the model's and optimizer's state and the grads
    (the global RNG is not restored). Without: only the scheduler's ``initial_lr`` keys go.
    """
    modes = [(m, m.training) for m in model.modules()]
    snapshot = _Snapshot(model, optimizer) if restore else None
    opt_attrs_before = set(vars(optimizer))
    groups_with_initial_lr = [("initial_lr" in g) for g in optimizer.param_groups]
    try:
        yield
    finally:
        if snapshot is not None:
            snapshot.restore()
        else:
            for g, had in zip(optimizer.param_groups, groups_with_initial_lr):
                if not had:
                    g.pop("initial_lr", None)
        # LRScheduler wraps optimizer.step on the instance and sets _opt_called.
        for name in set(vars(optimizer)) - opt_attrs_before:
            delattr(optimizer, name)
        for m, was_training in modes:
            m.training = was_training


@dataclass
class _Curve:
    lrs: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    stopped_early: bool = False


def _run_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    stream: Iterator,
    compute_loss: Callable[[Any], Tensor],
    val_batches: Iterable | None,
    args: RangeTestArgs,
) -> _Curve:
    """The range test's steps: one optimizer step per batch at a growing lr, the loss smoothed
    (bias-corrected moving average), stopped once it diverges."""
    curve = _Curve()
    beta = 1.0 - args.smooth_f
    avg, best = 0.0, math.inf
    scheduler = _make_scheduler(
        optimizer, args.start_lr, args.end_lr, args.num_iter, args.step_mode
    )
    for i, batch in zip(range(args.num_iter), stream):
        lr = float(optimizer.param_groups[0]["lr"])
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch)
        loss.backward()
        optimizer.step()
        value = (
            _val_loss(model, compute_loss, val_batches)
            if val_batches is not None
            else float(loss.detach())
        )
        avg = beta * avg + (1.0 - beta) * value
        smoothed = avg / (1.0 - beta ** (i + 1))
        curve.lrs.append(lr)
        curve.raw.append(value)
        curve.smoothed.append(smoothed)
        if not math.isfinite(smoothed):
            curve.stopped_early = True
            break
        best = min(best, smoothed)
        if best > 0 and smoothed > args.diverge_th * best:
            curve.stopped_early = True
            break
        if i < args.num_iter - 1:
            scheduler.step()
    return curve


def _make_scheduler(optimizer, start_lr, end_lr, num_iter, step_mode):
    if step_mode == "exp":
        for g in optimizer.param_groups:
            _set_group_lr(g, start_lr)
        gamma = (end_lr / start_lr) ** (1.0 / (num_iter - 1))
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    for g in optimizer.param_groups:
        _set_group_lr(g, end_lr)
    return torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=start_lr / end_lr, end_factor=1.0, total_iters=num_iter - 1
    )


def _set_group_lr(group, lr):
    if isinstance(group["lr"], Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def _val_loss(model, compute_loss, val_batches) -> float:
    model.eval()
    total, count = None, 0
    with torch.no_grad():
        for batch in val_batches:
            loss = compute_loss(batch).detach().float()
            total = loss if total is None else total + loss
            count += 1
    model.train()
    if total is None:
        raise ValueError("lr_range_test: val_batches yielded no batch")
    return float(total) / count


def _cycle(batches: Iterable) -> Iterator:
    """Yield from ``batches`` forever, re-iterating it when exhausted."""
    n_first = 0
    for b in batches:
        n_first += 1
        yield b
    if n_first == 0:
        raise ValueError("lr_range_test: `batches` yielded no batch")
    while True:
        got = False
        for b in batches:
            got = True
            yield b
        if not got:
            raise ValueError(
                f"lr_range_test: `batches` ran out after {n_first} batches and yields nothing when "
                "re-iterated (a one-shot iterator/generator). Pass a re-iterable (list, DataLoader) "
                "or an iterator with at least num_iter batches."
            )


def _module_device(model: nn.Module) -> torch.device:
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def _to_device(obj, device):
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, _to_device(v, device)) for k, v in obj.items())
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(_to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


class _Snapshot:
    """Deep copies of everything a range test changes, and how to put it back."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer
        self.model_state = copy.deepcopy(model.state_dict())
        self.opt_state = copy.deepcopy(optimizer.state_dict())
        params: dict[int, Tensor] = {}
        for p in itertools.chain(
            model.parameters(), (p for g in optimizer.param_groups for p in g["params"])
        ):
            params.setdefault(id(p), p)
        self.grads = [
            (p, None if p.grad is None else p.grad.detach().clone()) for p in params.values()
        ]

    def restore(self) -> None:
        self.model.load_state_dict(self.model_state)
        self.optimizer.load_state_dict(self.opt_state)
        for p, g in self.grads:
            p.grad = g


# --------------------------------------------------------------------------- #
# Suggestions
# --------------------------------------------------------------------------- #
def suggest_lrs(  # long for its docstring only: the rules' reference
    lrs,
    losses,
    start_lr: float,
    end_lr: float,
    *,
    step_mode: str = "exp",
    num_iter: int | None = None,
) -> dict[str, float]:
    """Suggested learning rates from a range-test curve.

    ``losses`` is the smoothed curve; only its finite prefix (up to the first
    ``nan``/``inf``) is used, ``n`` points.  ``skip_start = n // 10`` and
    ``skip_end = min(5, n // 10)`` points are ignored at the ends by
    ``steepest``, ``valley`` and ``slide`` (10 and 5 for a 100-point curve, as in
    torch-lr-finder and fastai; no trimming when fewer than 3 points would
    remain).  ``m`` is the index of the minimum smoothed loss.

    * ``"steepest"``: lr of the most negative ``np.gradient(loss, log10(lr))``
      among the trimmed points strictly before the minimum (so it is always
      below the lr of the minimum); if that window is empty, among all points
      before the minimum; if the minimum is the first point, ``start_lr``.
    * ``"minimum/10"``: ``lrs[m] / 10``.
    * ``"valley"``: fastai's rule on the trimmed curve: ``lds[i]`` = length of
      the longest strictly decreasing subsequence ending at ``i`` (O(n^2)
      DP); the valley ends at the first index reaching the overall longest
      and starts ``lds`` points earlier (with fastai's exact bookkeeping);
      the suggestion is at index ``start + int(L/3) + int(L/6)`` with
      ``L = end - start``, i.e. about the *middle* of the valley (fastai's
      docs say "2/3 through"; its code lands at ~1/2, reproduced here).  The
      index is clamped to the curve (fastai can wrap to -1 on tiny curves).
    * ``"slide"``: fastai's interval slide rule on the trimmed curve: with
      ``g = np.gradient(loss)`` (per point, not per lr), a window of
      ``SLIDE_WINDOW = 15`` points slides from the curve's right end to the
      left, one point at a time, until the gradients at its two ends differ by
      at most ``SLIDE_THRESHOLD = 0.005``; the suggestion is the lr at the left
      end of the last window whose ends still differed (the first window's left
      end if that one already agrees, the first point if none agrees), times
      fastai's ``adjust_value = 1``.  A curve too short for one window (at most
      15 points) gives its first point, where fastai raises an IndexError.
    * ``"base_lr"`` / ``"max_lr"`` (Smith's CLR bounds): ``start`` = median
      smoothed loss over the first ``max(1, skip_start)`` points, ``drop =
      start - loss[m]``.  ``base_lr`` = first lr (up to ``m``) whose loss is
      below ``start - 5% * drop`` (the loss has clearly started to fall);
      ``max_lr`` = first lr (from index 1 up to ``m``) whose loss is within
      ``5% * drop`` of the minimum (the fall has essentially stopped; earlier
      than the minimum itself, which sits where the loss is already turning).
      If the curve never drops below its start (``drop <= 0`` or ``m == 0``),
      ``base_lr = start_lr`` and ``max_lr = lrs[max(m, 1)]``.
      ``base_lr < max_lr`` is always enforced, moving ``base_lr`` to the grid
      point before ``max_lr`` if needed; where the curve has a single point,
      ``max_lr`` is the next lr the schedule would have used.

    Every value is clipped into ``[start_lr, end_lr]``; with no finite point
    at all every suggestion is ``start_lr`` except ``max_lr`` (next grid lr).
    """
    start_lr, end_lr = float(start_lr), float(end_lr)
    lrs_all = np.asarray(lrs, dtype=float)
    ys_all = np.asarray(losses, dtype=float)
    n = min(_finite_prefix_len(ys_all), len(lrs_all))
    x, y = lrs_all[:n], ys_all[:n]
    num_iter = num_iter if num_iter is not None else max(len(lrs_all), 2)

    def lr_at(i: int) -> float:
        """The lr of step ``i``, clipped into range (from the schedule past the curve's end)."""
        v = (
            lrs_all[i]
            if i < len(lrs_all)
            else _planned_lr(i, start_lr, end_lr, num_iter, step_mode)
        )
        return _clip(float(v), start_lr, end_lr)

    if n == 0:
        return {**{k: start_lr for k in SUGGESTION_KEYS}, "max_lr": lr_at(1)}
    skip_start, skip_end = _trim(n)
    m = int(np.argmin(y))
    base_lr, max_lr = _clr_bounds_from_curve(y, m, skip_start, lr_at, start_lr)
    return {
        "steepest": lr_at(_steepest_index(x, y, m, skip_start, skip_end)),
        "minimum/10": _clip(float(lrs_all[m]) / 10.0, start_lr, end_lr),
        "valley": lr_at(skip_start + _fastai_valley_index(y[skip_start : n - skip_end])),
        "slide": lr_at(skip_start + _fastai_slide_index(y[skip_start : n - skip_end])),
        "base_lr": base_lr,
        "max_lr": max_lr,
    }


def _clip(v: float, start_lr: float, end_lr: float) -> float:
    """``v`` clipped into ``[start_lr, end_lr]``; a non-finite value becomes ``start_lr``."""
    if not math.isfinite(v):
        return start_lr
    return float(min(max(v, start_lr), end_lr))


def _trim(n: int) -> tuple[int, int]:
    """Points ignored at the start and end of an ``n``-point curve (none when fewer than 3
    would remain)."""
    skip_start, skip_end = n // 10, min(5, n // 10)
    if n - skip_start - skip_end < 3:
        return 0, 0
    return skip_start, skip_end


def _steepest_index(x: np.ndarray, y: np.ndarray, m: int, skip_start: int, skip_end: int) -> int:
    """The ``steepest`` rule: the most negative slope against log10(lr) before the minimum."""
    n = len(y)
    if m == 0 or n < 2:
        return 0
    logx = np.log10(x)
    grad = np.gradient(y, logx) if np.all(np.diff(logx) > 0) else np.gradient(y)
    lo, hi = skip_start, min(n - skip_end, m)
    if hi <= lo:
        lo, hi = 0, m
    return lo + int(np.argmin(grad[lo:hi]))


def _clr_bounds_from_curve(
    y: np.ndarray, m: int, skip_start: int, lr_at: Callable[[int], float], start_lr: float
) -> tuple[float, float]:
    """Smith's CLR bounds: ``base_lr`` where the loss starts to fall, ``max_lr`` where it stops
    falling; always ``base_lr < max_lr``."""
    y_start = float(np.median(y[: max(1, skip_start)]))
    drop = y_start - float(y[m])
    if drop > 0 and m > 0:
        i_base = int(np.argmax(y[: m + 1] < y_start - CLR_DROP_FRACTION * drop))
        i_max = 1 + int(np.argmax(y[1 : m + 1] <= y[m] + CLR_DROP_FRACTION * drop))
    else:
        i_base, i_max = 0, max(m, 1)
    base_lr, max_lr = lr_at(i_base), lr_at(i_max)
    if not base_lr < max_lr:
        base_lr = lr_at(i_max - 1)
    if not base_lr < max_lr:  # only when lr grid points coincide after clipping
        base_lr, max_lr = start_lr, max(max_lr, lr_at(1))
    return base_lr, max_lr


def _fastai_valley_index(losses: np.ndarray) -> int:
    """Index chosen by fastai's ``valley`` suggester (see :func:`suggest_lrs`)."""
    n = len(losses)
    if n == 0:
        return 0
    lds = np.ones(n, dtype=np.int64)
    max_start, max_end = 0, 0
    for i in range(1, n):
        # lds[i] grows, j = 0..i-1, to lds[j] + 1 whenever losses[i] < losses[j];
        # fastai moves max_end to i the first time lds[i] exceeds lds[max_end] and
        # sets max_start from lds[i] *at that moment*.
        cand = np.where(losses[:i] > losses[i], lds[:i] + 1, 1)
        running = np.maximum.accumulate(cand)
        lds[i] = running[-1]
        if lds[i] > lds[max_end]:
            first = int(np.argmax(running > lds[max_end]))
            max_end = i
            max_start = max_end - int(running[first])
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return int(min(max(idx, 0), n - 1))


def _fastai_slide_index(losses: np.ndarray) -> int:
    """Index chosen by fastai's ``slide`` suggester (see :func:`suggest_lrs`)."""
    n = len(losses)
    if n <= SLIDE_WINDOW:
        return 0
    grad = np.gradient(losses)
    right = np.arange(n - 1, SLIDE_WINDOW - 1, -1)  # the windows' right ends, right to left
    differs = np.abs(grad[right] - grad[right - SLIDE_WINDOW]) > SLIDE_THRESHOLD
    if differs.all():
        return 0
    first_flat = int(np.argmin(differs))
    return int(right[max(first_flat - 1, 0)]) - SLIDE_WINDOW


def _planned_lr(i: int, start_lr: float, end_lr: float, num_iter: int, step_mode: str) -> float:
    """Closed-form lr of step ``i`` (only used to fill in a missing grid point)."""
    t = i / max(num_iter - 1, 1)
    if step_mode == "linear":
        return start_lr + (end_lr - start_lr) * t
    return start_lr * (end_lr / start_lr) ** t


def clr_bounds(result: RangeTestResult, rule: str = "smith") -> tuple[float, float]:
    """``(base_lr, max_lr)`` for a cyclical / one-cycle schedule.

    * ``"smith"``: the ``base_lr`` and ``max_lr`` suggestions (see :func:`suggest_lrs`);
    * ``"max/3"`` / ``"max/4"``: ``max_lr`` as above and ``base_lr = max_lr / 3``
      (``/ 4``), raised to ``start_lr`` if it would fall below it.

    Always ``start_lr <= base_lr < max_lr <= end_lr``.
    """
    if rule not in _CLR_RULES:
        raise ValueError(f"clr_bounds: rule must be one of {_CLR_RULES}, got {rule!r}")
    s = result.suggestions
    max_lr = float(s["max_lr"])
    if rule == "smith":
        return float(s["base_lr"]), max_lr
    divisor = 3.0 if rule == "max/3" else 4.0
    return max(max_lr / divisor, float(result.start_lr)), max_lr


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _finite_prefix_len(a: np.ndarray) -> int:
    bad = np.flatnonzero(~np.isfinite(a))
    return int(bad[0]) if len(bad) else len(a)


def _json_float(v):
    v = float(v)
    return v if math.isfinite(v) else None
