"""The copy-detection tables users export, with PIMMI's column names where they mean the same.

pairs: query_image_id, result_image_id, query_path, result_path, nb_match_total (tentative
matches), nb_match_ransac (inliers), ransac_ratio, query_nb_points, query_width,
query_height, result_nb_points, result_width, result_height (as PIMMI), plus picsift's votes,
scale (in original pixels), rotation, mirrored, query_covered/result_covered (share of each
image spanned by the matched region), query_inside/result_inside (share of each image's frame
that lies inside the other) and relation (same, inside, contains, overlap).

clusters: one row per file path: path, image_id, nb_points, degree, cluster_id, quality (as
PIMMI), plus cluster_size, representative_id, representative_path and relation (of the image
to its cluster's representative).
"""

from __future__ import annotations

import pandas as pd

from picsift.analyses.copies.options import CopiesOptions
from picsift.workspace.store import Workspace


def _media_facts(ws: Workspace) -> pd.DataFrame:
    return pd.read_sql_query(
        "SELECT m.media_id, m.width, m.height, "
        "(SELECT MIN(f.path) FROM files f WHERE f.media_id = m.media_id) AS path, "
        "(SELECT MIN(v.path) FROM files v WHERE v.media_id = m.video_id AND v.kind = 'video') "
        "AS video_path, m.frame_time "
        "FROM media m", ws.connect())


def pairs_table(ws: Workspace, options: CopiesOptions) -> pd.DataFrame:
    """Verified pairs, one row per (query, result) direction found."""
    from picsift.analyses.copies.pipeline import load_pairs

    pairs = load_pairs(ws, options)
    facts = _media_facts(ws).set_index("media_id")
    if pairs.empty:
        return pd.DataFrame(columns=[
            "query_image_id", "result_image_id", "query_path", "result_path", "nb_match_total",
            "nb_match_ransac", "ransac_ratio", "query_nb_points", "query_width", "query_height",
            "result_nb_points", "result_width", "result_height", "votes", "scale", "rotation",
            "mirrored", "query_covered", "result_covered", "query_inside", "result_inside",
            "relation"])
    q = facts.reindex(pairs["query_id"])
    r = facts.reindex(pairs["match_id"])
    # scale was measured between working-size images; convert to original pixels
    from picsift.analyses.copies.index import CopyIndex

    index = CopyIndex(ws, options)
    index.load(media_only=True)
    work = pd.DataFrame({"w": index.media.widths, "h": index.media.heights},
                        index=index.media.media_ids)
    qw = work.reindex(pairs["query_id"])["w"].to_numpy(float)
    rw = work.reindex(pairs["match_id"])["w"].to_numpy(float)
    q_factor = qw / q["width"].to_numpy(float)
    r_factor = rw / r["width"].to_numpy(float)
    return pd.DataFrame({
        "query_image_id": pairs["query_id"].to_numpy(),
        "result_image_id": pairs["match_id"].to_numpy(),
        "query_path": q["path"].to_numpy(),
        "result_path": r["path"].to_numpy(),
        "nb_match_total": pairs["matches"].to_numpy(),
        "nb_match_ransac": pairs["inliers"].to_numpy(),
        "ransac_ratio": pairs["inlier_ratio"].to_numpy(),
        "query_nb_points": pairs["query_nb_points"].to_numpy(),
        "query_width": q["width"].to_numpy(),
        "query_height": q["height"].to_numpy(),
        "result_nb_points": pairs["match_nb_points"].to_numpy(),
        "result_width": r["width"].to_numpy(),
        "result_height": r["height"].to_numpy(),
        "votes": pairs["votes"].to_numpy(),
        "scale": (pairs["scale"].to_numpy(float) * q_factor / r_factor).round(4),
        "rotation": pairs["rotation"].to_numpy(),
        "mirrored": pairs["mirrored"].to_numpy(),
        "query_covered": pairs["query_covered"].to_numpy(),
        "result_covered": pairs["match_covered"].to_numpy(),
        "query_inside": pairs["query_inside"].to_numpy(),
        "result_inside": pairs["match_inside"].to_numpy(),
        "relation": pairs["relation"].to_numpy(),
    })


def clusters_table(ws: Workspace, options: CopiesOptions) -> pd.DataFrame:
    """One row per file path with its copy cluster (exact duplicates share a cluster)."""
    from picsift.analyses.copies.pipeline import clusters_feature_set

    data = clusters_feature_set(ws, options).read()
    if data is None:
        return pd.DataFrame(columns=["path", "image_id", "nb_points", "degree", "cluster_id",
                                     "quality", "cluster_size", "representative_id",
                                     "representative_path", "relation"])
    clusters = data.to_pandas()
    files = pd.read_sql_query(
        "SELECT path, media_id FROM files WHERE kind IN ('image', 'frame')", ws.connect())
    facts = _media_facts(ws).set_index("media_id")
    from picsift.analyses.copies.index import CopyIndex

    index = CopyIndex(ws, options)
    index.load(media_only=True)
    points = dict(zip(index.media.media_ids, (int(c) for c in index.media.counts)))
    table = files.merge(clusters, on="media_id", how="inner").sort_values("path")
    # Exact duplicates are one media at several paths: one row per path here.
    duplicate = table.duplicated("media_id", keep="first")
    table.loc[duplicate, "relation"] = "identical bytes"
    alone_dups = (table["relation"] == "alone") & (table["cluster_size"] > 1)
    table.loc[alone_dups, "relation"] = "representative"
    return pd.DataFrame({
        "path": table["path"],
        "image_id": table["media_id"],
        "nb_points": table["media_id"].map(points).fillna(0).astype(int),
        "degree": table["degree"],
        "cluster_id": table["cluster_id"],
        "quality": table["quality"],
        "cluster_size": table["cluster_size"],
        "representative_id": table["representative"],
        "representative_path": facts.reindex(table["representative"])["path"].to_numpy(),
        "relation": table["relation"],
        "video_path": facts.reindex(table["media_id"])["video_path"].to_numpy(),
        "frame_time": facts.reindex(table["media_id"])["frame_time"].to_numpy(),
    }).sort_values(["cluster_size", "cluster_id", "path"], ascending=[False, True, True]
                   ).reset_index(drop=True)
