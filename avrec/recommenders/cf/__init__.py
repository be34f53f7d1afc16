"""Collaborative-filtering recommenders (learn from interactions alone)."""

from avrec.recommenders.cf._popularity import Popularity

__all__ = ["Popularity"]
