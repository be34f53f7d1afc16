"""Package-level guarantees: cheap import, public names, error tree, utilities."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import avrec
from avrec import exceptions
from avrec.exceptions import (
    AvrecError,
    ConfigurationError,
    DataValidationError,
    NotFittedError,
    PersistenceError,
    UnknownIdError,
)
from avrec.utils import (
    atomic_directory,
    atomic_write,
    check_positive_int,
    check_random_state,
    load_arrays,
    progress,
    save_arrays,
)


def test_import_avrec_is_lazy():
    code = (
        "import sys, avrec; "
        "heavy = [m for m in ('torch', 'av', 'torchaudio', 'avrec.data', 'avrec.media') "
        "if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_attribute_loads_subpackage():
    assert avrec.data.Interactions.__name__ == "Interactions"
    with pytest.raises(AttributeError, match="no attribute"):
        avrec.not_a_module  # noqa: B018


def test_version():
    assert isinstance(avrec.__version__, str) and avrec.__version__[0].isdigit()


def _public_modules():
    for info in pkgutil.walk_packages(avrec.__path__, "avrec."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        yield info.name


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_all_lists_exactly_the_public_names(name):
    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        pytest.fail(f"{name} has no __all__")
    assert list(module.__all__) == sorted(module.__all__), f"{name}.__all__ is not sorted"
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.__all__ names missing {public}"
    defined = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("avrec")
    }
    if name != "avrec":
        assert defined <= set(module.__all__), f"{name} exposes {defined - set(module.__all__)}"


@pytest.mark.parametrize("name", sorted(_public_modules()))
def test_public_objects_have_docstrings(name):
    module = importlib.import_module(name)
    assert module.__doc__
    for public in getattr(module, "__all__", []):
        obj = getattr(module, public)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"{name}.{public} has no docstring"


def test_error_tree():
    for err in (DataValidationError, NotFittedError, PersistenceError, ConfigurationError):
        assert issubclass(err, AvrecError)
    assert issubclass(DataValidationError, ValueError)
    assert issubclass(UnknownIdError, KeyError) and issubclass(UnknownIdError, DataValidationError)
    from sklearn.exceptions import NotFittedError as SkNotFitted

    assert issubclass(NotFittedError, SkNotFitted)
    assert str(UnknownIdError("id 'x' unknown")) == "id 'x' unknown"
    for name in exceptions.__all__:
        assert name in exceptions.__doc__, f"{name} missing from the tree drawn in the docstring"


def test_check_random_state():
    gen = np.random.default_rng(1)
    assert check_random_state(gen) is gen
    assert check_random_state(3).integers(100) == check_random_state(3).integers(100)
    for bad in (-1, 1.5, "seed", True):
        with pytest.raises(ConfigurationError, match="random_state"):
            check_random_state(bad)


def test_check_positive_int():
    assert check_positive_int(3, "k") == 3
    with pytest.raises(ConfigurationError, match="factors must be an int >= 1"):
        check_positive_int(0, "factors")
    with pytest.raises(ConfigurationError):
        check_positive_int(True, "factors")


def test_progress_off_returns_iterable_unchanged():
    it = [1, 2]
    assert progress(it, verbose=False) is it


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write(b"new-partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_uses_default_permissions(tmp_path):
    import os

    with atomic_write(tmp_path / "f.txt", "w") as fh:
        fh.write("x")
    (tmp_path / "plain.txt").write_text("x")
    mode = os.stat(tmp_path / "f.txt").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain.txt").st_mode & 0o777


def test_atomic_directory_uses_default_permissions(tmp_path):
    import os

    with atomic_directory(tmp_path / "d"):
        pass
    (tmp_path / "plain").mkdir()
    mode = os.stat(tmp_path / "d").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain").st_mode & 0o777


def test_atomic_directory_keeps_old_dir_on_failure(tmp_path):
    target = tmp_path / "d"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("boom")
    assert (target / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_arrays_round_trip_without_pickle(tmp_path):
    save_arrays(tmp_path / "a.npz", {"x": np.arange(4.0), "s": np.array(["a", "bc"])})
    got = load_arrays(tmp_path / "a.npz")
    assert got["x"].tolist() == [0, 1, 2, 3] and got["s"].tolist() == ["a", "bc"]
    with pytest.raises(PersistenceError, match="dtype object"):
        save_arrays(tmp_path / "b.npz", {"o": np.array([{}], dtype=object)})
    with pytest.raises(PersistenceError, match="not found"):
        load_arrays(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(PersistenceError, match="cannot read"):
        load_arrays(tmp_path / "junk.npz")
