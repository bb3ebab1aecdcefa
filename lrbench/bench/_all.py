"""`lrbench bench --all`: every figure the GPU runs are for, from one command, within a time cap.

Sections, in order (each one's figures are written to `<out>/<section>.json` and appended to
`<out>/bench.md` as soon as it is measured, so a run cut short keeps what it measured):

- `engine`: the engine's epoch against a plain tensor loop and the DataLoader tutorial loop
  (`lrbench bench`), for the VAE and cifar10;
- `population`: trial-epochs per second of populations of K trials against K sequential ones,
  with peak memory and the fraction of the device's peak FLOP rate (`lrbench bench
  --population`);
- `cifar10`: `lrbench train cifar10` at its defaults for several seeds on full data (test
  accuracy, training seconds without evaluation);
- `sigdigit`: the seed's significant-digit search on the homework VAE (k = 2, D = 3, E = 50)
  as far as the time left allows.

A section is skipped with the reason (a dataset not found) or left out once the time limit has
passed ("not reached"); the command never fails for a figure it could not measure. `tiny`
runs every section, on the same code paths, at a size a CPU does in minutes (a few hundred
images, one or two epochs, K = 1 and 2): a test runs it, so that no code path meets a GPU for
the first time when device time is scarce.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lrbench.errors import DataNotFoundError
from lrbench.tasks import DataOptions, get_task
from lrbench.training import TrainConfig, resolve_device, train


@dataclass(frozen=True)
class Plan:
    """The sizes of every section."""

    engine_tasks: tuple[str, ...] = ("fmnist_vae", "cifar10")
    engine_epochs: int = 4
    population_tasks: tuple[str, ...] = ("fmnist_vae", "cifar10")
    population_sizes: tuple[int, ...] | None = None  # None: the bench's own (K = 1 ... 512)
    population_epochs: int = 3
    train_subset: int | None = None  # None: the full training split
    cifar_seeds: int = 5
    cifar_epochs: int | None = None  # None: the task's default
    sigdigit_epochs: int = 50
    sigdigit_k: int = 2
    sigdigit_digits: int = 3
    # Task options by task (tiny: a CIFAR-10 batch that a few hundred images fill).
    task_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def options(self, task: str) -> dict[str, Any]:
        return dict(dict(self.task_options).get(task, ()))

    def options_by_task(self) -> dict[str, dict[str, Any]]:
        return {task: dict(opts) for task, opts in self.task_options}


FULL = Plan()
TINY = Plan(
    engine_tasks=("fmnist_vae", "cifar10"),
    engine_epochs=2,
    population_tasks=("fmnist_vae", "digits"),
    population_sizes=(1, 2),
    population_epochs=2,
    train_subset=256,
    cifar_seeds=1,
    cifar_epochs=1,
    sigdigit_epochs=1,
    sigdigit_k=1,
    sigdigit_digits=1,
    task_options=(("cifar10", (("batch_size", 64),)),),
)


def run_all(
    out: Path,
    *,
    device: str = "auto",
    time_limit: float = 840.0,
    tiny: bool = False,
    data_root: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every section in order, each written as measured; the list of sections' results."""
    plan = TINY if tiny else FULL
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + time_limit
    md = out / "bench.md"
    dev = resolve_device(device)
    md.write_text(f"# lrbench bench --all ({'tiny' if tiny else 'full'}, device {dev})\n\n")
    results = []
    for name, section in SECTIONS.items():
        started = time.monotonic()
        if started >= deadline:
            result: dict[str, Any] = {"status": "not reached: the time limit had passed"}
        else:
            try:
                result = {"status": "measured", **section(plan, device, data_root, deadline)}
            except DataNotFoundError as e:
                result = {"status": f"skipped: {e}"}
        result = {"section": name, "seconds": time.monotonic() - started, **result}
        (out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        with md.open("a") as f:
            f.write(_markdown(result))
        echo(f"{name}: {result['status']} ({result['seconds']:.0f} s)")
        results.append(result)
    return results


def _root(task: str, data_root: str | None) -> str | None:
    """`--data-root` names CIFAR-10's folder; the other datasets are found where they always are
    (Debian's Fashion-MNIST, $LRBENCH_DATA, the cache)."""
    return data_root if task == "cifar10" else None


def _engine(plan: Plan, device: str, data_root: str | None, deadline: float) -> dict[str, Any]:
    from lrbench.bench._engine import run_bench

    rows = []
    for task in plan.engine_tasks:  # one at a time: a missing dataset skips that task only
        try:
            rows += run_bench(
                [task],
                device=device,
                epochs=plan.engine_epochs,
                train_subset=plan.train_subset,
                data_root=_root(task, data_root),
                task_options=plan.options_by_task(),
            )
        except DataNotFoundError as e:
            rows.append({"task": task, "note": f"skipped: {e}"})
    return {"rows": rows}


def _population(plan: Plan, device: str, data_root: str | None, deadline: float) -> dict[str, Any]:
    from lrbench.bench._population import run_population_bench

    rows = []
    for task in plan.population_tasks:
        if time.monotonic() >= deadline:
            rows.append({"task": task, "note": "not reached: the time limit had passed"})
            continue
        try:
            rows += list(
                run_population_bench(
                    [task],
                    device=device,
                    epochs=plan.population_epochs,
                    train_subset=plan.train_subset,
                    data_root=_root(task, data_root),
                    task_options=plan.options_by_task(),
                    sizes=plan.population_sizes,
                )
            )
        except DataNotFoundError as e:
            rows.append({"task": task, "note": f"skipped: {e}"})
    return {"rows": rows}


def _cifar10(plan: Plan, device: str, data_root: str | None, deadline: float) -> dict[str, Any]:
    task = get_task("cifar10", **plan.options("cifar10"))
    data = task.prepare(resolve_device(device), DataOptions(data_root, plan.train_subset))
    runs: list[dict[str, Any]] = []
    for seed in range(plan.cifar_seeds):
        if time.monotonic() >= deadline:
            break
        config = TrainConfig.for_task(task, epochs=plan.cifar_epochs, seed=seed)
        r = train(task, config, device=device, data=data)
        runs.append(
            {
                "seed": seed,
                "test_accuracy": r.test,
                "training_seconds": r.seconds,
                "evaluation_seconds": r.eval_seconds,
                "epochs": r.epochs,
            }
        )
    accuracies = [float(r["test_accuracy"]) for r in runs if r["test_accuracy"] is not None]
    seconds = [float(r["training_seconds"]) for r in runs]
    return {
        "runs": runs,
        "seeds_measured": len(runs),
        "median_test_accuracy": statistics.median(accuracies) if accuracies else None,
        "median_training_seconds": statistics.median(seconds) if seconds else None,
    }


def _sigdigit(plan: Plan, device: str, data_root: str | None, deadline: float) -> dict[str, Any]:
    import optuna

    from lrbench.tools import SignificantDigitSampler

    task = get_task("fmnist_vae", **plan.options("fmnist_vae"))
    data = task.prepare(resolve_device(device), DataOptions(None, plan.train_subset))
    sampler = SignificantDigitSampler(k=plan.sigdigit_k, digits=plan.sigdigit_digits)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        config = TrainConfig.for_task(task, lr, epochs=plan.sigdigit_epochs, seed=0)
        r = train(task, config, device=device, data=data, evaluate_test=False)
        return float("inf") if r.best_val is None else r.best_val

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
    try:
        study = optuna.create_study(sampler=sampler)
        started = time.monotonic()
        study.optimize(objective, timeout=max(1.0, deadline - time.monotonic()))
    finally:
        optuna.logging.set_verbosity(verbosity)
    done = [t for t in study.trials if t.value is not None]
    return {
        "trials": len(done),
        "epochs_trained": len(done) * plan.sigdigit_epochs,
        "seconds": time.monotonic() - started,
        "search_complete": sampler.is_exhausted(study),
        "best_rate": sampler.best_rate(study),
        "plan": asdict(plan),
    }


SECTIONS: dict[str, Callable[[Plan, str, str | None, float], dict[str, Any]]] = {
    "engine": _engine,
    "population": _population,
    "cifar10": _cifar10,
    "sigdigit": _sigdigit,
}


def _markdown(result: dict[str, Any]) -> str:
    lines = [f"## {result['section']}", "", f"{result['status']}; {result['seconds']:.1f} s", ""]
    body = {k: v for k, v in result.items() if k not in ("section", "status", "seconds")}
    if body:
        lines += ["```json", json.dumps(body, indent=2, default=str), "```", ""]
    return "\n".join(lines) + "\n"
