"""Pickle-free encoding of a fitted model's state: arrays to ``.npz``, the rest to JSON."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.data import Vocabulary
from avrec.exceptions import PersistenceError

__all__ = ["decode_state", "encode_state", "resolve_class"]

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


def resolve_class(qualified_name: str) -> type:
    """Import ``"package.module.ClassName"`` and return the class.

    Parameters
    ----------
    qualified_name : str

    Returns
    -------
    type

    Raises
    ------
    PersistenceError
        If the module or class cannot be found.
    """
    module_name, _, cls_name = qualified_name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PersistenceError(f"cannot import saved model class {qualified_name!r}") from exc


def _is_json(value: Any) -> bool:
    if isinstance(value, _JSON_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
