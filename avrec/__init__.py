"""avrec: recommend audio and video content with learned models.

Subpackages load lazily on first attribute access, so ``import avrec`` is cheap
and never imports torch or PyAV::

    >>> import avrec
    >>> avrec.__version__  # doctest: +ELLIPSIS
    '...'
    >>> from avrec.data import make_interactions  # loads avrec.data only

Subpackages
-----------
data
    Vocabularies, interaction matrices, loaders, splits and synthetic data.
evaluation
    Vectorised ranking metrics and :func:`~avrec.evaluation.evaluate`.
recommenders
    The :class:`~avrec.recommenders.Recommender` contract and the models.
media
    PyAV decoding of audio and video.
exceptions
    The :class:`~avrec.exceptions.AvrecError` tree.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from avrec._version import __version__

_SUBPACKAGES = (
    "data",
    "evaluation",
    "exceptions",
    "explain",
    "features",
    "media",
    "privacy",
    "recommenders",
    "utils",
)

__all__ = ["__version__", *_SUBPACKAGES]

if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from avrec import data, evaluation, exceptions, recommenders, utils  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        try:
            module = importlib.import_module(f"avrec.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"avrec.{name}":
                raise AttributeError(f"avrec.{name} is not part of this release of avrec") from exc
            raise
        globals()[name] = module
        return module
    raise AttributeError(f"module 'avrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBPACKAGES))
