"""The ``avrec`` command line: argument errors, own-data subcommands and the demo."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from avrec.cli import main
from avrec.cli._commands import build_model, find_media
from avrec.cli._demo import RandomRanker, tag_features
from avrec.cli._report import findings, format_table
from avrec.data import ItemFeatures, make_av_corpus, make_interactions
from avrec.exceptions import ConfigurationError, DataValidationError


@pytest.fixture(scope="module")
def log_csv(tmp_path_factory):
    X = make_interactions(120, 40, density=0.12, random_state=0)
    rows, cols, w, _ = X.to_indices()
    path = tmp_path_factory.mktemp("log") / "log.csv"
    lines = ["user_id,item_id,weight"]
    lines += [f"u{r},v{c},{x}" for r, c, x in zip(rows, cols, w, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path, X


def test_version_and_no_command(capsys):
    assert main(["--version"]) == 0
    assert "avrec" in capsys.readouterr().out
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--items", "-3"], "must be a positive integer"),
        (["demo", "--duration", "0"], "must be > 0"),
        (["evaluate"], "--interactions"),
        (["evaluate", "--interactions", "x.csv", "--split", "nope"], "invalid choice"),
        (["evaluate", "--interactions", "x.csv", "--test-size", "1.5"], "must be in (0, 1)"),
        (["recommend", "--interactions", "x.csv"], "--user"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_give_usage_not_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err
    assert "Traceback" not in err


def test_errors_inside_avrec_are_one_line(log_csv, tmp_path, capsys):
    path, _ = log_csv
    assert main(["evaluate", "--interactions", str(tmp_path / "missing.csv")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", "--interactions", str(path), "--models", "nope"]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["recommend", "--interactions", str(path), "--user", "ghost"]) == 1
    assert "unknown user id(s): ghost" in capsys.readouterr().err
    with pytest.raises(DataValidationError):  # --debug re-raises
        main(["recommend", "--debug", "--interactions", str(path), "--user", "ghost"])


def test_evaluate_prints_a_row_per_model(log_csv, capsys):
    path, _ = log_csv
    code = main(
        [
            "-q",
            "evaluate",
            "--interactions",
            str(path),
            "--weight-col",
            "weight",
            "--models",
            "popularity,itemknn",
            "-k",
            "5",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert "ndcg@5" in out[1] and "recall@10" in out[1]
    values = {line.split()[0]: float(line.split()[1]) for line in out[2:]}
    assert set(values) == {"popularity", "itemknn"}
    assert all(0 <= v <= 1 for v in values.values())


def test_recommend_matches_the_model_and_saves_it(log_csv, tmp_path, capsys):
    path, _ = log_csv
    code = main(
        [
            "recommend",
            "--interactions",
            str(path),
            "--weight-col",
            "weight",
            "--user",
            "u3",
            "--user",
            "u7",
            "--model",
            "itemknn",
            "-k",
            "4",
            "--save-model",
            str(tmp_path / "m"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("u3: ") and out[1].startswith("u7: ")
    printed = [part.split(" (")[0] for part in out[0][4:].split(", ")]
    model = build_model("itemknn")
    from avrec.data import Interactions

    log = Interactions.from_csv(path, weight_col="weight")
    model.fit(log)
    idx, _ = model.recommend(log.users.index(["u3"]), k=4)
    assert printed == [str(i) for i in log.items.ids[idx[0]]]
    # the saved model serves the same list without refitting
    assert (
        main(
            [
                "recommend",
                "--interactions",
                str(path),
                "--weight-col",
                "weight",
                "--user",
                "u3",
                "--model-dir",
                str(tmp_path / "m"),
                "-k",
                "4",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[0] == out[0]


def test_build_model_names():
    assert type(build_model("EASE")).__name__ == "EASE"
    assert type(build_model("item-knn")).__name__ == "ItemKNN"
    with pytest.raises(ConfigurationError, match="choose from"):
        build_model("svd++")


def test_find_media(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"")
    (tmp_path / "y.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert list(find_media(tmp_path)) == ["a/x", "y"]
    with pytest.raises(DataValidationError, match="not a folder"):
        find_media(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="no media files"):
        find_media(tmp_path / "empty")


def test_extract_then_evaluate_with_features(tmp_path, capsys):
    corpus = make_av_corpus(
        tmp_path / "c",
        n_items=8,
        n_users=30,
        n_genres=2,
        duration=0.5,
        random_state=0,
        verbose=False,
    )
    out = tmp_path / "features"
    code = main(
        [
            "-q",
            "extract",
            str(corpus.root / "media"),
            "-o",
            str(out),
            "--frames",
            "2",
            "--frame-size",
            "16",
            "--audio-seconds",
            "0.5",
        ]
    )
    assert code == 0
    assert "extracted" in capsys.readouterr().out
    feats = ItemFeatures.load(out.with_suffix(".npz"))
    assert feats.n_items == 8 and set(feats.modalities) == {"video", "audio"}


def test_random_ranker_respects_exclusions_and_candidates():
    import scipy.sparse as sp

    ranker = RandomRanker(6, random_state=0)
    exclude = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]))
    idx, _ = ranker.recommend([0, 1], k=6, exclude=exclude, items=[0, 2, 3, 5])
    assert set(idx[0][idx[0] >= 0]) == {2, 3, 5}
    assert set(idx[1][idx[1] >= 0]) == {0, 2, 3}


def test_tag_features_are_tfidf_rows():
    f = tag_features(["a|b", "a", "c|c"], [0, 1, 2])
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1, rtol=1e-6)
    assert f[1, 0] == pytest.approx(1.0)  # "a" alone
    assert f[0, 1] > f[0, 0]  # the rarer tag weighs more


def _demo_args(tmp_path, report_dir):
    return [
        "demo",
        "--items",
        "16",
        "--users",
        "60",
        "--genres",
        "2",
        "--duration",
        "0.5",
        "--epochs",
        "1",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(report_dir),
    ]


def _cache_state(cache):
    """``relative path -> (size, mtime_ns)`` of every file under the cache folder."""
    return {
        str(p.relative_to(cache)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(cache.rglob("*"))
        if p.is_file()
    }


def test_demo_end_to_end(tmp_path, capsys, caplog):
    pytest.importorskip("matplotlib")
    report_dir = tmp_path / "report"
    code = main(["-q", *_demo_args(tmp_path, report_dir)])
    assert code == 0
    out = capsys.readouterr().out
    for name in (
        "Random",
        "Popularity",
        "ALS",
        "EASE",
        "ContentKNN",
        "VBPR",
        "SequentialLSTM",
        "HybridBlend",
    ):
        assert f"\n{name} " in out
    assert "report written to" in out
    text = (report_dir / "report.md").read_text()
    assert "| model | family |" in text and "cold NDCG@10" in text
    record = json.loads((report_dir / "results.json").read_text())
    assert {r["name"] for r in record["rows"]} >= {"Random", "HybridBlend"}
    from matplotlib.image import imread

    assert "## Explanations" in text and "because of" in text and "Counterfactual" in text
    assert "(Section" not in text  # no optional section failed
    for png in (
        "metrics_warm.png",
        "cold_vs_warm.png",
        "explanation_contributions.png",
        "modality_importance.png",
    ):
        img = imread(report_dir / png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    # a second run reuses the cached corpus and features: nothing under the cache is
    # rewritten, both reuses are logged, and the results are the same
    cache = tmp_path / "cache"
    features = list((cache / "features").glob("*.npz"))
    assert len(features) == 1
    before = _cache_state(cache)
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="avrec"):
        code = main(["-q", "-v", *_demo_args(tmp_path, tmp_path / "again")])
    assert code == 0
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("reusing the audio-video corpus in ") for m in logged), logged
    assert f"reusing features from {features[0]}" in logged
    assert _cache_state(cache) == before
    again = json.loads((tmp_path / "again" / "results.json").read_text())

    def metrics(rec):
        return {r["name"]: (r["warm"], r["cold"]) for r in rec["rows"]}

    assert metrics(again) == metrics(record)


def test_format_table_and_findings():
    from avrec.cli._demo import ModelRow

    def row(name, family, warm, cold):
        return ModelRow(
            name,
            family,
            {"ndcg@10": warm, "recall@20": 0, "coverage@20": 0},
            {"ndcg@10": cold, "recall@20": 0},
            1.0,
        )

    rows = [
        row("Random", "baseline", 0.01, 0.05),
        row("Popularity", "baseline", 0.1, 0.04),
        row("EASE", "cf", 0.3, 0.05),
        row("ContentKNN", "content", 0.2, 0.3),
        row("HybridBlend", "hybrid", 0.35, 0.28),
    ]
    text = "\n".join(findings(rows))
    assert "best hybrid (HybridBlend, NDCG@10 0.3500) beats" in text
    assert "One split, with each family's best picked on this test split" in text
    assert "ContentKNN) reaches NDCG@10 0.3000 vs 0.0400 for Popularity (7.50x)" in text
    assert format_table(rows, markdown=True).count("\n") == len(rows) + 1


def test_python_m_avrec():
    proc = subprocess.run(
        [sys.executable, "-m", "avrec", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout.startswith("avrec ")


def test_content_model_without_features_names_the_option(log_csv, capsys):
    path, _ = log_csv
    code = main(["evaluate", "--interactions", str(path), "--models", "contentknn"])
    assert code == 1
    err = capsys.readouterr().err
    assert "ContentKNN needs item_features" in err and "--features" in err


# ---------------------------------------------------------------- demo: pretrained backbones
_needs_pretrained = pytest.mark.skipif(
    not __import__("avrec.cli._demo", fromlist=["x"]).pretrained_available(),
    reason="needs the avrec[pretrained] extra",
)


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_corpus")
    return make_av_corpus(
        root / "corpus", n_items=10, n_users=30, n_genres=2, duration=0.5, fps=4,
        size=(32, 32), audio_only_fraction=0.2, random_state=0, verbose=False,
    )  # fmt: skip


def _small_config(tmp_path, pretrained):
    from avrec.cli._demo import DemoConfig

    return DemoConfig(
        n_items=10, n_users=30, n_genres=2, duration=0.5, epochs=0, cache_dir=tmp_path,
        verbose=False, pretrained=pretrained,
    )  # fmt: skip


def test_resolve_pretrained(monkeypatch):
    from avrec.cli import _demo

    monkeypatch.setattr(_demo, "pretrained_available", lambda: True)
    monkeypatch.delenv("AVREC_DEMO_PRETRAINED", raising=False)
    assert _demo.resolve_pretrained("auto") is True
    assert _demo.resolve_pretrained(True) is True
    assert _demo.resolve_pretrained(False) is False
    for off in ("0", "false", "No"):
        monkeypatch.setenv("AVREC_DEMO_PRETRAINED", off)
        assert _demo.resolve_pretrained("auto") is False
        assert _demo.resolve_pretrained(True) is True  # an explicit True wins
    monkeypatch.setenv("AVREC_DEMO_PRETRAINED", "1")
    assert _demo.resolve_pretrained("auto") is True
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigurationError, match="pretrained must be 'auto', True or False"):
            _demo.resolve_pretrained(bad)
    monkeypatch.setattr(_demo, "pretrained_available", lambda: False)
    assert _demo.resolve_pretrained("auto") is False
    with pytest.raises(ConfigurationError, match=r"pretrained=True needs the avrec\[pretrained\]"):
        _demo.resolve_pretrained(True)


def test_demo_features_without_pretrained_keep_the_old_cache_key(
    demo_corpus, tmp_path, monkeypatch
):
    import hashlib

    from avrec import __version__
    from avrec.cli._demo import _features_key, demo_features

    monkeypatch.setenv("AVREC_DEMO_PRETRAINED", "0")
    config = _small_config(tmp_path, "auto")
    features, backbones = demo_features(demo_corpus, config, tmp_path)
    assert features.modalities == ["video", "audio", "tags"]
    assert list(backbones) == ["video", "audio", "tags"]
    assert backbones["video"]["encoder"] == "VideoEncoder"
    assert backbones["video"]["weights"] == "random (epochs=0)"
    assert len(backbones["video"]["fingerprint"]) == 12
    # the key of the demo without backbones is the one caches were written under before
    doc = {
        "corpus": {
            k: v for k, v in demo_corpus.params.items() if k not in ("n_jobs", "verbose")
        },
        "epochs": 0, "seed": 0, "avrec": __version__, "recipe": 2,
    }  # fmt: skip
    old = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert _features_key(demo_corpus, config) == old
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == [
        f"{old}.json",
        f"{old}.npz",
    ]
    # pretrained=False reuses that cache; the record of the backbones comes back with it
    again, record = demo_features(demo_corpus, _small_config(tmp_path, False), tmp_path)
    assert record == backbones
    np.testing.assert_array_equal(again.concat(), features.concat())


@_needs_pretrained
def test_demo_features_with_pretrained_backbones(demo_corpus, tmp_path):
    from avrec.cli._demo import FRAME_SETTINGS, _features_key, demo_features
    from avrec.features import FrameBackbone, TextEncoder, pretrained_weights

    config = _small_config(tmp_path, True)
    features, backbones = demo_features(demo_corpus, config, tmp_path)
    assert features.modalities == ["video", "audio", "frames", "text", "tags"]
    assert features.dims["frames"] == 1280 and features.dims["text"] == 384
    has_video = np.asarray(demo_corpus.has_video, dtype=bool)
    assert not has_video.all()  # some audio-only items: no frames for them, flagged
    np.testing.assert_array_equal(features.mask("frames"), has_video)
    assert not features["frames"][~has_video].any()
    # the text rows are MiniLM's embeddings of the descriptions, in catalogue order
    minilm = TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2")).fit()
    descriptions = [demo_corpus.text()[i] for i in features.items.ids]
    np.testing.assert_allclose(features["text"], minilm.transform(descriptions), atol=1e-5)
    frames = FrameBackbone(
        weights=pretrained_weights("efficientnet_lite0"),
        image_size=FRAME_SETTINGS["image_size"],
        frames=FRAME_SETTINGS["frames"],
        batch_size=32,
    ).fit()
    assert backbones["frames"]["fingerprint"] == frames.fingerprint()[:12]
    assert backbones["text"]["fingerprint"] == minilm.fingerprint()[:12]
    assert backbones["frames"]["weights"] == str(pretrained_weights("efficientnet_lite0"))
    assert backbones["text"]["weights"] == str(pretrained_weights("all-minilm-l6-v2"))
    assert "all-MiniLM-L6-v2" in backbones["text"]["encoder"]
    assert "tf_efficientnet_lite0" in backbones["frames"]["encoder"]
    # another key than the demo without backbones; both caches live side by side
    key = _features_key(demo_corpus, config, True)
    assert key != _features_key(demo_corpus, config, False)
    assert (tmp_path / "features" / f"{key}.npz").is_file()
    again, record = demo_features(demo_corpus, config, tmp_path)
    assert record == backbones
    np.testing.assert_array_equal(again["frames"], features["frames"])


def test_demo_report_names_the_backbones(tmp_path, monkeypatch):
    from avrec.cli import _demo

    pretrained = _demo.pretrained_available()
    report_dir = tmp_path / "report"
    args = _demo_args(tmp_path, report_dir)
    args[args.index("--epochs") + 1] = "0"
    monkeypatch.delenv("AVREC_DEMO_PRETRAINED", raising=False)
    assert main(["-q", *args, "--no-explanations", "--pretrained", "auto"]) == 0
    text = (report_dir / "report.md").read_text()
    record = json.loads((report_dir / "results.json").read_text())
    assert "| modality | encoder | weights | fingerprint |" in text
    assert "| video | VideoEncoder | random (epochs=0) |" in text
    assert ("| frames | FrameBackbone (tf_efficientnet_lite0" in text) == pretrained
    assert ("| text | TextEncoder (all-MiniLM-L6-v2" in text) == pretrained
    expected = ["video", "audio", *(["frames", "text"] if pretrained else []), "tags"]
    assert list(record["backbones"]) == expected
    assert record["config"]["pretrained"] == "auto"
    # --pretrained no: the demo as without the extra
    assert main(["-q", *args, "--no-explanations", "--pretrained", "no"]) == 0
    record = json.loads((report_dir / "results.json").read_text())
    assert list(record["backbones"]) == ["video", "audio", "tags"]
    assert "| frames |" not in (report_dir / "report.md").read_text()
