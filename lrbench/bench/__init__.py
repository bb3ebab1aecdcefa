"""`lrbench bench`: benchmark commands that print ratios against a baseline run in the same
command (never timed tests)."""

from lrbench.bench._all import run_all
from lrbench.bench._engine import DATALOADER_TASKS, device_name, run_bench
from lrbench.bench._harness import format_harness, run_harness_bench
from lrbench.bench._population import HEADER as POPULATION_HEADER
from lrbench.bench._population import format_row as format_population_row
from lrbench.bench._population import run_population_bench

__all__ = [
    "DATALOADER_TASKS",
    "POPULATION_HEADER",
    "device_name",
    "format_harness",
    "format_population_row",
    "run_all",
    "run_bench",
    "run_harness_bench",
    "run_population_bench",
]
