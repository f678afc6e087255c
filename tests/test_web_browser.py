"""The web app in a real browser: Debian's chromium + chromedriver driven by Selenium.

Clicks through search (words, OCR text, an uploaded picture, "more like this"), a copy
cluster and its pair inspector, the cluster map (click a dot, open the image), an image
detail page, and a label fix on the review page with the keyboard; checks that hostile file
names and OCR text never run as script. Screenshots go to $PICSIFT_SCREENSHOTS (default
/tmp/picsift-web-screens) so a person can look at them.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DEMO

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not CHROMIUM.exists() or not Path(DRIVER).exists():
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)
pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")
pytest.importorskip("uvicorn", reason="needs uvicorn (the web extra)")

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from picsift.web import create_app  # noqa: E402
from test_web import media_id_of, shared_workspace  # noqa: E402

pytestmark = pytest.mark.slow  # builds a workspace and starts a browser: about a minute
TOKEN = "browser-token-0123456789"
SHOTS = Path(os.environ.get("PICSIFT_SCREENSHOTS", "/tmp/picsift-web-screens"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
         "--window-size=1400,1000"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path, dict]]:
    """The app on a free local port, over a private copy of the shared test workspace."""
    corpus, shared_ws, facts = shared_workspace(tmp_path_factory)
    ws_dir = tmp_path_factory.mktemp("browser") / "ws"
    shutil.copytree(shared_ws, ws_dir)
    shutil.rmtree(ws_dir / "annotations", ignore_errors=True)  # other tests' reviews and codes
    app = create_app(ws_dir, TOKEN, allowed_hosts=["127.0.0.1", "localhost"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", corpus, ws_dir, facts
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="picsift-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shot(driver: webdriver.Chrome, name: str) -> Path:
    """Full-page screenshot (the window grows to the page, up to 3000 px)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(800, min(int(height) + 40, 3000)))
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def wait(driver: webdriver.Chrome, seconds: float = 60) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def no_alert(driver: webdriver.Chrome) -> None:
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    pytest.fail(f"a script from a file ran: alert({text})")


def console_problems(driver: webdriver.Chrome) -> list[str]:
    """Console messages that mean the page broke: CSP violations, script errors."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
            and "/api/copies/region" not in e["message"]]


def nav(driver: webdriver.Chrome, label: str) -> None:
    driver.find_element(By.LINK_TEXT, label).click()
    wait(driver).until(EC.presence_of_element_located((By.TAG_NAME, "h1")))


def test_click_through_search_copies_clusters_detail_and_review(site, browser) -> None:
    base, corpus, ws_dir, facts = site
    d = browser
    d.get(f"{base}/?token={TOKEN}")
    assert d.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert d.find_element(By.ID, "analyses").text.count("efficientnet-lite0") >= 2
    shot(d, "01-overview")

    # --- search by words, then "more like this"
    nav(d, "Search")
    box = d.find_element(By.ID, "q")
    box.send_keys("a cat")
    box.send_keys(Keys.ENTER)
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".grid.results .tile")))
    names = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".grid.results .cap")]
    assert any("chelsea" in n for n in names[:3]), names[:5]
    shot(d, "02-search-words")
    d.find_elements(By.CSS_SELECTOR, ".grid.results .more-like")[0].click()
    wait(d).until(EC.url_contains("like="))
    assert "More like" in d.find_element(By.TAG_NAME, "main").text

    # --- OCR text search
    if facts["text"]:
        nav(d, "Search")
        ocr = d.find_element(By.ID, "ocr")
        ocr.send_keys("vecinos")
        ocr.send_keys(Keys.ENTER)
        wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".snippet mark")))
        assert "shot_es.png" in d.find_element(By.CSS_SELECTOR, ".grid.results").text
        shot(d, "03-search-ocr")

    # --- search by an uploaded picture (the file input submits on change)
    nav(d, "Search")
    d.find_element(By.ID, "upload-file").send_keys(str(DEMO / "photos" / "rocket.jpg"))
    wait(d).until(EC.text_to_be_present_in_element((By.TAG_NAME, "main"), "like your upload"))
    first = d.find_elements(By.CSS_SELECTOR, ".grid.results .cap")[0].text
    assert first.startswith("rocket"), first
    shot(d, "04-search-upload")

    # --- a copy cluster and the pair inspector
    nav(d, "Copies")
    d.find_element(By.CSS_SELECTOR, "section.group h3 a").click()
    wait(d).until(EC.presence_of_element_located((By.ID, "pairs")))
    d.find_element(By.CSS_SELECTOR, "a.inspect").click()
    wait(d).until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "svg.region")) == 2)
    assert d.find_elements(By.CSS_SELECTOR, "svg.region .inlier")
    assert "recomputed" in d.find_element(By.ID, "region-status").text
    shot(d, "05-copies-pair")

    # --- the cluster map: click a dot, open the image
    nav(d, "Clusters")
    canvas = d.find_element(By.ID, "cluster-map")
    wait(d, 180).until(lambda drv: canvas.get_attribute("data-ready") == "1")
    point = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/clusters/map').then(r => r.json()).then(data => {
          const c = document.getElementById('cluster-map');
          const p = data.points.find(q => q[2] > 0);
          const pad = 12, rect = c.getBoundingClientRect();
          const x = (pad + p[0] * (c.width - 2 * pad)) * rect.width / c.width;
          const y = (pad + (1 - p[1]) * (c.height - 2 * pad)) * rect.height / c.height;
          done([x - rect.width / 2, y - rect.height / 2, p[3]]);
        });""")
    ActionChains(d).move_to_element_with_offset(canvas, int(point[0]), int(point[1])).click().perform()
    picked = wait(d).until(EC.presence_of_element_located((By.ID, "map-picked")))
    assert picked.get_attribute("href").endswith(f"/media/{point[2]}")
    shot(d, "06-cluster-map")
    picked.click()
    wait(d).until(EC.url_contains(f"/media/{point[2]}"))

    # --- an image detail page
    mirror = media_id_of(ws_dir, "astronaut_mirror.jpg")
    d.get(f"{base}/media/{mirror}")
    assert d.find_element(By.TAG_NAME, "h1").text == "astronaut_mirror.jpg"
    text = d.find_element(By.TAG_NAME, "main").text
    assert "mirrored" in text and "ImageNet tags" in text and "Metadata" in text
    shot(d, "07-image-detail")
    if facts["text"]:
        d.get(f"{base}/media/{media_id_of(ws_dir, 'shot_es.png')}")
        assert len(d.find_elements(By.CSS_SELECTOR, "svg.boxes.ocr polygon")) >= 3
        assert "neighbours" in d.find_element(By.ID, "text").text
        shot(d, "08-image-detail-text")

    # --- fix a label with the keyboard, confirm another, export the truth CSV
    d.get(f"{base}/review")
    d.find_element(By.CSS_SELECTOR, "#add-sort input[type=file]").send_keys(str(facts["sort_csv"]))
    d.find_element(By.CSS_SELECTOR, "#add-sort button").click()
    wait(d).until(EC.presence_of_element_located((By.ID, "label-form")))
    sort_id = d.current_url.split("/review/sort/")[1].split("?")[0]
    predicted = d.find_element(By.ID, "predicted").text
    key, label = next((str(n), b.get_attribute("value")) for n, b in enumerate(
        d.find_elements(By.CSS_SELECTOR, ".labels button"), start=1)
        if b.get_attribute("value") != predicted)
    ActionChains(d).send_keys(key).perform()
    wait(d).until(EC.url_contains("i=1"))
    ActionChains(d).send_keys(Keys.ENTER).perform()
    wait(d).until(EC.url_contains("i=2"))
    assert "2 reviewed" in d.find_element(By.CSS_SELECTOR, "form.filters").text
    shot(d, "09-review")
    truth = ws_dir / "annotations" / f"sort-{sort_id}" / "truth.csv"
    rows = list(csv.DictReader(truth.open()))
    assert [r["label"] for r in rows][:1] == [label] and len(rows) == 2
    assert d.find_element(By.ID, "export-truth").get_attribute("href").endswith("/truth.csv")
    assert console_problems(d) == []  # no CSP violation, no script error on any page


def test_hostile_names_and_ocr_html_never_run(site, browser) -> None:
    base, corpus, ws_dir, facts = site
    d = browser
    d.get(f"{base}/?token={TOKEN}")
    script = media_id_of(ws_dir, "script>.jpg")
    d.get(f"{base}/media/{script}")
    no_alert(d)
    assert "<script>alert(1)</script>.jpg" in d.find_element(By.ID, "metadata").text
    shot(d, "10-xss-file-name")
    d.get(f"{base}/images")
    no_alert(d)
    assert '"><img src=x onerror=alert(3)>.jpg' in d.find_element(By.TAG_NAME, "main").text
    d.get(f"{base}/")
    no_alert(d)
    assert "broken<b>.jpg" in d.find_element(By.TAG_NAME, "main").text
    if facts["text"]:
        d.get(f"{base}/media/{media_id_of(ws_dir, 'html_text.png')}")
        no_alert(d)
        assert "<script>alert(2)</script>" in d.find_element(By.CSS_SELECTOR, "pre.ocr-text").text
        shot(d, "11-xss-ocr-text")
        d.get(f"{base}/search?ocr=alert")
        no_alert(d)
    d.get(f"{base}/search?ocr=%3Cscript%3Ealert(5)%3C%2Fscript%3E")
    no_alert(d)
    for url in ("/media/../../../../etc/passwd", "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd/thumb",
                "/static/%2e%2e/catalog.sqlite"):
        d.get(base + url)
        assert "root:x:" not in d.page_source and "SQLite format" not in d.page_source
    # a page of another origin cannot write: the token is not in its request
    d.get(f"{base}/review")
    pairs = ws_dir / "clusters" / "pairs.csv"
    before = pairs.read_bytes() if pairs.exists() else None
    status = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/annotate/create', {method: 'POST', body: new URLSearchParams({kind: 'pairs'})})
          .then(r => done(r.status));""")
    assert status == 403
    assert (pairs.read_bytes() if pairs.exists() else None) == before
