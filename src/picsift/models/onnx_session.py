"""onnxruntime sessions, one per model file per process, on the best provider available."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=8)
def onnx_session(path: str, threads: int = 0) -> Any:
    """A cached InferenceSession; CUDA when onnxruntime-gpu sees a GPU, else CPU.

    ``threads`` limits intra-op threads (0 = onnxruntime's choice, all cores); the engine
    passes 1 per worker process so that processes, not threads, share the cores.
    """
    import onnxruntime as ort

    if not Path(path).exists():
        from picsift.errors import PicsiftError

        raise PicsiftError(f"model file missing: {path}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if os.environ.get("PICSIFT_DEVICE", "").lower() == "cpu":
        wanted = ["CPUExecutionProvider"]
    providers = [p for p in wanted if p in ort.get_available_providers()]
    return ort.InferenceSession(path, sess_options=options, providers=providers)
