"""A worker's progress counts the epochs charged to the run(s) it drives, also when a
population's members interleave their epochs (each member's record counts once)."""

from __future__ import annotations

from lrbench.running._progress import WorkerProgress
from lrbench.training import EpochRecord


def record(epoch: int, done: float) -> EpochRecord:
    return EpochRecord(epoch, 0.0, 0.5, 0.1, int(done * 10), done, 0.0, 0.0)


def test_interleaved_members_count_their_own_epochs():
    bar = WorkerProgress(enabled=False, position=1, name="worker")
    bar.start("suite/task/fixed/seeds 0,1,2", budget=9.0, spent=1.5)
    for epoch in (1, 2, 3):
        for member in ("a#0", "b#0", "c#0"):
            bar.epoch(record(epoch, float(epoch)), member)
    assert bar.done == 1.5 + 9.0


def test_trials_one_after_another_add_up_with_a_cut_last_epoch():
    bar = WorkerProgress(enabled=False, position=1, name="worker")
    bar.start("suite/task/tpe/seed0", budget=5.0, spent=0.0)
    for epoch in (1, 2):
        bar.epoch(record(epoch, float(epoch)), "run#0")
    bar.epoch(record(1, 1.0), "run#1")
    bar.epoch(record(2, 1.5), "run#1")  # cut at the budget mid-epoch
    assert bar.done == 3.5
