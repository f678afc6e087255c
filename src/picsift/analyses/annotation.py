"""Material for hand-coding a clustering: a stratified sample and random within-cluster pairs.

Both read the latest `picsift cluster` run stored in the workspace, skip unclustered images
(cluster -1), and are reproducible: the same seed on the same clustering gives the same rows.
Neither overwrites an existing output, since coders may already be writing in it.
"""

from __future__ import annotations

import os
import shutil
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd

from picsift.analyses.clusters import load_clusters
from picsift.errors import PicsiftError
from picsift.workspace.store import Workspace

ENUMERATE_PAIRS_UP_TO = 200_000


def _clustered(ws: Workspace) -> pd.DataFrame:
    frame = load_clusters(ws)
    frame = frame[frame["cluster"] > 0].sort_values(["cluster", "media_id"]).reset_index(drop=True)
    if frame.empty:
        raise PicsiftError(f"the latest clustering of {ws.dir} has no clusters to sample from")
    return frame


def _refuse_existing(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise PicsiftError(f"{path} already exists (codes may be in it): delete it or choose "
                           "another --out")


def stratified_sample(ws: Workspace, per_cluster: int, out: str | Path | None = None,
                      seed: int = 0) -> pd.DataFrame:
    """Up to ``per_cluster`` random images of every cluster, copied for coders.

    Writes ``out/sample.csv`` (path, media_id, cluster, file, code: empty, for the coder) and
    ``out/images/NNNN_name`` (the copies the ``file`` column names). Default ``out``:
    ``<workspace>/clusters/sample``.
    """
    if per_cluster < 1:
        raise PicsiftError("--per-cluster must be at least 1")
    folder = Path(out) if out is not None else ws.dir / "clusters" / "sample"
    _refuse_existing(folder / "sample.csv")
    _refuse_existing(folder / "images")
    frame = _clustered(ws)
    rng = np.random.default_rng(seed)
    picked = []
    for _cluster, members in frame.groupby("cluster", sort=True):
        rows = rng.choice(len(members), min(per_cluster, len(members)), replace=False)
        picked.append(members.iloc[np.sort(rows)])
    sample = pd.concat(picked, ignore_index=True)[["path", "media_id", "cluster"]]
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    names = []
    for i, path in enumerate(sample["path"], start=1):
        name = f"{i:04d}_{os.path.basename(path)}"
        shutil.copy2(path, images / name)
        names.append(name)
    sample["file"] = names
    sample["code"] = ""
    sample.to_csv(folder / "sample.csv", index=False)
    return sample


def _pair_indices(sizes: np.ndarray, n: int, rng: np.random.Generator
                  ) -> list[tuple[int, int, int]]:
    """n distinct (cluster index, i, j) with i < j, uniform over all within-cluster pairs."""
    counts = np.array([comb(int(s), 2) for s in sizes], dtype=np.float64)
    total = int(counts.sum())
    if total <= ENUMERATE_PAIRS_UP_TO or n >= total:
        every = [(c, i, j) for c, s in enumerate(sizes) for i in range(s) for j in range(i + 1, s)]
        chosen = rng.choice(len(every), min(n, total), replace=False)
        return [every[k] for k in chosen]
    seen: set[tuple[int, int, int]] = set()
    pairs: list[tuple[int, int, int]] = []
    while len(pairs) < n:  # few collisions: n is far below the number of pairs here
        c = int(rng.choice(len(sizes), p=counts / counts.sum()))
        i, j = sorted(int(x) for x in rng.choice(int(sizes[c]), 2, replace=False))
        if (c, i, j) not in seen:
            seen.add((c, i, j))
            pairs.append((c, i, j))
    return pairs


def validation_pairs(ws: Workspace, n: int = 500, out: str | Path | None = None,
                     seed: int = 0) -> pd.DataFrame:
    """``n`` random pairs of images put in the same cluster, for coding "same or not".

    Pairs are drawn uniformly from all within-cluster pairs without repeats (so the share
    coded "same" estimates the clustering's pairwise precision; big clusters weigh more).
    Writes ``out`` (default ``<workspace>/clusters/pairs.csv``): pair, path_a, path_b,
    cluster, same (empty, for the coder).
    """
    if n < 1:
        raise PicsiftError("--n must be at least 1")
    target = Path(out) if out is not None else ws.dir / "clusters" / "pairs.csv"
    _refuse_existing(target)
    frame = _clustered(ws)
    groups = [members["path"].tolist() for _c, members in frame.groupby("cluster", sort=True)]
    labels = sorted(frame["cluster"].unique())
    rng = np.random.default_rng(seed)
    rows = []
    for c, i, j in _pair_indices(np.array([len(g) for g in groups]), n, rng):
        a, b = (groups[c][i], groups[c][j]) if rng.random() < 0.5 else (groups[c][j], groups[c][i])
        rows.append({"path_a": a, "path_b": b, "cluster": int(labels[c])})
    pairs = pd.DataFrame(rows, columns=["path_a", "path_b", "cluster"])
    pairs.insert(0, "pair", np.arange(1, len(pairs) + 1))
    pairs["same"] = ""
    target.parent.mkdir(parents=True, exist_ok=True)
    pairs.to_csv(target, index=False)
    return pairs
