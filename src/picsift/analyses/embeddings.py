"""`picsift embed`: store an embedding for every media (resumable, batched, all cores)."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


CHUNK_ROWS = 8192  # rows per streamed chunk: 8192 x 1280 float32 = 42 MB


class VectorSource(Protocol):
    """Rows of vectors that can be read in chunks or picked by position: a matrix in memory
    (`ArrayVectors`) or the stored parts of a workspace (`EmbeddingStream`), so an analysis
    written against this runs the same on both."""

    def __len__(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def take(self, positions: np.ndarray) -> np.ndarray: ...

    def chunks(self, positions: np.ndarray | None = None, rows: int = CHUNK_ROWS
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


class ArrayVectors:
    """A float32 matrix already in memory, seen as a `VectorSource` (tests, small callers)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def take(self, positions: np.ndarray) -> np.ndarray:
        return self.matrix[np.asarray(positions, dtype=np.int64)]

    def chunks(self, positions: np.ndarray | None = None, rows: int = CHUNK_ROWS
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        wanted = np.arange(len(self)) if positions is None else np.asarray(positions, np.int64)
        for start in range(0, len(wanted), rows):
            picked = wanted[start : start + rows]
            yield picked, self.matrix[picked]


def _part_array(part: Path, array: str) -> np.ndarray:
    """One array of a part's .npz (only that member is decompressed)."""
    with np.load(part.with_suffix(".npz")) as data:
        return np.asarray(data[array])


class EmbeddingStream:
    """The stored vectors of one embedding array, read part by part, never all at once.

    Which rows count is decided from the parts' media_id columns alone: a media embedded
    twice keeps its latest row, and ``media`` (when given) keeps only those media. Rows are
    numbered 0..N-1 in storage order, the order `load_embeddings` returns. Memory: the ids
    (O(N)) plus one part and one chunk of vectors while reading.
    """

    def __init__(self, ws: Workspace, model: str = DEFAULT_MODEL, array: str = "embedding",
                 media: Collection[str] | None = None) -> None:
        import pyarrow.parquet as pq

        self.array = array
        parts = embedding_set(ws, model).parts()
        part_ids = [pq.read_table(p, columns=["media_id"]).column(0).to_pylist() for p in parts]
        # storage row of each media's latest vector (a plain int per media: O(N), small)
        last = {m: i for i, m in enumerate(itertools.chain.from_iterable(part_ids))}
        self.parts: list[tuple[Path, np.ndarray]] = []  # part, its rows that count
        self.ids: list[str] = []
        offset = 0
        for part, ids in zip(parts, part_ids):
            rows = [r for r, m in enumerate(ids)
                    if last[m] == offset + r and (media is None or m in media)]
            offset += len(ids)
            if rows:
                self.parts.append((part, np.array(rows, dtype=np.int64)))
                self.ids.extend(ids[r] for r in rows)
        # position of each part's first row: a row's part is found by binary search
        self.starts = np.cumsum([0] + [len(rows) for _p, rows in self.parts])
        self._dim: int | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        if self._dim is None:
            if not self.parts:
                raise PicsiftError("no stored embeddings to read")
            self._dim = int(_part_array(self.parts[0][0], self.array).shape[1])
        return self._dim

    def _rows_of(self, k: int) -> np.ndarray:
        part, rows = self.parts[k]
        return _part_array(part, self.array)[rows].astype(np.float32)

    def chunks(self, positions: np.ndarray | None = None, rows: int = CHUNK_ROWS
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(positions, float32 vectors) of at most ``rows`` rows at a time, in the order of
        ``positions`` (default: every row), which must be increasing. Parts holding none of
        the wanted rows are not read."""
        wanted = np.arange(len(self)) if positions is None else np.asarray(positions, np.int64)
        if len(wanted) and np.any(np.diff(wanted) <= 0):
            raise ValueError("chunks() needs increasing positions")
        part_of = np.searchsorted(self.starts, wanted, side="right") - 1
        pending_pos: list[np.ndarray] = []
        pending_vec: list[np.ndarray] = []
        held = 0
        bounds = np.flatnonzero(np.diff(part_of)) + 1
        for group in np.split(np.arange(len(wanted)), bounds) if len(wanted) else []:
            k = int(part_of[group[0]])
            vectors = self._rows_of(k)[wanted[group] - self.starts[k]]
            for start in range(0, len(group), rows):  # a part bigger than a chunk is cut
                pending_pos.append(wanted[group[start : start + rows]])
                pending_vec.append(vectors[start : start + rows])
                held += len(pending_pos[-1])
                while held >= rows:
                    pos, vec = np.concatenate(pending_pos), np.concatenate(pending_vec)
                    yield pos[:rows], vec[:rows]
                    pending_pos, pending_vec = [pos[rows:]], [vec[rows:]]
                    held -= rows
        if held:
            yield np.concatenate(pending_pos), np.concatenate(pending_vec)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """float32 vectors of the given row positions, in their order (any order, repeats
        allowed), reading only the parts that hold them: for samples, not for everything."""
        positions = np.asarray(positions, dtype=np.int64)
        unique, inverse, counts = np.unique(positions, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        by_unique = np.argsort(inverse, kind="stable")  # output rows grouped by position
        ends = np.cumsum(counts)
        out = np.empty((len(positions), self.dim if self.parts else 0), np.float32)
        done = 0  # unique positions read so far
        for pos, vectors in self.chunks(unique):
            first = ends[done - 1] if done else 0
            rows = by_unique[first : ends[done + len(pos) - 1]]
            out[rows] = vectors[inverse[rows] - done]  # straight into place: one matrix
            done += len(pos)
        return out

    def positions_of(self, media_ids: Iterable[str]) -> np.ndarray:
        """Row positions of the given media (those without a stored vector are left out)."""
        index = {m: i for i, m in enumerate(self.ids)}
        return np.array(sorted(index[m] for m in media_ids if m in index), dtype=np.int64)


def iter_embeddings(ws: Workspace, model: str = DEFAULT_MODEL, array: str = "embedding",
                    media: Collection[str] | None = None, rows: int = CHUNK_ROWS
                    ) -> Iterator[tuple[list[str], np.ndarray]]:
    """(media ids, float32 chunk) of every stored vector, latest wins, ``rows`` at a time."""
    stream = EmbeddingStream(ws, model, array, media)
    if not len(stream):
        raise PicsiftError(f"no embeddings in {ws.dir}: run 'picsift embed' first")
    for positions, vectors in stream.chunks(rows=rows):
        yield [stream.ids[int(p)] for p in positions], vectors


def load_embeddings(ws: Workspace, model: str = DEFAULT_MODEL, array: str = "embedding"
                    ) -> tuple[list[str], np.ndarray]:
    """(media ids, float32 matrix) of one stored array, in storage order (latest wins).

    The whole matrix in memory (N x dim x 4 bytes): only for callers that know N is small.
    Corpus-wide analyses stream with `EmbeddingStream` / `iter_embeddings` instead.
    """
    stream = EmbeddingStream(ws, model, array)
    if not len(stream):
        raise PicsiftError(f"no embeddings in {ws.dir}: run 'picsift embed' first")
    return stream.ids, stream.take(np.arange(len(stream)))
