"""Pickle-free encoding of a fitted model's state: arrays to ``.npz``, the rest to JSON."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.data import Vocabulary
from avrec.exceptions import PersistenceError
from avrec.utils import qualified_name, resolve_class

__all__ = ["decode_params", "decode_state", "encode_params", "encode_state"]

_JSON_TYPES = (bool, int, float, str, type(None))


def encode_state(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split fitted attributes into arrays and a JSON description.

    Supported values: numpy arrays, scipy sparse matrices (stored as CSR),
    :class:`~avrec.data.Vocabulary`, torch tensors (stored as numpy, loaded
    back as CPU tensors), JSON scalars and lists/dicts of them.

    Parameters
    ----------
    state : dict of str to object

    Returns
    -------
    arrays : dict of str to ndarray
    meta : dict
        JSON-serialisable description of each entry.

    Raises
    ------
    PersistenceError
        For a value of an unsupported type.
    """
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise PersistenceError(f"fitted attribute {name} has dtype object")
            arrays[name] = value
            meta[name] = {"type": "ndarray"}
        elif sp.issparse(value):
            csr = sp.csr_matrix(value)
            arrays[f"{name}.data"] = csr.data
            arrays[f"{name}.indices"] = csr.indices
            arrays[f"{name}.indptr"] = csr.indptr
            meta[name] = {"type": "csr", "shape": list(csr.shape)}
        elif isinstance(value, Vocabulary):
            arrays[name] = value.ids
            meta[name] = {"type": "vocabulary"}
        elif type(value).__module__.startswith("torch") and hasattr(value, "detach"):
            arrays[name] = value.detach().cpu().numpy()
            meta[name] = {"type": "tensor"}
        elif isinstance(value, np.generic):
            meta[name] = {"type": "json", "value": value.item()}
        elif isinstance(value, _JSON_TYPES) or _is_json(value):
            meta[name] = {"type": "json", "value": value}
        else:
            raise PersistenceError(
                f"fitted attribute {name} of type {type(value).__name__} cannot be saved "
                "without pickle"
            )
    return arrays, meta


def decode_state(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_state`.

    Parameters
    ----------
    arrays : dict of str to ndarray
    meta : dict

    Returns
    -------
    dict of str to object

    Raises
    ------
    PersistenceError
        If an array named in ``meta`` is missing or a type is unknown.
    """
    state: dict[str, Any] = {}
    try:
        for name, info in meta.items():
            kind = info["type"]
            if kind == "ndarray":
                state[name] = arrays[name]
            elif kind == "csr":
                state[name] = sp.csr_matrix(
                    (arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]),
                    shape=tuple(info["shape"]),
                )
            elif kind == "vocabulary":
                state[name] = Vocabulary(arrays[name])
            elif kind == "tensor":
                import torch

                state[name] = torch.from_numpy(np.array(arrays[name]))
            elif kind == "json":
                state[name] = info["value"]
            else:
                raise PersistenceError(f"unknown state type {kind!r} for {name}")
    except KeyError as exc:
        raise PersistenceError(f"saved state is incomplete: missing {exc}") from exc
    return state


def encode_params(params: dict[str, Any]) -> dict[str, Any]:
    """Encode hyperparameters as JSON, estimators included (no pickle).

    JSON scalars, lists and string-keyed dicts are kept as they are. An
    estimator (any :class:`sklearn.base.BaseEstimator`, e.g. the ``base`` of a
    wrapper or the steps of a blend) becomes
    ``{"__estimator__": {"class": "module.Class", "params": {...}}}`` with its
    own hyperparameters encoded recursively; a tuple becomes
    ``{"__tuple__": [...]}`` so it loads back as a tuple. A
    :class:`numpy.random.Generator` is stored as None (its state is not a
    hyperparameter; the fitted state is saved instead).

    Parameters
    ----------
    params : dict of str to object
        As returned by ``get_params(deep=False)``.

    Returns
    -------
    dict
        JSON-serialisable.

    Raises
    ------
    PersistenceError
        For a value that has no JSON form.

    Examples
    --------
    >>> from avrec.recommenders import ItemKNN
    >>> encode_params({"base": ItemKNN(k=5), "pair": ("a", 1)})["pair"]
    {'__tuple__': ['a', 1]}
    >>> decode_params(encode_params({"base": ItemKNN(k=5)}))["base"]
    ItemKNN(k=5)
    """
    return {name: _encode_param(name, value) for name, value in params.items()}


def decode_params(doc: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_params`: rebuild estimators (unfitted) and tuples.

    Parameters
    ----------
    doc : dict

    Returns
    -------
    dict of str to object

    Raises
    ------
    PersistenceError
        If an estimator's class is not registered (see
        :func:`avrec.utils.register_class`; nothing is imported) or rejects
        its parameters.
    """
    if not isinstance(doc, dict):
        raise PersistenceError(f"saved parameters must be a JSON object, got {doc!r}")
    return {name: _decode_param(value) for name, value in doc.items()}


def _encode_param(name: str, value: Any) -> Any:
    from sklearn.base import BaseEstimator

    if isinstance(value, np.random.Generator):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _JSON_TYPES):
        return value
    if isinstance(value, BaseEstimator):
        cls = type(value)
        return {
            _ESTIMATOR: {
                "class": qualified_name(cls),
                "params": {
                    key: _encode_param(f"{name}__{key}", v)
                    for key, v in value.get_params(deep=False).items()
                },
            }
        }
    if isinstance(value, tuple):
        return {_TUPLE: [_encode_param(name, v) for v in value]}
    if isinstance(value, list):
        return [_encode_param(name, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if _ESTIMATOR in value or _TUPLE in value:
            raise PersistenceError(f"hyperparameter {name} uses the reserved key of its encoding")
        return {k: _encode_param(f"{name}[{k!r}]", v) for k, v in value.items()}
    raise PersistenceError(f"hyperparameter {name}={value!r} cannot be saved as JSON")


def _decode_param(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_param(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {_TUPLE}:
        if not isinstance(value[_TUPLE], list):
            raise PersistenceError(f"a saved tuple must be a JSON list, got {value[_TUPLE]!r}")
        return tuple(_decode_param(v) for v in value[_TUPLE])
    if set(value) == {_ESTIMATOR}:
        from sklearn.base import BaseEstimator

        spec = value[_ESTIMATOR]
        if not isinstance(spec, dict) or set(spec) != {"class", "params"}:
            raise PersistenceError(f"a saved estimator needs 'class' and 'params', got {spec!r}")
        klass = resolve_class(spec["class"], base=BaseEstimator)  # registered, or refused
        try:
            return klass(**decode_params(spec["params"]))
        except TypeError as exc:
            raise PersistenceError(
                f"saved estimator {spec['class']} does not accept its saved parameters: {exc}"
            ) from exc
    return {k: _decode_param(v) for k, v in value.items()}


_ESTIMATOR = "__estimator__"
_TUPLE = "__tuple__"


def _is_json(value: Any) -> bool:
    if isinstance(value, _JSON_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
