"""torchrun worker: DDP training of BPR, VBPR, SequentialLSTM and the encoders.

See tests/test_distributed.py.

Usage: ``python -m torch.distributed.run --nproc_per_node=W run_train.py OUT_DIR BATCH``
(``BATCH`` per process; run as plain ``python`` for the single-process reference). Each
rank writes ``OUT_DIR/rank{r}.npz`` with what it learnt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from avrec.data import Interactions
from avrec.features import GANEncoder, VideoEncoder
from avrec.recommenders import BPR, VBPR, SequentialLSTM
from avrec.utils import get_rank, init_from_env, save_arrays


def interactions() -> sp.csr_matrix:
    """60 users x 40 items in two taste groups, ~8 plays each (seeded)."""
    rng = np.random.default_rng(0)
    rows, cols = [], []
    for u in range(60):
        items = rng.choice(20, 8, replace=False) + 20 * (u % 2)
        rows += [u] * 8
        cols += items.tolist()
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(60, 40))


def sequences() -> Interactions:
    """40 users who watch u, u+1, ..., u+5 (mod 12) in order."""
    users = np.repeat(np.arange(40), 6)
    items = (users + np.tile(np.arange(6), 40)) % 12
    return Interactions.from_arrays(users, items, timestamps=np.arange(240))


def clips() -> torch.Tensor:
    """16 short random clips, uint8 (16, 4, 3, 16, 16)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (16, 4, 3, 16, 16), generator=g, dtype=torch.uint8)


def main(out_dir: str, batch: str) -> None:
    torch.set_num_threads(1)
    init_from_env()  # gloo on CPU; nothing without torchrun
    bs = int(batch)
    bpr = BPR(factors=8, iterations=5, batch_size=8 * bs, learning_rate=0.05, device="cpu",
              random_state=0, verbose=False).fit(interactions())  # fmt: skip
    x = clips()
    video = VideoEncoder(frame_size=16, frames=4, widths=(4,), embedding_dim=8, epochs=2,
                         batch_size=bs, random_state=0, verbose=False).fit(x)  # fmt: skip
    gan = GANEncoder(image_size=16, frames=4, generator_width=4, discriminator_width=4, epochs=1,
                     batch_size=2 * bs, random_state=0, verbose=False).fit(x)  # fmt: skip
    vbpr_params = dict(factors=4, content_factors=2, iterations=5, batch_size=8 * bs,
                       optimizer="adam", learning_rate=0.01, device="cpu", random_state=0,
                       verbose=False)  # fmt: skip
    features = np.random.default_rng(1).normal(size=(40, 3))
    vbpr = VBPR(**vbpr_params).fit(interactions(), item_features=features)
    lstm = SequentialLSTM(embedding_dim=8, hidden_size=8, epochs=3, batch_size=bs, dropout=0.0,
                          learning_rate=0.01, device="cpu", random_state=0,
                          verbose=False).fit(sequences())  # fmt: skip
    arrays = {
        "bpr_user": bpr.user_factors_,
        "bpr_item": bpr.item_factors_,
        "bpr_bias": bpr.item_bias_,
        "bpr_loss": bpr.loss_history_,
        "video_loss": np.asarray(video.history_["train_loss"]),
        "video_emb": video.transform(x),
        "gan_loss": np.asarray(gan.history_["train_loss"]),
        "gan_emb": gan.transform(x),
        "vbpr_scores": vbpr.score_items(np.arange(60)),
        "vbpr_loss": np.asarray(vbpr.loss_history_),
        "lstm_scores": lstm.score_items(np.arange(40)),
        "lstm_loss": np.asarray(lstm.loss_history_),
    }
    save_arrays(Path(out_dir) / f"rank{get_rank()}.npz", arrays)


if __name__ == "__main__":
    main(*sys.argv[1:3])
