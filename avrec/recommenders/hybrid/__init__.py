"""Hybrid recommenders: collaborative filtering combined with item content."""

from avrec.recommenders.hybrid._blend import HybridBlend
from avrec.recommenders.hybrid._end_to_end import EndToEndVBPR
from avrec.recommenders.hybrid._vbpr import VBPR

__all__ = ["EndToEndVBPR", "HybridBlend", "VBPR"]
