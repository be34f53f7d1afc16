"""Bring your own encoder: local weights for a built-in architecture, and a custom network.

Nothing is ever downloaded: weights come from files on your disk. This script

1. writes a small synthetic corpus (:func:`avrec.data.make_av_corpus`);
2. trains an :class:`~avrec.features.AudioEncoder` for a few epochs, stands in for "a
   checkpoint from your lab" by saving only its backbone's ``state_dict`` to a
   ``.safetensors`` file, and loads it back with ``AudioEncoder.from_pretrained(file,
   **architecture)``: the embeddings are identical;
3. defines a custom video encoder — a subclass of :class:`~avrec.features.VideoEncoder`
   whose network is a soft colour histogram + linear layer — saves and reloads its weights
   the same way;
4. plugs both into :class:`~avrec.features.FeatureExtractor` and reports how often an
   item's nearest neighbour in each feature space shares its hidden genre.

Run: ``python examples/custom_encoder.py`` (about 20 s on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from avrec.data import make_av_corpus
from avrec.features import AudioEncoder, FeatureExtractor, VideoEncoder


class HueHistogramNet(nn.Module):
    """Soft histogram of pixel colours over all frames, then a linear layer.

    Any ``nn.Module`` works as an encoder's network if it has ``embedding_dim`` and
    ``embed(frames, lengths)``; frames arrive as ``(B, T, 3, H, W)`` floats in [0, 1].
    """

    def __init__(self, bins: int = 8, embedding_dim: int = 16) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(0, 1, bins))
        self.bins = bins
        self.linear = nn.Linear(3 * bins, embedding_dim)
        self.embedding_dim = embedding_dim

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        nn.init.xavier_uniform_(self.linear.weight, generator=generator)
        nn.init.zeros_(self.linear.bias)

    def embed(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = frames.float()
        if x.max() > 1.5:  # uint8 frames
            x = x / 255.0
        x = x.transpose(1, 2).flatten(2)  # (B, 3, T*H*W)
        weights = torch.exp(-((x[..., None] - self.centres) ** 2) / 0.01)  # (B, 3, P, bins)
        hist = weights.mean(dim=2).flatten(1)  # (B, 3*bins)
        return self.linear(torch.log1p(10 * hist))


class HueHistogramEncoder(VideoEncoder):
    """A :class:`VideoEncoder` whose network is :class:`HueHistogramNet`.

    Everything else — input conversion, ``transform``, ``save``/``from_pretrained``,
    the feature extractor's cache fingerprint — comes from the base class.
    """

    def _build_model(self) -> nn.Module:
        return HueHistogramNet(bins=8, embedding_dim=self.embedding_dim)


def neighbour_agreement(emb: np.ndarray, labels: np.ndarray) -> float:
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(labels[sim.argmax(axis=1)] == labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = make_av_corpus(
            tmp / "corpus",
            n_items=args.items,
            n_users=20,
            n_genres=4,
            duration=args.duration,
            audio_only_fraction=0.0,
            random_state=args.seed,
            verbose=False,
        )
        paths = [str(p) for p in corpus.paths]
        print(f"corpus: {len(corpus)} items, {corpus.n_genres} genres")

        # 2. a built-in architecture with weights from a local file
        arch = {"widths": (8, 16), "embedding_dim": 16}
        lab = AudioEncoder(**arch, epochs=args.epochs, batch_size=16, random_state=args.seed).fit(
            paths
        )
        backbone = lab.model_.pretrained_targets()[0][1]  # the AudioCNN
        weights = tmp / "lab_audio_backbone.safetensors"
        save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(weights))
        audio = AudioEncoder.from_pretrained(weights, **arch)
        same = np.allclose(audio.transform(paths[:4]), lab.transform(paths[:4]), atol=1e-5)
        print(f"AudioEncoder.from_pretrained({weights.name}): embeddings identical: {same}")

        # 3. a custom network, its weights saved and loaded the same way
        custom = HueHistogramEncoder(
            embedding_dim=16, frames=4, frame_size=32, random_state=args.seed
        ).init()
        custom_weights = tmp / "hue_histogram.safetensors"
        save_file(dict(custom.model_.state_dict()), str(custom_weights))
        video = HueHistogramEncoder.from_pretrained(
            custom_weights, embedding_dim=16, frames=4, frame_size=32
        )
        print(f"custom encoder: {type(video.model_).__name__}, {video.n_features_out_} dims")

        # 4. both in the extractor
        extractor = FeatureExtractor(
            {"video": video, "audio": audio},
            frames=4,
            frame_size=32,
            audio_seconds=args.duration,
            verbose=False,
        )
        features = extractor.extract(corpus.catalogue())
        chance = float(np.sum((np.bincount(corpus.genres) / len(corpus)) ** 2))
        for name in features.modalities:
            agree = neighbour_agreement(features[name], corpus.genres)
            print(f"nearest neighbour shares the genre ({name}): {agree:.2f} (chance {chance:.2f})")


if __name__ == "__main__":
    main()
