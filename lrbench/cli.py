"""The `lrbench` command line. Each subcommand is a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from lrbench import interrupts
from lrbench.errors import ConfigError, Interrupted, LrbenchError, out_of_memory
from lrbench.limits import MAX_EPOCHS, MAX_SEED, MAX_SEEDS, MAX_TRAIN_SUBSET, max_workers
from lrbench.report import fmt_fixed as _fmt
from lrbench.storage import GRACE_S, HEARTBEAT_S
from lrbench.tools import parse_key_values


def _check_rate(flag: str, value: float | None) -> None:
    """A learning rate on the command line: a positive, finite number (None: not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{flag} {value}: a learning rate must be positive and finite")


def _check_seed(flag: str, value: int) -> None:
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{flag} {value}: a seed is a whole number from 0 to {MAX_SEED}")


def _check_count(flag: str, value: int | None, maximum: int, minimum: int = 1) -> None:
    """A count on the command line (epochs, seeds, workers) within its bounds (None: not given)."""
    if value is not None and value < minimum:
        raise ConfigError(f"{flag} must be at least {minimum}, got {value}")
    if value is not None and value > maximum:
        raise ConfigError(f"{flag} {value}: must be at most {maximum}")


def _data_options(args: argparse.Namespace):
    """The data flags, checked: a training subset is positive and below any dataset's size."""
    from lrbench.tasks import DataOptions

    n = args.train_subset
    if n is not None and n < 1:
        raise ConfigError(f"--train-subset {n}: must be positive")
    if n is not None and n > MAX_TRAIN_SUBSET:
        raise ConfigError(
            f"--train-subset {n}: must be at most {MAX_TRAIN_SUBSET} (more than any dataset "
            "holds); drop it to train on every example"
        )
    return DataOptions(args.data_root, n, args.download)


def _check_plot_path(path: str | None) -> None:
    """Before any training: the figure's format is one matplotlib writes, into a folder that
    exists (a typo in it is not a folder to create)."""
    if path is None:
        return
    from pathlib import Path

    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(
            f"--plot {path}: the folder {folder} does not exist; create it first, or name a "
            "file in an existing folder"
        )
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in formats:
        raise ConfigError(
            f"--plot {path}: unknown figure format {suffix!r}; name a file ending in one of "
            + ", ".join(f".{f}" for f in sorted(formats))
        )


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument(
        "--data-root",
        help="folder holding the dataset (else $LRBENCH_DATA, then the system folders)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch the dataset through torchvision (needs internet)",
    )
    p.add_argument(
        "--train-subset", type=int, metavar="N", help="train on the first N training examples only"
    )
    p.add_argument(
        "--task-opt", nargs="+", metavar="KEY=VALUE", help="task options, e.g. width=8 hidden=256"
    )


def cmd_list(args: argparse.Namespace) -> int:
    from lrbench.strategies import STRATEGIES, strategies_by_group
    from lrbench.tasks import TASKS
    from lrbench.tools import OPTIMIZERS, SCHEDULES

    print("tasks:")
    for name, cls in TASKS.items():
        target = "set by the suite" if cls.default_target is None else cls.default_target
        print(f"  {name:14s} {cls.description} ({cls.direction} {cls.metric}, target {target})")
    print("strategies:")
    for group, names in strategies_by_group().items():
        print(f"  [{group}]")
        for name in names:
            print(f"  {name:18s} {STRATEGIES[name]}")
    print("optimizers:")
    for name, (cls, defaults) in OPTIMIZERS.items():
        extra = ", ".join(f"{k}={v}" for k, v in defaults.items())
        print(f"  {name:18s} {_qualified(cls)}{f' ({extra})' if extra else ''}")
    print("schedules:")
    for name, doc in SCHEDULES.items():
        print(f"  {name:22s} {doc}")
    return 0


def _qualified(cls: type) -> str:
    """`torch.optim.SGD`, `prodigyopt.Prodigy`: the class under its package's public name."""
    module = cls.__module__
    package = "torch.optim" if module.startswith("torch.optim") else module.split(".")[0]
    return f"{package}.{cls.__name__}"


def cmd_train(args: argparse.Namespace) -> int:
    from lrbench.tasks import get_task
    from lrbench.tools import ScheduleSpec
    from lrbench.training import TrainConfig, final_metrics, resolve_device, train

    task = get_task(args.task, **parse_key_values(args.task_opt, "task"))
    _check_rate("--lr", args.lr)
    _check_seed("--seed", args.seed)
    data_options = _data_options(args)
    device = resolve_device(args.device)
    config = TrainConfig.for_task(
        task,
        args.lr,
        epochs=args.epochs,
        optimizer=args.optimizer,
        schedule=ScheduleSpec.parse(args.schedule) if args.schedule else None,
        seed=args.seed,
        optimizer_reset=args.optimizer_reset,
    )
    _check_count("--epochs", config.epochs, MAX_EPOCHS)  # TrainConfig refused 0 and below
    data = task.prepare(device, data_options)
    with _EpochLines(task, config, quiet_bar=args.json) as show:
        result = train(task, config, device=device, data=data, progress=show, keep_best_state=True)
    final = {}
    if result.best_state is not None:
        final = final_metrics(task, data, result.best_state, device)
    if args.json:
        out = result.to_dict()
        out["device"] = str(device)
        out["final_metrics"] = final
        print(json.dumps(out, allow_nan=True))
    else:
        _print_train_result(task, config, result, final, device)
    return 0


class _EpochLines:
    """`lrbench train`'s line per epoch: under a progress bar, or on stderr alone with --json
    (stdout is then the JSON alone)."""

    def __init__(self, task, config, *, quiet_bar: bool) -> None:
        from tqdm import tqdm

        self.task = task
        self.bar = None
        if not quiet_bar:
            desc = f"{task.name} lr={config.lr:g}"
            self.bar = tqdm(
                total=config.epochs, desc=desc, unit="epoch", file=sys.stderr, leave=False
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, r) -> None:
        extras = "".join(f"  {k} {_fmt(v)}" for k, v in r.extras.items())
        line = (
            f"epoch {r.epoch:3d}  train loss {_fmt(r.train_loss)}  val {self.task.metric} "
            f"{_fmt(r.val)}{extras}  lr {r.lr:.3g}  {r.seconds:.2f}s (+{r.eval_seconds:.2f}s eval)"
        )
        if self.bar is None:
            print(line, file=sys.stderr, flush=True)
            return
        self.bar.update(1)
        self.bar.write(line)


def _print_train_result(task, config, result, final: dict[str, float], device) -> None:
    if result.diverged:
        print(
            f"diverged at epoch {len(result.history)} (lr {config.lr:g}); "
            f"{result.epochs:g} epochs counted"
        )
    if result.best_epoch is not None:
        print(
            f"best epoch {result.best_epoch}: val {task.metric} {_fmt(result.best_val)}; "
            f"test {task.metric} of that state {_fmt(result.test)} ({task.metric_unit})"
        )
        for name, value in final.items():
            print(f"  test {name} of that state {_fmt(value)}")
    print(
        f"{result.epochs:g} epochs, {result.steps} steps, {result.seconds:.1f}s training "
        f"+ {result.eval_seconds:.1f}s evaluation on {device}"
    )


def cmd_range_test(args: argparse.Namespace) -> int:
    from lrbench.tasks import get_task
    from lrbench.tools import check_range_test_args
    from lrbench.training import resolve_device, task_range_test

    task = get_task(args.task, **parse_key_values(args.task_opt, "task"))
    _check_plot_path(args.plot)
    _check_rate("--start-lr", args.start_lr)
    _check_rate("--end-lr", args.end_lr)
    _check_seed("--seed", args.seed)
    data_options = _data_options(args)
    try:  # the checks of lrbench.lr_range_test, before any data is loaded
        check_range_test_args(args.start_lr, args.end_lr, args.num_iter, args.step_mode)
    except ValueError as e:
        raise ConfigError(f"range-test: {str(e).removeprefix('lr_range_test: ')}") from None
    device = resolve_device(args.device)
    data = task.prepare(device, data_options)
    result = task_range_test(
        task,
        data,
        device=device,
        seed=args.seed,
        optimizer=args.optimizer,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_iter=args.num_iter,
        step_mode=args.step_mode,
    )
    if args.plot:
        result.plot(
            path=args.plot,
            title=f"LR range test: {task.name}, {args.optimizer or task.default_optimizer}",
        )
    if args.json:
        out = result.to_dict()
        out.update(
            task=task.name,
            optimizer=args.optimizer or task.default_optimizer,
            epochs=result.num_steps / data.steps_per_epoch,
        )
        print(json.dumps(out))
        return 0
    print(
        f"{task.name}: {result.num_steps} steps ({result.num_steps / data.steps_per_epoch:.2f} epochs), "
        f"lr {result.lrs[0]:.3g} -> {result.lrs[-1]:.3g}"
        f"{' (stopped early: diverged)' if result.stopped_early else ''}"
    )
    for rule, lr in result.suggestions.items():
        print(f"  {rule:11s} {lr:.3g}")
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    import optuna

    from lrbench.running import RunOptions, WorkerOptions, run_suite

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.num_workers is not None or args.worker_index is not None:
        raise ConfigError(
            "--num-workers/--worker-index are gone: workers now claim runs from the storage. "
            "Start `lrbench run SUITE --storage URL` the same way on every machine "
            "(with --workers N for N processes on one machine)"
        )
    for flag, value in (
        ("--heartbeat-interval", args.heartbeat_interval),
        ("--grace-period", args.grace_period),
    ):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1 second, got {value}")
    if args.workers > max_workers():
        raise ConfigError(
            f"--workers {args.workers}: must be at most {max_workers()} on this machine "
            "(4 per CPU core): each worker is a process with its own data and model, and more "
            "only queue for the cores"
        )
    url = run_suite(
        args.suite,
        storage=args.storage,
        workers=args.workers,
        only=args.only,
        options=RunOptions(device=args.device, population=args.population),
        worker_options=WorkerOptions(
            progress=not args.quiet,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
        ),
    )
    print(
        f"stored in {url}; report: lrbench report {args.suite}"
        + (f" --storage {args.storage}" if args.storage else "")
    )
    return 0


def _bench_task_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    # `cifar10.width=16` applies to one task, `width=16` to every task timed.
    opts: dict[str, dict[str, Any]] = {t: {} for t in args.tasks}
    for key, value in parse_key_values(args.task_opt, "task").items():
        task, _, option = key.rpartition(".")
        for t in [task] if task else args.tasks:
            opts.setdefault(t, {})[option] = value
    return opts


def cmd_bench_population(args: argparse.Namespace) -> int:
    import torch

    from lrbench.bench import POPULATION_HEADER, format_population_row, run_population_bench

    if not args.tasks:
        gpu = args.device != "cpu" and torch.cuda.is_available()
        args.tasks = ["fmnist_vae", "digits"] + (["cifar10"] if gpu else [])
    sizes = _sizes(args.sizes) if args.sizes else None
    from lrbench.bench import device_name
    from lrbench.training import resolve_device

    print(f"device: {device_name(resolve_device(args.device))}")
    print(POPULATION_HEADER, flush=True)
    rows = []
    for row in run_population_bench(
        args.tasks,
        device=args.device,
        epochs=args.epochs,
        train_subset=args.train_subset,
        data_root=args.data_root,
        task_options=_bench_task_options(args),
        sizes=sizes,
    ):
        print(format_population_row(row), flush=True)
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
    return 0


def cmd_bench_harness(args: argparse.Namespace) -> int:
    from lrbench.bench import format_harness, run_harness_bench

    if args.trials < 10:
        raise ConfigError(f"--trials must be at least 10, got {args.trials}")
    row = run_harness_bench(args.trials)
    print(format_harness(row), flush=True)
    if args.json:
        print(json.dumps(row))
    return 0


def cmd_bench_all(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lrbench.bench import run_all

    if not args.time_limit > 0:
        raise ConfigError(
            f"--time-limit must be a positive number of seconds, got {args.time_limit}"
        )
    out = Path(args.out or "reports/bench")
    run_all(
        out,
        device=args.device,
        time_limit=args.time_limit,
        tiny=args.tiny,
        data_root=args.data_root,
        echo=lambda line: print(line, flush=True),
    )
    print(f"wrote {out}/bench.md and one JSON file per section")
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    """`--sizes 1,4,16`: population sizes, whole numbers at least 1."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--sizes {text!r}: give whole numbers separated by commas, e.g. 1,4,16"
        ) from None
    if min(sizes) < 1:
        raise ConfigError(f"--sizes {text}: every population size must be at least 1")
    return sizes


def _check_bench_args(args: argparse.Namespace) -> None:
    _check_count("--epochs", args.epochs, MAX_EPOCHS)
    _check_count("--num-workers", args.num_workers, max_workers(), minimum=0)
    _data_options(args)


def _note_missing_baselines(tasks: list[str]) -> None:
    from lrbench.bench import DATALOADER_TASKS
    from lrbench.tasks import TASKS

    for name in tasks:
        if name in TASKS and name not in DATALOADER_TASKS:  # an unknown name is refused later
            print(
                f"lrbench: note: no DataLoader baseline for {name} (there is one for "
                f"{', '.join(DATALOADER_TASKS)}): timing the engine and the plain loop only",
                file=sys.stderr,
            )


def cmd_bench(args: argparse.Namespace) -> int:
    from lrbench.bench import run_bench

    _check_bench_args(args)
    if args.population:
        return cmd_bench_population(args)
    if args.harness:
        return cmd_bench_harness(args)
    if args.all:
        return cmd_bench_all(args)
    args.tasks = args.tasks or ["fmnist_vae", "cifar10"]
    _note_missing_baselines(args.tasks)
    opts = _bench_task_options(args)
    rows = run_bench(
        args.tasks,
        device=args.device,
        epochs=args.epochs,
        train_subset=args.train_subset,
        data_root=args.data_root,
        task_options=opts,
        num_workers=args.num_workers,
    )
    for r in rows:
        print(
            f"{r['task']:11s} {r['device_name']}: {r['train_examples']} training examples, "
            f"engine {r['engine_s_per_epoch']:.3f} s/epoch"
        )
        print(
            f"{'':11s} plain tensor loop {r['plain_loop_s_per_epoch']:.3f} s/epoch: "
            f"engine x{r['vs_plain_loop']:.2f} (its speed over the plain loop's)"
        )
        if r["dataloader_s_per_epoch"] is not None:
            print(
                f"{'':11s} DataLoader baseline {r['dataloader_s_per_epoch']:.3f} s/epoch: "
                f"engine x{r['speedup']:.2f}"
            )
    if args.json:
        print(json.dumps(rows))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lrbench.report import write_report

    _, paths = write_report(args.suite, storage=args.storage, out=args.out)
    for path in paths:
        print(f"wrote {path}")
    return 0


def add_run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run a suite (tasks x strategies x seeds) into an Optuna storage; resumable"
    )
    p.add_argument("suite", help="a suite TOML file, or the name of one under studies/")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/<suite>.db)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the storage")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--only", metavar="TASK/STRATEGY", help="run only these (either part may be *)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--heartbeat-interval",
        type=int,
        default=HEARTBEAT_S,
        metavar="S",
        help=f"seconds between a worker's heartbeats on its run (default {HEARTBEAT_S})",
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=GRACE_S,
        metavar="S",
        help="seconds without a heartbeat after which a worker's run is taken over by another "
        f"(default {GRACE_S})",
    )
    p.add_argument(
        "--population",
        type=_positive_int,
        metavar="K",
        help="train up to K trials at once as one population where a strategy can batch them "
        "(grid, random, TPE, significant-digit rounds, and up to K seeds of a strategy that "
        "trains one configuration); 1 disables; default: 1 on a CPU, 32 on a GPU",
    )
    # Retired: the static split of a suite between machines (an error says what replaced it).
    p.add_argument("--num-workers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the comparison report of a suite from its storage")
    p.add_argument(
        "suite", metavar="SUITE", help="suite name (the runs' study prefix), e.g. quick"
    )
    p.add_argument(
        "--storage", metavar="URL", help="Optuna storage URL (default sqlite:///runs/<suite>.db)"
    )
    p.add_argument("--out", metavar="DIR", help="output folder (default reports/<suite>/)")
    p.set_defaults(func=cmd_report)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from lrbench.calibrate import calibrate_command
    from lrbench.tools import ScheduleSpec

    _check_count("--epochs", args.epochs, MAX_EPOCHS)
    _check_count("--seeds", args.seeds, MAX_SEEDS)
    _check_seed("--first-seed", args.first_seed)
    _check_seed("--first-seed + --seeds - 1", args.first_seed + args.seeds - 1)
    _check_rate("--lr", args.lr)
    calibrate_command(
        args.target,
        task_label=args.task,
        n_seeds=args.seeds,
        first_seed=args.first_seed,
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=ScheduleSpec.parse(args.schedule) if args.schedule else None,
        device=args.device,
        write=args.write,
        data_options=_data_options(args),
        task_options=parse_key_values(args.task_opt, "task"),
    )
    return 0


def add_calibrate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="propose a task's target: the median best validation value of a reference "
        "configuration over several seeds",
    )
    p.add_argument(
        "target", metavar="SUITE|TASK", help="a suite (every task, or --task) or a task name"
    )
    p.add_argument("--task", metavar="LABEL", help="only this task label of the suite")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the reference (default 5)")
    p.add_argument(
        "--first-seed",
        type=int,
        default=1000,
        help="seeds K, K+1, ... (default 1000: not the suites' own seeds)",
    )
    p.add_argument("--epochs", type=int, help="epochs per seed (default: the suite's per trial)")
    p.add_argument("--lr", type=float, help="reference rate (default: the task's)")
    p.add_argument("--optimizer", help="reference optimizer (default: the task's)")
    p.add_argument(
        "--schedule", nargs="+", metavar="NAME [KEY=VALUE ...]", help="default: the task's"
    )
    p.add_argument(
        "--write", action="store_true", help="record the target and its procedure in the suite"
    )
    _add_data_args(p)
    p.set_defaults(func=cmd_calibrate)


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="time the engine's epochs against a plain DataLoader baseline"
    )
    p.add_argument(
        "tasks",
        nargs="*",
        help="tasks to time (default fmnist_vae and cifar10; with --population fmnist_vae, "
        "digits and, on a GPU, cifar10)",
    )
    p.add_argument(
        "--population",
        action="store_true",
        help="time populations of K trials against K sequential trials (trial-epochs per second)",
    )
    p.add_argument(
        "--harness",
        action="store_true",
        help="time a trial through lrbench's harness against plain study.optimize (per trial)",
    )
    p.add_argument("--trials", type=int, default=200, help="trials per side for --harness")
    p.add_argument(
        "--all",
        action="store_true",
        help="every figure of a GPU session in one command (engine, populations, cifar10 "
        "seeds, the significant-digit search), each written to --out as measured; --data-root "
        "then names CIFAR-10's folder",
    )
    p.add_argument(
        "--tiny", action="store_true", help="with --all: every section at a CPU's size (minutes)"
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=840.0,
        metavar="SECONDS",
        help="with --all: sections not started by then are left out (default 840)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="with --all: where to write (default reports/bench)"
    )
    p.add_argument("--sizes", metavar="K,K,...", help="population sizes (default 1,4,16,64)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per side; the first is a warm-up")
    p.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers for the baseline"
    )
    p.add_argument("--json", action="store_true", help="also print the rows as JSON")
    _add_data_args(p)
    p.set_defaults(func=cmd_bench)
    p.epilog = "Task options for one task only: --task-opt cifar10.width=16"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrbench",
        description="Measure which way of choosing a learning rate "
        "reaches a target quality with the least training.",
    )
    from lrbench import __version__

    parser.add_argument("--version", action="version", version=f"lrbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list tasks, strategies, optimizers and schedules")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train one trial of a task at one learning rate")
    p.add_argument("task", help="task name (see `lrbench list`)")
    p.add_argument(
        "--lr",
        type=float,
        help="learning rate, the peak for cyclic/one-cycle schedules (default: the task's)",
    )
    p.add_argument("--epochs", type=int, help="epochs (default: the task's)")
    p.add_argument("--optimizer", help="optimizer name (default: the task's)")
    p.add_argument(
        "--schedule",
        nargs="+",
        metavar="NAME [KEY=VALUE ...]",
        help="lr schedule and its options (default: the task's), e.g. `wsd decay=1-sqrt` or "
        "`seed002_cosine`; `lrbench list` shows them",
    )
    p.add_argument(  # checked by TrainConfig: the parser stays free of the training imports
        "--optimizer-reset",
        default="none",
        metavar="none|epoch",
        help="epoch: a fresh optimizer every epoch, as seed 002's cosine rows (default: none)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (last line of stdout) instead"
    )
    _add_data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "range-test", help="LR range test of a task: loss against a growing rate, with suggestions"
    )
    p.add_argument("task", help="task name (see `lrbench list`)")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--num-iter", type=int, default=100, help="optimizer steps")
    p.add_argument("--step-mode", choices=("exp", "linear"), default="exp")
    p.add_argument("--optimizer", help="optimizer name (default: the task's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--plot", metavar="FILE", help="save the curve with the suggestions marked (PNG)"
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object: lrs, losses, suggestions, ..."
    )
    _add_data_args(p)
    p.set_defaults(func=cmd_range_test)

    add_run_parser(sub)

    add_report_parser(sub)
    add_calibrate_parser(sub)

    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    interrupts.sigterm_as_interrupt()  # a scheduler's stop is handled like Ctrl-C
    try:
        return args.func(args)
    except Interrupted as e:
        print(f"lrbench: {e}", file=sys.stderr)
        return e.exit_code
    except LrbenchError as e:
        print(f"lrbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lrbench: interrupted; everything already stored is kept", file=sys.stderr)
        return interrupts.exit_code()
    except (RuntimeError, MemoryError) as e:  # torch's out-of-memory errors among them
        oom = out_of_memory(e)
        if oom is None:
            raise
        print(f"lrbench: error: {oom}", file=sys.stderr)
        return oom.exit_code


if __name__ == "__main__":
    sys.exit(main())
