"""One way to turn ``random_state`` into a generator, used by every estimator."""

from __future__ import annotations

import numbers

import numpy as np

from avrec.exceptions import ConfigurationError

__all__ = ["check_random_state", "torch_seed"]


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for ``random_state``.

    Parameters
    ----------
    random_state : None, int or numpy.random.Generator
        ``None`` draws fresh OS entropy, an int seeds a new PCG64 generator,
        a Generator is returned as it is (so its state advances).

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    ConfigurationError
        If ``random_state`` is of another type or a negative int.

    Examples
    --------
    >>> a = check_random_state(0).integers(1000, size=3)
    >>> b = check_random_state(0).integers(1000, size=3)
    >>> bool((a == b).all())
    True
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if int(random_state) < 0:
            raise ConfigurationError(f"random_state must be a non-negative int, got {random_state}")
        return np.random.default_rng(int(random_state))
    raise ConfigurationError(
        "random_state must be None, an int or a numpy.random.Generator, "
        f"got {type(random_state).__name__}"
    )


def torch_seed(rng: np.random.Generator) -> int:
    """Draw a 63-bit seed for torch from ``rng`` so torch randomness derives from it.

    Parameters
    ----------
    rng : numpy.random.Generator

    Returns
    -------
    int
        A seed in ``[0, 2**63)``.

    Examples
    --------
    >>> torch_seed(check_random_state(1)) == torch_seed(check_random_state(1))
    True
    """
    return int(rng.integers(0, 2**63 - 1))
