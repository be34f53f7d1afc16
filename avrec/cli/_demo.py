"""``avrec demo``: the whole pipeline on the synthetic corpus, from media files to a report.

Generates (or reuses) a synthetic audio-video corpus in a cache folder, trains the audio and
video encoders self-supervised (audio-visual correspondence), extracts item features,
fits one model of every family on a warm split and on a cold-item split, and collects the
metrics. :mod:`avrec.cli._report` turns the result into tables and a report folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avrec._version import __version__
from avrec.data import AVCorpus, Interactions, ItemFeatures, make_av_corpus
from avrec.utils import check_random_state

__all__ = [
    "DemoConfig",
    "DemoResult",
    "ModelRow",
    "RandomRanker",
    "default_cache_dir",
    "demo_models",
    "evaluate_models",
    "run_demo",
    "tag_features",
]

logger = logging.getLogger(__name__)

#: Metrics of the demo table, as ``evaluate`` keys.
METRICS = ("ndcg@10", "recall@20", "coverage@20")


def default_cache_dir() -> Path:
    """Where the demo keeps its corpus and features between runs.

    ``$AVREC_CACHE`` if set, else ``$XDG_CACHE_HOME/avrec``, else ``~/.cache/avrec``.

    Returns
    -------
    pathlib.Path
    """
    if os.environ.get("AVREC_CACHE"):
        return Path(os.environ["AVREC_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "avrec"


@dataclass
class DemoConfig:
    """Sizes and seeds of one demo run (defaults: under 5 minutes on 2 cores).

    Attributes
    ----------
    n_items, n_users, n_genres : int
        Corpus size (see :func:`avrec.data.make_av_corpus`).
    duration : float
        Seconds per clip.
    epochs : int
        Audio-visual correspondence training epochs of the encoders (0: random weights).
    seed : int
        Seeds the corpus, the splits, the encoders and every model.
    cache_dir : pathlib.Path, optional
        Default :func:`default_cache_dir`.
    verbose : bool
        Progress bars.
    """

    n_items: int = 240
    n_users: int = 600
    n_genres: int = 4
    duration: float = 2.0
    epochs: int = 20
    seed: int = 0
    cache_dir: Path | None = None
    verbose: bool = True


@dataclass
class ModelRow:
    """One model's metrics on the two splits.

    Attributes
    ----------
    name : str
    family : str
        ``"baseline"``, ``"cf"``, ``"content"``, ``"hybrid"`` or ``"sequential"``.
    warm, cold : dict of str to float
        ``evaluate`` values (keys of :data:`METRICS`).
    fit_seconds : float
        Fit time on the warm split.
    """

    name: str
    family: str
    warm: dict[str, float] = field(default_factory=dict)
    cold: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = float("nan")


@dataclass
class DemoResult:
    """Everything ``avrec demo`` measured.

    Attributes
    ----------
    config : DemoConfig
    rows : list of ModelRow
    corpus : AVCorpus
    features : ItemFeatures
    timings : dict of str to float
        Seconds per stage (``corpus``, ``features``, ``warm``, ``cold``).
    models : dict of str to Recommender
        The models fitted on the warm split (for explanations).
    warm_split, cold_split : tuple
        ``(train, test)`` and ``(train, test, cold_items)``.
    """

    config: DemoConfig
    rows: list[ModelRow]
    corpus: AVCorpus
    features: ItemFeatures
    timings: dict[str, float]
    models: dict[str, Any]
    warm_split: tuple[Interactions, Interactions]
    cold_split: tuple[Interactions, Interactions, np.ndarray]


class RandomRanker:
    """A random ranking, the floor every model must clear (not a :class:`Recommender`).

    Duck-types what :func:`avrec.evaluation.evaluate` calls: ``n_items_`` and
    ``recommend(users, k, exclude_seen, exclude, items)``.

    Parameters
    ----------
    n_items : int
    random_state : None, int or numpy.random.Generator

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> idx, _ = RandomRanker(5, random_state=0).recommend(
    ...     [0, 1], k=3, exclude=sp.csr_matrix(np.eye(2, 5)))
    >>> idx.shape, bool((idx[0] != 0).all())
    ((2, 3), True)
    """

    def __init__(self, n_items: int, random_state: Any = None) -> None:
        self.n_items_ = int(n_items)
        self._rng = check_random_state(random_state)

    def recommend(
        self,
        users: Any,
        k: int = 10,
        *,
        exclude_seen: bool = False,
        exclude: Any = None,
        items: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank the candidates in random order, leaving out ``exclude``.

        Parameters
        ----------
        users : array-like of int, shape (n_query,)
        k : int
        exclude_seen : bool
            Ignored (there is no history); use ``exclude``.
        exclude : sparse matrix of shape (n_query, n_items), optional
        items : array-like of int, optional
            Candidate items.

        Returns
        -------
        item_indices : ndarray of shape (n_query, k)
        scores : ndarray of shape (n_query, k)
        """
        from avrec.recommenders import top_k

        n = len(np.asarray(users))
        scores = self._rng.random((n, self.n_items_), dtype=np.float32)
        if exclude is not None:
            rows, cols = exclude.nonzero()
            scores[rows, cols] = -np.inf
        if items is not None:
            allowed = np.zeros(self.n_items_, dtype=bool)
            allowed[np.asarray(items)] = True
            scores[:, ~allowed] = -np.inf
        return top_k(scores, k)


def tag_features(tags: Any, items: Any) -> np.ndarray:
    """TF-IDF vectors of ``|``-separated tag strings, one row per item, L2-normalised.

    Parameters
    ----------
    tags : array-like of str, shape (n_items,)
        E.g. ``"calm|piano|night"``.
    items : array-like, shape (n_items,)
        Item ids (only their count is used; rows follow ``tags``).

    Returns
    -------
    ndarray of shape (n_items, n_tags), dtype float32

    Examples
    --------
    >>> tag_features(["a|b", "b", ""], ["x", "y", "z"]).shape
    (3, 2)
    """
    lists = [[t for t in str(s).split("|") if t] for s in np.asarray(tags).tolist()]
    vocab = sorted({t for row in lists for t in row})
    index = {t: j for j, t in enumerate(vocab)}
    n = len(np.asarray(items))
    out = np.zeros((n, max(len(vocab), 1)), dtype=np.float32)
    rows = np.repeat(np.arange(n), [len(r) for r in lists])
    cols = np.array([index[t] for r in lists for t in r], dtype=np.int64)
    np.add.at(out, (rows, cols), 1.0)
    df = np.count_nonzero(out, axis=0)
    out *= np.log((1 + n) / (1 + df)).astype(np.float32) + 1
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1)


def _features_key(corpus: AVCorpus, config: DemoConfig) -> str:
    doc = {
        "corpus": {k: v for k, v in corpus.params.items() if k not in ("n_jobs", "verbose")},
        "epochs": config.epochs,
        "seed": config.seed,
        "avrec": __version__,
        "recipe": 2,
    }
    blob = json.dumps(doc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_features(corpus: AVCorpus, config: DemoConfig, cache_dir: Path) -> ItemFeatures:
    """Train the encoders on the corpus, embed every item, add tag vectors; cached.

    Parameters
    ----------
    corpus : AVCorpus
    config : DemoConfig
    cache_dir : pathlib.Path
        Features are stored as ``features/<key>.npz``; the key covers the corpus
        parameters, the training epochs and the seed.

    Returns
    -------
    ItemFeatures
        Modalities ``"video"``, ``"audio"`` and ``"tags"``, rows in catalogue order
        (zero video rows for audio-only items).
    """
    from avrec.features import AudioEncoder, AVCorrespondence, FeatureExtractor, VideoEncoder

    path = cache_dir / "features" / f"{_features_key(corpus, config)}.npz"
    if path.exists():
        logger.info("reusing features from %s", path)
        return ItemFeatures.load(path)
    video = VideoEncoder(frames=4, frame_size=32, widths=(16, 32), embedding_dim=32)
    audio = AudioEncoder(widths=(16, 32), embedding_dim=32)
    catalogue = corpus.catalogue()
    if config.epochs > 0:
        has_video = np.asarray(corpus.has_video, dtype=bool)
        paths = [str(p) for p, v in zip(corpus.paths, has_video, strict=True) if v]
        av = AVCorrespondence(
            video,
            audio,
            epochs=config.epochs,
            batch_size=32,
            random_state=config.seed,
            verbose=config.verbose,
        ).fit(paths)
        encoders = {"video": av.video_encoder_, "audio": av.audio_encoder_}
    else:
        encoders = {
            "video": video.set_params(random_state=config.seed).init(),
            "audio": audio.set_params(random_state=config.seed).init(),
        }
    extractor = FeatureExtractor(
        encoders,
        frames=4,
        frame_size=32,
        audio_seconds=config.duration,
        batch_size=32,
        verbose=config.verbose,
    )
    features = extractor.extract(catalogue)
    tags = tag_features(corpus.metadata["tags"], corpus.item_ids)
    features = features.with_modality(
        "tags", tags[corpus.interactions.items.index(features.items.ids)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    features.save(path)
    return features


def demo_models(seed: int = 0, verbose: bool = False) -> dict[str, tuple[str, Callable[[], Any]]]:
    """The models ``avrec demo`` compares, as ``name -> (family, factory)``.

    Parameters
    ----------
    seed : int
        ``random_state`` of every model.
    verbose : bool
        Progress bars of the trained models.

    Returns
    -------
    dict of str to (str, callable)
    """
    from avrec.recommenders import (
        ALS,
        EASE,
        VBPR,
        ContentKNN,
        HybridBlend,
        Popularity,
        SequentialLSTM,
    )

    return {
        "Popularity": ("baseline", lambda: Popularity()),
        "ALS": (
            "cf",
            lambda: ALS(factors=32, regularization=50.0, iterations=15, random_state=seed),
        ),
        "EASE": ("cf", lambda: EASE(l2=200.0)),
        "ContentKNN": ("content", lambda: ContentKNN()),
        "VBPR": (
            "hybrid",
            lambda: VBPR(factors=32, iterations=30, random_state=seed, verbose=verbose),
        ),
        "SequentialLSTM": (
            "sequential",
            lambda: SequentialLSTM(epochs=10, random_state=seed, verbose=verbose),
        ),
        "HybridBlend": (
            "hybrid",
            lambda: HybridBlend(
                components=[("ease", EASE(l2=200.0)), ("content", ContentKNN())],
                weights="fit",
                random_state=seed,
            ),
        ),
    }


def evaluate_models(
    models: dict[str, tuple[str, Callable[[], Any]]],
    train: Interactions,
    test: Interactions,
    features: ItemFeatures,
    *,
    items: np.ndarray | None = None,
    seed: int = 0,
    verbose: bool = True,
    desc: str = "models",
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, Any]]:
    """Fit every model on ``train`` and evaluate it on ``test``.

    Parameters
    ----------
    models : dict
        As returned by :func:`demo_models`.
    train, test : Interactions
    features : ItemFeatures
        Passed to the models that use item features.
    items : ndarray of int, optional
        Candidate items (the cold items of a cold-item split).
    seed : int
        Seed of the random baseline.
    verbose : bool
    desc : str
        Progress bar label.

    Returns
    -------
    metrics : dict of str to dict of str to float
        Per model (plus ``"Random"``) the values of :data:`METRICS`.
    fit_seconds : dict of str to float
    fitted : dict of str to Recommender
    """
    from avrec.cli._commands import fit_model
    from avrec.evaluation import evaluate
    from avrec.utils import progress

    def measure(model: Any) -> dict[str, float]:
        res = evaluate(
            model, train, test, k=(10, 20), metrics=("ndcg", "recall", "coverage"), items=items
        )
        return {key: float(res[key]) for key in METRICS}

    metrics = {"Random": measure(RandomRanker(train.n_items, random_state=seed))}
    seconds: dict[str, float] = {}
    fitted: dict[str, Any] = {}
    for name in progress(list(models), verbose=verbose, desc=desc, unit="model"):
        _, factory = models[name]
        model = factory()
        if "verbose" in model.get_params(deep=False):
            model.set_params(verbose=False)  # one bar over the models is enough
        start = time.perf_counter()
        fit_model(model, train, features)
        seconds[name] = time.perf_counter() - start
        metrics[name] = measure(model)
        fitted[name] = model
        logger.info("%s: %s in %.1f s", name, metrics[name], seconds[name])
    return metrics, seconds, fitted


def run_demo(config: DemoConfig | None = None) -> DemoResult:
    """Run the demo pipeline end to end.

    Parameters
    ----------
    config : DemoConfig, optional

    Returns
    -------
    DemoResult
    """
    from avrec.data import cold_item_split, random_split

    config = config or DemoConfig()
    cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    name = (
        f"{config.n_items}x{config.n_users}-g{config.n_genres}-d{config.duration:g}-s{config.seed}"
    )
    corpus = make_av_corpus(
        cache_dir / "corpus" / name,
        n_items=config.n_items,
        n_users=config.n_users,
        n_genres=config.n_genres,
        duration=config.duration,
        random_state=config.seed,
        verbose=config.verbose,
    )
    timings["corpus"] = time.perf_counter() - start

    start = time.perf_counter()
    features = build_features(corpus, config, cache_dir)
    X = corpus.interactions
    if features.items != X.items:  # an undecodable file: keep the items that have features
        keep = X.items.index(features.items.ids)
        X = X.subset(items=keep[keep >= 0])
    features = features.align(X.items)
    timings["features"] = time.perf_counter() - start

    models = demo_models(config.seed, verbose=False)
    start = time.perf_counter()
    warm_train, warm_test = random_split(X, test_size=0.2, random_state=config.seed)
    warm, seconds, fitted = evaluate_models(
        models,
        warm_train,
        warm_test,
        features,
        seed=config.seed,
        verbose=config.verbose,
        desc="warm split",
    )
    timings["warm"] = time.perf_counter() - start

    start = time.perf_counter()
    cold_train, cold_test, cold_items = cold_item_split(X, test_size=0.2, random_state=config.seed)
    cold, _, _ = evaluate_models(
        models,
        cold_train,
        cold_test,
        features,
        items=cold_items,
        seed=config.seed,
        verbose=config.verbose,
        desc="cold split",
    )
    timings["cold"] = time.perf_counter() - start

    rows = [ModelRow("Random", "baseline", warm["Random"], cold["Random"], 0.0)]
    rows += [
        ModelRow(name, family, warm[name], cold[name], seconds[name])
        for name, (family, _) in models.items()
    ]
    return DemoResult(
        config,
        rows,
        corpus,
        features,
        timings,
        fitted,
        (warm_train, warm_test),
        (cold_train, cold_test, cold_items),
    )


def config_dict(config: DemoConfig) -> dict[str, Any]:
    """The config as JSON-ready values (for the report)."""
    out = asdict(config)
    out["cache_dir"] = str(out["cache_dir"]) if out["cache_dir"] else None
    return out
