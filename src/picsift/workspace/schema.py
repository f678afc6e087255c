"""The catalogue's SQLite schema, with numbered migrations so old workspaces keep opening.

Why SQLite (WAL) for the catalogue: it is in the standard library, lets readers (report, web
page, export) in while a scan writes, and survived a killed writer in our measurements
(../shared/research/ecosystem.md). Bulky per-media features go to Parquet part-files and arrays
to .npy files that the catalogue points to (picsift.workspace.features).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 4

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE IF NOT EXISTS runs (
        run_id INTEGER PRIMARY KEY AUTOINCREMENT,
        command TEXT NOT NULL,
        params TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        status TEXT NOT NULL DEFAULT 'running',
        counts TEXT
    );

    -- One row per distinct content: an image file's bytes, or one video keyframe.
    CREATE TABLE IF NOT EXISTS media (
        media_id TEXT PRIMARY KEY,          -- sha256 of the bytes (frames: of the stored JPEG)
        kind TEXT NOT NULL,                 -- 'image' or 'frame'
        format TEXT, width INTEGER, height INTEGER, mode TEXT,
        n_frames INTEGER, file_size INTEGER, truncated INTEGER NOT NULL DEFAULT 0,
        exif_datetime TEXT, exif_make TEXT, exif_model TEXT, exif_orientation INTEGER,
        gps_lat REAL, gps_lon REAL,
        video_id TEXT, frame_time REAL, frame_index INTEGER,
        run_id INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS media_video ON media(video_id);

    -- One row per path seen on disk that decoded (images, videos, stored keyframes).
    CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY,
        media_id TEXT NOT NULL,             -- for videos: the video's own sha256
        kind TEXT NOT NULL,                 -- 'image', 'video' or 'frame'
        root TEXT, relpath TEXT,
        size INTEGER, mtime_ns INTEGER,
        run_id INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS files_media ON files(media_id);

    CREATE TABLE IF NOT EXISTS videos (
        video_id TEXT PRIMARY KEY,
        duration REAL, fps REAL, width INTEGER, height INTEGER, codec TEXT,
        n_keyframes INTEGER, params TEXT,
        run_id INTEGER NOT NULL
    );

    -- Per-path failures, kept with the file's size and mtime so a rerun skips them unless
    -- the file changed (or --retry-errors); cleared when the path later succeeds.
    CREATE TABLE IF NOT EXISTS errors (
        path TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        stage TEXT NOT NULL,
        size INTEGER, mtime_ns INTEGER,
        run_id INTEGER NOT NULL,
        at REAL NOT NULL
    );

    -- Which extractor produced which feature set with which parameters (features/*.parquet).
    CREATE TABLE IF NOT EXISTS feature_sets (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        params_hash TEXT NOT NULL,
        params TEXT NOT NULL,
        model TEXT,
        created REAL NOT NULL,
        PRIMARY KEY (name, params_hash)
    );
    """,
    # v2: a keyframe's pixels may occur in several videos (a black opening frame, a logo
    # card) or several times in one: each occurrence is a row here, while media keeps one row
    # per distinct content (media.video_id/frame_time name its first occurrence).
    2: """
    CREATE TABLE IF NOT EXISTS keyframes (
        video_id TEXT NOT NULL,
        frame_index INTEGER NOT NULL,
        frame_time REAL NOT NULL,
        reason TEXT,
        media_id TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        PRIMARY KEY (video_id, frame_index)
    );
    CREATE INDEX IF NOT EXISTS keyframes_media ON keyframes(media_id);
    INSERT OR IGNORE INTO keyframes(video_id, frame_index, frame_time, reason, media_id, run_id)
        SELECT video_id, frame_index, frame_time, NULL, media_id, run_id
        FROM media WHERE kind = 'frame';
    """,
    # v3: text in images (picsift text). Small per-media rows live in SQLite, not Parquet,
    # because they are searched (FTS5) and joined to every export. ocr_hash / post_hash
    # name the settings each half was made with: changing the translation target redoes
    # translation and enrichment from the stored blocks without reading images again.
    3: """
    CREATE TABLE IF NOT EXISTS media_text (
        media_id TEXT PRIMARY KEY,
        ocr_hash TEXT NOT NULL,
        post_hash TEXT,
        text TEXT NOT NULL DEFAULT '',
        n_blocks INTEGER NOT NULL DEFAULT 0,
        ocr_confidence REAL,
        text_language TEXT,
        text_language_score REAL,
        text_languages TEXT,                -- JSON {"en": 0.7, "de": 0.3}: share of letters
        text_english TEXT,
        translation_status TEXT,
        translation_backend TEXT,
        text_clean TEXT,
        text_english_correct TEXT,
        polarity REAL, subjectivity REAL,
        sentiment TEXT, sentiment_score REAL,
        entities TEXT,                      -- JSON list of {text, label, start, end}
        ocr_model TEXT, post_model TEXT,
        seconds REAL,
        run_id INTEGER
    );
    CREATE TABLE IF NOT EXISTS text_blocks (
        media_id TEXT NOT NULL,
        block INTEGER NOT NULL,             -- reading order within the image
        line INTEGER NOT NULL,
        text TEXT NOT NULL,
        confidence REAL,
        language TEXT, language_score REAL,
        script TEXT, engine TEXT,
        box TEXT,                           -- JSON [[x, y] x 4] in image pixels
        PRIMARY KEY (media_id, block)
    );
    CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(
        media_id UNINDEXED, words, tokenize = 'unicode61 remove_diacritics 2'
    );
    """,
    # v4: faces (picsift faces). One row per face with its box, landmarks, 128-d identity
    # embedding (float32 BLOB: 512 bytes) and attributes; media_faces says which media were
    # looked at with which settings, including those with no face at all.
    4: """
    CREATE TABLE IF NOT EXISTS media_faces (
        media_id TEXT PRIMARY KEY,
        params_hash TEXT NOT NULL,
        n_faces INTEGER NOT NULL,
        largest_share REAL,                 -- largest face box area / image area
        width INTEGER, height INTEGER,      -- of the picture the boxes refer to
        detector TEXT, embedder TEXT, attribute_models TEXT,
        seconds REAL,
        run_id INTEGER
    );
    CREATE TABLE IF NOT EXISTS faces (
        media_id TEXT NOT NULL,
        face INTEGER NOT NULL,              -- 0 = largest
        x0 REAL, y0 REAL, x1 REAL, y1 REAL,
        score REAL,
        landmarks TEXT,                     -- JSON [[x, y] x 5]
        share REAL,
        embedding BLOB,
        emotion TEXT, emotion_score REAL, emotion_group TEXT, emotions TEXT,
        mask_score REAL, masked INTEGER,
        age REAL, gender TEXT, gender_score REAL,
        identity INTEGER,
        PRIMARY KEY (media_id, face)
    );
    CREATE INDEX IF NOT EXISTS faces_identity ON faces(identity);
    """,
}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the catalogue to SCHEMA_VERSION; return the version found before migrating."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        from picsift.errors import WorkspaceError

        raise WorkspaceError(
            f"this workspace was written by a newer picsift (schema {found} > {SCHEMA_VERSION}); "
            "upgrade picsift to open it"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        with conn:
            conn.executescript(_MIGRATIONS[version])
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),)
            )
    return found
