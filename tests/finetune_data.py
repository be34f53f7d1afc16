"""Tiny encoders and paired toy data for the fine-tuning tests (built here, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avrec.features import TextEncoder, VideoEncoder

#: Category words: each toy item's title names its colour and a random object.
COLOURS = ("red", "green", "blue", "yellow")
OBJECTS = ("ball", "car", "dog", "cat", "song", "film")
#: RGB of each colour category, the frames' dominant colour.
RGB = np.array([[220, 30, 30], [30, 200, 40], [30, 40, 220], [230, 220, 30]], dtype=np.float64)


def write_tiny_bert(directory: Path, seed: int = 0, hidden: int = 16) -> Path:
    """Write a 2-layer BERT with a word-level vocabulary as a transformers folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *COLOURS, *OBJECTS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    return directory


def tiny_text_encoder(directory: Path, seed: int = 0) -> TextEncoder:
    """A fitted :class:`TextEncoder` over a tiny random BERT written to ``directory``."""
    return TextEncoder(model_dir=str(write_tiny_bert(directory, seed))).fit()


def tiny_video_encoder(seed: int = 0) -> VideoEncoder:
    """A small randomly initialised :class:`VideoEncoder` over 16-pixel frames."""
    return VideoEncoder(
        frame_size=16, widths=(4, 8), embedding_dim=8, random_state=seed, batch_size=16
    ).init()


def toy_pairs(n: int = 32, seed: int = 0) -> tuple[list[str], torch.Tensor, np.ndarray]:
    """Titles and clips of ``n`` items in 4 colour categories.

    Returns
    -------
    texts : list of str
        ``"<colour> <object>"``.
    clips : uint8 tensor of shape (n, 2, 3, 16, 16)
        Noisy frames of the item's colour.
    labels : ndarray of shape (n,)
        The category of each item.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(COLOURS)
    texts = [f"{COLOURS[c]} {OBJECTS[rng.integers(len(OBJECTS))]}" for c in labels]
    base = RGB[labels][:, None, :, None, None]
    noise = rng.normal(0, 25, size=(n, 2, 3, 16, 16))
    clips = torch.from_numpy(np.clip(base + noise, 0, 255).astype(np.uint8))
    return texts, clips, labels
