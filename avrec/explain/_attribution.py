"""Integrated Gradients in torch, and the attribution results it returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.utils import check_positive_int

__all__ = ["Attribution", "AudioAttribution", "VideoAttribution", "integrated_gradients"]

METHODS = ("riemann_trapezoid", "gausslegendre")
#: Seconds between log-mel frames of :class:`~avrec.features.encoders.AudioEncoder` (10 ms hop).
AUDIO_HOP_SECONDS = 0.010


class Attribution:
    """Integrated Gradients of a scalar output with respect to one input.

    Parameters
    ----------
    attributions : torch.Tensor
        Same shape as ``inputs``; ``attributions.sum()`` approximates
        ``output - baseline_output`` (completeness).
    inputs : torch.Tensor
        The input that was explained (detached).
    baseline : torch.Tensor
        The reference input (same shape).
    output : float
        The explained scalar at ``inputs``.
    baseline_output : float
        The explained scalar at ``baseline``.
    n_steps : int
        Points of the path integral.
    method : str
        Quadrature rule.

    Attributes
    ----------
    attributions, inputs, baseline, output, baseline_output, n_steps, method
        As given.
    delta : float
        Completeness error ``attributions.sum() - (output - baseline_output)``;
        it shrinks as ``n_steps`` grows.
    """

    def __init__(
        self,
        attributions: Any,
        inputs: Any,
        baseline: Any,
        output: float,
        baseline_output: float,
        n_steps: int,
        method: str,
    ) -> None:
        self.attributions = attributions
        self.inputs = inputs
        self.baseline = baseline
        self.output = float(output)
        self.baseline_output = float(baseline_output)
        self.n_steps = int(n_steps)
        self.method = method
        self.delta = float(attributions.double().sum()) - (self.output - self.baseline_output)

    @property
    def relative_delta(self) -> float:
        """float: ``|delta| / |output - baseline_output|`` (inf when the outputs are equal)."""
        gap = abs(self.output - self.baseline_output)
        return abs(self.delta) / gap if gap > 0 else float("inf")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={tuple(self.attributions.shape)}, "
            f"output={self.output:.4g}, baseline_output={self.baseline_output:.4g}, "
            f"delta={self.delta:.3g}, n_steps={self.n_steps}, method={self.method!r})"
        )


class AudioAttribution(Attribution):
    """Integrated Gradients of an audio embedding over log-mel time-frequency bins.

    Returned by :func:`explain_audio`; see :class:`Attribution` for the
    common attributes. ``inputs`` and ``attributions`` have the shape of the
    encoder's input, ``(n_patches, 96, n_mels)`` scaled log-mel patches.

    Attributes
    ----------
    spectrogram : ndarray of shape (n_frames, n_mels)
        The scaled log-mel input, time-major (``n_frames = n_patches * 96``).
    saliency : ndarray of shape (n_frames, n_mels)
        Attribution of every time-frequency bin (signed; sums to about
        ``output - baseline_output``).
    hop_seconds : float
        Seconds between frames (0.01).
    """

    @property
    def spectrogram(self) -> np.ndarray:
        """ndarray of shape (n_frames, n_mels): the scaled log-mel input."""
        x = self.inputs.detach().cpu().double().numpy()
        return x.reshape(-1, x.shape[-1])

    @property
    def saliency(self) -> np.ndarray:
        """ndarray of shape (n_frames, n_mels): attribution of each bin."""
        a = self.attributions.detach().cpu().double().numpy()
        return a.reshape(-1, a.shape[-1])

    @property
    def hop_seconds(self) -> float:
        """float: seconds between log-mel frames."""
        return AUDIO_HOP_SECONDS


class VideoAttribution(Attribution):
    """Integrated Gradients of a video embedding over frames and pixels.

    Returned by :func:`explain_video`; see :class:`Attribution` for the
    common attributes. ``inputs`` and ``attributions`` have the shape
    ``(n_frames, 3, size, size)``: the frames as the encoder sees them (resized
    to ``frame_size``, scaled to ``[0, 1]``, before the per-channel
    normalisation, which is part of the explained function).

    Attributes
    ----------
    frames : ndarray of shape (n_frames, size, size, 3)
        The input frames in ``[0, 1]``, channels last (for display).
    pixel_saliency : ndarray of shape (n_frames, size, size)
        Attributions summed over the colour channels (signed).
    frame_saliency : ndarray of shape (n_frames,)
        Attributions summed over each frame (signed); sums to about
        ``output - baseline_output``.
    """

    @property
    def frames(self) -> np.ndarray:
        """ndarray of shape (n_frames, size, size, 3): the input in [0, 1]."""
        return self.inputs.detach().cpu().double().numpy().transpose(0, 2, 3, 1)

    @property
    def pixel_saliency(self) -> np.ndarray:
        """ndarray of shape (n_frames, size, size): summed over channels."""
        return self.attributions.detach().cpu().double().sum(dim=1).numpy()

    @property
    def frame_saliency(self) -> np.ndarray:
        """ndarray of shape (n_frames,): summed over each frame."""
        return self.attributions.detach().cpu().double().sum(dim=(1, 2, 3)).numpy()


def integrated_gradients(
    forward_fn: Callable[[Any], Any],
    inputs: Any,
    baseline: Any = None,
    *,
    target: int | None = None,
    n_steps: int = 64,
    method: str = "riemann_trapezoid",
    batch_size: int | None = None,
) -> Attribution:
    """Integrated Gradients (Sundararajan et al., 2017) of a differentiable function.

    .. math::

        \\mathrm{IG}(x) = (x - b) \\odot \\int_0^1 \\nabla f\\big(b + \\alpha (x - b)\\big)
        \\, d\\alpha,

    with the integral approximated by a quadrature rule over ``n_steps``
    points of the straight path from the baseline ``b`` to the input ``x``.
    The attributions satisfy *completeness*, ``sum IG = f(x) - f(b)``, up to
    the quadrature error reported as ``delta``. Gradients are taken with
    :func:`torch.autograd.grad` with respect to the input only, so no
    parameter's ``.grad`` is touched; the module's mode (``eval`` for
    BatchNorm and dropout) is the caller's choice.

    Parameters
    ----------
    forward_fn : callable
        Maps a batch ``(b, *inputs.shape)`` to ``(b,)`` scalars, or to
        ``(b, d)`` outputs of which ``target`` is explained.
    inputs : torch.Tensor or array-like
        One example (no batch dimension), floating.
    baseline : torch.Tensor, array-like or float, optional
        Reference input of the same shape (or a scalar); default zeros.
    target : int, optional
        Output column explained when ``forward_fn`` returns ``(b, d)``.
    n_steps : int, default=64
        Quadrature points (>= 2 for the trapezoid rule).
    method : {"riemann_trapezoid", "gausslegendre"}, default="riemann_trapezoid"
        Trapezoid rule on evenly spaced points (both ends included), or
        Gauss-Legendre nodes (more accurate for smooth functions, as in Captum).
    batch_size : int, optional
        Path points per forward/backward pass (bounded memory); default all.

    Returns
    -------
    Attribution
        ``attributions`` (a tensor of ``inputs``' shape and dtype), ``delta``,
        ``output``, ``baseline_output``.

    Raises
    ------
    ConfigurationError
        For an unknown ``method`` or too few steps.
    DataValidationError
        If ``baseline``'s shape differs or ``forward_fn`` does not return one
        scalar per example.

    References
    ----------
    .. [1] M. Sundararajan, A. Taly and Q. Yan, "Axiomatic Attribution for
       Deep Networks", ICML 2017.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([1.0, -2.0, 3.0])
    >>> result = integrated_gradients(lambda x: x @ w, torch.tensor([1.0, 1.0, 2.0]))
    >>> result.attributions.tolist(), round(result.delta, 6)
    ([1.0, -2.0, 6.0], 0.0)
    """
    import torch

    x = torch.as_tensor(inputs)
    if not x.is_floating_point():
        x = x.float()
    x = x.detach()
    if baseline is None:
        b = torch.zeros_like(x)
    else:
        b = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).detach()
        if b.dim() == 0:
            b = torch.full_like(x, float(b))
    if b.shape != x.shape:
        raise DataValidationError(
            f"baseline must have the input's shape {tuple(x.shape)}, got {tuple(b.shape)}"
        )
    alphas, weights = _quadrature(method, n_steps)
    size = len(alphas) if batch_size is None else check_positive_int(batch_size, "batch_size")

    def scalar(out: Any, n: int) -> Any:
        if target is not None:
            if out.dim() != 2:
                raise DataValidationError(
                    f"target={target} needs forward_fn to return (b, d), got {tuple(out.shape)}"
                )
            out = out[:, target]
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (n,):
            raise DataValidationError(
                "forward_fn must return one scalar per example, shape (b,) (or (b, d) with "
                f"target=); got {tuple(out.shape)} for b={n}"
            )
        return out

    diff = x - b
    total = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    with torch.enable_grad():
        for start in range(0, len(alphas), size):
            a = torch.as_tensor(alphas[start : start + size], dtype=x.dtype, device=x.device)
            w = torch.as_tensor(weights[start : start + size], dtype=torch.float64, device=x.device)
            shape = (-1,) + (1,) * x.dim()
            path = (b.unsqueeze(0) + a.view(shape) * diff.unsqueeze(0)).requires_grad_(True)
            out = scalar(forward_fn(path), len(a))
            (grads,) = torch.autograd.grad(out.sum(), path)
            total += (grads.double() * w.view(shape)).sum(dim=0)
    with torch.no_grad():
        ends = scalar(forward_fn(torch.stack([x, b])), 2).double()
    attributions = (diff.double() * total).to(x.dtype)
    return Attribution(attributions, x, b, float(ends[0]), float(ends[1]), len(alphas), method)


def _quadrature(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    if method not in METHODS:
        raise ConfigurationError(f"method must be one of {METHODS}, got {method!r}")
    minimum = 2 if method == "riemann_trapezoid" else 1
    n = check_positive_int(n_steps, "n_steps", minimum=minimum)
    if method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2.0
        return alphas, weights
    nodes, w = np.polynomial.legendre.leggauss(n)
    return (nodes + 1.0) / 2.0, w / 2.0
