"""`picsift embed`: store an embedding for every media (resumable, batched, all cores)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from picsift.analyses.copies.extract import media_paths
from picsift.engine import ProgressReporter, make_engine
from picsift.errors import PicsiftError
from picsift.features.embedding import EXTRACTOR, VERSION, embed_batch
from picsift.media.decode import DecodeOptions
from picsift.workspace.features import FeatureSet, crash_records
from picsift.workspace.store import Workspace

DEFAULT_MODEL = "efficientnet-lite0"


@dataclass
class EmbedSummary:
    model: str
    embedded: int = 0
    failed: int = 0
    already: int = 0
    seconds: float = 0.0


def model_key(model: str) -> str:
    """The name embeddings are stored under: the packaged default or a pulled hub model."""
    if model == DEFAULT_MODEL:
        return model
    from picsift.models.hub import HubModel

    return str(HubModel.named(model).folder)  # raises a clear error when not pulled


def embedding_set(ws: Workspace, model: str = DEFAULT_MODEL) -> FeatureSet:
    key = model_key(model)
    name = EXTRACTOR if key == DEFAULT_MODEL else f"{EXTRACTOR}_{Path(key).name}"
    return FeatureSet(ws, name, VERSION, {"model": Path(key).name if key != DEFAULT_MODEL else key},
                      model=key)


class _Writer:
    def __init__(self, ws: Workspace, features: FeatureSet, summary: EmbedSummary) -> None:
        self.ws, self.features, self.summary = ws, features, summary

    def store(self, batch: list[tuple[str, str]], records: list[dict[str, Any]]) -> None:
        from picsift.models.image_model import imagenet_classes

        good = [r for r in records if "error" not in r]
        bad = [r for r in records if "error" in r]
        if good:
            names = imagenet_classes()
            classes = np.stack([r["classes"] for r in good])
            probs = np.stack([r["probs"] for r in good])
            columns: dict[str, Any] = {"media_id": [r["media_id"] for r in good]}
            for k in range(min(3, classes.shape[1])):  # readable tags in the exported table
                columns[f"tag{k + 1}"] = [names[int(c)].split(",")[0] for c in classes[:, k]]
                columns[f"tag{k + 1}_p"] = probs[:, k].round(4)
            self.features.write_part(pa.table(columns), {
                "embedding": np.stack([r["embedding"] for r in good]).astype(np.float16),
                "classes": classes, "probs": probs.astype(np.float16),
                "text_space": np.stack([r["text_space"] for r in good]).astype(np.float16),
            })
            self.summary.embedded += len(good)
        if bad:
            self.ws.record_errors("embed", bad)
            self.summary.failed += len(bad)

    def fail(self, batch: list[tuple[str, str]], exc: BaseException) -> None:
        self.store(batch, crash_records(batch, exc))


def embed_workspace(ws: Workspace, model: str = DEFAULT_MODEL, workers: int | None = None,
                    batch_size: int = 16, progress: bool = False, engine: str = "local",
                    address: str | None = None) -> EmbedSummary:
    """Embed every media not yet embedded with ``model``."""
    started = time.monotonic()
    summary = EmbedSummary(model=model_key(model))
    with ws.writing():
        features = embedding_set(ws, model)
        features.register()
        done = features.done_ids()
        failed = {r["path"] for r in ws.query("SELECT path FROM errors WHERE stage = 'embed'")}
        everything = media_paths(ws)
        todo = [(m, p) for m, p in everything if m not in done and p not in failed]
        summary.already = len(everything) - len(todo)
        if todo:
            task = functools.partial(embed_batch, summary.model, DecodeOptions())
            batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
            writer = _Writer(ws, features, summary)
            with ProgressReporter("embed", len(todo), enabled=progress) as bar:
                make_engine(engine, address, workers).map(task, batches, writer.store,
                                                          writer.fail, bar)
    summary.seconds = round(time.monotonic() - started, 2)
    return summary


def load_embeddings(ws: Workspace, model: str = DEFAULT_MODEL, array: str = "embedding"
                    ) -> tuple[list[str], np.ndarray]:
    """(media ids, float32 matrix) of one stored array, in storage order (latest wins)."""
    features = embedding_set(ws, model)
    ids: list[str] = []
    chunks: list[np.ndarray] = []
    import pyarrow.parquet as pq

    for part in features.parts():
        ids.extend(pq.read_table(part, columns=["media_id"]).column(0).to_pylist())
        chunks.append(FeatureSet.arrays_of(part)[array].astype(np.float32))
    if not chunks:
        raise PicsiftError(f"no embeddings in {ws.dir}: run 'picsift embed' first")
    matrix = np.concatenate(chunks)
    position = {m: i for i, m in enumerate(ids)}  # a media embedded twice: keep the last
    keep = np.array(sorted(position.values()))
    return [ids[i] for i in keep], matrix[keep]
