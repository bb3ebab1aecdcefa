"""Opening an Optuna RDB storage: SQLite (the default, a file) or PostgreSQL (many workers).

Every failure to open one is a `ConfigError` naming the URL and what to do: a folder that
cannot be created, a missing database driver, a server that does not answer (within
`CONNECT_TIMEOUT_S` seconds, not the driver's minutes).

SQLite and concurrent workers: Optuna claims an enqueued trial by reading its state and
setting it to RUNNING in one transaction, with a row lock (`SELECT ... FOR UPDATE`) that
PostgreSQL honours and SQLite ignores. So every SQLite transaction here begins with
`BEGIN IMMEDIATE`, which takes SQLite's write lock at once: two processes then cannot both
read a trial as waiting and both claim it. Writers wait their turn (up to `SQLITE_BUSY_S`).
SQLite files are kept in write-ahead-log mode (`<file>-wal` beside the file while it is open;
`close_storage` folds it back).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from lrbench.errors import ConfigError

RUNS_DIR = Path("runs")
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_S = 60
# A worker records a heartbeat on its claim every HEARTBEAT_S seconds; a claim not beaten for
# GRACE_S seconds is declared dead and retried by another worker.
HEARTBEAT_S = 20
GRACE_S = 90
POSTGRES_HINT = (
    "pip install 'lrbench[postgres]' (installs psycopg 3, which SQLAlchemy uses for "
    "postgresql:// and postgresql+psycopg:// URLs)"
)


def default_storage_url(suite: str) -> str:
    return f"sqlite:///{RUNS_DIR / (suite + '.db')}"


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = HEARTBEAT_S,
    grace_period: int = GRACE_S,
    retry_stale: bool = False,
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats; `retry_stale` re-enqueues a dead worker's trials
    (Optuna's `RetryFailedTrialCallback`), for the coordinating study of a suite's runs."""
    _quiet_optuna_warnings()
    kwargs: dict[str, Any] = {
        "heartbeat_interval": heartbeat_interval,
        "grace_period": grace_period,
        "engine_kwargs": _engine_kwargs(url),
    }
    if retry_stale:
        kwargs["heartbeat_stale_trial_callback"] = _retry_callback()
    try:
        storage = optuna.storages.RDBStorage(url, **kwargs)
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(
            f"storage {url!r}: the database driver is missing ({e}); {POSTGRES_HINT}"
        ) from None
    except Exception as e:  # SQLAlchemy's: a bad URL, a server that does not answer
        raise ConfigError(f"storage {url!r}: cannot open it: {_first_line(e)}") from None
    if storage.engine.name == "sqlite":
        _begin_immediate(storage.engine)
    return storage


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Close a storage's connections. For SQLite the last one to close folds the write-ahead
    log into the database file, so the `.db` file alone holds everything stored."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _retry_callback():
    """Optuna's callback that enqueues a copy of a trial failed for a stale heartbeat."""
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    return (cls or optuna.storages.RetryFailedTrialCallback)()


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        _make_sqlite_folder(url)
        # isolation_level=None: the driver emits no BEGIN of its own; _begin_immediate does.
        return {"connect_args": {"timeout": SQLITE_BUSY_S, "isolation_level": None}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def _make_sqlite_folder(url: str) -> None:
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = Path(url[len("sqlite:///") :])
    if path.is_dir():
        raise ConfigError(f"storage {url!r}: {path} is a folder; name a file, e.g. {path}/runs.db")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"storage {url!r}: cannot create the folder {path.parent}: {e.strerror}; "
            "give a --storage path in a writable folder"
        ) from None


def _begin_immediate(engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _journal(dbapi_conn, _record) -> None:
        # A write-ahead log, synced at checkpoints rather than at every commit: a trial stores
        # a few dozen small writes, and an fsync for each was a third of a quick digits run.
        # A killed process loses nothing committed; a power cut may lose the last commits.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # the connections Optuna opened to create its tables predate the hooks


def _quiet_optuna_warnings() -> None:
    # Heartbeats are the point here (a dead worker's claim is failed and retried); the warnings
    # that they are experimental, and meant for Study.optimize (claims and the fixed-rate
    # strategies use ask/tell), are noise.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings(
        "ignore", message="Heartbeat of storage is supposed to be used with Study.optimize"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
