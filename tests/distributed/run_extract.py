"""torchrun worker: sharded feature extraction of a catalogue (see tests/test_distributed.py).

Usage: ``python -m torch.distributed.run --nproc_per_node=2 run_extract.py CATALOGUE.json
SHARD_DIR OUT_DIR``; each rank writes ``OUT_DIR/rank{r}.npz`` (the merged ItemFeatures)
and ``OUT_DIR/rank{r}.json`` (stats, failures, missing masks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from avrec.features import AudioEncoder, FeatureExtractor, VideoEncoder
from avrec.utils import get_rank, get_world_size, write_json


def make_extractor() -> FeatureExtractor:
    """The extractor every test run uses (random but seeded weights: the same everywhere)."""
    encoders = {
        "video": VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8, random_state=0).init(),
        "audio": AudioEncoder(widths=(4,), embedding_dim=6, random_state=0).init(),
    }
    return FeatureExtractor(encoders, frames=4, frame_size=16, batch_size=2, verbose=False)


def main(catalogue_json: str, shard_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    catalogue = json.loads(Path(catalogue_json).read_text())
    extractor = make_extractor()
    features = extractor.extract(catalogue, shard_dir=shard_dir)
    rank = get_rank()
    out = Path(out_dir)
    features.save(out / f"rank{rank}.npz")
    write_json(
        out / f"rank{rank}.json",
        {
            "world_size": get_world_size(),
            "stats": extractor.stats_,
            "failures": extractor.failures_,
            "missing": {k: v.tolist() for k, v in extractor.missing_.items()},
        },
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
