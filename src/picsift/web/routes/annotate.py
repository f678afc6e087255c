"""Annotation: code a stratified sample or validation pairs; one coder CSV per coder."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from picsift.errors import PicsiftError
from picsift.web.context import ctx_of
from picsift.web.data import captions
from picsift.web.review_data import (coder_path, coder_table, set_code, tasks)
from picsift.web.security import MEDIA_ID, check_slug, require_write_token

router = APIRouter()
PAIR_CODES = ("yes", "no", "unsure")


def _task(ctx, kind: str):  # type: ignore[no-untyped-def]
    known = tasks(ctx)
    if kind not in known:
        raise HTTPException(404, "no such annotation task")
    return known[kind]


@router.post("/annotate/create", dependencies=[Depends(require_write_token)])
def create_task(request: Request, kind: str = Form(...), per_cluster: int = Form(10),
                n: int = Form(200), seed: int = Form(0)) -> Response:
    """Draw the sample (`picsift sample`) or the pairs (`picsift validate-pairs`) here."""
    from picsift.analyses.annotation import stratified_sample, validation_pairs

    ctx = ctx_of(request)
    task = _task(ctx, kind)
    ws = ctx.ws()
    if kind == "sample":
        stratified_sample(ws, max(1, min(per_cluster, 1000)), task.source.parent, seed)
    else:
        validation_pairs(ws, max(1, min(n, 100_000)), task.source, seed)
    return RedirectResponse("/review#annotate", status_code=303)


@router.get("/annotate/{kind}")
def annotate_page(request: Request, kind: str, coder: str = "", i: int = -1) -> Response:
    ctx = ctx_of(request)
    task = _task(ctx, kind)
    if not coder:
        return ctx.render(request, "annotate_start.html", kind=kind, exists=task.source.exists())
    check_slug(coder, "coder name")
    frame = coder_table(ctx, task, coder)
    codes = frame[task.column].fillna("").str.strip()
    if i < 0:  # start at the first item not coded yet
        todo = [n for n, c in enumerate(codes) if not c]
        i = todo[0] if todo else 0
    i = min(max(0, i), max(0, len(frame) - 1))
    if len(frame) == 0:
        raise PicsiftError("the task has no items")
    row = frame.iloc[i].to_dict()
    used = sorted({c for c in codes if c})
    values = {"kind": kind, "coder": coder, "i": i, "total": len(frame),
              "coded": int((codes != "").sum()), "row": row, "current": codes.iloc[i],
              "column": task.column, "file": coder_path(ctx, kind, coder),
              "agreement": _agreement_hint(kind)}
    ws = ctx.ws()
    if kind == "sample":
        media_id = row.get("media_id", "")
        media_id = media_id if MEDIA_ID.match(media_id) else _media_of(ws, row.get("path", ""))
        return ctx.render(request, "annotate_sample.html", media_id=media_id, used=used[:9],
                          name=captions(ws, [media_id]).get(media_id, "") if media_id else "",
                          **values)
    a, b = _media_of(ws, row.get("path_a", "")), _media_of(ws, row.get("path_b", ""))
    names = captions(ws, [m for m in (a, b) if m])
    return ctx.render(request, "annotate_pairs.html", a=a, b=b, names=names, codes=PAIR_CODES,
                      **values)


def _media_of(ws, path: str) -> str:  # type: ignore[no-untyped-def]
    row = ws.query("SELECT media_id FROM files WHERE path = ?", (path,))
    return row[0]["media_id"] if row else ""


def _agreement_hint(kind: str) -> str:
    if kind == "pairs":
        return "picsift agreement pairs-A.csv pairs-B.csv --column same --key pair"
    return "picsift agreement sample-A.csv sample-B.csv"


@router.post("/annotate/{kind}/code", dependencies=[Depends(require_write_token)])
def annotate_code(request: Request, kind: str, coder: str = Form(...), i: int = Form(...),
                  code: str = Form(""), pick: str = Form("")) -> Response:
    """Save one item's code (a typed code, or ``pick``: a code used before), go to the next."""
    ctx = ctx_of(request)
    code = pick or code
    task = _task(ctx, kind)
    check_slug(coder, "coder name")
    code = " ".join(code.split())[:200]
    if kind == "pairs" and code and code not in PAIR_CODES:
        raise HTTPException(400, f"code pairs as {', '.join(PAIR_CODES)}")
    set_code(ctx, task, coder, i, code)
    total = len(coder_table(ctx, task, coder))
    query = urlencode({"coder": coder, "i": min(i + (1 if code else 0), max(0, total - 1))})
    return RedirectResponse(f"/annotate/{kind}?{query}", status_code=303)


@router.get("/annotate/{kind}/{coder}.csv")
def coder_csv(request: Request, kind: str, coder: str) -> Response:
    ctx = ctx_of(request)
    _task(ctx, kind)
    check_slug(coder, "coder name")
    path = coder_path(ctx, kind, coder)
    if not path.exists():
        raise HTTPException(404, "this coder has coded nothing yet")
    return FileResponse(path, media_type="text/csv", filename=path.name)
