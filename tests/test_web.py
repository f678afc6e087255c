"""The web app (`picsift serve`) through FastAPI's test client, on a real workspace.

The workspace is built from real pictures: the demo corpus's photos, reposts (crops, mirror,
meme, screenshot) and text posts, plus hostile names: a file whose path reads
``<script>alert(1)</script>.jpg`` (the '/' of ``</script>`` makes ``<script>alert(1)<`` a
folder), one named ``"><img src=x onerror=alert(3)>.jpg``, an HTML page saved as .jpg, and a
picture whose written text is HTML (OCR reads it back as HTML). picsift then really scans,
finds copies, embeds, clusters, reads text (when the text extra is installed) and sorts.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

import picsift
from conftest import DEMO

pytest.importorskip("fastapi", reason="the web extra is not installed")
pytest.importorskip("httpx", reason="the test client needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from picsift.web import create_app  # noqa: E402

TOKEN = "test-token-0123456789"
SCRIPT_NAME = "<script>alert(1)</script>.jpg"
IMG_NAME = '"><img src=x onerror=alert(3)>.jpg'
HTML_TEXT = "<b>bold</b> <script>alert(2)</script>"
SORT_LABELS = "a cat, a space rocket, a screenshot of text, a person"
_BUILT: dict[str, tuple[Path, Path, dict[str, object]]] = {}


def _has_text_extra() -> bool:
    import importlib.util

    return importlib.util.find_spec("rapidocr") is not None


def write_corpus(corpus: Path) -> None:
    """Real photos and reposts, text posts, hostile names, a broken file."""
    for folder in ("photos", "reposts", "posts"):
        shutil.copytree(DEMO / folder, corpus / folder)
    horse = Image.open(DEMO / "photos" / "horse.png").convert("RGB")
    target = corpus / SCRIPT_NAME            # the folder "<script>alert(1)<" holds "script>.jpg"
    target.parent.mkdir(parents=True, exist_ok=True)
    horse.save(target, quality=85)           # re-encoded: a copy of horse.png, not the same bytes
    camera = Image.open(DEMO / "photos" / "camera.jpg").convert("RGB")
    camera.resize((camera.width * 3 // 4, camera.height * 3 // 4)).save(corpus / IMG_NAME, quality=88)
    page = Image.new("RGB", (1000, 300), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=48)
    draw.text((30, 40), HTML_TEXT, fill="black", font=font)
    draw.text((30, 160), "Breaking news today", fill="black", font=font)
    page.save(corpus / "html_text.png")
    (corpus / "broken<b>.jpg").write_bytes(b"<html><script>alert(4)</script></html>")


def build_workspace(root: Path) -> tuple[Path, Path, dict[str, object]]:
    """Corpus and workspace with every analysis the app shows; returns (corpus, ws, facts)."""
    from picsift.analyses.clusters import ClusterOptions, cluster_workspace
    from picsift.analyses.embeddings import embed_workspace
    from picsift.analyses.sort.labels import labels_from_text
    from picsift.analyses.sort.sorter import SortOptions, sort_images

    corpus, ws_dir = root / "corpus", root / "ws"
    write_corpus(corpus)
    ws = picsift.open(corpus, workspace=ws_dir)
    ws.scan(workers=2)
    ws.copies(workers=2)
    embed_workspace(ws, workers=2)
    cluster_workspace(ws, ClusterOptions(k_min=2, k_step=1, stop_size=5), workers=2)
    colors = _run_colors(ws)
    text = _has_text_extra()
    if text:
        from picsift.analyses.text import TextOptions, extract_text

        extract_text(ws, TextOptions(enrich=False), workers=2)
    result = sort_images(corpus, labels_from_text(SORT_LABELS),
                         SortOptions(to=root / "sorted", workers=2), workspace=ws_dir)
    ws.close()
    return corpus, ws_dir, {"text": text, "sort_csv": result.csv, "colors": colors}


def _run_colors(ws: picsift.Workspace) -> bool:
    """`picsift colors` when this checkout has it (it arrives in parallel with the web app)."""
    try:
        from picsift.analyses.colors import ColorOptions, analyse_colors
    except ImportError:
        return False
    analyse_colors(ws, ColorOptions(), workers=2)
    return True


def shared_workspace(factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    """Built once per test session (the browser tests use a copy of it)."""
    if "ws" not in _BUILT:
        _BUILT["ws"] = build_workspace(factory.mktemp("web"))
    return _BUILT["ws"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    return shared_workspace(tmp_path_factory)


@pytest.fixture(scope="module")
def client(built) -> TestClient:
    app = create_app(built[1], TOKEN)
    with TestClient(app) as c:
        assert c.get(f"/?token={TOKEN}").status_code == 200   # sets the cookie
        yield c


def media_id_of(ws_dir: Path, name: str) -> str:
    db = sqlite3.connect(ws_dir / "catalog.sqlite")
    try:
        rows = db.execute("SELECT media_id, path FROM files").fetchall()
    finally:
        db.close()
    hits = [m for m, p in rows if p.endswith("/" + name) or p.endswith(name)]
    assert hits, name
    return hits[0]


def html(client: TestClient, url: str, status: int = 200) -> str:
    response = client.get(url, headers={"accept": "text/html"})
    assert response.status_code == status, (url, response.status_code, response.text[:300])
    return response.text


# ------------------------------------------------------------------ token and security model
def test_every_page_needs_the_token_and_the_cookie_keeps_it(built) -> None:
    app = create_app(built[1], TOKEN)
    with TestClient(app) as fresh:
        assert fresh.get("/").status_code == 403
        assert fresh.get("/?token=wrong").status_code == 403
        assert fresh.get("/images").status_code == 403
        first = fresh.get(f"/?token={TOKEN}")
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert fresh.get("/images").status_code == 200           # the cookie now
        assert fresh.get("/static/style.css").status_code == 200
        headers = first.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_write_actions_need_the_token_in_a_header_or_form_field(client: TestClient, built) -> None:
    data = Path(built[2]["sort_csv"]).read_bytes()  # type: ignore[arg-type]
    files = {"file": ("sort.csv", data, "text/csv")}
    # the cookie alone (what a foreign page could make the browser send) is not enough
    assert client.post("/review/sorts", files=files).status_code == 403
    assert client.post("/review/sorts", files=files, data={"token": "nope"}).status_code == 403
    assert client.post("/annotate/create", data={"kind": "sample"}).status_code == 403
    assert not (built[1] / "annotations" / "sorts").exists() or not any(
        (built[1] / "annotations" / "sorts").iterdir())
    ok = client.post("/review/sorts", files=files, headers={"X-Picsift-Token": TOKEN},
                     follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/review/sort/")


def test_the_host_header_is_checked_when_asked(built) -> None:
    app = create_app(built[1], TOKEN, allowed_hosts=["127.0.0.1", "localhost"])
    with TestClient(app, base_url="http://rebound.example.com") as foreign:
        assert foreign.get(f"/?token={TOKEN}").status_code == 400
    with TestClient(app, base_url="http://127.0.0.1:8765") as local:
        assert local.get(f"/?token={TOKEN}").status_code == 200


def test_path_traversal_is_refused(client: TestClient, built) -> None:
    attempts = [
        "/media/../../../../etc/passwd/thumb", "/media/..%2F..%2F..%2Fetc%2Fpasswd/thumb",
        "/media/%2e%2e%2f%2e%2e%2fcatalog.sqlite/preview", "/media/" + "0" * 64 + "/thumb",
        "/media/" + "a" * 63 + "/original", "/media/ABCDEF/original",
        "/static/../catalog.sqlite", "/static/%2e%2e/catalog.sqlite", "/static/..%2Fcatalog.sqlite",
        "/review/sort/..%2F..%2Fcatalog", "/review/sort/..%2Fsorts/truth.csv",
        "/annotate/sample/..%2F..%2Fcatalog.csv", "/annotate/..%2Fcatalog/x.csv",
        "/copies/pair?query=../../etc/passwd&result=x", "/search?like=../../etc/passwd",
    ]
    secret = (built[1] / "catalog.sqlite").read_bytes()[:16]
    for url in attempts:
        response = client.get(url)
        assert response.status_code in (200, 400, 403, 404, 422), (url, response.status_code)
        assert secret not in response.content and b"root:x:" not in response.content, url
        if url.startswith("/search"):
            assert response.status_code == 200  # the bad id is ignored, not used
    # no route takes a file path: only ids, numbers and safe names
    from starlette.routing import Route

    params = {p for r in client.app.routes if isinstance(r, Route)
              for p in re.findall(r"{(\w+)", r.path)}
    assert params <= {"media_id", "cluster_id", "cluster", "sort_id", "kind", "coder"}


def test_names_ocr_text_and_reasons_are_escaped(client: TestClient, built) -> None:
    images = "".join(html(client, f"/images?page={n}") for n in (1, 2))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in images or "script&gt;.jpg" in images
    assert "<script>alert" not in images and "<img src=x" not in images
    assert "&lt;img src=x onerror=alert(3)&gt;" in images
    overview = html(client, "/")
    assert "broken&lt;b&gt;.jpg" in overview and "<b>.jpg" not in overview
    script_id = media_id_of(built[1], "script>.jpg")
    detail = html(client, f"/media/{script_id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in detail
    assert "<script>alert(1)" not in detail
    if built[2]["text"]:
        page = html(client, f"/media/{media_id_of(built[1], 'html_text.png')}")
        assert "&lt;b&gt;bold&lt;/b&gt; &lt;script&gt;alert(2)&lt;/script&gt;" in page
        assert "<script>alert(2)" not in page and "<b>bold</b>" not in page
        found = html(client, "/search?ocr=alert")
        assert "<script>alert(2)" not in found and "alert" in found
    reflected = html(client, "/search?ocr=%3Cscript%3Ealert(5)%3C/script%3E")
    assert "<script>alert(5)" not in reflected
    assert "<script>alert(5)" not in client.get("/media/%3Cscript%3E").text


# ------------------------------------------------------------------ pages
def test_overview_shows_counts_formats_errors_and_analyses(client: TestClient, built) -> None:
    page = html(client, "/")
    ws = picsift.open(built[0], workspace=built[1], create=False)
    info = ws.info()
    assert f"<b>{info['images']}</b>images" in page
    assert f"<b>{info['errors']}</b>errors" in page
    for fmt in info["formats"]:
        assert f">{fmt}</a>" in page
    analyses = page[page.index('id="analyses"'):]
    for name in ("copies", "sift", "embed", "clusters"):
        assert f"<b>{name}</b>" in analyses
    assert "efficientnet-lite0" in analyses
    if built[2]["text"]:
        assert "text (OCR)" in analyses and "rapidocr" in analyses
    reason = ws.errors().set_index("path").loc[str(built[0] / "broken<b>.jpg"), "reason"]
    assert str(reason).replace("<", "&lt;").replace(">", "&gt;") in page or \
        html_escape(str(reason)) in page
    errors = html(client, "/errors")
    assert "broken&lt;b&gt;.jpg" in errors


def html_escape(text: str) -> str:
    import html as _html

    return _html.escape(text)


def test_lists_are_paginated(built) -> None:
    app = create_app(built[1], TOKEN, page_size=5)
    with TestClient(app) as small:
        small.get(f"/?token={TOKEN}")
        first = re.findall(r'href="/media/([0-9a-f]{64})"', html(small, "/images"))
        second = re.findall(r'href="/media/([0-9a-f]{64})"', html(small, "/images?page=2"))
        assert len(first) == 5 and len(second) == 5 and not set(first) & set(second)
        assert 'rel="next"' in html(small, "/images")
        png = html(small, "/images?format=PNG")
        assert png.count('class="tile') <= 5


def test_thumbnails_are_made_once_and_cached_in_the_workspace(client: TestClient, built) -> None:
    media = media_id_of(built[1], "chelsea.jpg")
    first = client.get(f"/media/{media}/thumb")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    cached = built[1] / "thumbs" / media[:2] / f"{media}.jpg"
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns
    again = client.get(f"/media/{media}/thumb", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and cached.stat().st_mtime_ns == stamp
    assert Image.open(io.BytesIO(first.content)).size[0] <= 256
    preview = client.get(f"/media/{media}/preview")
    assert preview.status_code == 200 and (built[1] / "web" / "previews" / media[:2]).exists()
    original = client.get(f"/media/{media}/original")
    assert original.headers["content-type"] == "application/octet-stream"
    assert "attachment" in original.headers["content-disposition"]
    assert original.content == (built[0] / "photos" / "chelsea.jpg").read_bytes()


def test_copies_galleries_relations_and_pair_inspector(client: TestClient, built) -> None:
    page = html(client, "/copies")
    sizes = [int(s) for s in re.findall(r"</a> · (\d+) images", page)]
    assert sizes and sizes == sorted(sizes, reverse=True) and sizes[0] >= 4
    assert "mirrored" in page and "inside the representative" in page or "contains the" in page
    astronaut = media_id_of(built[1], "astronaut_mirror.jpg")
    assert astronaut in page
    only_big = html(client, f"/copies?min_size={sizes[0]}")
    assert len(re.findall(r"</a> · (\d+) images", only_big)) == sizes.count(sizes[0])
    cluster = re.search(r'href="/copies/cluster/(\d+)"', page).group(1)
    cluster_page = html(client, f"/copies/cluster/{cluster}")
    query, result = re.search(r'/copies/pair\?query=([0-9a-f]{64})&amp;result=([0-9a-f]{64})',
                              cluster_page).groups()
    pair = html(client, f"/copies/pair?query={query}&result={result}")
    assert "consistent matches" in pair
    region = client.get(f"/api/copies/region?query={query}&result={result}").json()
    assert region["inliers"] >= 12
    for side in ("query", "result"):
        assert len(region[side]["frame_of_other"]) == 4 and len(region[side]["hull"]) >= 3
        xs = [p[0] for p in region[side]["points"]]
        assert 0 <= min(xs) and max(xs) <= region[side]["width"]
    assert client.get(f"/copies/pair?query={query}&result={query}").status_code == 404


def _area(points: list[list[float]]) -> float:
    """Shoelace area of a polygon."""
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2


def test_mirrored_copy_region_covers_the_picture(client: TestClient, built) -> None:
    """The mirrored repost's matched points, mapped back, span most of both pictures."""
    mirror = media_id_of(built[1], "astronaut_mirror.jpg")
    page = html(client, f"/media/{mirror}")
    assert "mirrored" in page
    pairs = re.findall(r'/copies/pair\?query=([0-9a-f]{64})&amp;result=([0-9a-f]{64})', page)
    assert pairs
    for query, result in pairs:
        region = client.get(f"/api/copies/region?query={query}&result={result}").json()
        for side in ("query", "result"):
            share = _area(region[side]["hull"]) / (region[side]["width"] * region[side]["height"])
            assert share > 0.1, (side, share)


def test_search_by_words_by_picture_and_more_like_this(client: TestClient, built) -> None:
    words = html(client, "/search?q=a+cat")
    ids = re.findall(r'href="/media/([0-9a-f]{64})" data-media', words)
    assert len(ids) >= 10 and "more like this" in words
    chelsea = media_id_of(built[1], "chelsea.jpg")
    like = html(client, f"/search?like={chelsea}")
    ranked = re.findall(r'href="/media/([0-9a-f]{64})" data-media', like)
    reposts = {media_id_of(built[1], "chelsea_screenshot.png"),
               media_id_of(built[1], "chelsea – repost (1).jpg")} - {chelsea}
    assert chelsea not in ranked and set(ranked[:3]) & reposts
    before = sorted(p.name for p in built[0].rglob("*"))
    upload = client.post("/search/upload", data={"token": TOKEN},
                         files={"file": ("mine.jpg", (DEMO / "photos" / "chelsea.jpg").read_bytes(),
                                         "image/jpeg")})
    assert upload.status_code == 200, upload.text[:300]
    found = re.findall(r'href="/media/([0-9a-f]{64})" data-media', upload.text)
    assert found[0] == chelsea and "mine.jpg" in upload.text
    assert sorted(p.name for p in built[0].rglob("*")) == before  # nothing added to the corpus
    assert not list(built[1].rglob("mine.jpg")) and not list(built[1].rglob("picsift-upload-*"))


def test_uploads_are_checked_and_size_limited(built) -> None:
    app = create_app(built[1], TOKEN, max_upload=50_000)
    with TestClient(app) as small:
        small.get(f"/?token={TOKEN}")
        big = (DEMO / "photos" / "hubble.jpg").read_bytes()
        assert len(big) > 60_000
        refused = small.post("/search/upload", data={"token": TOKEN},
                             files={"file": ("big.jpg", big, "image/jpeg")})
        assert refused.status_code == 413
        not_image = small.post("/search/upload", data={"token": TOKEN},
                               files={"file": ("page.jpg", b"<html>hello</html>", "image/jpeg")},
                               headers={"accept": "text/html"})
        assert not_image.status_code == 400 and "not a picture" in not_image.text
        assert "<html>hello" not in not_image.text


def test_ocr_text_search(client: TestClient, built) -> None:
    if not built[2]["text"]:
        pytest.skip("the text extra is not installed: no OCR in the workspace")
    page = html(client, "/search?ocr=vecinos")
    assert media_id_of(built[1], "shot_es.png") in page
    assert "<mark>" in page.lower()
    chinese = html(client, "/search?ocr=北京")
    assert media_id_of(built[1], "shot_zh.png") in chinese
    broken = client.get("/search?ocr=%22unclosed", headers={"accept": "text/html"})
    assert broken.status_code in (200, 400) and "Traceback" not in broken.text
    assert "0 results" in html(client, "/search?ocr=zzzqqqxxyy")


def test_clusters_contact_sheets_and_map(client: TestClient, built) -> None:
    from picsift.analyses.clusters import load_clusters

    page = html(client, "/clusters")
    ws = picsift.open(built[0], workspace=built[1], create=False)
    table = load_clusters(ws)
    n = int((table["cluster"].unique() > 0).sum())
    assert f"{n} clusters holding" in page and 'id="cluster-map"' in page
    first = re.search(r'href="/clusters/(-?\d+)"', page).group(1)
    one = html(client, f"/clusters/{first}")
    assert one.count('class="tile') == int((table["cluster"] == int(first)).sum())
    data = client.get("/api/clusters/map").json()
    assert len(data["points"]) == len(table)
    assert {p[3] for p in data["points"]} == set(table["media_id"])
    assert all(0 <= p[0] <= 1 and 0 <= p[1] <= 1 for p in data["points"])
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in data["colours"].values())
    assert list((built[1] / "web").glob("map-*.json"))  # computed once, kept on disk
    assert client.get("/clusters/987654").status_code == 404


def test_image_detail_shows_every_feature(client: TestClient, built) -> None:
    mirror = media_id_of(built[1], "astronaut_mirror.jpg")
    page = html(client, f"/media/{mirror}")
    for section in ('id="metadata"', 'id="labels"', 'id="copies"', 'id="features"'):
        assert section in page
    assert "ImageNet tags" in page and "embed_tag1" in page
    assert "copy cluster" in page and "mirrored" in page
    assert "Sort <a" in page and "a person" in page          # the sort's label and scores
    assert "Semantic cluster" in page
    assert "astronaut_mirror.jpg" in page and "JPEG" in page
    if built[2]["colors"]:  # the real colors feature set: swatches + generic columns
        assert 'id="colors"' in page and page.count('class="swatch"') >= 3
        assert "colors_colorfulness" in page and "data-share=" in page
    if built[2]["text"]:
        post = html(client, f"/media/{media_id_of(built[1], 'shot_es.png')}")
        assert "Los vecinos" in post and "Translation" in post and "neighbours" in post
        assert '<svg class="boxes ocr"' in post and post.count("<polygon") >= 3
    assert client.get("/media/" + "f" * 64).status_code == 404


def test_faces_and_colour_panels_appear_only_with_data(built, tmp_path: Path) -> None:
    """Faces (consented attributes only) and a colours feature set, stored the way `picsift faces`
    and `picsift colors` store them (schema v4 tables; FeatureSet "colors" with a palette)."""
    import numpy as np
    import pyarrow as pa

    from picsift.workspace.features import FeatureSet

    ws_dir = tmp_path / "ws"
    shutil.copytree(built[1], ws_dir)
    astronaut = media_id_of(ws_dir, "photos/astronaut.jpg")
    app = create_app(ws_dir, TOKEN)
    with TestClient(app) as c:
        c.get(f"/?token={TOKEN}")
        before = html(c, f"/media/{astronaut}")
        assert 'id="faces"' not in before
        assert built[2]["colors"] or 'id="colors"' not in before
        ws = picsift.open(built[0], workspace=ws_dir, create=False)
        with ws.transaction() as conn:
            conn.execute("INSERT INTO media_faces(media_id, params_hash, n_faces, largest_share, "
                         "width, height, detector, embedder, attribute_models) VALUES "
                         "(?, 'h', 1, 0.05, 512, 512, 'yunet', 'sface', '{}')", (astronaut,))
            conn.execute("INSERT INTO faces(media_id, face, x0, y0, x1, y1, score, share, "
                         "emotion, emotion_score) VALUES (?, 0, 170, 70, 280, 200, 0.93, 0.05, "
                         "'<i>happy</i>', 0.8)", (astronaut,))
        pixels = np.asarray(Image.open(DEMO / "photos" / "astronaut.jpg").convert("RGB")
                            .quantize(4).convert("RGB")).reshape(-1, 3)
        colours, counts = np.unique(pixels, axis=0, return_counts=True)
        palette = ";".join("#%02x%02x%02x" % tuple(int(v) for v in c)
                           for c in colours[np.argsort(-counts)])
        colors = FeatureSet(ws, "colors", "1", {"k": 4}, model="kmeans-lab")
        colors.register()
        colors.write_part(pa.table({"media_id": [astronaut], "palette": [palette + ";<b>x</b>"],
                                    "colorfulness": [0.42]}))
        time.sleep(1.1)  # the state key is re-read at most once a second
        after = html(c, f"/media/{astronaut}")
    faces = after[after.index('id="faces"'):].split("</section>")[0]
    assert "<rect" in after and "&lt;i&gt;happy&lt;/i&gt;" in faces and "<i>happy" not in faces
    assert "emotion <b>" in faces and "age <b>" not in faces and "gender <b>" not in faces
    assert after.count('class="swatch"') == 4 and "&lt;b&gt;x" not in after.split('id="colors"')[1].split("</section>")[0]
    assert "colors_colorfulness" in after and "0.42" in after
    assert "<b>colors</b>" in html(TestClient(app, cookies={"picsift_token": TOKEN}), "/")


def test_review_a_sort_and_export_a_truth_csv_sort_eval_reads(client: TestClient, built,
                                                              tmp_path: Path) -> None:
    from picsift.analyses.sort.evaluate import evaluate_sort

    results = Path(built[2]["sort_csv"])  # type: ignore[arg-type]
    added = client.post("/review/sorts", files={"file": (results.name, results.read_bytes(), "text/csv")},
                        data={"token": TOKEN}, follow_redirects=False)
    sort_id = added.headers["location"].rsplit("/", 1)[1]
    assert f"/review/sort/{sort_id}" in html(client, "/review")
    page = html(client, f"/review/sort/{sort_id}?order=unsure-first")
    assert 'data-key="1"' in page and 'data-key="Enter"' in page and "1 / " in page
    labels = re.findall(r'<button name="label" value="([^"]+)"', page)
    assert labels[:4] == [s.strip() for s in SORT_LABELS.split(",")]
    rows = list(csv.DictReader(io.StringIO(results.read_text())))
    ordered = sorted(rows, key=lambda r: (float(r["score"]), r["path"]))
    wrong = next(lbl for lbl in labels if lbl != ordered[0]["label"])
    fix = client.post(f"/review/sort/{sort_id}/label", data={
        "token": TOKEN, "i": 0, "label": wrong, "order": "unsure-first"}, follow_redirects=False)
    assert fix.status_code == 303 and "i=1" in fix.headers["location"]
    confirm = client.post(f"/review/sort/{sort_id}/label", data={
        "token": TOKEN, "i": 1, "action": "confirm", "order": "unsure-first"},
        follow_redirects=False)
    assert confirm.status_code == 303
    assert client.post(f"/review/sort/{sort_id}/label", data={
        "token": TOKEN, "i": 2, "label": "not a label"}).status_code == 400
    truth = client.get(f"/review/sort/{sort_id}/truth.csv")
    assert truth.status_code == 200
    table = list(csv.DictReader(io.StringIO(truth.text)))
    assert [r["path"] for r in table] == [ordered[0]["path"], ordered[1]["path"]]
    assert table[0]["label"] == wrong and table[1]["label"] == ordered[1]["label"].split(";")[0]
    assert list(table[0])[:2] == ["path", "label"]
    stored = built[1] / "annotations" / f"sort-{sort_id}" / "truth.csv"
    assert stored.read_text() == truth.text
    evaluation = evaluate_sort(results, stored, tmp_path / "eval")
    assert evaluation.n == 2 and evaluation.accuracy == 0.5
    cleared = client.post(f"/review/sort/{sort_id}/label", data={
        "token": TOKEN, "i": 0, "action": "clear", "order": "unsure-first"})
    assert cleared.status_code == 200
    assert len(list(csv.DictReader(io.StringIO(stored.read_text())))) == 1


def test_annotation_pages_write_the_coder_csvs_agreement_reads(client: TestClient, built) -> None:
    from picsift.analyses.agreement import compare_coders

    for kind, field in (("sample", {"per_cluster": 2}), ("pairs", {"n": 6})):
        made = client.post("/annotate/create", data={"token": TOKEN, "kind": kind, **field},
                           follow_redirects=False)
        assert made.status_code == 303, made.text[:300]
    assert (built[1] / "clusters" / "sample" / "sample.csv").exists()
    codes = {"ann": ["meme", "photo", "meme", "text"], "bob": ["meme", "photo", "photo", "text"]}
    for coder, values in codes.items():
        page = html(client, f"/annotate/sample?coder={coder}")
        assert "1 / " in page
        for i, code in enumerate(values):
            done = client.post("/annotate/sample/code", data={
                "token": TOKEN, "coder": coder, "i": i, "code": code}, follow_redirects=False)
            assert done.status_code == 303 and f"i={i + 1}" in done.headers["location"]
        pick = client.post("/annotate/sample/code", data={
            "token": TOKEN, "coder": coder, "i": 0, "code": "", "pick": "meme"},
            follow_redirects=False)
        assert pick.status_code == 303
        for i, same in enumerate(["yes", "no", "yes"] if coder == "ann" else ["yes", "yes", "yes"]):
            assert client.post("/annotate/pairs/code", data={
                "token": TOKEN, "coder": coder, "i": i, "code": same}).status_code == 200
    assert client.post("/annotate/pairs/code", data={
        "token": TOKEN, "coder": "ann", "i": 0, "code": "<maybe>"}).status_code == 400
    assert client.post("/annotate/sample/code", data={
        "token": TOKEN, "coder": "../evil", "i": 0, "code": "x"}).status_code == 400
    folder = built[1] / "annotations"
    sample = compare_coders(folder / "sample-ann.csv", folder / "sample-bob.csv")
    assert sample.n_items == 4 and sample.percent == 0.75
    pairs = compare_coders(folder / "pairs-ann.csv", folder / "pairs-bob.csv", column="same",
                           key="pair")
    assert pairs.n_items == 3 and abs(pairs.percent - 2 / 3) < 1e-9
    listing = html(client, "/review")
    assert "sample-ann.csv" in listing and "pairs-bob.csv" in listing
    download = client.get("/annotate/sample/ann.csv")
    assert download.status_code == 200 and "code" in download.text.splitlines()[0]
    assert not list(built[0].rglob("*.csv"))  # nothing written into the corpus


def test_pages_survive_a_workspace_without_analyses(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO / "photos", corpus)
    ws = picsift.open(corpus)
    ws.scan(workers=1)
    ws.close()
    app = create_app(corpus, TOKEN)
    with TestClient(app) as c:
        c.get(f"/?token={TOKEN}")
        assert "no analysis has run yet" in html(c, "/")
        assert "No copy detection yet" in html(c, "/copies")
        assert "No clustering yet" in html(c, "/clusters")
        assert "run &#39;picsift embed&#39; first" in html(c, "/search?q=cat")
        assert "Run <code>picsift text</code> first" in html(c, "/search")
        assert "needs a clustering first" in html(c, "/review")
        assert c.get("/api/clusters/map").status_code == 400
        some = media_id_of(ws.dir, "coffee.jpg")
        detail = html(c, f"/media/{some}")
        assert 'id="metadata"' in detail and 'id="copies"' not in detail


def test_serve_command_binds_locally_and_warns_before_going_remote(built, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    import uvicorn

    from picsift.cli.serve import serve_command
    from picsift.errors import PicsiftError

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    app = typer.Typer()
    app.command()(serve_command)
    runner = CliRunner()
    local = runner.invoke(app, [str(built[1]), "--port", "8799"])
    assert local.exit_code == 0, local.output
    url = re.search(r"http://127\.0\.0\.1:8799/\?token=([\w-]+)", local.output)
    assert url and calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8799
    with TestClient(calls[-1]["app"], base_url="http://127.0.0.1:8799") as c:  # type: ignore[arg-type]
        assert c.get("/").status_code == 403
        assert c.get(f"/?token={url.group(1)}").status_code == 200
    remote = runner.invoke(app, [str(built[1]), "--host", "0.0.0.0"])
    assert remote.exit_code != 0 and isinstance(remote.exception, PicsiftError)
    assert "--allow-remote" in str(remote.exception)
    allowed = runner.invoke(app, [str(built[1]), "--host", "0.0.0.0", "--allow-remote"])
    assert allowed.exit_code == 0 and "warning" in allowed.output
    assert calls[-1]["host"] == "0.0.0.0"
    results = Path(built[2]["sort_csv"])  # type: ignore[arg-type]
    with_sort = runner.invoke(app, [str(built[1]), "--sort", str(results)])
    assert with_sort.exit_code == 0 and "/review/sort/" in with_sort.output


def test_cached_tables_follow_the_workspace_state(built, tmp_path: Path) -> None:
    """A scan adding pictures while the app runs shows up without restarting it."""
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO / "photos", corpus)
    ws = picsift.open(corpus, workspace=tmp_path / "ws")
    ws.scan([corpus / "coffee.jpg"], workers=1)
    app = create_app(tmp_path / "ws", TOKEN)
    with TestClient(app) as c:
        c.get(f"/?token={TOKEN}")
        assert html(c, "/images").count('class="tile') == 1
        ws.scan([corpus], workers=1)
        time.sleep(1.1)
        assert html(c, "/images").count('class="tile') == 10
    ws.close()


def test_json_apis_return_plain_errors(client: TestClient) -> None:
    response = client.get("/api/copies/region?query=" + "0" * 64 + "&result=" + "1" * 64)
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/plain")
    assert json.loads(json.dumps(client.get("/api/clusters/map").json()))["method"]
