"""k-anonymity and l-diversity checks on tables of user attributes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = ["KAnonymityReport", "LDiversityReport", "check_k_anonymity", "check_l_diversity"]


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError(
            "k-anonymity works on pandas DataFrames: pip install avrec[pandas]"
        ) from exc
    return pd


def as_frame(table: Any, quasi_identifiers: Any, name: str = "table") -> tuple[Any, list[str]]:
    """Return ``(DataFrame, list of QI columns)`` after checking both."""
    pd = _pandas()
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    if isinstance(quasi_identifiers, str):
        qis = [quasi_identifiers]
    else:
        qis = list(quasi_identifiers) if quasi_identifiers is not None else []
    if not qis:
        raise ConfigurationError("quasi_identifiers must name at least one column")
    if len(set(qis)) != len(qis):
        raise ConfigurationError(f"quasi_identifiers has repeated columns: {qis}")
    missing = [q for q in qis if q not in frame.columns]
    if missing:
        raise DataValidationError(
            f"quasi_identifiers {missing} are not columns of the {name} "
            f"(columns: {list(frame.columns)})"
        )
    for q in qis:
        if frame[q].isna().any():
            raise DataValidationError(
                f"quasi-identifier column {q!r} has missing values (NaN/None) at row "
                f"{int(np.argmax(frame[q].isna().to_numpy()))}; fill or drop them first"
            )
    return frame, qis


def check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {k!r}")
    return int(k)


def _count_column(qis: list[str]) -> str:
    name = "count"
    while name in qis:  # a QI called "count" keeps its name
        name = "_" + name
    return name


def class_sizes(frame: Any, qis: list[str]) -> Any:
    """Series: size of each equivalence class, indexed by the QI values."""
    return frame.groupby(qis, sort=True, dropna=False, observed=True).size()


@dataclass(frozen=True)
class KAnonymityReport:
    """What :func:`check_k_anonymity` found. True in a boolean context when k-anonymous.

    Attributes
    ----------
    k : int
        The table's anonymity: the size of its smallest equivalence class (0 for an
        empty table).
    requested_k : int or None
        The ``k`` asked for.
    n_classes : int
        Number of equivalence classes (distinct combinations of QI values).
    violations : pandas.DataFrame
        The classes smaller than ``requested_k``: one row each, the QI values
        and a ``count`` column. Empty when ``requested_k`` is None or met.
    n_rows_at_risk : int
        Rows in those classes.
    """

    k: int
    requested_k: int | None
    n_classes: int
    violations: Any
    n_rows_at_risk: int

    @property
    def ok(self) -> bool:
        """bool: whether ``k >= requested_k`` (True when nothing was requested)."""
        return self.requested_k is None or self.k >= self.requested_k

    def __bool__(self) -> bool:
        return self.ok


def check_k_anonymity(
    table: Any, quasi_identifiers: Sequence[str] | str, k: int | None = None
) -> KAnonymityReport:
    """Measure the k-anonymity of a table with respect to its quasi-identifiers.

    A table is *k-anonymous* when every combination of quasi-identifier (QI)
    values that occurs, an *equivalence class*, occurs at least ``k`` times
    (Sweeney [1]_): linking the table to outside data on the QIs (age, postcode,
    gender ...) narrows a person down to no fewer than ``k`` rows.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of str to array-like
        One row per user.
    quasi_identifiers : sequence of str or str
        Columns an attacker could know from elsewhere.
    k : int, optional
        Requested anonymity; classes smaller than it are reported.

    Returns
    -------
    KAnonymityReport
        ``k`` (the smallest class size), the offending classes, and ``ok``.

    Raises
    ------
    DataValidationError
        If a QI column is missing or has missing values.
    ConfigurationError
        If ``k`` is not an int >= 1 or no QI is given.

    See Also
    --------
    mondrian : generalise a table until it is k-anonymous.
    check_l_diversity : k-anonymity does not protect sensitive values shared by a class.

    References
    ----------
    .. [1] L. Sweeney, "k-anonymity: a model for protecting privacy",
       International Journal of Uncertainty, Fuzziness and Knowledge-Based
       Systems 10(5), 2002.

    Examples
    --------
    >>> import pandas as pd
    >>> users = pd.DataFrame({"age": [23, 23, 35, 35, 35], "zip": ["100", "100", "200",
    ...                       "200", "300"], "plays": [5, 1, 7, 2, 9]})
    >>> report = check_k_anonymity(users, ["age", "zip"], k=2)
    >>> report.k, report.ok
    (1, False)
    >>> report.violations
       age  zip  count
    0   35  300      1
    """
    frame, qis = as_frame(table, quasi_identifiers)
    requested = None if k is None else check_k(k)
    sizes = class_sizes(frame, qis)
    smallest = int(sizes.min()) if len(sizes) else 0
    small = sizes[sizes < requested] if requested is not None else sizes.iloc[:0]
    violations = small.rename(_count_column(qis)).reset_index()
    return KAnonymityReport(
        k=smallest,
        requested_k=requested,
        n_classes=len(sizes),
        violations=violations,
        n_rows_at_risk=int(small.sum()),
    )


@dataclass(frozen=True)
class LDiversityReport:
    """What :func:`check_l_diversity` found. True in a boolean context when l-diverse.

    Attributes
    ----------
    l : float
        The table's diversity: the smallest number of distinct sensitive values in
        a class (``kind="distinct"``), or ``exp`` of the smallest entropy of a
        class's sensitive values (``kind="entropy"``).
    requested_l : float
        The ``l`` asked for.
    kind : {"distinct", "entropy"}
    n_classes : int
    violations : pandas.DataFrame
        Classes below ``requested_l``: QI values, ``count`` and ``l`` (their diversity).
    """

    l: float  # noqa: E741 - the name of the measure
    requested_l: float
    kind: str
    n_classes: int
    violations: Any

    @property
    def ok(self) -> bool:
        """bool: whether ``l >= requested_l``."""
        return self.l >= self.requested_l * (1 - 1e-12)

    def __bool__(self) -> bool:
        return self.ok


def check_l_diversity(
    table: Any,
    quasi_identifiers: Sequence[str] | str,
    sensitive: str,
    l: float,  # noqa: E741 - the name of the measure
    *,
    kind: Literal["distinct", "entropy"] = "distinct",
) -> LDiversityReport:
    """Check that every equivalence class holds at least ``l`` well-represented sensitive values.

    k-anonymity alone leaks the sensitive attribute of a class whose members
    all share it (the *homogeneity attack*). Machanavajjhala et al. [1]_ ask
    each class for ``l`` "well-represented" values: *distinct* l-diversity
    counts distinct values; *entropy* l-diversity asks the entropy of the
    class's value distribution to be at least ``log(l)``, which also rules out
    one value dominating.

    Parameters
    ----------
    table : pandas.DataFrame or mapping of str to array-like
    quasi_identifiers : sequence of str or str
    sensitive : str
        The column to protect (e.g. a favourite genre, a health-related label).
    l : float
        At least 1.
    kind : {"distinct", "entropy"}, default="distinct"

    Returns
    -------
    LDiversityReport

    Raises
    ------
    DataValidationError
        If a column is missing or a QI has missing values.
    ConfigurationError
        If ``l < 1``, ``kind`` is unknown, or ``sensitive`` is also a QI.

    References
    ----------
    .. [1] A. Machanavajjhala, D. Kifer, J. Gehrke and M. Venkitasubramaniam,
       "l-diversity: privacy beyond k-anonymity", ACM TKDD 1(1), 2007.

    Examples
    --------
    >>> import pandas as pd
    >>> users = pd.DataFrame({"age": ["20s"] * 4, "genre": ["jazz", "jazz", "rock", "pop"]})
    >>> check_l_diversity(users, ["age"], "genre", 3).ok
    True
    >>> round(check_l_diversity(users, ["age"], "genre", 3, kind="entropy").l, 3)
    2.828
    """
    frame, qis = as_frame(table, quasi_identifiers)
    if sensitive not in frame.columns:
        raise DataValidationError(
            f"sensitive={sensitive!r} is not a column of the table (columns: {list(frame.columns)})"
        )
    if sensitive in qis:
        raise ConfigurationError(f"sensitive={sensitive!r} is also a quasi-identifier")
    try:
        requested = float(l)
    except (TypeError, ValueError):
        raise ConfigurationError(f"l must be a number >= 1, got {l!r}") from None
    if not (math.isfinite(requested) and requested >= 1):
        raise ConfigurationError(f"l must be a number >= 1, got {l!r}")
    if kind not in ("distinct", "entropy"):
        raise ConfigurationError(f"kind must be 'distinct' or 'entropy', got {kind!r}")
    counts = frame.groupby([*qis, sensitive], sort=True, dropna=False, observed=True).size()
    by_class = counts.groupby(level=list(range(len(qis))), sort=True)
    sizes = by_class.sum()
    if kind == "distinct":
        diversity = by_class.size().astype(float)
    else:
        share = counts / counts.groupby(level=list(range(len(qis)))).transform("sum")
        entropy = (-share * np.log(share)).groupby(level=list(range(len(qis)))).sum()
        diversity = np.exp(entropy)
    achieved = float(diversity.min()) if len(diversity) else math.inf
    low = diversity < requested * (1 - 1e-12)
    violations = sizes[low].rename(_count_column(qis)).reset_index()
    violations["l"] = diversity[low].to_numpy()
    return LDiversityReport(
        l=achieved,
        requested_l=requested,
        kind=kind,
        n_classes=len(sizes),
        violations=violations,
    )
