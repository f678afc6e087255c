"""Exact duplicates: the same bytes at several paths (free from content hashing at scan time)."""

from __future__ import annotations

import pandas as pd

from picsift.workspace.store import Workspace

_SQL = """
SELECT f.media_id, g.n_paths, f.path, f.relpath, f.size, m.width, m.height, m.format
FROM files f
JOIN (SELECT media_id, COUNT(*) AS n_paths FROM files WHERE kind = 'image'
      GROUP BY media_id HAVING COUNT(*) > 1) g ON g.media_id = f.media_id
JOIN media m ON m.media_id = f.media_id
WHERE f.kind = 'image'
ORDER BY g.n_paths DESC, f.media_id, f.path
"""


def exact_duplicates(ws: Workspace) -> pd.DataFrame:
    """One row per path of every media found at two or more paths, largest groups first.

    ``group`` numbers the groups from 1 so the table is easy to read and filter.
    """
    frame = pd.read_sql_query(_SQL, ws.connect())
    if frame.empty:
        return frame.assign(group=pd.Series(dtype="int64"))
    order = {media_id: i + 1 for i, media_id in enumerate(dict.fromkeys(frame["media_id"]))}
    frame.insert(0, "group", frame["media_id"].map(order))
    return frame
