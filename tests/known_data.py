"""Known-answer datasets shared by the tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from avrec.data import Interactions, ItemFeatures


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


def block_item_features(
    n_items: int = 60, n_groups: int = 4, seed: int = 0, noise: float = 0.5
) -> ItemFeatures:
    """Content features for :func:`block_interactions`: each modality encodes the item's group.

    ``"audio"`` (8 dims) and ``"video"`` (6 dims) are noisy one-hot-like codes
    of the item group (``i % n_groups``), so a content model can tell the
    blocks apart from features alone, also for items without interactions.
    Row ids are ``i0 .. i{n_items-1}`` like the interaction fixture's items.
    """
    rng = np.random.default_rng(seed + 1000)
    item_group = np.arange(n_items) % n_groups
    mods = {}
    for name, dim in (("audio", 8), ("video", 6)):
        centres = rng.normal(size=(n_groups, dim))
        mods[name] = (centres[item_group] + noise * rng.normal(size=(n_items, dim))).astype(
            np.float32
        )
    return ItemFeatures(mods, items=[f"i{i}" for i in range(n_items)])
