"""SIFT local features: keypoints and descriptors for copy detection.

Images are decoded through picsift.media (orientation, modes, JPEG draft) at ``max_side``
pixels on the longer side (PIMMI uses 512), turned grey and described with OpenCV SIFT.
Descriptors are stored as uint8 (SIFT values are integers 0-255: lossless) and converted to
RootSIFT at index time. Keypoints keep x, y, size and angle so the geometric check can
estimate how one image maps onto another.

Mirrored copies are found without extracting twice: the SIFT descriptor of a horizontally
mirrored patch is a fixed permutation of the original descriptor (its 4x4 cells flipped
along the keypoint's orientation axis and its 8 orientation bins negated), so the query side
mirrors descriptors and x coordinates instead of decoding again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from picsift.errors import MediaError
from picsift.media.decode import DecodeOptions, load_image

EXTRACTOR = "sift"
VERSION = "1"


@dataclass(frozen=True)
class SiftParams:
    """Extraction settings; changing any of them makes a new feature set."""

    max_side: int = 512
    nfeatures: int = 600
    n_octave_layers: int = 3
    contrast_threshold: float = 0.04
    edge_threshold: float = 10.0
    sigma: float = 1.6

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SIFT_CACHE: dict[SiftParams, Any] = {}


def _sift(params: SiftParams) -> Any:
    import cv2

    if params not in _SIFT_CACHE:
        cv2.setNumThreads(1)  # parallelism comes from the engine's processes
        _SIFT_CACHE[params] = cv2.SIFT_create(
            nfeatures=params.nfeatures, nOctaveLayers=params.n_octave_layers,
            contrastThreshold=params.contrast_threshold, edgeThreshold=params.edge_threshold,
            sigma=params.sigma,
        )
    return _SIFT_CACHE[params]


@dataclass
class LocalFeatures:
    """Keypoints (x, y, size, angle) and uint8 descriptors of one image at its working size."""

    width: int
    height: int
    keypoints: np.ndarray  # float32 (n, 4)
    descriptors: np.ndarray  # uint8 (n, 128)


def extract_from_array(grey: np.ndarray, params: SiftParams) -> LocalFeatures:
    """SIFT on a uint8 greyscale array already at working size."""
    keypoints, descriptors = _sift(params).detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return LocalFeatures(grey.shape[1], grey.shape[0], np.zeros((0, 4), np.float32),
                             np.zeros((0, 128), np.uint8))
    kps = np.array([(k.pt[0], k.pt[1], k.size, k.angle) for k in keypoints], dtype=np.float32)
    desc = np.clip(np.rint(descriptors), 0, 255).astype(np.uint8)
    return LocalFeatures(grey.shape[1], grey.shape[0], kps, desc)


def extract_local_features(path: str, params: SiftParams,
                           decode: DecodeOptions | None = None) -> LocalFeatures:
    """Decode ``path`` (EXIF-upright, RGB, at most ``max_side``) and extract SIFT."""
    image = load_image(path, size=params.max_side, options=decode)
    grey = np.asarray(image.convert("L"))
    return extract_from_array(grey, params)


# ------------------------------------------------------------------ descriptors
def _mirror_permutation() -> np.ndarray:
    cells = np.arange(128).reshape(4, 4, 8)
    return cells[::-1, :, (-np.arange(8)) % 8].reshape(-1)


MIRROR_PERMUTATION = _mirror_permutation()


def mirror_descriptors(desc: np.ndarray) -> np.ndarray:
    """Descriptors the same keypoints would have in the horizontally mirrored image."""
    return desc[:, MIRROR_PERMUTATION]


def root_sift(desc: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, square-root; unit L2 norm."""
    x = desc.astype(np.float32)
    x /= np.maximum(x.sum(axis=1, keepdims=True), 1e-7)
    return np.sqrt(x, out=x)


def extract_batch(params: SiftParams, decode: DecodeOptions,
                  batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Worker task: (media_id, path) pairs -> feature records or error records."""
    out: list[dict[str, Any]] = []
    for media_id, path in batch:
        try:
            feats = extract_local_features(path, params, decode)
        except MediaError as exc:
            out.append({"media_id": media_id, "path": path, "error": exc.reason, "kind": exc.kind})
            continue
        except Exception as exc:  # cv2 failures on odd images stay per-file
            out.append({"media_id": media_id, "path": path, "kind": "extract",
                        "error": f"{exc.__class__.__name__}: {exc}"[:300]})
            continue
        out.append({"media_id": media_id, "width": feats.width, "height": feats.height,
                    "keypoints": feats.keypoints, "descriptors": feats.descriptors})
    return out
