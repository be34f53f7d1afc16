"""A synthetic audio-video corpus written to disk: media files, item metadata and a play log.

The media are real files (H.264 + AAC in mp4, and audio-only wav / m4a) encoded with
:mod:`avrec.media`; what they look and sound like depends on a hidden genre
(:mod:`avrec.data._av_signals`). Users' plays follow a Dirichlet mixture of genre
preferences and a Zipf item popularity, so content models, collaborative models and
hybrids all have something to learn, with the genre as ground truth.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import numbers
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avrec.data._av_signals import (
    MAX_GENRES,
    audio_samples,
    descriptions,
    genre_names,
    genre_style,
    play_log,
    titles_and_tags,
    video_frames,
)
from avrec.data._interactions import Interactions
from avrec.data._vocabulary import Vocabulary
from avrec.exceptions import DataValidationError, PersistenceError
from avrec.utils import (
    atomic_directory,
    atomic_write,
    check_random_state,
    progress,
    read_json,
    write_json,
)

__all__ = ["AVCorpus", "make_av_corpus"]

logger = logging.getLogger(__name__)

_FORMAT = "avrec.av_corpus"
_VERSION = 1
_MANIFEST = "corpus.json"
_TABLES = ("items.csv", "genres.csv", "interactions.csv")
_X264 = {"preset": "ultrafast", "crf": "23", "threads": "1"}  # one thread: same bytes every run


@dataclass(frozen=True, eq=False)
class AVCorpus:
    """A synthetic audio-video corpus on disk, as written by :func:`make_av_corpus`.

    Parameters
    ----------
    root : pathlib.Path
        Folder holding ``corpus.json``, ``items.csv``, ``genres.csv``,
        ``interactions.csv`` and ``media/``.
    item_ids : ndarray of shape (n_items,), dtype str
        Item ids, in catalogue order.
    paths : list of pathlib.Path, length n_items
        Media file of each item, aligned with ``item_ids``.
    genres : ndarray of shape (n_items,), dtype int64
        Hidden genre of each item, in ``[0, n_genres)`` (ground truth for evaluation).
    has_video : ndarray of shape (n_items,), dtype bool
        False for audio-only items.
    interactions : Interactions of shape (n_users, n_items)
        Play counts with the time of the last play; the item vocabulary is
        ``item_ids`` (every item, played or not).
    metadata : dict of str to ndarray of shape (n_items,)
        The columns of ``items.csv``: ``item_id``, ``path`` (relative to ``root``),
        ``title``, ``tags`` (``|``-separated, genre-correlated with noise),
        ``description`` (a sentence naming a genre, a wrong one for a
        ``text_noise`` share of the items; absent from corpora written before
        avrec had it), ``duration`` (seconds) and ``has_video``.
    genre_names : tuple of str
        Name of each genre.
    params : dict
        The generation parameters, including the integer ``seed`` that was used.

    Examples
    --------
    >>> import tempfile
    >>> corpus = make_av_corpus(
    ...     tempfile.mkdtemp(), n_items=4, n_users=10, n_genres=2, duration=0.5,
    ...     audio_only_fraction=0.25, random_state=0, verbose=False,
    ... )
    >>> AVCorpus.load(corpus.root).catalogue() == corpus.catalogue()
    True
    """

    root: Path
    item_ids: np.ndarray
    paths: list[Path]
    genres: np.ndarray
    has_video: np.ndarray
    interactions: Interactions
    metadata: dict[str, np.ndarray]
    genre_names: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_genres(self) -> int:
        """Number of genres."""
        return len(self.genre_names)

    def catalogue(self) -> dict[str, Path]:
        """Map each item id to its media file.

        Returns
        -------
        dict of str to pathlib.Path
            In catalogue order.
        """
        return {str(i): p for i, p in zip(self.item_ids, self.paths, strict=True)}

    def text(self, columns: tuple[str, ...] = ("description",)) -> dict[str, str]:
        """Map each item id to its text, for a text encoder next to :meth:`catalogue`.

        Parameters
        ----------
        columns : tuple of str, default=("description",)
            Text columns of ``metadata`` (``title``, ``tags``, ``description``),
            joined with ``". "`` in this order.

        Returns
        -------
        dict of str to str
            In catalogue order; use as ``FeatureExtractor.extract(corpus.catalogue(),
            text=corpus.text())``.

        Raises
        ------
        DataValidationError
            If a column is not a text column of this corpus.

        Examples
        --------
        >>> import tempfile
        >>> corpus = make_av_corpus(tempfile.mkdtemp(), n_items=2, n_users=3, n_genres=2,
        ...                         duration=0.25, random_state=0, verbose=False)
        >>> text = corpus.text(("title", "description"))
        >>> list(text) == corpus.item_ids.tolist()
        True
        >>> corpus.genre_names[corpus.genres[0]] in text[corpus.item_ids[0]]
        True
        """
        available = [c for c in ("title", "tags", "description") if c in self.metadata]
        if isinstance(columns, str) or not columns or any(c not in available for c in columns):
            raise DataValidationError(
                f"columns must be a non-empty tuple of {available}, got {columns!r}"
            )
        rows = zip(*(self.metadata[c] for c in columns), strict=True)
        return {
            str(i): ". ".join(str(v).strip() for v in row)
            for i, row in zip(self.item_ids, rows, strict=True)
        }

    @classmethod
    def load(cls, root: str | os.PathLike[str], *, verify: bool = False) -> AVCorpus:
        """Reopen a corpus written by :func:`make_av_corpus`, without regenerating it.

        Parameters
        ----------
        root : str or path-like
            The corpus folder.
        verify : bool, default=False
            Also recompute every file's SHA-256 and compare it with the manifest
            (by default only presence and size are checked).

        Returns
        -------
        AVCorpus

        Raises
        ------
        PersistenceError
            If the folder holds no complete corpus: missing or malformed
            manifest, a missing, resized or (with ``verify``) altered file.
        """
        root = Path(root).absolute()
        manifest = _read_manifest(root)
        if manifest is None:
            raise PersistenceError(f"{root} holds no avrec audio-video corpus ({_MANIFEST})")
        problem = _check_files(root, manifest["files"], verify=verify)
        if problem:
            raise PersistenceError(f"{root}: incomplete corpus: {problem}")
        try:
            items = _read_table(root / "items.csv")
            genre_table = _read_table(root / "genres.csv")
            item_ids = items["item_id"]
            if not np.array_equal(genre_table["item_id"], item_ids):
                raise ValueError("genres.csv and items.csv list different items")
            genres = genre_table["genre"].astype(np.int64)
            metadata = {
                "item_id": item_ids,
                "path": items["path"],
                "title": items["title"],
                "tags": items["tags"],
                **({"description": items["description"]} if "description" in items else {}),
                "duration": items["duration"].astype(np.float64),
                "has_video": items["has_video"].astype(np.int64).astype(bool),
            }
            interactions = Interactions.from_csv(
                root / "interactions.csv",
                weight_col="weight",
                timestamp_col="timestamp",
                items=Vocabulary(item_ids),
            )
        except (KeyError, ValueError, StopIteration) as exc:  # DataValidationError too
            raise PersistenceError(f"{root}: cannot read the corpus tables ({exc!r})") from exc
        return cls(
            root=root,
            item_ids=item_ids,
            paths=[root / p for p in metadata["path"]],
            genres=genres,
            has_video=metadata["has_video"],
            interactions=interactions,
            metadata=metadata,
            genre_names=tuple(manifest["genre_names"]),
            params=dict(manifest["params"]),
        )


def make_av_corpus(
    root: str | os.PathLike[str],
    n_items: int = 200,
    n_users: int = 300,
    n_genres: int = 4,
    duration: float = 3.0,
    *,
    audio_only_fraction: float = 0.1,
    fps: float = 10.0,
    size: tuple[int, int] = (64, 64),
    sample_rate: int = 16000,
    interactions_per_user: float = 20.0,
    text_noise: float = 0.2,
    random_state: int | np.random.Generator | None = None,
    overwrite: bool = False,
    n_jobs: int | None = None,
    verbose: bool = True,
) -> AVCorpus:
    """Write a synthetic corpus of genre-dependent media files with a play log.

    Each item belongs to one of ``n_genres`` hidden genres (balanced). Video
    items are H.264 + AAC ``.mp4`` files; a fraction are audio-only (``.wav``
    and ``.m4a``, alternating). The genre sets, with per-item noise:

    - the picture: a hue range *and* a shape (discs, stripes, squares, rings,
      crosses) moving in a genre-specific direction over a random background;
    - the sound: a pitch band *and* an articulation (legato, staccato, glides,
      tremolo, vibrato) of notes in a timbre drawn per item, over noise.

    Genres sharing a hue range share a pitch band, so mean colour or spectral
    centroid tell apart only groups of genres; separating genres within a
    group needs shape or articulation, which a learned encoder sees (probe
    accuracies per feature in ``benchmarks/RESULTS.md``, from
    ``benchmarks/bench_av_corpus.py``).

    Each item also has a one-sentence ``description`` in ``items.csv`` that
    names its genre and the genre's two adjectives among filler words; a
    ``text_noise`` share of the items name another genre instead (text
    features can thus reach about ``1 - text_noise`` genre accuracy). The text
    draws from its own random stream: media, tags and plays are the same as
    without it.

    Users' plays come from a Dirichlet(0.3) mixture over genres (85% of plays;
    the rest by popularity alone) with Zipf item popularity; weights are play
    counts and timestamps the time of the last play, inside 2020.

    The corpus is built in a temporary sibling folder and moved to ``root``
    when complete, so an interrupted run never looks finished. If ``root``
    already holds a complete corpus made with the same parameters it is
    returned as it is (nothing is rewritten) unless ``overwrite=True``.

    Parameters
    ----------
    root : str or path-like
        Destination folder: absent, empty, or holding a corpus.
    n_items : int, default=200
        Number of media files, at least ``n_genres``.
    n_users : int, default=300
        Number of users in the play log (each plays at least once).
    n_genres : int, default=4
        Number of hidden genres, between 1 and 25.
    duration : float, default=3.0
        Length of each clip in seconds, in ``(0, 3600]``.
    audio_only_fraction : float, default=0.1
        Share of items without video, in ``[0, 1]``.
    fps : float, default=10.0
        Frame rate of the videos, in ``[1, 120]``.
    size : (int, int), default=(64, 64)
        Frame ``(height, width)`` in pixels, each in ``[16, 1080]``.
    sample_rate : int, default=16000
        Audio sample rate in Hz, in ``[8000, 48000]``.
    interactions_per_user : float, default=20.0
        Mean number of plays per user (log-normal activity).
    text_noise : float, default=0.2
        Share of the items whose description names a wrong genre, in ``[0, 1]``.
    random_state : None, int or numpy.random.Generator, default=None
        Seed. Equal ints give byte-identical corpora (same FFmpeg build). With
        None, an existing corpus with the other parameters equal is reused.
    overwrite : bool, default=False
        Regenerate even if ``root`` holds a corpus (of any parameters).
    n_jobs : int, optional
        Threads encoding items in parallel; default: the CPU count, at most 8.
        The output does not depend on it.
    verbose : bool, default=True
        Show a progress bar.

    Returns
    -------
    AVCorpus

    Raises
    ------
    DataValidationError
        If a parameter is out of range (e.g. ``n_items < n_genres``, ``duration <= 0``).
    PersistenceError
        If ``root`` is a file, a non-empty folder that holds no corpus, or holds
        a corpus with other parameters (or an incomplete one) and ``overwrite``
        is False.
    ConfigurationError
        If ``random_state`` is invalid.

    Examples
    --------
    >>> import tempfile
    >>> from avrec.media import probe
    >>> corpus = make_av_corpus(
    ...     tempfile.mkdtemp(), n_items=4, n_users=10, n_genres=2, duration=0.5,
    ...     audio_only_fraction=0.25, random_state=0, verbose=False,
    ... )
    >>> corpus.has_video.tolist(), corpus.genres.tolist()
    ([True, False, True, True], [0, 0, 1, 1])
    >>> [p.name for p in corpus.paths]
    ['av0000.mp4', 'av0001.wav', 'av0002.mp4', 'av0003.mp4']
    >>> info = probe(corpus.paths[0])
    >>> info.has_video, info.has_audio, info.width
    (True, True, 64)
    >>> corpus.interactions.shape
    (10, 4)
    """
    params = _check_params(
        n_items=n_items,
        n_users=n_users,
        n_genres=n_genres,
        duration=duration,
        audio_only_fraction=audio_only_fraction,
        fps=fps,
        size=size,
        sample_rate=sample_rate,
        interactions_per_user=interactions_per_user,
        text_noise=text_noise,
    )
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)):
        raise DataValidationError(f"n_jobs must be None or a positive int, got {n_jobs!r}")
    if n_jobs is not None and n_jobs < 1:
        raise DataValidationError(f"n_jobs must be None or a positive int, got {n_jobs!r}")
    if not isinstance(root, (str, os.PathLike)):
        raise DataValidationError(f"root must be a str or path, got {type(root).__name__}")
    root = Path(root).absolute()
    seed = None
    if random_state is not None:
        rng = check_random_state(random_state)
        if isinstance(random_state, np.random.Generator):
            seed = int(rng.integers(2**63))
        else:
            seed = int(random_state)  # type: ignore[arg-type]

    cached = _reuse(root, params, seed, overwrite)
    if cached is not None:
        logger.info("reusing the audio-video corpus in %s", root)
        return cached
    if seed is None:
        seed = int(np.random.default_rng().integers(2**63))
    params["seed"] = seed
    started = time.perf_counter()
    with atomic_directory(root) as tmp:
        n_bytes = _write_corpus(tmp, params, n_jobs, verbose)
    logger.info(
        "wrote %d items (%.1f MB) to %s in %.1f s",
        n_items,
        n_bytes / 1e6,
        root,
        time.perf_counter() - started,
    )
    return AVCorpus.load(root)


# ------------------------------------------------------------------------ validation
def _check_params(**kw: Any) -> dict[str, Any]:
    def integer(name: str, low: int, high: int) -> int:
        value = kw[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise DataValidationError(f"{name} must be an int, got {value!r}")
        if not low <= int(value) <= high:
            raise DataValidationError(f"{name} must be in [{low}, {high}], got {value}")
        return int(value)

    def real(name: str, low: float, high: float, *, low_open: bool = False) -> float:
        value = kw[name]
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        x = float(value) if ok else math.nan
        if not (math.isfinite(x) and (x > low if low_open else x >= low) and x <= high):
            interval = f"{'(' if low_open else '['}{low}, {high}]"
            raise DataValidationError(f"{name} must be a real number in {interval}, got {value!r}")
        return x

    out: dict[str, Any] = {
        "n_items": integer("n_items", 1, 10**7),
        "n_users": integer("n_users", 1, 10**8),
        "n_genres": integer("n_genres", 1, MAX_GENRES),
        "duration": real("duration", 0.0, 3600.0, low_open=True),
        "audio_only_fraction": real("audio_only_fraction", 0.0, 1.0),
        "fps": real("fps", 1.0, 120.0),
        "sample_rate": integer("sample_rate", 8000, 48000),
        "interactions_per_user": real("interactions_per_user", 0.0, 1e6, low_open=True),
        "text_noise": real("text_noise", 0.0, 1.0),
    }
    if out["n_items"] < out["n_genres"]:
        raise DataValidationError(
            f"n_items={out['n_items']} is smaller than n_genres={out['n_genres']}: "
            "every genre needs an item"
        )
    size = kw["size"]
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)
        or not all(16 <= int(s) <= 1080 for s in size)
    ):
        raise DataValidationError(f"size must be (height, width) ints in [16, 1080], got {size!r}")
    out["size"] = [int(size[0]), int(size[1])]
    return out


# ------------------------------------------------------------------------ cache
def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / _MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = read_json(path)
    except PersistenceError:
        return None
    ok = (
        isinstance(manifest, dict)
        and manifest.get("format") == _FORMAT
        and manifest.get("version") == _VERSION
        and isinstance(manifest.get("params"), dict)
        and isinstance(manifest.get("files"), dict)
        and isinstance(manifest.get("genre_names"), list)
    )
    return manifest if ok else None


def _check_files(root: Path, files: dict[str, Any], *, verify: bool) -> str | None:
    """Why the files listed in a manifest are not all there as written (None if they are)."""
    for rel, entry in files.items():
        path = root / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != entry["bytes"]:
            return f"{rel} has {path.stat().st_size} bytes, expected {entry['bytes']}"
        if verify and _sha256(path) != entry["sha256"]:
            return f"{rel} differs from the file that was written (SHA-256 mismatch)"
    return None


def _reuse(
    root: Path, params: dict[str, Any], seed: int | None, overwrite: bool
) -> AVCorpus | None:
    """The corpus already in ``root`` if it matches; raise if ``root`` must not be replaced."""
    if not root.exists():
        return None
    if not root.is_dir():
        raise PersistenceError(f"root {root} exists and is not a folder")
    if not (root / _MANIFEST).exists():
        if any(root.iterdir()):
            raise PersistenceError(
                f"root {root} is not empty and holds no audio-video corpus ({_MANIFEST}); "
                "refusing to replace it"
            )
        return None
    if overwrite:
        return None
    manifest = _read_manifest(root)
    if manifest is None:
        raise PersistenceError(
            f"{root}/{_MANIFEST} is not a readable corpus manifest; "
            "pass overwrite=True to rebuild the corpus"
        )
    old = dict(manifest["params"])
    old_seed = old.pop("seed", None)
    # a corpus written before descriptions existed, otherwise the one asked for: complete it
    before_text = "text_noise" not in old and {**old, "text_noise": params["text_noise"]} == params
    same_seed = seed is None or old_seed == seed
    if before_text and same_seed and _check_files(root, manifest["files"], verify=False) is None:
        _add_descriptions(root, manifest, params["text_noise"])
        return AVCorpus.load(root)
    if old != params or (seed is not None and old_seed != seed):
        differ = sorted(k for k in params if old.get(k) != params[k])
        if seed is not None and old_seed != seed:
            differ.append("random_state")
        raise PersistenceError(
            f"{root} holds a corpus made with other parameters ({', '.join(differ)}); "
            "pass overwrite=True to replace it"
        )
    problem = _check_files(root, manifest["files"], verify=False)
    if problem:
        raise PersistenceError(
            f"{root} holds an incomplete corpus ({problem}); pass overwrite=True to rebuild it"
        )
    return AVCorpus.load(root)


def _add_descriptions(root: Path, manifest: dict[str, Any], text_noise: float) -> None:
    """Add the ``description`` column to a corpus written before it existed.

    Media, tags and plays are left as they are (the text has its own random
    stream); ``items.csv`` and then the manifest are replaced atomically.
    """
    params = manifest["params"]
    items = _read_table(root / "items.csv")
    genres = _read_table(root / "genres.csv")["genre"].astype(np.int64)
    names = list(manifest["genre_names"])
    text, _ = descriptions(np.random.default_rng([params["seed"], 3]), genres, names, text_noise)
    columns = ["item_id", "path", "title", "tags", "description", "duration", "has_video"]
    items["description"] = np.array(text, dtype=str)
    path = root / "items.csv"
    _write_csv(path, columns, zip(*(items[c] for c in columns), strict=True))
    files = dict(manifest["files"])
    files["items.csv"] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    write_json(
        root / _MANIFEST,
        {**manifest, "params": {**params, "text_noise": text_noise}, "files": files},
    )
    logger.info("added item descriptions to the corpus in %s", root)


# ------------------------------------------------------------------------ generation
def _write_corpus(tmp: Path, params: dict[str, Any], n_jobs: int | None, verbose: bool) -> int:
    """Fill ``tmp`` with a whole corpus (manifest last); return the bytes written."""
    # imported here so that ``import avrec.data`` does not load torch and FFmpeg
    import av

    from avrec.media import write_audio, write_video

    n_items, n_genres, seed = params["n_items"], params["n_genres"], params["seed"]
    rng = np.random.default_rng([seed, 0])
    genres = rng.permutation(np.arange(n_items) % n_genres).astype(np.int64)
    n_audio_only = round(params["audio_only_fraction"] * n_items)
    has_video = np.ones(n_items, dtype=bool)
    has_video[rng.choice(n_items, size=n_audio_only, replace=False)] = False
    suffix = np.full(n_items, ".mp4", dtype=object)
    audio_only = np.flatnonzero(~has_video)
    suffix[audio_only[0::2]], suffix[audio_only[1::2]] = ".wav", ".m4a"
    width = max(4, len(str(n_items - 1)))
    item_ids = np.array([f"av{i:0{width}d}" for i in range(n_items)])
    rel_paths = [f"media/{item_ids[i]}{suffix[i]}" for i in range(n_items)]
    names = genre_names(n_genres)

    (tmp / "media").mkdir()

    def write_item(i: int) -> None:
        style = genre_style(int(genres[i]), n_genres)
        duration, rate = params["duration"], params["sample_rate"]
        sound = audio_samples(style, duration, rate, np.random.default_rng([seed, 2, i]))
        path = tmp / rel_paths[i]
        if not has_video[i]:
            write_audio(path, sound, rate)
            return
        n_frames = max(1, round(duration * params["fps"]))
        size = (params["size"][0], params["size"][1])
        frames = video_frames(
            style, n_frames, params["fps"], size, np.random.default_rng([seed, 1, i])
        )
        write_video(path, frames, params["fps"], options=_X264, audio=sound, sample_rate=rate)

    workers = n_jobs or min(8, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        done = pool.map(write_item, range(n_items))
        for _ in progress(done, verbose=verbose, desc="av corpus", total=n_items, unit="item"):
            pass
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop before the folder is removed
        raise
    pool.shutdown()

    titles, tags = titles_and_tags(rng, genres, names)
    # a stream of its own, so that the text leaves media, tags and plays unchanged
    text, _ = descriptions(np.random.default_rng([seed, 3]), genres, names, params["text_noise"])
    _write_csv(
        tmp / "items.csv",
        ["item_id", "path", "title", "tags", "description", "duration", "has_video"],
        zip(
            item_ids,
            rel_paths,
            titles,
            tags,
            text,
            [repr(params["duration"])] * n_items,
            has_video.astype(int),
            strict=True,
        ),
    )
    _write_csv(
        tmp / "genres.csv",
        ["item_id", "genre", "genre_name"],
        zip(item_ids, genres, [names[g] for g in genres], strict=True),
    )
    X = play_log(rng, genres, item_ids, params["n_users"], params["interactions_per_user"])
    rows, cols, weights, stamps = X.to_indices()
    _write_csv(
        tmp / "interactions.csv",
        ["user_id", "item_id", "weight", "timestamp"],
        zip(
            X.users.ids[rows],
            item_ids[cols],
            weights.astype(np.int64),
            stamps.astype(np.int64),
            strict=True,
        ),
    )
    files = {}
    for rel in [*rel_paths, *_TABLES]:
        path = tmp / rel
        files[rel] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {
        "format": _FORMAT,
        "version": _VERSION,
        "params": params,
        "genre_names": names,
        "files": files,
        "software": {"av": av.__version__, "libavcodec": _version(av, "libavcodec")},
    }
    write_json(tmp / _MANIFEST, manifest)  # last: its presence marks a complete corpus
    return sum(entry["bytes"] for entry in files.values())


def _version(av: Any, library: str) -> str:
    return ".".join(map(str, av.library_versions.get(library, ())))


# ------------------------------------------------------------------------ files
def _write_csv(path: Path, header: list[str], rows: Any) -> None:
    with atomic_write(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _read_table(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    return {name: np.array([r[j] for r in rows], dtype=str) for j, name in enumerate(header)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
