"""Color features of one picture: named-color shares, palette, hue, tone, colorfulness, sharpness.

Everything is vectorised numpy on a downscaled picture (longer side <= ``MAX_SIDE``), so a
worker handles hundreds of images per second:

* **Named colors.** Every pixel is quantised to 6 bits per channel (262,144 possible codes) and
  named once per *code*, not per pixel: the 139 distinct CSS color keywords (W3C sRGB
  values) are the reference points, each belonging to one of AMMICO's 12 names
  (``ammico/data/Color_tables.csv``); a code takes the name of its nearest keyword in CIELAB by
  CIEDE2000 or CIE76. Names found for a code are cached per process (``_NameCache``), so after
  a few images almost every code is a lookup. Shares are pixel counts, so they sum to 1.
* **Palette.** Weighted k-means in CIELAB over the picture's colors merged into 5-bit cells
  (weights = pixel counts; about a thousand cells in a photo), k-means++ start from ``seed``:
  deterministic and fast. Each hex code is the mean sRGB of its cluster's pixels.
* **Hue histogram.** ``HUE_BINS`` bins of HSV hue (bin 0 = [0°, 20°)), each code weighted by
  its pixel count times its HSV chroma (max - min): grey, near-black and near-white pixels have
  an unstable hue and count (almost) nothing. Sums to 1, or is all zeros for a grey picture.
* **Tone.** brightness = mean CIELAB L* / 100; contrast = standard deviation of L* / 100 (RMS
  contrast of lightness); saturation = mean HSV saturation; colorfulness = Hasler & Süsstrunk
  (2003) M on 0-255 sRGB; sharpness = variance of the Laplacian of the grey picture resized so
  its longer side is ``SHARPNESS_SIDE`` px (comparable across image sizes);
  greyscale = fewer than 1 % of pixels have a channel spread above 12/255.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from picsift.errors import MediaError, PicsiftError
from picsift.media.decode import DecodeOptions, load_image

log = logging.getLogger(__name__)

EXTRACTOR = "colors"
VERSION = "1"
MAX_SIDE = 256  # pictures are analysed at this longer side (callers decode at this size)
SHARPNESS_SIDE = 256  # the fixed scale at which sharpness is measured
HUE_BINS = 18  # 20 degrees each
GREY_SPREAD = 12  # max - min channel value (0-255) under which a pixel is grey
GREY_MAX_COLORED = 0.01  # a picture is greyscale when fewer pixels than this are colored
BITS = 6  # quantisation per channel for naming, palette and hue
METRICS = ("ciede2000", "cie76")

COLOR_NAMES = ("red", "green", "blue", "yellow", "cyan", "orange", "purple", "pink", "brown",
               "grey", "white", "black")  # AMMICO's 12 names, in AMMICO's order

# The CSS color keywords (CSS Color Module Level 3 §4.3 plus CSS 4's rebeccapurple; spelling
# variants such as "grey"/"gray" dropped), grouped into the 12 names exactly as AMMICO's
# ammico/data/Color_tables.csv groups them (teal and darkcyan are green, olive is brown,
# lavender is purple, mistyrose is white...). Hex values are the W3C's.
REFERENCE_COLORS: dict[str, dict[str, str]] = {
    "pink": {"pink": "#ffc0cb", "lightpink": "#ffb6c1", "hotpink": "#ff69b4",
             "deeppink": "#ff1493", "palevioletred": "#db7093", "mediumvioletred": "#c71585"},
    "purple": {"lavender": "#e6e6fa", "thistle": "#d8bfd8", "plum": "#dda0dd",
               "orchid": "#da70d6", "violet": "#ee82ee", "fuchsia": "#ff00ff",
               "mediumorchid": "#ba55d3", "darkorchid": "#9932cc", "darkviolet": "#9400d3",
               "blueviolet": "#8a2be2", "darkmagenta": "#8b008b", "purple": "#800080",
               "mediumpurple": "#9370db", "mediumslateblue": "#7b68ee", "slateblue": "#6a5acd",
               "darkslateblue": "#483d8b", "rebeccapurple": "#663399", "indigo": "#4b0082"},
    "red": {"lightsalmon": "#ffa07a", "salmon": "#fa8072", "darksalmon": "#e9967a",
            "lightcoral": "#f08080", "indianred": "#cd5c5c", "crimson": "#dc143c",
            "red": "#ff0000", "firebrick": "#b22222", "darkred": "#8b0000"},
    "orange": {"orange": "#ffa500", "darkorange": "#ff8c00", "coral": "#ff7f50",
               "tomato": "#ff6347", "orangered": "#ff4500"},
    "yellow": {"gold": "#ffd700", "yellow": "#ffff00", "lightyellow": "#ffffe0",
               "lemonchiffon": "#fffacd", "lightgoldenrodyellow": "#fafad2",
               "papayawhip": "#ffefd5", "moccasin": "#ffe4b5", "peachpuff": "#ffdab9",
               "palegoldenrod": "#eee8aa", "khaki": "#f0e68c", "darkkhaki": "#bdb76b"},
    "green": {"greenyellow": "#adff2f", "chartreuse": "#7fff00", "lawngreen": "#7cfc00",
              "lime": "#00ff00", "limegreen": "#32cd32", "palegreen": "#98fb98",
              "lightgreen": "#90ee90", "mediumspringgreen": "#00fa9a",
              "springgreen": "#00ff7f", "mediumseagreen": "#3cb371", "seagreen": "#2e8b57",
              "forestgreen": "#228b22", "green": "#008000", "darkgreen": "#006400",
              "yellowgreen": "#9acd32", "olivedrab": "#6b8e23", "darkolivegreen": "#556b2f",
              "mediumaquamarine": "#66cdaa", "darkseagreen": "#8fbc8f",
              "lightseagreen": "#20b2aa", "darkcyan": "#008b8b", "teal": "#008080"},
    "cyan": {"cyan": "#00ffff", "lightcyan": "#e0ffff", "paleturquoise": "#afeeee",
             "aquamarine": "#7fffd4", "turquoise": "#40e0d0", "mediumturquoise": "#48d1cc",
             "darkturquoise": "#00ced1"},
    "blue": {"cadetblue": "#5f9ea0", "steelblue": "#4682b4", "lightsteelblue": "#b0c4de",
             "lightblue": "#add8e6", "powderblue": "#b0e0e6", "lightskyblue": "#87cefa",
             "skyblue": "#87ceeb", "cornflowerblue": "#6495ed", "deepskyblue": "#00bfff",
             "dodgerblue": "#1e90ff", "royalblue": "#4169e1", "blue": "#0000ff",
             "mediumblue": "#0000cd", "darkblue": "#00008b", "navy": "#000080",
             "midnightblue": "#191970"},
    "brown": {"cornsilk": "#fff8dc", "blanchedalmond": "#ffebcd", "bisque": "#ffe4c4",
              "navajowhite": "#ffdead", "wheat": "#f5deb3", "burlywood": "#deb887",
              "tan": "#d2b48c", "rosybrown": "#bc8f8f", "sandybrown": "#f4a460",
              "goldenrod": "#daa520", "darkgoldenrod": "#b8860b", "peru": "#cd853f",
              "chocolate": "#d2691e", "olive": "#808000", "saddlebrown": "#8b4513",
              "sienna": "#a0522d", "brown": "#a52a2a", "maroon": "#800000"},
    "white": {"white": "#ffffff", "snow": "#fffafa", "honeydew": "#f0fff0",
              "mintcream": "#f5fffa", "azure": "#f0ffff", "aliceblue": "#f0f8ff",
              "ghostwhite": "#f8f8ff", "whitesmoke": "#f5f5f5", "seashell": "#fff5ee",
              "beige": "#f5f5dc", "oldlace": "#fdf5e6", "floralwhite": "#fffaf0",
              "ivory": "#fffff0", "antiquewhite": "#faebd7", "linen": "#faf0e6",
              "lavenderblush": "#fff0f5", "mistyrose": "#ffe4e1"},
    "grey": {"gainsboro": "#dcdcdc", "lightgray": "#d3d3d3", "silver": "#c0c0c0",
             "darkgray": "#a9a9a9", "dimgray": "#696969", "gray": "#808080",
             "lightslategray": "#778899", "slategray": "#708090",
             "darkslategray": "#2f4f4f"},
    "black": {"black": "#000000"},
}

# ---------------------------------------------------------------- sRGB <-> CIELAB (D65)
# IEC 61966-2-1 sRGB primaries and transfer curve, D65 white; the same constants as
# scikit-image and colour-science, so L*a*b* values agree with theirs to ~1e-4.
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = (6 / 29) ** 3


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] -> linear light (the IEC 61966-2-1 curve)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit (0-255) sRGB triples (..., 3) -> CIELAB (..., 3), D65 white, L* in 0-100."""
    xyz = srgb_to_linear(np.asarray(rgb, dtype=np.float64) / 255.0) @ _RGB_TO_XYZ.T
    t = xyz / _WHITE
    f = np.where(t > _EPS, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> 8-bit sRGB (..., 3) as uint8, out-of-gamut values clipped."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    t = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    linear = np.clip((t * _WHITE) @ _XYZ_TO_RGB.T, 0, 1)
    srgb = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8)


def delta_e_cie76(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """Euclidean distance in CIELAB (broadcasting)."""
    return np.sqrt(((np.asarray(lab1) - np.asarray(lab2)) ** 2).sum(axis=-1))


def delta_e_ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1), broadcasting over leading axes.

    Follows Sharma, Wu & Dalal (2005), whose test pairs the tests check to 1e-4.
    """
    lab1, lab2 = np.asarray(lab1, np.float64), np.asarray(lab2, np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    c7 = c_mean**7
    g = 0.5 * (1 - np.sqrt(c7 / (c7 + 25.0**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    both = (c1p * c2p) != 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(both, dh, 0)
    d_L, d_C = L2 - L1, c2p - c1p
    d_H = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) <= 180, h_sum / 2,
                      np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2))
    h_mean = np.where(both, h_mean, h_sum)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    cp7 = cp_mean**7
    r_c = 2 * np.sqrt(cp7 / (cp7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_L / s_l) ** 2 + (d_C / s_c) ** 2 + (d_H / s_h) ** 2
                   + r_t * (d_C / s_c) * (d_H / s_h))


def normalise_metric(metric: str) -> str:
    """'ciede2000' or 'cie76' from any usual spelling (AMMICO's 'CIE 2000', 'CIE 1976'...)."""
    key = metric.lower().replace(" ", "").replace("-", "").replace("_", "")
    aliases = {"ciede2000": "ciede2000", "cie2000": "ciede2000", "de2000": "ciede2000",
               "cie76": "cie76", "cie1976": "cie76", "de76": "cie76"}
    if key not in aliases:
        raise PicsiftError(f"unknown color distance {metric!r}: use ciede2000 or cie76")
    return aliases[key]


# ---------------------------------------------------------------- reference colors
def _hex_to_rgb(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def reference_table() -> list[dict[str, Any]]:
    """Every reference keyword: its name, group (one of the 12), hex, sRGB and CIELAB."""
    rows = []
    for group, members in REFERENCE_COLORS.items():
        for keyword, hexcode in members.items():
            rgb = _hex_to_rgb(hexcode)
            L, a, b = (round(float(v), 2) for v in rgb_to_lab(np.array(rgb)))
            rows.append({"keyword": keyword, "group": group, "hex": hexcode, "rgb": rgb,
                         "L": L, "a": a, "b": b})
    return rows


_REF_ROWS = reference_table()
_REF_LAB_EXACT = rgb_to_lab(np.array([r["rgb"] for r in _REF_ROWS]))
_REF_GROUP = np.array([COLOR_NAMES.index(r["group"]) for r in _REF_ROWS], dtype=np.int8)

# ---------------------------------------------------------------- quantisation
_LEVELS = 1 << BITS
_N_CODES = _LEVELS**3
# A code's representative value maps level 0 to 0 and the top level to 255, so pure
# primaries, black and white keep their exact values.
_LEVEL_VALUE = np.arange(_LEVELS) * (255.0 / (_LEVELS - 1))


def _code_rgb(codes: np.ndarray) -> np.ndarray:
    """Representative 0-255 sRGB (float) of each 6-bit code."""
    r, g, b = codes >> (2 * BITS), (codes >> BITS) & (_LEVELS - 1), codes & (_LEVELS - 1)
    return np.stack([_LEVEL_VALUE[r], _LEVEL_VALUE[g], _LEVEL_VALUE[b]], axis=-1)


class _NameCache:
    """Per-process memo: 6-bit code -> index of its name, filled for the codes met so far.

    Naming a code costs a distance to all 139 references (CIEDE2000 is ~40 numpy ops), so it is
    done once per code per process; a photo has a few thousand distinct codes and a corpus
    shares most of them, so the cost fades after the first images.
    """

    def __init__(self) -> None:
        self.names: dict[str, np.ndarray] = {}
        self.computed: dict[str, int] = {}

    def lookup(self, codes: np.ndarray, metric: str) -> np.ndarray:
        table = self.names.get(metric)
        if table is None:
            table = self.names[metric] = np.full(_N_CODES, -1, dtype=np.int8)
            self.computed[metric] = 0
        unknown = codes[table[codes] < 0]
        for start in range(0, len(unknown), 4096):
            chunk = unknown[start:start + 4096]
            table[chunk] = name_colors(rgb_to_lab(_code_rgb(chunk)), metric)
        if len(unknown):
            self.computed[metric] += len(unknown)
            log.debug("named %d new color codes (%s), %d so far", len(unknown), metric,
                      self.computed[metric])
        return table[codes]


_CACHE = _NameCache()


def name_colors(lab: np.ndarray, metric: str = "ciede2000") -> np.ndarray:
    """Index into COLOR_NAMES of the nearest reference keyword of each Lab color (n, 3)."""
    metric = normalise_metric(metric)
    distance = delta_e_ciede2000 if metric == "ciede2000" else delta_e_cie76
    d = distance(np.asarray(lab)[:, None, :], _REF_LAB_EXACT[None, :, :])
    return _REF_GROUP[np.argmin(d, axis=1)]


def name_of(rgb: tuple[int, int, int], metric: str = "ciede2000") -> str:
    """The name (one of the 12) of a single 0-255 sRGB color, unquantised."""
    return COLOR_NAMES[int(name_colors(rgb_to_lab(np.array([rgb], dtype=np.float64)), metric)[0])]


# ---------------------------------------------------------------- the features
def _downscale(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _check(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"expected an (height, width, 3) RGB array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def quantise(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct 6-bit codes, pixel counts, mean true sRGB of each code) of an (h, w, 3) uint8
    picture; the means keep palettes and hues exact although names are looked up per code."""
    flat = rgb.reshape(-1, 3)
    q = (flat >> (8 - BITS)).astype(np.int32)
    codes = (q[:, 0] << (2 * BITS)) | (q[:, 1] << BITS) | q[:, 2]
    seen = np.zeros(_N_CODES, dtype=bool)
    seen[codes] = True
    present = np.flatnonzero(seen)
    index = np.empty(_N_CODES, dtype=np.int32)
    index[present] = np.arange(len(present), dtype=np.int32)
    inverse = index[codes]
    counts = np.bincount(inverse, minlength=len(present))
    sums = np.stack([np.bincount(inverse, weights=flat[:, c], minlength=len(present))
                     for c in range(3)], axis=1)
    return present, counts, sums / counts[:, None]


def _pick(rng: np.random.Generator, mass: np.ndarray) -> int:
    """An index drawn with probability proportional to ``mass`` (cheaper than rng.choice)."""
    cumulative = np.cumsum(mass)
    return min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
               len(mass) - 1)


def _kmeans(points: np.ndarray, weights: np.ndarray, k: int, seed: int,
            iterations: int = 25, tolerance: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means (k-means++ start) -> (cluster of each point, share of each cluster),
    clusters numbered from the largest share down. Stops when no centre moves more than
    ``tolerance`` (ΔE76 units: far below what a palette swatch shows)."""
    if len(points) <= k:
        order = np.argsort(-weights, kind="stable")
        labels = np.empty(len(points), dtype=np.int64)
        labels[order] = np.arange(len(points))
        return labels, weights[order] / weights.sum()
    rng = np.random.default_rng(seed)
    centres = [points[_pick(rng, weights)]]
    closest = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        mass = weights * closest
        if mass.sum() <= 0:
            break
        centres.append(points[_pick(rng, mass)])
        closest = np.minimum(closest, ((points - centres[-1]) ** 2).sum(axis=1))
    c = np.array(centres)
    for _ in range(iterations):
        # |p - c|^2 without the |p|^2 term, which does not change the argmin
        labels = np.argmin((c**2).sum(axis=1)[:, None] - 2 * (c @ points.T), axis=0)
        mass = np.bincount(labels, weights=weights, minlength=len(c))
        sums = np.stack([np.bincount(labels, weights=weights * points[:, d], minlength=len(c))
                         for d in range(3)], axis=1)
        moved = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-12)[:, None], c)
        shift = float(np.abs(moved - c).max())
        c = moved
        if shift <= tolerance:
            break
    labels = np.argmin((c**2).sum(axis=1)[:, None] - 2 * (c @ points.T), axis=0)
    mass = np.bincount(labels, weights=weights, minlength=len(c))
    order = np.argsort(-mass, kind="stable")
    rank = np.empty(len(c), dtype=np.int64)
    rank[order] = np.arange(len(c))
    kept = int((mass > 0).sum())
    return rank[labels], mass[order][:kept] / mass.sum()


def _cluster_hex(mean_rgb: np.ndarray, weights: np.ndarray, member: np.ndarray) -> str:
    """Hex code of the mean sRGB of a cluster's pixels."""
    w = weights[member]
    value = (mean_rgb[member] * w[:, None]).sum(axis=0) / w.sum()
    return "#%02x%02x%02x" % tuple(int(v) for v in np.clip(np.rint(value), 0, 255))


def _coarsen(codes: np.ndarray, weights: np.ndarray, mean_rgb: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Merge 6-bit codes into 5-bit cells: (weight, mean sRGB) per occupied cell.

    A photo has thousands of 6-bit codes but only about a thousand 5-bit cells, which makes
    the palette's k-means 4x cheaper while a cell (< 3 ΔE76 wide) is far finer than a palette.
    """
    cell = (((codes >> (2 * BITS + 1)) & 31) << 10) | (((codes >> (BITS + 1)) & 31) << 5) \
        | ((codes >> 1) & 31)
    cells, inverse = np.unique(cell, return_inverse=True)
    mass = np.bincount(inverse, weights=weights, minlength=len(cells))
    rgb = np.stack([np.bincount(inverse, weights=weights * mean_rgb[:, c], minlength=len(cells))
                    for c in range(3)], axis=1) / mass[:, None]
    return mass, rgb


def palette(codes: np.ndarray, weights: np.ndarray, mean_rgb: np.ndarray, size: int,
            seed: int) -> dict[str, list[Any]]:
    """The ``size`` dominant colors: weighted k-means in CIELAB, hex = mean sRGB of a cluster."""
    mass, rgb = _coarsen(codes, weights, mean_rgb)
    labels, shares = _kmeans(rgb_to_lab(rgb), mass, size, seed)
    return {"palette": [_cluster_hex(rgb, mass, labels == k) for k in range(len(shares))],
            "palette_shares": [float(v) for v in shares]}


def _hue_histogram(rgb: np.ndarray, counts: np.ndarray) -> np.ndarray:
    top, low = rgb.max(axis=1), rgb.min(axis=1)
    chroma = (top - low) / 255.0
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    span = np.where(chroma > 0, top - low, 1.0)
    hue = np.where(top == r, ((g - b) / span) % 6,
                   np.where(top == g, (b - r) / span + 2, (r - g) / span + 4)) * 60.0
    bins = np.minimum((hue / (360.0 / HUE_BINS)).astype(int), HUE_BINS - 1)
    hist = np.bincount(bins, weights=counts * chroma, minlength=HUE_BINS)
    total = hist.sum()
    return (hist / total if total > 0 else hist).astype(np.float32)


def _tone(rgb: np.ndarray) -> dict[str, float | bool]:
    """Per-pixel brightness, contrast, saturation, colorfulness and the greyscale flag."""
    flat = rgb.reshape(-1, 3)
    r, g, b = flat[:, 0], flat[:, 1], flat[:, 2]
    y = _Y_LUT[0][r] + _Y_LUT[1][g] + _Y_LUT[2][b]
    lightness = np.where(y > _EPS, 116 * np.cbrt(y) - 16, y * (116 / (3 * (6 / 29) ** 2)))
    top = np.maximum(np.maximum(r, g), b)
    spread = top - np.minimum(np.minimum(r, g), b)
    saturation = spread.sum(dtype=np.float64) and float(
        (spread / np.maximum(top, 1).astype(np.float32)).mean())
    rf, gf = r.astype(np.float32), g.astype(np.float32)
    rg = rf - gf
    yb = 0.5 * (rf + gf) - b
    colorfulness = (np.sqrt(rg.var() + yb.var())
                    + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))
    return {"brightness": float(lightness.mean() / 100), "contrast": float(lightness.std() / 100),
            "saturation": float(saturation), "colorfulness": float(colorfulness),
            "greyscale": bool((spread > GREY_SPREAD).mean() < GREY_MAX_COLORED)}


# Each channel's contribution to luminance Y, for every 8-bit value.
_Y_LUT = srgb_to_linear(np.arange(256) / 255.0)[None, :] * _RGB_TO_XYZ[1][:, None]


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey picture at a fixed scale (longer side 256 px).

    Resizing first makes the number comparable across image sizes: the same photo at 4000 px
    and at 400 px scores about the same, and blur visible at thumbnail scale lowers it.
    """
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    scale = SHARPNESS_SIDE / max(h, w)
    size = (max(3, round(w * scale)), max(3, round(h * scale)))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    grey = cv2.resize(grey, size, interpolation=method)
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=1).var())


def color_features(rgb: np.ndarray, *, metric: str = "ciede2000", palette_size: int = 5,
                   seed: int = 0) -> dict[str, Any]:
    """All color features of one (height, width, 3) sRGB picture, as one flat row.

    Keys: the 12 names of COLOR_NAMES (pixel shares summing to 1), ``palette`` (hex codes,
    largest first), ``palette_shares``, ``hue_histogram`` (HUE_BINS floats), ``brightness``,
    ``contrast``, ``saturation``, ``colorfulness``, ``sharpness``, ``greyscale``. Pictures
    larger than MAX_SIDE are downscaled first (INTER_AREA).
    """
    metric = normalise_metric(metric)
    if palette_size < 1:
        raise PicsiftError("the palette needs at least one color")
    original = _check(rgb)
    small = _downscale(original, MAX_SIDE)
    codes, counts, mean_rgb = quantise(small)
    names = _CACHE.lookup(codes, metric)
    shares = np.bincount(names, weights=counts, minlength=len(COLOR_NAMES)) / counts.sum()
    weights = counts.astype(np.float64)
    row: dict[str, Any] = {name: float(s) for name, s in zip(COLOR_NAMES, shares)}
    row.update(palette(codes, weights, mean_rgb, palette_size, seed))
    row["hue_histogram"] = _hue_histogram(mean_rgb, weights)
    row.update(_tone(small))
    row["sharpness"] = sharpness(small)
    return row


def cache_stats() -> dict[str, int]:
    """How many distinct codes this process has named per metric (for benchmarks)."""
    return dict(_CACHE.computed)


def clear_cache() -> None:
    """Forget the named codes (benchmarks measure the cold start with it)."""
    _CACHE.names.clear()
    _CACHE.computed.clear()


def colors_batch(params: dict[str, Any], decode: DecodeOptions,
                 batch: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Worker task: (media_id, path) pairs -> one feature row per media (or an error record).

    ``params``: metric, palette_size, seed, decode_size (see analyses.colors.ColorOptions).
    """
    out: list[dict[str, Any]] = []
    for media_id, path in batch:
        try:
            picture = load_image(path, size=params["decode_size"], options=decode)
        except MediaError as exc:
            out.append({"media_id": media_id, "path": path, "error": exc.reason, "kind": exc.kind})
            continue
        row = color_features(np.asarray(picture), metric=params["metric"],
                             palette_size=params["palette_size"], seed=params["seed"])
        out.append({"media_id": media_id, **row})
    return out
