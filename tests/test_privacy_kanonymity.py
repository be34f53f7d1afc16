"""k-anonymity and l-diversity checks, and Mondrian generalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.privacy import check_k_anonymity, check_l_diversity, mondrian

pd = pytest.importorskip("pandas")


def frame(**columns):
    return pd.DataFrame(columns)


# ------------------------------------------------------------------ checks by hand
def test_check_k_anonymity_known_table():
    users = frame(
        age=[23, 23, 35, 35, 35, 41],
        zip=["100", "100", "200", "200", "300", "300"],
        plays=[5, 1, 7, 2, 9, 4],
    )
    report = check_k_anonymity(users, ["age", "zip"], k=2)
    assert report.k == 1 and not report.ok and not report
    assert report.n_classes == 4 and report.n_rows_at_risk == 2
    assert report.violations.to_dict("records") == [
        {"age": 35, "zip": "300", "count": 1},
        {"age": 41, "zip": "300", "count": 1},
    ]
    assert check_k_anonymity(users, ["zip"], k=2).ok
    assert check_k_anonymity(users, "zip").k == 2
    unrequested = check_k_anonymity(users, ["age", "zip"])
    assert unrequested.ok and unrequested.requested_k is None and unrequested.violations.empty
    assert check_k_anonymity({"a": [1, 1, 1]}, ["a"], k=3).ok  # a mapping works too
    assert check_k_anonymity(frame(a=np.zeros(0)), ["a"]).k == 0


def test_check_errors():
    users = frame(age=[1.0, np.nan], zip=["a", "b"])
    with pytest.raises(DataValidationError, match="'age' has missing values"):
        check_k_anonymity(users, ["age"])
    with pytest.raises(DataValidationError, match=r"\['gender'\] are not columns"):
        check_k_anonymity(users, ["zip", "gender"])
    with pytest.raises(ConfigurationError, match="at least one"):
        check_k_anonymity(users, [])
    with pytest.raises(ConfigurationError, match="repeated"):
        check_k_anonymity(users, ["zip", "zip"])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError, match="k must be"):
            check_k_anonymity(users, ["zip"], k=bad)


def test_l_diversity_known_table():
    users = frame(
        age=["20s"] * 4 + ["30s"] * 3,
        genre=["jazz", "jazz", "rock", "pop", "jazz", "jazz", "jazz"],
    )
    distinct = check_l_diversity(users, ["age"], "genre", 2)
    assert distinct.l == 1 and not distinct.ok  # the 30s all like jazz: homogeneity
    assert distinct.violations.to_dict("records") == [{"age": "30s", "count": 3, "l": 1.0}]
    only_20s = users[users.age == "20s"]
    assert check_l_diversity(only_20s, ["age"], "genre", 3).ok
    entropy = check_l_diversity(only_20s, ["age"], "genre", 3, kind="entropy")
    # shares 1/2, 1/4, 1/4: entropy 1.5 log 2, so l = 2 ** 1.5
    assert math.isclose(entropy.l, 2**1.5) and not entropy.ok and entropy.kind == "entropy"
    assert check_l_diversity(only_20s, ["age"], "genre", 2.8, kind="entropy").ok
    uniform = frame(q=[0] * 4, s=list("abcd"))
    assert check_l_diversity(uniform, "q", "s", 4, kind="entropy").ok  # exactly log(4)
    with pytest.raises(ConfigurationError, match="also a quasi-identifier"):
        check_l_diversity(users, ["age", "genre"], "genre", 2)
    with pytest.raises(DataValidationError, match="sensitive"):
        check_l_diversity(users, ["age"], "nope", 2)
    for bad in (0.5, float("nan"), "x"):
        with pytest.raises(ConfigurationError, match="l must be"):
            check_l_diversity(users, ["age"], "genre", bad)
    with pytest.raises(ConfigurationError, match="kind"):
        check_l_diversity(users, ["age"], "genre", 2, kind="recursive")


# ------------------------------------------------------------------ Mondrian by hand
def test_mondrian_known_example():
    users = frame(age=[21, 24, 33, 38, 45, 52, 57, 60], gender=list("ffmmfmmm"), plays=range(8))
    result = mondrian(users, ["age", "gender"], k=2)
    assert (
        result.table["age"].tolist()
        == ["[21, 24]"] * 2 + ["[33, 38]"] * 2 + ["[45, 52]"] * 2 + ["[57, 60]"] * 2
    )
    assert result.table["gender"].tolist() == ["f", "f", "m", "m", "{f, m}", "{f, m}", "m", "m"]
    for c in range(4):  # other columns untouched, each row with its class
        assert sorted(result.table["plays"][result.partition == c]) == [2 * c, 2 * c + 1]
    assert result.partition.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert result.n_classes == 4 and result.k == 2
    assert result.boxes[2] == {"age": (45, 52), "gender": frozenset({"f", "m"})}
    # NCP by hand: age widths 3, 5, 7, 3 over a range of 39; gender 1 set of 2 in class 2
    want = (2 * (3 + 5 + 7 + 3) / 39 + 2 * 1) / (8 * 2)
    assert math.isclose(result.information_loss, want)


def test_mondrian_k_equal_to_the_table_generalises_everything():
    users = frame(age=[30, 20, 40], city=["b", "a", "c"])
    result = mondrian(users, ["age", "city"], k=3)
    assert result.table["age"].tolist() == ["[20, 40]"] * 3
    assert result.table["city"].tolist() == ["{a, b, c}"] * 3
    assert result.information_loss == 1.0


def test_mondrian_ties_stay_together_and_floats_format():
    users = frame(x=[1.5, 1.5, 1.5, 2.0, 3.25, 3.25])
    result = mondrian(users, ["x"], k=2)
    assert result.table["x"].tolist() == ["1.5"] * 3 + ["[2, 3.25]"] * 3
    assert check_k_anonymity(result.table, ["x"], k=2).ok


def test_mondrian_hierarchy():
    zips = {"10001": "100**", "10002": "100**", "10101": "101**", "10102": "101**"}
    zips.update({"100**": "10***", "101**": "10***"})
    users = frame(zip=["10001", "10002", "10001", "10101", "10102", "10102"])
    result = mondrian(users, ["zip"], k=3, hierarchies={"zip": zips})
    assert result.table["zip"].tolist() == ["100**"] * 3 + ["101**"] * 3
    assert result.boxes[0]["zip"] == frozenset({"10001", "10002"})
    assert math.isclose(result.information_loss, 1 / 3)  # 2 of 4 leaves: (2-1)/(4-1)
    whole = mondrian(users, ["zip"], k=6, hierarchies={"zip": zips})
    assert set(whole.table["zip"]) == {"10***"} and whole.information_loss == 1.0
    with pytest.raises(DataValidationError, match="not leaves"):
        mondrian(frame(zip=["99999"]), ["zip"], k=1, hierarchies={"zip": zips})
    with pytest.raises(ConfigurationError, match="one root"):
        mondrian(users, ["zip"], k=1, hierarchies={"zip": {"10001": "a", "10002": "b"}})
    with pytest.raises(ConfigurationError, match="mapping"):
        mondrian(users, ["zip"], k=1, hierarchies={"zip": {}})


def test_mondrian_categorical_override_and_mixed_types():
    users = frame(zip=[10001, 10002, 10003, 10004], other=[1, "a", 2.5, "b"])
    result = mondrian(users, ["zip"], k=2, categorical=["zip"])
    assert result.table["zip"].tolist() == ["{10001, 10002}"] * 2 + ["{10003, 10004}"] * 2
    assert check_k_anonymity(mondrian(users, ["other"], k=2).table, ["other"], k=2).ok
    with pytest.raises(ConfigurationError, match="not a QI"):
        mondrian(users, ["zip"], k=2, categorical=["other"])


def test_mondrian_errors():
    users = frame(age=[20, 30, np.nan], zip=["a", "b", "c"])
    with pytest.raises(DataValidationError, match="'age' has missing values"):
        mondrian(users, ["age", "zip"], k=1)
    with pytest.raises(DataValidationError, match="k=4 is larger than the table"):
        mondrian(users, ["zip"], k=4)
    with pytest.raises(DataValidationError, match="not columns"):
        mondrian(users, ["zip", "gender"], k=2)
    with pytest.raises(ConfigurationError, match="k must be"):
        mondrian(users, ["zip"], k=0)
    with pytest.raises(DataValidationError, match="infinite"):
        mondrian(frame(x=[1.0, np.inf]), ["x"], k=1)


# ------------------------------------------------------------------ Mondrian properties
@st.composite
def tables(draw):
    n = draw(st.integers(1, 40))
    n_numeric = draw(st.integers(0, 2))
    n_categorical = draw(st.integers(0 if n_numeric else 1, 2))
    columns = {}
    for j in range(n_numeric):
        high = draw(st.sampled_from([1, 5, 100]))
        columns[f"num{j}"] = draw(st.lists(st.integers(-high, high), min_size=n, max_size=n))
    for j in range(n_categorical):
        alphabet = draw(st.sampled_from(["ab", "abcde", "abcdefghij"]))
        columns[f"cat{j}"] = draw(st.lists(st.sampled_from(list(alphabet)), min_size=n, max_size=n))
    columns["secret"] = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    k = draw(st.integers(1, n))
    return pd.DataFrame(columns), [c for c in columns if c != "secret"], k


def full_generalisation_loss(table, qis):
    return sum(table[q].nunique() > 1 for q in qis) / len(qis)


def has_allowable_cut(table, qis, k):
    for q in qis:
        counts = table[q].value_counts().sort_index().to_numpy()
        left = np.cumsum(counts)[:-1]
        if np.any((left >= k) & (len(table) - left >= k)):
            return True
    return False


@settings(max_examples=60, deadline=None)
@given(case=tables())
def test_mondrian_output_is_k_anonymous_and_covers_every_row(case):
    table, qis, k = case
    result = mondrian(table, qis, k, reorder=False)  # rows in input order, to check them
    out = result.table
    # k-anonymous, and the partition agrees with the generalised values
    assert check_k_anonymity(out, qis, k=k).ok
    assert np.bincount(result.partition).min() >= k
    assert out.groupby(qis).ngroups == result.n_classes
    assert out["secret"].tolist() == table["secret"].tolist()
    assert out.index.equals(table.index)
    # every original row lies within its class's generalised ranges / sets
    for row, c in enumerate(result.partition):
        for q in qis:
            covered = result.boxes[c][q]
            value = table[q].iloc[row]
            if isinstance(covered, tuple):
                assert covered[0] <= value <= covered[1]
            else:
                assert value in covered
    # information loss never exceeds the trivial full generalisation, and is below it
    # whenever some cut of the whole table keeps k rows on each side
    trivial = full_generalisation_loss(table, qis)
    assert 0.0 <= result.information_loss <= trivial + 1e-12
    if has_allowable_cut(table, qis, k):
        assert result.information_loss < trivial


@settings(max_examples=30, deadline=None)
@given(case=tables())
def test_mondrian_classes_do_not_overlap_and_are_minimal(case):
    table, qis, k = case
    result = mondrian(table, qis, k, reorder=False)
    # strict partitioning: the boxes of two classes never both contain a row's values
    for c, box in enumerate(result.boxes):
        inside = np.ones(len(table), dtype=bool)
        for q in qis:
            values = table[q].to_numpy()
            if isinstance(box[q], tuple):
                inside &= (values >= box[q][0]) & (values <= box[q][1])
            else:
                inside &= np.isin(values, list(box[q]))
        assert np.array_equal(np.flatnonzero(inside), np.flatnonzero(result.partition == c))
    # no class could be cut further (classes smaller than 2k cannot be)
    sizes = np.bincount(result.partition)
    for c in np.flatnonzero(sizes >= 2 * k):
        assert not has_allowable_cut(table[result.partition == c], qis, k)


GENRES = {"jazz": "music", "rock": "music", "pop": "music", "news": "talk", "comedy": "talk"}
GENRES.update({"music": "*", "talk": "*"})


@settings(max_examples=30, deadline=None)
@given(
    genres=st.lists(
        st.sampled_from(["jazz", "rock", "pop", "news", "comedy"]), min_size=1, max_size=30
    ),
    data=st.data(),
)
def test_mondrian_with_a_hierarchy_is_k_anonymous(genres, data):
    table = frame(
        genre=genres,
        age=data.draw(st.lists(st.integers(10, 70), min_size=len(genres), max_size=len(genres))),
    )
    k = data.draw(st.integers(1, len(genres)))
    result = mondrian(table, ["genre", "age"], k, hierarchies={"genre": GENRES}, reorder=False)
    assert check_k_anonymity(result.table, ["genre", "age"], k=k).ok
    assert set(result.table["genre"]) <= set(GENRES) | set(GENRES.values())
    for row, c in enumerate(result.partition):
        assert genres[row] in result.boxes[c]["genre"]
    assert 0 <= result.information_loss <= 1


# ------------------------------------------------------------------ Mondrian row order
def test_mondrian_release_hides_the_input_order_and_index():
    rng = np.random.default_rng(0)
    n = 200
    users = frame(age=np.repeat(np.arange(20, 30), 20), row=np.arange(n))
    users.index = [f"user{i:03d}" for i in range(n)]  # an index of ids: itself a leak
    result = mondrian(users, ["age"], k=20, random_state=1)
    out = result.table
    assert out.index.equals(pd.RangeIndex(n))
    assert np.all(np.diff(result.partition) >= 0)  # grouped by class
    assert result.n_classes == 10
    # same rows and classes as the order-keeping release
    kept = mondrian(users, ["age"], k=20, reorder=False)
    assert kept.table.index.equals(users.index) and kept.table["row"].tolist() == list(range(n))
    assert sorted(map(tuple, out.to_numpy().tolist())) == sorted(
        map(tuple, kept.table.to_numpy().tolist())
    )
    assert math.isclose(result.information_loss, kept.information_loss)
    # within each class the input order is gone: rank correlation with it is near 0
    taus = []
    for c in range(result.n_classes):
        rows = out["row"].to_numpy()[result.partition == c]
        pairs = np.sign(rows[None, :] - rows[:, None]) * np.sign(
            np.arange(rows.size)[None, :] - np.arange(rows.size)[:, None]
        )
        taus.append(pairs.sum() / (rows.size * (rows.size - 1)))
    assert abs(np.mean(taus)) < 0.15 and max(np.abs(taus)) < 0.6
    # the class order follows the boxes, not the input: permuting the input changes nothing
    shuffled = users.iloc[rng.permutation(n)]
    again = mondrian(shuffled, ["age"], k=20, random_state=1)
    assert again.table["age"].tolist() == out["age"].tolist()
    assert [b["age"] for b in again.boxes] == [(a, a) for a in range(20, 30)]
    # reproducible for a seed, different for another
    assert mondrian(users, ["age"], k=20, random_state=1).table.equals(out)
    assert not mondrian(users, ["age"], k=20, random_state=2).table.equals(out)


def test_mondrian_class_order_is_by_box_with_several_quasi_identifiers():
    users = frame(age=[60, 21, 45, 33, 57, 24, 52, 38], gender=list("mfmmmffm"))
    a = mondrian(users, ["age", "gender"], k=2, random_state=0)
    b = mondrian(users.iloc[::-1], ["age", "gender"], k=2, random_state=0)
    assert a.table["age"].tolist() == b.table["age"].tolist()
    assert a.table["age"].tolist() == [
        "[21, 24]", "[21, 24]", "[33, 38]", "[33, 38]",
        "[45, 52]", "[45, 52]", "[57, 60]", "[57, 60]",
    ]  # fmt: skip
    with pytest.raises(ConfigurationError, match="random_state"):
        mondrian(users, ["age"], k=2, random_state="seed")
