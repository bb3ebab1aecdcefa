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

An SQLite file is inspected before Optuna opens it (`check_sqlite_file`): Optuna writes its
schema into any file it is given, so a file that is not SQLite, another application's
database or a damaged one is refused, and nothing is created for a command that only reads.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import optuna

from lrbench.errors import ConfigError

RUNS_DIR = Path("runs")
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_S = 60
# A worker records a heartbeat on its claim every HEARTBEAT_S seconds; a claim not beaten for
# GRACE_S seconds is declared dead and retried by another worker.
HEARTBEAT_S = 20
GRACE_S = 90
# Tables Optuna's RDB storage always has: a file with other tables and not these is not ours.
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
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
    create: bool = True,
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats; `retry_stale` re-enqueues a dead worker's trials
    (Optuna's `RetryFailedTrialCallback`), for the coordinating study of a suite's runs.
    `create=False` (a command that only reads, such as `report`) refuses a storage that holds
    no runs instead of creating one."""
    check_sqlite_file(url, create=create)
    _quiet_optuna_warnings()
    kwargs: dict[str, Any] = {
        "heartbeat_interval": heartbeat_interval,
        "grace_period": grace_period,
        "engine_kwargs": _engine_kwargs(url),
    }
    if retry_stale:
        kwargs["heartbeat_stale_trial_callback"] = _retry_callback()
    try:
        storage = _rdb_storage(url, kwargs)
    except (ImportError, ModuleNotFoundError) as e:
        raise ConfigError(
            f"storage {url!r}: the database driver is missing ({e}); {POSTGRES_HINT}"
        ) from None
    except Exception as e:  # SQLAlchemy's: a bad URL, a server that does not answer
        raise ConfigError(f"storage {url!r}: cannot open it: {_first_line(e)}") from None
    if storage.engine.name == "sqlite":
        _begin_immediate(storage.engine)
    return storage


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage. Two processes that open a new database at once both create Optuna's
    tables; the slower one's inserts collide with the faster one's (a UNIQUE constraint, or a
    table that already exists), and opening again finds the tables made."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(3):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except (IntegrityError, OperationalError) as e:
            raced = isinstance(e, IntegrityError) or "already exists" in str(e)
            if not raced or attempt == 2:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


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
        # isolation_level=None: the driver emits no BEGIN of its own; _begin_immediate does.
        return {"connect_args": {"timeout": SQLITE_BUSY_S, "isolation_level": None}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {}


def check_sqlite_file(url: str, *, create: bool) -> None:
    """Before Optuna opens (and writes into) an SQLite URL's file: refuse a folder, a file that
    is not SQLite, a damaged one, or another application's database; a missing file is
    created only when `create` (in an existing folder, or the default runs/), and with
    `create=False` a file without Optuna's tables is refused as holding no runs."""
    path = _sqlite_path(url)
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"storage {url!r}: {path} is a folder; name a file, e.g. {path}/runs.db")
    if not path.exists():
        if not create:
            raise ConfigError(
                f"storage {url!r}: no such file {path}; run the suite first (`lrbench run`) "
                "or give --storage"
            )
        _make_sqlite_folder(url, path.parent)
        return
    tables = _sqlite_tables(url, path)
    if not tables & OPTUNA_TABLES and (tables or not create):
        if not tables:  # an empty file: SQLite's empty database, which `run` may fill
            raise ConfigError(
                f"no lrbench runs stored in {path} (storage {url!r} is empty); run a suite "
                "into it first (`lrbench run`), or give the --storage it was run into"
            )
        raise ConfigError(
            f"storage {url!r}: {path} is another application's SQLite database (tables "
            f"{', '.join(sorted(tables)[:5])}; none of Optuna's): lrbench will not write into "
            "it; give another --storage"
        )


def _sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None: another database, or SQLite in memory)."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url[len("sqlite:///") :])


def _sqlite_tables(url: str, path: Path) -> set[str]:
    """The tables of an SQLite file, only read; refused when it is not SQLite or is damaged.

    Opened read-write (never created: the file exists), not read-only: a read-only connection
    to a write-ahead-log file leaves `-wal` and `-shm` files behind, where the last read-write
    connection to close removes them. A file that another process holds locked for longer than
    the busy timeout is in use, not damaged."""
    uri = f"file:{quote(str(path.resolve()))}?mode=rw"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_S)) as db:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
            tables = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError as e:
        if "not a database" in str(e):
            raise ConfigError(
                f"storage {url!r}: {path} is not an SQLite database file; give another "
                "--storage (a new file name, or a storage lrbench wrote)"
            ) from None
        if "locked" in str(e) or "busy" in str(e):
            raise ConfigError(
                f"storage {url!r}: {path} is locked by another process (waited "
                f"{SQLITE_BUSY_S:g} s); try again when it is done"
            ) from None
        problems = [str(e)]
        tables = set()
    if problems != ["ok"]:
        raise ConfigError(
            f"storage {url!r}: {path} is damaged (PRAGMA quick_check: {problems[0]}); "
            "restore it from a copy, or give another --storage"
        )
    return tables


def _make_sqlite_folder(url: str, folder: Path) -> None:
    """The default folder (runs/) is created; any other is a path given, where a missing
    folder is more likely a typo than a wish to create it."""
    if folder.is_dir():
        return
    if folder != RUNS_DIR:
        raise ConfigError(
            f"storage {url!r}: the folder {folder} does not exist; create it first, or give a "
            "--storage path in an existing, writable folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"storage {url!r}: cannot create the folder {folder}: {e.strerror}; "
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
