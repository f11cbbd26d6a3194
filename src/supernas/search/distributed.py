"""Search by many worker processes, on one or many machines, on one Optuna study in a database.

Why a database: each worker asks Optuna's sampler for an arch, scores it and tells the study,
so workers share one history with no coordinator. SQLite (`sqlite:///PATH`) is embedded and
fits the workers of one machine; PostgreSQL (`postgresql://...`) serves many machines.

What a worker needs to know lives in the study itself: its user attr `supernas` is the spec
(space, estimator, budget, sampler, heartbeat), so a worker needs only the URL and the name.

Guarantees, and how:
- **Budget.** The budget is the number of distinct archs scored. Before scoring, a worker
  claims a slot in the table `supernas_claims` (primary key: study and slot number, unique:
  study and arch); the database refuses a second claim of a slot or of an arch, so the budget
  is exact across workers and an arch is scored at most once.
- **Duplicates.** A trial whose arch is already claimed is not scored: it takes the finished
  owner's value (COMPLETE, user attr `duplicate_of`) or, if the owner is still running, is
  told FAIL with `duplicate_of`. Neither calls the estimator nor counts in the budget.
  After `max_repeats` such trials in a row, the worker enqueues a uniform unclaimed arch.
- **Killed workers.** Every RUNNING trial has a heartbeat (recorded before the trial leaves
  WAITING, so there is no window without one). A trial whose heartbeat is older than the
  grace period is failed by the next worker that looks and re-enqueued with the same arch;
  the retry inherits the slot, so no claimed arch is lost. Workers stop only once every slot
  is taken and no trial is RUNNING or WAITING.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, Trial, TrialState, create_trial

from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace, get_space

SPEC_KEY = "supernas"
RETRY_OF = "supernas:retry_of"  # system attr of a retry: the id of the trial it replaces
Score = Callable[[Sequence[Arch]], Sequence[float]]

_META = sa.MetaData()
CLAIMS = sa.Table(
    "supernas_claims",
    _META,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("arch", sa.String(2048), nullable=False),
    sa.Column("trial_id", sa.Integer, nullable=False),
    sa.UniqueConstraint("study", "arch", name="supernas_claims_arch"),
)


def _tpe(seed: int, **opts: Any) -> optuna.samplers.BaseSampler:
    # constant_liar: running trials count as bad, so parallel workers spread out
    return optuna.samplers.TPESampler(
        seed=seed, **{"multivariate": True, "constant_liar": True, **opts}
    )


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda seed, **o: optuna.samplers.RandomSampler(seed=seed, **o),
    "gp": lambda seed, **o: optuna.samplers.GPSampler(seed=seed, **o),
    "nsga2": lambda seed, **o: optuna.samplers.NSGAIISampler(seed=seed, **o),
}


def make_sampler(name: str, seed: int, options: dict[str, Any]) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise SupernasError(
            f"strategy {name!r} cannot run on a shared study; use one of: {', '.join(SAMPLERS)}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return SAMPLERS[name](seed, **options)
    except (TypeError, ValueError) as exc:
        raise SupernasError(f"bad option for strategy {name!r}: {exc}") from None


def redact(url: str) -> str:
    """The URL without its password, for messages and result files."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def open_storage(
    url: str, heartbeat_s: int | None = None, grace_s: int | None = None
) -> RDBStorage:
    """An RDBStorage on `url` (sqlite:/// or postgresql://), retrying stale trials."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql"):
        raise SupernasError(
            f"storage {redact(url)!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    url = _with_driver(url)
    kwargs: dict[str, Any] = {}
    if scheme == "sqlite":  # several processes on one file: wait for the lock, don't fail
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    if heartbeat_s is not None:
        # the keyword was renamed in Optuna 4.9
        params = inspect.signature(RDBStorage).parameters
        key = "heartbeat_stale_trial_callback"
        key = key if key in params else "failed_trial_callback"
        kwargs |= {"heartbeat_interval": heartbeat_s, "grace_period": grace_s, key: _retry}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            storage = RDBStorage(url, **kwargs)
    except ImportError as exc:
        raise SupernasError(
            f"storage {redact(url)}: {exc}; for PostgreSQL: pip install 'supernas[postgres]'"
        ) from None
    except Exception as exc:  # sqlalchemy's connection errors are many lines long
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SupernasError(f"cannot open storage {redact(url)}: {first}") from None
    if scheme == "sqlite":
        sa.event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # the pooled connections predate the listener
    return storage


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    """WAL without fsync per commit: 20x faster trials; a killed process loses nothing, only
    a crash of the machine could lose the last commits."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _with_driver(url: str) -> str:
    """postgresql:// with the driver that is installed (SQLAlchemy 2.1 defaults to psycopg 3,
    2.0 to psycopg2; either works)."""
    if not url.startswith("postgresql://"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://" + url[len("postgresql://") :]
    return url


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat-stale trial: enqueue the same arch again; the retry inherits its slot."""
    study.add_trial(
        create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=trial.user_attrs,
            system_attrs={**trial.system_attrs, RETRY_OF: trial._trial_id},
        )
    )


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


# -- the study and its spec ------------------------------------------------------------------
def create_study(url: str, name: str, spec: dict[str, Any]) -> None:
    """Create study `name` holding `spec`, or check that the existing one holds the same spec.

    An existing study is resumed (its workers continue); one made with other settings is
    refused with the first setting that differs.
    """
    _quiet_optuna()
    storage = open_storage(url)
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True
    )
    old = study.user_attrs.get(SPEC_KEY)
    if old is None:
        study.set_user_attr(SPEC_KEY, spec)
    elif old != spec:
        diff = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
        raise SupernasError(
            f"study {name!r} exists with other settings ({diff[0]}: {old.get(diff[0])!r}, "
            f"now {spec.get(diff[0])!r}); use another --study name"
        )
    with contextlib.suppress(sa.exc.SQLAlchemyError):  # a racing worker created it
        _META.create_all(storage.engine, checkfirst=True)
    storage.engine.dispose()  # no idle connection left behind (or inherited by a fork)


def load_spec(url: str, name: str) -> dict[str, Any]:
    _quiet_optuna()
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise SupernasError(
            f"no study {name!r} in {redact(url)}; studies: {', '.join(names) or 'none'}"
        ) from None
    spec = study.user_attrs.get(SPEC_KEY)
    storage.engine.dispose()
    if not isinstance(spec, dict):
        raise SupernasError(f"study {name!r} was not created by `supernas search --storage`")
    return spec


class Claims:
    """The slots of one study: slot number -> (arch, id of the trial that scores it)."""

    def __init__(self, engine: sa.Engine, study: str) -> None:
        self.engine = engine
        self.study = study
        _META.create_all(engine, checkfirst=True)

    def _where(self) -> Any:
        return CLAIMS.c.study == self.study

    def count(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).where(self._where())).scalar_one())

    def rows(self) -> list[tuple[int, str, int]]:
        q = sa.select(CLAIMS.c.slot, CLAIMS.c.arch, CLAIMS.c.trial_id).where(self._where())
        with self.engine.connect() as c:
            return [tuple(r) for r in c.execute(q.order_by(CLAIMS.c.slot))]  # type: ignore[misc]

    def claim(
        self, arch: str, trial_id: int, retry_of: int | None, budget: int
    ) -> tuple[str, int | None]:
        """('own', None), ('duplicate', owner trial id) or ('over', None) when the budget is full.

        A retry takes over the slot of the trial it replaces (compare-and-set on trial_id).
        """
        if retry_of is not None:
            with self.engine.begin() as c:
                q = sa.update(CLAIMS).where(self._where(), CLAIMS.c.trial_id == retry_of)
                if c.execute(q.values(trial_id=trial_id)).rowcount:
                    return "own", None
        while True:
            with self.engine.connect() as c:
                owner = c.execute(
                    sa.select(CLAIMS.c.trial_id).where(self._where(), CLAIMS.c.arch == arch)
                ).scalar()
                n = int(c.execute(sa.select(sa.func.count()).where(self._where())).scalar_one())
            if owner is not None:
                return "duplicate", int(owner)
            if n >= budget:
                return "over", None
            try:
                with self.engine.begin() as c:
                    c.execute(
                        sa.insert(CLAIMS).values(
                            study=self.study, slot=n, arch=arch, trial_id=trial_id
                        )
                    )
                return "own", None
            except sa.exc.IntegrityError:
                continue  # another worker took slot n (or this arch): look again


# -- one worker ------------------------------------------------------------------------------
@dataclass
class WorkerReport:
    evaluated: int = 0  # estimator calls (slots this worker scored)
    reused: int = 0  # trials that took a finished duplicate's value
    skipped: int = 0  # duplicates of a running trial, infeasible archs, over-budget trials
    failed: int = 0  # estimator errors or NaN
    preempted: int = 0  # trials failed as stale while this worker was stalled


@contextlib.contextmanager
def _heartbeat(storage: RDBStorage, trial_id: int, interval: float) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat only risks a retry
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Worker:
    """One search worker on study `name`: trials until the budget is spent and nothing runs.

    `score` is the estimator's score function; `feasible(arch)` (e.g. "is in the table")
    is checked before a slot is claimed, so infeasible archs cost no budget. With
    `drain=True` the worker only retries stale trials and runs waiting ones, then returns:
    the clean-up after all workers of a time-limited search were stopped.
    """

    poll_s: float = 0.5
    max_repeats: int = 20

    def __init__(
        self,
        url: str,
        name: str,
        space: SearchSpace,
        score: Score,
        *,
        seed: int = 0,
        feasible: Callable[[Arch], bool] | None = None,
        stop: threading.Event | None = None,
        on_trial: Callable[[str], None] | None = None,
        drain: bool = False,
    ) -> None:
        self.spec = load_spec(url, name)
        if space.name != self.spec["space"]:
            raise SupernasError(
                f"study {name!r} searches space {self.spec['space']!r}, not {space.name!r}"
            )
        self.space, self.score, self.feasible = space, score, feasible
        self.budget = int(self.spec["budget"])
        self.heartbeat_s = int(self.spec.get("heartbeat_s", 2))
        self.storage = open_storage(url, self.heartbeat_s, int(self.spec.get("grace_s", 10)))
        sampler = make_sampler(
            self.spec.get("strategy", "tpe"), seed, dict(self.spec.get("strategy_options", {}))
        )
        self.study = optuna.load_study(study_name=name, storage=self.storage, sampler=sampler)
        self.claims = Claims(self.storage.engine, name)
        self.dists = {
            c.name: CategoricalDistribution(tuple(range(len(c.options)))) for c in space.choices
        }
        self.rng = np.random.default_rng(seed)
        self.stop = stop or threading.Event()
        self.on_trial = on_trial or (lambda outcome: None)
        self.report = WorkerReport()
        self.drain = drain
        self._repeats = 0

    def run(self) -> WorkerReport:
        while not self.stop.is_set():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            if self._finished():
                break
            if (self.drain or self.claims.count() >= self.budget) and not self._waiting():
                if self.drain:
                    break
                self.stop.wait(self.poll_s)  # the last slots are running elsewhere
                continue
            self._one_trial()
        return self.report

    def _waiting(self) -> bool:
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def _finished(self) -> bool:
        if self.claims.count() < self.budget:
            return False
        busy = (TrialState.RUNNING, TrialState.WAITING)
        return not self.study.get_trials(deepcopy=False, states=busy)

    def _start_trial(self) -> Trial | None:
        """A WAITING trial (a retry or an enqueued arch) or a new one, set RUNNING with a
        heartbeat already recorded, so a kill at any moment leaves a trial that goes stale."""
        study_id = self.storage.get_study_id_from_name(self.study.study_name)
        waiting = self.storage.get_all_trials(
            study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        ids = [t._trial_id for t in waiting]
        if not ids and not self.drain:
            ids = [self.storage.create_new_trial(study_id, create_trial(state=TrialState.WAITING))]
        for trial_id in ids:
            self.storage.record_heartbeat(trial_id)  # a racing first beat is ignored by Optuna
            try:
                if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return Trial(self.study, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None  # all taken by other workers meanwhile: try again

    def _one_trial(self) -> None:
        trial = self._start_trial()
        if trial is None:
            return
        # An exception leaves the trial RUNNING on purpose: its heartbeat stops, so another
        # worker (or this one restarted) fails it after the grace period and retries it.
        with _heartbeat(self.storage, trial._trial_id, self.heartbeat_s):
            try:
                outcome = self._evaluate(trial)
            except optuna.exceptions.UpdateFinishedTrialError:
                # This worker was stalled past the grace period and another failed its trial
                # as stale: the retry owns the arch now, so this worker just moves on.
                self.report.preempted += 1
                outcome = "preempted"
        self._repeats = self._repeats + 1 if outcome in ("reused", "skipped") else 0
        if self._repeats >= self.max_repeats:
            self._repeats = 0
            self._enqueue_unclaimed()
        self.on_trial(outcome)

    def _evaluate(self, trial: Trial) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            idx = [trial.suggest_categorical(n, d.choices) for n, d in self.dists.items()]
        arch = self.space.decode(idx)
        if self.feasible is not None and not self.feasible(arch):
            trial.set_user_attr("infeasible", True)
            self._tell(trial, state=TrialState.PRUNED)
            self.report.skipped += 1
            return "skipped"
        retry_of = self.storage.get_trial_system_attrs(trial._trial_id).get(RETRY_OF)
        kind, owner = self.claims.claim(str(arch), trial._trial_id, retry_of, self.budget)
        if kind == "over":
            trial.set_user_attr("over_budget", True)
            self._tell(trial, state=TrialState.FAIL)
            self.report.skipped += 1
            return "skipped"
        if kind == "duplicate":
            assert owner is not None
            done = self.storage.get_trial(owner)
            trial.set_user_attr("duplicate_of", done.number)
            if done.state == TrialState.COMPLETE:
                self._tell(trial, done.value)
                self.report.reused += 1
                return "reused"
            self._tell(trial, state=TrialState.FAIL)
            self.report.skipped += 1
            return "skipped"
        try:
            value = float(self.score([arch])[0])
        except Exception as exc:  # a failed evaluation, as NaN in run_search
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            value = math.nan
        trial.set_user_attr("arch", str(arch))
        if math.isnan(value):
            self._tell(trial, state=TrialState.FAIL)
            self.report.failed += 1
            return "failed"
        trial.set_user_attr("evaluated", True)
        self._tell(trial, value)
        self.report.evaluated += 1
        return "evaluated"

    def _tell(
        self, trial: Trial, value: float | None = None, state: TrialState | None = None
    ) -> None:
        """study.tell, raising UpdateFinishedTrialError when another worker failed the trial
        as stale meanwhile (Optuna itself raises ValueError for that)."""
        told = self.study.tell(trial, value, state, skip_if_finished=True)
        if told.state != (state or TrialState.COMPLETE):
            raise optuna.exceptions.UpdateFinishedTrialError(f"trial {told.number} was failed")

    def _enqueue_unclaimed(self) -> None:
        """The sampler keeps proposing claimed archs: hand the study a uniform unclaimed one."""
        claimed = {a for _, a, _ in self.claims.rows()}
        for _ in range(1000):
            arch = self.space.sample(self.rng)
            if str(arch) not in claimed and (self.feasible is None or self.feasible(arch)):
                params = dict(zip(self.dists, self.space.encode(arch), strict=True))
                self.study.add_trial(
                    create_trial(state=TrialState.WAITING, params=params, distributions=self.dists)
                )
                return


# -- results and audit -----------------------------------------------------------------------
def study_trials(url: str, name: str) -> list[tuple[int, str, float]]:
    """(slot, arch, value) of every slot whose owner finished, in claim order."""
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    by_id = {t._trial_id: t for t in study.get_trials(deepcopy=False)}
    out = []
    for slot, arch, trial_id in Claims(storage.engine, name).rows():
        t = by_id[trial_id]
        if t.state == TrialState.COMPLETE and t.value is not None:
            out.append((slot, arch, float(t.value)))
    return out


def audit(url: str, name: str) -> dict[str, Any]:
    """Counts that prove the guarantees: every slot done, no arch scored twice.

    - done: slots whose owner is COMPLETE; failed: estimator errors; lost: the other slots.
    - duplicated: estimator calls beyond one per arch, counted from the trials themselves
      (user attr `evaluated`), independently of the claims table.
    - best_claimed / best_trial: the best over the slots and over every COMPLETE trial.
    """
    storage = open_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    by_id = {t._trial_id: t for t in trials}
    rows = Claims(storage.engine, name).rows()
    owners = [by_id[tid] for _, _, tid in rows]
    done = [t for t in owners if t.state == TrialState.COMPLETE]
    failed = [t for t in owners if t.state == TrialState.FAIL and "error" in t.user_attrs]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    scored = [t for t in complete if t.user_attrs.get("evaluated")]
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    return {
        "trials": len(trials),
        "states": {k: v for k, v in states.items() if v},
        "slots": len(rows),
        "done": len(done),
        "failed": len(failed),
        "lost": len(rows) - len(done) - len(failed),
        "duplicated": len(scored) - len({tuple(sorted(t.params.items())) for t in scored}),
        "reused": sum(1 for t in complete if "duplicate_of" in t.user_attrs),
        "retries": sum(1 for t in trials if RETRY_OF in t.system_attrs),
        "over_budget": sum(1 for t in trials if t.user_attrs.get("over_budget")),
        "best_claimed": max((t.value for t in done), default=None),
        "best_trial": max((t.value for t in complete), default=None),
    }


def space_of(spec: dict[str, Any]) -> SearchSpace:
    return get_space(spec["space"], **spec.get("space_options", {}))
