"""Fine-tune two encoders into one shared space on paired items (audio-video, text-video ...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, clone
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError, NotFittedError
from avrec.features.encoders._av import correspondence_loss
from avrec.features.encoders._base import TrainingLoop, check_float, check_int
from avrec.features.finetune._finetuned import (
    FineTunedEncoder,
    as_finetuning,
    as_inputs,
    check_encoder,
    convert_items,
    to_device,
)
from avrec.features.finetune._precision import (
    autocast,
    check_mixed_precision,
    enable_gradient_checkpointing,
    grad_scaler,
)
from avrec.utils import check_random_state, get_world_size, torch_seed

__all__ = ["CrossModalFineTuner"]


class CrossModalFineTuner(TrainingLoop, BaseEstimator):
    """Fine-tune two fitted encoders on cross-modal correspondence with InfoNCE.

    Each tower is a :class:`FineTunedEncoder`: a copy of its encoder's
    network with the trainable parameters of ``mode`` (frozen, last-k
    blocks or LoRA adapters) and a linear head into a shared
    ``projection_dim`` space. Each batch holds ``batch_size`` pairs; the
    symmetric InfoNCE loss (:func:`~avrec.features.encoders.correspondence_loss`)
    makes an item's two sides most similar among the batch's items. The
    training loop is the encoders' (:class:`~avrec.features.encoders.BaseEncoder`):
    seeded shuffling, optional held-out split with early stopping that keeps
    the best epoch's weights, a progress bar with ``verbose``.

    Works with any pair of encoders that follow the encoder contract: text and
    video (title -> clip retrieval, with :func:`~avrec.features.cross_modal_search`),
    audio and video, or two of the small encoders.

    Parameters
    ----------
    encoder_a, encoder_b : encoder
        Fitted (or loaded) encoders of the two modalities; they stay unchanged
        (the towers are copies). Kept by :func:`sklearn.base.clone` as they
        are, since they are inputs, not hyperparameters to refit.
    mode : str, FineTuning or pair of them, default="lora"
        The fine-tuning of both towers, or ``(mode_a, mode_b)``.
    projection_dim : int, default=64
        Width of the shared space.
    temperature : float, default=0.07
    epochs : int, default=5
    batch_size : int, default=16
        Pairs per step (each batch's other items are the negatives).
    optimizer : {"adam", "sgd"}, default="adam"
    learning_rate : float, default=5e-4
    weight_decay : float, default=0.0
    lr_schedule : {None, "cosine", "step"}, default=None
    validation_fraction : float, default=0.0
    early_stopping_patience : int, optional
    mixed_precision : {None, "bf16", "fp16"}, default=None
        Autocast (with a GradScaler for fp16) on CUDA; ignored on the CPU.
    gradient_checkpointing : bool, default=False
        Checkpoint the HF/timm backbones' activations on CUDA; ignored on the CPU.
    device : str or torch.device, optional
        Default: the CPU.
    random_state : None, int or numpy.random.Generator
    verbose : bool, default=False

    Attributes
    ----------
    encoder_a_, encoder_b_ : FineTunedEncoder
        The trained towers; their ``transform`` embeds into the shared space.
    history_ : dict of str to list of float
        ``"train_loss"`` and ``"val_loss"`` per epoch.
    best_epoch_ : int or None

    Examples
    --------
    >>> import torch
    >>> from avrec.features import AudioEncoder, VideoEncoder
    >>> frames = torch.randint(0, 256, (8, 2, 3, 16, 16), dtype=torch.uint8)
    >>> sounds = torch.randn(8, 16000) * 0.1
    >>> video = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8).init()
    >>> audio = AudioEncoder(widths=(4,), embedding_dim=8).init()
    >>> tuner = CrossModalFineTuner(video, audio, mode="lora", projection_dim=4, epochs=2,
    ...                             batch_size=4, random_state=0).fit(frames, sounds)
    >>> tuner.encoder_a_.transform(frames).shape, tuner.similarity(frames, sounds).shape
    ((8, 4), (8, 8))
    """

    def __init__(
        self,
        encoder_a: Any,
        encoder_b: Any,
        mode: Any = "lora",
        projection_dim: int = 64,
        temperature: float = 0.07,
        epochs: int = 5,
        batch_size: int = 16,
        optimizer: str = "adam",
        learning_rate: float = 5e-4,
        weight_decay: float = 0.0,
        lr_schedule: str | None = None,
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        mixed_precision: str | None = None,
        gradient_checkpointing: bool = False,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.encoder_a = encoder_a
        self.encoder_b = encoder_b
        self.mode = mode
        self.projection_dim = projection_dim
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.mixed_precision = mixed_precision
        self.gradient_checkpointing = gradient_checkpointing
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_clone__(self) -> CrossModalFineTuner:
        params = self.get_params(deep=False)
        keep = {"encoder_a", "encoder_b"}  # fitted inputs: cloning would unfit them
        return type(self)(
            **{k: v if k in keep else clone(v, safe=False) for k, v in params.items()}
        )

    def fit(self, inputs_a: Any, inputs_b: Any) -> CrossModalFineTuner:
        """Fine-tune both towers on aligned pairs ``(inputs_a[i], inputs_b[i])``.

        Parameters
        ----------
        inputs_a : sequence or batch tensor of length n
            Items as ``encoder_a`` takes them (texts, clips, tensors ...).
        inputs_b : sequence or batch tensor of length n
            The paired items for ``encoder_b``.

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            On an invalid hyperparameter or mode.
        DataValidationError
            If the inputs are empty or do not pair up.
        """
        device = self._check_training_params()
        if get_world_size() > 1:
            raise ConfigurationError(
                "CrossModalFineTuner trains in one process; it was called in a process group "
                f"of {get_world_size()} (torchrun): run it without torchrun"
            )
        check_int(self.projection_dim, "projection_dim", 1)
        check_float(self.temperature, "temperature", 0.0)
        precision = check_mixed_precision(self.mixed_precision)
        check_encoder(self.encoder_a, "encoder_a")
        check_encoder(self.encoder_b, "encoder_b")
        modes = self.mode if isinstance(self.mode, (tuple, list)) else (self.mode, self.mode)
        if len(modes) != 2:
            raise DataValidationError(f"mode must be one mode or a pair, got {self.mode!r}")
        specs = [as_finetuning(m).check() for m in modes]
        items_a, items_b = as_inputs(inputs_a, "inputs_a"), as_inputs(inputs_b, "inputs_b")
        if len(items_a) != len(items_b):
            raise DataValidationError(
                f"inputs_a and inputs_b must pair up: {len(items_a)} != {len(items_b)} items"
            )
        rng = check_random_state(self.random_state)
        seeds = [torch_seed(rng) for _ in range(3)]
        towers = [
            FineTunedEncoder(enc, spec, self.projection_dim, random_state=seed).to(device)
            for enc, spec, seed in zip(
                (self.encoder_a, self.encoder_b), specs, seeds[:2], strict=True
            )
        ]
        if self.gradient_checkpointing:
            for tower in towers:
                enable_gradient_checkpointing(tower.model_.network, device)
        joint = nn.ModuleDict({"a": towers[0].model_, "b": towers[1].model_})
        params = [p for p in joint.parameters() if p.requires_grad]
        optimizer = self._optimizer(params)
        scaler = grad_scaler(device, precision)

        # a frozen network gives the same embeddings every epoch: compute them once
        cached = [
            _network_embeddings(tower, items, device) if _frozen(tower) else None
            for tower, items in zip(towers, (items_a, items_b), strict=True)
        ]

        def side(k: int, items: Any, index: torch.Tensor) -> torch.Tensor:
            tower = towers[k]
            if cached[k] is not None:
                return tower.model_.head(cached[k][index.to(device)]).float()
            x, lengths = convert_items(tower.base_encoder, items, index)
            x, lengths = to_device(x, device), to_device(lengths, device)
            return tower.model_.embed(x, lengths).float()

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            with autocast(device, precision):
                za, zb = side(0, items_a, index), side(1, items_b, index)
            return correspondence_loss(za, zb, self.temperature)

        def train_step(index: torch.Tensor) -> dict[str, float]:
            loss = loss_of(index)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            return {"train_loss": float(loss.detach())}

        history, best_epoch = self._run_epochs(
            n=len(items_a),
            modules=joint,
            train_step=train_step,
            val_loss=lambda index: float(loss_of(index)),
            schedulers=[self._scheduler(optimizer)],
            shuffle_seed=seeds[2],
            desc="CrossModalFineTuner",
        )
        for tower in towers:
            tower.model_.eval()
            tower.history_ = history
        self.encoder_a_, self.encoder_b_ = towers
        self.history_, self.best_epoch_ = history, best_epoch
        return self

    def similarity(self, inputs_a: Any, inputs_b: Any) -> np.ndarray:
        """Cosine similarity of the two sides' items in the shared space.

        Parameters
        ----------
        inputs_a : sequence or batch of length n_a
        inputs_b : sequence or batch of length n_b

        Returns
        -------
        numpy.ndarray of shape (n_a, n_b), float32
        """
        if not hasattr(self, "encoder_a_"):
            raise NotFittedError("This CrossModalFineTuner is not fitted: call fit() first")
        za = F.normalize(torch.from_numpy(self.encoder_a_.transform(inputs_a)), dim=1)
        zb = F.normalize(torch.from_numpy(self.encoder_b_.transform(inputs_b)), dim=1)
        return (za @ zb.T).numpy().astype(np.float32)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "encoder_a_")


def _frozen(tower: FineTunedEncoder) -> bool:
    return not any(p.requires_grad for p in tower.model_.network.parameters())


def _network_embeddings(tower: FineTunedEncoder, items: Any, device: torch.device) -> torch.Tensor:
    """The (frozen) network's embeddings of every item, before the head, on ``device``."""
    size = int(getattr(tower.base_encoder, "batch_size", None) or 32)
    network = tower.model_.network.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(items), size):
            index = torch.arange(start, min(start + size, len(items)))
            x, lengths = convert_items(tower.base_encoder, items, index)
            out.append(network.embed(to_device(x, device), to_device(lengths, device)).float())
    return torch.cat(out)
