"""Step 5: the copy graph and its clusters.

Nodes are media, edges verified pairs (both directions merged). ``components`` puts every
connected group in one cluster; ``leiden`` (default) and ``louvain`` run community detection
inside each connected component, so that a chain of links through a collage or a shared
logo does not merge two unrelated groups, while a dense group of copies stays whole (a
clique or a star has no split that raises modularity).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

ALGORITHMS = ("leiden", "louvain", "components")
_INVERSE = {"inside": "contains", "contains": "inside", "same": "same", "overlap": "overlap"}


def undirected_edges(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per unordered pair, keeping the direction with most inliers."""
    found = pairs.dropna(subset=["match_id"])
    if found.empty:
        return found.assign(a=pd.Series(dtype=str), b=pd.Series(dtype=str))
    a = np.where(found["query_id"] < found["match_id"], found["query_id"], found["match_id"])
    b = np.where(found["query_id"] < found["match_id"], found["match_id"], found["query_id"])
    frame = found.assign(a=a, b=b).sort_values("inliers", ascending=False)
    return frame.drop_duplicates(["a", "b"]).reset_index(drop=True)


MIN_COMMUNITY = 4         # a split must leave at least this many images on each side
MAX_BRIDGE_DENSITY = 0.3  # ... and few links between the sides, relative to inside them
SEED = 0                  # community detection is randomised: fixed, so reruns agree


def _merge_weak_splits(labels: list[int], edges: list[tuple[int, int]]) -> list[int]:
    """Undo community splits that are not a clear bridge between two copy groups.

    Modularity splits any sparse component, including genuine chains of copies (a crop of a
    crop of a repost). A split is kept only when both sides have MIN_COMMUNITY images and the
    link density between them is below MAX_BRIDGE_DENSITY times the density inside them,
    which is what a collage or a shared logo between two unrelated groups looks like. When in
    doubt, merge.
    """
    size = Counter(labels)
    inside: Counter[int] = Counter()
    between: Counter[tuple[int, int]] = Counter()
    for u, v in edges:
        a, b = labels[u], labels[v]
        if a == b:
            inside[a] += 1
        else:
            between[(min(a, b), max(a, b))] += 1

    def density(c: int) -> float:
        possible = size[c] * (size[c] - 1) / 2
        return inside[c] / possible if possible else 1.0

    parent = {c: c for c in size}

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for (a, b), n in sorted(between.items(), key=lambda item: -item[1]):
        small = min(size[a], size[b]) < MIN_COMMUNITY
        dense = n / (size[a] * size[b]) >= MAX_BRIDGE_DENSITY * min(density(a), density(b))
        if small or dense:
            parent[find(a)] = find(b)
    return [find(c) for c in labels]


def _communities(n: int, edges: list[tuple[int, int]], algo: str, resolution: float) -> list[int]:
    import random

    import igraph as ig

    ig.set_random_number_generator(random.Random(SEED))
    try:
        return _communities_seeded(ig, n, edges, algo, resolution)
    finally:
        ig.set_random_number_generator(random)


def _communities_seeded(ig: Any, n: int, edges: list[tuple[int, int]], algo: str,
                        resolution: float) -> list[int]:
    graph = ig.Graph(n=n, edges=edges)
    membership = [-1] * n
    next_label = 0
    for component in graph.connected_components():
        if algo == "components" or len(component) <= 2:
            for v in component:
                membership[v] = next_label
            next_label += 1
            continue
        sub = graph.induced_subgraph(component)
        if algo == "leiden":
            parts = sub.community_leiden(objective_function="modularity", resolution=resolution,
                                         n_iterations=10)
        else:
            parts = sub.community_multilevel(resolution=resolution)
        labels = _merge_weak_splits(parts.membership, sub.get_edgelist())
        remap: dict[int, int] = {}
        for v, label in zip(component, labels):
            if label not in remap:
                remap[label] = next_label
                next_label += 1
            membership[v] = remap[label]
    return membership


def cluster_media(media_ids: list[str], pairs: pd.DataFrame, *, algo: str = "leiden",
                  resolution: float = 1.0, areas: dict[str, int] | None = None,
                  files_per_media: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per media: cluster id, size, degree, quality, representative and each member's
    relation to its representative.

    Sizes count files (an exact duplicate at three paths counts three), as users see them;
    cluster 0 is the largest.
    """
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown clustering algorithm {algo!r}: use one of {', '.join(ALGORITHMS)}")
    position = {m: i for i, m in enumerate(media_ids)}
    edges_frame = undirected_edges(pairs)
    edges_frame = edges_frame[edges_frame["a"].isin(position) & edges_frame["b"].isin(position)]
    edges = [(position[a], position[b]) for a, b in zip(edges_frame["a"], edges_frame["b"])]
    membership = _communities(len(media_ids), edges, algo, resolution)
    # keep only edges inside a cluster for degrees and quality
    inside = [(u, v) for u, v in edges if membership[u] == membership[v]]
    degree = Counter()
    for u, v in inside:
        degree[u] += 1
        degree[v] += 1
    files_per_media = files_per_media or {}
    sizes = Counter(membership)
    file_sizes: Counter[int] = Counter()
    for v, c in enumerate(membership):
        file_sizes[c] += files_per_media.get(media_ids[v], 1)
    edges_in = Counter(membership[u] for u, _ in inside)
    # stable ids: biggest cluster first, then by first media id
    first_id: dict[int, str] = {}
    for v, c in enumerate(membership):
        if c not in first_id or media_ids[v] < first_id[c]:
            first_id[c] = media_ids[v]
    order = sorted(sizes, key=lambda c: (-file_sizes[c], first_id[c]))
    relabel = {c: i for i, c in enumerate(order)}
    areas = areas or {}
    # Representative: most links; then most shared content with the others (the full photo
    # rather than one crop of it); then the image whose own frame is most entirely matched
    # content (the clean photo rather than a screenshot or a padded, rotated repost).
    own_inside: Counter[str] = Counter()
    shared: Counter[str] = Counter()
    for row in edges_frame.itertuples():
        if membership[position[row.query_id]] == membership[position[row.match_id]]:
            both = float(row.query_inside) + float(row.match_inside)
            own_inside[row.query_id] += float(row.query_inside)
            own_inside[row.match_id] += float(row.match_inside)
            shared[row.query_id] += both
            shared[row.match_id] += both

    def rank(v: int) -> tuple[int, float, float, int, str]:
        media = media_ids[v]
        return (degree[v], round(shared[media], 1), round(own_inside[media], 2),
                areas.get(media, 0), media)

    representative: dict[int, int] = {}
    for v, c in enumerate(membership):
        if c not in representative or rank(v) > rank(representative[c]):
            representative[c] = v
    relation = _relations_to_representative(edges_frame, media_ids, membership, representative)
    rows: list[dict[str, Any]] = []
    for v, c in enumerate(membership):
        n = sizes[c]
        possible = n * (n - 1) / 2
        rows.append({
            "media_id": media_ids[v],
            "cluster_id": relabel[c],
            "cluster_size": file_sizes[c],
            "degree": degree[v],
            "quality": round(edges_in[c] / possible, 4) if possible else 1.0,
            "representative": media_ids[representative[c]],
            "relation": relation[v],
        })
    return pd.DataFrame(rows)


def _relations_to_representative(edges: pd.DataFrame, media_ids: list[str], membership: list[int],
                                 representative: dict[int, int]) -> list[str]:
    """How each member relates to its cluster's representative (direct edge), else 'linked'."""
    direct: dict[tuple[str, str], tuple[str, bool]] = {}
    for row in edges.itertuples():
        direct[(row.query_id, row.match_id)] = (row.relation, bool(row.mirrored))
    sizes = Counter(membership)
    out: list[str] = []
    for v, c in enumerate(membership):
        rep = media_ids[representative[c]]
        me = media_ids[v]
        if me == rep:
            out.append("representative" if sizes[c] > 1 else "alone")  # see tables.py for files
            continue
        if (me, rep) in direct:
            rel, mirrored = direct[(me, rep)]
        elif (rep, me) in direct:
            rel, mirrored = direct[(rep, me)]
            rel = _INVERSE.get(rel, rel)
        else:
            out.append("linked")
            continue
        out.append(rel + (", mirrored" if mirrored else ""))
    return out
