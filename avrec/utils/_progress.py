"""Progress bars that can be switched off."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["progress"]


def progress(
    iterable: Iterable[T], *, verbose: bool = True, desc: str | None = None, **kwargs: Any
) -> Iterable[T]:
    """Wrap ``iterable`` in a :mod:`tqdm` progress bar unless ``verbose`` is False.

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    verbose : bool, default=True
        Show the bar. With ``False`` the iterable is returned unchanged.
    desc : str, optional
        Label shown before the bar.
    **kwargs
        Passed to :class:`tqdm.tqdm` (``total``, ``unit`` ...).

    Returns
    -------
    iterable

    Examples
    --------
    >>> list(progress(range(3), verbose=False))
    [0, 1, 2]
    """
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, **kwargs)
