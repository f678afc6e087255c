"""Clustering quality against a hand-made truth: PIMMI's metrics plus pairwise ones and ARI.

PIMMI reports "best matching" precision/recall/F1, macro-averaged over truth clusters (each
truth cluster is matched with the predicted cluster that maximises its F1), and a query average
precision (for each query image: the share of the other images in its predicted cluster that
truly belong with it; 0 when it was clustered with nothing). Those are reproduced here so
figures can be set beside PIMMI's published ones. Pairwise precision/recall/F1 (over all pairs
of images put together) and the adjusted Rand index complete the picture: macro averages hide
one giant wrong cluster, pairwise figures do not.

Images missing from the prediction count as singletons.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass
from math import comb


@dataclass
class ClusterScores:
    """All figures of one evaluation (floats in 0-1, ARI in -1..1)."""

    n_items: int
    n_truth_clusters: int
    n_predicted_clusters: int
    cluster_precision: float
    cluster_recall: float
    cluster_f1: float
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    adjusted_rand_index: float
    query_average_precision: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _complete(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable]
              ) -> dict[Hashable, Hashable]:
    """Prediction for every truth item; a missing one becomes its own singleton cluster."""
    full: dict[Hashable, Hashable] = {}
    for item in truth:
        label = predicted.get(item)
        full[item] = ("__singleton__", item) if label is None else ("c", label)
    return full


def best_matching_macro(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable]
                        ) -> tuple[float, float, float]:
    """Macro average over truth clusters of the best-F1 predicted cluster's P, R and F1."""
    pred = _complete(truth, predicted)
    pred_sizes = Counter(pred.values())
    members: dict[Hashable, list[Hashable]] = defaultdict(list)
    for item, label in truth.items():
        members[label].append(item)
    p_sum = r_sum = f_sum = 0.0
    for items in members.values():
        overlaps = Counter(pred[item] for item in items)
        best = (-1.0, 0.0, 0.0)
        for cluster, tp in overlaps.items():
            precision = tp / pred_sizes[cluster]
            recall = tp / len(items)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best[0]:
                best = (f1, precision, recall)
        f_sum += best[0]
        p_sum += best[1]
        r_sum += best[2]
    n = len(members)
    return p_sum / n, r_sum / n, f_sum / n


def _pairs_within(counts: Counter[Hashable]) -> int:
    return sum(comb(c, 2) for c in counts.values())


def pairwise_scores(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable]
                    ) -> tuple[float, float, float, float]:
    """Pairwise precision, recall, F1 and adjusted Rand index, from the contingency table."""
    pred = _complete(truth, predicted)
    joint = Counter((truth[item], pred[item]) for item in truth)
    together_both = _pairs_within(joint)
    together_truth = _pairs_within(Counter(truth.values()))
    together_pred = _pairs_within(Counter(pred.values()))
    precision = together_both / together_pred if together_pred else 1.0
    recall = together_both / together_truth if together_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = comb(len(truth), 2)
    expected = together_truth * together_pred / total if total else 0.0
    maximum = (together_truth + together_pred) / 2
    ari = (together_both - expected) / (maximum - expected) if maximum != expected else 1.0
    return precision, recall, f1, ari


def query_average_precision(truth: Mapping[Hashable, Hashable],
                            predicted: Mapping[Hashable, Hashable],
                            queries: set[Hashable]) -> float:
    """PIMMI's query AP: per query, true share of the non-query images in its cluster."""
    if not queries:
        raise ValueError("no query images given")
    by_cluster: dict[Hashable, list[Hashable]] = defaultdict(list)
    for item, label in predicted.items():
        if label is not None:
            by_cluster[label].append(item)
    total = 0.0
    for query in queries:
        label = predicted.get(query)
        others = [i for i in by_cluster.get(label, []) if i not in queries] if label is not None else []
        if others:
            total += sum(truth.get(i) == truth[query] for i in others) / len(others)
    return total / len(queries)


def evaluate_clusters(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable],
                      queries: set[Hashable] | None = None) -> ClusterScores:
    """Every metric at once; ``predicted`` may omit items (they count as singletons)."""
    if not truth:
        raise ValueError("the truth is empty")
    cp, cr, cf = best_matching_macro(truth, predicted)
    pp, pr, pf, ari = pairwise_scores(truth, predicted)
    completed = _complete(truth, predicted)
    return ClusterScores(
        n_items=len(truth),
        n_truth_clusters=len(set(truth.values())),
        n_predicted_clusters=len(set(completed.values())),
        cluster_precision=cp, cluster_recall=cr, cluster_f1=cf,
        pairwise_precision=pp, pairwise_recall=pr, pairwise_f1=pf,
        adjusted_rand_index=ari,
        query_average_precision=(
            query_average_precision(truth, predicted, queries) if queries else None),
    )
