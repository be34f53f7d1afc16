"""Imports point down the layers only: evaluation | explain | privacy -> recommenders ->
features -> media -> data -> utils (a lower layer never imports a higher one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import avrec

LAYERS = {
    "exceptions": 0,
    "_version": 0,
    "utils": 1,
    "data": 2,
    "media": 3,
    "features": 4,
    "recommenders": 5,
    "evaluation": 6,
    "explain": 6,
    "privacy": 6,
    "cli": 7,
    "__main__": 7,
}
# Modules allowed to reach one layer up, with the reason.
EXCEPTIONS = {
    # the synthetic audio-video corpus writes real media files with avrec.media's encoders
    ("avrec/data/_av_corpus.py", "media"),
}
ROOT = Path(avrec.__file__).parent


def _layer_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "avrec" and len(parts) > 1:
                found.add(parts[1])
    return found


FILES = sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_imports(path):
    own = _layer_of(path)
    if own not in LAYERS:
        pytest.fail(f"{own} is not in the layer table of tests/test_layers.py")
    for target in _imports(path):
        rel = f"avrec/{path.relative_to(ROOT)}"
        if (rel, target) in EXCEPTIONS:
            continue
        assert LAYERS.get(target, 0) <= LAYERS[own], (
            f"{rel} imports avrec.{target} (a higher layer)"
        )
