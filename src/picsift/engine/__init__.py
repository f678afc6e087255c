"""How work runs: the one place that decides batching, processes and progress."""

from picsift.engine.local import Engine, LocalEngine, default_workers
from picsift.engine.progress import ProgressReporter

__all__ = ["Engine", "LocalEngine", "ProgressReporter", "default_workers"]
