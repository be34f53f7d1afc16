"""Feature extraction split over the processes of a ``torchrun`` job, resumable from shards.

Each process (rank ``r`` of ``W``) embeds a contiguous slice of the catalogue made of
whole DataLoader batches (:func:`avrec.utils.shard` with ``block=batch_size``), so every
batch holds exactly the items it holds in a single process and the merged result is
bit-for-bit the single-process one. A rank writes its slice to
``<shard_dir>/shard-{r:05d}-of-{W:05d}.npz`` (embeddings, missing masks) and then, as the
commit marker, ``.json`` (fingerprints, positions, item ids, failures, statistics and the
SHA-256 of the ``.npz``), both atomically. After a barrier every rank reads all shards
and merges them in catalogue order (no broadcast: the merge is deterministic, so all ranks
hold the same :class:`~avrec.data.ItemFeatures`).

A shard is reused only if its JSON carries the same *job fingerprint* (encoders'
fingerprints, decoding settings, batch size, the catalogue's ids and paths) and the same
*shard fingerprint* (the job's plus rank, world size, positions and the size and
modification time of each of its files), and its ``.npz`` has the recorded hash. A
restarted job therefore recomputes only missing, stale or damaged shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from avrec.exceptions import PersistenceError
from avrec.features._cache import file_sha256
from avrec.features._catalogue import text_sha256
from avrec.utils import (
    barrier,
    init_from_env,
    load_arrays,
    read_json,
    save_arrays,
    shard,
    write_json,
)

__all__ = ["extract_sharded", "shard_path"]

logger = logging.getLogger(__name__)

_FORMAT = 1
Rows = tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[int, str], dict[str, float]]


def shard_path(shard_dir: str | os.PathLike[str], rank: int, world_size: int) -> Path:
    """Path (without suffix) of the shard of ``rank`` among ``world_size`` processes.

    Examples
    --------
    >>> shard_path("out", 1, 4).name
    'shard-00001-of-00004'
    """
    return Path(shard_dir) / f"shard-{rank:05d}-of-{world_size:05d}"


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _job_fingerprint(
    extractor: Any, encoders: dict[str, Any], ids: list, paths: list, texts: list | None
) -> str:
    config = {
        "format": _FORMAT,
        "encoders": [
            [name, enc.fingerprint(), extractor._settings(enc.modality)]
            for name, enc in encoders.items()
        ],
        "batch_size": int(extractor.batch_size),
    }
    catalogue = hashlib.sha256()
    for item_id, path in zip(ids, paths, strict=True):
        catalogue.update(f"{item_id!r}\0{'' if path is None else os.fspath(path)}\0".encode())
    if texts is not None:  # the items' texts are part of the catalogue
        for text in texts:
            catalogue.update(b"\1" if text is None else f"{text_sha256(text)}\0".encode())
    return _digest({"config": config, "catalogue": catalogue.hexdigest()})


def _file_state(path: Any) -> list[int]:
    if path is None:  # a text-only item
        return [-1, -1]
    try:
        st = os.stat(path)
    except OSError:
        return [-1, -1]
    return [int(st.st_size), int(st.st_mtime_ns)]


def _json_id(item_id: Any) -> Any:
    if isinstance(item_id, (str, int, float, bool)) or item_id is None:
        return item_id
    if isinstance(item_id, np.generic):
        return item_id.item()
    return repr(item_id)


def _read(base: Path, expected: dict[str, Any]) -> tuple[dict[str, Any], dict] | None:
    """The shard's (JSON, arrays) if it is complete and matches ``expected``, else None."""
    meta_path, data_path = base.with_suffix(".json"), base.with_suffix(".npz")
    if not meta_path.is_file() or not data_path.is_file():
        return None
    try:
        meta = read_json(meta_path)
        if any(meta.get(key) != value for key, value in expected.items()):
            return None
        if file_sha256(data_path) != meta.get("npz_sha256"):
            return None
        return meta, load_arrays(data_path)
    except (PersistenceError, OSError, ValueError, AttributeError):
        return None


def _write(base: Path, meta: dict[str, Any], rows: Rows, names: list[str]) -> None:
    out, missing, failed, stats = rows
    base.with_suffix(".json").unlink(missing_ok=True)  # uncommit first: never a stale pair
    arrays = {f"modality:{n}": out[n] for n in names}
    arrays.update({f"missing:{n}": missing[n] for n in names})
    save_arrays(base.with_suffix(".npz"), arrays)
    meta = {
        **meta,
        "failures": {str(k): v for k, v in sorted(failed.items())},
        "stats": {k: float(v) for k, v in stats.items()},
        "npz_sha256": file_sha256(base.with_suffix(".npz")),
    }
    write_json(base.with_suffix(".json"), meta)


def extract_sharded(
    extractor: Any,
    encoders: dict[str, Any],
    ids: list[Any],
    paths: list[Any],
    shard_dir: str | os.PathLike[str],
    *,
    distributed: bool,
    texts: list[str | None] | None = None,
) -> Rows:
    """Embed this rank's shard (or reuse it), wait for all ranks, merge every shard.

    Parameters
    ----------
    extractor : FeatureExtractor
    encoders : dict of str to BaseEncoder
        Validated and fitted.
    ids, paths : list
        The catalogue, in order.
    shard_dir : str or path-like
        Shared by all ranks.
    distributed : bool
        Join the ``torchrun`` process group (False: one process, one shard).
    texts : list of str or None, optional
        The items' texts for text encoders, aligned with ``ids``.

    Returns
    -------
    out : dict of str to numpy.ndarray of shape (n_items, d)
    missing : dict of str to numpy.ndarray of bool, shape (n_items,)
    failed : dict of int to str
        Catalogue position -> error.
    stats : dict of str to float
        Summed over shards, plus ``shards`` (the world size) and ``shard_computed``
        (1.0 if this rank computed its shard in this call, 0.0 if it reused it).
    """
    ctx = init_from_env() if distributed else None
    rank, world = (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)
    names = list(encoders)
    job = _job_fingerprint(extractor, encoders, ids, paths, texts)
    spans = [shard(len(ids), r, world, block=int(extractor.batch_size)) for r in range(world)]
    mine = spans[rank]
    own_state = _digest([_file_state(paths[i]) for i in mine])
    expected = {
        "format": _FORMAT,
        "job_fingerprint": job,
        "shard_fingerprint": _digest([job, rank, world, mine.start, mine.stop, own_state]),
        "rank": rank,
        "world_size": world,
        "start": mine.start,
        "stop": mine.stop,
    }
    base = shard_path(shard_dir, rank, world)
    computed = _read(base, expected) is None
    if computed:
        if len(mine):
            rows = extractor._extract_rows(
                encoders,
                [ids[i] for i in mine],
                [paths[i] for i in mine],
                None if texts is None else [texts[i] for i in mine],
            )
        else:
            rows = (
                {n: np.zeros((0, e.n_features_out_), np.float32) for n, e in encoders.items()},
                {n: np.zeros(0, dtype=bool) for n in names},
                {},
                {"items": 0, "decoded": 0, "cached": 0, "decode_seconds": 0.0,
                 "encode_seconds": 0.0},
            )  # fmt: skip
        meta = {**expected, "items": [_json_id(ids[i]) for i in mine]}
        _write(base, meta, rows, names)
        logger.info("rank %d/%d: wrote %s (%d items)", rank, world, base.name, len(mine))
    else:
        logger.info("rank %d/%d: reusing %s", rank, world, base.name)
    if ctx is not None:
        barrier()
    dims = {n: e.n_features_out_ for n, e in encoders.items()}
    out = {n: np.zeros((len(ids), d), np.float32) for n, d in dims.items()}
    missing = {n: np.zeros(len(ids), dtype=bool) for n in names}
    failed: dict[int, str] = {}
    stats: dict[str, float] = {}
    for r, span in enumerate(spans):
        check = {"format": _FORMAT, "job_fingerprint": job, "rank": r, "world_size": world}
        found = _read(shard_path(shard_dir, r, world), check)
        if found is None or (found[0]["start"], found[0]["stop"]) != (span.start, span.stop):
            raise PersistenceError(
                f"shard {r} of {world} in {shard_dir} is missing or stale after the barrier: "
                "is shard_dir shared by all processes?"
            )
        meta, arrays = found
        for n in names:
            out[n][span.start : span.stop] = arrays[f"modality:{n}"]
            missing[n][span.start : span.stop] = arrays[f"missing:{n}"]
        failed.update({span.start + int(k): v for k, v in meta["failures"].items()})
        for key, value in meta["stats"].items():
            stats[key] = stats.get(key, 0.0) + value
    for key in ("items", "decoded", "cached"):
        stats[key] = int(stats.get(key, 0))
    stats["shards"] = world
    stats["shard_computed"] = float(computed)
    return out, missing, failed, stats
