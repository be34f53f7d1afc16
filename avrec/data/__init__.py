"""Interaction data: vocabularies, interaction matrices, loaders, splits and synthetic data.

Examples
--------
>>> from avrec.data import Interactions, random_split
>>> X = Interactions.from_arrays(["u1", "u2", "u2"], ["a", "a", "b"])
>>> X.shape
(2, 2)
>>> train, test = random_split(X, test_size=0.5, random_state=0)
>>> train.nnz + test.nnz
3
"""

from avrec.data._av_corpus import AVCorpus, make_av_corpus
from avrec.data._interactions import Interactions
from avrec.data._item_features import ItemFeatures
from avrec.data._movielens import MOVIELENS_URL, load_movielens
from avrec.data._splits import (
    ColdItemSplit,
    TrainTestSplit,
    cold_item_split,
    leave_last_out,
    random_split,
    temporal_split,
)
from avrec.data._synthetic import make_interactions
from avrec.data._vocabulary import Vocabulary

__all__ = [
    "AVCorpus",
    "ColdItemSplit",
    "Interactions",
    "ItemFeatures",
    "MOVIELENS_URL",
    "TrainTestSplit",
    "Vocabulary",
    "cold_item_split",
    "leave_last_out",
    "load_movielens",
    "make_av_corpus",
    "make_interactions",
    "random_split",
    "temporal_split",
]
