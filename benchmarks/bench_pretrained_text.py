"""Genre signal in the corpus text: a linear probe on pretrained MiniLM sentence embeddings.

The synthetic corpus (:func:`avrec.data.make_av_corpus`) gives each item a one-sentence
``description`` naming its hidden genre among filler words; a ``text_noise`` share of the
items names a wrong genre, so no text model can exceed ``1 - text_noise`` accuracy (the
*ceiling* row). Each row embeds the items' text through
:class:`avrec.features.FeatureExtractor` with a :class:`avrec.features.TextEncoder`
(text only: no media is decoded) and scores a linear genre probe: logistic regression,
stratified 5-fold cross-validated accuracy (mean +- std over the folds).

Rows, measured in the same run:

* all-MiniLM-L6-v2 (the ``avrec[pretrained]`` weights) on the descriptions, on title +
  description, and on the titles alone (random words: a control that should sit at chance);
* the same architecture with random weights (``init()``) on the descriptions;
* a TF-IDF bag of words on the descriptions (the classic baseline);
* chance (the majority genre share) and the ceiling.

Example::

    python benchmarks/bench_pretrained_text.py                   # 200 items, 4 genres
    python benchmarks/bench_pretrained_text.py --items 400 --genres 8 --text-noise 0.3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import markdown_table, set_threads


def probe(features: np.ndarray, genres: np.ndarray, seed: int) -> tuple[float, float]:
    """Stratified 5-fold accuracy of a logistic-regression genre probe: (mean, std)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_score(model, features, genres, cv=folds, scoring="accuracy")
    return float(scores.mean()), float(scores.std())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--text-noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    set_threads(args.threads)

    from sklearn.feature_extraction.text import TfidfVectorizer

    from avrec.data import make_av_corpus
    from avrec.features import FeatureExtractor, TextEncoder, pretrained_weights

    with tempfile.TemporaryDirectory() as work:
        began = time.perf_counter()
        corpus = make_av_corpus(
            os.path.join(work, "corpus"), n_items=args.items, n_users=50, n_genres=args.genres,
            duration=0.25, fps=4, size=(32, 32), text_noise=args.text_noise,
            random_state=args.seed, verbose=False,
        )  # fmt: skip
        print(f"corpus: {args.items} items, {args.genres} genres, text_noise {args.text_noise} "
              f"({time.perf_counter() - began:.1f} s to write)")  # fmt: skip
        print(f"e.g. {corpus.text(('title', 'description'))[str(corpus.item_ids[0])]!r}\n")
        genres = corpus.genres
        minilm = pretrained_weights("all-minilm-l6-v2")
        catalogue = corpus.catalogue()
        rows = []

        def embed(name: str, encoder: TextEncoder, columns: tuple[str, ...]) -> None:
            extractor = FeatureExtractor({"text": encoder}, batch_size=32, verbose=False)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # every item has text
                feats = extractor.extract(catalogue, text=corpus.text(columns))
            seconds = time.perf_counter() - start
            mean, std = probe(feats["text"], genres, args.seed)
            rows.append({
                "features": name, "dim": feats.dims["text"], "seconds": seconds,
                "rate": len(catalogue) / seconds, "acc": mean, "std": std,
            })  # fmt: skip

        embed("all-MiniLM-L6-v2, description", TextEncoder(model_dir=minilm).fit(),
              ("description",))  # fmt: skip
        embed("all-MiniLM-L6-v2, title + description", TextEncoder(model_dir=minilm).fit(),
              ("title", "description"))  # fmt: skip
        embed("all-MiniLM-L6-v2, title only (control)", TextEncoder(model_dir=minilm).fit(),
              ("title",))  # fmt: skip
        embed("MiniLM architecture, random weights, description",
              TextEncoder(model_dir=minilm, random_state=args.seed).init(),
              ("description",))  # fmt: skip
        start = time.perf_counter()
        tfidf = TfidfVectorizer().fit_transform(corpus.metadata["description"]).toarray()
        seconds = time.perf_counter() - start
        mean, std = probe(tfidf, genres, args.seed)
        rows.append({"features": "TF-IDF words, description", "dim": tfidf.shape[1],
                     "seconds": seconds, "rate": args.items / seconds, "acc": mean,
                     "std": std})  # fmt: skip
        rows.append({"features": "chance (majority genre)",
                     "acc": np.bincount(genres).max() / len(genres)})  # fmt: skip
        noisy = round(args.text_noise * args.items) if args.genres > 1 else 0
        rows.append({"features": "ceiling (descriptions naming the right genre)",
                     "acc": 1 - noisy / args.items})  # fmt: skip
    print(
        markdown_table(
            rows,
            [
                ("features", "features", "s"),
                ("dim", "dim", "d"),
                ("seconds", "extract s", ".2f"),
                ("rate", "items/s", ".0f"),
                ("acc", "probe accuracy", ".3f"),
                ("std", "+- (5 folds)", ".3f"),
            ],
        )
    )


if __name__ == "__main__":
    main()
