"""Audio-visual correspondence: a video and an audio encoder trained jointly on pairs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, clone
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError, NotFittedError
from avrec.features.encoders._audio import AudioEncoder, random_crops
from avrec.features.encoders._base import TrainingLoop, check_float
from avrec.features.encoders._video import VideoEncoder
from avrec.utils import (
    DataParallelStep,
    all_gather_rows,
    broadcast_object,
    check_random_state,
    get_rank,
    init_from_env,
    torch_seed,
)

__all__ = ["AVCorrespondence", "correspondence_loss"]


def correspondence_loss(
    z_video: torch.Tensor, z_audio: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE between paired video and audio projections.

    Row ``i`` of both is one item: its frames and its sound belong together;
    the sounds (frames) of the other rows are the negatives. The loss is the
    mean of the video-to-audio and audio-to-video cross entropies over cosine
    similarities divided by ``temperature``.

    Parameters
    ----------
    z_video, z_audio : torch.Tensor of shape (n, k)
    temperature : float

    Returns
    -------
    torch.Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> z = torch.eye(3)
    >>> bool(correspondence_loss(z, z, 0.1) < correspondence_loss(z, z.roll(1, 0), 0.1))
    True
    """
    logits = F.normalize(z_video, dim=1) @ F.normalize(z_audio, dim=1).T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class AVCorrespondence(TrainingLoop, BaseEstimator):
    """Train a :class:`VideoEncoder` and an :class:`AudioEncoder` on audio-visual correspondence.

    Do these frames and this sound belong together? Each training batch holds
    ``batch_size`` items; both networks embed them (frames whole, sound as a
    random ``crop_seconds`` window), project into a shared space, and the
    symmetric InfoNCE loss (:func:`correspondence_loss`) makes an item's
    frames most similar to its own sound among the batch's sounds, and vice
    versa; the other items are the negatives. Only what the two streams share
    can solve this, so each encoder learns the content that the other
    modality predicts, and not item-specific nuisances (backgrounds, noise).

    Parameters
    ----------
    video_encoder : VideoEncoder, optional
        Template defining the video architecture (default ``VideoEncoder()``);
        it is cloned, its training hyperparameters are ignored.
    audio_encoder : AudioEncoder, optional
        Template for the audio side (default ``AudioEncoder()``). Its
        ``projection_dim`` must equal the video encoder's.
    temperature : float, default=0.1
    augment_video : bool, default=False
        Apply the video encoder's FrameAugment to the frames.
    augment_audio : bool, default=False
        Apply the audio encoder's gain, noise and SpecAugment to the sound
        (the random crop is always applied). Off by default: on the synthetic
        corpus it slowed learning down.
    epochs : int, default=30
    batch_size : int, default=32
    optimizer : {"adam", "sgd"}, default="adam"
    learning_rate : float, default=1e-3
    weight_decay : float, default=1e-4
    lr_schedule : {None, "cosine", "step"}, default="cosine"
    validation_fraction : float, default=0.0
        Items held out to score the correspondence loss each epoch; with
        them, both networks keep the weights of the best epoch.
    early_stopping_patience : int, optional
    device : str or torch.device, optional
    random_state : None, int or numpy.random.Generator
    verbose : bool, default=False

    Attributes
    ----------
    video_encoder_ : VideoEncoder
        Fitted clone of ``video_encoder``, ready for ``transform``.
    audio_encoder_ : AudioEncoder
        Fitted clone of ``audio_encoder``.
    history_ : dict of str to list of float
        ``"train_loss"`` and ``"val_loss"`` per epoch.
    best_epoch_ : int or None

    See Also
    --------
    VideoEncoder, AudioEncoder

    References
    ----------
    Arandjelovic and Zisserman, "Look, Listen and Learn", ICCV 2017;
    Owens and Efros, "Audio-Visual Scene Analysis with Self-Supervised
    Multisensory Features", ECCV 2018.

    Examples
    --------
    >>> import torch
    >>> frames = torch.randint(0, 256, (6, 2, 3, 16, 16), dtype=torch.uint8)
    >>> sounds = torch.randn(6, 16000) * 0.1
    >>> av = AVCorrespondence(
    ...     VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8, projection_dim=8),
    ...     AudioEncoder(widths=(4,), embedding_dim=8, projection_dim=8),
    ...     epochs=1, batch_size=3, random_state=0,
    ... ).fit(frames, sounds)
    >>> av.video_encoder_.transform(frames).shape, av.similarity(frames, sounds).shape
    ((6, 8), (6, 6))
    """

    def __init__(
        self,
        video_encoder: VideoEncoder | None = None,
        audio_encoder: AudioEncoder | None = None,
        temperature: float = 0.1,
        augment_video: bool = False,
        augment_audio: bool = False,
        epochs: int = 30,
        batch_size: int = 32,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        lr_schedule: str | None = "cosine",
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.video_encoder = video_encoder
        self.audio_encoder = audio_encoder
        self.temperature = temperature
        self.augment_video = augment_video
        self.augment_audio = augment_audio
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

    def _templates(self) -> tuple[VideoEncoder, AudioEncoder]:
        video = VideoEncoder() if self.video_encoder is None else self.video_encoder
        audio = AudioEncoder() if self.audio_encoder is None else self.audio_encoder
        if not isinstance(video, VideoEncoder):
            raise ConfigurationError(
                f"video_encoder must be a VideoEncoder, got {type(video).__name__}"
            )
        if not isinstance(audio, AudioEncoder):
            raise ConfigurationError(
                f"audio_encoder must be an AudioEncoder, got {type(audio).__name__}"
            )
        video, audio = clone(video), clone(audio)
        video._check_own_params()
        audio._check_own_params()
        if video.projection_dim != audio.projection_dim:
            raise ConfigurationError(
                "the encoders must project to one space: video_encoder.projection_dim="
                f"{video.projection_dim} != audio_encoder.projection_dim={audio.projection_dim}"
            )
        return video, audio

    def fit(self, videos: Any, audios: Any = None) -> AVCorrespondence:
        """Train both encoders from scratch on paired clips.

        Parameters
        ----------
        videos : sequence of clips, tensors or paths, or a batch tensor
            Video inputs as :class:`VideoEncoder` takes them.
        audios : sequence of clips, tensors or paths, or a batch tensor, optional
            The sound of each item, aligned with ``videos``. Default:
            ``videos`` itself, for a sequence of media files with both streams.

        Returns
        -------
        self
        """
        device = self._check_training_params()
        check_float(self.temperature, "temperature", 0.0)
        video, audio = self._templates()
        xv, lv = video._convert_all(videos)
        xa, la = audio._convert_all(videos if audios is None else audios)
        if xv.shape[0] != xa.shape[0]:
            raise DataValidationError(
                f"videos and audios must pair up: {xv.shape[0]} videos, {xa.shape[0]} sounds"
            )
        rng = check_random_state(self.random_state)
        init_from_env()  # joins the torchrun process group, if launched by torchrun
        seeds = broadcast_object([torch_seed(rng) for _ in range(6)])
        vnet = video._init_model(seeds[0], device)
        anet = audio._init_model(seeds[1], device)
        joint = nn.ModuleDict({"video": vnet, "audio": anet})
        optimizer = self._optimizer(joint.parameters())
        rank = get_rank()  # own augmentation draws per process
        train_aug = (video._make_augmenter(seeds[3] + rank), audio._make_augmenter(seeds[4] + rank))
        val_aug = (video._make_augmenter(seeds[5]), audio._make_augmenter(seeds[5] ^ 1))

        def loss_of(
            index: torch.Tensor, augmenters: tuple[Any, Any], gather: bool = False
        ) -> torch.Tensor:
            frames = xv[index].to(device)
            lens = None if lv is None else lv[index].to(device)
            if self.augment_video:
                frames = augmenters[0].frames(frames)
            zv = vnet.projector(vnet.encode(vnet.normalize(frames), lens))
            lens = None if la is None else la[index].to(device)
            size = audio._crop_samples(anet)
            crops = random_crops(xa[index].to(device), lens, size, augmenters[1].generator)
            if self.augment_audio:
                patches = audio._augmented_patches(anet, crops, augmenters[1])
            else:
                patches, _ = anet.patches(crops, None)
            za = anet.projector(anet.encode(patches, None))
            if gather:  # training in a process group: negatives span the global batch
                zv, za = all_gather_rows(zv), all_gather_rows(za)
            return correspondence_loss(zv, za, self.temperature)

        step = DataParallelStep(joint)  # DDP when in a process group

        def train_step(index: torch.Tensor) -> dict[str, float]:
            loss = step(loss_of, index, train_aug, True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"train_loss": float(loss.detach())}

        def reseed() -> None:
            val_aug[0].generator.manual_seed(seeds[5])
            val_aug[1].generator.manual_seed(seeds[5] ^ 1)

        history, best_epoch = self._run_epochs(
            n=xv.shape[0],
            modules=joint,
            train_step=train_step,
            val_loss=lambda index: float(loss_of(index, val_aug)),
            schedulers=[self._scheduler(optimizer)],
            shuffle_seed=seeds[2],
            desc="AVCorrespondence",
            before_validation=reseed,
        )
        trained = self.epochs > 0
        video._set_fitted(vnet, device, history, best_epoch, trained=trained)
        audio._set_fitted(anet, device, history, best_epoch, trained=trained)
        self.video_encoder_, self.audio_encoder_ = video, audio
        self.history_, self.best_epoch_ = history, best_epoch
        return self

    def similarity(self, videos: Any, audios: Any) -> np.ndarray:
        """Cosine similarity of frames and sounds in the shared projection space.

        Parameters
        ----------
        videos : sequence or batch of video inputs, length n_videos
        audios : sequence or batch of audio inputs, length n_audios

        Returns
        -------
        numpy.ndarray of shape (n_videos, n_audios), float32
            Higher means "more likely to belong together".
        """
        if not hasattr(self, "video_encoder_"):
            raise NotFittedError("This AVCorrespondence is not fitted: call fit() first")
        sides = []
        for encoder, inputs in ((self.video_encoder_, videos), (self.audio_encoder_, audios)):
            emb = torch.from_numpy(encoder.transform(inputs)).to(encoder.device_)
            with torch.inference_mode():
                sides.append(F.normalize(encoder.model_.projector(emb), dim=1).cpu())
        return (sides[0] @ sides[1].T).numpy().astype(np.float32)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "video_encoder_")
