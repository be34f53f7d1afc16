"""The classes that saved files may name: avrec's estimators and encoders, plus registered ones.

A saved model or encoder records its class as ``"module.QualifiedName"``.
Loading looks that string up in this registry -- a plain dictionary -- and
never imports a module named by a file: a name that is not registered is
refused before anything is imported or called. avrec's recommenders and
encoders register themselves when their class is defined (the base classes'
``__init_subclass__``); a lookup that misses imports avrec's own fixed list of
model packages once (so that, e.g., a DP model loads without ``import
avrec.privacy`` first) and looks again. A user's own class must be registered
on purpose with :func:`register_class`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from avrec.exceptions import ConfigurationError, PersistenceError

__all__ = ["qualified_name", "register_class", "registered_classes", "resolve_class"]

T = TypeVar("T", bound=type)

#: The packages whose import registers every avrec estimator and encoder: each imports its
#: subpackages (avrec.features: encoders, compression, finetune ...). Fixed here, never
#: taken from a file; a new model module must be imported by its package's ``__init__``.
_AVREC_PACKAGES = ("avrec.features", "avrec.recommenders", "avrec.privacy")

_REGISTRY: dict[str, type] = {}
_LOCK = threading.Lock()
_populated = False


def qualified_name(klass: type) -> str:
    """Return the name a saved file records for ``klass``: ``"module.QualifiedName"``.

    Parameters
    ----------
    klass : type

    Returns
    -------
    str

    Examples
    --------
    >>> from collections import OrderedDict
    >>> qualified_name(OrderedDict)
    'collections.OrderedDict'
    """
    return f"{klass.__module__}.{klass.__qualname__}"


@overload
def register_class(klass: T, *, name: str | None = None) -> T: ...


@overload
def register_class(klass: None = None, *, name: str | None = None) -> Callable[[T], T]: ...


def register_class(klass: Any = None, *, name: str | None = None) -> Any:
    """Allow saved files to name ``klass``, so that ``load`` / ``from_pretrained`` rebuild it.

    avrec's own recommenders and encoders are registered already. Register
    your own subclass of :class:`~avrec.recommenders.Recommender` or
    :class:`~avrec.features.encoders.BaseEncoder` (or an estimator used as a
    hyperparameter of one, e.g. a component of a blend) before loading a file
    that holds it. Works as a function or as a class decorator.

    Parameters
    ----------
    klass : type, optional
        The class. Omit it to get a decorator.
    name : str, optional
        The name files use for it; default :func:`qualified_name` of ``klass``
        (what ``save`` writes). Give the old name to keep loading files saved
        before the class moved.

    Returns
    -------
    type or callable
        ``klass`` itself (or a decorator that registers and returns its class).

    Raises
    ------
    ConfigurationError
        If ``klass`` is not a class, ``name`` is not a non-empty str, or the
        name is already taken by another class (a class redefined under the
        same module and name, as on a module reload, replaces its old self).

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import Recommender
    >>> @register_class
    ... class Constant(Recommender):
    ...     def _fit(self, data):
    ...         return {"w_": np.ones(data.X.shape[1], dtype=np.float32)}
    ...     def _score(self, users, X_users):
    ...         return np.tile(self.w_, (X_users.shape[0], 1))
    >>> resolve_class(qualified_name(Constant)) is Constant
    True
    """
    if klass is None:
        return lambda cls: register_class(cls, name=name)
    if not isinstance(klass, type):
        raise ConfigurationError(f"klass must be a class, got {klass!r}")
    if name is None:
        name = qualified_name(klass)
    elif not isinstance(name, str) or not name:
        raise ConfigurationError(f"name must be a non-empty str, got {name!r}")
    with _LOCK:
        old = _REGISTRY.get(name)
        if old is not None and old is not klass and qualified_name(old) != qualified_name(klass):
            raise ConfigurationError(
                f"name {name!r} is already registered for {qualified_name(old)}; "
                "register the new class under another name"
            )
        _REGISTRY[name] = klass
    return klass


def register_avrec_subclass(cls: type) -> None:
    """Register ``cls`` if avrec defines it (the base classes' ``__init_subclass__`` hook).

    A subclass defined outside avrec is left out: it is registered only on
    purpose, with :func:`register_class`.
    """
    module = cls.__module__
    if (module == "avrec" or module.startswith("avrec.")) and "<locals>" not in cls.__qualname__:
        register_class(cls)


def registered_classes() -> dict[str, type]:
    """Return every registered name and its class (avrec's own and the user's).

    Returns
    -------
    dict of str to type
        A copy, sorted by name.

    Examples
    --------
    >>> names = registered_classes()
    >>> "avrec.recommenders.cf._ease.EASE" in names
    True
    """
    _populate()
    with _LOCK:
        items = list(_REGISTRY.items())
    return dict(sorted(items))


def resolve_class(name: Any, base: type | None = None) -> type:
    """Return the registered class that a saved file names; never import the name.

    Parameters
    ----------
    name : str
        The ``"module.QualifiedName"`` string read from the file.
    base : type, optional
        The class must be ``base`` or a subclass of it.

    Returns
    -------
    type

    Raises
    ------
    PersistenceError
        If ``name`` is not a registered class (whatever module it names:
        nothing is imported), or is not a subclass of ``base``.

    Examples
    --------
    >>> resolve_class("avrec.recommenders.cf._ease.EASE").__name__
    'EASE'
    >>> resolve_class("builtins.eval")
    Traceback (most recent call last):
    ...
    avrec.exceptions.PersistenceError: refusing to load class 'builtins.eval': ...
    """
    if not isinstance(name, str):
        raise PersistenceError(f"a saved class name must be a str, got {name!r}")
    klass = _REGISTRY.get(name)
    if klass is None:
        _populate()
        klass = _REGISTRY.get(name)
    if klass is None:
        raise PersistenceError(
            f"refusing to load class {name!r}: it is neither an avrec estimator or encoder nor "
            "a class registered with avrec.utils.register_class (nothing was imported)"
        )
    if base is not None and not issubclass(klass, base):
        raise PersistenceError(f"saved class {name!r} is not a {base.__name__}")
    return klass


def _populate() -> None:
    """Import avrec's fixed model packages once, so that their classes register."""
    global _populated
    if _populated:
        return
    for package in _AVREC_PACKAGES:  # the import system serialises concurrent imports
        try:
            importlib.import_module(package)
        except ModuleNotFoundError as exc:  # pragma: no cover - a package not installed
            if exc.name != package:
                raise
    _populated = True
