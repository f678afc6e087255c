"""Clusters: semantic clusters as contact sheets, one cluster's images, and the 2-D map."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import JSONResponse, Response

from picsift.web.clusters_data import cluster_tables, map_points
from picsift.web.context import ctx_of
from picsift.web.data import captions, tiles
from picsift.web.routes import pager

router = APIRouter()
CLUSTERS_PER_PAGE = 20
SHEET = 12


@router.get("/clusters")
def clusters_page(request: Request, page: int = 1) -> Response:
    ctx = ctx_of(request)
    tables = cluster_tables(ctx)
    if not tables.available:
        return ctx.render(request, "clusters.html", available=False)
    pages = pager(page, CLUSTERS_PER_PAGE, len(tables.summary))
    shown = tables.summary[pages.offset:pages.offset + pages.size]
    ids = [m for s in shown for m in tables.members[s["cluster"]][:SHEET]]
    n_clustered = sum(s["size"] for s in tables.summary if s["cluster"] > 0)
    return ctx.render(request, "clusters.html", available=True, clusters=shown, pages=pages,
                      members=tables.members, sheet=SHEET, names=captions(ctx.ws(), ids),
                      params=tables.params, n_clusters=sum(1 for s in tables.summary if s["cluster"] > 0),
                      n_clustered=n_clustered, n_images=len(tables.by_media))


@router.get("/clusters/{cluster}")
def cluster_page(request: Request, cluster: int, page: int = 1) -> Response:
    ctx = ctx_of(request)
    tables = cluster_tables(ctx)
    if not tables.available or cluster not in tables.members:
        raise HTTPException(404, "no such cluster")
    members = tables.members[cluster]
    pages = pager(page, ctx.page_size, len(members))
    summary = next(s for s in tables.summary if s["cluster"] == cluster)
    return ctx.render(request, "cluster.html", cluster=cluster, summary=summary, pages=pages,
                      tiles=tiles(ctx.ws(), members[pages.offset:pages.offset + pages.size]))


@router.get("/api/clusters/map")
def cluster_map(request: Request) -> Response:
    """Points of the 2-D map (x, y in 0..1, cluster, media id); computed once per clustering."""
    return JSONResponse(map_points(ctx_of(request)))
