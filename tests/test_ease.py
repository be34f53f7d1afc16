"""EASE against its closed form in float64 numpy, and its guards."""

from __future__ import annotations

import importlib
import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from avrec.exceptions import ConfigurationError
from avrec.recommenders import EASE
from avrec.recommenders.cf import _ease


def random_interactions(n_users=80, n_items=30, density=0.15, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < density).astype(np.float64)
    return X * rng.integers(1, 4, size=X.shape)


def closed_form(X: np.ndarray, l2: float) -> np.ndarray:
    """Steck (2019), eq. 8: B = I - P diagMat(1 / diag(P)), P = (X^T X + l2 I)^-1."""
    P = np.linalg.inv(X.T @ X + l2 * np.eye(X.shape[1]))
    return np.eye(X.shape[1]) - P / np.diag(P)[None, :]


@pytest.mark.parametrize(("dtype", "rtol"), [("float32", 2e-3), ("float64", 1e-10)])
def test_weights_equal_closed_form(dtype, rtol):
    X = random_interactions()
    model = EASE(l2=5.0, dtype=dtype).fit(X)
    B = closed_form(X, 5.0)
    assert model.weights_.dtype == np.dtype(dtype)
    np.testing.assert_allclose(model.weights_, B, rtol=rtol, atol=rtol * np.abs(B).max())
    assert np.all(np.diag(model.weights_) == 0)


def test_scores_are_history_times_weights():
    X = random_interactions(seed=1)
    model = EASE(l2=2.0, dtype="float64").fit(X)
    np.testing.assert_allclose(model.score_items(), X @ model.weights_, rtol=1e-5, atol=1e-6)
    new = random_interactions(n_users=4, seed=2)
    np.testing.assert_allclose(
        model.score_items(X=sp.csr_matrix(new)), new @ model.weights_, rtol=1e-5, atol=1e-6
    )


def test_float32_and_float64_rank_identically():
    X = random_interactions(n_users=100, n_items=40, seed=3)
    idx32, _ = EASE(l2=10.0).fit(X).recommend(k=10)
    idx64, _ = EASE(l2=10.0, dtype="float64").fit(X).recommend(k=10)
    np.testing.assert_array_equal(idx32, idx64)


def test_memory_guard(monkeypatch):
    monkeypatch.setattr(_ease, "available_memory", lambda: 1024)
    model = EASE()
    with pytest.raises(ConfigurationError, match=r"GiB.*ItemKNN"):
        model.fit(random_interactions())
    assert not hasattr(model, "weights_")
    monkeypatch.setattr(_ease, "available_memory", lambda: None)  # unknown: no guard
    assert EASE().fit(random_interactions()).weights_.shape == (30, 30)


def test_memory_guard_message_states_sizes(monkeypatch):
    monkeypatch.setattr(_ease, "available_memory", lambda: 2**30)
    with pytest.raises(ConfigurationError, match=r"20000 items needs about 4\.47 GiB .* 1\.00 GiB"):
        _ease._check_memory(20_000, 4, torch.device("cpu"))


def _no_psutil(monkeypatch):
    real = importlib.import_module

    def fake(name, *args):
        if name == "psutil":
            raise ImportError("no psutil here")
        return real(name, *args)

    monkeypatch.setattr(_ease.importlib, "import_module", fake)


def test_available_memory_reads_psutil_first(monkeypatch):
    psutil = pytest.importorskip("psutil")

    class Memory:
        available = 123_456_789

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory())
    assert _ease.available_memory() == 123_456_789


def test_available_memory_falls_back_to_meminfo_then_sysconf(monkeypatch):
    _no_psutil(monkeypatch)
    meminfo = "MemTotal:       8000000 kB\nMemFree:         100 kB\nMemAvailable:    2048 kB\n"
    opened = []

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        return io.StringIO(meminfo)

    monkeypatch.setattr(_ease, "open", fake_open, raising=False)
    assert _ease.available_memory() == 2048 * 1024  # kB, not MemFree or MemTotal
    assert opened == ["/proc/meminfo"]

    def no_meminfo(path, *args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(_ease, "open", no_meminfo, raising=False)
    pages = {"SC_AVPHYS_PAGES": 10, "SC_PHYS_PAGES": 99, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(_ease.os, "sysconf", lambda name: pages[name])
    assert _ease.available_memory() == 10 * 4096  # available pages before physical ones

    def physical_only(name):
        if name == "SC_AVPHYS_PAGES":
            raise ValueError(name)
        return pages[name]

    monkeypatch.setattr(_ease.os, "sysconf", physical_only)
    assert _ease.available_memory() == 99 * 4096

    def nothing(name):
        raise ValueError(name)

    monkeypatch.setattr(_ease.os, "sysconf", nothing)
    assert _ease.available_memory() is None


def test_singular_gram_at_low_precision_is_reported():
    X = np.zeros((4, 3))
    X[:, :2] = 1000.0  # two identical columns: X^T X = 4e6 * [[1, 1], [1, 1]] is singular
    X[0, 2] = 1.0
    with pytest.raises(ConfigurationError, match="positive definite"):
        EASE(l2=1e-6).fit(X)


@pytest.mark.parametrize(
    "params",
    [
        {"l2": 0.0},
        {"l2": -1.0},
        {"l2": float("nan")},
        {"l2": float("inf")},
        {"l2": True},
        {"l2": "500"},
        {"dtype": "float16"},
        {"device": "not-a-device"},
        {"device": 0},
    ],
)
def test_invalid_hyperparameters(params):
    with pytest.raises(ConfigurationError):
        EASE(**params).fit(random_interactions())


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="CUDA"):
        EASE(device="cuda").fit(random_interactions())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_solve_matches_cpu():
    X = random_interactions()
    cpu = EASE(l2=5.0, dtype="float64").fit(X).weights_
    gpu = EASE(l2=5.0, dtype="float64", device="cuda").fit(X).weights_
    assert isinstance(gpu, np.ndarray)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-8, atol=1e-10)
