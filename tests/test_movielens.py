"""MovieLens readers: the three published layouts, detection, pandas-free parsing, errors."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from avrec.data import MOVIELENS_URL, Interactions, load_movielens
from avrec.exceptions import DataValidationError

RATINGS = [  # user, movie, rating, timestamp
    (1, 1193, 5.0, 978300760),
    (1, 661, 3.0, 978302109),
    (2, 1193, 4.5, 978298413),
    (3, 3408, 1.0, 978300275),
    (3, 661, 4.0, 978824291),
]


def write(folder, layout):
    """Write RATINGS in one layout under ``folder`` (created); return the file path."""
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "tab":
        path, lines = folder / "u.data", [f"{u}\t{i}\t{int(r)}\t{t}" for u, i, r, t in RATINGS]
    elif layout == "colons":
        path, lines = folder / "ratings.dat", [f"{u}::{i}::{r:g}::{t}" for u, i, r, t in RATINGS]
    else:
        path = folder / "ratings.csv"
        lines = ["userId,movieId,rating,timestamp"] + [f"{u},{i},{r},{t}" for u, i, r, t in RATINGS]
    path.write_text("\n".join(lines) + "\n")
    return path


def expected(layout, min_rating=None):
    u, i, r, t = (list(c) for c in zip(*RATINGS, strict=True))
    if layout == "tab":  # u.data holds integer ratings
        r = [float(int(x)) for x in r]
    return Interactions.from_arrays(u, i, r, t, min_rating=min_rating)


CASES = [("100k", "ml-100k", "tab"), ("1m", "ml-1m", "colons"), ("10m", "ml-10M100K", "colons")]
CASES += [("20m", "ml-20m", "csv"), ("latest", "ml-latest-small", "csv")]


@pytest.mark.parametrize("with_pandas", [True, False])
@pytest.mark.parametrize(("variant", "folder", "layout"), CASES)
def test_each_layout_from_file_folder_and_parent(
    tmp_path, monkeypatch, variant, folder, layout, with_pandas
):
    if not with_pandas:
        monkeypatch.setitem(sys.modules, "pandas", None)
    path = write(tmp_path / folder, layout)
    want = expected(layout)
    for source, var in [
        (path, None),
        (tmp_path / folder, None),
        (str(tmp_path / folder), variant),
        (tmp_path, variant),
    ]:
        X = load_movielens(source, var)
        assert want == X, (source, var)
    assert X.users.ids.tolist() == [1, 2, 3] and X.items.ids.tolist() == [661, 1193, 3408]
    assert X.matrix.dtype == np.float32 and X.timestamps.dtype == np.float64


def test_min_rating_and_binary(tmp_path):
    path = write(tmp_path / "ml-1m", "colons")
    X = load_movielens(path, min_rating=4)
    assert expected("colons", min_rating=4) == X
    assert X.nnz == 3 and X.users.ids.tolist() == [1, 2, 3]
    B = load_movielens(path, min_rating=4, binary=True)
    assert (
        B.matrix.data.tolist() == [1.0, 1.0, 1.0] and B.timestamps.tolist() == X.timestamps.tolist()
    )
    with pytest.raises(DataValidationError, match="min_rating"):
        load_movielens(path, min_rating=6)


def test_layout_of_an_unusual_file_name(tmp_path):
    path = write(tmp_path / "data", "colons").rename(tmp_path / "my_ratings.dat")
    assert load_movielens(path) == expected("colons")  # by suffix
    odd = path.rename(tmp_path / "my_ratings.txt")
    assert load_movielens(odd, "1m") == expected("colons")
    with pytest.raises(DataValidationError, match="pass variant="):
        load_movielens(odd)


def test_missing_data_says_where_to_get_it(tmp_path):
    assert MOVIELENS_URL == "https://grouplens.org/datasets/movielens/"
    with pytest.raises(FileNotFoundError, match=r"grouplens\.org/datasets/movielens") as info:
        load_movielens(tmp_path / "ml-1m")
    assert "ml-1m" in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"no MovieLens ratings file \(u.data\)") as info:
        load_movielens(tmp_path, "100k")
    assert "ml-100k.zip" in str(info.value)
    write(tmp_path / "ml-1m", "colons")
    with pytest.raises(FileNotFoundError, match=re.escape(MOVIELENS_URL)):
        load_movielens(tmp_path, "20m")  # ml-1m is there, ml-20m is not


@pytest.mark.parametrize("with_pandas", [True, False])
@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("u.data", "", "empty"),
        ("u.data", "1\t2\t3\n", "cannot parse it as a MovieLens u.data"),
        ("u.data", "1\tx\t3\t4\n", "cannot parse"),
        ("ratings.dat", "1,2,3,4\n", "cannot parse it as a MovieLens ratings.dat"),
        ("ratings.dat", "1::2::3::4\n5::6::7\n", "(cannot parse|lack a rating)"),
        ("ratings.csv", "user,movie,rating,ts\n1,2,3,4\n", r"\['userId', 'movieId', 'timestamp'\]"),
        ("ratings.csv", "userId,movieId,rating,timestamp\n", "no ratings"),
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n1,2,,4\n",
            "(cannot parse|lack a rating)",
        ),
        ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,-3,4\n", "weights must be non"),
    ],
)
def test_bad_files(tmp_path, monkeypatch, name, text, match, with_pandas):
    if not with_pandas:
        monkeypatch.setitem(sys.modules, "pandas", None)
    (tmp_path / name).write_text(text)
    with pytest.raises(DataValidationError, match=match):
        load_movielens(tmp_path / name)


def test_bad_variant(tmp_path):
    with pytest.raises(DataValidationError, match="variant must be one of"):
        load_movielens(tmp_path, "5m")
