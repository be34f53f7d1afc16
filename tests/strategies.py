"""Hypothesis strategies shared by the test suite: ids, interaction logs, Interactions.

Import them from any test module::

    from strategies import interaction_logs, interactions

    @given(interactions(timestamps=True))
    def test_something(X): ...
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from avrec.data import Interactions

__all__ = [
    "id_lists",
    "int_ids",
    "interaction_logs",
    "interactions",
    "presence_masks",
    "str_ids",
]

# NumPy unicode arrays drop trailing NULs, so "a\x00" and "a" would be one id; surrogates
# cannot be encoded. Everything else is fair game.
_TEXT = st.text(
    alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
    min_size=0,
    max_size=6,
)

int_ids = st.integers(min_value=-(2**40), max_value=2**40)
"""Integer external ids (negative and large ones included)."""

str_ids = _TEXT
"""String external ids (empty and non-ASCII ones included)."""


def id_lists(
    *, min_size: int = 0, max_size: int = 20, unique: bool = False, kind: str | None = None
) -> st.SearchStrategy[list[Any]]:
    """Lists of ids of one kind (``"int"``, ``"str"`` or either when ``kind`` is None)."""
    kinds = {"int": int_ids, "str": str_ids}
    chosen = [kinds[kind]] if kind else list(kinds.values())
    return st.one_of(
        *(st.lists(s, min_size=min_size, max_size=max_size, unique=unique) for s in chosen)
    )


@st.composite
def interaction_logs(
    draw: st.DrawFn,
    *,
    max_users: int = 8,
    max_items: int = 8,
    min_size: int = 1,
    max_size: int = 40,
    weights: bool | None = None,
    timestamps: bool | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """A raw log: parallel arrays with repeated (user, item) pairs and tied timestamps.

    Returns a dict with ``user_ids``, ``item_ids`` (lists), ``weights`` and
    ``timestamps`` (float arrays or None), ready for ``Interactions.from_arrays(**log)``.
    ``weights``/``timestamps``: True forces them, False omits them, None lets
    Hypothesis choose. Weights are multiples of 0.5 in [0, 5] (zeros included) so
    sums are exact; timestamps are small integers so ties happen.
    """
    user_pool = draw(id_lists(min_size=1, max_size=max_users, unique=True, kind=kind))
    item_pool = draw(id_lists(min_size=1, max_size=max_items, unique=True, kind=kind))
    n = draw(st.integers(min_size, max_size))
    rows = draw(st.lists(st.integers(0, len(user_pool) - 1), min_size=n, max_size=n))
    cols = draw(st.lists(st.integers(0, len(item_pool) - 1), min_size=n, max_size=n))
    log: dict[str, Any] = {
        "user_ids": [user_pool[r] for r in rows],
        "item_ids": [item_pool[c] for c in cols],
        "weights": None,
        "timestamps": None,
    }
    if weights or (weights is None and draw(st.booleans())):
        halves = draw(st.lists(st.integers(0, 10), min_size=n, max_size=n))
        log["weights"] = np.asarray(halves, dtype=np.float64) / 2
    if timestamps or (timestamps is None and draw(st.booleans())):
        times = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
        log["timestamps"] = np.asarray(times, dtype=np.float64)
    return log


@st.composite
def interactions(draw: st.DrawFn, **log_kwargs: Any) -> Interactions:
    """An :class:`~avrec.data.Interactions` built from :func:`interaction_logs`.

    Keyword arguments go to :func:`interaction_logs` (e.g. ``timestamps=True``).
    """
    log = draw(interaction_logs(**log_kwargs))
    duplicates = draw(st.sampled_from(["sum", "last", "max"]))
    return Interactions.from_arrays(**log, duplicates=duplicates)


@st.composite
def presence_masks(
    draw: Any, n_modalities: int = 3, min_items: int = 1, max_items: int = 12
) -> np.ndarray:
    """Bool masks ``(n_items, n_modalities)`` of which items have which modality.

    Rows without any modality, rows with all of them and single-modality rows
    all occur.
    """
    n = draw(st.integers(min_items, max_items))
    flat = draw(st.lists(st.booleans(), min_size=n * n_modalities, max_size=n * n_modalities))
    return np.array(flat, dtype=bool).reshape(n, n_modalities)
