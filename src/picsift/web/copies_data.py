"""Copy clusters and pairs for the Copies page, built once per workspace state.

The tables are the ones `picsift copies` exports (analyses/copies/tables.py), with the options
last used in this workspace; the page pages through them instead of rebuilding them per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from picsift.web.context import WebContext


@dataclass
class CopyTables:
    """clusters: one row per path; groups: cluster id -> member rows (media level), biggest first."""

    available: bool
    clusters: Any
    pairs: Any
    order: list[tuple[Any, int]]          # (cluster_id, size) of clusters with 2+ media, biggest first
    members: dict[Any, list[dict[str, Any]]]
    by_media: dict[str, dict[str, Any]]
    options: Any = None


def _options(ctx: WebContext) -> Any:
    from picsift.cli.copies import _options as saved_options

    return saved_options(ctx.ws(), {})


def copy_tables(ctx: WebContext) -> CopyTables:
    def build() -> CopyTables:
        import pandas as pd

        from picsift.analyses.copies.tables import clusters_table, pairs_table

        ws = ctx.ws()
        if not ws.scalar("SELECT COUNT(*) FROM feature_sets WHERE name = 'copies'"):
            empty = pd.DataFrame()
            return CopyTables(False, empty, empty, [], {}, {})
        options = _options(ctx)
        clusters = clusters_table(ws, options)
        pairs = pairs_table(ws, options)
        # one entry per media (exact duplicates are one media at several paths)
        media = clusters.drop_duplicates("image_id", keep="first")
        members: dict[Any, list[dict[str, Any]]] = {}
        by_media: dict[str, dict[str, Any]] = {}
        n_paths = clusters.groupby("image_id").size().to_dict()
        for row in media.to_dict("records"):
            row["n_paths"] = int(n_paths.get(row["image_id"], 1))
            members.setdefault(row["cluster_id"], []).append(row)
            by_media[row["image_id"]] = row
        for rows in members.values():  # representative first, then by relation and path
            rows.sort(key=lambda r: (r["image_id"] != r["representative_id"], str(r["relation"]),
                                     str(r["path"])))
        order = sorted(((c, len(rows)) for c, rows in members.items() if len(rows) > 1),
                       key=lambda t: (-t[1], str(t[0])))
        return CopyTables(True, clusters, pairs, order, members, by_media, options)

    return ctx.cache.get(ctx.ws(), "copy_tables", build)


def relation_text(relation: Any, mirrored: bool = False, other: str = "the representative") -> str:
    """How an image relates to ``other`` (its cluster's representative, or the other image of
    a pair), in the words of docs/copies.md."""
    text = str(relation or "")
    words = {"inside": f"inside {other} (a crop of it, or pasted into it)",
             "contains": f"contains {other} (it was pasted into this, or cropped from it)",
             "same": "same picture (resized, re-encoded, filtered, captioned)",
             "overlap": "partial overlap (two crops, a collage)",
             "linked": "linked through other copies"}
    for key, said in words.items():
        if text.startswith(key):
            text = said + text[len(key):]
            break
    if mirrored and "mirror" not in text:
        text += ", mirrored"
    return text


def pairs_of(tables: CopyTables, media_id: str) -> list[dict[str, Any]]:
    """Verified pairs in which a media is the query or the result."""
    if tables.pairs.empty:
        return []
    frame = tables.pairs
    hits = frame[(frame["query_image_id"] == media_id) | (frame["result_image_id"] == media_id)]
    return hits.to_dict("records")


def pair_row(tables: CopyTables, query: str, result: str) -> dict[str, Any] | None:
    if tables.pairs.empty:
        return None
    frame = tables.pairs
    hit = frame[(frame["query_image_id"] == query) & (frame["result_image_id"] == result)]
    return hit.iloc[0].to_dict() if len(hit) else None
