"""Plots render to real PNG files without opening windows."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from known_data import block_interactions

from avrec.data import ItemFeatures, random_split
from avrec.explain import (
    explain_audio,
    explain_recommendation,
    explain_video,
    modality_importance,
    plot_contributions,
    plot_frame_saliency,
    plot_modality_importance,
    plot_spectrogram_saliency,
)
from avrec.features.encoders import AudioEncoder, VideoEncoder
from avrec.recommenders import EASE, ContentKNN

mpimg = pytest.importorskip("matplotlib.image")
torch.set_num_threads(1)


def _saved(fig, path, min_kb=5):
    fig.savefig(path, dpi=80)
    assert path.stat().st_size > min_kb * 1024
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


def test_plot_contributions(tmp_path):
    data = block_interactions(n_users=30, n_items=20, seed=1)
    model = EASE(l2=5.0).fit(data)
    user = int(np.argmax(np.diff(data.matrix.indptr)))
    exp = explain_recommendation(model, user, int(model.recommend([user], k=1)[0][0, 0]))
    ax = plot_contributions(exp, n=3)
    n_bars = min(3, exp.items.size) + (exp.items.size > 3)
    assert len(ax.patches) == n_bars
    heights = sum(p.get_width() for p in ax.patches)
    assert heights == pytest.approx(exp.score, rel=1e-4)  # the bars add up to the score
    _saved(ax.figure, tmp_path / "contributions.png")


def test_plot_modality_importance(tmp_path):
    data = block_interactions(n_users=40, n_items=20, seed=1)
    train, test = random_split(data, test_size=0.3, random_state=0)
    rng = np.random.default_rng(0)
    feats = ItemFeatures(
        {"audio": rng.normal(size=(20, 3)), "video": rng.normal(size=(20, 2))},
        items=[f"i{i}" for i in range(20)],
    )
    result = modality_importance(ContentKNN(), train, test, feats, n_repeats=2, random_state=0)
    ax = plot_modality_importance(result)
    assert len(ax.patches) == 2 and ax.get_ylabel() == "drop of ndcg@10"
    _saved(ax.figure, tmp_path / "importance.png", min_kb=4)


def test_plot_spectrogram_and_frame_saliency(tmp_path):
    audio = AudioEncoder(widths=(4,), embedding_dim=4, random_state=0).init()
    result = explain_audio(audio, torch.randn(16000) * 0.1, target=0, n_steps=8)
    fig = plot_spectrogram_saliency(result)
    assert len(fig.axes) == 4  # two images and their colour bars
    _saved(fig, tmp_path / "spectrogram.png", min_kb=10)

    video = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=4, random_state=0).init()
    clip = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    result = explain_video(video, clip, n_steps=8)
    fig = plot_frame_saliency(result, max_frames=4)
    assert len(fig.axes) == 2 * 4 + 1
    _saved(fig, tmp_path / "frames.png", min_kb=10)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    from avrec.explain import _plots

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install \"avrec\[plots\]\""):
        _plots._figure_class()
