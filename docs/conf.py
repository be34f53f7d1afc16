"""Sphinx configuration for the avrec documentation.

Build (offline, warnings as errors -- what CI runs)::

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The API reference is generated at build time from each public module's
``__all__`` by the local extension ``_ext/avrec_docs.py`` (pages written to
``docs/api/generated/``, which git ignores).

Intersphinx links to NumPy, SciPy, scikit-learn, PyTorch and torchaudio are
**off by default**: CI and many development machines have no internet, and a
failed inventory download is a warning, which ``-W`` turns into a failure. With
network access, turn them on with ``AVREC_DOCS_INTERSPHINX=1``::

    AVREC_DOCS_INTERSPHINX=1 sphinx-build -W -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(ROOT))  # the avrec source next to these docs, installed or not

import avrec  # noqa: E402

INTERSPHINX = os.environ.get("AVREC_DOCS_INTERSPHINX", "") not in ("", "0")

# -- project ---------------------------------------------------------------------------------
project = "avrec"
author = "The avrec developers"
copyright = "The avrec developers, BSD-3-Clause"
release = avrec.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ------------------------------------------------------------------------------
extensions = [
    "avrec_docs",  # first: writes the API pages before autosummary and numpydoc read them
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]
try:
    import myst_parser  # noqa: F401

    extensions.append("myst_parser")  # renders CHANGELOG.md and benchmarks/RESULTS.md
except ImportError:  # without it those pages show the Markdown source
    pass

if INTERSPHINX:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "sklearn": ("https://scikit-learn.org/stable/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
        "torchaudio": ("https://docs.pytorch.org/audio/stable/", None),
    }
    intersphinx_timeout = 10

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}  # Markdown only through `avrec-markdown`
root_doc = "index"
nitpicky = False  # unresolved links to third-party types (without intersphinx) are fine

# -- autodoc / autosummary -------------------------------------------------------------------
autosummary_generate = True  # stub pages are written at build time into api/generated/
autosummary_generate_overwrite = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc "Parameters" sections state types and shapes
autodoc_class_signature = "mixed"
autodoc_inherit_docstrings = True
add_module_names = False

# -- numpydoc --------------------------------------------------------------------------------
numpydoc_show_class_members = False  # the class template lists members (no duplicates)
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"  # link only the names below (and avrec's class names)
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "Generator": "numpy.random.Generator",
    "sparse matrix": "scipy.sparse.csr_matrix",
    "csr_matrix": "scipy.sparse.csr_matrix",
    "Tensor": "torch.Tensor",
    "torch.Tensor": "torch.Tensor",
    "Module": "torch.nn.Module",
    "nn.Module": "torch.nn.Module",
    "DataFrame": "pandas.DataFrame",
    "path-like": "os.PathLike",
}
if not INTERSPHINX:
    # numpydoc's default aliases point into other projects' docs (`:ref:` to python's
    # `bltin-boolean-values`, `:term:` to numpy's `array_like`, `python:float` ...). Offline
    # the :ref:/:term: ones are *warnings* (undefined label) and the rest render as
    # "python:float", so keep those words as plain, unlinked names.
    from numpydoc.xref import DEFAULT_LINKS

    for _word, _target in DEFAULT_LINKS.items():
        if ":" in _target:
            numpydoc_xref_aliases.setdefault(_word, _word)
# Checked on every documented object; a failure is a build warning, so -W fails. Only
# mistakes that lose or garble rendered text: GL06 unknown section name (e.g. "Return"),
# GL07 sections out of order, PR02 a documented parameter the signature lacks (renamed),
# PR10 "name: type" without the space numpydoc needs. (GL08, "no docstring", misfires on
# attributes documented with `#:` comments; ES01/SA01/EX01 would demand prose everywhere.)
numpydoc_validation_checks = {"GL06", "GL07", "PR02", "PR10"}

# -- MyST (Markdown includes) ----------------------------------------------------------------
myst_all_links_external = True  # relative links in RESULTS.md / CHANGELOG.md point at the repo
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # included Markdown may start at any heading level

# -- HTML ------------------------------------------------------------------------------------
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
        "navbar_align": "left",
        "footer_start": ["copyright"],
        "footer_end": ["sphinx-version"],
    }
except ImportError:  # pragma: no cover - the docs extra installs it
    html_theme = "alabaster"
html_title = f"avrec {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
