"""Sphinx extension for the avrec docs: an API reference generated from ``__all__``.

At ``config-inited`` (before autosummary scans the sources) it writes
``api/generated/``: one page per public module (see :mod:`avrec_api`), whose
autosummary tables then make autosummary write a stub page per public name, and
it deletes every other file there. New public names and modules therefore
appear without editing the docs, and names removed from ``__all__`` leave no
stale pages.

It also adds:

* ``.. avrec-api-toctree::`` -- the toctree of the generated module pages;
* ``.. avrec-module-summary:: avrec.features`` -- a table of a module's public
  names linking to their API pages (used by the user guide), or a note when the
  module is not part of this release;
* ``.. avrec-markdown:: ../CHANGELOG.md`` -- include a Markdown file from the
  repository below the page's own title (its leading ``# Title`` line is left
  out), parsed by MyST when installed, else shown as Markdown source; when the
  file does not exist, the text of its ``:missing:`` option instead;
* a ``missing-reference`` handler that resolves re-exported and private paths
  (``avrec.recommenders.cf._ease.EASE``) to the documented canonical one.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

import avrec_api  # docs/_ext, next to this file
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

try:  # MyST renders the Markdown pages (changelog, benchmark results) when installed
    import myst_parser  # noqa: F401

    HAVE_MYST = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_MYST = False

_STATE: dict[str, Any] = {}


def _api(app: Sphinx) -> list[avrec_api.PublicModule]:
    return _STATE["modules"]


def _parse(directive: SphinxDirective, text: str) -> list[nodes.Node]:
    """Parse reST produced by a directive (works with every Sphinx >= 7)."""
    container = nodes.Element()
    source, _ = directive.get_source_info()
    nested_parse_with_titles(directive.state, StringList(text.splitlines(), source), container)
    return list(container.children)


def generate_api_pages(app: Sphinx, config: Config) -> None:
    """Write ``api/generated/<module>.rst`` for every public module (from scratch)."""
    modules = avrec_api.public_api()
    _STATE["modules"] = modules
    _STATE["aliases"] = avrec_api.aliases(modules)
    out = Path(app.srcdir) / avrec_api.GENERATED_DIR
    out.mkdir(parents=True, exist_ok=True)
    expected = set()
    for pm in modules:
        page = out / f"{pm.name}.rst"
        expected.add(page.name)
        expected.update(f"{pm.name}.{name}.rst" for name in avrec_api.stub_names(pm))
        text = avrec_api.module_page(pm)
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")  # unchanged pages keep their mtime
    for path in out.iterdir():  # pages of names or modules no longer public would break -W
        if path.name not in expected:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    # numpydoc: link bare avrec class names in "Parameters" types to their pages
    shorts = avrec_api.short_names(modules)
    _STATE["short_names"] = shorts
    classes = {n: path for n, path in shorts.items() if n[:1].isupper()}
    config.numpydoc_xref_aliases = {**classes, **config.numpydoc_xref_aliases}


class ApiToctree(SphinxDirective):
    """The toctree of the generated module pages, in data-flow order."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {"maxdepth": directives.nonnegative_int}

    def run(self) -> list[nodes.Node]:
        lines = [".. toctree::", f"   :maxdepth: {self.options.get('maxdepth', 1)}", ""]
        lines += [f"   /{pm.docname}" for pm in _api(self.env.app)]
        return _parse(self, "\n".join(lines))


class ModuleSummary(SphinxDirective):
    """A module's public names as an autosummary table (no stubs: they link to the API pages)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        found = [pm for pm in _api(self.env.app) if pm.name == name]
        if not found:
            note = nodes.note()
            note += nodes.paragraph(text=f"{name} is not part of this release of avrec.")
            return [note]
        pm = found[0]
        text = avrec_api.summary_table(pm)
        subs = [n for n in pm.names if pm.kinds[n] == "module"]
        if subs:
            text += "\nSubmodules: " + ", ".join(f":mod:`{pm.name}.{n}`" for n in subs) + ".\n"
        # resolve the summaries' short references (":func:`probe`") in the module's context,
        # without changing the current module for the rest of the page
        context = self.env.ref_context
        saved = context.get("py:module")
        context["py:module"] = pm.name
        try:
            return _parse(self, text)
        finally:
            if saved is None:
                context.pop("py:module", None)
            else:
                context["py:module"] = saved


class MarkdownFile(SphinxDirective):
    """Include a Markdown file of the repository, tolerating its absence."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {"missing": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0])
        if not os.path.isfile(path):
            text = self.options.get("missing") or f"``{self.arguments[0]}`` does not exist yet."
            note = nodes.note()
            note += _parse(self, text)
            return [note]
        self.env.note_dependency(rel)
        here = os.path.dirname(self.get_source_info()[0])
        target = os.path.relpath(path, here)
        # the page has its own title: leave out the file's leading "# Title" line
        with open(path, encoding="utf-8") as f:
            text = f.read().splitlines()
        start = next((i for i, line in enumerate(text) if line.strip()), 0)
        start = start + 1 if start < len(text) and text[start].startswith("# ") else 0
        if HAVE_MYST:
            lines = [f".. include:: {target}", "   :parser: myst_parser.sphinx_"]
            lines += [f"   :start-line: {start}"] if start else []
        else:
            lines = [f".. literalinclude:: {target}", "   :language: markdown"]
            lines += [f"   :lines: {start + 1}-"] if start else []
        return _parse(self, "\n".join(lines))


def resolve_alias(app: Sphinx, env: Any, node: Any, contnode: nodes.Node) -> nodes.Node | None:
    """Resolve ``avrec`` paths that are not where an object is documented."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    table = _STATE.get("aliases", {})
    candidates = [target]
    if node.get("py:module") and not target.startswith("avrec."):
        candidates.append(f"{node['py:module']}.{target}")
    head, _, rest = target.partition(".")
    if head in _STATE.get("short_names", {}):  # `Vocabulary.index` from another module
        candidates.append(_STATE["short_names"][head] + (f".{rest}" if rest else ""))
    domain = env.get_domain("py")
    for candidate in candidates:
        canonical = table.get(candidate, None if candidate == target else candidate)
        if canonical:
            found = domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode
            )
            if found is not None:
                return found
    return None


# a name ending in one underscore, outside ``literals`` and `roles`: reST reads it as a link
_TRAILING_UNDERSCORE = re.compile(r"(``.*?``|`[^`]*`)|\b([A-Za-z]\w*?)(?<!_)_(?!\w)")
_TYPED_SECTIONS = {
    "Parameters",
    "Other Parameters",
    "Attributes",
    "Returns",
    "Yields",
    "Receives",
    "Raises",
    "Warns",
}


def escape_fitted_attribute_names(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Escape fitted-attribute names in numpydoc type lines so reST does not read them as links.

    avrec's fitted attributes end in ``_`` and its docstrings use them in shape
    specs (``item_factors_ : ndarray of shape (n_items_, factors)``); in reST
    ``n_items_`` is a reference to a target named ``n_items``, an error. Only the
    ``name : type`` lines of the typed sections are touched (not prose, examples
    or math). Runs before numpydoc.
    """
    section, indent = None, 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        below = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if stripped and below and set(below) == {"-"} and len(below) >= len(stripped):
            section, indent = stripped, len(line) - len(line.lstrip())
            continue
        if (
            section in _TYPED_SECTIONS
            and stripped
            and set(stripped) != {"-"}
            and len(line) - len(line.lstrip()) == indent
        ):
            lines[i] = _TRAILING_UNDERSCORE.sub(lambda m: m.group(1) or f"{m.group(2)}\\_", line)


def skip_foreign_members(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Leave out members a class inherits from outside avrec (torch, scikit-learn).

    ``nn.Module`` and ``BaseEstimator`` methods (``set_fit_request`` is even
    generated on every subclass) are documented upstream, and their docstrings
    refer to labels of other projects' docs. Undocumented overrides of such
    methods are left out too.
    """
    if what not in ("class", "exception"):
        return None
    target = getattr(obj, "fget", obj)
    target = getattr(target, "__func__", target)
    module = getattr(target, "__module__", None)
    if isinstance(module, str) and module.split(".")[0] != "avrec":
        return True
    if inspect.isroutine(target) and not target.__doc__:
        return True  # e.g. an ``extra_repr`` override: autodoc would show torch's docstring
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True  # NamedTuple fields: the class's "Attributes" section documents them
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    # priority < 500: run before numpydoc reads its aliases and before autosummary scans
    app.connect("config-inited", generate_api_pages, priority=100)
    app.connect("missing-reference", resolve_alias)
    app.connect("autodoc-skip-member", skip_foreign_members)
    app.connect("autodoc-process-docstring", escape_fitted_attribute_names, priority=100)
    app.add_directive("avrec-api-toctree", ApiToctree)
    app.add_directive("avrec-module-summary", ModuleSummary)
    app.add_directive("avrec-markdown", MarkdownFile)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
