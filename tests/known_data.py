"""Known-answer datasets shared by the tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from avrec.data import Interactions


def block_interactions(
    n_users: int = 120, n_items: int = 60, n_groups: int = 4, seed: int = 0
) -> Interactions:
    """Users in ``n_groups`` groups, each consuming (mostly) its own block of items.

    A known-answer dataset in the spirit of implicit's checkerboard: a model
    that learns structure recommends a user's own block; popularity cannot.
    Item popularity is skewed across blocks so that the globally popular items
    belong to one group only.
    """
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % n_groups
    item_group = np.arange(n_items) % n_groups
    same = user_group[:, None] == item_group[None, :]
    base = np.where(same, 0.5, 0.02)
    # the first group's items are consumed far more: popularity favours them for everyone
    base = base * np.where(item_group == 0, 1.0, 0.6)[None, :]
    dense = (rng.random((n_users, n_items)) < base).astype(np.float32)
    dense[np.arange(n_users), np.flatnonzero(item_group == 0)[0]] = 1.0
    ts = rng.integers(1_600_000_000, 1_700_000_000, size=int(dense.sum())).astype(np.float64)
    csr = sp.csr_matrix(dense)
    return Interactions.from_csr(
        csr,
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        timestamps=ts,
    )
