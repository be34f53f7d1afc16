"""Hybrid recommenders: collaborative filtering combined with item content."""

from avrec.recommenders.hybrid._blend import HybridBlend
from avrec.recommenders.hybrid._vbpr import VBPR

__all__ = ["HybridBlend", "VBPR"]
