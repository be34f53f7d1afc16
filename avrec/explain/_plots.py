"""Plots of explanations (matplotlib, imported lazily: ``pip install "avrec[plots]"``).

Figures are created with :class:`matplotlib.figure.Figure` directly, not
through ``pyplot``: no window opens and no global figure state is touched
(save them with ``fig.savefig``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "plot_contributions",
    "plot_frame_saliency",
    "plot_modality_importance",
    "plot_spectrogram_saliency",
]


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'avrec.explain plots need matplotlib: pip install "avrec[plots]"'
        ) from exc
    return Figure


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    return _figure_class()(figsize=figsize, layout="constrained").add_subplot()


def plot_contributions(explanation: Any, ax: Any = None, *, n: int = 10) -> Any:
    """Bar chart of the history items that contribute most to a recommendation.

    Shows the ``n`` largest contributions (by absolute value), the rest of the
    history summed in one bar, and the bias and residual when they are not 0,
    so the bars add up to the score.

    Parameters
    ----------
    explanation : Explanation
        From :func:`~avrec.explain.explain_recommendation`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.
    n : int, default=10
        History items shown individually.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.explain import explain_recommendation
    >>> from avrec.recommenders import EASE
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    >>> exp = explain_recommendation(EASE(l2=1.0).fit(X), 0, 2)
    >>> ax = plot_contributions(exp)
    >>> len(ax.patches)
    2
    """
    values = explanation.contributions
    order = np.argsort(-np.abs(values), kind="stable")[: max(int(n), 0)]
    labels = explanation.labels(explanation.items[order])
    bars = list(values[order])
    rest = np.delete(values, order)
    if rest.size:
        labels.append(f"{rest.size} other history items")
        bars.append(float(rest.sum()))
    for name in ("bias", "residual"):
        value = getattr(explanation, name)
        if value:
            labels.append(name)
            bars.append(value)
    ax = _axes(ax, (6.0, 0.45 * len(bars) + 1.5))
    y = np.arange(len(bars))[::-1]
    colors = ["tab:blue" if v >= 0 else "tab:red" for v in bars]
    ax.barh(y, bars, color=colors)
    ax.set_yticks(y, labels)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("contribution to the score")
    title = explanation.labels(np.array([explanation.item]))[0]
    ax.set_title(f"why {title}? score {explanation.score:.3g}")
    return ax


def plot_modality_importance(result: Any, ax: Any = None) -> Any:
    """Bar chart of modality (feature-group) importances with their standard deviation.

    Parameters
    ----------
    result : sklearn.utils.Bunch
        From :func:`~avrec.explain.modality_importance`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    names = list(result.groups)
    ax = _axes(ax, (1.2 * len(names) + 2.5, 3.5))
    x = np.arange(len(names))
    ax.bar(x, result.importances_mean, yerr=result.importances_std, capsize=4, color="tab:blue")
    ax.set_xticks(x, names)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel(f"drop of {result.metric}")
    ax.set_title(f"modality importance ({result.strategy}; baseline {result.baseline:.3f})")
    return ax


def _symmetric_limit(values: np.ndarray) -> float:
    limit = float(np.abs(values).max()) if values.size else 0.0
    return limit if limit > 0 else 1.0


def plot_spectrogram_saliency(result: Any, fig: Any = None, *, cmap: str = "RdBu_r") -> Any:
    """The log-mel input of an audio attribution above its time-frequency saliency.

    Parameters
    ----------
    result : AudioAttribution
        From :func:`~avrec.explain.explain_audio`.
    fig : matplotlib.figure.Figure, optional
        Drawn into (two axes are added); default a new figure.
    cmap : str, default="RdBu_r"
        Diverging colormap of the (signed) attributions, centred on 0.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    if fig is None:
        fig = _figure_class()(figsize=(8.0, 5.0), layout="constrained")
    spec, sal = result.spectrogram, result.saliency
    extent = (0.0, spec.shape[0] * result.hop_seconds, 0, spec.shape[1])
    top, bottom = fig.subplots(2, 1, sharex=True)
    image = top.imshow(spec.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    fig.colorbar(image, ax=top, label="scaled log-mel")
    top.set_ylabel("mel band")
    top.set_title("input")
    limit = _symmetric_limit(sal)
    image = bottom.imshow(
        sal.T, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=-limit, vmax=limit
    )
    fig.colorbar(image, ax=bottom, label="attribution")
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("mel band")
    bottom.set_title(
        f"integrated gradients (output {result.output:.3g}, baseline "
        f"{result.baseline_output:.3g}, delta {result.delta:.2g})"
    )
    return fig


def plot_frame_saliency(result: Any, fig: Any = None, *, max_frames: int = 8) -> Any:
    """Frames of a video attribution, their pixel saliency, and the saliency per frame.

    Top row: the frames; middle row: the absolute pixel saliency
    (attributions summed over colour channels) over a dimmed frame; bottom:
    the signed attribution of each frame.

    Parameters
    ----------
    result : VideoAttribution
        From :func:`~avrec.explain.explain_video`.
    fig : matplotlib.figure.Figure, optional
        Drawn into; default a new figure.
    max_frames : int, default=8
        Frames shown (evenly spaced when the clip has more).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    frames, pixels, per_frame = result.frames, result.pixel_saliency, result.frame_saliency
    n = frames.shape[0]
    shown = np.unique(np.linspace(0, n - 1, min(n, max(int(max_frames), 1))).round().astype(int))
    if fig is None:
        fig = _figure_class()(figsize=(1.6 * len(shown) + 1.0, 5.5), layout="constrained")
    grid = fig.add_gridspec(3, len(shown), height_ratios=[1.0, 1.0, 0.9])
    limit = float(np.abs(pixels).max()) or 1.0
    for col, t in enumerate(shown):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(np.clip(frames[t], 0.0, 1.0))
        ax.set_title(f"frame {t}", fontsize=8)
        ax.axis("off")
        ax = fig.add_subplot(grid[1, col])
        ax.imshow(np.clip(frames[t], 0.0, 1.0).mean(axis=-1), cmap="gray", alpha=0.4)
        ax.imshow(np.abs(pixels[t]), cmap="hot", alpha=0.7, vmin=0.0, vmax=limit)
        ax.axis("off")
    ax = fig.add_subplot(grid[2, :])
    colors = ["tab:blue" if v >= 0 else "tab:red" for v in per_frame]
    ax.bar(np.arange(n), per_frame, color=colors)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("frame")
    ax.set_ylabel("attribution")
    ax.set_title(f"per-frame attribution (sum {per_frame.sum():.3g})", fontsize=9)
    return fig
