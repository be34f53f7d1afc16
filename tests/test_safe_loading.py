"""Loading never imports or calls code named by a file: only registered classes are built."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch

from avrec.exceptions import ConfigurationError, PersistenceError
from avrec.features.encoders import BaseEncoder, VideoEncoder
from avrec.recommenders import HybridBlend, ItemKNN, Popularity, Recommender
from avrec.utils import _registry, qualified_name, register_class, registered_classes, resolve_class


# ------------------------------------------------------------------ hostile files
def _evil_module(tmp_path, monkeypatch):
    """A module on sys.path that creates a file when imported; returns (class name, marker)."""
    name = f"evil_{uuid.uuid4().hex}"
    marker = tmp_path / f"{name}.imported"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
        "class Evil:\n    def __init__(self, **kwargs):\n        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return f"{name}.Evil", marker


def _hostile_specs(tmp_path, monkeypatch):
    """(class name, params, marker file that must never appear) for each attack."""
    marker = tmp_path / "pwned"
    evil, evil_marker = _evil_module(tmp_path, monkeypatch)
    return [
        ("subprocess.Popen", {"args": ["touch", str(marker)]}, marker),
        ("os.system", {"command": f"touch {marker}"}, marker),
        ("builtins.eval", {"source": f"open({str(marker)!r}, 'w')"}, marker),
        (evil, {}, evil_marker),
        ("avrec.not_a_module.Thing", {}, marker),
    ]


@pytest.fixture
def saved_knn(blocks, tmp_path):
    path = tmp_path / "knn"
    ItemKNN(k=5).fit(blocks).save(path)
    return path


def _rewrite(path, edit):
    doc = json.loads((path / "params.json").read_text())
    edit(doc)
    (path / "params.json").write_text(json.dumps(doc))


def _assert_refused(load, name, marker):
    before = set(sys.modules)
    with pytest.raises(PersistenceError, match="refusing to load class"):
        load()
    assert not marker.exists()
    module = name.rpartition(".")[0]
    if module not in before:
        assert module not in sys.modules


@pytest.mark.parametrize("attack", range(5))
def test_top_level_hostile_class_is_refused(attack, saved_knn, tmp_path, monkeypatch):
    name, params, marker = _hostile_specs(tmp_path, monkeypatch)[attack]

    def edit(doc):
        doc["class"], doc["params"] = name, params

    _rewrite(saved_knn, edit)
    _assert_refused(lambda: Recommender.load(saved_knn), name, marker)
    _assert_refused(lambda: ItemKNN.load(saved_knn), name, marker)


@pytest.mark.parametrize("attack", range(5))
def test_nested_hostile_estimator_is_refused(attack, saved_knn, tmp_path, monkeypatch):
    name, params, marker = _hostile_specs(tmp_path, monkeypatch)[attack]

    def edit(doc):
        doc["params"]["similarity"] = {"__estimator__": {"class": name, "params": params}}

    _rewrite(saved_knn, edit)
    _assert_refused(lambda: Recommender.load(saved_knn), name, marker)


@pytest.fixture
def saved_blend(blocks, tmp_path):
    path = tmp_path / "blend"
    blend = HybridBlend([("knn", ItemKNN(k=5)), ("pop", Popularity())], weights=[0.7, 0.3])
    blend.fit(blocks).save(path)
    return blend, path


def test_hostile_blend_component_and_fitted_sub_model_are_refused(
    saved_blend, tmp_path, monkeypatch
):
    blend, path = saved_blend
    np.testing.assert_array_equal(Recommender.load(path).score_items(), blend.score_items())
    evil, marker = _evil_module(tmp_path, monkeypatch)
    doc = json.loads((path / "params.json").read_text())
    subdirs = [p for p in path.rglob("params.json") if p.parent != path]
    assert subdirs, "the blend saves its fitted components in sub-folders"

    def component(d):  # a hyperparameter estimator inside a list of tuples
        d["params"]["components"][0]["__tuple__"][1]["__estimator__"]["class"] = evil

    _rewrite(path, component)
    _assert_refused(lambda: Recommender.load(path), evil, marker)
    (path / "params.json").write_text(json.dumps(doc))
    sub = subdirs[0].parent

    def fitted(d):  # a fitted sub-model saved in its own folder
        d["class"] = evil

    _rewrite(sub, fitted)
    _assert_refused(lambda: Recommender.load(path), evil, marker)


def test_sub_model_folder_cannot_leave_the_model(saved_blend, tmp_path):
    _, path = saved_blend
    doc = json.loads((path / "params.json").read_text())
    nested = [k for k, v in doc["state"].items() if v.get("type") in ("estimator", "estimators")]
    assert nested
    for bad in ("../knn", "/etc", "..", ""):
        doc["state"][nested[0]]["dir"] = bad
        (path / "params.json").write_text(json.dumps(doc))
        with pytest.raises(PersistenceError, match="unsafe sub-model folder"):
            Recommender.load(path)


def test_malformed_estimator_spec_is_refused(saved_knn):
    _rewrite(saved_knn, lambda d: d["params"].update(similarity={"__estimator__": "os.system"}))
    with pytest.raises(PersistenceError, match="needs 'class' and 'params'"):
        Recommender.load(saved_knn)
    _rewrite(saved_knn, lambda d: d.update({"class": ["os", "system"]}))
    with pytest.raises(PersistenceError, match="must be a str"):
        Recommender.load(saved_knn)


def test_lookup_imports_nothing_named_by_the_file(saved_knn, monkeypatch):
    calls = []
    real = importlib.import_module

    def spy(name, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", spy)
    monkeypatch.setattr(_registry, "_populated", False)  # force the lazy population
    _rewrite(saved_knn, lambda d: d.update({"class": "avrec.cli._demo.Demo"}))
    with pytest.raises(PersistenceError, match="refusing"):
        Recommender.load(saved_knn)
    assert calls == list(_registry._AVREC_PACKAGES)  # avrec's fixed list, nothing else


# ------------------------------------------------------------------ encoders
@pytest.fixture
def saved_encoder(tmp_path):
    enc = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=6, random_state=0).init()
    enc.save(tmp_path / "enc")
    return enc, tmp_path / "enc"


def _rewrite_config(path, name):
    config = json.loads((path / "config.json").read_text())
    config["class"] = name
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("attack", range(5))
def test_encoder_config_naming_hostile_class_is_refused(
    attack, saved_encoder, tmp_path, monkeypatch
):
    name, _, marker = _hostile_specs(tmp_path, monkeypatch)[attack]
    _, path = saved_encoder
    _rewrite_config(path, name)
    _assert_refused(lambda: BaseEncoder.from_pretrained(path), name, marker)


def test_encoder_config_naming_a_recommender_is_refused(saved_encoder):
    _, path = saved_encoder
    _rewrite_config(path, qualified_name(ItemKNN))
    with pytest.raises(PersistenceError, match="not a BaseEncoder"):
        BaseEncoder.from_pretrained(path)


# ------------------------------------------------------------------ registration
class Constant(Recommender):
    """A user's model, defined outside avrec: loadable only once registered."""

    def __init__(self, value=1.0):
        self.value = value

    def _fit(self, data):
        return {"w_": np.full(data.X.shape[1], self.value, dtype=np.float32)}

    def _score(self, users, X_users):
        return np.tile(self.w_, (X_users.shape[0], 1))


class TinyVideo(VideoEncoder):
    """A user's encoder subclass."""


def test_user_class_is_refused_until_registered(blocks, tmp_path, monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))  # undo afterwards
    model = Constant(value=2.0).fit(blocks)
    model.save(tmp_path / "m")
    with pytest.raises(PersistenceError, match=r"refusing to load class .*Constant"):
        Recommender.load(tmp_path / "m")
    assert register_class(Constant) is Constant
    loaded = Constant.load(tmp_path / "m")
    assert type(loaded) is Constant and loaded.value == 2.0
    np.testing.assert_array_equal(loaded.score_items(), model.score_items())
    # and nested, as a blend component next to an avrec model
    blend = HybridBlend([("c", Constant(3.0)), ("pop", Popularity())], weights=[0.5, 0.5])
    blend.fit(blocks).save(tmp_path / "b")
    again = Recommender.load(tmp_path / "b")
    assert again.components[0][1].value == 3.0
    np.testing.assert_allclose(again.score_items(), blend.score_items(), rtol=1e-6)


def test_user_encoder_registered_with_the_decorator_round_trips(tmp_path, monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    enc = TinyVideo(frame_size=16, widths=(4,), embedding_dim=6, random_state=0).init()
    enc.save(tmp_path / "e")
    with pytest.raises(PersistenceError, match="refusing"):
        VideoEncoder.from_pretrained(tmp_path / "e")
    register_class(name="old.place.TinyVideo")(TinyVideo)  # e.g. files from before a move
    register_class()(TinyVideo)
    clips = torch.randint(0, 256, (3, 2, 3, 16, 16), dtype=torch.uint8)
    loaded = VideoEncoder.from_pretrained(tmp_path / "e")
    assert type(loaded) is TinyVideo
    np.testing.assert_array_equal(loaded.transform(clips), enc.transform(clips))
    assert resolve_class("old.place.TinyVideo") is TinyVideo


def test_register_class_errors(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    with pytest.raises(ConfigurationError, match="must be a class"):
        register_class(len)
    with pytest.raises(ConfigurationError, match="name must be a non-empty str"):
        register_class(Constant, name="")
    with pytest.raises(ConfigurationError, match="already registered"):
        register_class(Constant, name=qualified_name(ItemKNN))
    assert resolve_class(qualified_name(ItemKNN)) is ItemKNN
    with pytest.raises(PersistenceError, match="is not a BaseEncoder"):
        resolve_class(qualified_name(ItemKNN), base=BaseEncoder)


def _all_subclasses(cls):
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _all_subclasses(sub)
    return out


def test_every_avrec_model_and_encoder_registers_itself():
    registered = registered_classes()  # also imports avrec's model packages
    avrec_classes = {
        c
        for c in _all_subclasses(Recommender) | _all_subclasses(BaseEncoder)
        if c.__module__.startswith("avrec.")
    }
    assert len(avrec_classes) >= 15
    for cls in avrec_classes:
        assert registered[qualified_name(cls)] is cls

    class Elsewhere(Recommender):  # defined outside avrec: not registered automatically
        pass

    assert qualified_name(Elsewhere) not in registered_classes()


def test_dp_models_resolve_without_importing_avrec_privacy_first():
    code = (
        "import sys; from avrec.utils import resolve_class; "
        "assert 'avrec.privacy' not in sys.modules; "
        "print(resolve_class('avrec.privacy._dpbpr.DPBPR').__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "DPBPR"
