"""`lrbench bench --population`: trial-epochs per second of populations of K trials against the
same trials trained one after another, in the same run.

For each task and each K (1, 4, 16, 64, ... while memory allows) K configurations (distinct
rates and seeds) train as one population, once with each member's own torch optimizer
(bit-identical to lone trials on one CPU thread) and once with the stacked optimizer step
(`lrbench.stacking._stacked_step`); the baseline trains such configurations one at a
time with the single-trial engine. Rates are training epochs only (evaluation excluded), the
first epoch of each side is a warm-up. On a GPU the table adds the achieved fraction of the
device's peak float32 rate (the FLOPs of a training step, as torch's `FlopCounterMode`
counts them, times the steps of an epoch) and the peak memory of the population.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lrbench.tasks import DataOptions, Task, get_task
from lrbench.training import TrainConfig, resolve_device, train, train_trials

SIZES = (1, 4, 16, 64)
GPU_SIZES = SIZES + (128, 256, 512)
# Dense float32 peak FLOP rates (no tensor cores), by a substring of the device's name.
PEAK_FP32 = {"H100": 67e12, "H200": 67e12, "A100": 19.5e12, "L4": 30.3e12, "A10": 31.2e12}


def training_flops_per_step(task: Task, data, device: torch.device) -> float:
    """FLOPs of one training step (forward and backward) of a lone model, as torch's
    `FlopCounterMode` counts them (matrix products and convolutions) on the first real batch."""
    torch.manual_seed(0)
    model = task.prepare_model(task.build_model().to(device), device)
    batch = next(iter(task.train_batches(data, torch.Generator(device=device).manual_seed(0))))
    with FlopCounterMode(display=False) as counter:
        with task.autocast(device):
            loss = task.loss(model, batch)
        loss.backward()
    return float(counter.get_total_flops())


def _rates(
    task: Task, k: int, data, device: torch.device, epochs: int, stacked_step: bool
) -> tuple[float, float]:
    """(population trial-epochs/s, peak bytes) for a population of `k`."""
    lrs = [task.default_lr * (0.5 + i / max(1, k - 1)) for i in range(k)]
    configs = [TrainConfig.for_task(task, lr, epochs=epochs, seed=i) for i, lr in enumerate(lrs)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    results = train_trials(task, configs, device=device, data=data, stacked_step=stacked_step)
    members = [r for r in results if len(r.history) == epochs]  # survivors (none diverged)
    epoch_s = [sum(r.history[e].seconds for r in results) for e in range(1, epochs)]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    if not members:
        return float("nan"), peak
    return k / statistics.median(epoch_s), peak


def _sequential_rate(task: Task, data, device: torch.device, epochs: int, trials: int) -> float:
    """Trial-epochs/s of trials trained one at a time (median over trials and epochs)."""
    seconds = []
    for i in range(trials):
        config = TrainConfig.for_task(task, task.default_lr, epochs=epochs, seed=i)
        result = train(task, config, device=device, data=data, evaluate_test=False)
        seconds += [r.seconds for r in result.history[1:]]
    return 1.0 / statistics.median(seconds)


def bench_task(
    task: Task, device: torch.device, data_options: DataOptions, epochs: int, sizes
) -> Iterator[dict[str, Any]]:
    """One row per population size and optimizer step, as each is measured."""
    if task.population_form is None:
        yield {"task": task.name, "k": None, "note": "no population support"}
        return
    data = task.prepare(device, data_options)
    seq = _sequential_rate(task, data, device, epochs, trials=2)
    flops_epoch = training_flops_per_step(task, data, device) * data.steps_per_epoch
    peak = _peak_flops(device)
    for k, stacked in ((k, s) for k in sizes for s in (False, True)):
        try:
            rate, mem = _rates(task, k, data, device, epochs, stacked)
        except torch.OutOfMemoryError:
            yield {"task": task.name, "k": k, "note": "out of memory"}
            return
        yield (
            {
                "task": task.name,
                "k": k,
                "step": "stacked" if stacked else "per-member",
                "train_examples": len(data.train),
                "population_trial_epochs_per_s": rate,
                "sequential_trial_epochs_per_s": seq,
                "ratio": rate / seq,
                "flop_fraction": rate * flops_epoch / peak if peak else None,
                "peak_memory_mb": mem / 2**20 if mem else None,
            }
        )


def run_population_bench(
    tasks: list[str],
    *,
    device: str = "auto",
    epochs: int = 3,
    train_subset: int | None = None,
    data_root: str | None = None,
    task_options: dict[str, Any] | None = None,
    sizes: tuple[int, ...] | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of every task, as each is measured."""
    dev = resolve_device(device)
    sizes = sizes or (GPU_SIZES if dev.type == "cuda" else SIZES)
    for name in tasks:
        task = get_task(name, **(task_options or {}).get(name, {}))
        yield from bench_task(
            task, dev, DataOptions(data_root, train_subset), max(2, epochs), sizes
        )


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FP32.items() if k in name), None)


HEADER = "task          K  optimizer step  trial-epochs/s  sequential  ratio  peak-FLOP  peak-MB"


def format_row(r: dict[str, Any]) -> str:
    if r.get("note"):
        return f"{r['task']:11s} {r['k'] or '-':>3}  {r['note']}"
    frac = "-" if r["flop_fraction"] is None else f"{100 * r['flop_fraction']:.1f}%"
    mem = "-" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.0f}"
    return (
        f"{r['task']:11s} {r['k']:>3}  {r['step']:>14s}  "
        f"{r['population_trial_epochs_per_s']:14.2f}  {r['sequential_trial_epochs_per_s']:10.2f}  "
        f"{r['ratio']:5.2f}  {frac:>9}  {mem:>7}"
    )
