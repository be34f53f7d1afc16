"""From a catalogue of media files (and text) to ItemFeatures: :class:`FeatureExtractor`."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch.utils.data import DataLoader, Dataset, get_worker_info

from avrec.data import ItemFeatures, Vocabulary
from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    DataWarning,
    MediaDecodeError,
    NotFittedError,
)
from avrec.features._cache import FeatureCache, cache_key, file_sha256
from avrec.features._catalogue import catalogue_rows, text_sha256
from avrec.features.encoders import BaseEncoder
from avrec.media import probe, read_audio, read_video
from avrec.utils import (
    check_positive_int,
    is_distributed,
    is_main_process,
    launched_by_torchrun,
    progress,
)

__all__ = ["FeatureExtractor", "MediaDataset", "collate_media"]

logger = logging.getLogger(__name__)

_DECODE_ERRORS = (MediaDecodeError, OSError, ConfigurationError)


class MediaDataset(Dataset):
    """Decodes one catalogue item per index, for a :class:`torch.utils.data.DataLoader`.

    Each item is a dict: ``index``; ``error`` (a message, or None);
    ``sha256`` of the file (with a cache); ``cached`` (modality ->
    ``(embedding, missing)`` found in the cache); ``video`` (uint8 tensor
    ``(frames, 3, frame_size, frame_size)``) and ``audio`` (float32 mono
    ``(time,)``) when some modality needs them and the file has the stream,
    else None; ``has_video`` / ``has_audio``; ``text`` (str or None),
    ``has_text`` and ``text_sha256`` (with a cache); ``decode_seconds``.
    The file is not opened when only text modalities are asked for.

    Parameters
    ----------
    paths : sequence of str or path-like
    streams : mapping of str to str
        Modality name -> the stream it reads ("video", "audio" or "text").
    frames : int
    frame_size : int
    sample_rate : int
    audio_seconds : float or None
        Decode at most this many seconds of audio (None: all).
    cache : FeatureCache, optional
    keys : mapping of str to str, optional
        Modality -> cache key (needed with ``cache``).
    texts : sequence of str or None, optional
        Each item's text for the "text" streams (None: the item has none).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        streams: Mapping[str, str],
        frames: int,
        frame_size: int,
        sample_rate: int,
        audio_seconds: float | None,
        cache: FeatureCache | None = None,
        keys: Mapping[str, str] | None = None,
        texts: Sequence[str | None] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.streams = dict(streams)
        self.frames = frames
        self.frame_size = frame_size
        self.sample_rate = sample_rate
        self.audio_seconds = audio_seconds
        self.cache = cache
        self.keys = dict(keys or {})
        self.texts = None if texts is None else list(texts)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        item: dict[str, Any] = {
            "index": index, "error": None, "sha256": None, "cached": {}, "video": None,
            "audio": None, "has_video": False, "has_audio": False, "decoded": False,
            "decode_seconds": 0.0, "text": None, "has_text": False, "text_sha256": None,
        }  # fmt: skip
        media = {name: s for name, s in self.streams.items() if s != "text"}
        text = None if self.texts is None else self.texts[index]
        if text is not None and len(media) < len(self.streams):
            item["text"], item["has_text"] = text, True
            if self.cache is not None:
                item["text_sha256"] = text_sha256(text)
                for name in self.streams.keys() - media.keys():
                    hit = self.cache.get(self.keys[name], item["text_sha256"])
                    if hit is not None:
                        item["cached"][name] = hit
        if not media:
            return item
        try:
            if self.cache is not None:
                item["sha256"] = file_sha256(path)
                for name in media:
                    hit = self.cache.get(self.keys[name], item["sha256"])
                    if hit is not None:
                        item["cached"][name] = hit
            needed = {s for name, s in media.items() if name not in item["cached"]}
            if needed:
                began = time.perf_counter()
                item["decoded"] = True
                # one FFmpeg thread per DataLoader worker; all cores in the main process
                threads = 1 if get_worker_info() is not None else None
                info = probe(path)
                item["has_video"], item["has_audio"] = info.has_video, info.has_audio
                if "video" in needed and info.has_video:
                    size = (self.frame_size, self.frame_size)
                    clip = read_video(path, num_frames=self.frames, size=size, threads=threads)
                    item["video"] = clip.frames
                if "audio" in needed and info.has_audio:
                    clip = read_audio(path, self.sample_rate, duration=self.audio_seconds)
                    item["audio"] = clip.samples[0]
                item["decode_seconds"] = time.perf_counter() - began
        except _DECODE_ERRORS as exc:
            item["error"] = f"{type(exc).__name__}: {exc}"
            item["video"] = item["audio"] = None
        return item


def collate_media(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of :class:`MediaDataset` items into one batch.

    Returns a dict with the per-item lists (``index``, ``error``, ``sha256``,
    ``cached``, ``has_video``, ``has_audio``, ``has_text``, ``text_sha256``),
    ``decode_seconds`` (summed), ``decoded``, and per stream ``video`` /
    ``audio`` / ``text``: ``(rows, batch, lengths)`` where ``rows`` are
    positions in the batch holding the stream, ``batch`` the stacked frames
    ``(k, T, 3, S, S)``, zero-padded sound ``(k, time)`` or the list of ``k``
    texts and ``lengths`` the valid samples (None for video and text), or
    None if no item has it.
    """
    keys = ("index", "error", "sha256", "cached", "has_video", "has_audio", "decoded")
    batch: dict[str, Any] = {
        key: [item[key] for item in items] for key in (*keys, "has_text", "text_sha256")
    }
    batch["decode_seconds"] = float(sum(item["decode_seconds"] for item in items))
    rows = [i for i, item in enumerate(items) if item["video"] is not None]
    batch["video"] = (rows, torch.stack([items[i]["video"] for i in rows]), None) if rows else None
    rows = [i for i, item in enumerate(items) if item["audio"] is not None]
    batch["audio"] = None
    if rows:
        waves = [items[i]["audio"] for i in rows]
        lengths = torch.tensor([len(w) for w in waves])
        padded = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        batch["audio"] = (rows, padded, lengths)
    rows = [i for i, item in enumerate(items) if item["text"] is not None]
    batch["text"] = (rows, [items[i]["text"] for i in rows], None) if rows else None
    return batch


class FeatureExtractor(BaseEstimator):
    """Turn a catalogue of media files (and text) into :class:`~avrec.data.ItemFeatures`.

    Files are decoded in :class:`~torch.utils.data.DataLoader` worker
    processes (:class:`MediaDataset`: ``frames`` frames sampled uniformly and
    squashed to ``frame_size`` squares, mono audio at ``sample_rate``),
    stacked by :func:`collate_media`, and embedded batch by batch by every
    encoder in eval mode under :func:`torch.inference_mode`. Each modality of
    the result is one encoder's output. Text encoders
    (:class:`~avrec.features.TextEncoder`, ``modality == "text"``) receive
    each item's text (titles, descriptions, tags ...) from the catalogue
    instead of decoded media.

    Parameters
    ----------
    encoders : mapping of str to BaseEncoder
        Modality name -> a fitted (or ``init()``-ed, or loaded) encoder, e.g.
        ``{"video": VideoEncoder(...), "audio": AudioEncoder(...), "text":
        TextEncoder(...)}``. Each reads the stream of its ``modality``
        attribute ("video", "audio" or "text").
    frames : int, default=16
        Frames decoded per video.
    frame_size : int, default=64
        Side of the decoded square frames (the encoders resize to their own size).
    sample_rate : int, default=16000
        Must equal the audio encoders' ``sample_rate``.
    audio_seconds : float, optional
        Decode only the first ``audio_seconds`` of sound (None: all of it).
    batch_size : int, default=16
        Items per DataLoader batch.
    num_workers : int, default=0
        Decoding processes (0: decode in this process).
    cache_dir : str or path-like, optional
        Cache embeddings on disk keyed by the file's SHA-256 (the text's, for
        text encoders) and the encoder's fingerprint (class, hyperparameters,
        weights) plus the decoding settings: a re-run decodes only new or
        changed files and embeds only new or changed texts.
    on_error : {"skip", "raise"}, default="skip"
        An undecodable file is left out of the result, listed in
        ``failures_`` and reported with a :class:`~avrec.exceptions.DataWarning`;
        or raise :class:`~avrec.exceptions.MediaDecodeError`.
    verbose : bool, default=True
        Progress bar over batches.
    text_columns : sequence of str, optional
        Columns of a table catalogue (see :meth:`extract`) joined into each
        item's text, e.g. ``("title", "description")``.

    Attributes
    ----------
    failures_ : dict of item id to str
        Items left out and why.
    missing_ : dict of str to numpy.ndarray of bool, shape (n_items,)
        Per modality, the returned items whose file lacks that stream (e.g. an
        audio-only file for a video encoder) or that have no text (for a text
        encoder): their row is all zeros.
    stats_ : dict of str to float
        ``items``, ``decoded`` (files opened for decoding), ``cached`` (item
        modalities read from the cache), ``decode_seconds`` (summed over
        workers), ``encode_seconds`` and ``seconds`` (wall time).

    Notes
    -----
    Items with no stream for a modality, or no text, get a zero row and are
    flagged in ``missing_`` (and in the result's presence masks,
    :meth:`~avrec.data.ItemFeatures.mask`) rather than dropped, so every
    modality stays aligned to the same item vocabulary; items without text
    are also reported with a :class:`~avrec.exceptions.DataWarning`.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from avrec.media import write_video
    >>> from avrec.features import AudioEncoder, VideoEncoder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> tone = np.sin(np.arange(16000) / 5)[None] * 0.3
    >>> for name in ("a", "b"):
    ...     write_video(root / f"{name}.mp4", np.full((8, 32, 32, 3), 90, np.uint8), 8,
    ...                 audio=tone, sample_rate=16000)
    >>> extractor = FeatureExtractor(
    ...     {"video": VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8).init(),
    ...      "audio": AudioEncoder(widths=(4,), embedding_dim=6).init()},
    ...     frames=4, frame_size=16, verbose=False)
    >>> extractor.extract({"a": root / "a.mp4", "b": root / "b.mp4"})
    ItemFeatures(n_items=2, video=8, audio=6)
    """

    def __init__(
        self,
        encoders: Mapping[str, BaseEncoder],
        frames: int = 16,
        frame_size: int = 64,
        sample_rate: int = 16000,
        audio_seconds: float | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        on_error: str = "skip",
        verbose: bool = True,
        text_columns: Sequence[str] | None = None,
    ) -> None:
        self.encoders = encoders
        self.frames = frames
        self.frame_size = frame_size
        self.sample_rate = sample_rate
        self.audio_seconds = audio_seconds
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.on_error = on_error
        self.verbose = verbose
        self.text_columns = text_columns

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> dict[str, BaseEncoder]:
        if not isinstance(self.encoders, Mapping) or not self.encoders:
            raise ConfigurationError("encoders must be a non-empty mapping of name -> encoder")
        for name, encoder in self.encoders.items():
            if not isinstance(name, str) or not name or ":" in name:
                raise ConfigurationError(f"encoder names must be strings without ':', got {name!r}")
            if not isinstance(encoder, BaseEncoder):
                raise ConfigurationError(
                    f"encoders[{name!r}] must be an avrec encoder, got {type(encoder).__name__}"
                )
            if encoder.modality == "audio" and encoder.sample_rate != self.sample_rate:
                raise ConfigurationError(
                    f"encoders[{name!r}].sample_rate={encoder.sample_rate} differs from "
                    f"sample_rate={self.sample_rate}"
                )
        check_positive_int(self.frames, "frames")
        check_positive_int(self.frame_size, "frame_size")
        check_positive_int(self.sample_rate, "sample_rate")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.num_workers, "num_workers", minimum=0)
        if self.audio_seconds is not None and not (
            isinstance(self.audio_seconds, (int, float)) and self.audio_seconds > 0
        ):
            raise ConfigurationError(
                f"audio_seconds must be None or a number > 0, got {self.audio_seconds!r}"
            )
        if self.on_error not in ("skip", "raise"):
            raise ConfigurationError(f"on_error must be 'skip' or 'raise', got {self.on_error!r}")
        columns = self.text_columns
        if columns is not None and (
            isinstance(columns, str)
            or not isinstance(columns, Sequence)
            or not columns
            or not all(isinstance(c, str) and c for c in columns)
        ):
            raise ConfigurationError(
                f"text_columns must be None or a non-empty sequence of column names, got "
                f"{columns!r}"
            )
        return dict(self.encoders)

    def _rows(
        self, catalogue: Any, text: Any, encoders: Mapping[str, BaseEncoder]
    ) -> tuple[list[Any], list[Any], list[str | None] | None]:
        """The catalogue's ids, paths and texts, checked against what the encoders read."""
        reads_text = [name for name, e in encoders.items() if e.modality == "text"]
        ids, paths, texts = catalogue_rows(
            catalogue,
            text=text,
            text_columns=self.text_columns,
            need_paths=len(reads_text) < len(encoders),
        )
        if reads_text and texts is None:
            raise ConfigurationError(
                f"encoders {reads_text} read text: pass text= (item id -> text) to extract, "
                "or a table catalogue with text_columns set"
            )
        return ids, paths, texts

    def _settings(self, stream: str) -> dict[str, Any]:
        if stream == "text":
            return {"stream": "text"}
        if stream == "video":
            return {"stream": "video", "frames": self.frames, "frame_size": self.frame_size}
        return {"stream": "audio", "sample_rate": self.sample_rate, "seconds": self.audio_seconds}

    # ------------------------------------------------------------------ public API
    def extract(
        self,
        catalogue: Any,
        *,
        text: Mapping[Any, Any] | Sequence[Any] | None = None,
        shard_dir: str | os.PathLike[str] | None = None,
        distributed: bool | None = None,
    ) -> ItemFeatures:
        """Embed every item of a catalogue.

        Parameters
        ----------
        catalogue : mapping of item id to path, sequence of paths, or table
            A sequence uses the paths (as strings) as item ids. A table (a
            pandas DataFrame, or a mapping of column name to column) has a
            ``path`` column, an optional ``item_id`` column (default: the
            paths) and the ``text_columns``; with only text encoders it needs
            no ``path``.
        text : mapping of item id to str, or sequence of str, optional
            The items' text for the text encoders, instead of ``text_columns``
            (a sequence follows the catalogue order). Items left out, None or
            blank have no text: a zero row, flagged in ``missing_``.
        shard_dir : str or path-like, optional
            Folder (shared by all processes) for per-process shard files: each
            process embeds a contiguous, batch-aligned slice of the catalogue
            and writes it there atomically; a rerun reuses every shard whose
            fingerprint (encoders, settings, catalogue, files' sizes and
            modification times) still matches, so an interrupted job resumes.
            Required when distributed; also usable by a single process.
        distributed : bool, optional
            None (default): shard over the processes of ``torchrun`` when
            launched by it (the process group is initialised if needed, see
            :func:`avrec.utils.init_from_env`). False: never. True: always
            (a lone process is a group of one).

        Returns
        -------
        ItemFeatures
            One modality per encoder, rows in catalogue order (items that
            failed to decode left out, see ``failures_``). Distributed, every
            process returns the same merged result, equal to the one of a single
            process.

        Raises
        ------
        NotFittedError
            If an encoder is neither fitted, initialised nor loaded.
        MediaDecodeError
            With ``on_error="raise"``, for the first file that cannot be decoded.
        DataValidationError
            If the catalogue is empty or malformed, ``text`` does not fit it,
            or every item failed.
        ConfigurationError
            If distributed without ``shard_dir``, or a text encoder has no text.
        """
        encoders = self._check_params()
        for name, encoder in encoders.items():
            if not hasattr(encoder, "model_"):
                raise NotFittedError(
                    f"encoders[{name!r}] is not fitted: fit it, call init() for random "
                    "weights, load it with from_pretrained(), or use fit_extract()"
                )
        ids, paths, texts = self._rows(catalogue, text, encoders)
        started = time.perf_counter()
        if distributed is None:
            distributed = launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1
            distributed = distributed or is_distributed()
        if distributed or shard_dir is not None:
            from avrec.features._sharded import extract_sharded

            if shard_dir is None:
                raise ConfigurationError(
                    "distributed extraction needs shard_dir: a folder every process can "
                    "read and write"
                )
            out, missing, failed, stats = extract_sharded(
                self, encoders, ids, paths, shard_dir, distributed=bool(distributed), texts=texts
            )
        else:
            out, missing, failed, stats = self._extract_rows(encoders, ids, paths, texts)
        keep = np.array([i not in failed for i in range(len(ids))], dtype=bool)
        stats["seconds"] = time.perf_counter() - started
        self.failures_ = {ids[i]: failed[i] for i in sorted(failed)}
        self.missing_ = {name: mask[keep] for name, mask in missing.items()}
        self.stats_ = stats
        if failed:
            shown = "; ".join(f"{ids[i]!r} ({failed[i]})" for i in sorted(failed)[:3])
            warnings.warn(
                f"{len(failed)} of {len(ids)} items could not be decoded and were left out "
                f"(see failures_): {shown}",
                DataWarning,
                stacklevel=2,
            )
        if not keep.any():
            raise DataValidationError("no item of the catalogue could be decoded")
        for name, mask in self.missing_.items():
            if encoders[name].modality == "text" and mask.any():
                shown = ", ".join(repr(i) for i in np.asarray(ids, dtype=object)[keep][mask][:3])
                warnings.warn(
                    f"{int(mask.sum())} of {int(keep.sum())} items have no text for "
                    f"encoders[{name!r}] (e.g. {shown}): their rows are zeros, flagged in "
                    f"missing_[{name!r}]",
                    DataWarning,
                    stacklevel=2,
                )
        logger.info(
            "extracted %d items (%d decoded, %d cached modality rows) in %.1f s",
            int(keep.sum()), stats["decoded"], stats["cached"], stats["seconds"],
        )  # fmt: skip
        items = Vocabulary(np.asarray(ids, dtype=object)[keep].tolist())
        present = {name: ~mask for name, mask in self.missing_.items() if mask.any()}
        return ItemFeatures({name: arr[keep] for name, arr in out.items()}, items, present=present)

    def _extract_rows(
        self,
        encoders: dict[str, BaseEncoder],
        ids: list[Any],
        paths: list[Any],
        texts: list[str | None] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[int, str], dict[str, float]]:
        """Embed items (positions ``0..len(ids)-1``): rows, missing masks, failures, stats."""
        streams = {name: encoder.modality for name, encoder in encoders.items()}
        cache = keys = None
        if self.cache_dir is not None:
            cache = FeatureCache(self.cache_dir)
            keys = {
                name: cache_key(encoder.fingerprint(), self._settings(streams[name]))
                for name, encoder in encoders.items()
            }
        dataset = MediaDataset(
            paths, streams, self.frames, self.frame_size, self.sample_rate,
            self.audio_seconds, cache, keys, texts,
        )  # fmt: skip
        out = {
            name: np.zeros((len(ids), e.n_features_out_), np.float32)
            for name, e in encoders.items()
        }
        missing = {name: np.zeros(len(ids), dtype=bool) for name in encoders}
        failed: dict[int, str] = {}
        stats = {"items": len(ids), "decoded": 0, "cached": 0, "decode_seconds": 0.0}
        stats["encode_seconds"] = 0.0
        for batch in progress(
            self._loader(dataset, encoders), verbose=bool(self.verbose) and is_main_process(),
            desc="extract", total=-(-len(ids) // self.batch_size), unit="batch",
        ):  # fmt: skip
            stats["decode_seconds"] += batch["decode_seconds"]
            stats["decoded"] += sum(batch["decoded"])
            for b, error in enumerate(batch["error"]):
                if error is not None:
                    self._fail(ids[batch["index"][b]], error)
                    failed[batch["index"][b]] = error
            began = time.perf_counter()
            for name, encoder in encoders.items():
                stats["cached"] += self._fill(
                    name, encoder, batch, out[name], missing[name], cache, keys
                )
            stats["encode_seconds"] += time.perf_counter() - began
        return out, missing, failed, stats

    def fit_extract(
        self, catalogue: Any, *, text: Mapping[Any, Any] | Sequence[Any] | None = None
    ) -> ItemFeatures:
        """Fit every encoder on the catalogue's decoded media (or text), then :meth:`extract`.

        The files are decoded once for training (every item that has the
        encoder's stream) and again by :meth:`extract` (or read from the cache).
        Text encoders are fitted on the items' texts (a pretrained one only
        loads its weights).

        Parameters
        ----------
        catalogue : mapping of item id to path, sequence of paths, or table
        text : mapping of item id to str, or sequence of str, optional
            As in :meth:`extract`.

        Returns
        -------
        ItemFeatures
        """
        encoders = self._check_params()
        _, paths, texts = self._rows(catalogue, text, encoders)
        streams = {name: e.modality for name, e in encoders.items() if e.modality != "text"}
        decoded: dict[str, list[Any]] = {"video": [], "audio": []}
        if streams:
            dataset = MediaDataset(
                paths, streams, self.frames, self.frame_size, self.sample_rate, self.audio_seconds
            )
            for batch in progress(self._loader(dataset, encoders), desc="decode for fit",
                                  verbose=bool(self.verbose) and is_main_process(),
                                  unit="batch"):  # fmt: skip
                for stream in decoded:
                    if batch[stream] is not None:
                        rows, tensor, lengths = batch[stream]
                        for k in range(len(rows)):
                            item = tensor[k] if lengths is None else tensor[k, : lengths[k]]
                            decoded[stream].append(item)
        decoded["text"] = [t for t in texts or [] if t is not None]
        for name, encoder in encoders.items():
            clips = decoded[encoder.modality]
            if not clips:
                what = "text" if encoder.modality == "text" else f"a {encoder.modality} stream"
                raise DataValidationError(f"no item has {what} to fit {name!r}")
            logger.info("fitting encoders[%r] on %d items", name, len(clips))
            encoder.fit(torch.stack(clips) if encoder.modality == "video" else clips)
        return self.extract(catalogue, text=text)

    # ------------------------------------------------------------------ internals
    def _loader(self, dataset: MediaDataset, encoders: Mapping[str, BaseEncoder]) -> DataLoader:
        cuda = any(
            getattr(e, "device_", torch.device("cpu")).type == "cuda" for e in encoders.values()
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_media,
            pin_memory=cuda,
        )

    def _fail(self, item_id: Any, error: str) -> None:
        if self.on_error == "raise":
            raise MediaDecodeError(f"item {item_id!r}: {error}")
        logger.warning("skipping item %r: %s", item_id, error)

    @staticmethod
    def _fill(
        name: str,
        encoder: BaseEncoder,
        batch: dict[str, Any],
        out: np.ndarray,
        missing: np.ndarray,
        cache: FeatureCache | None,
        keys: Mapping[str, str] | None,
    ) -> int:
        """Write one modality's rows of a batch: from the cache, the encoder, or zeros."""
        stream = encoder.modality
        digest = "text_sha256" if stream == "text" else "sha256"  # the cache's content key
        present = batch[stream]
        hits = 0
        for b, index in enumerate(batch["index"]):
            if batch["error"][b] is not None:
                continue
            hit = batch["cached"][b].get(name)
            if hit is not None:
                out[index], missing[index] = hit
                hits += 1
            elif not batch[f"has_{stream}"][b]:
                missing[index] = True  # the row stays zero
                if cache is not None and batch[digest][b] is not None:
                    cache.put(keys[name], batch[digest][b], out[index], missing=True)
        if present is None:
            return hits
        rows, tensor, lengths = present
        wanted = [
            k for k, b in enumerate(rows)
            if name not in batch["cached"][b] and batch["error"][b] is None
        ]  # fmt: skip
        if not wanted:
            return hits
        if len(wanted) < len(rows):
            tensor = [tensor[k] for k in wanted] if isinstance(tensor, list) else tensor[wanted]
            lengths = None if lengths is None else lengths[wanted]
        embeddings = encoder.embed_batch(tensor, lengths).numpy()
        for k, emb in zip(wanted, embeddings, strict=True):
            b = rows[k]
            out[batch["index"][b]] = emb
            if cache is not None:
                cache.put(keys[name], batch[digest][b], emb, missing=False)
        return hits
