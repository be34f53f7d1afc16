"""The explanations section of the ``avrec demo`` report (uses :mod:`avrec.explain`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from avrec.cli._demo import DemoResult

__all__ = ["explanations_section"]

logger = logging.getLogger(__name__)


def explanations_section(result: DemoResult, folder: Path) -> str:
    """Markdown explaining the demo's recommendations, with PNG plots written to ``folder``.

    For the most active test user: why the hybrid model's top item was recommended
    (an exact split of its score over the user's history and over its components), which
    history items removed change EASE's top recommendation (verified by re-scoring), how
    faithful the contributions are (deletion curves vs random order, 40 users), and how much
    each modality matters to ContentKNN (permutation importance, NDCG@10 drop, 3 repeats).

    Parameters
    ----------
    result : DemoResult
    folder : pathlib.Path
        Where the plots go.

    Returns
    -------
    str
        Markdown.
    """
    from avrec.explain import (
        counterfactual,
        explain_recommendation,
        faithfulness,
        modality_importance,
        plot_contributions,
        plot_modality_importance,
    )
    from avrec.recommenders import ContentKNN

    train, test = result.warm_split
    models = result.models
    titles = np.asarray(result.corpus.metadata["title"]).astype(str)
    genres = np.asarray(result.corpus.genres)
    catalogue = result.corpus.interactions.items
    order = catalogue.index(train.items.ids)  # corpus rows of the model's items

    def label(item: int) -> str:
        row = order[item]
        return f"{train.items.ids[item]} '{titles[row]}' (genre {genres[row]})"

    evaluated = np.flatnonzero(np.diff(test.matrix.indptr) > 0)
    user = int(evaluated[np.argmax(np.diff(train.matrix.indptr)[evaluated])])
    seed = result.config.seed
    lines = ["## Explanations", ""]

    model_name = "HybridBlend" if "HybridBlend" in models else "EASE"
    model = models[model_name]
    top = int(model.recommend([user], k=1)[0][0, 0])
    exp = explain_recommendation(model, user, top)
    items, values = exp.top(5)
    lines += [
        f"**Why {model_name} recommends {label(top)} to user {train.users.ids[user]}** "
        f"(score {exp.score:.4f}; contributions + bias + residual = {exp.total:.4f}):",
        "",
        *(f"- because of {label(int(j))}: {v:+.4f}" for j, v in zip(items, values, strict=True)),
        "",
    ]
    if exp.feature_contributions:
        parts = ", ".join(f"{k} {v:+.4f}" for k, v in exp.feature_contributions.items())
        lines += [f"By component: {parts}.", ""]
    ax = plot_contributions(exp)
    ax.figure.savefig(folder / "explanation_contributions.png", dpi=110)
    lines += ["![contributions](explanation_contributions.png)", ""]

    if "EASE" in models:
        cf = counterfactual(models["EASE"], user)
        lines += [f"**Counterfactual (EASE):** {cf!r}", ""]

    rows = ["| model | mean area between deletion curves | users |", "|:---|---:|---:|"]
    for name in ("EASE", "ContentKNN", "HybridBlend"):
        if name not in models:
            continue
        res = faithfulness(models[name], evaluated[:40], n_random=5, random_state=seed)
        n_ok = int(np.isfinite(res.areas).sum())
        rows.append(f"| {name} | {res.mean_area:.3f} | {n_ok} |")
    lines += [
        "**Faithfulness:** removing history items in contribution order lowers the score "
        "faster than removing them in random order (area > 0; 1 is the maximum).",
        "",
        *rows,
        "",
    ]

    importance = modality_importance(
        ContentKNN(), train, test, result.features, n_repeats=3, random_state=seed
    )
    lines += [
        "**Which modality matters (ContentKNN, permutation importance, NDCG@10 drop, "
        f"baseline {importance.baseline:.4f}):**",
        "",
        *(
            f"- {g}: {m:+.4f} ± {s:.4f}"
            for g, m, s in zip(
                importance.groups,
                importance.importances_mean,
                importance.importances_std,
                strict=True,
            )
        ),
        "",
    ]
    ax = plot_modality_importance(importance)
    ax.figure.savefig(folder / "modality_importance.png", dpi=110)
    lines += ["![modality importance](modality_importance.png)"]
    return "\n".join(lines)
