"""Distributed runs: worker processes claim runs through the storage; a killed one loses only
its trial in flight (held in memory: a worker stores each trial as it finishes); the suite
completes and stores what one process stores.

PostgreSQL tests start a throw-away server (tests/conftest.py) and are skipped, saying why,
where its binaries are missing; CI installs them.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from pprint import pformat

import optuna
import pytest
from optuna.trial import TrialState

from lrbench.report._data import load_suite_data
from lrbench.storage.records import (
    RunKeys,
    coordinator_name,
    is_run_study_name,
    record_attrs,
    run_attrs,
)

SUITE = """
[suite]
name = "dist"
seeds = [0, 1]
budget_epochs = 12

[tasks.digits]
target = 0.95
epochs_per_trial = 3
budget_epochs = 9
low = 1e-4
high = 1.0

[tasks.bowl]
task = "functions"
# 1,000 steps an epoch: runs of a second or two, so that a worker is seen in the middle of one
# (with 10 steps, 3 workers claimed and finished every run between two looks).
options = { function = "bowl", steps_per_epoch = 1000 }
target = 0.01
epochs_per_trial = 3
budget_epochs = 9
low = 1e-3
high = 0.1

[[strategies]]
name = "tpe"
n_startup_trials = 2

[[strategies]]
name = "grid"
n = 3

[[strategies]]
name = "one_cycle"
num_iter = 10
"""
N_RUNS = 2 * 3 * 2
# Wall-clock columns differ between any two runs. Everything else must not differ, the chosen
# trial too (its place among the trials that count, not the storage's number, which counts the
# trial a kill failed).
WALL_CLOCK = ["wall_seconds_to_target", "wall_seconds"]
# A dead worker's run is taken over after 15 s; a live worker starved of CPU that long (a
# loaded machine) would be taken for dead.
FAST_CLAIMS = ["--heartbeat-interval", "1", "--grace-period", "15"]


def lrbench(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "lrbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dist") / "dist.toml"
    path.write_text(textwrap.dedent(SUITE))
    return path


@pytest.fixture(scope="module")
def reference(suite_file) -> str:
    """The suite run by one process, uninterrupted."""
    url = f"sqlite:///{suite_file.parent / 'reference.db'}"
    proc = lrbench("run", str(suite_file), "--storage", url, "--quiet", "--device", "cpu")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return url


def run_trials(url: str) -> dict[str, list[tuple]]:
    """Each run's trials that count (not those an interruption failed), in number order."""
    out = {}
    for s in optuna.get_all_study_summaries(url):
        if not is_run_study_name(s.study_name):
            continue
        study = optuna.load_study(study_name=s.study_name, storage=url)
        skip = set(study.user_attrs.get(RunKeys.INTERRUPTED_TRIALS) or [])
        out[s.study_name] = [
            (t.state, t.params.get("lr"), t.value, record_attrs(t.user_attrs).get("epochs"))
            for t in study.trials
            if t.number not in skip
        ]
    return out


def runs_csv(url: str):
    results = load_suite_data(url, "dist").results.drop(columns=WALL_CLOCK)
    return results.sort_values(["task", "strategy", "seed"]).reset_index(drop=True)


def held_by(url: str, pid: int) -> str | None:
    """The run a worker process is in the middle of right now (its claim held, at least one of
    its trials stored, the run not complete), or None."""
    try:
        claims = optuna.load_study(study_name=coordinator_name("dist"), storage=url).trials
    except KeyError:
        return None
    for c in claims:
        if c.state == TrialState.RUNNING and c.user_attrs.get("worker", "").endswith(f":{pid}"):
            if mid_run(url, c.user_attrs["run"]):
                return c.user_attrs["run"]
    return None


def mid_run(url: str, run: str) -> bool:
    """Whether `run` has begun (a trial stored) and is not complete."""
    try:
        study = optuna.load_study(study_name=run, storage=url)
    except KeyError:
        return False
    return bool(study.trials) and study.user_attrs.get(RunKeys.STATUS) != "complete"


def kill_mid_run(url: str, procs: list[subprocess.Popen], args: list[str]) -> tuple[str, int, int]:
    """SIGKILL a worker in the middle of a run; return the run, the number of kills it took and
    the index of the killed worker in `procs`.

    A worker holds a run's trials in memory and stores each as it finishes, so a kill in the
    middle of a run loses the trial in flight and nothing stored. The victim is whichever worker
    is first seen mid-run: waiting for one chosen worker fails when the others claim and finish
    every run before it is seen (short trials, a slow poll). Whether the signal landed inside
    the run is read afterwards from the storage (the run not complete); a kill that landed
    after the run's last trial is no test, so a fresh worker takes the dead one's place and the
    next run is tried, at most five times.
    """
    for kills in range(1, 6):
        victim, run = wait_until_training(url, procs)
        os.kill(procs[victim].pid, signal.SIGKILL)
        procs[victim].wait()
        if mid_run(url, run):
            return run, kills, victim
        procs[victim] = lrbench(*args)
    raise AssertionError("five kills in a row landed after their run's last trial")


def wait_until_training(
    url: str, procs: list[subprocess.Popen], timeout: float = 120
) -> tuple[int, str]:
    """(index, run) of the first of `procs` seen in the middle of a run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [i for i, p in enumerate(procs) if p.poll() is None]
        assert live, "every worker finished before one could be killed"
        for i in live:
            run = held_by(url, procs[i].pid)
            if run is not None:
                return i, run
        time.sleep(0.02)
    raise AssertionError("no worker started a run")


def every_trial(url: str, run: str) -> list[tuple]:
    """A run's whole history, interrupted trials included: what a failure should show."""
    study = optuna.load_study(study_name=run, storage=url)
    return [
        (t.number, t.state.name, t.params.get("lr"), t.value, t.user_attrs.get("fail_reason"))
        for t in study.trials
    ] + [("interrupted", study.user_attrs.get(RunKeys.INTERRUPTED_TRIALS))]


def check_like_reference(url: str, reference: str, killed_run: str) -> None:
    ours, ref = run_trials(url), run_trials(reference)
    assert sorted(ours) == sorted(ref)  # every run, none twice
    # Every trial exactly once: none lost, none duplicated. A timing-dependent failure here
    # is rare, so the message carries everything needed to read it from one occurrence.
    differing = [name for name in ref if ours[name] != ref[name]]
    assert not differing, pformat(
        {
            "killed run": killed_run,
            **{n: {"stored": every_trial(url, n), "reference": ref[n]} for n in differing},
        },
        width=100,
    )
    claims = optuna.load_study(study_name=coordinator_name("dist"), storage=url).trials
    # The dead worker's claim, failed by a live worker's stale check, and the one that ended it.
    of_killed = [c.state for c in claims if c.user_attrs["run"] == killed_run]
    assert TrialState.FAIL in of_killed and TrialState.COMPLETE in of_killed, of_killed
    for name in ours:
        # The budget charges what counts: a trial the kill failed is not the strategy's.
        study = optuna.load_study(study_name=name, storage=url)
        lost = set(study.user_attrs.get(RunKeys.INTERRUPTED_TRIALS) or [])
        spent = study.user_attrs.get("overhead_epochs", 0.0) + sum(
            record_attrs(t.user_attrs).get("epochs", 0.0)
            for t in study.trials
            if t.number not in lost
        )
        assert spent <= run_attrs(study.user_attrs)["budget_epochs"] + 1e-9, name
        assert study.user_attrs["status"] == "complete"
    ours_csv, ref_csv = runs_csv(url), runs_csv(reference)
    differ = [c for c in ref_csv if not ours_csv[c].equals(ref_csv[c])]
    assert not differ, ours_csv[differ].compare(ref_csv[differ])
    done = [c.user_attrs["run"] for c in claims if c.state == TrialState.COMPLETE]
    assert sorted(done) == sorted(ours)  # each run completed under exactly one claim


def workers_with_one_killed(url: str, suite_file: Path, n: int, reference: str) -> None:
    args = ["run", str(suite_file), "--storage", url, "--quiet", "--device", "cpu"]
    procs = [lrbench(*args, *FAST_CLAIMS) for _ in range(n)]
    killed_run, kills, victim = kill_mid_run(url, procs, [*args, *FAST_CLAIMS])
    for p in procs[:victim] + procs[victim + 1 :]:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "Traceback" not in err
    # The survivors took the dead worker's run over: nothing is left for another run to do.
    again = lrbench(*args)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    check_like_reference(url, reference, killed_run)
    stored, expected = run_trials(url), run_trials(reference)
    extra = sum(max(0, len(stored[r]) - len(expected[r])) for r in expected)
    missing = sum(max(0, len(expected[r]) - len(stored[r])) for r in expected)
    print(  # the figures `pytest -s` shows
        f"{n} workers, {kills} SIGKILL(s): {len(stored)} runs, trials expected "
        f"{sum(map(len, expected.values()))}, stored {sum(map(len, stored.values()))}, "
        f"duplicated {extra}, lost {missing}"
    )


def test_three_workers_on_postgres_one_killed_store_what_one_process_does(
    postgres_url, suite_file, reference
):
    workers_with_one_killed(postgres_url, suite_file, 3, reference)


def test_two_workers_on_sqlite_one_killed_store_what_one_process_does(
    tmp_path, suite_file, reference
):
    workers_with_one_killed(f"sqlite:///{tmp_path / 'two.db'}", suite_file, 2, reference)


def test_two_lrbench_runs_at_once_on_one_sqlite_file_store_what_one_process_does(
    tmp_path, suite_file, reference
):
    url = f"sqlite:///{tmp_path / 'both.db'}"
    args = ["run", str(suite_file), "--storage", url, "--quiet", "--device", "cpu"]
    procs = [lrbench(*args) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "Traceback" not in err, err
    assert run_trials(url) == run_trials(reference)
    assert runs_csv(url).equals(runs_csv(reference))


def _open_at_once(url: str, barrier, out) -> None:
    from lrbench.errors import ConfigError
    from lrbench.storage import close_storage, open_storage

    barrier.wait()
    try:
        close_storage(open_storage(url))
        out.put("ok")
    except ConfigError as e:
        out.put(str(e))


def test_processes_creating_one_new_storage_at_once_all_open_it(tmp_path):
    """Each creates Optuna's tables; the slower one's inserts collide with the faster one's."""
    ctx = multiprocessing.get_context("spawn")
    results = []
    for i in range(4):
        url = f"sqlite:///{tmp_path / f'new{i}.db'}"
        barrier, out = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_open_at_once, args=(url, barrier, out)) for _ in range(3)]
        for p in procs:
            p.start()
        results += [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
    assert results == ["ok"] * 12, results


# --------------------------------------------------------------------------------------------- #
# A report interrupted: nothing stored changes, and the next report is the uninterrupted one's
# --------------------------------------------------------------------------------------------- #
def sqlite_copy(url: str, path: Path) -> str:
    """SQLite's backup of a storage (its write-ahead log included), as a new URL."""
    with (
        contextlib.closing(sqlite3.connect(url[len("sqlite:///") :])) as src,
        contextlib.closing(sqlite3.connect(path)) as dst,
    ):
        src.backup(dst)
    return f"sqlite:///{path}"


def report_files(folder: Path) -> dict[str, list[str]]:
    """The report's text files but for the line that says when it was generated (figures are
    PNGs, compared by name)."""
    return {
        p.name: [line for line in p.read_text().splitlines() if "Generated 20" not in line]
        for p in sorted(folder.iterdir())
        if p.suffix != ".png"
    }


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_report_stopped_while_it_writes_changes_no_storage_and_the_next_is_complete(
    stop, tmp_path, suite_file, reference
):
    url = sqlite_copy(reference, tmp_path / "stored.db")
    db = Path(url[len("sqlite:///") :])
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    out = tmp_path / "report"
    args = ["report", str(suite_file), "--storage", url, "--out"]
    proc = lrbench(*args, str(out))
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())):  # it has begun to write
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    if stop == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 128 + stop, err
        assert "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("lrbench: interrupted"), err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before, "the storage was changed"
    # SQLite's side files stay after a kill (the next open recovers them), not after a stop.
    side = {"stored.db-wal", "stored.db-shm"} if stop == signal.SIGKILL else set()
    assert {p.name for p in tmp_path.iterdir()} - side == {"report", "stored.db"}
    again = lrbench(*args, str(out))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    whole = lrbench(*args, str(tmp_path / "whole"))
    _, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err
    assert report_files(out) == report_files(tmp_path / "whole")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (tmp_path / "whole").iterdir()
    )


def test_ctrl_c_while_lrbench_starts_is_one_line_and_exit_130(tmp_path, suite_file, reference):
    """SIGINT during the CLI's imports (torch, Optuna), before any command runs."""
    for delay in (0.3, 1.0):  # inside the imports, or just after: either way one line, 130
        proc = lrbench("report", str(suite_file), "--storage", reference, "--out", str(tmp_path))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("lrbench: interrupted"), err


# --------------------------------------------------------------------------------------------- #
# Optuna's claim of a WAITING trial, as the storages here are opened
# --------------------------------------------------------------------------------------------- #
def _claim_all(url: str, out) -> None:
    from lrbench.running._claims import RunQueue
    from lrbench.storage import open_storage

    queue = RunQueue(open_storage(url, retry_stale=True), "race", [f"r{i}" for i in range(30)])
    taken = []
    while (claim := queue.claim()) is not None:
        taken.append(claim.run)
        claim.complete()
    out.put(taken)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_each_enqueued_run_is_claimed_by_exactly_one_of_three_processes(
    backend, tmp_path, request
):
    from lrbench.running._claims import RunQueue
    from lrbench.storage import open_storage

    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'race.db'}"
    names = [f"r{i}" for i in range(30)]
    queue = RunQueue(open_storage(url), "race", names)
    assert queue.enqueue_missing() == 30
    assert queue.enqueue_missing() == 0  # idempotent
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, out)) for _ in range(3)]
    for p in procs:
        p.start()
    taken = [run for _ in procs for run in out.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(taken) == sorted(names)  # each exactly once
    assert queue.counts() == (30, 0, 30)
    # The coordinating study says what it is, and holds no value a reader could take for a result.
    coordinator = optuna.load_study(study_name=coordinator_name("race"), storage=url)
    assert "not results" in coordinator.user_attrs["lrbench_role"]
    assert coordinator.metric_names == ["claim (always 0, not a result)"]
    done = coordinator.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 30 and {t.value for t in done} == {0.0}
    assert all(t.user_attrs["seconds"] >= 0 for t in done)


def test_a_worker_reads_the_queue_once_for_many_claims_and_still_refuses_a_duplicate(tmp_path):
    """Claiming n runs must not read all n claims each time (that was quadratic in the suite's
    size); a run enqueued twice is still driven once: the later claim is given up."""
    from lrbench.running._claims import RunQueue
    from lrbench.storage import open_storage

    url = f"sqlite:///{tmp_path / 'reads.db'}"
    names = [f"r{i}" for i in range(200)]
    queue = RunQueue(open_storage(url), "reads", names)
    queue.enqueue_missing()
    queue.study.enqueue_trial({}, user_attrs={"run": "r7"})  # a second worker's late enqueue
    reads = []
    read_all = queue.storage.get_all_trials
    queue.storage.get_all_trials = lambda *a, **k: reads.append(1) or read_all(*a, **k)
    taken = []
    while (claim := queue.claim()) is not None:
        taken.append(claim.run)
        claim.complete()
    assert sorted(taken) == sorted(names)  # r7 once
    assert len(reads) <= 2  # the first read, and the one that finds nothing left
    duplicate = queue.study.get_trials()[-1]
    assert duplicate.state == TrialState.FAIL
    assert "duplicate" in duplicate.user_attrs["released"]


def test_a_heartbeat_stopped_by_a_storage_error_is_raised_in_the_worker(tmp_path):
    """The heartbeat thread swallows nothing: when the storage fails it (here the coordinating
    study was deleted under a held claim), the worker's next `held` check raises the error."""
    from lrbench.running._claims import RunQueue
    from lrbench.storage import open_storage

    url = f"sqlite:///{tmp_path / 'beat.db'}"
    queue = RunQueue(open_storage(url, heartbeat_interval=1), "beat", ["r0"])
    queue.enqueue_missing()
    claim = queue.claim()
    assert claim is not None and claim.held(every=0)
    optuna.delete_study(study_name=coordinator_name("beat"), storage=url)
    deadline = time.monotonic() + 30
    with pytest.raises(RuntimeError, match="r0: the claim's heartbeat failed") as raised:
        while time.monotonic() < deadline:  # `every=inf`: only the heartbeat's word
            claim.held(every=float("inf"))
            time.sleep(0.05)
    assert isinstance(raised.value.__cause__, Exception)


# --------------------------------------------------------------------------------------------- #
# Ctrl-C, and a run killed while its settings were written
# --------------------------------------------------------------------------------------------- #
def any_run_mid_way(url: str) -> bool:
    """Whether some run has stored a trial and is not complete: its next trial is in flight."""
    try:
        summaries = optuna.get_all_study_summaries(url)
    except Exception:  # not created yet
        return False
    return any(is_run_study_name(s.study_name) and mid_run(url, s.study_name) for s in summaries)


# Trials of a second or more (5,000 optimizer steps an epoch on the bowl), so that Ctrl-C, sent
# as soon as a run's first trial is stored, lands inside its second however loaded the machine
# is.
LONG_TRIALS = """
[suite]
name = "ctrlc"
seeds = [0, 1]
budget_epochs = 4

[tasks.bowl]
task = "functions"
options = { function = "bowl", steps_per_epoch = 5000 }
target = 0.01
epochs_per_trial = 2
budget_epochs = 4
low = 1e-3
high = 0.1

[[strategies]]
name = "grid"
n = 2
"""


def wait_for_a_trial(proc: subprocess.Popen, url: str, timeout: float = 120) -> None:
    """Until some run of the suite `proc` runs has a trial in flight (the process still alive):
    its first trial is stored, the second not yet."""
    deadline = time.monotonic() + timeout
    while not any_run_mid_way(url):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def start_ctrl_c_suite(tmp_path) -> tuple[subprocess.Popen, str]:
    suite_file = tmp_path / "ctrlc.toml"
    suite_file.write_text(textwrap.dedent(LONG_TRIALS))
    url = f"sqlite:///{tmp_path / 'ctrlc.db'}"
    args = ["run", str(suite_file), "--storage", url, "--device", "cpu", "--workers", "2"]
    return lrbench(*args, start_new_session=True), url  # its own group, as a terminal's job


def stop_like_ctrl_c(proc: subprocess.Popen) -> str:
    """SIGINT to every process of the job, as Ctrl-C does; exit 130, one line, no traceback."""
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    summary = [line for line in err.splitlines() if line.startswith("lrbench: interrupted")]
    assert len(summary) == 1 and "runs complete" in summary[0], err
    return summary[0]


def worker_processes(pid: int) -> list[int]:
    """The spawned workers of `pid` (Linux: /proc), whether or not they run lrbench code yet."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
        except OSError:
            pass
    return found


def test_ctrl_c_stops_every_worker_with_one_line_and_fails_the_trials_in_flight(tmp_path):
    proc, url = start_ctrl_c_suite(tmp_path)
    wait_for_a_trial(proc, url)
    assert "trials" in stop_like_ctrl_c(proc)
    failed = []
    for s in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=s.study_name, storage=url)
        assert TrialState.RUNNING not in {t.state for t in study.trials}, s.study_name
        failed += [t for t in study.trials if "fail_reason" in t.user_attrs]
    assert failed and all("interrupted" in t.user_attrs["fail_reason"] for t in failed)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds workers through /proc")
def test_ctrl_c_while_the_workers_are_still_starting_up_prints_no_traceback(tmp_path):
    # A worker spends its first seconds importing torch and lrbench; a SIGINT there used to
    # print a traceback from the middle of an import.
    proc, _ = start_ctrl_c_suite(tmp_path)
    deadline = time.monotonic() + 60
    while len(worker_processes(proc.pid)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    stop_like_ctrl_c(proc)


def no_claim_or_trial_running(url: str) -> None:
    for s in optuna.get_all_study_summaries(url):
        study = optuna.load_study(study_name=s.study_name, storage=url)
        assert TrialState.RUNNING not in {t.state for t in study.trials}, s.study_name


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The processes of `pids` still alive after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds workers through /proc")
def test_sigterm_to_the_parent_alone_stops_every_worker_like_ctrl_c(tmp_path):
    """What a batch scheduler or `docker stop` does: SIGTERM to the main process only."""
    proc, url = start_ctrl_c_suite(tmp_path)
    wait_for_a_trial(proc, url)
    workers = worker_processes(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    assert "Traceback" not in err, err
    summary = [line for line in err.splitlines() if line.startswith("lrbench: interrupted")]
    assert len(summary) == 1 and "by SIGTERM" in summary[0], err
    assert wait_gone(workers, 10) == []
    no_claim_or_trial_running(url)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the kernel's parent-death signal"
)
def test_workers_of_a_parent_killed_outright_stop_and_give_their_claims_up(tmp_path):
    proc, url = start_ctrl_c_suite(tmp_path)
    wait_for_a_trial(proc, url)
    workers = worker_processes(proc.pid)
    assert len(workers) == 2
    proc.kill()
    proc.communicate(timeout=60)
    assert wait_gone(workers, 60) == [], "a worker trains on after its parent died"
    no_claim_or_trial_running(url)


def test_a_run_killed_while_its_settings_were_written_is_repaired_on_resume(tmp_path, suite_file):
    from lrbench.running import run_suite

    url = f"sqlite:///{tmp_path / 'partial.db'}"
    name = "dist/bowl/grid/seed0"
    # What the old writer left when killed after its first attr: the marker, nothing else.
    study = optuna.create_study(storage=url, study_name=name)
    study.set_user_attr(RunKeys.SUITE, "dist")
    assert load_suite_data(url, "dist") is None  # not a run a report can read, not a KeyError
    run_suite(suite_file, storage=url, device="cpu", progress=False, only="bowl/grid")
    attrs = run_attrs(optuna.load_study(study_name=name, storage=url).user_attrs)
    assert attrs["steps_per_epoch"] == 1000 and attrs["status"] == "complete"
    assert len(load_suite_data(url, "dist").results) == 2


# Seed 1's grid runs 1e-4 (epochs 1-3), 1.0 (diverges at once) and 0.01 (epochs 4-6).
@pytest.mark.parametrize("stop_at_epoch", [1, 4])
@pytest.mark.parametrize("killed_after_ask", [False, True])
def test_a_grid_interrupted_mid_trial_resumes_in_the_uninterrupted_order(
    tmp_path, suite_file, reference, stop_at_epoch, killed_after_ask
):
    """Optuna's GridSampler gives trial number i its i-th point, so after a failed trial
    every later number would be one point off; the resumed grid runs the points left in the
    uninterrupted order, the interrupted one first. Also when a process was killed between a
    trial's ask and its suggest (the trial left RUNNING, holding a grid point, without a rate)."""
    from lrbench.running import load_suite, run_one, run_suite
    from lrbench.storage import open_storage

    suite = load_suite(suite_file)
    run = next(r for r in suite.runs("digits/grid") if r.seed == 1)
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    epochs = 0

    def interrupt(record, trial) -> None:
        nonlocal epochs
        epochs += 1
        if epochs == stop_at_epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(run, open_storage(url), device="cpu", data_options=suite.data, on_epoch=interrupt)
    if killed_after_ask:
        study = optuna.load_study(study_name=run.study_name, storage=url)
        study.sampler = optuna.samplers.GridSampler({"lr": [1e-4, 1e-2, 1.0]}, seed=run.seed)
        study.ask()  # and no suggest: the process died here
    run_suite(suite_file, storage=url, device="cpu", progress=False, only="digits/grid")
    ours = run_trials(url)[run.study_name]
    assert ours == run_trials(reference)[run.study_name]
