"""Where everything is kept: an Optuna RDB storage (an SQLite file by default, PostgreSQL for
many machines), opened with clear errors, and `records`, the schema of what a run, a trial
and a claim store there and how it is read back; `WriteBehindStorage`, a run's study in memory
written through to it trial by trial.
"""

from lrbench.storage import records
from lrbench.storage._open import (
    CONNECT_TIMEOUT_S,
    GRACE_S,
    HEARTBEAT_S,
    RUNS_DIR,
    SQLITE_BUSY_S,
    close_storage,
    default_storage_url,
    open_storage,
)
from lrbench.storage._write_behind import WriteBehindStorage

__all__ = [
    "CONNECT_TIMEOUT_S",
    "GRACE_S",
    "HEARTBEAT_S",
    "RUNS_DIR",
    "SQLITE_BUSY_S",
    "WriteBehindStorage",
    "close_storage",
    "default_storage_url",
    "open_storage",
    "records",
]
