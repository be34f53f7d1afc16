"""Recommenders behind one scikit-learn-style API.

Every model follows the :class:`Recommender` contract: ``fit``, ``recommend``,
``predict``, ``score_items``, ``partial_fit``, ``save``/``load``.

Examples
--------
>>> from avrec.data import make_interactions
>>> from avrec.recommenders import Popularity
>>> X = make_interactions(n_users=50, n_items=30, density=0.1, random_state=0)
>>> items, scores = Popularity().fit(X).recommend([0, 1], k=5)
>>> items.shape
(2, 5)
"""

from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders._topk import top_k
from avrec.recommenders.cf import ALS, BPR, EASE, ItemKNN, Popularity
from avrec.recommenders.content import ContentKNN, FeatureToFactor
from avrec.recommenders.hybrid import VBPR, EndToEndVBPR, HybridBlend
from avrec.recommenders.sequential import SequentialLSTM

__all__ = [
    "ALS",
    "BPR",
    "ContentKNN",
    "EASE",
    "EndToEndVBPR",
    "FeatureToFactor",
    "FitData",
    "HybridBlend",
    "ItemKNN",
    "Popularity",
    "Recommender",
    "SequentialLSTM",
    "VBPR",
    "top_k",
]
