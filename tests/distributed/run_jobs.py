"""torchrun worker: the extraction of run_extract.py, then the training of run_train.py.

One launch for both saves the start-up of a job (tests/test_distributed.py).
Usage: ``... run_jobs.py CATALOGUE.json SHARD_DIR EXTRACT_OUT TRAIN_OUT BATCH``.
"""

from __future__ import annotations

import sys

import run_extract  # the script's folder is on sys.path
import run_train

if __name__ == "__main__":
    catalogue, shard_dir, extract_out, train_out, batch = sys.argv[1:6]
    run_extract.main(catalogue, shard_dir, extract_out)
    run_train.main(train_out, batch)
