"""Explain recommendations: neighbours, counterfactuals, faithfulness, modalities, encoders.

Generates clustered interactions and item features (an informative "audio"
modality and a pure-noise "video" one), fits ItemKNN, EASE, ALS and ContentKNN,
and shows every tool of :mod:`avrec.explain`:

* why the top item was recommended to a user (exact additive contributions),
* which history items, removed, change that recommendation (verified),
* how faithful the contributions are (deletion curves vs random order),
* how much ranking quality each modality carries (permutation importance),
* which spectrogram bins and video pixels an encoder's embedding relies on.

PNG plots go to ``--out`` (default: ``$AVREC_EXAMPLES_OUTPUT``, else a new
temporary folder). Run: ``python examples/explanations.py`` (about 15 s on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(n_users: int, n_items: int, density: float, seed: int):
    """Clustered interactions, an "audio" modality that encodes the cluster, noise "video"."""
    from avrec.data import ItemFeatures, make_interactions

    X, _, item_clusters = make_interactions(
        n_users, n_items, density=density, n_clusters=6, return_clusters=True, random_state=seed
    )
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 8))
    audio = centres[item_clusters] + 0.5 * rng.normal(size=(n_items, 8))
    video = rng.normal(size=(n_items, 6))
    features = ItemFeatures({"audio": audio, "video": video}, items=X.items)
    return X, features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--density", type=float, default=0.06)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.environ.get("AVREC_EXAMPLES_OUTPUT"))
    args = parser.parse_args()

    import torch

    from avrec.data import random_split
    from avrec.explain import (
        counterfactual,
        explain_audio,
        explain_recommendation,
        explain_video,
        faithfulness,
        modality_importance,
        plot_contributions,
        plot_frame_saliency,
        plot_modality_importance,
        plot_spectrogram_saliency,
    )
    from avrec.features.encoders import AudioEncoder, VideoEncoder
    from avrec.recommenders import ALS, EASE, ContentKNN, ItemKNN

    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    out = Path(args.out or tempfile.mkdtemp(prefix="avrec-explanations-"))
    out.mkdir(parents=True, exist_ok=True)
    X, features = make_data(args.users, args.items, args.density, args.seed)
    train, test = random_split(X, test_size=0.2, random_state=args.seed)
    print(f"data: {X}\nfeatures: {features}\n")

    models = {
        "ItemKNN": ItemKNN(k=50),
        "EASE": EASE(l2=50.0),
        "ALS": ALS(factors=16, iterations=10, random_state=args.seed, verbose=False),
        "ContentKNN": ContentKNN(),
    }
    for model in models.values():
        model.fit(train, item_features=features)

    # 1. "Because you watched ...": exact additive explanations of the top item
    user = int(np.argmax(np.diff(train.matrix.indptr)[:50]))  # an active user
    print(f"== why was the top item recommended to user {train.users.ids[user]}? ==")
    explanations = {}
    for name, model in models.items():
        top = int(model.recommend([user], k=1)[0][0, 0])
        exp = explain_recommendation(model, user, top)
        explanations[name] = exp
        items, values = exp.top(3)
        because = ", ".join(
            f"{label} ({v:+.3f})" for label, v in zip(exp.labels(items), values, strict=True)
        )
        check = "adds up" if np.isclose(exp.total, exp.score, rtol=1e-4, atol=1e-6) else "OFF"
        extra = f", residual {exp.residual:+.3f}" if exp.residual else ""
        print(f"{name:<11} item {exp.labels([top])[0]:>4} score {exp.score:7.3f} ({check}{extra})")
        print(f"{'':<11} because of {because}")
    modalities = explanations["ContentKNN"].feature_contributions
    print("ContentKNN by modality: " + ", ".join(f"{m} {v:+.3f}" for m, v in modalities.items()))

    # 2. Counterfactual: the history items without which the top item changes
    print("\n== counterfactual (EASE) ==")
    cf = counterfactual(models["EASE"], user)
    print(cf)

    # 3. Faithfulness: deletion in attribution order vs random order
    print("\n== faithfulness: area between deletion curves (random - attribution) ==")
    users = np.arange(min(40, X.shape[0]))
    for name, model in models.items():
        result = faithfulness(model, users, n_random=5, random_state=args.seed)
        n_valid = int(np.isfinite(result.areas).sum())
        print(f"{name:<11} mean area {result.mean_area:6.3f} over {n_valid} users")

    # 4. Which modality carries the ranking quality?
    print("\n== modality importance (ContentKNN, permutation, NDCG@10 drop) ==")
    importance = modality_importance(
        ContentKNN(), train, test, features, n_repeats=3, random_state=args.seed
    )
    for name, mean, std in zip(
        importance.groups, importance.importances_mean, importance.importances_std, strict=True
    ):
        print(f"{name:<6} {mean:+.4f} +- {std:.4f}   (baseline {importance.baseline:.4f})")

    # 5. Encoders: integrated gradients over log-mel bins and video pixels
    print("\n== encoder attributions (integrated gradients) ==")
    sr = 16000
    t = torch.arange(2 * sr) / sr
    tone = 0.3 * torch.sin(2 * torch.pi * 880 * t) * ((t > 0.5) & (t < 1.2))
    audio_enc = AudioEncoder(widths=(8, 16), embedding_dim=16, random_state=0).init()
    audio_attr = explain_audio(audio_enc, tone + 0.01 * torch.randn(t.shape), n_steps=48)
    print(f"audio: {audio_attr}")
    clip = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    for f in range(8):  # a bright square moving across a dark frame
        clip[f, :, 10:18, 2 + 3 * f : 10 + 3 * f] = 230
    video_enc = VideoEncoder(frame_size=32, widths=(8, 16), embedding_dim=16, random_state=0)
    video_attr = explain_video(video_enc.init(), clip, n_steps=48)
    print(f"video: {video_attr}")
    print(
        "video per-frame attribution: " + " ".join(f"{v:+.3f}" for v in video_attr.frame_saliency)
    )

    # 6. Plots
    paths = {
        "contributions.png": plot_contributions(explanations["EASE"]).figure,
        "modality_importance.png": plot_modality_importance(importance).figure,
        "spectrogram_saliency.png": plot_spectrogram_saliency(audio_attr),
        "frame_saliency.png": plot_frame_saliency(video_attr),
    }
    for filename, fig in paths.items():
        fig.savefig(out / filename, dpi=100)
        print(f"wrote {out / filename}")
    print(f"\ndone in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
