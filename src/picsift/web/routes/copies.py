"""Copies: clusters as galleries (largest first, filter by size) and the pair inspector."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse, Response

from picsift.web.context import ctx_of
from picsift.web.copies_data import copy_tables, pair_row, relation_text
from picsift.web.data import captions
from picsift.web.routes import pager
from picsift.web.security import check_media_id

router = APIRouter()
CLUSTERS_PER_PAGE = 20
MEMBERS_SHOWN = 24


@router.get("/copies")
def copies_page(request: Request, page: int = 1, min_size: int = 2,
                max_size: int | None = None) -> Response:
    ctx = ctx_of(request)
    tables = copy_tables(ctx)
    if not tables.available:
        return ctx.render(request, "copies.html", available=False)
    min_size = max(2, min_size)
    chosen = [(c, n) for c, n in tables.order
              if n >= min_size and (max_size is None or n <= max_size)]
    pages = pager(page, CLUSTERS_PER_PAGE, len(chosen))
    groups = []
    ids: list[str] = []
    for cluster_id, size in chosen[pages.offset:pages.offset + pages.size]:
        members = tables.members[cluster_id]
        shown = members[:MEMBERS_SHOWN]
        ids += [m["image_id"] for m in shown]
        groups.append({"id": cluster_id, "size": size, "members": shown,
                       "quality": members[0].get("quality"), "more": size - len(shown)})
    sizes = sorted({n for _, n in tables.order}, reverse=True)
    n_clustered = sum(n for _, n in tables.order)
    return ctx.render(request, "copies.html", available=True, groups=groups, pages=pages,
                      names=captions(ctx.ws(), ids), relation_text=relation_text,
                      min_size=min_size, max_size=max_size, sizes=sizes,
                      n_clusters=len(tables.order), n_clustered=n_clustered,
                      n_alone=len(tables.by_media) - n_clustered, total=len(chosen))


@router.get("/copies/cluster/{cluster_id}")
def copy_cluster_page(request: Request, cluster_id: int, page: int = 1) -> Response:
    ctx = ctx_of(request)
    tables = copy_tables(ctx)
    key = _cluster_key(tables, cluster_id)
    members = tables.members[key]
    pages = pager(page, ctx.page_size, len(members))
    shown = members[pages.offset:pages.offset + pages.size]
    ids = {m["image_id"] for m in members}
    pairs: list[dict[str, Any]] = []
    if not tables.pairs.empty:
        frame = tables.pairs
        inside = frame[frame["query_image_id"].isin(ids) & frame["result_image_id"].isin(ids)]
        seen: set[tuple[str, str]] = set()
        for row in inside.sort_values("nb_match_ransac", ascending=False).to_dict("records"):
            key_pair = tuple(sorted((row["query_image_id"], row["result_image_id"])))
            if key_pair in seen:
                continue  # one direction per pair is enough here
            seen.add(key_pair)  # type: ignore[arg-type]
            pairs.append(row)
            if len(pairs) >= 200:
                break
    names = captions(ctx.ws(), list(ids))
    return ctx.render(request, "copies_cluster.html", cluster_id=key, members=shown,
                      size=len(members), pages=pages, pairs=pairs, names=names,
                      relation_text=relation_text, quality=members[0].get("quality"))


def _cluster_key(tables: Any, cluster_id: int) -> Any:
    if not tables.available:
        raise HTTPException(404, "no copy clusters yet: run 'picsift copies'")
    for key in tables.members:
        if str(key) == str(cluster_id):
            return key
    raise HTTPException(404, "no such copy cluster")


@router.get("/copies/pair")
def pair_page(request: Request, query: str, result: str) -> Response:
    ctx = ctx_of(request)
    check_media_id(query)
    check_media_id(result)
    tables = copy_tables(ctx)
    row = pair_row(tables, query, result) if tables.available else None
    if row is None:
        raise HTTPException(404, "these two images are not a verified copy pair")
    names = captions(ctx.ws(), [query, result])
    reverse = pair_row(tables, result, query)
    return ctx.render(request, "pair.html", row=row, names=names, query=query, result=result,
                      relation_text=relation_text, has_reverse=reverse is not None)


@router.get("/api/copies/region")
def pair_region(request: Request, query: str, result: str) -> Response:
    """JSON: each image's frame drawn in the other, inliers and their hulls (working pixels)."""
    from picsift.web.regions import matched_region

    ctx = ctx_of(request)
    check_media_id(query)
    check_media_id(result)
    tables = copy_tables(ctx)
    row = pair_row(tables, query, result) if tables.available else None
    if row is None:
        raise HTTPException(404, "not a verified pair")
    region = matched_region(ctx, query, result, bool(row["mirrored"]), tables.options)
    if region is None:
        raise HTTPException(404, "the matched region cannot be recomputed (features missing)")
    return JSONResponse(region)
