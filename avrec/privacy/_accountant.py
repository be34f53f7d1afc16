"""A privacy accountant: a budget that every release is charged against before it happens.

Three composition rules, chosen when the accountant is made:

``"basic"``
    Epsilons and deltas add up (Dwork and Roth 2014, Theorem 3.16).
``"advanced"``
    The better of basic composition and the advanced composition theorem of
    Dwork, Rothblum and Vadhan (2010) in its heterogeneous form: releases
    :math:`(\\varepsilon_i, \\delta_i)` compose to
    :math:`(\\sqrt{2\\ln(1/\\delta')\\sum_i\\varepsilon_i^2} +
    \\sum_i\\varepsilon_i(e^{\\varepsilon_i}-1),\\ \\delta' + \\sum_i\\delta_i)`
    (for ``k`` equal epsilons: :math:`\\sqrt{2k\\ln(1/\\delta')}\\,\\varepsilon +
    k\\varepsilon(e^\\varepsilon-1)`). The slack :math:`\\delta'` is reserved out of
    the delta budget: ``slack_delta`` (default half of ``delta``).
``"rdp"``
    Rényi DP (Mironov 2017): Gaussian releases (:meth:`PrivacyAccountant.spend_gaussian`,
    including Poisson-subsampled DP-SGD steps) and pure epsilon-DP releases, which are
    :math:`(\\alpha, \\min(\\varepsilon, \\alpha\\varepsilon^2/2))`-RDP (an
    :math:`\\varepsilon`-DP mechanism is :math:`\\varepsilon^2/2`-zCDP, Bun and Steinke
    2016, Proposition 3.3, and :math:`D_\\alpha \\le D_\\infty`), are added order by
    order and converted with the conversion of Balle et al. (2020), Theorem 21. Releases
    with :math:`\\delta > 0` (which have no RDP curve) compose with the RDP part by basic
    composition. Where it is smaller, the pure releases are instead added by basic
    composition to the converted Gaussian part.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from avrec.exceptions import ConfigurationError, PrivacyBudgetExceeded
from avrec.privacy._composition import PrivacyRelease, composition_options
from avrec.privacy._rdp import (
    _check_orders,
    _check_real,
    _check_steps,
    gaussian_rdp,
    rdp_to_epsilon,
)

__all__ = ["PrivacyAccountant", "PrivacyRelease"]

_COMPOSITIONS = ("basic", "advanced", "rdp")
_RTOL = 1e-9  # float slack when comparing against the budget


def _release_epsilon(epsilon: object) -> float:
    """A release's epsilon: a number > 0, where ``inf`` (no privacy) is never affordable."""
    if isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool) and epsilon == math.inf:
        return math.inf
    return _check_real(epsilon, "epsilon", low=0.0)


class PrivacyAccountant:
    """Track a differential-privacy budget and refuse releases that would overspend it.

    Every mechanism in :mod:`avrec.privacy` accepts ``accountant=``; it charges the
    accountant *before* drawing any noise, so a refused release reveals nothing.

    Parameters
    ----------
    epsilon : float
        Total epsilon budget, ``> 0``.
    delta : float, default=0.0
        Total delta budget in ``[0, 1)``.
    composition : {"basic", "advanced", "rdp"}, default="basic"
        How releases compose (see the module documentation).
    slack_delta : float or None, default=None
        ``"advanced"`` only: the :math:`\\delta'` of the advanced composition theorem,
        reserved out of ``delta``; None means ``delta / 2``.
    orders : sequence of float, default=None
        ``"rdp"`` only: Rényi orders; None uses
        :data:`~avrec.privacy.DEFAULT_RDP_ORDERS`.
    audit_log : AuditLog, str, path-like or None, default=None
        Every accepted release is appended to this hash-chained
        :class:`~avrec.privacy.AuditLog` (mechanism, epsilon, delta, note, the
        Gaussian parameters and the budget spent so far) *before* it is recorded; if
        the log cannot be written the release is refused (the exception propagates
        and nothing is recorded or sampled).

    Attributes
    ----------
    spent : tuple of (float, float)
        ``(epsilon, delta)`` guaranteed for everything released so far.
    remaining : tuple of (float, float)
        Budget minus ``spent`` (never negative).
    releases : list of PrivacyRelease
        The releases, oldest first.

    Notes
    -----
    :meth:`spend_gaussian` under ``"basic"``/``"advanced"`` converts the Gaussian
    release's RDP curve to :math:`(\\varepsilon, \\delta)` at the ``delta`` it is
    given (required there) and charges that pair. Under ``"rdp"`` the curve itself
    is composed, which is much tighter for many steps (DP-SGD).

    The accountant is thread-safe: a check and its record happen under one lock.

    References
    ----------
    .. [1] C. Dwork and A. Roth, "The Algorithmic Foundations of Differential
       Privacy", 2014, Theorems 3.16 and 3.20.
    .. [2] C. Dwork, G. Rothblum and S. Vadhan, "Boosting and Differential Privacy",
       FOCS 2010.
    .. [3] I. Mironov, "Rényi Differential Privacy", CSF 2017.
    .. [4] M. Bun and T. Steinke, "Concentrated Differential Privacy:
       Simplifications, Extensions, and Lower Bounds", TCC 2016, Proposition 3.3.
    .. [5] B. Balle et al., "Hypothesis Testing Interpretations and Rényi
       Differential Privacy", AISTATS 2020, Theorem 21.

    Examples
    --------
    >>> acc = PrivacyAccountant(epsilon=1.0)
    >>> acc.spend(0.4, mechanism="laplace", note="item counts")
    >>> acc.spent, acc.remaining
    ((0.4, 0.0), (0.6, 0.0))
    >>> acc.can_spend(0.7)
    False
    >>> acc.spend(0.7)
    Traceback (most recent call last):
    ...
    avrec.exceptions.PrivacyBudgetExceeded: privacy budget exceeded: requested (epsilon=0.7, ...
    >>> len(acc.releases)
    1
    """

    def __init__(
        self,
        epsilon: float,
        delta: float = 0.0,
        composition: str = "basic",
        *,
        slack_delta: float | None = None,
        orders: Sequence[float] | None = None,
        audit_log: Any = None,
    ) -> None:
        self.epsilon = _check_real(epsilon, "epsilon", low=0.0)
        self.delta = _check_real(delta, "delta", low=0.0, high=1.0, low_open=False)
        if composition not in _COMPOSITIONS:
            raise ConfigurationError(
                f"composition must be one of {_COMPOSITIONS}, got {composition!r}"
            )
        self.composition = composition
        if slack_delta is not None:
            slack_delta = _check_real(
                slack_delta, "slack_delta", low=0.0, high=self.delta, high_open=False
            )
        self.slack_delta = slack_delta
        self.orders = tuple(float(a) for a in _check_orders(orders))
        if audit_log is not None and not hasattr(audit_log, "append"):
            from avrec.privacy._audit_log import AuditLog

            audit_log = AuditLog(audit_log)
        self.audit_log = audit_log
        self._records: list[PrivacyRelease] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- public API
    def spend(
        self, epsilon: float, delta: float = 0.0, *, mechanism: str = "laplace", note: str = ""
    ) -> None:
        """Charge an :math:`(\\varepsilon, \\delta)`-DP release, or raise without recording.

        Parameters
        ----------
        epsilon : float
            The release's epsilon, ``> 0``; ``inf`` (a release without privacy) is
            always refused.
        delta : float, default=0.0
            The release's delta in ``[0, 1)``.
        mechanism : str, default="laplace"
            Name stored in the record.
        note : str, default=""
            Free text stored in the record.

        Raises
        ------
        PrivacyBudgetExceeded
            If the release would overspend; nothing is recorded.
        ConfigurationError
            If ``epsilon`` or ``delta`` is invalid.
        """
        eps = _release_epsilon(epsilon)
        dlt = _check_real(delta, "delta", low=0.0, high=1.0, low_open=False)
        rdp = None
        if self.composition == "rdp" and dlt == 0.0:
            a = np.asarray(self.orders)
            rdp = tuple(np.minimum(eps, a * eps * eps / 2.0).tolist())
        self._charge(PrivacyRelease(str(mechanism), eps, dlt, str(note), rdp=rdp))

    def spend_gaussian(
        self,
        noise_multiplier: float,
        *,
        sample_rate: float = 1.0,
        steps: int = 1,
        delta: float | None = None,
        epsilon: float | None = None,
        mechanism: str = "gaussian",
        note: str = "",
    ) -> None:
        """Charge ``steps`` (Poisson-subsampled) Gaussian releases, e.g. DP-SGD steps.

        Parameters
        ----------
        noise_multiplier : float
            Noise standard deviation divided by the L2 sensitivity (clipping norm).
        sample_rate : float, default=1.0
            Poisson sampling probability per step; 1 means the full dataset.
        steps : int, default=1
            Number of steps charged at once.
        delta : float or None, default=None
            Required under ``"basic"``/``"advanced"``: the delta this release consumes;
            its epsilon is the RDP curve converted at this delta. Under ``"rdp"`` it only
            sets the standalone epsilon shown in the record (default: the budget's delta).
        epsilon : float or None, default=None
            With ``delta``: an (epsilon, delta) guarantee the release is known to have
            (e.g. from the analytic calibration of :func:`~avrec.privacy.gaussian_sigma`);
            the record keeps the smaller of it and the RDP conversion, and basic
            composition of the records becomes one of the options under ``"rdp"``.
        mechanism : str, default="gaussian"
            Name stored in the record.
        note : str, default=""
            Free text stored in the record.

        Raises
        ------
        PrivacyBudgetExceeded
            If the release would overspend; nothing is recorded.
        ConfigurationError
            If a parameter is invalid, or ``delta`` is missing where it is required.

        Examples
        --------
        >>> from avrec.privacy import dpsgd_epsilon
        >>> acc = PrivacyAccountant(epsilon=2.0, delta=1e-5, composition="rdp")
        >>> acc.spend_gaussian(1.1, sample_rate=256 / 60000, steps=2343, mechanism="dp-sgd")
        >>> round(acc.spent[0], 2)  # 10 epochs of MNIST-sized DP-SGD
        1.1
        >>> acc.spent[0] == dpsgd_epsilon(1.1, 256 / 60000, 2343, 1e-5)
        True
        """
        record = self._gaussian_record(
            noise_multiplier, sample_rate, steps, delta, mechanism, note, epsilon
        )
        self._charge(record)

    def can_spend(self, epsilon: float, delta: float = 0.0) -> bool:
        """Whether :meth:`spend` with these arguments would succeed.

        Parameters
        ----------
        epsilon : float
        delta : float, default=0.0

        Returns
        -------
        bool
        """
        eps = _release_epsilon(epsilon)
        dlt = _check_real(delta, "delta", low=0.0, high=1.0, low_open=False)
        rdp = None
        if self.composition == "rdp" and dlt == 0.0:
            a = np.asarray(self.orders)
            rdp = tuple(np.minimum(eps, a * eps * eps / 2.0).tolist())
        return self._fits([*self._records, PrivacyRelease("", eps, dlt, rdp=rdp)])

    def can_spend_gaussian(
        self,
        noise_multiplier: float,
        *,
        sample_rate: float = 1.0,
        steps: int = 1,
        delta: float | None = None,
        epsilon: float | None = None,
    ) -> bool:
        """Whether :meth:`spend_gaussian` with these arguments would succeed.

        Parameters
        ----------
        noise_multiplier, sample_rate, steps, delta, epsilon
            As in :meth:`spend_gaussian`.

        Returns
        -------
        bool
        """
        record = self._gaussian_record(noise_multiplier, sample_rate, steps, delta, "", "", epsilon)
        return self._fits([*self._records, record])

    @property
    def spent(self) -> tuple[float, float]:
        """``(epsilon, delta)`` guaranteed for all releases so far."""
        with self._lock:
            return self._total(self._records)

    @property
    def remaining(self) -> tuple[float, float]:
        """``(epsilon, delta)`` left in the budget, never negative."""
        eps, dlt = self.spent
        return max(self.epsilon - eps, 0.0), max(self.delta - dlt, 0.0)

    @property
    def releases(self) -> list[PrivacyRelease]:
        """A copy of the release records, oldest first."""
        with self._lock:
            return list(self._records)

    def epsilon_for(self, delta: float) -> float:
        """Epsilon of everything released so far if the total delta may be ``delta``.

        Useful with ``"rdp"`` to read the privacy curve at several deltas; for the
        other rules it is the composed epsilon when the composed delta fits in
        ``delta`` and ``inf`` otherwise.

        Parameters
        ----------
        delta : float
            Total delta in ``(0, 1)``.

        Returns
        -------
        float

        Examples
        --------
        >>> acc = PrivacyAccountant(epsilon=10.0, delta=1e-5, composition="rdp")
        >>> acc.spend_gaussian(1.0, sample_rate=0.01, steps=1000, mechanism="dp-sgd")
        >>> acc.epsilon_for(1e-6) > acc.epsilon_for(1e-5)
        True
        """
        dlt = _check_real(delta, "delta", low=0.0, high=1.0)
        with self._lock:
            options = self._options(self._records, dlt)
        fitting = [e for e, d in options if d <= dlt * (1 + _RTOL)]
        return min(fitting) if fitting else math.inf

    def __repr__(self) -> str:
        eps, dlt = self.spent
        return (
            f"PrivacyAccountant(epsilon={self.epsilon}, delta={self.delta}, "
            f"composition={self.composition!r}, spent=({eps:.4g}, {dlt:.3g}), "
            f"releases={len(self._records)})"
        )

    # ------------------------------------------------------------------ internals
    def _gaussian_record(
        self,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        delta: float | None,
        mechanism: str,
        note: str,
        epsilon: float | None = None,
    ) -> PrivacyRelease:
        sigma = _check_real(noise_multiplier, "noise_multiplier", low=0.0)
        q = _check_real(sample_rate, "sample_rate", low=0.0, high=1.0, high_open=False)
        steps = _check_steps(steps)
        if delta is not None:
            delta = _check_real(delta, "delta", low=0.0, high=1.0)
        known = math.inf
        if epsilon is not None:
            known = _check_real(epsilon, "epsilon", low=0.0)
            if delta is None:
                raise ConfigurationError("spend_gaussian(epsilon=...) needs delta= as well")
        curve = gaussian_rdp(sigma, self.orders, sample_rate=q, steps=steps)
        if self.composition == "rdp":
            at = delta if delta is not None else self.delta
            eps = rdp_to_epsilon(self.orders, curve, at)[0] if at > 0 else math.inf
            eps = min(eps, known)
            return PrivacyRelease(
                str(mechanism), eps, at, str(note), sigma, q, steps, tuple(curve.tolist())
            )
        if delta is None:
            raise ConfigurationError(
                f"spend_gaussian under composition={self.composition!r} needs delta=: the "
                "Gaussian release is charged as the (epsilon, delta) its RDP curve gives at "
                "that delta (or use composition='rdp')"
            )
        eps = min(rdp_to_epsilon(self.orders, curve, delta)[0], known)
        return PrivacyRelease(str(mechanism), eps, delta, str(note), sigma, q, steps)

    def _charge(self, record: PrivacyRelease) -> None:
        with self._lock:
            candidate = [*self._records, record]
            if not self._fits(candidate):
                spent_eps, spent_delta = self._total(self._records)
                raise PrivacyBudgetExceeded(
                    f"privacy budget exceeded: requested (epsilon={record.epsilon:.6g}, "
                    f"delta={record.delta:.6g}) for {record.mechanism!r}, already spent "
                    f"(epsilon={spent_eps:.6g}, delta={spent_delta:.6g}) of the budget "
                    f"(epsilon={self.epsilon:.6g}, delta={self.delta:.6g}) under "
                    f"{self.composition} composition; nothing was recorded"
                )
            if self.audit_log is not None:
                self._audit(record, self._total(candidate))
            self._records.append(record)

    def _audit(self, record: PrivacyRelease, spent: tuple[float, float]) -> None:
        from avrec.privacy._audit_log import record_release

        details: dict[str, Any] = {
            "composition": self.composition,
            "spent_epsilon": spent[0],
            "spent_delta": spent[1],
            "budget_epsilon": self.epsilon,
            "budget_delta": self.delta,
        }
        for name in ("noise_multiplier", "sample_rate", "steps"):
            value = getattr(record, name)
            if value is not None:
                details[name] = value
        record_release(
            self.audit_log, record.mechanism, record.epsilon, record.delta, record.note, **details
        )

    def _options(
        self, records: list[PrivacyRelease], delta_budget: float
    ) -> list[tuple[float, float]]:
        return composition_options(
            records, self.composition, delta_budget, self.slack_delta, self.orders
        )

    def _fits(self, records: list[PrivacyRelease]) -> bool:
        options = self._options(records, self.delta)
        return any(
            e <= self.epsilon * (1 + _RTOL) and d <= self.delta * (1 + _RTOL) + 1e-300
            for e, d in options
        )

    def _total(self, records: list[PrivacyRelease]) -> tuple[float, float]:
        if not records:
            return 0.0, 0.0
        options = self._options(records, self.delta)
        fitting = [o for o in options if o[1] <= self.delta * (1 + _RTOL) + 1e-300]
        return min(fitting or options)
