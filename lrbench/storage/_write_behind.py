"""One run's study held in memory, each trial written to the storage once, when it finishes.

A trial that Optuna drives through an RDB storage is a dozen transactions (created, its
parameter, every epoch's report, its record, its state), and a sampler reads the study back
from the storage at every trial: on the cheap tasks that was most of a trial's cost (about 38
ms a trial in SQLite against 0.8 in memory, measured). A run is driven by one worker alone (it
holds the run's claim), so the run's study can live in memory and its storage copy need only
receive what must survive the worker: each finished trial, whole, in one transaction
(`Study.add_trial`, Optuna's public route for a trial made elsewhere), and the study's user
attrs as they are set. A worker killed mid-trial loses that trial and nothing else, as before;
a resumed run reads its stored trials back into memory.

The class is an `optuna.storages.InMemoryStorage` that also writes through: Optuna's public
storage interface, not a new storage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class WriteBehindStorage(optuna.storages.InMemoryStorage):
    """The study `study_name` of `backend`, copied into memory; its finished trials and its
    user and system attrs are written back to `backend` as they happen.

    Every trial of the stored study must be finished (fail what a dead process left RUNNING or
    WAITING first): the copy keeps trial numbers, so what is written back is numbered as in
    memory. `before_write`, when given, is called before every write to `backend` and may raise
    to refuse it (a worker whose claim on the run was taken over must not write to it).
    """

    def __init__(
        self,
        backend: optuna.storages.BaseStorage,
        study_name: str,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.before_write = before_write
        self._stored = optuna.load_study(study_name=study_name, storage=backend)
        self._stored_id = stored_id = backend.get_study_id_from_name(study_name)
        self._study_id = super().create_new_study(
            backend.get_study_directions(stored_id), study_name
        )
        for key, value in backend.get_study_user_attrs(stored_id).items():
            super().set_study_user_attr(self._study_id, key, value)
        for key, value in backend.get_study_system_attrs(stored_id).items():
            super().set_study_system_attr(self._study_id, key, value)
        for trial in backend.get_all_trials(stored_id, deepcopy=False):
            if not trial.state.is_finished():
                raise ValueError(
                    f"{study_name}: trial {trial.number} is {trial.state.name}; fail it first"
                )
            super().create_new_trial(self._study_id, template_trial=trial)

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        raise RuntimeError("a write-behind storage holds one study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        super().set_study_user_attr(study_id, key, value)
        self._write(lambda: self._stored.set_user_attr(key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        super().set_study_system_attr(study_id, key, value)
        self._write(lambda: self.backend.set_study_system_attr(self._stored_id, key, value))

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        changed = super().set_trial_state_values(trial_id, state, values)
        if changed and state.is_finished():
            self._write_trial(self.get_trial(trial_id))
        return changed

    def _write_trial(self, trial: FrozenTrial) -> None:
        self._write(lambda: self._stored.add_trial(trial))

    def _write(self, write: Callable[[], None]) -> None:
        if self.before_write is not None:
            self.before_write()
        write()
