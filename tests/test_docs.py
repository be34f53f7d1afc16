"""The documentation: the API reference covers every public name, and the docs build cleanly.

The API pages are generated at build time by ``docs/_ext/avrec_docs.py`` from
``docs/_ext/avrec_api.py``; these tests check that source of truth against each
module's ``__all__``, then build the HTML with warnings as errors.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Modules the API reference must have a page for (more may exist).
REQUIRED_MODULES = {
    "avrec.data",
    "avrec.media",
    "avrec.features",
    "avrec.features.functional",
    "avrec.features.transforms",
    "avrec.features.nn",
    "avrec.recommenders",
    "avrec.evaluation",
    "avrec.exceptions",
    "avrec.utils",
}


def _load_api():
    name = "avrec_docs_api"
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / "avrec_api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


api = _load_api()


@pytest.fixture(scope="module")
def public_api():
    return api.public_api()


def _autosummary_entries(page: str) -> tuple[set[str], set[str]]:
    """Names listed in ``:toctree:`` autosummary blocks (own) and in the others (links)."""
    own: set[str] = set()
    links: set[str] = set()
    for block in re.split(r"\n(?=\.\. )", page):
        if not block.startswith(".. autosummary::"):
            continue
        names = {ln.strip() for ln in block.splitlines()[1:] if re.match(r"^   [~\w]", ln)}
        names = {n for n in names if not n.startswith(":")}
        (own if ":toctree:" in block else links).update(n.lstrip("~") for n in names)
    return own, links


def test_public_modules_are_discovered(public_api):
    names = {pm.name for pm in public_api}
    assert names >= REQUIRED_MODULES, REQUIRED_MODULES - names
    assert all(not part.startswith("_") for n in names for part in n.split("."))
    for pm in public_api:
        assert hasattr(pm.module, "__all__"), f"{pm.name} has no __all__ to document"


def test_every_public_name_is_in_the_api_reference(public_api):
    pages = {pm.name: api.module_page(pm) for pm in public_api}
    stubs = {pm.name: _autosummary_entries(pages[pm.name])[0] for pm in public_api}
    documented = {f"{mod}.{name}" for mod, names in stubs.items() for name in names}
    for pm in public_api:
        page = pages[pm.name]
        own, links = _autosummary_entries(page)
        assert f".. automodule:: {pm.name}" in page
        for name in pm.names:
            kind = pm.kinds[name]
            where = f"{pm.name}.{name}"
            if kind == "module":
                assert f":mod:`{where}`" in page, where
                assert where in pages, f"submodule {where} has no API page"
            elif kind == "data":
                assert f".. data:: {name}" in page, where
            elif name in pm.elsewhere:
                canonical = pm.elsewhere[name]
                assert canonical in links, f"{where} is not linked from its module's page"
                assert canonical in documented, f"{where}: {canonical} has no page"
                assert getattr(pm.module, name) is _resolve(canonical)
            else:
                assert name in own, f"{where} has no stub page"


def _resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_api_index_includes_every_module_page():
    index = (DOCS / "api" / "index.rst").read_text()
    assert ".. avrec-api-toctree::" in index  # lists api/generated/<module> for every module


def test_user_guide_has_a_page_per_layer():
    guide = DOCS / "user_guide"
    toc = (guide / "index.rst").read_text()
    layers = ["media", "features", "data", "recommenders", "evaluation"]
    positions = [toc.index(f"\n   {page}\n") for page in layers]
    assert positions == sorted(positions), "user guide pages are not in data-flow order"
    for page in layers:
        assert ".. avrec-module-summary:: avrec." in (guide / f"{page}.rst").read_text()


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path, public_api):
    reason = "the docs extra is not installed: pip install -e .[docs]"
    pytest.importorskip("sphinx", reason=reason)
    pytest.importorskip("numpydoc", reason=reason)
    out = tmp_path / "html"
    env = {k: v for k, v in os.environ.items() if k != "AVREC_DOCS_INTERSPHINX"}  # offline
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-j",
        "1",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(DOCS),
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:] or proc.stdout[-6000:]

    generated = out / "api" / "generated"
    for pm in public_api:
        assert (generated / f"{pm.name}.html").is_file(), pm.name
        for name in pm.names:
            if pm.kinds[name] in ("class", "exception", "function") and name not in pm.elsewhere:
                assert (generated / f"{pm.name}.{name}.html").is_file(), f"{pm.name}.{name}"
    for page in ("index", "install", "quickstart", "examples", "benchmarks", "changelog"):
        assert (out / f"{page}.html").is_file(), page
    changelog = (out / "changelog.html").read_text()
    assert "Unreleased" in changelog
