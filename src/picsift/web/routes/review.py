"""Review a sort: one image at a time, keyboard shortcuts, corrections saved as a truth CSV."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from starlette.responses import FileResponse, RedirectResponse, Response

from picsift.errors import PicsiftError
from picsift.web.context import ctx_of
from picsift.web.data import captions
from picsift.web.review_data import (coders, list_sorts, read_truth, register_sort,
                                     review_order, set_truth, sort_labels, sort_results, tasks,
                                     truth_path)
from picsift.web.security import MEDIA_ID, check_slug, require_write_token

router = APIRouter()
ORDERS = ("file", "unsure-first")
MAX_CSV = 64 * 1024 * 1024


@router.get("/review")
def review_index(request: Request) -> Response:
    ctx = ctx_of(request)
    from picsift.web.clusters_data import cluster_tables

    task_info = {kind: {"exists": task.source.exists(), "source": task.source,
                        "coders": coders(ctx, kind)} for kind, task in tasks(ctx).items()}
    return ctx.render(request, "review.html", sorts=list_sorts(ctx), tasks=task_info,
                      has_clusters=cluster_tables(ctx).available)


@router.post("/review/sorts", dependencies=[Depends(require_write_token)])
async def upload_sort(request: Request, file: UploadFile) -> Response:
    ctx = ctx_of(request)
    data = await file.read(MAX_CSV + 1)
    if len(data) > MAX_CSV:
        raise PicsiftError("the CSV is too large")
    sort_id = register_sort(ctx, file.filename or "sort.csv", data)
    return RedirectResponse(f"/review/sort/{sort_id}", status_code=303)


def _sort(ctx, sort_id: str):  # type: ignore[no-untyped-def]
    check_slug(sort_id, "sort id")
    try:
        return sort_results(ctx, sort_id)
    except PicsiftError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/review/sort/{sort_id}")
def review_sort(request: Request, sort_id: str, i: int = 0, order: str = "file",
                only: str = "") -> Response:
    ctx = ctx_of(request)
    frame = _sort(ctx, sort_id)
    order = order if order in ORDERS else "file"
    labels = sort_labels(frame)
    only = only if only in labels else ""
    rows = review_order(frame, order, only or None)
    truth = read_truth(ctx, sort_id)
    values = {"sort_id": sort_id, "order": order, "only": only, "labels": labels,
              "orders": ORDERS, "total": len(rows), "reviewed": len(truth),
              "truth_file": truth_path(ctx, sort_id)}
    if not rows:
        return ctx.render(request, "review_sort.html", row=None, **values)
    i = min(max(0, i), len(rows) - 1)
    row = frame.loc[rows[i]].to_dict()
    media_id = row.get("media_id", "")
    scores = sorted(((k[len("score:"):], float(v or 0)) for k, v in row.items()
                     if k.startswith("score:") and v != ""), key=lambda kv: -kv[1])
    predicted = str(row.get("label", "")).split(";")[0]
    current = truth.get(row["path"])
    name = captions(ctx.ws(), [media_id]).get(media_id) if MEDIA_ID.match(media_id) else None
    return ctx.render(request, "review_sort.html", row=row, i=i, media_id=media_id
                      if MEDIA_ID.match(media_id) else "", scores=scores, predicted=predicted,
                      current=current, name=name or row["path"], **values)


@router.post("/review/sort/{sort_id}/label", dependencies=[Depends(require_write_token)])
def review_label(request: Request, sort_id: str, i: int = Form(...), label: str = Form(""),
                 action: str = Form("set"), order: str = Form("file"),
                 only: str = Form("")) -> Response:
    """Set (or clear) the true label of item ``i`` of the current order, then go to the next."""
    ctx = ctx_of(request)
    frame = _sort(ctx, sort_id)
    labels = sort_labels(frame)
    rows = review_order(frame, order if order in ORDERS else "file",
                        only if only in labels else None)
    if not 0 <= i < len(rows):
        raise HTTPException(400, "no such item")
    row = frame.loc[rows[i]].to_dict()
    if action == "clear":
        set_truth(ctx, sort_id, row, None)
        step = 0
    else:
        if action == "confirm":
            label = str(row.get("label", "")).split(";")[0]
        if label not in labels:
            raise HTTPException(400, "unknown label")
        set_truth(ctx, sort_id, row, label)
        step = 1
    query = urlencode({"i": min(i + step, len(rows) - 1), "order": order, "only": only})
    return RedirectResponse(f"/review/sort/{sort_id}?{query}", status_code=303)


@router.get("/review/sort/{sort_id}/truth.csv")
def truth_csv(request: Request, sort_id: str) -> Response:
    ctx = ctx_of(request)
    _sort(ctx, sort_id)
    path = truth_path(ctx, sort_id)
    if not path.exists():
        raise HTTPException(404, "nothing reviewed yet")
    return FileResponse(path, media_type="text/csv", filename=f"{sort_id}-truth.csv")


@router.get("/review/sort/{sort_id}/results.csv")
def results_csv(request: Request, sort_id: str) -> Response:
    ctx = ctx_of(request)
    _sort(ctx, sort_id)
    return FileResponse(ctx.workspace_dir / "annotations" / "sorts" / f"{sort_id}.csv",
                        media_type="text/csv", filename=f"{sort_id}.csv")
