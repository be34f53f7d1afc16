"""Evaluation: vectorised ranking metrics and :func:`evaluate`.

The ``*_at_k`` metrics work on any recommender's output: a ``(n_users, K)``
int array of top-k item indices (padded with ``-1``) and the held-out sparse
matrix ``(n_users, n_items)``. :func:`evaluate` runs a fitted model over the
users with held-out items, in memory-bounded batches.

Examples
--------
>>> import numpy as np, scipy.sparse as sp
>>> from avrec.evaluation import ndcg_at_k
>>> relevant = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]]))
>>> ndcg_at_k(np.array([[0, 1], [2, 0]]), relevant)
1.0
"""

from avrec.evaluation._beyond_accuracy import coverage_at_k, intra_list_diversity_at_k, novelty_at_k
from avrec.evaluation._evaluate import EvaluationResult, evaluate
from avrec.evaluation._ranking import (
    f1_at_k,
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    truncated_recall_at_k,
)

__all__ = [
    "EvaluationResult",
    "coverage_at_k",
    "evaluate",
    "f1_at_k",
    "hit_rate_at_k",
    "intra_list_diversity_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty_at_k",
    "precision_at_k",
    "recall_at_k",
    "truncated_recall_at_k",
]
