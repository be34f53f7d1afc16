"""Which modules and names make up avrec's public API, and the reST pages that list them.

This module is the single source of truth for the API reference: the Sphinx
extension :mod:`avrec_docs` writes one page per public module from it at build
time, and ``tests/test_docs.py`` checks the result against each module's
``__all__``. It needs no Sphinx, only an importable ``avrec``.

Rules
-----
* A *public module* is ``avrec`` or any module below it whose dotted path has
  no component starting with ``_``; ``avrec`` itself (version and lazy
  subpackages) is not given a page.
* A module's *public names* are its ``__all__``.
* A class or function exported by several public modules is documented once,
  at its *canonical* path: the shallowest module exporting it (the import path
  the README and docstrings use, e.g. ``avrec.recommenders.EASE`` rather than
  ``avrec.recommenders.cf.EASE``); the other modules' pages link there.
* A public name that is itself a module is listed as a link to its own page.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from types import ModuleType

PACKAGE = "avrec"

#: Page order of the modules we know about (data-flow order); others follow alphabetically.
MODULE_ORDER = (
    "avrec.data",
    "avrec.media",
    "avrec.features",
    "avrec.features.functional",
    "avrec.features.transforms",
    "avrec.features.nn",
    "avrec.features.encoders",
    "avrec.features.finetune",
    "avrec.recommenders",
    "avrec.recommenders.cf",
    "avrec.recommenders.content",
    "avrec.recommenders.hybrid",
    "avrec.recommenders.sequential",
    "avrec.evaluation",
    "avrec.explain",
    "avrec.privacy",
    "avrec.cli",
    "avrec.exceptions",
    "avrec.utils",
)

#: Directory (relative to the docs source folder) holding the generated pages and stubs.
GENERATED_DIR = "api/generated"

_SECTIONS = (
    ("class", "Classes"),
    ("exception", "Exceptions and warnings"),
    ("function", "Functions"),
    ("data", "Constants"),
)


@dataclass
class PublicModule:
    """One public module: its name, its ``__all__`` and how each name is documented."""

    name: str
    module: ModuleType
    names: list[str]
    #: name -> "class" | "exception" | "function" | "data" | "module"
    kinds: dict[str, str] = field(default_factory=dict)
    #: name -> full canonical path, for names documented on another module's page
    elsewhere: dict[str, str] = field(default_factory=dict)

    @property
    def docname(self) -> str:
        return f"{GENERATED_DIR}/{self.name}"


def _is_private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split("."))


def _order_key(modname: str) -> tuple[int, str]:
    try:
        return (MODULE_ORDER.index(modname), modname)
    except ValueError:
        return (len(MODULE_ORDER), modname)


def _kind(obj: object) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def public_module_names(package: str = PACKAGE) -> list[str]:
    """Every public module below ``package`` (importing them), in page order."""
    root = importlib.import_module(package)
    found = []
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not _is_private(info.name):
            found.append(info.name)
    return sorted(found, key=_order_key)


def public_api(package: str = PACKAGE) -> list[PublicModule]:
    """The public modules, their ``__all__`` and where each name is documented."""
    modules = []
    for modname in public_module_names(package):
        module = importlib.import_module(modname)
        names = list(getattr(module, "__all__", []))
        missing = [n for n in names if not hasattr(module, n)]
        if missing:
            raise AttributeError(f"{modname}.__all__ lists names it does not define: {missing}")
        modules.append(PublicModule(modname, module, names))
    # canonical home of each class / function: the shallowest exporting module
    home: dict[int, str] = {}
    for pm in sorted(modules, key=lambda m: (m.name.count("."), _order_key(m.name))):
        for name in pm.names:
            obj = getattr(pm.module, name)
            pm.kinds[name] = _kind(obj)
            if pm.kinds[name] in ("class", "exception", "function"):
                canonical = home.setdefault(id(obj), f"{pm.name}.{name}")
                if canonical != f"{pm.name}.{name}":
                    pm.elsewhere[name] = canonical
    return modules


def aliases(modules: list[PublicModule]) -> dict[str, str]:
    """Other paths of each documented object -> its canonical path.

    Covers re-exports (``avrec.recommenders.cf.EASE``) and the private
    definition sites (``avrec.recommenders.cf._ease.EASE``) that autodoc
    shows in base-class lists and type hints.
    """
    out: dict[str, str] = {}
    for pm in modules:
        for name in pm.names:
            if pm.kinds[name] not in ("class", "exception", "function"):
                continue
            canonical = pm.elsewhere.get(name, f"{pm.name}.{name}")
            obj = getattr(pm.module, name)
            defined = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', name)}"
            for path in (f"{pm.name}.{name}", defined):
                if path != canonical:
                    out[path] = canonical
    return out


def short_names(modules: list[PublicModule]) -> dict[str, str]:
    """Unambiguous bare class and function names -> canonical path (for cross-references)."""
    seen: dict[str, set[str]] = {}
    for pm in modules:
        for name in pm.names:
            if pm.kinds[name] in ("class", "exception", "function"):
                seen.setdefault(name, set()).add(pm.elsewhere.get(name, f"{pm.name}.{name}"))
    return {name: paths.pop() for name, paths in seen.items() if len(paths) == 1}


def constant_doc(pm: PublicModule, name: str) -> str:
    """The documentation of a public constant: its ``#:`` comment or the string after it.

    autodoc would show the docstring of the value's type (``str``, ``tuple``) for a
    constant re-exported from a private module, so the comment is read from the
    source of the module that assigns it.
    """
    obj = getattr(pm.module, name)
    private = [m for m in list(sys.modules) if m.startswith(f"{pm.name}.") and _is_private(m)]
    candidates = [pm.name, *sorted(private)]
    for modname in candidates:
        module = sys.modules.get(modname)
        if module is None or getattr(module, name, None) is not obj:
            continue
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        body = ast.parse(source).body
        for i, node in enumerate(body):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            )
            if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
                continue
            after = body[i + 1] if i + 1 < len(body) else None
            if (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                return inspect.cleandoc(after.value.value)
            comment = []
            row = node.lineno - 2
            while row >= 0 and lines[row].lstrip().startswith("#:"):
                comment.insert(0, lines[row].lstrip()[2:].strip())
                row -= 1
            return " ".join(comment)
    return ""


def stub_names(pm: PublicModule) -> list[str]:
    """Names of ``pm`` that get their own stub page (``<module>.<name>.rst``) on its page."""
    kinds = ("class", "exception", "function")
    return [n for n in pm.names if pm.kinds[n] in kinds and n not in pm.elsewhere]


def module_page(pm: PublicModule) -> str:
    """The reST source of ``pm``'s API page: its docstring and autosummary tables.

    Names documented here get stub pages (``:toctree: .``, generated by
    autosummary); names documented elsewhere are listed in a table that links
    to their canonical page; submodules link to their own page.
    """
    lines = [pm.name, "=" * len(pm.name), "", f".. automodule:: {pm.name}", "   :no-members:", ""]
    lines += [f".. currentmodule:: {pm.name}", ""]
    for kind, title in _SECTIONS:
        own = [n for n in pm.names if pm.kinds[n] == kind and n not in pm.elsewhere]
        other = [n for n in pm.names if pm.kinds[n] == kind and n in pm.elsewhere]
        if not own and not other:
            continue
        lines += [title, "-" * len(title), ""]
        if kind == "data":  # autosummary would show the docstring of the value's type
            for n in own:
                value = repr(getattr(pm.module, n))
                doc = constant_doc(pm, n)
                typed = re.match(r"([\w.]+): (.*)", doc, re.S)  # "str: where ..." docstrings
                lines += [f".. data:: {n}", f"   :value: {value}"]
                if typed:
                    lines.append(f"   :type: {typed.group(1)}")
                    doc = typed.group(2)
                lines.append("")
                lines += [f"   {line}" for line in doc.splitlines()] + [""]
            lines += [f"* :data:`~{pm.elsewhere.get(n, n)}`" for n in other] + [""]
            continue
        if own:
            lines += [".. autosummary::", "   :toctree: .", "   :nosignatures:", ""]
            lines += [f"   {n}" for n in own] + [""]
        homes = sorted({pm.elsewhere[n].rpartition(".")[0] for n in other}, key=_order_key)
        for home in homes:  # the same objects, documented under a shallower module
            names = [n for n in other if pm.elsewhere[n].rpartition(".")[0] == home]
            lines += [f"Also exported by :mod:`{home}` and documented there:", ""]
            lines += [".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   ~{pm.elsewhere[n]}" for n in names] + [""]
    submodules = [n for n in pm.names if pm.kinds[n] == "module"]
    if submodules:
        lines += ["Submodules", "----------", ""]
        lines += [f"* :mod:`{pm.name}.{n}`" for n in submodules] + [""]
    return "\n".join(lines)


def summary_table(pm: PublicModule) -> str:
    """An autosummary table (no stubs) of every public name of ``pm``, linking to its page.

    Meant to be parsed with ``pm.name`` as the current module.
    """
    lines = [".. autosummary::", "   :nosignatures:", ""]
    for name in pm.names:
        if pm.kinds[name] not in ("module", "data"):  # short names: used with currentmodule
            lines.append(f"   ~{pm.elsewhere[name]}" if name in pm.elsewhere else f"   {name}")
    constants = [f":data:`~{pm.name}.{n}`" for n in pm.names if pm.kinds[n] == "data"]
    if constants:
        lines += ["", "Constants: " + ", ".join(constants) + "."]
    return "\n".join(lines) + "\n"
