"""Collaborative-filtering recommenders (learn from interactions alone)."""

from avrec.recommenders.cf._ease import EASE
from avrec.recommenders.cf._itemknn import ItemKNN
from avrec.recommenders.cf._popularity import Popularity

__all__ = ["EASE", "ItemKNN", "Popularity"]
