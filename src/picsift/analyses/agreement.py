"""`picsift agreement`: how far two coders agree, before anyone trusts their codes.

Percent agreement, Cohen's kappa and Krippendorff's alpha for nominal data, computed here
(a few lines each, so the formulas can be read and cited):

* kappa = (p_o - p_e) / (1 - p_e), p_o the share of items coded alike, p_e = sum over codes
  of the product of each coder's share of that code (Cohen 1960);
* alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k, with o the
  coincidence matrix (every ordered pair of values within a unit, weighted 1 / (m_u - 1)),
  n_c its margins and n the number of pairable values (Krippendorff 2011, "Computing
  Krippendorff's alpha-reliability"). It accepts any number of coders and missing values.

Only items both coders coded (non-empty cell) count; codes are compared as trimmed text.
Both statistics are undefined (NaN) when every value is the same code.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from picsift.errors import PicsiftError


def percent_agreement(a: Sequence[str], b: Sequence[str]) -> float:
    if len(a) != len(b) or not a:
        raise ValueError("two non-empty lists of the same length are needed")
    return sum(x == y for x, y in zip(a, b)) / len(a)


def cohens_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    observed = percent_agreement(a, b)
    n = len(a)
    share_a, share_b = Counter(a), Counter(b)
    expected = sum(share_a[c] * share_b[c] for c in share_a) / (n * n)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[str]]) -> float:
    """Alpha over units, each given as the values its coders assigned (missing ones left out)."""
    disagreeing = 0.0  # sum over c != k of o_ck
    margins: Counter[str] = Counter()  # n_c
    for values in units:
        m = len(values)
        if m < 2:
            continue  # a unit coded once cannot be compared: not pairable
        counts = Counter(values)
        disagreeing += (m * m - sum(v * v for v in counts.values())) / (m - 1)
        for code, count in counts.items():
            margins[code] += count  # sum_k o_ck = count of c in the unit, (m-1)/(m-1)
    n = sum(margins.values())
    expected = n * n - sum(v * v for v in margins.values())  # sum over c != k of n_c n_k
    if n == 0 or expected == 0:
        return math.nan
    return 1 - (n - 1) * disagreeing / expected


@dataclass
class Agreement:
    """Agreement of two coders on the items both coded."""

    n_items: int
    only_first: int
    only_second: int
    percent: float
    kappa: float
    alpha: float
    codes: list[str]


def _read(path: str | Path, keys: list[str], column: str) -> pd.Series:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PicsiftError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in [*keys, column] if c not in frame.columns]
    if missing:
        raise PicsiftError(f"{path} lacks the column(s) {', '.join(map(repr, missing))}")
    key = frame[keys].apply(lambda row: "\x1f".join(v.strip() for v in row), axis=1) \
        if len(frame) else pd.Series([], dtype=str)
    if key.duplicated().any():
        twice = key[key.duplicated()].iloc[0]
        raise PicsiftError(f"{path} has {twice!r} twice in {'+'.join(keys)}")
    codes = pd.Series(frame[column].str.strip().to_numpy(), index=key.to_numpy())
    return codes[codes != ""]


def compare_coders(first: str | Path, second: str | Path, column: str = "code",
                   key: str = "path") -> Agreement:
    """Read two coded CSVs and compare ``column`` on rows matched by ``key`` (comma-separated
    for several columns, e.g. ``path_a,path_b``)."""
    keys = [k.strip() for k in key.split(",") if k.strip()]
    a, b = _read(first, keys, column), _read(second, keys, column)
    common = [k for k in a.index if k in b.index]
    if not common:
        raise PicsiftError(f"no item was coded in both files (matched on {'+'.join(keys)})")
    codes_a, codes_b = a[common].tolist(), b[common].tolist()
    return Agreement(
        n_items=len(common), only_first=len(a) - len(common), only_second=len(b) - len(common),
        percent=percent_agreement(codes_a, codes_b), kappa=cohens_kappa(codes_a, codes_b),
        alpha=krippendorff_alpha_nominal(list(zip(codes_a, codes_b))),
        codes=sorted(set(codes_a) | set(codes_b)))
