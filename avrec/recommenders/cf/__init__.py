"""Collaborative-filtering recommenders (learn from interactions alone)."""

from avrec.recommenders.cf._als import ALS
from avrec.recommenders.cf._bpr import BPR
from avrec.recommenders.cf._ease import EASE
from avrec.recommenders.cf._itemknn import ItemKNN
from avrec.recommenders.cf._popularity import Popularity

__all__ = ["ALS", "BPR", "EASE", "ItemKNN", "Popularity"]
