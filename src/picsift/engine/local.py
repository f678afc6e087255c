"""Map a task over batches of work items on a local process pool.

The engine is the one place that decides how work runs; analyses hand it a picklable task
``task(batch) -> results`` and a callback that stores each batch's results in the main
process (the single writer). It keeps a bounded number of batches in flight (bounded memory),
shows progress, survives a worker killed by a hostile file (the batch is retried item by item
and the one item that kills a worker is reported, not the run), and on Ctrl-C stops the
workers at once so that only whole, already-stored batches remain.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from picsift.engine.progress import ProgressReporter

T = TypeVar("T")
R = TypeVar("R")

Task = Callable[[list[Any]], list[Any]]
OnResult = Callable[[list[Any], list[Any]], None]
OnFailure = Callable[[list[Any], BaseException], None]


def default_workers() -> int:
    """Cores this process may use (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Engine(Protocol):
    """What analyses rely on; a Ray engine implements the same method."""

    def map(self, task: Task, batches: Iterable[list[Any]], on_result: OnResult,
            on_failure: OnFailure, progress: ProgressReporter) -> None: ...


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; only the main process decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalEngine:
    """Process pool of ``workers`` processes (1 = run in this process, handy for debugging)."""

    def __init__(self, workers: int | None = None, max_in_flight: int | None = None) -> None:
        self.workers = workers if workers and workers > 0 else default_workers()
        self.max_in_flight = max_in_flight or self.workers * 2

    def map(self, task: Task, batches: Iterable[list[Any]], on_result: OnResult,
            on_failure: OnFailure, progress: ProgressReporter) -> None:
        """Run ``task`` on every batch; ``on_result(batch, results)`` runs in this process."""
        if self.workers == 1:
            for batch in batches:
                try:
                    results = task(batch)
                except Exception as exc:  # a bug in a task must not lose the other batches
                    on_failure(batch, exc)
                else:
                    on_result(batch, results)
                progress.advance(len(batch))
            return
        self._map_pool(task, iter(batches), on_result, on_failure, progress)

    def _new_pool(self) -> ProcessPoolExecutor:
        _quiet_native_pools()
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(_start_method()),
            initializer=_ignore_sigint,
        )

    def _map_pool(self, task: Task, batches: Iterator[list[Any]], on_result: OnResult,
                  on_failure: OnFailure, progress: ProgressReporter) -> None:
        pool = self._new_pool()
        retry: deque[list[Any]] = deque()  # single-item batches after a worker crash
        in_flight: dict[Future[list[Any]], list[Any]] = {}
        isolating = False  # True while re-running items one by one after a crash
        try:
            while True:
                while len(in_flight) < (1 if isolating else self.max_in_flight):
                    batch = retry.popleft() if retry else next(batches, None)
                    if batch is None:
                        break
                    in_flight[pool.submit(task, batch)] = batch
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                broken: list[list[Any]] = []
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        results = future.result()
                    except BrokenProcessPool as exc:
                        if isolating or len(batch) == 1:
                            on_failure(batch, RuntimeError(
                                f"the decoder crashed the worker process ({exc.__class__.__name__})"))
                            progress.advance(len(batch))
                        else:
                            broken.append(batch)
                    except Exception as exc:
                        on_failure(batch, exc)
                        progress.advance(len(batch))
                    else:
                        on_result(batch, results)
                        progress.advance(len(batch))
                if broken or _pool_is_broken(pool):
                    # Everything still in flight died with the pool: retry item by item.
                    broken.extend(in_flight.values())
                    in_flight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._new_pool()
                    for batch in broken:
                        retry.extend([item] for item in batch)
                    isolating = bool(retry)
                elif isolating and not retry:
                    isolating = False
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True)


def _quiet_native_pools() -> None:
    """Stop OpenCV's worker threads in this process before forking.

    A forked child inherits OpenCV's thread-pool state but not its threads; the first
    cv2.setNumThreads or parallel call in the child then waits forever for threads that do
    not exist (seen: SIFT workers hung after OCR had run cv2 in the parent). With one
    thread OpenCV keeps no pool, so the fork is clean. The parent only stores results, so
    it loses nothing by running OpenCV single-threaded.
    """
    import sys

    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "setNumThreads"):
        cv2.setNumThreads(1)


def _start_method() -> str:
    """fork where the OS has it: workers start fast and a user's script or notebook without
    an ``if __name__ == "__main__"`` guard still works (spawn would re-run it in every
    worker). Workers only decode, hash and extract; they never touch the parent's threads'
    state (progress bar, SQLite connection), which is what makes fork unsafe elsewhere."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def _pool_is_broken(pool: ProcessPoolExecutor) -> bool:
    return bool(getattr(pool, "_broken", False))


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop workers now (Ctrl-C): their unfinished batches are simply not stored."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
