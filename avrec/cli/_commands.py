"""``avrec extract``, ``avrec evaluate`` and ``avrec recommend``: the pipeline on your own data."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from avrec.data import Interactions, ItemFeatures
from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = [
    "MEDIA_EXTENSIONS",
    "MODEL_NAMES",
    "build_model",
    "extract_command",
    "evaluate_command",
    "find_media",
    "fit_model",
    "load_interactions",
    "read_catalogue_text",
    "recommend_command",
]

logger = logging.getLogger(__name__)

#: File name extensions ``avrec extract`` treats as media.
MEDIA_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".mkv",
        ".webm",
        ".mov",
        ".avi",
        ".m4v",
        ".wav",
        ".mp3",
        ".m4a",
        ".flac",
        ".ogg",
        ".opus",
        ".aac",
    }
)
#: Model names the CLI accepts (case-insensitive).
MODEL_NAMES = (
    "popularity",
    "itemknn",
    "ease",
    "als",
    "bpr",
    "contentknn",
    "featuretofactor",
    "vbpr",
    "sequentiallstm",
    "hybrid",
)


def find_media(folder: str | Path) -> dict[str, Path]:
    """Map item ids (paths relative to ``folder``, without extension) to media files.

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    dict of str to pathlib.Path
        Sorted by id.

    Raises
    ------
    DataValidationError
        If the folder does not exist or holds no media file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataValidationError(f"MEDIA_DIR {root} is not a folder")
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in MEDIA_EXTENSIONS:
            item = path.relative_to(root).with_suffix("").as_posix()
            if item in found:
                raise DataValidationError(
                    f"two media files map to item id {item!r}: {found[item].name} and {path.name}"
                )
            found[item] = path
    if not found:
        raise DataValidationError(
            f"no media files ({', '.join(sorted(MEDIA_EXTENSIONS))}) found under {root}"
        )
    return found


def extract_command(
    media_dir: str | Path,
    output: str | Path,
    *,
    frames: int = 8,
    frame_size: int = 64,
    audio_seconds: float | None = 10.0,
    epochs: int = 0,
    video_weights: str | None = None,
    audio_weights: str | None = None,
    cache_dir: str | None = None,
    num_workers: int = 0,
    seed: int = 0,
    verbose: bool = True,
    out: TextIO | None = None,
    catalogue: str | Path | None = None,
    text_columns: Sequence[str] = (),
    text_model: str | Path | None = None,
    id_column: str = "item_id",
) -> ItemFeatures:
    """Embed every media file of a folder and save the features (``ItemFeatures.save``).

    With ``text_columns``, the items' text from a ``catalogue`` CSV is embedded
    too (a ``text`` modality, :class:`~avrec.features.TextEncoder`).

    Parameters
    ----------
    media_dir : str or path-like
        Folder searched recursively (see :func:`find_media`).
    output : str or path-like
        ``.npz`` file to write (the suffix is added when missing).
    frames, frame_size : int
        Frames sampled per video and their size in pixels.
    audio_seconds : float or None
        Seconds of audio per item (None: all).
    epochs : int
        Train the encoders on these files first (audio-visual correspondence on
        the files that have both streams); 0 keeps random or loaded weights.
    video_weights, audio_weights : str, optional
        Encoders saved with ``.save()`` (directories) or local weight files
        loaded with ``from_pretrained``; nothing is downloaded.
    cache_dir : str, optional
        Per-file feature cache (content hash), for resumable re-runs.
    num_workers : int
        DataLoader decoding workers.
    seed : int
    verbose : bool
    out : text stream, optional
        Where to print the summary (default stdout).
    catalogue : str or path-like, optional
        CSV file with an ``id_column`` (the ids :func:`find_media` gives) and
        the text columns; needed with ``text_columns``.
    text_columns : sequence of str
        Columns joined into each item's text; items without a row or with
        blank text get a zero ``text`` row, flagged as absent.
    text_model : str or path-like, optional
        A local sentence-transformers / transformers folder or a saved
        ``TextEncoder``, or the name of shipped weights (default:
        ``"all-minilm-l6-v2"`` from ``avrec[pretrained]``).
    id_column : str
        Item id column of ``catalogue``.

    Returns
    -------
    ItemFeatures

    Raises
    ------
    ConfigurationError
        If ``text_columns`` is given without ``catalogue`` (or the reverse).
    DataValidationError
        If the folder holds no media or the catalogue lacks a column.
    """
    import sys

    from avrec.features import AudioEncoder, AVCorrespondence, FeatureExtractor, VideoEncoder

    out = out or sys.stdout
    text_columns = [c for c in text_columns if c]
    if bool(text_columns) != (catalogue is not None):
        raise ConfigurationError(
            "--text-column and --catalogue go together: the text columns are read from "
            "the catalogue CSV"
        )
    texts = None
    if catalogue is not None:
        texts = read_catalogue_text(catalogue, text_columns, id_column=id_column)
    if text_model is not None and texts is None:
        raise ConfigurationError("--text-model needs --catalogue and --text-column")
    media = find_media(media_dir)
    common = {"random_state": seed}
    video = (
        VideoEncoder.from_pretrained(video_weights)
        if video_weights
        else VideoEncoder(frames=frames, frame_size=frame_size, **common)
    )
    audio = AudioEncoder.from_pretrained(audio_weights) if audio_weights else AudioEncoder(**common)
    if epochs > 0:
        av = AVCorrespondence(video, audio, epochs=epochs, random_state=seed, verbose=verbose)
        av.fit([str(p) for p in media.values()])
        video, audio = av.video_encoder_, av.audio_encoder_
    else:
        video = video if video_weights else video.init()
        audio = audio if audio_weights else audio.init()
    encoders: dict[str, Any] = {"video": video, "audio": audio}
    if texts is not None:
        encoders["text"] = _text_encoder(text_model)
        source = text_model or "all-minilm-l6-v2"
        matched = len(set(texts).intersection(media))
        logger.info("text for %d of %d media items from %s", matched, len(media), catalogue)
    extractor = FeatureExtractor(
        encoders,
        frames=frames,
        frame_size=frame_size,
        audio_seconds=audio_seconds,
        num_workers=num_workers,
        cache_dir=cache_dir,
        verbose=verbose,
    )
    start = time.perf_counter()
    text = None if texts is None else {item: texts.get(item) for item in media}
    features = extractor.extract(media, text=text)
    output = Path(output)
    if output.suffix != ".npz":
        output = output.with_name(output.name + ".npz")
    features.save(output)
    print(
        f"extracted {features!r} from {len(media)} files in "
        f"{time.perf_counter() - start:.1f} s -> {output}",
        file=out,
    )
    if texts is not None:
        absent = int(extractor.missing_["text"].sum())
        print(
            f"text ({', '.join(text_columns)}) embedded by {source}: "
            f"{features.n_items - absent} items, {absent} without text",
            file=out,
        )
    if extractor.failures_:
        print(f"{len(extractor.failures_)} files could not be decoded:", file=out)
        for item, reason in list(extractor.failures_.items())[:10]:
            print(f"  {item}: {reason}", file=out)
    return features


def read_catalogue_text(
    path: str | Path, columns: Sequence[str], *, id_column: str = "item_id"
) -> dict[str, str | None]:
    """Read each item's text from a catalogue CSV (the given columns, joined).

    Parameters
    ----------
    path : str or path-like
        CSV file with a header row.
    columns : sequence of str
        Text columns, joined with ``". "`` in this order (blank cells skipped).
    id_column : str, default="item_id"

    Returns
    -------
    dict of str to str or None
        Item id -> text (None when every column is blank), in file order.

    Raises
    ------
    DataValidationError
        If the file is missing, a column is absent or an id repeats.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "items.csv"
    >>> _ = p.write_text("item_id,title,tags\\na,Calm River,calm|water\\nb,,\\n")
    >>> read_catalogue_text(p, ["title", "tags"])
    {'a': 'Calm River. calm|water', 'b': None}
    """
    import csv

    from avrec.features._catalogue import join_text

    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"catalogue {path} is not a file")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        absent = [c for c in (id_column, *columns) if c not in header]
        if absent:
            raise DataValidationError(
                f"catalogue {path.name} has no column(s) {absent}; its columns: {header}"
            )
        texts: dict[str, str | None] = {}
        for row in reader:
            item = row[id_column]
            if item in texts:
                raise DataValidationError(f"catalogue {path.name}: item id {item!r} repeats")
            texts[item] = join_text([row[c] for c in columns])
    return texts


def _text_encoder(model: str | Path | None) -> Any:
    """A fitted TextEncoder from a folder, a saved encoder or shipped weights' name."""
    from avrec.features import TextEncoder, pretrained_weights

    model = "all-minilm-l6-v2" if model is None else model
    folder = Path(model)
    if not folder.exists():
        try:
            folder = pretrained_weights(str(model))  # a name, e.g. all-minilm-l6-v2
        except ConfigurationError as exc:
            raise DataValidationError(
                f"--text-model {str(model)!r} is neither a folder nor the name of shipped "
                f"weights ({exc})"
            ) from exc
    return TextEncoder.from_pretrained(folder)


def load_interactions(
    path: str | Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    weight_col: str | None = None,
    timestamp_col: str | None = None,
) -> Interactions:
    """Read an interaction CSV, or a folder written by ``Interactions.save``.

    Parameters
    ----------
    path : str or path-like
    user_col, item_col, weight_col, timestamp_col : str
        CSV header names.

    Returns
    -------
    Interactions
    """
    path = Path(path)
    if not path.exists():
        raise DataValidationError(f"--interactions {path} does not exist")
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return Interactions.from_csv(
            path,
            user_col=user_col,
            item_col=item_col,
            weight_col=weight_col,
            timestamp_col=timestamp_col,
            sep="\t" if path.suffix.lower() == ".tsv" else ",",
        )
    return Interactions.load(path)


def _load_features(path: str | Path | None, X: Interactions) -> tuple[Interactions, Any]:
    if path is None:
        return X, None
    features = ItemFeatures.load(path)
    rows = features.items.index(X.items.ids)
    if (rows < 0).all():
        raise DataValidationError(
            f"none of the interaction item ids appear in the features file {path}"
        )
    if (rows < 0).any():
        logger.warning(
            "%d items have no features; their interactions are dropped", int((rows < 0).sum())
        )
        X = X.subset(items=np.flatnonzero(rows >= 0))
    return X, features.align(X.items)


def build_model(name: str, *, seed: int = 0, verbose: bool = False) -> Any:
    """A recommender with the CLI's defaults, by (case-insensitive) name.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    seed : int
    verbose : bool, default=False
        Progress bars of models that train iteratively.

    Returns
    -------
    Recommender

    Raises
    ------
    ConfigurationError
        For an unknown name.
    """
    from avrec import recommenders as r

    key = name.lower().replace("-", "").replace("_", "")
    factories = {
        "popularity": lambda: r.Popularity(),
        "itemknn": lambda: r.ItemKNN(),
        "ease": lambda: r.EASE(),
        "als": lambda: r.ALS(factors=32, regularization=10.0, random_state=seed),
        "bpr": lambda: r.BPR(random_state=seed, verbose=False),
        "contentknn": lambda: r.ContentKNN(),
        "featuretofactor": lambda: r.FeatureToFactor(random_state=seed),
        "vbpr": lambda: r.VBPR(random_state=seed, verbose=False),
        "sequentiallstm": lambda: r.SequentialLSTM(random_state=seed, verbose=False),
        "hybrid": lambda: r.HybridBlend(
            components=[("ease", r.EASE()), ("content", r.ContentKNN())],
            weights="fit",
            random_state=seed,
        ),
    }
    if key not in factories:
        raise ConfigurationError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    model = factories[key]()
    if "verbose" in model.get_params(deep=False):
        model.set_params(verbose=verbose)
    return model


def fit_model(model: Any, X: Interactions, features: Any) -> Any:
    """Fit ``model`` on ``X``, passing ``features`` to the models that use item features.

    Parameters
    ----------
    model : Recommender
    X : Interactions
    features : ItemFeatures or None

    Returns
    -------
    Recommender
        ``model``, fitted.

    Raises
    ------
    ConfigurationError
        If the model cannot work without item features and none were given (the
        message names ``--features``).
    """
    if getattr(model, "_uses_item_features", False) and features is not None:
        return model.fit(X, item_features=features)
    try:
        return model.fit(X)
    except DataValidationError as exc:
        if features is None and "item_features" in str(exc):
            raise ConfigurationError(f"{exc}; give --features FILE (from `avrec extract`)") from exc
        raise


def evaluate_command(
    interactions: str | Path,
    *,
    features: str | Path | None = None,
    models: Sequence[str] = ("popularity", "ease", "als"),
    split: str = "random",
    test_size: float = 0.2,
    k: int = 10,
    seed: int = 0,
    csv_columns: dict[str, str | None] | None = None,
    out: TextIO | None = None,
) -> dict[str, dict[str, float]]:
    """Fit models on a split of your log and print NDCG, recall and coverage.

    Parameters
    ----------
    interactions : str or path-like
        CSV (``user_id,item_id[,weight][,timestamp]``) or a saved Interactions folder.
    features : str or path-like, optional
        ``ItemFeatures`` file (from ``avrec extract``) for content-aware models.
    models : sequence of str
        Names from :data:`MODEL_NAMES`.
    split : {"random", "leave-last-out", "temporal", "cold"}
    test_size : float
    k : int
        Cut-off of NDCG and coverage (recall is reported at ``2 k``).
    seed : int
    csv_columns : dict, optional
        ``user_col``, ``item_col``, ``weight_col``, ``timestamp_col``.
    out : text stream, optional

    Returns
    -------
    dict of str to dict of str to float
        Per model, its metric values.
    """
    import sys

    from avrec.data import cold_item_split, leave_last_out, random_split, temporal_split
    from avrec.evaluation import evaluate

    out = out or sys.stdout
    X = load_interactions(interactions, **(csv_columns or {}))
    X, feats = _load_features(features, X)
    candidates = None
    if split == "random":
        train, test = random_split(X, test_size, random_state=seed)
    elif split == "leave-last-out":
        train, test = leave_last_out(X)
    elif split == "temporal":
        train, test = temporal_split(X, test_size)
    elif split == "cold":
        train, test, candidates = cold_item_split(X, test_size, random_state=seed)
    else:
        raise ConfigurationError(
            f"--split must be random, leave-last-out, temporal or cold, got {split!r}"
        )
    built = [(name, build_model(name, seed=seed)) for name in models]
    results: dict[str, dict[str, float]] = {}
    keys = (f"ndcg@{k}", f"recall@{2 * k}", f"coverage@{k}")
    print(f"{X!r}, split={split}: {train.nnz} train / {test.nnz} test", file=out)
    print(f"{'model':<16}" + "".join(f"{key:>14}" for key in keys) + f"{'fit s':>9}", file=out)
    for name, model in built:
        start = time.perf_counter()
        fit_model(model, train, feats)
        seconds = time.perf_counter() - start
        res = evaluate(
            model,
            train,
            test,
            k=(k, 2 * k),
            metrics=("ndcg", "recall", "coverage"),
            items=candidates,
        )
        results[name] = {key: float(res[key]) for key in keys}
        print(
            f"{name:<16}"
            + "".join(f"{results[name][key]:>14.4f}" for key in keys)
            + f"{seconds:>9.2f}",
            file=out,
        )
    return results


def recommend_command(
    interactions: str | Path,
    users: Sequence[str],
    *,
    features: str | Path | None = None,
    model: str = "ease",
    model_dir: str | Path | None = None,
    save_model: str | Path | None = None,
    k: int = 10,
    seed: int = 0,
    csv_columns: dict[str, str | None] | None = None,
    out: TextIO | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """Fit (or load) a model and print the top-``k`` items of some users.

    Parameters
    ----------
    interactions : str or path-like
        The log the users' histories come from.
    users : sequence of str
        User ids as they appear in the log (converted like the log's ids).
    features : str or path-like, optional
    model : str
        Name from :data:`MODEL_NAMES` (ignored with ``model_dir``).
    model_dir : str or path-like, optional
        A model saved with ``.save()`` (fitted on the same log) instead of fitting.
    save_model : str or path-like, optional
        Save the fitted model here.
    k : int
    seed : int
    csv_columns : dict, optional
    out : text stream, optional

    Returns
    -------
    dict of str to list of (item id, score)
    """
    import sys

    from avrec.recommenders import Recommender

    out = out or sys.stdout
    X = load_interactions(interactions, **(csv_columns or {}))
    X, feats = _load_features(features, X)
    if model_dir is not None:
        fitted = Recommender.load(model_dir)
        if fitted.items_ is not None and fitted.items_ != X.items:
            raise DataValidationError(
                f"the model in {model_dir} was fitted on another item catalogue"
            )
    else:
        fitted = fit_model(build_model(model, seed=seed), X, feats)
    if save_model is not None:
        fitted.save(save_model)
    ids = np.asarray(list(users))
    rows = X.users.index(
        ids.astype(X.users.ids.dtype)
        if X.users.ids.dtype.kind in "iu" and np.char.isdigit(ids.astype(str)).all()
        else ids
    )
    unknown = ids[rows < 0]
    if unknown.size:
        raise DataValidationError(f"unknown user id(s): {', '.join(map(str, unknown[:5]))}")
    idx, scores = fitted.recommend(rows, k=k)
    result = {}
    for user, items, vals in zip(ids.tolist(), idx, scores, strict=True):
        ok = items >= 0
        pairs = [
            (str(i), float(v))
            for i, v in zip(X.items.ids[items[ok]].tolist(), vals[ok].tolist(), strict=True)
        ]
        result[str(user)] = pairs
        print(f"{user}: " + ", ".join(f"{i} ({v:.3f})" for i, v in pairs), file=out)
    return result
