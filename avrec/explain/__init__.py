"""Explanations: why was this recommended, and what does the model rely on?

* Neighbour explanations ("because you watched ..."):
  :func:`explain_recommendation` splits a score exactly over the user's
  history items (ItemKNN, EASE, ALS, BPR, ContentKNN, HybridBlend ...).
* Counterfactuals: :func:`counterfactual` finds a small set of history items
  whose removal changes the top recommendation, verified by re-scoring.
* Faithfulness: :func:`deletion_curve` and :func:`faithfulness` check that
  removing items in attribution order lowers the score faster than at random.
* Modality and feature-group importance: :func:`modality_importance`, by
  permutation (or mean ablation) of item features and refitting.
* Attributions for the encoders: :func:`integrated_gradients` and its
  wrappers :func:`explain_audio` (log-mel time-frequency bins) and
  :func:`explain_video` (frames and pixels).
* Plots: :func:`plot_contributions`, :func:`plot_modality_importance`,
  :func:`plot_spectrogram_saliency`, :func:`plot_frame_saliency` (matplotlib,
  ``pip install "avrec[plots]"``).

Examples
--------
>>> import numpy as np
>>> from avrec.explain import explain_recommendation
>>> from avrec.recommenders import ItemKNN
>>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
>>> model = ItemKNN(k=3).fit(X)
>>> explain_recommendation(model, 0, 2)
Explanation(item 2, score=1.075: item 0: +0.6667, item 1: +0.4082)
"""

from avrec.explain._attribution import (
    Attribution,
    AudioAttribution,
    VideoAttribution,
    integrated_gradients,
)
from avrec.explain._counterfactual import Counterfactual, counterfactual
from avrec.explain._encoders import explain_audio, explain_video
from avrec.explain._faithfulness import deletion_curve, faithfulness
from avrec.explain._importance import modality_importance
from avrec.explain._neighbours import Explanation, explain_recommendation
from avrec.explain._plots import (
    plot_contributions,
    plot_frame_saliency,
    plot_modality_importance,
    plot_spectrogram_saliency,
)

__all__ = [
    "Attribution",
    "AudioAttribution",
    "Counterfactual",
    "Explanation",
    "VideoAttribution",
    "counterfactual",
    "deletion_curve",
    "explain_audio",
    "explain_recommendation",
    "explain_video",
    "faithfulness",
    "integrated_gradients",
    "modality_importance",
    "plot_contributions",
    "plot_frame_saliency",
    "plot_modality_importance",
    "plot_spectrogram_saliency",
]
