"""Composition rules: the (epsilon, delta) guarantees a list of releases may claim.

Kept apart from :class:`~avrec.privacy.PrivacyAccountant` (which owns the state and
the locking) so the arithmetic can be read and tested on its own; the rules are
documented in :mod:`avrec.privacy._accountant`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from avrec.privacy._rdp import rdp_to_epsilon

__all__: list[str] = []


@dataclass(frozen=True)
class PrivacyRelease:
    """One release recorded by a :class:`PrivacyAccountant`.

    Attributes
    ----------
    mechanism : str
        What made the release (``"laplace"``, ``"gaussian"``, ``"dp-sgd"`` ...).
    epsilon : float
        The release's own epsilon. For an RDP-tracked Gaussian release this is its
        standalone epsilon at ``delta`` (converted from its RDP curve).
    delta : float
        The release's own delta.
    note : str
        Free text given by the caller.
    noise_multiplier, sample_rate, steps : float, float, int or None
        Set for Gaussian releases charged with ``spend_gaussian``.
    rdp : tuple of float or None
        The RDP curve at the accountant's orders, where composition uses one.
    """

    mechanism: str
    epsilon: float
    delta: float
    note: str = ""
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    rdp: tuple[float, ...] | None = field(default=None, repr=False)


def composition_options(
    records: list[PrivacyRelease],
    composition: str,
    delta_budget: float,
    slack_delta: float | None,
    orders: tuple[float, ...],
) -> list[tuple[float, float]]:
    """Valid ``(epsilon, delta)`` guarantees for ``records``, total delta <= budget if any."""
    if not records:
        return [(0.0, 0.0)]
    basic = (math.fsum(r.epsilon for r in records), math.fsum(r.delta for r in records))
    if composition == "basic":
        return [basic]
    if composition == "advanced":
        options = [basic]
        slack = slack_delta if slack_delta is not None else delta_budget / 2.0
        if slack > 0:
            eps = np.array([r.epsilon for r in records])
            adv = math.sqrt(2 * math.log(1 / slack) * float(np.sum(eps**2))) + float(
                np.sum(eps * np.expm1(eps))
            )
            options.append((adv, basic[1] + slack))
        return options
    return _rdp_options(records, delta_budget, orders)


def _rdp_options(
    records: list[PrivacyRelease], delta_budget: float, orders: tuple[float, ...]
) -> list[tuple[float, float]]:
    approx = [r for r in records if r.rdp is None]
    pure = [r for r in records if r.rdp is not None and r.noise_multiplier is None]
    gauss = [r for r in records if r.noise_multiplier is not None]
    eps_approx = math.fsum(r.epsilon for r in approx)
    delta_approx = math.fsum(r.delta for r in approx)
    eps_pure = math.fsum(r.epsilon for r in pure)
    # every record carries a standalone (epsilon, delta): basic composition of those
    options = [(math.fsum(r.epsilon for r in records), math.fsum(r.delta for r in records))]
    room = delta_budget - delta_approx
    if (pure or gauss) and room > 0:
        orders = np.asarray(orders)
        all_curve = np.sum([r.rdp for r in pure + gauss], axis=0)
        eps_all = rdp_to_epsilon(orders, all_curve, room)[0]
        options.append((eps_all + eps_approx, delta_budget))
        if gauss and pure:
            g_curve = np.sum([r.rdp for r in gauss], axis=0)
            eps_g = rdp_to_epsilon(orders, g_curve, room)[0]
            options.append((eps_g + eps_pure + eps_approx, delta_budget))
    return options
