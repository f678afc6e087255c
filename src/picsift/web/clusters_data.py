"""Semantic clusters (`picsift cluster`) for the Clusters page, and the clickable 2-D map.

The map uses the same layout as clusters_map.png (analyses/cluster_map.py: t-SNE, PCA above
5000 images), the same colours and the same bounded sample (at most 20,000 images, every
cluster represented; only those embeddings are read), but is drawn in the browser so a click
finds the image.
t-SNE is slow, so coordinates are computed once per clustering and kept on disk in
``<workspace>/web/map-<clustering>.json``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from picsift.errors import PicsiftError
from picsift.web.context import WebContext

_MAP_LOCK = threading.Lock()


@dataclass
class ClusterTables:
    available: bool
    table: Any                                  # path, media_id, cluster, silhouette, round
    summary: list[dict[str, Any]]               # one row per cluster, clusters first, -1 last
    members: dict[int, list[str]]               # cluster -> media ids by path
    by_media: dict[str, dict[str, Any]]
    params: dict[str, Any]


def cluster_tables(ctx: WebContext) -> ClusterTables:
    def build() -> ClusterTables:
        from picsift.analyses.clusters import FEATURE_NAME, load_clusters

        ws = ctx.ws()
        try:
            table = load_clusters(ws)
        except PicsiftError:
            return ClusterTables(False, None, [], {}, {}, {})
        row = ws.query("SELECT params FROM feature_sets WHERE name = ? ORDER BY created DESC "
                       "LIMIT 1", (FEATURE_NAME,))
        params = json.loads(row[0]["params"]) if row else {}
        members: dict[int, list[str]] = {}
        by_media: dict[str, dict[str, Any]] = {}
        for rec in table.to_dict("records"):
            members.setdefault(int(rec["cluster"]), []).append(rec["media_id"])
            by_media[rec["media_id"]] = rec
        summary = []
        for cluster, ids in members.items():
            sil = by_media[ids[0]].get("silhouette")
            summary.append({"cluster": cluster, "size": len(ids),
                            "silhouette": None if sil is None or sil != sil else float(sil),
                            "round": int(by_media[ids[0]].get("round") or 0)})
        summary.sort(key=lambda s: (s["cluster"] < 1, -s["size"], s["cluster"]))
        return ClusterTables(True, table, summary, members, by_media, params)

    return ctx.cache.get(ctx.ws(), "cluster_tables", build)


def map_points(ctx: WebContext) -> dict[str, Any]:
    """{"method", "total", "points": [[x, y, cluster, media_id], ...] (a sample when
    total > len(points)), "colours": {cluster: "#rrggbb"}}."""
    tables = cluster_tables(ctx)
    if not tables.available:
        raise PicsiftError("no clusters yet: run 'picsift cluster'")
    # keyed by the clustering itself (params + when it was stored), not by every scan
    latest = ctx.ws().query("SELECT params_hash, created FROM feature_sets WHERE name = "
                            "'clusters' ORDER BY created DESC LIMIT 1")
    key = f"{latest[0]['params_hash']}-{int(latest[0]['created'] * 1000)}" if latest else "none"
    folder = ctx.writable_dir("web")
    target = folder / f"map-{key}.json"
    with _MAP_LOCK:
        if target.exists():
            return json.loads(target.read_text())  # type: ignore[no-any-return]
        from picsift.analyses.cluster_map import cluster_colour, map_layout, map_sample
        from picsift.analyses.clusters import MAP_MAX_POINTS
        from picsift.analyses.embeddings import DEFAULT_MODEL, EmbeddingStream

        model = tables.params.get("model", DEFAULT_MODEL)
        seed = int(tables.params.get("seed", 0))
        rows = map_sample(tables.table["cluster"].to_numpy(), MAP_MAX_POINTS, seed)
        wanted = tables.table["media_id"].to_numpy()[rows]
        stream = EmbeddingStream(ctx.ws(), model, media=set(wanted))
        position = {m: i for i, m in enumerate(stream.ids)}
        media = [m for m in wanted if m in position]
        coords, method = map_layout(stream.take(np.array([position[m] for m in media],
                                                         dtype=np.int64)), seed=seed)
        if len(coords):
            low, high = coords.min(axis=0), coords.max(axis=0)
            coords = (coords - low) / np.where(high - low > 0, high - low, 1.0)
        clusters = [int(tables.by_media[m]["cluster"]) for m in media]
        data = {"method": method, "total": len(tables.table),
                "points": [[round(float(x), 4), round(float(y), 4), c, m]
                           for (x, y), c, m in zip(coords, clusters, media)],
                "colours": {str(c): "#%02x%02x%02x" % cluster_colour(c) for c in set(clusters)}}
        for old in folder.glob("map-*.json"):  # keep only the current state's layout
            old.unlink(missing_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, target)
        return data
