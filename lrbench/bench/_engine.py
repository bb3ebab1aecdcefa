"""`lrbench bench`: epoch time of the engine against two baselines, in the same run.

The plain tensor loop is what a user writes for the same data on the device: the task's model,
optimizer and loss, batches sliced from the task's on-device training set, `zero_grad`,
`backward`, `step`, nothing else (no schedule, budget, divergence tracking, interrupt checks or
loss bookkeeping). The engine's ratio against it (`xR`: the engine's speed over the loop's) is
the cost, or the gain, of everything lrbench's training path adds. The DataLoader baseline is
what tutorials do: `torchvision.datasets` objects with `ToTensor` (and, for
CIFAR-10, `RandomCrop(32, padding)` + `RandomHorizontalFlip` + `Normalize`), a shuffling
`torch.utils.data.DataLoader`, `.to(device)` per batch and `loss.item()` per step. Both train
the same model class with the same optimizer and batch size on the same training examples;
only the data path and the loop differ. Times are training seconds per epoch, evaluation
excluded, taken after a warm-up epoch.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrbench.errors import ConfigError
from lrbench.tasks import DataOptions, Task, get_task, read_cifar10, read_fashion_mnist
from lrbench.tools import build_optimizer
from lrbench.training import TrainConfig, resolve_device, train

# Tasks with a tutorial-style torchvision DataLoader baseline (the others get the plain loop).
DATALOADER_TASKS = ("fmnist_vae", "cifar10")


def _fmnist_torchvision_dataset(data_root: str | None, tmp: Path, transform) -> Any:
    """torchvision's FashionMNIST over the same real files (decompressed into its raw/ layout)."""
    from torchvision import datasets

    arrays = read_fashion_mnist(data_root)  # validates the files and finds them
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (
        ("train", arrays.train_x, arrays.train_y),
        ("t10k", arrays.test_x, arrays.test_y),
    ):
        # IDX headers: magic, count, (rows, cols); big-endian int32.
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([2051, len(x), 28, 28], ">i4").tobytes() + x.astype(np.uint8).tobytes()
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([2049, len(y)], ">i4").tobytes() + y.astype(np.uint8).tobytes()
        )
    return datasets.FashionMNIST(str(tmp), train=True, transform=transform)


def _cifar_torchvision_dataset(data_root: str | None, tmp: Path, transform) -> Any:
    from torchvision import datasets

    read_cifar10(data_root)  # validates, and raises the clear not-found message
    from lrbench.tasks import search_roots

    root = next(
        r
        for r in search_roots(data_root, [Path.home() / ".cache/lrbench"])
        if (r / "cifar-10-batches-py" / "data_batch_1").exists()
    )

    class UncheckedCIFAR10(datasets.CIFAR10):
        # The local JPEG-derived copy lacks the official md5 sums; the reading code is torchvision's.
        def _check_integrity(self) -> bool:
            return True

        def _load_meta(self) -> None:
            from lrbench.tasks import CIFAR10_CLASSES

            self.classes = list(CIFAR10_CLASSES)
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return UncheckedCIFAR10(str(root), train=True, transform=transform)


def baseline_epoch_seconds(
    task: Task,
    lr: float,
    n_train: int,
    device: torch.device,
    epochs: int,
    data_root: str | None,
    num_workers: int,
) -> list[float]:
    """Train `task`'s model the tutorial way for `epochs` epochs; return seconds per epoch."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms as T

    with tempfile.TemporaryDirectory() as tmp:
        if task.name == "fmnist_vae":
            ds = _fmnist_torchvision_dataset(data_root, Path(tmp), T.ToTensor())
            to_batch = lambda x, y: (x.to(device).view(x.shape[0], -1), None)  # noqa: E731
        elif task.name == "cifar10":
            from lrbench.tasks.cifar10 import MEAN, STD

            tf = T.Compose(
                [
                    T.RandomCrop(32, padding=int(task.options["pad"]), padding_mode="reflect"),
                    T.RandomHorizontalFlip(),
                    T.ToTensor(),
                    T.Normalize(MEAN, STD),
                ]
            )
            ds = _cifar_torchvision_dataset(data_root, Path(tmp), tf)
            to_batch = lambda x, y: (x.to(device), y.to(device))  # noqa: E731
        else:
            raise ConfigError(
                f"lrbench bench: no DataLoader baseline for task {task.name!r} "
                f"(there is one for {', '.join(DATALOADER_TASKS)})"
            )
        # The same training examples the engine uses: the task's holdout split, first n_train.
        indices = task.holdout(len(ds))[0][:n_train]
        loader = DataLoader(
            Subset(ds, indices.tolist()),
            batch_size=task.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=num_workers,
        )
        torch.manual_seed(0)
        model = task.build_model().to(device)
        opt = build_optimizer(
            task.default_optimizer, model.parameters(), lr, **task.optimizer_kwargs
        )
        times = []
        for _ in range(epochs):
            model.train()
            t0 = time.perf_counter()
            running = 0.0
            for x, y in loader:
                loss = task.loss(model, to_batch(x, y))
                opt.zero_grad()
                loss.backward()
                opt.step()
                running += loss.item()  # the tutorial habit: a host sync every step
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return times


def plain_loop_epoch_seconds(
    task: Task, lr: float, device: torch.device, epochs: int, data_options: DataOptions
) -> list[float]:
    """Train `task`'s model with the plain tensor loop (module docstring) for `epochs` epochs;
    return seconds per epoch."""
    data = task.prepare(device, data_options)
    torch.manual_seed(0)
    model = task.prepare_model(task.build_model().to(device), device)
    opt = torch.optim.Adam(model.parameters(), lr) if task.default_optimizer == "adam" else None
    if opt is None:  # the task's own optimizer, as the user would build it
        opt = build_optimizer(
            task.default_optimizer, model.parameters(), lr, **task.optimizer_kwargs
        )
    generator = torch.Generator(device=device).manual_seed(0)
    times = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for batch in task.train_batches(data, generator):
            with task.autocast(device):
                loss = task.loss(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def engine_epoch_seconds(
    task: Task, lr: float, device: torch.device, epochs: int, data_options: DataOptions
) -> tuple[list[float], int]:
    data = task.prepare(device, data_options)
    config = TrainConfig.for_task(task, lr, epochs=epochs)
    result = train(task, config, device=device, data=data, evaluate_test=False)
    return [r.seconds for r in result.history], len(data.train)


def run_bench(
    tasks: list[str],
    *,
    device: str = "auto",
    epochs: int = 3,
    train_subset: int | None = None,
    data_root: str | None = None,
    task_options: dict[str, Any] | None = None,
    num_workers: int = 0,
) -> list[dict[str, Any]]:
    dev = resolve_device(device)
    rows = []
    for name in tasks:
        task = get_task(name, **(task_options or {}).get(name, {}))
        lr = task.default_lr
        data_options = DataOptions(data_root, train_subset)
        ours, n = engine_epoch_seconds(task, lr, dev, epochs, data_options)
        plain = plain_loop_epoch_seconds(task, lr, dev, epochs, data_options)
        base = (
            baseline_epoch_seconds(task, lr, n, dev, epochs, data_root, num_workers)
            if task.name in DATALOADER_TASKS
            else None
        )
        # Skip the first (warm-up) epoch when there is more than one.
        ours_s = statistics.median(ours[1:] or ours)
        plain_s = statistics.median(plain[1:] or plain)
        base_s = None if base is None else statistics.median(base[1:] or base)
        rows.append(
            {
                "task": name,
                "device": str(dev),
                "device_name": device_name(dev),
                "train_examples": n,
                "epochs_timed": max(1, epochs - 1),
                "engine_s_per_epoch": ours_s,
                "plain_loop_s_per_epoch": plain_s,
                "vs_plain_loop": plain_s / ours_s,
                "dataloader_s_per_epoch": base_s,
                "speedup": None if base_s is None else base_s / ours_s,
                "options": dict(task.options),
            }
        )
    return rows


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
