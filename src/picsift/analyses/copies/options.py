"""Settings of copy detection, one dataclass passed explicitly through every step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from picsift.features.local import SiftParams


@dataclass
class CopiesOptions:
    """Every knob of `picsift copies`; CLI flags map one to one.

    The copy decision scales with the images instead of a fixed inlier count: a pair must
    have ``min_inliers`` geometrically consistent matches AND an inlier ratio of at least
    ``min_inlier_ratio`` AND a matched region covering at least ``min_coverage`` of one of the
    two images. Defaults were calibrated on real negatives (see docs/copies.md).
    """

    sift: SiftParams = field(default_factory=SiftParams)
    workers: int | None = None
    engine: str = "local"             # local | ray: where extraction and queries run
    address: str | None = None        # Ray cluster address (docs/scale.md)
    batch_size: int = 16
    max_memory: int | None = None     # bytes the copy index may take; refuse a bigger build
    # index
    index_type: str = "auto"          # auto | Flat | a faiss factory string such as IVF1024,SQ8
    index_storage: str = "auto"       # auto | memory | disk: where the IVF lists live (ondisk.py)
    nprobe: int = 4
    # query
    knn: int = 16                     # neighbours per descriptor
    max_distance: float = 0.35        # squared RootSIFT L2 distance (0..2) for a tentative match
    distance_ratio: float = 0.8       # keep neighbours within nearest/ratio of the nearest
    min_votes: int = 6                # tentative matches for a candidate image to be verified
    max_candidates: int = 100         # candidate images verified per query image
    mirror: bool = True               # also match the mirrored image
    query_points: int = 250           # strongest keypoints searched per image (0 = all)
    mirror_points: int = 150          # strongest keypoints searched mirrored (0 = all)
    # verification
    min_inliers: int = 12
    min_inlier_ratio: float = 0.25
    min_coverage: float = 0.06        # share of one image's area spanned by the inliers
    ransac_threshold: float = 0.012   # reprojection error, as a fraction of the image diagonal
    # clustering
    algo: str = "leiden"              # leiden | louvain | components
    resolution: float = 1.0
    progress: bool = False

    def index_params(self) -> dict[str, Any]:
        return {"sift": self.sift.as_dict(), "index_type": self.index_type}

    def query_params(self) -> dict[str, Any]:
        keys = ("knn", "max_distance", "distance_ratio", "min_votes", "max_candidates", "mirror",
                "mirror_points", "query_points",
                "min_inliers", "min_inlier_ratio", "min_coverage", "ransac_threshold", "nprobe")
        return {"index": self.index_params(), **{k: asdict(self)[k] for k in keys}}


def options_from_dict(data: dict[str, Any]) -> CopiesOptions:
    """Rebuild options saved with ``asdict`` (the workspace remembers the last ones used)."""
    known = {k: v for k, v in data.items() if k in CopiesOptions.__dataclass_fields__}
    sift = known.pop("sift", None)
    options = CopiesOptions(**known)
    if sift:
        options.sift = SiftParams(**sift)
    return options


def options_to_dict(options: CopiesOptions) -> dict[str, Any]:
    data = asdict(options)
    data.pop("progress", None)
    data.pop("workers", None)
    data.pop("engine", None)
    data.pop("address", None)
    data.pop("max_memory", None)      # a limit of this run and machine, not a setting
    return data


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5T' or a plain number of bytes -> bytes (for --max-memory)."""
    from picsift.errors import PicsiftError

    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:] in units and cleaned[-1:] else (cleaned, "")
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError) as exc:
        raise PicsiftError(f"cannot read the size {text!r}: use e.g. 8G, 512M") from exc
