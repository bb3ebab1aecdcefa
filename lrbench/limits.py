"""Bounds on numbers and names a user gives, far above any sensible value: a value past one is
a typo or a test of the tool, and refused with a message naming the bound, before it reaches
numpy, torch, Optuna or the file system (where it failed with a traceback, or ran for ever).
"""

from __future__ import annotations

import os

# Suite, task and strategy names become study names and file names (reports/<suite>/...).
MAX_NAME = 100
# Seeds go to numpy and Optuna's samplers, whose generators take 32-bit seeds.
MAX_SEED = 2**31 - 1
MAX_SEEDS = 10_000
MAX_EPOCHS = 1_000_000
# More than any dataset lrbench reads holds (CIFAR-10 and Fashion-MNIST: 60,000).
MAX_TRAIN_SUBSET = 100_000_000
# A strategy's count option (grid points, digits, steps ...) without a bound of its own.
MAX_COUNT = 10_000_000


def max_workers() -> int:
    """Worker processes on this machine: 4 per CPU core, at least 8 (each is a process with its
    own copy of the data and the model; more only queue for the cores)."""
    return max(8, 4 * (os.cpu_count() or 1))
