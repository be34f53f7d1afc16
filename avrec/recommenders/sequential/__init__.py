"""Sequence-aware recommenders: the next item from the ordered history.

Examples
--------
>>> from avrec.recommenders.sequential import SequentialLSTM
>>> SequentialLSTM(max_length=20).max_length
20
"""

from avrec.recommenders.sequential._lstm import SequentialLSTM

__all__ = ["SequentialLSTM"]
