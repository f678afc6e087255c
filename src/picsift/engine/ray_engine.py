"""Map a task over batches of work items on a Ray cluster, with LocalEngine's contract.

Same ``map(task, batches, on_result, on_failure, progress)`` as
:class:`picsift.engine.local.LocalEngine`: ``task(batch)`` runs as a Ray task on any node of
the cluster, ``on_result(batch, results)`` runs here, in the driver, which stays the only
writer of the workspace. Batches in flight are bounded (``ray.wait``), so neither the driver
nor the object store holds more than a few batches' results. A worker that dies (a hostile
file, an OOM kill, a lost node) is retried by Ray (``max_retries``); a batch that still kills
its worker is split and re-run item by item, and only the item that kills a worker again is
reported through ``on_failure``. Ctrl-C cancels every outstanding task.

Plain tasks, not an actor pool: extractors cache their models per process
(``functools.lru_cache``) and Ray reuses worker processes between tasks of one job, so a model
loads once per worker process either way, and tasks are simpler to retry and to cancel.

``ray`` is imported lazily: picsift works without it; only ``--engine ray`` needs it.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from picsift.engine.local import OnFailure, OnResult, Task
from picsift.engine.progress import ProgressReporter
from picsift.errors import PicsiftError

log = logging.getLogger(__name__)

INSTALL_HINT = "the Ray engine needs: pip install 'picsift[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line PicsiftError that says how to get it."""
    try:
        import ray
    except ImportError as exc:
        raise PicsiftError(INSTALL_HINT) from exc
    return ray


def _run(task: Task, batch: list[Any]) -> list[Any]:
    """What a Ray worker runs: the analysis' own picklable task, unchanged."""
    return task(batch)


def _crash_types(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray errors that mean 'the process running the task died', not 'the task raised'."""
    names = ("WorkerCrashedError", "NodeDiedError", "OutOfMemoryError", "LocalRayletDiedError",
             "ObjectLostError", "OwnerDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


class RayEngine:
    """Runs a map on a Ray cluster.

    ``address``: ``"auto"`` joins the cluster this machine belongs to (``ray start``, or
    ``RAY_ADDRESS``), ``"ray://host:10001"`` a remote one through Ray Client, ``"local"``
    starts a private single-machine cluster with ``workers`` CPUs, and ``None`` uses Ray as
    already initialised in this process (a notebook or test calling ``ray.init``) or else
    Ray's own default. An already initialised Ray is always reused.
    """

    def __init__(self, address: str | None = "auto", workers: int | None = None,
                 max_in_flight: int | None = None, max_retries: int = 1) -> None:
        self.ray = import_ray()
        self.address = address
        self.workers = workers if workers and workers > 0 else None
        self._max_in_flight = max_in_flight
        self.max_retries = max_retries

    # ------------------------------------------------------------------ cluster
    def connect(self) -> None:
        """Join or start the cluster once per process (``ray.init`` is not idempotent)."""
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if self.address == "local":
            kwargs["num_cpus"] = self.workers
        elif self.address is not None:
            kwargs["address"] = self.address
        elif self.workers:
            kwargs["num_cpus"] = self.workers
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            raise PicsiftError(
                f"no Ray cluster at {self.address!r} ({exc}); start one with 'ray start --head' "
                "or use --address local for a cluster on this machine only") from exc
        log.info("ray: %s CPUs in the cluster", ray.cluster_resources().get("CPU"))

    @property
    def max_in_flight(self) -> int:
        """Twice the cluster's CPUs: every worker busy, one batch queued behind each."""
        if self._max_in_flight:
            return self._max_in_flight
        self.connect()
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        if self.workers:
            cpus = min(cpus, self.workers)
        return max(2, 2 * cpus)

    # ------------------------------------------------------------------ map
    def map(self, task: Task, batches: Iterable[list[Any]], on_result: OnResult,
            on_failure: OnFailure, progress: ProgressReporter) -> None:
        """Run ``task`` on every batch on the cluster; ``on_result`` runs in this process."""
        pending: Iterator[list[Any]] = iter(batches)
        first = next(pending, None)
        if first is None:  # nothing to do: do not start or join a cluster for it
            return
        pending = itertools.chain([first], pending)
        self.connect()
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_run)
        task_ref = ray.put(task)  # shipped to the object store once, not once per batch
        crashes = _crash_types(ray)
        limit = self.max_in_flight
        retry: deque[list[Any]] = deque()  # single items of a batch whose worker died
        in_flight: dict[Any, tuple[list[Any], bool]] = {}  # ref -> (batch, is a split item)
        try:
            while True:
                while len(in_flight) < limit:
                    split = bool(retry)
                    batch = retry.popleft() if retry else next(pending, None)
                    if batch is None:
                        break
                    in_flight[remote.remote(task_ref, batch)] = (batch, split)
                if not in_flight:
                    break
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    batch, split = in_flight.pop(ref)
                    self._collect(ref, batch, split, crashes, retry, on_result, on_failure,
                                  progress)
        except BaseException:
            self._cancel(in_flight)
            raise

    def _collect(self, ref: Any, batch: list[Any], split: bool,
                 crashes: tuple[type[BaseException], ...], retry: deque[list[Any]],
                 on_result: OnResult, on_failure: OnFailure, progress: ProgressReporter) -> None:
        ray = self.ray
        try:
            results = ray.get(ref)
        except crashes as exc:
            if split or len(batch) == 1:
                on_failure(batch, RuntimeError(
                    f"the task crashed its Ray worker ({exc.__class__.__name__})"))
                progress.advance(len(batch))
            else:
                log.warning("a Ray worker died on a batch of %d; retrying item by item", len(batch))
                retry.extend([item] for item in batch)
        except ray.exceptions.RayTaskError as exc:  # the task raised: same as LocalEngine
            on_failure(batch, exc.cause if isinstance(exc.cause, BaseException) else exc)
            progress.advance(len(batch))
        except ray.exceptions.RayError as exc:
            on_failure(batch, exc)
            progress.advance(len(batch))
        else:
            on_result(batch, results)
            progress.advance(len(batch))

    def _cancel(self, in_flight: dict[Any, Any]) -> None:
        """Ctrl-C or an error in on_result: stop the cluster's work for this map now."""
        for ref in in_flight:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker is gone
                pass
        in_flight.clear()
