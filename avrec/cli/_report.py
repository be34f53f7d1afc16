"""Tables and the report folder of ``avrec demo``: Markdown, PNG plots and a JSON record."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avrec.cli._demo import DemoResult, ModelRow, config_dict
from avrec.utils import atomic_directory

__all__ = ["backbone_table", "findings", "format_table", "write_report"]

logger = logging.getLogger(__name__)

_COLUMNS = (
    ("warm", "ndcg@10", "warm NDCG@10"),
    ("warm", "recall@20", "warm Recall@20"),
    ("warm", "coverage@20", "warm cov@20"),
    ("cold", "ndcg@10", "cold NDCG@10"),
    ("cold", "recall@20", "cold Recall@20"),
)


def format_table(rows: Sequence[ModelRow], *, markdown: bool = False) -> str:
    """One line per model: warm and cold metrics and the fit time.

    Parameters
    ----------
    rows : sequence of ModelRow
    markdown : bool, default=False
        A Markdown pipe table instead of aligned plain text.

    Returns
    -------
    str

    Examples
    --------
    >>> row = ModelRow("Pop", "baseline", {"ndcg@10": 0.1, "recall@20": 0.2, "coverage@20": 0.05},
    ...                {"ndcg@10": 0.0, "recall@20": 0.0}, 0.01)
    >>> print(format_table([row]).splitlines()[2])
    Pop            baseline     0.1000     0.2000     0.0500     0.0000     0.0000     0.01
    """
    header = ["model", "family", *(c[2] for c in _COLUMNS), "fit s"]
    body = []
    for row in rows:
        values = [f"{getattr(row, split).get(key, float('nan')):.4f}" for split, key, _ in _COLUMNS]
        body.append([row.name, row.family, *values, f"{row.fit_seconds:.2f}"])
    if markdown:
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join([":---", ":---"] + ["---:"] * (len(header) - 2)) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [14, 10] + [max(10, len(h) + 1) for h in header[2:-1]] + [8]
    fmt = [f"{{:<{widths[0]}}}", f"{{:<{widths[1]}}}"] + [f"{{:>{w}}}" for w in widths[2:]]

    def line(cells: Sequence[str]) -> str:
        return " ".join(f.format(c) for f, c in zip(fmt, cells, strict=True)).rstrip()

    out = [line(header), "-" * len(line(header))]
    out += [line(r) for r in body]
    return "\n".join(out)


def backbone_table(backbones: dict[str, dict[str, str]]) -> str:
    """A Markdown table: which encoder, with which weights, produced each modality.

    Parameters
    ----------
    backbones : dict of str to dict of str to str
        Modality -> ``encoder``, ``weights``, ``fingerprint`` (as
        :func:`avrec.cli._demo.demo_features` returns).

    Returns
    -------
    str

    Examples
    --------
    >>> print(backbone_table({"tags": {"encoder": "TF-IDF", "weights": "-",
    ...                                "fingerprint": "-"}}))
    | modality | encoder | weights | fingerprint |
    |:---|:---|:---|:---|
    | tags | TF-IDF | - | `-` |
    """
    lines = ["| modality | encoder | weights | fingerprint |", "|:---|:---|:---|:---|"]
    for name, info in backbones.items():
        cells = [name, *(str(info.get(k, "?")) for k in ("encoder", "weights"))]
        lines.append("| " + " | ".join(cells) + f" | `{info.get('fingerprint', '?')}` |")
    return "\n".join(lines)


def findings(rows: Sequence[ModelRow]) -> list[str]:
    """Plain statements comparing the families (the issue's quality bar), with margins.

    Parameters
    ----------
    rows : sequence of ModelRow

    Returns
    -------
    list of str
    """

    def best(family: str, split: str) -> ModelRow | None:
        cands = [r for r in rows if r.family == family]
        return max(cands, key=lambda r: getattr(r, split)["ndcg@10"], default=None)

    def ndcg(row: ModelRow, split: str) -> float:
        return getattr(row, split)["ndcg@10"]

    out = []
    hybrid, cf, content = best("hybrid", "warm"), best("cf", "warm"), best("content", "warm")
    if hybrid and cf and content:
        h, c, t = ndcg(hybrid, "warm"), ndcg(cf, "warm"), ndcg(content, "warm")
        verdict = "beats" if h > max(c, t) else "does NOT beat"
        out.append(
            f"Warm split: the best hybrid ({hybrid.name}, NDCG@10 {h:.4f}) {verdict} the best "
            f"pure-CF model ({cf.name}, {c:.4f}; {_ratio(h, c)}) and the best pure-content "
            f"model ({content.name}, {t:.4f}; {_ratio(h, t)}). One split, with each family's "
            "best picked on this test split: see benchmarks/bench_demo_seeds.py for mean +- std "
            "over seeds with the picks made on validation data."
        )
    by_name = {r.name: r for r in rows}
    pop, rnd = by_name.get("Popularity"), by_name.get("Random")
    for family in ("content", "hybrid"):
        row = best(family, "cold")
        if row and pop and rnd:
            v = ndcg(row, "cold")
            out.append(
                f"Cold items: the best {family} model ({row.name}) reaches NDCG@10 {v:.4f} vs "
                f"{ndcg(pop, 'cold'):.4f} for Popularity ({_ratio(v, ndcg(pop, 'cold'))}) and "
                f"{ndcg(rnd, 'cold'):.4f} for a random ranking ({_ratio(v, ndcg(rnd, 'cold'))})."
            )
    return out


def _ratio(a: float, b: float) -> str:
    if b <= 0:
        return f"+{a - b:.4f}"
    return f"{a / b:.2f}x"


def write_report(
    result: DemoResult,
    out_dir: str | Path,
    *,
    extra_sections: Sequence[Callable[[DemoResult, Path], str]] = (),
) -> Path:
    """Write ``report.md``, ``results.json`` and PNG plots (when matplotlib is installed).

    The folder is written atomically: an existing report there is replaced
    only once the new one is complete.

    Parameters
    ----------
    result : DemoResult
    out_dir : str or path-like
    extra_sections : sequence of callables
        Each gets the result and the folder being written and returns Markdown
        to append (it may write files of its own there).

    Returns
    -------
    pathlib.Path
        The report file.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        plots = _plots(result.rows, tmp)
        cfg = config_dict(result.config)
        lines = [
            "# avrec demo report",
            "",
            f"Corpus: {len(result.corpus)} items ({result.corpus.n_genres} hidden genres), "
            f"{result.corpus.interactions.n_users} users, {result.corpus.interactions.nnz} "
            f"user-item plays; features {result.features!r}.",
            "",
            "Warm split: 20% of each user's plays held out (`random_split`). Cold split: 20% of "
            "the items lose all their training plays (`cold_item_split`) and only those items "
            "are ranked. Metrics from `avrec.evaluation.evaluate`.",
            "",
            format_table(result.rows, markdown=True),
            "",
            "Feature backbones (which encoder produced which modality; fingerprint: first 12 "
            "hex digits of the encoder's `fingerprint()`):",
            "",
            backbone_table(result.backbones),
            "",
            *(f"- {f}" for f in findings(result.rows)),
            "",
            "Stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()),
            "",
        ]
        for name in plots:
            lines += [f"![{name}]({name})", ""]
        if not plots:
            lines += ["(Plots skipped: `pip install avrec[plots]` for matplotlib.)", ""]
        for section in extra_sections:
            try:
                lines += [section(result, tmp), ""]
            except Exception as exc:  # a failing optional section must not lose the report
                logger.warning(
                    "report section %s failed: %s", getattr(section, "__name__", ""), exc
                )
                lines += [f"(Section {getattr(section, '__name__', '')} failed: {exc})", ""]
        lines += ["Configuration: `" + json.dumps(cfg, sort_keys=True) + "`", ""]
        (tmp / "report.md").write_text("\n".join(lines), encoding="utf-8")
        record = {
            "config": cfg,
            "timings": result.timings,
            "backbones": result.backbones,
            "rows": [
                {
                    "name": r.name,
                    "family": r.family,
                    "warm": r.warm,
                    "cold": r.cold,
                    "fit_seconds": r.fit_seconds,
                }
                for r in result.rows
            ],
        }
        (tmp / "results.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return out_dir / "report.md"


def _plots(rows: Sequence[ModelRow], folder: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = [r.name for r in rows]
    x = np.arange(len(rows))
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, key, title in zip(
        axes, ("ndcg@10", "recall@20"), ("NDCG@10", "Recall@20"), strict=True
    ):
        ax.bar(x, [r.warm[key] for r in rows], color="tab:blue")
        ax.set_xticks(x, names, rotation=35, ha="right")
        ax.set_title(f"warm split: {title}")
    fig.savefig(folder / "metrics_warm.png", dpi=110)
    plt.close(fig)
    written.append("metrics_warm.png")

    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    ax.bar(x - 0.2, [r.warm["ndcg@10"] for r in rows], width=0.4, label="warm")
    ax.bar(x + 0.2, [r.cold["ndcg@10"] for r in rows], width=0.4, label="cold items")
    ax.set_xticks(x, names, rotation=35, ha="right")
    ax.set_ylabel("NDCG@10")
    ax.set_title("warm vs cold-item split")
    ax.legend()
    fig.savefig(folder / "cold_vs_warm.png", dpi=110)
    plt.close(fig)
    written.append("cold_vs_warm.png")
    return written


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a report folder's ``results.json``.

    Parameters
    ----------
    path : str or path-like
        The report folder.

    Returns
    -------
    dict
    """
    return json.loads((Path(path) / "results.json").read_text(encoding="utf-8"))
