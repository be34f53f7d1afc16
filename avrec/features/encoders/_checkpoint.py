"""Local transformers checkpoints: read their config, rebuild or load the model (offline)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from avrec.exceptions import ConfigurationError, PersistenceError
from avrec.features.encoders._pretrained import check_model_dir, load_transformers_model
from avrec.utils import read_json

__all__ = ["build_transformers_model", "load_checkpoint", "read_checkpoint_config"]

#: Keys of a transformers config that do not describe the architecture.
_VOLATILE = ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype")


def read_checkpoint_config(
    model_dir: Any, model_types: Mapping[str, tuple[str, str]], name: str = "model_dir"
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """``(path, config, preprocessor config)`` of a local checkpoint of an accepted type."""
    path = check_model_dir(model_dir, name)
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("model_type") not in model_types:
        found = config.get("model_type") if isinstance(config, dict) else None
        raise ConfigurationError(
            f"{name}={os.fspath(path)!r} holds a {found!r} model; expected one of "
            f"{sorted(model_types)}"
        )
    preprocessor: dict[str, Any] = {}
    if (path / "preprocessor_config.json").is_file():
        preprocessor = read_json(path / "preprocessor_config.json")
        if not isinstance(preprocessor, dict):
            raise PersistenceError(f"{path / 'preprocessor_config.json'} is not a JSON object")
    config = {k: v for k, v in config.items() if k not in _VOLATILE}
    return path, config, preprocessor


def build_transformers_model(
    config: Mapping[str, Any], model_types: Mapping[str, tuple[str, str]]
) -> nn.Module:
    """A transformers model with random weights from a saved config dict (no file access)."""
    import transformers

    model_type = config.get("model_type")
    if model_type not in model_types:
        raise PersistenceError(
            f"the saved architecture is a {model_type!r} model; expected one of "
            f"{sorted(model_types)}"
        )
    config_class, model_class = model_types[model_type]
    cfg = getattr(transformers, config_class).from_dict(dict(config))
    return getattr(transformers, model_class)(cfg).eval()


def load_checkpoint(
    model_dir: Any,
    model_types: Mapping[str, tuple[str, str]],
    name: str = "model_dir",
    verbose: bool = False,
) -> nn.Module:
    """The transformers model of a local checkpoint with its weights, float32, eval mode."""
    classes = {key: model_class for key, (_, model_class) in model_types.items()}
    return load_transformers_model(model_dir, classes, name=name, verbose=verbose)
