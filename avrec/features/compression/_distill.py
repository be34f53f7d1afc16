"""Knowledge distillation of a large (teacher) encoder into a small (student) encoder.

The student learns, on unlabeled catalogue items, to reproduce the teacher's
embeddings: a pointwise term (cosine distance or mean squared error between
the student's projected embedding and the teacher's) plus, optionally, a
relational term that matches the two encoders' cosine-similarity matrices
over each batch (Park et al.'s relational distillation in its similarity
form), which is what nearest-neighbour recommenders consume.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, clone
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features.encoders._base import BaseEncoder, TrainingLoop
from avrec.utils import check_random_state, torch_seed

__all__ = ["Distiller", "distillation_loss"]

_LOSSES = ("cosine", "mse")


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    *,
    loss: str = "cosine",
    relational_weight: float = 1.0,
    projection: nn.Module | None = None,
) -> torch.Tensor:
    """Pointwise plus relational distillation loss of a batch.

    Parameters
    ----------
    student : torch.Tensor of shape (n, d_student)
        The student's embeddings.
    teacher : torch.Tensor of shape (n, d_teacher)
        The teacher's embeddings of the same items (targets, no gradient).
    loss : {"cosine", "mse"}, default="cosine"
        Pointwise term: mean ``1 - cos(projection(student), teacher)`` or the
        mean squared error between them.
    relational_weight : float, default=1.0
        Weight of the relational term: the mean squared difference between
        the ``(n, n)`` cosine-similarity matrices of ``student`` (before the
        projection) and ``teacher``; 0 turns it off.
    projection : torch.nn.Module, optional
        Maps ``d_student`` to ``d_teacher`` for the pointwise term (needed
        when they differ).

    Returns
    -------
    torch.Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> t = torch.randn(4, 3)
    >>> float(distillation_loss(2 * t, t)) < 1e-6  # same directions and similarities
    True
    >>> float(distillation_loss(-t, t, relational_weight=0.0))
    2.0
    """
    mapped = student if projection is None else projection(student)
    if mapped.shape != teacher.shape:
        raise DataValidationError(
            f"student embeddings {tuple(mapped.shape)} do not match the teacher's "
            f"{tuple(teacher.shape)}; give a projection"
        )
    if loss == "cosine":
        point = (1.0 - F.cosine_similarity(mapped, teacher, dim=1)).mean()
    elif loss == "mse":
        point = F.mse_loss(mapped, teacher)
    else:
        raise ConfigurationError(f"loss must be one of {_LOSSES}, got {loss!r}")
    if not relational_weight:
        return point
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    relational = F.mse_loss(s @ s.T, t @ t.T)
    return point + relational_weight * relational


class Distiller(TrainingLoop, BaseEstimator):
    """Train a small student encoder to reproduce a large teacher encoder's embeddings.

    ``fit(X)`` embeds the unlabeled items ``X`` with the teacher once, then
    trains the student (its network from seeded random weights, or from its
    current weights when it is already fitted: e.g. initialised from some of
    the teacher's layers) with :func:`distillation_loss`. When the student's
    embedding size differs from the teacher's, a linear projection is
    trained along for the pointwise term and kept as ``projection_``; the
    student's own embedding is what it returns. The result ``student_`` is an
    ordinary encoder of the student's class (``transform``, ``save``,
    ``from_pretrained``, ``fingerprint``). Parameters of a fitted student
    with ``requires_grad=False`` stay fixed (e.g. embeddings copied from the
    teacher), unless all of them are (a frozen pretrained student), in which
    case all train.

    Parameters
    ----------
    teacher : BaseEncoder
        A fitted encoder (the large model).
    student : BaseEncoder
        The small encoder; cloned, never modified. Both must accept ``X``.
    loss : {"cosine", "mse"}, default="cosine"
    relational_weight : float, default=1.0
        Weight of the similarity-matrix term (0: pointwise only).
    epochs : int, default=20
    batch_size : int, default=32
        Items per step (``>= 2``).
    optimizer : {"adam", "sgd"}, default="adam"
    learning_rate : float, default=1e-3
    weight_decay : float, default=0.0
    lr_schedule : {None, "cosine", "step"}, default="cosine"
    validation_fraction : float, default=0.0
        Items held out to score the loss each epoch; the best epoch's weights
        are kept.
    early_stopping_patience : int, optional
        Stop after this many epochs without a better held-out loss.
    device : str or torch.device, optional
        Where the student trains (None: CPU).
    random_state : None, int or numpy.random.Generator
        Seeds the student's initialisation, the projection and shuffling.
    verbose : bool, default=False
        Progress bar over epochs and per-epoch log lines.

    Attributes
    ----------
    student_ : BaseEncoder
        The trained student (eval mode).
    projection_ : torch.nn.Linear or None
        Student-to-teacher map used in training (None when sizes agree).
    history_ : dict of str to list of float
        ``"train_loss"`` and ``"val_loss"`` per epoch.
    best_epoch_ : int or None
    teacher_fingerprint_ : str

    See Also
    --------
    quantize_dynamic, prune

    References
    ----------
    Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network",
    2015. Park, Kim, Lu and Cho, "Relational Knowledge Distillation", CVPR 2019.

    Examples
    --------
    >>> import torch
    >>> from avrec.features import VideoEncoder
    >>> clips = torch.randint(0, 256, (8, 2, 3, 16, 16), dtype=torch.uint8)
    >>> teacher = VideoEncoder(frame_size=16, widths=(8, 16), embedding_dim=12,
    ...                        random_state=0).init()
    >>> student = VideoEncoder(frame_size=8, widths=(4,), embedding_dim=6)
    >>> d = Distiller(teacher, student, epochs=3, batch_size=4, random_state=0).fit(clips)
    >>> d.student_.transform(clips).shape, d.projection_.out_features
    ((8, 6), 12)
    >>> d.history_["train_loss"][-1] < d.history_["train_loss"][0]
    True
    """

    def __init__(
        self,
        teacher: Any,
        student: Any,
        *,
        loss: str = "cosine",
        relational_weight: float = 1.0,
        epochs: int = 20,
        batch_size: int = 32,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: str | None = "cosine",
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.teacher = teacher
        self.student = student
        self.loss = loss
        self.relational_weight = relational_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self) -> torch.device:
        device = self._check_training_params()
        if self.loss not in _LOSSES:
            raise ConfigurationError(f"loss must be one of {_LOSSES}, got {self.loss!r}")
        weight = self.relational_weight
        if (
            not isinstance(weight, numbers.Real)
            or isinstance(weight, bool)
            or not (0 <= weight < float("inf"))
        ):
            raise ConfigurationError(f"relational_weight must be a number >= 0, got {weight!r}")
        if not isinstance(self.teacher, BaseEncoder):
            raise ConfigurationError(f"teacher must be a fitted encoder, got {self.teacher!r}")
        self.teacher._check_fitted()
        if not isinstance(self.student, BaseEncoder):
            raise ConfigurationError(f"student must be an encoder, got {self.student!r}")
        return device

    def _student(self, seed: int) -> BaseEncoder:
        if hasattr(self.student, "model_"):  # warm start from its weights
            return copy.deepcopy(self.student)
        student = clone(self.student)
        if "random_state" in student.get_params(deep=False):
            student.set_params(random_state=seed)
        return student.init()

    def fit(self, X: Any, y: Any = None) -> Distiller:
        """Distil the teacher into a fresh copy of the student on the items ``X``.

        Parameters
        ----------
        X : sequence of items or a batch tensor
            Unlabeled items both encoders accept (clips, paths, texts ...).
        y : None
            Ignored.

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            If a hyperparameter, the teacher or the student is invalid.
        NotFittedError
            If the teacher is not fitted.
        DataValidationError
            If ``X`` is empty or too small for a training batch.
        """
        device = self._check_params()
        rng = check_random_state(self.random_state)
        seeds = [torch_seed(rng) for _ in range(3)]  # student init, projection, shuffling
        targets = torch.from_numpy(np.ascontiguousarray(self.teacher.transform(X))).float()
        student = self._student(seeds[0])
        x, lengths = student._convert_all(X)
        if x.shape[0] != targets.shape[0]:
            raise DataValidationError(
                f"the student converted {x.shape[0]} items but the teacher embedded "
                f"{targets.shape[0]}"
            )
        model = student.model_.to(device)
        if not any(p.requires_grad for p in model.parameters()):
            model.requires_grad_(True)  # a frozen pretrained student: train all of it
        d_student, d_teacher = int(model.embedding_dim), targets.shape[1]
        projection: nn.Module = nn.Identity()
        if d_student != d_teacher:
            projection = nn.Linear(d_student, d_teacher)
            nn.init.xavier_uniform_(
                projection.weight, generator=torch.Generator().manual_seed(seeds[1])
            )
            nn.init.zeros_(projection.bias)
        projection = projection.to(device)
        modules = nn.ModuleList([model, projection])
        optimizer = self._optimizer([p for p in modules.parameters() if p.requires_grad])
        options = {
            "loss": self.loss,
            "relational_weight": float(self.relational_weight),
            "projection": projection,
        }

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            lens = None if lengths is None else lengths[index].to(device)
            embedded = model.embed(x[index].to(device), lens)
            return distillation_loss(embedded, targets[index].to(device), **options)

        def train_step(index: torch.Tensor) -> dict[str, float]:
            loss = loss_of(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"train_loss": float(loss.detach())}

        history, best_epoch = self._run_epochs(
            n=x.shape[0],
            modules=modules,
            train_step=train_step,
            val_loss=lambda index: float(loss_of(index)),
            schedulers=[self._scheduler(optimizer)],
            shuffle_seed=seeds[2],
            desc=f"Distiller ({type(student).__name__})",
        )
        student._set_fitted(model, device, history, best_epoch, trained=True)
        projection.eval().requires_grad_(False)
        self.student_ = student
        self.projection_ = projection if isinstance(projection, nn.Linear) else None
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.teacher_fingerprint_ = self.teacher.fingerprint()
        return self

    def score(self, X: Any, y: Any = None) -> float:
        """Mean cosine similarity of the (projected) student's and the teacher's embeddings.

        Parameters
        ----------
        X : sequence of items or a batch tensor
        y : None
            Ignored.

        Returns
        -------
        float
            In ``[-1, 1]``; 1 when the student reproduces the teacher's directions.
        """
        if not hasattr(self, "student_"):
            from avrec.exceptions import NotFittedError

            raise NotFittedError("This Distiller is not fitted: call fit() first")
        teacher = torch.from_numpy(self.teacher.transform(X)).float()
        student = torch.from_numpy(self.student_.transform(X)).float()
        if self.projection_ is not None:
            with torch.no_grad():
                student = self.projection_.cpu()(student)
        return float(F.cosine_similarity(student, teacher, dim=1).mean())
