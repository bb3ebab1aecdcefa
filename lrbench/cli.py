"""The `lrbench` command line. Each subcommand is a thin layer over the Python API."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from lrbench.errors import ConfigError, LrbenchError


def _key_values(words: Sequence[str] | None, what: str) -> dict[str, Any]:
    from lrbench.schedules import ScheduleSpec

    return ScheduleSpec.parse([what, *(words or [])]).options


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--data-root", help="folder holding the dataset (else $LRBENCH_DATA, then the system folders)")
    p.add_argument("--download", action="store_true", help="fetch the dataset through torchvision (needs internet)")
    p.add_argument("--train-subset", type=int, metavar="N", help="train on the first N training examples only")
    p.add_argument("--task-opt", nargs="+", metavar="KEY=VALUE", help="task options, e.g. width=8 hidden=256")


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.{digits}f}"


def cmd_list(args: argparse.Namespace) -> int:
    from lrbench.optimizers import OPTIMIZERS
    from lrbench.schedules import SCHEDULES
    from lrbench.strategies import STRATEGIES
    from lrbench.tasks import TASKS

    print("tasks:")
    for name, cls in TASKS.items():
        target = "set by the suite" if cls.default_target is None else cls.default_target
        print(f"  {name:14s} {cls.description} ({cls.direction} {cls.metric}, target {target})")
    print("strategies:")
    for name, doc in STRATEGIES.items():
        print(f"  {name:14s} {doc}")
    if not STRATEGIES:
        print("  (none yet)")
    print("optimizers:")
    for name, (cls, defaults) in OPTIMIZERS.items():
        extra = ", ".join(f"{k}={v}" for k, v in defaults.items())
        print(f"  {name:14s} torch.optim.{cls.__name__}{f' ({extra})' if extra else ''}")
    print("schedules:")
    for name, doc in SCHEDULES.items():
        print(f"  {name:22s} {doc}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lrbench.engine import TrainConfig, resolve_device, train
    from lrbench.schedules import ScheduleSpec
    from lrbench.tasks import DataOptions, get_task

    task = get_task(args.task, **_key_values(args.task_opt, "task"))
    device = resolve_device(args.device)
    config = TrainConfig.for_task(task, args.lr, epochs=args.epochs, optimizer=args.optimizer,
                                  schedule=ScheduleSpec.parse(args.schedule) if args.schedule else None,
                                  seed=args.seed)
    data = task.prepare(device, DataOptions(args.data_root, args.train_subset, args.download))
    bar = None if args.json else tqdm(total=config.epochs, desc=f"{task.name} lr={config.lr:g}", unit="epoch",
                                      file=sys.stderr, leave=False)

    def show(r) -> None:
        if bar is None:
            return
        bar.update(1)
        bar.write(f"epoch {r.epoch:3d}  train loss {_fmt(r.train_loss)}  val {task.metric} {_fmt(r.val)}  "
                  f"lr {r.lr:.3g}  {r.seconds:.2f}s (+{r.eval_seconds:.2f}s eval)")

    result = train(task, config, device=device, data=data, progress=show)
    if bar is not None:
        bar.close()
    if args.json:
        out = result.to_dict()
        out["device"] = str(device)
        print(json.dumps(out, allow_nan=True))
        return 0
    if result.diverged:
        print(f"diverged at epoch {len(result.history)} (lr {config.lr:g}); {result.epochs:g} epochs counted")
    if result.best_epoch is not None:
        print(f"best epoch {result.best_epoch}: val {task.metric} {_fmt(result.best_val)}; "
              f"test {task.metric} of that state {_fmt(result.test)} ({task.metric_unit})")
    print(f"{result.epochs:g} epochs, {result.steps} steps, {result.seconds:.1f}s training "
          f"+ {result.eval_seconds:.1f}s evaluation on {device}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrbench", description="Measure which way of choosing a learning rate "
                                     "reaches a target quality with the least training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list tasks, strategies, optimizers and schedules")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train one trial of a task at one learning rate")
    p.add_argument("task", help="task name (see `lrbench list`)")
    p.add_argument("--lr", type=float, required=True, help="learning rate (the peak for cyclic/one-cycle schedules)")
    p.add_argument("--epochs", type=int, help="epochs (default: the task's)")
    p.add_argument("--optimizer", help="optimizer name (default: the task's)")
    p.add_argument("--schedule", nargs="+", metavar="NAME [KEY=VALUE ...]", help="lr schedule and its options")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object (last line of stdout) instead")
    _add_data_args(p)
    p.set_defaults(func=cmd_train)

    from lrbench.bench import add_bench_parser
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LrbenchError as e:
        print(f"lrbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("lrbench: interrupted; everything already stored is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
