"""Sources of randomness for differentially private mechanisms.

Every mechanism takes ``random_state``:

* ``None`` (the default), ``"secure"`` or a :class:`SecureRandom` instance draws every
  random bit from :func:`os.urandom` (the operating system's cryptographically secure
  generator). Use it for releases that leave your hands.
* An int or a :class:`numpy.random.Generator` uses numpy's PCG64. It is reproducible,
  which research and tests need, but it is **not** cryptographically secure: an
  adversary who learns or guesses the seed can subtract the noise. Do not use seeded
  generators for production releases.

*Fresh noise per release.* A seeded release never reuses another release's noise:
its generator is seeded by a child :class:`numpy.random.SeedSequence` whose
``spawn_key`` is a digest of the release itself (mechanism, parameters and input
values), with the int as entropy, or 128 bits drawn from the Generator (which
therefore advances). Two releases that differ in anything (epsilon, sensitivity,
one user's data) draw independent noise, so the noise cannot be cancelled between
them; repeating an *identical* release with the same int seed returns the identical
output, which reveals nothing new and keeps seeded runs reproducible.

Both kinds are wrapped in a small internal *source* that derives every distribution
the same documented way from uniform 64-bit words, so the floating-point behaviour
of a mechanism does not depend on which generator drives it.
"""

from __future__ import annotations

import hashlib
import numbers
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.utils import check_random_state

__all__ = ["SecureRandom"]

_TWO_POW_M53 = 2.0**-53


class SecureRandom:
    """A cryptographically secure randomness source backed by :func:`os.urandom`.

    Pass an instance (or the string ``"secure"``) as ``random_state`` to any
    mechanism in :mod:`avrec.privacy`. Results are not reproducible by design.

    Notes
    -----
    Uniform floats are built from 53 (or, for :meth:`uniform_full`, all available)
    random bits of ``os.urandom`` output and transformed by inverse-CDF formulas;
    integer samplers consume exact random bits, so the discrete mechanisms
    (:func:`~avrec.privacy.discrete_laplace`, :func:`~avrec.privacy.discrete_gaussian`)
    are exact. A seeded numpy generator is *not* secure even when its seed comes from
    :mod:`secrets`: its output is predictable from its 128-bit state.

    Every mechanism defaults to this source (``random_state=None``). With an int or a
    Generator instead, each release gets a PCG64 stream of its own, seeded by a child
    :class:`numpy.random.SeedSequence` whose spawn key is a digest of the release
    (mechanism, parameters, input values): releases that differ in anything draw
    independent noise even under one int seed, so their noise cannot be cancelled
    against each other, while an identical release repeats exactly (it reveals
    nothing new) and seeded research stays reproducible.

    Examples
    --------
    >>> words = SecureRandom().words(4)
    >>> words.dtype, words.shape
    (dtype('uint64'), (4,))
    """

    def words(self, n: int) -> np.ndarray:
        """Return ``n`` independent uniform 64-bit words.

        Parameters
        ----------
        n : int
            Number of words.

        Returns
        -------
        ndarray of shape (n,), dtype uint64
        """
        return np.frombuffer(os.urandom(8 * int(n)), dtype="<u8").astype(np.uint64)

    def __repr__(self) -> str:
        return "SecureRandom()"


class _Source:
    """Distributions derived from uniform 64-bit words (shared by both sources)."""

    secure = False

    def words(self, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def bits(self, n: int) -> np.ndarray:
        """``n`` fair random bits as a bool array."""
        raw = self.words((n + 63) // 64).view(np.uint8)
        return np.unpackbits(raw, count=n).astype(bool)

    def uniform_open(self, size: int) -> np.ndarray:
        """Uniform on the grid ``(2j + 1) / 2**53``: 52 random bits, never 0 nor 1."""
        k = self.words(size) >> np.uint64(12)
        return (k.astype(np.float64) * 2.0 + 1.0) * _TWO_POW_M53

    def uniform_full(self, size: int) -> np.ndarray:
        """Uniform on (0, 1) over *all* doubles, each weighted by the gap it covers.

        The exponent is geometric (one random bit per binade) and the 52 mantissa
        bits are uniform, as Mironov's snapping mechanism requires.
        """
        exponent = np.ones(size, dtype=np.int64)
        pending = np.arange(size)
        while pending.size:  # count leading zero bits, 64 at a time
            w = self.words(pending.size)
            hi = (w >> np.uint64(32)).astype(np.float64)
            lo = (w & np.uint64(0xFFFFFFFF)).astype(np.float64)
            # frexp gives the exact bit length of a 32-bit integer held in a double
            zeros = np.where(hi > 0, 32 - np.frexp(hi)[1], 64 - np.frexp(lo)[1])
            zeros = np.where((hi == 0) & (lo == 0), 64, zeros)
            exponent[pending] += zeros
            pending = pending[zeros == 64]
        exponent = np.minimum(exponent, 1022)  # reached with probability 2**-1021
        mantissa = (self.words(size) >> np.uint64(12)).astype(np.float64) * 2.0**-52
        return np.ldexp(1.0 + mantissa, -exponent)

    def randbelow(self, high: int, size: int) -> np.ndarray:
        """Exact uniform integers in ``[0, high)``; int64 array, or object for huge ``high``."""
        high = int(high)
        if high < 1:
            raise ValueError("high must be >= 1")
        if high == 1:
            return np.zeros(size, dtype=np.int64)
        nbits = (high - 1).bit_length()
        small = high <= 2**62
        out = np.empty(size, dtype=np.int64 if small else object)
        nwords = (nbits + 63) // 64
        pending = np.arange(size)
        while pending.size:
            if small:  # the top nbits of one word
                w = self.words(pending.size)
                cand = (w >> np.uint64(64 - nbits)).astype(np.int64)
            else:
                w = self.words(pending.size * nwords).reshape(pending.size, nwords)
                cand = np.zeros(pending.size, dtype=object)
                for j in range(nwords):
                    cand = cand * (1 << 64) + w[:, j].astype(object)
                cand = cand >> (64 * nwords - nbits)
            ok = np.asarray(cand < high, dtype=bool)
            out[pending[ok]] = cand[ok]
            pending = pending[~ok]
        return out

    def exponential(self, size: int) -> np.ndarray:
        """Standard exponential by inversion, ``-log(U)`` with ``U`` from :meth:`uniform_open`."""
        return -np.log(self.uniform_open(size))

    def laplace(self, size: int) -> np.ndarray:
        """Standard Laplace: a random sign times a standard exponential."""
        sign = np.where(self.bits(size), 1.0, -1.0)
        return sign * self.exponential(size)

    def gumbel(self, size: int) -> np.ndarray:
        """Standard Gumbel by inversion, ``-log(-log(U))``."""
        return -np.log(-np.log(self.uniform_open(size)))

    def normal(self, size: int) -> np.ndarray:
        """Standard normal by the Box-Muller transform of two open uniforms."""
        half = (size + 1) // 2
        u1, u2 = self.uniform_open(half), self.uniform_open(half)
        radius = np.sqrt(-2.0 * np.log(u1))
        z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])
        return z[:size]

    def uniform_below(self, p: np.ndarray) -> np.ndarray:
        """Bernoulli(p) for float probabilities (``U < p`` with a 53-bit uniform)."""
        return self.uniform_open(np.size(p)).reshape(np.shape(p)) < p


class _SecureSource(_Source):
    secure = True

    def __init__(self, random: SecureRandom) -> None:
        self._random = random

    def words(self, n: int) -> np.ndarray:
        return self._random.words(n)


class _NumpySource(_Source):
    """A PCG64 source; ``rng`` may be a callable that makes the generator on first use.

    Lazy creation keeps a refused release (an accountant that says no) from
    consuming anything of the caller's Generator.
    """

    def __init__(self, rng: Any) -> None:
        self._make = rng if callable(rng) else None
        self._gen = None if callable(rng) else rng

    @property
    def _rng(self) -> np.random.Generator:
        if self._gen is None:
            self._gen = self._make()  # type: ignore[misc]
        return self._gen

    def words(self, n: int) -> np.ndarray:
        return self._rng.integers(0, 2**64 - 1, size=int(n), dtype=np.uint64, endpoint=True)

    def randbelow(self, high: int, size: int) -> np.ndarray:
        if int(high) <= 2**62:
            return self._rng.integers(0, int(high), size=size, dtype=np.int64)
        return super().randbelow(high, size)


def _digest_update(h: Any, part: Any) -> None:
    if sp.issparse(part):
        csr = sp.csr_matrix(part)
        for piece in (csr.shape, csr.indptr, csr.indices, csr.data):
            _digest_update(h, piece)
        return
    if isinstance(part, np.ndarray):
        h.update(f"{part.dtype.str}{part.shape}".encode())
        h.update(np.ascontiguousarray(part).view(np.uint8).ravel().tobytes())
        return
    if isinstance(part, (list, tuple)):
        h.update(b"(")
        for item in part:
            _digest_update(h, item)
        h.update(b")")
        return
    h.update(repr(part).encode())
    h.update(b"\x00")


def release_digest(*parts: Any) -> tuple[int, ...]:
    """A 256-bit digest (eight 32-bit words) of a release's mechanism, parameters and inputs.

    Arrays and sparse matrices are hashed by dtype, shape and bytes, anything else by
    its ``repr``; the order of ``parts`` matters.
    """
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        _digest_update(h, part)
    return tuple(int(w) for w in np.frombuffer(h.digest(), dtype="<u4"))


def release_seed_sequence(random_state: Any, *context: Any) -> np.random.SeedSequence:
    """The :class:`numpy.random.SeedSequence` of one release (see the module notes).

    ``None`` (and ``"secure"``/:class:`SecureRandom`) gives 128 bits of OS entropy;
    an int is the entropy and a Generator gives 128 bits of entropy (advancing it);
    the digest of ``context`` is the spawn key, so every different release gets its
    own independent stream.
    """
    if isinstance(random_state, np.random.Generator):
        entropy: Any = [int(w) for w in random_state.integers(0, 2**32, size=4, dtype=np.uint64)]
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(random_state)  # refuses a negative seed
        entropy = int(random_state)
    elif random_state is None or random_state == "secure" or isinstance(random_state, SecureRandom):
        return np.random.SeedSequence()
    else:
        check_random_state(random_state)  # raises with the standard message
        raise ConfigurationError(f"random_state cannot seed a release: {random_state!r}")
    return np.random.SeedSequence(entropy, spawn_key=release_digest(*context))


def release_generator(random_state: Any, *context: Any) -> np.random.Generator:
    """A PCG64 generator for one release, seeded by :func:`release_seed_sequence`.

    Used by the DP models, whose training draws too much noise for the secure
    source: with ``random_state=None`` it is seeded with 128 bits of OS entropy.

    Examples
    --------
    >>> a = release_generator(7, "gaussian", 0.5).standard_normal(3)
    >>> b = release_generator(7, "gaussian", 2.0).standard_normal(3)
    >>> bool((a == b).any()), bool((a == release_generator(7, "gaussian", 0.5)
    ...                              .standard_normal(3)).all())
    (False, True)
    """
    return np.random.Generator(np.random.PCG64(release_seed_sequence(random_state, *context)))


def _as_source(random_state: Any, *context: Any) -> _Source:
    """Turn ``random_state`` into the source of one release described by ``context``.

    None, ``"secure"`` and :class:`SecureRandom` give the secure source; an int or a
    Generator gives a PCG64 stream of its own for this release
    (:func:`release_generator`).
    """
    if isinstance(random_state, _Source):
        return random_state
    if random_state is None:
        return _SecureSource(SecureRandom())
    if isinstance(random_state, SecureRandom):
        return _SecureSource(random_state)
    if isinstance(random_state, str):
        if random_state == "secure":
            return _SecureSource(SecureRandom())
        raise ConfigurationError(
            f"random_state must be None, an int, a numpy Generator, 'secure' or a "
            f"SecureRandom, got {random_state!r}"
        )
    check_random_state(random_state)  # validates type and sign with the standard message
    return _NumpySource(lambda: release_generator(random_state, *context))
