"""Video keyframes: one per scene at the right time, more with max_interval, errors not crashes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, sha256, write_noise_jpeg, write_video
from PIL import Image

import picsift
from picsift.errors import MediaError
from picsift.media.video import KeyframeOptions, iter_keyframes

FPS = 10
FRAME = 1 / FPS
SCENES = ("astronaut.jpg", "coffee.jpg", "chelsea.jpg")  # real demo photos, 2 s each


def scene_pictures() -> list[Image.Image]:
    return [Image.open(DEMO / "photos" / name).convert("RGB") for name in SCENES]


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "three scenes.mp4", scene_pictures(),
                       seconds=2.0, fps=FPS, size=(160, 120), motion=True)


def test_iter_keyframes_finds_the_three_cuts(video_file: Path) -> None:
    frames = list(iter_keyframes(video_file))
    assert [f.reason for f in frames] == ["start", "scene", "scene"]
    assert [f.time for f in frames] == pytest.approx([0.0, 2.0, 4.0], abs=FRAME + 1e-6)
    assert [f.index for f in frames] == [0, 20, 40]
    # Each keyframe shows its scene (compare with the source photo at the same size).
    for frame, picture in zip(frames, scene_pictures()):
        expected = np.asarray(picture.resize((160, 120)), dtype=int)
        got = np.asarray(frame.image.convert("RGB"), dtype=int)
        assert got.shape == expected.shape
        assert np.abs(got - expected).mean() < 15


def test_scan_stores_keyframes_as_frame_media(tmp_path: Path, video_file: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    video = corpus / video_file.name
    video.write_bytes(video_file.read_bytes())
    write_noise_jpeg(corpus / "photo.jpg")

    ws = picsift.open(corpus)
    summary = ws.scan(workers=1, progress=False)
    assert (summary.videos, summary.frames, summary.images, summary.errors) == (1, 3, 1, 0)

    video_id = sha256(video)
    row = ws.query("SELECT * FROM files WHERE kind = 'video'")
    assert len(row) == 1 and row[0]["path"] == str(video) and row[0]["media_id"] == video_id
    info = ws.query("SELECT * FROM videos")[0]
    assert info["video_id"] == video_id
    assert (info["width"], info["height"], info["codec"]) == (160, 120, "h264")
    assert info["fps"] == pytest.approx(FPS)
    assert info["duration"] == pytest.approx(6.0, abs=FRAME + 1e-6)
    assert info["n_keyframes"] == 3

    frames = ws.query("SELECT m.*, f.path FROM media m JOIN files f ON f.media_id = m.media_id "
                      "WHERE m.kind = 'frame' ORDER BY m.frame_time")
    assert len(frames) == 3
    assert [f["frame_time"] for f in frames] == pytest.approx([0.0, 2.0, 4.0], abs=FRAME + 1e-6)
    for frame in frames:
        assert frame["video_id"] == video_id
        assert (frame["width"], frame["height"], frame["format"]) == (160, 120, "JPEG")
        stored = Path(frame["path"])
        assert stored.is_file() and ws.dir in stored.parents  # inside the workspace
        assert sha256(stored) == frame["media_id"]
        with Image.open(stored) as image:
            assert image.size == (160, 120)

    table = ws.table()
    keyframes = table[table["kind"] == "frame"]
    assert len(keyframes) == 3
    assert set(keyframes["video_path"]) == {str(video)}
    assert ws.info()["keyframes"] == 3 and ws.info()["videos"] == 1
    # The video itself is not a row of the media table (its keyframes are).
    assert str(video) not in set(table["path"])
    ws.close()


def test_max_interval_adds_frames_at_the_right_spacing(tmp_path: Path, video_file: Path) -> None:
    ws = picsift.open(tmp_path, workspace=tmp_path / "ws")
    summary = ws.scan([video_file], workers=1, progress=False, max_interval=0.5)
    times = [r["frame_time"] for r in
             ws.query("SELECT frame_time FROM media WHERE kind = 'frame' ORDER BY frame_time")]
    assert summary.frames == len(times)
    assert len(times) == 12  # 0, 0.5, ... 5.5
    assert times == pytest.approx([i * 0.5 for i in range(12)], abs=FRAME + 1e-6)
    gaps = np.diff(times)
    assert (gaps >= 0.5 - 1e-6).all() and (gaps <= 0.5 + FRAME + 1e-6).all()
    # The scene cuts are still among them.
    assert 2.0 in [round(t, 1) for t in times] and 4.0 in [round(t, 1) for t in times]
    ws.close()


def test_max_interval_zero_keeps_scene_changes_only(video_file: Path) -> None:
    frames = list(iter_keyframes(video_file, KeyframeOptions(max_interval=0.0)))
    assert len(frames) == 3


def test_demo_video_has_three_scenes(tmp_path: Path) -> None:
    frames = list(iter_keyframes(DEMO / "video" / "three_scenes.mp4"))
    assert [f.reason for f in frames] == ["start", "scene", "scene"]


def test_corrupt_video_is_an_error_not_a_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bad = corpus / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    empty = corpus / "empty.mov"
    empty.write_bytes(b"")
    write_noise_jpeg(corpus / "fine.jpg")

    with pytest.raises(MediaError) as info:
        list(iter_keyframes(bad))
    assert info.value.kind == "corrupt"

    ws = picsift.open(corpus)
    summary = ws.scan(workers=2, progress=False)
    assert summary.images == 1 and summary.videos == 0 and summary.errors == 2
    errors = {r.path: r for r in ws.errors().itertuples()}
    assert set(errors) == {str(bad), str(empty)}
    assert errors[str(bad)].kind == "corrupt"
    assert "video" in errors[str(bad)].reason
    assert errors[str(empty)].kind == "corrupt"
    assert not ws.query("SELECT 1 FROM files WHERE kind IN ('video', 'frame')")
    assert not any(p.is_file() for p in (ws.dir / "frames").rglob("*"))
    ws.close()


def test_audio_only_file_is_not_a_video(tmp_path: Path) -> None:
    import av

    path = tmp_path / "sound.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(MediaError) as info:
        list(iter_keyframes(path))
    assert info.value.kind == "not_video"
    assert os.path.getsize(path) > 0


def test_identical_keyframes_in_two_videos_belong_to_both(tmp_path: Path) -> None:
    black = Image.new("RGB", (160, 120), (0, 0, 0))
    photos = scene_pictures()
    write_video(tmp_path / "corpus" / "a.mp4", [black, photos[0]])
    write_video(tmp_path / "corpus" / "b.mp4", [black, photos[1]])
    ws = picsift.open(tmp_path / "corpus")
    ws.scan(workers=1, progress=False)
    per_video = {
        r["path"]: r["n"] for r in ws.query(
            "SELECT v.path, COUNT(k.media_id) AS n FROM files v LEFT JOIN keyframes k "
            "ON k.video_id = v.media_id WHERE v.kind = 'video' GROUP BY v.path")
    }
    ws.close()
    assert per_video == {str(tmp_path / "corpus" / "a.mp4"): 2,
                         str(tmp_path / "corpus" / "b.mp4"): 2}
    shared = ws_shared = picsift.open(tmp_path / "corpus")
    black_rows = ws_shared.query(
        "SELECT media_id, COUNT(DISTINCT video_id) AS n FROM keyframes GROUP BY media_id "
        "HAVING COUNT(DISTINCT video_id) = 2")
    assert len(black_rows) == 1  # the shared black frame: one media, two occurrences
    shared.close()


def test_changed_keyframe_settings_reextract_the_video(tmp_path: Path) -> None:
    write_video(tmp_path / "corpus" / "v.mp4", scene_pictures())
    ws = picsift.open(tmp_path / "corpus")
    first = ws.scan(workers=1, progress=False, max_interval=0)
    again = ws.scan(workers=1, progress=False, max_interval=0)
    denser = ws.scan(workers=1, progress=False, max_interval=0.5)
    n_keyframes = ws.scalar("SELECT n_keyframes FROM videos")
    stored = ws.scalar("SELECT COUNT(*) FROM keyframes")
    ws.close()
    assert (first.videos, again.videos, denser.videos) == (1, 0, 1)
    assert n_keyframes == stored > 3
