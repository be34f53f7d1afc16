"""The ``avrec`` command line (also ``python -m avrec``).

Subcommands:

``avrec demo``
    The whole pipeline on a generated audio-video corpus: features, seven models, a warm
    and a cold-item evaluation, one table and a report folder with plots.
``avrec extract MEDIA_DIR -o FEATURES [--catalogue CSV --text-column NAME]``
    Embed a folder of media files (and the items' text) into an ``ItemFeatures`` file.
``avrec evaluate --interactions FILE [--features FILE]``
    Fit models on a split of your own log and print ranking metrics.
``avrec recommend --interactions FILE --user ID ...``
    Print the top-k items for some users.

Bad arguments print a usage message (exit status 2); a failure inside avrec prints one
``avrec: error: ...`` line (exit status 1) unless ``--debug`` asks for the traceback.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
avrec ...
0
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from avrec._version import __version__

__all__ = ["build_parser", "main"]

logger = logging.getLogger("avrec")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``avrec`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="avrec",
        description="Recommend audio and video content with learned models.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    # the common options work before and after the command (`avrec -q demo`, `avrec demo -q`)
    common = argparse.ArgumentParser(add_help=False)
    for target, default in ((parser, None), (common, argparse.SUPPRESS)):
        target.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0 if default is None else default,
            help="log more (-v info, -vv debug)",
        )
        target.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=False if default is None else default,
            help="no progress bars",
        )
        target.add_argument(
            "--debug",
            action="store_true",
            default=False if default is None else default,
            help="show tracebacks on errors",
        )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run the whole pipeline on a synthetic corpus",
        description="Generate a synthetic audio-video corpus, extract "
        "features, fit and evaluate seven models, write a report.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("avrec-demo-report"),
        help="report folder (default: ./avrec-demo-report)",
    )
    demo.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="corpus and feature cache (default: $AVREC_CACHE or ~/.cache/avrec)",
    )
    demo.add_argument("--items", type=_positive_int, default=240)
    demo.add_argument("--users", type=_positive_int, default=600)
    demo.add_argument("--genres", type=_positive_int, default=4)
    demo.add_argument("--duration", type=_positive_float, default=2.0, help="seconds per clip")
    demo.add_argument(
        "--epochs",
        type=_non_negative_int,
        default=20,
        help="encoder training epochs (0: random weights)",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--pretrained",
        choices=("auto", "yes", "no"),
        default="auto",
        help="add EfficientNet-Lite0 frame and MiniLM text features from the avrec[pretrained] "
        "weights (auto: when installed and $AVREC_DEMO_PRETRAINED is not 0)",
    )
    demo.add_argument(
        "--no-explanations",
        action="store_true",
        help="leave the explanations section out of the report",
    )

    ext = sub.add_parser(
        "extract",
        parents=[common],
        help="embed a folder of media files",
        description="Embed every media file under MEDIA_DIR (video and audio "
        "encoders), and with --catalogue/--text-column the items' text (a pretrained "
        "text encoder), and save an ItemFeatures .npz file.",
    )
    ext.add_argument("media_dir", metavar="MEDIA_DIR", type=Path)
    ext.add_argument("-o", "--output", type=Path, required=True, help="features file (.npz)")
    ext.add_argument("--frames", type=_positive_int, default=8)
    ext.add_argument("--frame-size", type=_positive_int, default=64)
    ext.add_argument("--audio-seconds", type=_positive_float, default=10.0)
    ext.add_argument(
        "--epochs",
        type=_non_negative_int,
        default=0,
        help="train the encoders on these files first (0: random weights)",
    )
    ext.add_argument("--video-weights", help="saved VideoEncoder dir or local weights file")
    ext.add_argument("--audio-weights", help="saved AudioEncoder dir or local weights file")
    ext.add_argument("--cache-dir", help="per-file feature cache")
    ext.add_argument("--workers", type=_non_negative_int, default=0, help="decoding workers")
    ext.add_argument("--seed", type=int, default=0)
    ext.add_argument(
        "--catalogue",
        type=Path,
        help="CSV with an item id column (ids as found under MEDIA_DIR: relative path "
        "without extension) and text columns",
    )
    ext.add_argument(
        "--text-column",
        action="append",
        default=[],
        metavar="NAME",
        help="catalogue column(s) to embed as the 'text' modality (repeatable or "
        "comma-separated, joined in order)",
    )
    ext.add_argument(
        "--text-model",
        help="local sentence-transformers/transformers folder, saved TextEncoder, or "
        "shipped weights' name (default: all-minilm-l6-v2, from avrec[pretrained])",
    )
    ext.add_argument(
        "--id-column", default="item_id", help="item id column of --catalogue (item_id)"
    )

    def add_log_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--interactions",
            type=Path,
            required=True,
            help="CSV (user_id,item_id[,weight][,timestamp]) or saved Interactions",
        )
        p.add_argument("--features", type=Path, help="ItemFeatures file from `avrec extract`")
        p.add_argument("--user-col", default="user_id")
        p.add_argument("--item-col", default="item_id")
        p.add_argument("--weight-col", default=None)
        p.add_argument("--timestamp-col", default=None)
        p.add_argument("-k", type=_positive_int, default=10)
        p.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser(
        "evaluate", parents=[common], help="evaluate models on your interaction log"
    )
    add_log_args(ev)
    ev.add_argument(
        "--models",
        default="popularity,ease,als",
        help="comma-separated: popularity, itemknn, ease, als, bpr, contentknn, "
        "featuretofactor, vbpr, sequentiallstm, hybrid",
    )
    ev.add_argument(
        "--split", choices=("random", "leave-last-out", "temporal", "cold"), default="random"
    )
    ev.add_argument("--test-size", type=_fraction, default=0.2)

    rec = sub.add_parser("recommend", parents=[common], help="top-k items for some users")
    add_log_args(rec)
    rec.add_argument(
        "--user", action="append", required=True, dest="users", help="user id (repeat for several)"
    )
    rec.add_argument("--model", default="ease")
    rec.add_argument("--model-dir", type=Path, help="load a saved model instead of fitting")
    rec.add_argument("--save-model", type=Path, help="save the fitted model here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``avrec`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 1 an error inside avrec, 2 bad arguments.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage message
        return int(exc.code or 0)
    if args.version:
        print(f"avrec {__version__}")
        return 0
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(
            "avrec: error: choose a command (demo, extract, evaluate, recommend)", file=sys.stderr
        )
        return 2
    _configure_logging(args.verbose)
    try:
        _dispatch(args)
    except KeyboardInterrupt:
        print("avrec: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from avrec.exceptions import AvrecError

        if args.debug or not isinstance(exc, (AvrecError, OSError, ValueError, KeyError)):
            raise
        print(f"avrec: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _dispatch(args: argparse.Namespace) -> None:
    verbose = not args.quiet
    if args.command == "demo":
        _run_demo(args, verbose)
        return
    if args.command == "extract":
        from avrec.cli._commands import extract_command

        extract_command(
            args.media_dir,
            args.output,
            frames=args.frames,
            frame_size=args.frame_size,
            audio_seconds=args.audio_seconds,
            epochs=args.epochs,
            video_weights=args.video_weights,
            audio_weights=args.audio_weights,
            cache_dir=args.cache_dir,
            num_workers=args.workers,
            seed=args.seed,
            verbose=verbose,
            catalogue=args.catalogue,
            text_columns=[c.strip() for arg in args.text_column for c in arg.split(",")],
            text_model=args.text_model,
            id_column=args.id_column,
        )
        return
    columns = {
        "user_col": args.user_col,
        "item_col": args.item_col,
        "weight_col": args.weight_col,
        "timestamp_col": args.timestamp_col,
    }
    if args.command == "evaluate":
        from avrec.cli._commands import evaluate_command

        models = [m.strip() for m in args.models.split(",") if m.strip()]
        evaluate_command(
            args.interactions,
            features=args.features,
            models=models,
            split=args.split,
            test_size=args.test_size,
            k=args.k,
            seed=args.seed,
            csv_columns=columns,
        )
    else:
        from avrec.cli._commands import recommend_command

        recommend_command(
            args.interactions,
            args.users,
            features=args.features,
            model=args.model,
            model_dir=args.model_dir,
            save_model=args.save_model,
            k=args.k,
            seed=args.seed,
            csv_columns=columns,
        )


def _run_demo(args: argparse.Namespace, verbose: bool) -> None:
    import time

    from avrec.cli._demo import DemoConfig, run_demo
    from avrec.cli._report import findings, format_table, write_report

    config = DemoConfig(
        n_items=args.items,
        n_users=args.users,
        n_genres=args.genres,
        duration=args.duration,
        epochs=args.epochs,
        seed=args.seed,
        cache_dir=args.cache_dir,
        verbose=verbose,
        pretrained={"auto": "auto", "yes": True, "no": False}[args.pretrained],
    )
    start = time.perf_counter()
    result = run_demo(config)
    print()
    print(format_table(result.rows))
    print()
    for line in findings(result.rows):
        print(f"- {line}")
    sections = []
    if not args.no_explanations:
        from avrec.cli._explain_section import explanations_section

        sections.append(explanations_section)
    report = write_report(result, args.out, extra_sections=sections)
    print(f"\nreport written to {report.resolve()} ({time.perf_counter() - start:.0f} s in all)")


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value
