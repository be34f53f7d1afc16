"""Compression of pretrained encoders: size, CPU latency and cold-item NDCG@10, in one table.

For the all-MiniLM-L6-v2 text encoder (:class:`avrec.features.TextEncoder`, item
descriptions of the synthetic corpus) and the EfficientNet-Lite0 frame backbone
(:class:`avrec.features.FrameBackbone`, frames of the corpus videos), each row is one
variant of the encoder:

* ``float``: the pretrained encoder (the baseline, measured in the same run);
* ``int8``: :func:`avrec.features.compression.quantize_dynamic` (Linear per-channel int8,
  Embedding uint8 weight-only) with the ``x86`` (fbgemm) or the ``onednn`` kernels;
  ``FFN out float`` keeps the feed-forward output layers (whose inputs carry outlying
  activations) in float. Not for the CNN: dynamic quantisation does not cover convolutions;
* ``pruned l1 x%`` (global magnitude) and ``pruned ln x%`` (structured, per layer,
  output channels): :func:`avrec.features.compression.prune`;
* ``distilled``: :class:`avrec.features.compression.Distiller` into a small student trained
  on the catalogue's items (unlabeled): for text a 1-layer MiniLM initialised from the
  teacher's embeddings and first layer, for frames the small
  :class:`avrec.features.VideoEncoder` (32 x 32 frames) from random weights.

Columns: saved size (MB, the directory ``save`` writes), CPU latency per item (ms of process
CPU time on one torch thread, which other processes on shared cores barely disturb, unlike
wall time; the encoder's ``transform`` on ``--latency-items`` already-decoded inputs, batch
32, after a warm-up, best of ``--repeats``; tokenisation included for text), speed-up over
float (the median ratio of runs alternated with the float encoder's),
mean cosine to the float embeddings (distilled: to the teacher's, through the trained
projection when the sizes differ), and the cold-item NDCG@10 of
:class:`avrec.recommenders.ContentKNN` on that modality alone (20% of the items held out
of training, ranked among the cold items) with its change relative to float.

Example::

    python benchmarks/bench_compression.py                  # 200 items, text and frames
    python benchmarks/bench_compression.py --items 120 --skip-frames
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avrec.data import ItemFeatures, cold_item_split, make_av_corpus
from avrec.evaluation import evaluate
from avrec.features import FrameBackbone, TextEncoder, VideoEncoder, pretrained_weights
from avrec.features.compression import Distiller, prune, quantize_dynamic, sparsity
from avrec.media import read_video
from avrec.recommenders import ContentKNN

MB = 1e6


def dir_size(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MB


def _seconds(encoder: Any, items: Any) -> float:
    start = time.process_time()
    encoder.transform(items, batch_size=32)
    return time.process_time() - start


def latency(encoder: Any, baseline: Any, items: Any, repeats: int) -> tuple[float, float]:
    """CPU ms per item of ``encoder.transform(items)`` on one thread (process time, best of
    ``repeats``: robust to other processes on shared cores, unlike wall time), and the
    speed-up over ``baseline``: the median ratio of runs alternated with the baseline's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder.transform(items[:8])  # warm-up
        baseline.transform(items[:8])
        own, ratios = [], []
        for _ in range(repeats):
            base = _seconds(baseline, items)
            own.append(_seconds(encoder, items))
            ratios.append(base / own[-1])
    finally:
        torch.set_num_threads(threads)
    return 1000 * min(own) / len(items), float(np.median(ratios))


def cold_ndcg(X: Any, split: tuple, name: str, emb: np.ndarray, present: np.ndarray) -> float:
    train, test, cold = split
    feats = ItemFeatures({name: emb}, items=X.items, present={name: present})
    model = ContentKNN().fit(train, item_features=feats)
    return float(evaluate(model, train, test, k=10, metrics=("ndcg",), items=cold)["ndcg@10"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return float((a * b).sum(1).mean())


def text_student(teacher: TextEncoder, folder: Path, layers: int) -> TextEncoder:
    """A ``layers``-layer copy of the teacher's architecture, its weights from the teacher's
    embeddings and first ``layers`` layers (the folder gets a config and the tokenizer)."""
    source = Path(pretrained_weights("all-minilm-l6-v2"))
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = layers
    (folder / "config.json").write_text(json.dumps(config))
    student = TextEncoder(model_dir=folder, random_state=0).init()
    teacher_state = teacher.model_.transformer.state_dict()
    student.model_.transformer.load_state_dict(
        {k: teacher_state[k] for k in student.model_.transformer.state_dict()}
    )
    return student


def run_variants(
    label: str,
    base: Any,
    items: list,
    X: Any,
    split: tuple,
    present: np.ndarray,
    variants: dict[str, Any],
    workdir: Path,
    repeats: int,
    latency_items: int,
) -> list[dict[str, Any]]:
    rows = []
    reference = None
    for name, make in variants.items():
        start = time.perf_counter()
        encoder, compare = make()
        build = time.perf_counter() - start
        out = workdir / f"{label}-{name}".replace(" ", "_").replace("%", "")
        encoder.save(out)
        emb = encoder.transform(items)
        ms, speedup = latency(encoder, base, items[:latency_items], repeats)
        full = np.zeros((X.n_items, emb.shape[1]), dtype=np.float32)
        full[present] = emb
        row = {
            "encoder": label,
            "variant": name,
            "size_mb": dir_size(out),
            "ms_per_item": ms,
            "speedup": speedup,
            "cosine": compare(emb) if compare else 1.0,
            "ndcg10": cold_ndcg(X, split, label, full, present),
            "build_s": build,
            "sparsity": sparsity(encoder, layers=("Conv2d", "Linear"))["total"],
        }
        if reference is None:
            reference = row
        row["smaller"] = reference["size_mb"] / row["size_mb"]
        row["ndcg_rel"] = row["ndcg10"] / reference["ndcg10"] - 1 if reference["ndcg10"] else 0.0
        rows.append(row)
        print(
            f"  {label:6s} {name:22s} {row['size_mb']:8.1f} MB {row['ms_per_item']:8.2f} ms/item "
            f"cos {row['cosine']:.4f} NDCG@10 {row['ndcg10']:.4f} ({build:.0f} s)",
            flush=True,
        )
        shutil.rmtree(out, ignore_errors=True)
    return rows


def text_rows(args: argparse.Namespace, corpus: Any, X: Any, split: tuple, work: Path) -> list:
    texts_by_id = corpus.text()
    texts = [texts_by_id[i] for i in X.items.ids]
    present = np.ones(X.n_items, dtype=bool)
    teacher = TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2")).fit()
    base = teacher.transform(texts)

    def close(emb: np.ndarray) -> float:
        return cosine(emb, base)

    students: list[Any] = []

    def distilled() -> tuple[Any, Any]:
        student = text_student(teacher, work / "student-text", args.student_layers)
        student.set_params(freeze=False)
        student.model_.requires_grad_(True)
        student.model_.transformer.embeddings.requires_grad_(False)  # kept from the teacher
        d = Distiller(
            teacher,
            student,
            epochs=args.distill_epochs,
            batch_size=16,
            learning_rate=2e-4,
            weight_decay=0.0,
            random_state=args.seed,
        ).fit(texts)
        students.append(d.student_)
        return d.student_, close

    variants = {
        "float": lambda: (teacher, None),
        "int8 (x86)": lambda: (quantize_dynamic(teacher, engine="x86"), close),
        "int8 (onednn)": lambda: (quantize_dynamic(teacher, engine="onednn"), close),
        "int8 (onednn, FFN out float)": lambda: (
            quantize_dynamic(teacher, exclude=("*.layer.?.output.dense",), engine="onednn"),
            close,
        ),
        "pruned l1 30%": lambda: (prune(teacher, amount=0.3, layers=("Linear",)), close),
        "pruned ln 20%": lambda: (
            prune(teacher, method="ln_structured", amount=0.2, scope="layer", layers=("Linear",)),
            close,
        ),
        f"distilled {args.student_layers}-layer": distilled,
        f"distilled {args.student_layers}-layer + int8": lambda: (
            quantize_dynamic(students[-1], engine="onednn"),
            close,
        ),
    }
    return run_variants(
        "text", teacher, texts, X, split, present, variants, work, args.repeats, args.latency_items
    )


def frame_rows(args: argparse.Namespace, corpus: Any, X: Any, split: tuple, work: Path) -> list:
    has_video = np.asarray(corpus.has_video, dtype=bool)
    order = corpus.interactions.items.index(X.items.ids)
    present = has_video[order]
    paths = [corpus.paths[i] for i in order[present]]
    size = args.image_size
    clips = [read_video(p, num_frames=args.frames, size=(size, size)).frames for p in paths]
    teacher = FrameBackbone(
        weights=pretrained_weights("efficientnet_lite0"),
        image_size=size,
        frames=args.frames,
        batch_size=32,
    ).fit()
    base = teacher.transform(clips)

    def close(emb: np.ndarray) -> float:
        return cosine(emb, base)

    def distilled() -> tuple[Any, Any]:
        student = VideoEncoder(
            frames=args.frames, frame_size=32, widths=(16, 32, 64), embedding_dim=128
        )
        d = Distiller(
            teacher,
            student,
            epochs=args.distill_epochs,
            batch_size=16,
            learning_rate=3e-3,
            random_state=args.seed,
        ).fit(clips)

        def to_teacher(emb: np.ndarray) -> float:
            with torch.no_grad():
                return cosine(d.projection_(torch.from_numpy(emb)).numpy(), base)

        return d.student_, to_teacher

    variants = {
        "float": lambda: (teacher, None),
        "pruned l1 30%": lambda: (prune(teacher, amount=0.3), close),
        "pruned ln 20%": lambda: (
            prune(teacher, method="ln_structured", amount=0.2, scope="layer"),
            close,
        ),
        "distilled VideoEncoder": distilled,
    }
    return run_variants(
        "frames",
        teacher,
        clips,
        X,
        split,
        present,
        variants,
        work,
        args.repeats,
        args.latency_items,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--distill-epochs", type=int, default=30)
    parser.add_argument("--student-layers", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-items", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="for training and embedding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-frames", action="store_true")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        corpus = make_av_corpus(
            work / "corpus",
            n_items=args.items,
            n_users=args.users,
            duration=args.duration,
            random_state=args.seed,
            verbose=False,
        )
        X = corpus.interactions
        split = cold_item_split(X, test_size=0.2, random_state=args.seed)
        print(
            f"corpus: {X.n_items} items, {X.n_users} users, {len(split[2])} cold items "
            f"({time.perf_counter() - start:.0f} s); torch threads {args.threads}",
            flush=True,
        )
        rows = []
        if not args.skip_text:
            rows += text_rows(args, corpus, X, split, work)
        if not args.skip_frames:
            rows += frame_rows(args, corpus, X, split, work)
    print()
    print(
        "| encoder | variant | size (MB) | smaller | CPU ms/item (1 thread) | speed-up | "
        "cosine to float | zeros | cold NDCG@10 | rel. change |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['variant']} | {r['size_mb']:.1f} | {r['smaller']:.1f}x | "
            f"{r['ms_per_item']:.2f} | {r['speedup']:.1f}x | {r['cosine']:.4f} | "
            f"{r['sparsity']:.0%} | {r['ndcg10']:.4f} | {r['ndcg_rel']:+.1%} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
