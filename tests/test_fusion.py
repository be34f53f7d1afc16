"""Learned fusion modules and modality dropout: reference math, exact masking, statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import presence_masks

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features import AttentionFusion, GatedFusion
from avrec.features.functional import modality_dropout

DIMS = [3, 5, 2]


def _inputs(n: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=gen, dtype=torch.float64) for d in DIMS]


def _build(kind: str, **kwargs):
    torch.manual_seed(0)
    if kind == "gated":
        module = GatedFusion(DIMS, 4, **kwargs)
    else:
        module = AttentionFusion(DIMS, 4, num_heads=2, **kwargs)
    module.reset_parameters(torch.Generator().manual_seed(1))
    return module.double().eval()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def gated_reference(module: GatedFusion, xs, present):
    """Hand-written numpy GatedFusion."""
    p = np.asarray(present, dtype=bool)
    h = np.stack(
        [
            _np(x) @ _np(proj.weight).T + _np(proj.bias)
            for x, proj in zip(xs, module.projections, strict=True)
        ],
        axis=1,
    )
    h[~p] = 0.0
    z = np.concatenate([h.reshape(len(p), -1), p.astype(np.float64)], axis=1)
    g = 1.0 / (1.0 + np.exp(-(z @ _np(module.gate.weight).T + _np(module.gate.bias))))
    g[~p] = 0.0
    total = g.sum(axis=1, keepdims=True)
    a = np.divide(g, total, out=np.zeros_like(g), where=total > 0)
    return (a[:, :, None] * h).sum(axis=1), a


def attention_reference(module: AttentionFusion, xs, present):
    """Hand-written numpy AttentionFusion (multi-head attention pooling)."""
    p = np.asarray(present, dtype=bool)
    n, m, d, heads = len(p), len(xs), module.output_dim, module.num_heads
    width = d // heads
    t = np.stack(
        [
            _np(x) @ _np(proj.weight).T + _np(proj.bias)
            for x, proj in zip(xs, module.projections, strict=True)
        ],
        axis=1,
    )
    t = t + _np(module.modality_embedding)[None]
    t[~p] = 0.0
    keys = t @ _np(module.key.weight).T
    q = _np(module.query)
    out = np.zeros((n, d))
    weights = np.zeros((n, m))
    for i in range(n):
        for hd in range(heads):
            sl = slice(hd * width, (hd + 1) * width)
            logits = keys[i, :, sl] @ q[sl] / np.sqrt(width)
            alpha = np.zeros(m)
            if p[i].any():
                e = np.exp(logits[p[i]] - logits[p[i]].max())
                alpha[p[i]] = e / e.sum()
            out[i, sl] = alpha @ t[i, :, sl]
            weights[i] += alpha / heads
    return out, weights


REFERENCES = {"gated": gated_reference, "attention": attention_reference}


@pytest.mark.parametrize("kind", ["gated", "attention"])
def test_matches_numpy_reference(kind):
    module = _build(kind)
    xs = _inputs(9)
    present = torch.tensor(
        [
            [1, 1, 1],
            [1, 0, 0],
            [0, 1, 0],
            [0, 0, 1],
            [1, 1, 0],
            [0, 1, 1],
            [1, 0, 1],
            [0, 0, 0],
            [1, 1, 1],
        ],
        dtype=torch.bool,
    )
    expected, expected_w = REFERENCES[kind](module, xs, present.numpy())
    np.testing.assert_allclose(_np(module(xs, present)), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(module.fusion_weights(xs, present)), expected_w, atol=1e-12)
    # without a mask every modality is present
    full, _ = REFERENCES[kind](module, xs, np.ones((9, 3), bool))
    np.testing.assert_allclose(_np(module(xs)), full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["gated", "attention"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_output_depends_on_present_modalities_only(kind, data):
    module = _build(kind)
    present = data.draw(presence_masks(n_modalities=3))
    n = present.shape[0]
    seed = data.draw(st.integers(0, 2**16))
    xs = _inputs(n, seed)
    mask = torch.from_numpy(present)
    out = module(xs, mask)
    # absent rows replaced by anything, NaN and inf included: nothing changes
    junk = [
        torch.where(mask[:, m, None], x, torch.full_like(x, v))
        for m, (x, v) in enumerate(zip(xs, (np.nan, np.inf, -1e6), strict=True))
    ]
    torch.testing.assert_close(module(junk, mask), out, rtol=0, atol=0)
    # an item's output does not depend on the other items of the batch
    for i in range(n):
        alone = module([x[i : i + 1] for x in xs], mask[i : i + 1])
        torch.testing.assert_close(alone[0], out[i], rtol=1e-12, atol=1e-12)
    weights = module.fusion_weights(xs, mask)
    assert torch.all(weights[~mask] == 0)
    sums = weights.sum(dim=1)
    torch.testing.assert_close(sums[mask.any(1)], torch.ones_like(sums[mask.any(1)]))
    assert torch.all(out[~mask.any(1)] == 0)  # an item without modalities: zero vector


def test_gated_lone_modality_is_its_projection():
    module = _build("gated")
    xs = _inputs(3)
    present = torch.eye(3, dtype=torch.bool)
    out = module(xs, present)
    for m, proj in enumerate(module.projections):
        torch.testing.assert_close(out[m], proj(xs[m][m]))


def test_dict_inputs_follow_named_order():
    module = GatedFusion({"audio": 2, "video": 3}, 4).double().eval()
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    v = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(module({"video": v, "audio": a}), module([a, v]))
    with pytest.raises(DataValidationError, match="lacks modalities"):
        module({"audio": a})


@pytest.mark.parametrize("kind", ["gated", "attention"])
def test_gradients_flow_and_skip_absent_inputs(kind):
    module = _build(kind).train()
    xs = [x.clone().requires_grad_(True) for x in _inputs(4)]
    present = torch.tensor([[1, 0, 1]] * 4, dtype=torch.bool)
    module(xs, present).sum().backward()
    assert xs[0].grad.abs().sum() > 0 and xs[2].grad.abs().sum() > 0
    assert torch.all(xs[1].grad == 0)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


def test_bad_arguments():
    with pytest.raises(ConfigurationError, match="input_dims"):
        GatedFusion([3, 0], 4)
    with pytest.raises(ConfigurationError, match="output_dim"):
        GatedFusion([3], 0)
    with pytest.raises(ConfigurationError, match="modality_dropout"):
        GatedFusion([3], 4, modality_dropout=1.0)
    with pytest.raises(ConfigurationError, match="num_heads"):
        AttentionFusion([3], 4, num_heads=3)
    module = GatedFusion([3, 5], 4)
    with pytest.raises(DataValidationError, match="2 tensors"):
        module([torch.zeros(2, 3)])
    with pytest.raises(DataValidationError, match=r"inputs\[1\] must be a tensor of shape"):
        module([torch.zeros(2, 3), torch.zeros(2, 4)])
    with pytest.raises(DataValidationError, match="rows"):
        module([torch.zeros(2, 3), torch.zeros(3, 5)])
    with pytest.raises(DataValidationError, match="present must be a bool tensor"):
        module([torch.zeros(2, 3), torch.zeros(2, 5)], torch.ones(2, 2))
    with pytest.raises(DataValidationError, match="list of tensors"):
        module({"a": torch.zeros(2, 3)})


# ---------------------------------------------------------------------- modality dropout
def test_modality_dropout_statistics():
    n, p = 40_000, 0.3
    gen = torch.Generator().manual_seed(0)
    present = torch.ones(n, 3, dtype=torch.bool)
    present[: n // 2, 2] = False  # half the items have 2 modalities, half 3
    out = modality_dropout(present, p, gen)
    assert not (out & ~present).any()  # never adds a modality
    assert out.any(dim=1).all()  # never drops all of an item's
    for k, rows in ((2, slice(0, n // 2)), (3, slice(n // 2, n))):
        kept = out[rows][:, :k].double()
        expected = p - p**k / k  # dropped with p; all k drawn: one is restored
        rate = 1 - kept.mean().item()
        sigma = np.sqrt(expected * (1 - expected) / kept.numel())
        assert abs(rate - expected) < 5 * sigma, (k, rate, expected)
        # the restored modality is uniform over the item's modalities
        lone = kept.sum(dim=1) == 1
        share = kept[lone].mean(dim=0).numpy()
        np.testing.assert_allclose(share, np.full(k, 1 / k), atol=0.03)
    single = torch.tensor([[True, False, False]] * 100)
    assert torch.equal(modality_dropout(single, 0.9, gen), single)


def test_modality_dropout_reproducible_and_bounds():
    present = torch.rand(50, 4, generator=torch.Generator().manual_seed(3)) < 0.7
    a = modality_dropout(present, 0.5, torch.Generator().manual_seed(1))
    b = modality_dropout(present, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(modality_dropout(present, 0.0), present)
    everything = modality_dropout(present, 1.0, torch.Generator().manual_seed(2))
    assert torch.equal(everything.sum(dim=1), present.any(dim=1).long())
    with pytest.raises(ConfigurationError, match="p must be a probability"):
        modality_dropout(present, 1.5)
    with pytest.raises(DataValidationError, match="present must be a bool tensor"):
        modality_dropout(present.float(), 0.1)


@pytest.mark.parametrize("kind", ["gated", "attention"])
def test_fusion_dropout_only_in_training(kind):
    module = _build(kind, modality_dropout=0.5)
    xs = _inputs(200)
    reference = _build(kind)  # same weights, no dropout
    torch.testing.assert_close(module(xs), reference(xs))  # eval: no dropout
    module.train()
    gen = torch.Generator().manual_seed(0)
    dropped = module(xs, None, gen)
    changed = (dropped - reference(xs)).abs().sum(dim=1) > 1e-9
    assert 0.2 < changed.double().mean().item() < 0.95
    # each training row equals the eval output on the dropout mask that was drawn
    mask = modality_dropout(
        torch.ones(200, 3, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(dropped, reference(xs, mask))
