"""How work runs: the one place that decides batching, processes and progress."""

from __future__ import annotations

from picsift.engine.local import Engine, LocalEngine, default_workers
from picsift.engine.progress import ProgressReporter
from picsift.errors import PicsiftError

ENGINES = ("local", "ray")


def make_engine(name: str = "local", address: str | None = None,
                workers: int | None = None) -> Engine:
    """The engine named on the command line (``--engine``, ``--address``, ``--workers``).

    ``local``: a process pool on this machine (``address`` must be empty). ``ray``: Ray tasks
    on the cluster at ``address`` (``auto``, ``ray://host:port`` or ``local``; default: the
    Ray already initialised in this process, else ``auto``).
    """
    if name == "local":
        if address:
            raise PicsiftError(f"--address {address} needs --engine ray")
        return LocalEngine(workers)
    if name == "ray":
        from picsift.engine.ray_engine import RayEngine, import_ray

        ray = import_ray()
        return RayEngine(address if address or ray.is_initialized() else "auto", workers)
    raise PicsiftError(f"unknown engine {name!r}: use one of {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "LocalEngine", "ProgressReporter", "default_workers",
           "make_engine"]
