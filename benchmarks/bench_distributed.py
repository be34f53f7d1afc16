"""Sharded feature extraction under torchrun: 1 vs 2 processes, and a projection to N nodes.

Writes a short-clip corpus with :func:`avrec.data.make_av_corpus`, then runs
:meth:`avrec.features.FeatureExtractor.extract` (a VideoEncoder and an AudioEncoder with
seeded random weights) over it with ``torchrun --standalone --nproc_per_node=P`` for
each ``P`` of ``--procs``. Every process gets ``--threads`` torch threads (default 1:
the per-core rate; 0 gives each ``cores // P``).
Reported per run: items/s (timed between two barriers inside the job after a warm-up
extraction of 4 items, so interpreter, rendezvous and first-call set-up are excluded; the
launch wall time is shown too), the speed-up and
the scaling efficiency against 1 process (the baseline, measured in the same run),
whether the merged features equal the 1-process ones, and the per-item cost in
core-seconds. The projection multiplies that cost by a catalogue size (``--project``
clips) over ``N`` nodes of ``--cores-per-node`` cores, at the measured efficiency.

Example::

    python benchmarks/bench_distributed.py                      # 40 clips x 2 s
    python benchmarks/bench_distributed.py --items 24 --duration 1 --procs 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> None:
    """One torchrun process: extract the catalogue into shards, rank 0 reports."""
    import torch

    from avrec.data import ItemFeatures
    from avrec.features import AudioEncoder, FeatureExtractor, VideoEncoder
    from avrec.utils import barrier, init_from_env, is_main_process, write_json

    if args.pin:  # one core per process: FFmpeg's decoder threads follow the affinity too
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[int(os.environ.get("LOCAL_RANK", 0)) % len(cores)]})
    ctx = init_from_env()
    threads = args.threads or max(1, (os.cpu_count() or 1) // ctx.world_size)
    torch.set_num_threads(threads)
    encoders = {
        "video": VideoEncoder(frame_size=64, random_state=0).init(),
        "audio": AudioEncoder(random_state=0).init(),
    }
    catalogue = json.loads(Path(args.catalogue).read_text())
    extractor = FeatureExtractor(encoders, frames=8, batch_size=4, verbose=False)
    warm = dict(list(catalogue.items())[:4])  # first calls pay one-time set-up: not timed
    extractor.extract(warm, distributed=False)
    barrier()
    began = time.perf_counter()
    features = extractor.extract(catalogue, shard_dir=args.shard_dir)
    barrier()
    seconds = time.perf_counter() - began
    if is_main_process():
        assert isinstance(features, ItemFeatures)
        features.save(Path(args.out) / "features.npz")
        stats = {"seconds": seconds, "world": ctx.world_size, "threads": threads}
        stats.update(decode=extractor.stats_["decode_seconds"])
        write_json(Path(args.out) / "stats.json", stats)


def launch(procs: int, threads: int, catalogue: Path, work: Path, pin: bool = False) -> dict:
    out = work / f"run{procs}"
    out.mkdir()
    threads = threads or max(1, (os.cpu_count() or 1) // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={procs}", __file__, "--worker", "--catalogue", str(catalogue),
           "--shard-dir", str(out / "shards"), "--out", str(out),
           "--threads", str(threads), *(["--pin"] if pin else [])]  # fmt: skip
    began = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if proc.returncode:
        sys.exit(f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    stats = json.loads((out / "stats.json").read_text())
    stats["launch_wall"] = wall
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--project", type=int, default=1_000_000, help="clips to project")
    parser.add_argument("--cores-per-node", type=int, default=32)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per process (0: cores // P)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin each process to one core (per-core scaling; else FFmpeg decodes with "
        "threads on every core and processes contend)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--catalogue", help=argparse.SUPPRESS)
    parser.add_argument("--shard-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return
    from avrec.data import ItemFeatures, make_av_corpus

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus = make_av_corpus(work / "corpus", n_items=args.items, duration=args.duration,
                                random_state=0, verbose=False)  # fmt: skip
        catalogue = work / "catalogue.json"
        catalogue.write_text(json.dumps({k: str(v) for k, v in corpus.catalogue().items()}))
        print(f"{args.items} clips x {args.duration:g} s (64x64, 10 fps, 16 kHz), {cores} cores, "
              f"load average {os.getloadavg()[0]:.1f}, pinned: {args.pin}")  # fmt: skip
        runs = {
            p: launch(p, args.threads, catalogue, work, args.pin) for p in sorted(set(args.procs))
        }
        feats = {p: ItemFeatures.load(work / f"run{p}" / "features.npz") for p in runs}
    base = min(runs)
    rate = {p: args.items / r["seconds"] for p, r in runs.items()}
    header = ["processes", "threads/proc", "extract s", "items/s", "speed-up", "efficiency",
              "launch wall s", "max |diff| vs 1 proc"]  # fmt: skip
    rows = []
    for p, r in runs.items():
        speedup = rate[p] / rate[base]
        diff = max(float(np.max(np.abs(feats[p][m] - feats[base][m]))) for m in feats[p])
        rows.append([p, r["threads"], f"{r['seconds']:.2f}", f"{rate[p]:.2f}",
                     f"{speedup:.2f}", f"{speedup / (p / base):.0%}",
                     f"{r['launch_wall']:.1f}", f"{diff:.1e}"])  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    top = max(runs)
    cost = runs[top]["seconds"] * min(top * runs[top]["threads"], cores) / args.items
    cost = max(cost, runs[base]["seconds"] * min(base * runs[base]["threads"], cores) / args.items)
    efficiency = min(1.0, (rate[top] / rate[base]) / (top / base))
    print(f"\nper-item cost with {top} processes: {cost:.3f} core-seconds "
          f"(wall x cores / items); measured efficiency {efficiency:.0%}")  # fmt: skip
    print(f"projection for {args.project:,} clips of {args.duration:g} s "
          f"at {args.cores_per_node} cores per node, efficiency {efficiency:.0%}:")  # fmt: skip
    for nodes in (1, 4, 16, 64):
        hours = args.project * cost / (nodes * args.cores_per_node * efficiency) / 3600
        print(f"  {nodes:3d} node(s) x {args.cores_per_node} cores: {hours:7.2f} h")


if __name__ == "__main__":
    main()
