"""Local transformers checkpoints: read their config, rebuild or load the model (offline).

:class:`CheckpointEncoder` is the shared base of the encoders that wrap such a
checkpoint (:class:`~avrec.features.encoders.AudioTransformer`,
:class:`~avrec.features.encoders.VideoTransformer`): a subclass names its
accepted ``_model_types`` and puts the transformers model behind a
:class:`BackboneNet` in ``_net``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from avrec.exceptions import PersistenceError
from avrec.features.encoders._pretrained import (
    PretrainedEncoder,
    check_model_dir,
    load_transformers_model,
    read_model_config,
)
from avrec.utils import read_json

__all__ = [
    "BackboneNet",
    "CheckpointEncoder",
    "build_transformers_model",
    "load_checkpoint",
    "read_checkpoint_config",
]

#: Keys of a transformers config that do not describe the architecture.
_VOLATILE = ("transformers_version", "_name_or_path", "architectures", "torch_dtype", "dtype")


def read_checkpoint_config(
    model_dir: Any, model_types: Mapping[str, tuple[str, str]], name: str = "model_dir"
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """``(path, config, preprocessor config)`` of a local checkpoint of an accepted type."""
    path = check_model_dir(model_dir, name)
    config = read_model_config(path, model_types, name)
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


class BackboneNet(nn.Module):
    """A network around a transformers ``backbone``, the part pretrained weights load into."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding_dim = int(backbone.config.hidden_size)

    def pretrained_targets(self) -> list[tuple[str, nn.Module]]:
        return [("transformers backbone", self.backbone)]


class CheckpointEncoder(PretrainedEncoder):
    """A :class:`PretrainedEncoder` over a local transformers checkpoint in ``model_dir``.

    Subclasses set ``_model_types`` (accepted ``model_type`` -> (config class,
    model class) of transformers) and wrap the model in ``_net(backbone)``.
    """

    _source_params: ClassVar[tuple[str, ...]] = ("model_dir",)
    _model_types: ClassVar[Mapping[str, tuple[str, str]]] = {}

    def _net(self, backbone: nn.Module) -> BackboneNet:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_model(self) -> BackboneNet:
        return self._net(build_transformers_model(self.architecture()["config"], self._model_types))

    def _pretrained_model(self) -> BackboneNet:
        return self._net(
            load_checkpoint(self.model_dir, self._model_types, verbose=bool(self.verbose))
        )

    def _read_checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(config, preprocessor config)`` of ``model_dir``."""
        _, config, preprocessor = read_checkpoint_config(self.model_dir, self._model_types)
        return config, preprocessor
