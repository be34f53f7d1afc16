"""Text -> video retrieval on the synthetic corpus: pretrained towers frozen vs fine-tuned.

The corpus (:func:`avrec.data.make_av_corpus`) gives each item a description naming its
genre (a ``text_noise`` share names a wrong one) and a clip whose picture shows the genre.
The towers are all-MiniLM-L6-v2 (:class:`avrec.features.TextEncoder`) and ImageNet
EfficientNet-Lite0 (:class:`avrec.features.FrameBackbone`, mean over the sampled frames),
both from the ``avrec[pretrained]`` weights. :class:`avrec.features.CrossModalFineTuner`
trains them on the description-clip pairs of 75 % of the video items (symmetric InfoNCE
into a shared space); the rest are held out. On the held-out items, every description
queries the held-out clips with :func:`avrec.features.cross_modal_search`:

* ``genre P@10``: share of the top 10 clips of the query item's (true) genre;
* ``own R@10`` / ``own MRR``: the item's own clip in the top 10 / its reciprocal rank.

Rows, measured in the same run: untrained heads (epochs=0, the chance reference), frozen
backbones with trained heads, last-k (the last block of each backbone) and LoRA adapters
(MiniLM query/value, EfficientNet point-wise convolutions). Each row reports the fit time,
the trainable parameters and the size of the saved fine-tuned tensors (``adapter.safetensors``
of both towers; the base weights are 90 MB + 14 MB).

Example::

    python benchmarks/bench_finetune.py                  # 160 items, 4 genres, 8 epochs
    python benchmarks/bench_finetune.py --items 320 --epochs 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import markdown_table, set_threads


def retrieval(idx: np.ndarray, genres: np.ndarray) -> dict[str, float]:
    """Genre precision and own-item recall/MRR of ranked held-out clips for each query."""
    n = idx.shape[0]
    own = idx == np.arange(n)[:, None]
    rank = np.where(own.any(1), own.argmax(1) + 1, np.inf)
    return {
        "genre_p10": float((genres[idx[:, :10]] == genres[:, None]).mean()),
        "own_r10": float((rank <= 10).mean()),
        "own_mrr": float(np.mean(1.0 / rank)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=160)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)

    import torch

    from avrec.data import make_av_corpus
    from avrec.features import (
        CrossModalFineTuner,
        FineTuning,
        FrameBackbone,
        TextEncoder,
        cross_modal_search,
        pretrained_weights,
    )
    from avrec.media import read_video

    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_av_corpus(
            Path(tmp) / "corpus", n_items=args.items, n_users=10, n_genres=args.genres,
            duration=1.0, random_state=args.seed, verbose=False,
        )  # fmt: skip
        video = np.flatnonzero(corpus.has_video)
        texts = corpus.text(("description",))
        ids = list(corpus.catalogue())
        descriptions = [texts[ids[i]] for i in video]
        clips = torch.stack(
            [read_video(corpus.paths[i], args.frames).frames for i in video]
        )  # (n, T, C, H, W) uint8
        genres = corpus.genres[video]
        order = np.random.default_rng(args.seed).permutation(len(video))
        n_train = int(0.75 * len(video))
        train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
        text = TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2")).fit()
        frames = FrameBackbone(
            weights=pretrained_weights("efficientnet_lite0"), image_size=args.image_size
        ).fit()
        print(
            f"corpus: {len(video)} video items ({n_train} train / {len(test)} held out), "
            f"{args.genres} genres, {args.frames} frames at {args.image_size} px, "
            f"{args.epochs} epochs, batch {args.batch_size}, {args.threads} torch threads, CPU"
        )
        rows = []
        configs = [
            ("untrained heads", "frozen", 0),
            ("frozen + heads", "frozen", args.epochs),
            ("last-k (k=1)", "last_k", args.epochs),
            ("LoRA r=8 (both)", FineTuning("lora", lora_rank=8), args.epochs),
        ]
        for name, mode, epochs in configs:
            tuner = CrossModalFineTuner(
                text, frames, mode=mode, projection_dim=64, temperature=0.07, epochs=epochs,
                batch_size=args.batch_size, learning_rate=5e-4, random_state=args.seed,
            )  # fmt: skip
            began = time.perf_counter()
            tuner.fit([descriptions[i] for i in train], clips[torch.from_numpy(train)])
            seconds = time.perf_counter() - began
            items = tuner.encoder_b_.transform(clips[torch.from_numpy(test)])
            queries = [descriptions[i] for i in test]
            idx, _ = cross_modal_search(queries, tuner.encoder_a_, items, k=len(test))
            size = 0
            for side, tower in (("a", tuner.encoder_a_), ("b", tuner.encoder_b_)):
                tower.save(Path(tmp) / side)
                size += (Path(tmp) / side / "adapter.safetensors").stat().st_size
            losses = tuner.history_["train_loss"]
            rows.append(
                {
                    "mode": name,
                    **retrieval(idx, genres[test]),
                    "trainable": (
                        tuner.encoder_a_.n_trainable_parameters()
                        + tuner.encoder_b_.n_trainable_parameters()
                    )
                    / 1e6,
                    "mb": size / 2**20,
                    "loss": losses[-1] if losses else float("nan"),
                    "fit_s": seconds,
                }
            )
    print(
        markdown_table(
            rows,
            [
                ("mode", "towers", "s"),
                ("genre_p10", "genre P@10", ".3f"),
                ("own_r10", "own R@10", ".3f"),
                ("own_mrr", "own MRR", ".3f"),
                ("trainable", "trainable (M)", ".3f"),
                ("mb", "saved (MB)", ".2f"),
                ("loss", "last train loss", ".3f"),
                ("fit_s", "fit (s)", ".1f"),
            ],
        )
    )
    print(f"chance: genre P@10 ~{1 / args.genres:.3f}, own R@10 {10 / len(test):.3f}")


if __name__ == "__main__":
    main()
