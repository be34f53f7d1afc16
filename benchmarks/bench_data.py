"""Data layer (``avrec.data``): generation, MovieLens loading and splits, time and peak memory.

Every task runs in a fresh ``spawn`` child process (``_common.run_isolated``),
so its memory is its own. Inside the child the kernel's peak-RSS counter
(``VmHWM``) is reset just before the timed call (``_common.PeakMemory``): the
table gives the process's peak RSS during the call (imports and, for the
splits, the input matrix included) and the extra memory the call needed
above the level just before it. Each task runs once (no repeats).

Tasks, per shape (``--shapes``; ML-1M: 6,040 x 3,706, 1.0M interactions;
ML-20M: 138,493 x 26,744, 20.0M):

- ``make_interactions`` at that shape and density (20 clusters, seed 0);
- ``load_movielens`` of a synthetic file in the MovieLens layout of that
  dataset (``ml-1m/ratings.dat``: ``user::item::rating::timestamp``;
  ``ml-20m/ratings.csv`` with its header), written beforehand (not timed) into
  a temporary folder from the same generated interactions with seeded ratings
  (0.5-5 in half stars for the csv, 1-5 for the dat); once with pandas' C
  parser, once with the numpy fallback (pandas made unimportable in the child);
- ``random_split`` (0.2), ``leave_last_out``, ``temporal_split`` (0.2) and
  ``cold_item_split`` (0.2) of the generated interactions, all four in one
  child (the matrix generated once, then the peak counter reset before each).

Usage::

    python benchmarks/bench_data.py                 # both shapes (~1.5 min, 1.7 GiB, 0.5 GB disk)
    python benchmarks/bench_data.py --shapes ml1m   # ML-1M shape only (~10 s)
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import MiB, PeakMemory, markdown_table, run_isolated

SHAPES = {
    "ml1m": {"n_users": 6040, "n_items": 3706, "nnz": 1_000_209, "file": "ml-1m/ratings.dat"},
    "ml20m": {
        "n_users": 138_493,
        "n_items": 26_744,
        "nnz": 20_000_263,
        "file": "ml-20m/ratings.csv",
    },
}
SPLITS = ("random_split", "leave_last_out", "temporal_split", "cold_item_split")


def _generate(shape: str) -> Any:
    from avrec.data import make_interactions

    s = SHAPES[shape]
    density = s["nnz"] / (s["n_users"] * s["n_items"])
    return make_interactions(s["n_users"], s["n_items"], density, 20, random_state=0)


def _peak_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def task_make(shape: str) -> dict:
    """Time ``make_interactions`` at ``shape``."""
    import avrec.data  # noqa: F401  (imports before the peak counter is reset)

    gc.collect()
    peak = PeakMemory()
    start = time.perf_counter()
    X = _generate(shape)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "extra": peak.peak_bytes() / MiB,
        "process": _peak_mib(),
        "detail": f"{X.shape[0]:,} x {X.shape[1]:,}, {X.nnz / 1e6:.2f}M",
    }


def task_load(path: str, use_pandas: bool) -> dict:
    """Time ``load_movielens(path)``, with pandas or with its numpy fallback."""
    if not use_pandas:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # import pandas -> ImportError
    from avrec.data import load_movielens

    if use_pandas:
        import pandas  # noqa: F401  (imported before the peak counter is reset)
    gc.collect()
    peak = PeakMemory()
    start = time.perf_counter()
    X = load_movielens(path)
    wall = time.perf_counter() - start
    return {
        "wall": wall,
        "extra": peak.peak_bytes() / MiB,
        "process": _peak_mib(),
        "detail": f"{X.shape[0]:,} x {X.shape[1]:,}, {X.nnz / 1e6:.2f}M",
    }


def task_splits(shape: str) -> dict:
    """Time the four splits of the generated interactions, each after a peak reset."""
    from avrec import data

    X = _generate(shape)
    calls = {
        "random_split": lambda: data.random_split(X, 0.2, random_state=0),
        "leave_last_out": lambda: data.leave_last_out(X),
        "temporal_split": lambda: data.temporal_split(X, 0.2),
        "cold_item_split": lambda: data.cold_item_split(X, 0.2, random_state=0),
    }
    out = {}
    for name in SPLITS:
        gc.collect()
        peak = PeakMemory()
        start = time.perf_counter()
        result = calls[name]()
        wall = time.perf_counter() - start
        out[name] = {"wall": wall, "extra": peak.peak_bytes() / MiB, "process": _peak_mib()}
        del result
    return out


def write_movielens(shape: str, folder: Path) -> Path:
    """Write the generated interactions of ``shape`` as a MovieLens ratings file."""
    import pandas as pd

    X = _generate(shape)
    coo = X.matrix.tocoo()
    rng = np.random.default_rng(0)
    path = folder / SHAPES[shape]["file"]
    path.parent.mkdir(parents=True)
    users, items = coo.row.astype(np.int64) + 1, coo.col.astype(np.int64) + 1
    times = X.timestamps.astype(np.int64)
    if path.suffix == ".csv":
        ratings = rng.integers(1, 11, coo.nnz) / 2  # 0.5-5 in half stars
        frame = pd.DataFrame(
            {"userId": users, "movieId": items, "rating": ratings, "timestamp": times}
        )
        frame.to_csv(path, index=False, float_format="%.1f")
    else:  # user::item::rating::timestamp: ':' separated with empty columns between
        empty = np.full(coo.nnz, "", dtype=object)
        ratings = rng.integers(1, 6, coo.nnz)
        frame = pd.DataFrame(
            {"u": users, "a": empty, "i": items, "b": empty, "r": ratings, "c": empty, "t": times}
        )
        frame.to_csv(path, sep=":", index=False, header=False)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="ml1m,ml20m", help="comma-separated: ml1m, ml20m")
    parser.add_argument(
        "--workdir",
        default=None,
        help="where to write the MovieLens files (default: a temporary folder, deleted afterwards)",
    )
    args = parser.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        parser.error(f"--shapes: unknown {unknown}; choose from {sorted(SHAPES)}")

    rows: list[dict] = []

    def add(task: str, res: dict, detail: str = "") -> None:
        if "error" in res:
            rows.append({"task": task, "detail": res["error"].splitlines()[0]})
            return
        rows.append({"task": task, "detail": res.get("detail", detail), **res})
        print(f"{task}: {res['wall']:.2f} s", file=sys.stderr, flush=True)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for shape in shapes:
            label = "ML-1M" if shape == "ml1m" else "ML-20M"
            add(f"`make_interactions`, {label} shape", run_isolated(task_make, shape))
            path = write_movielens(shape, Path(tmp) / shape)
            size = path.stat().st_size / MiB
            for use_pandas in (True, False):
                how = "pandas" if use_pandas else "numpy fallback"
                res = run_isolated(task_load, str(path), use_pandas)
                res.setdefault("detail", "")
                res["detail"] = f"{path.name} {size:.0f} MiB, {res['detail']}"
                add(f"`load_movielens`, {label} shape, {how}", res)
            splits = run_isolated(task_splits, shape)
            for name in SPLITS:
                res = splits if "error" in splits else splits[name]
                add(f"`{name}`, {label} shape", res, detail=f"{SHAPES[shape]['nnz'] / 1e6:.1f}M")
            path.unlink()
    print(
        f"\n{time.perf_counter() - start:.0f} s in all; one run per task, each in a fresh process"
    )
    columns = [
        ("task", "task", "s"),
        ("detail", "data", "s"),
        ("wall", "time s", ".2f"),
        ("process", "process peak RSS MiB", ".0f"),
        ("extra", "peak above start MiB", ".0f"),
    ]
    print(markdown_table(rows, columns))


if __name__ == "__main__":
    main()
