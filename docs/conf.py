"""Sphinx configuration for xpcnn's documentation.

Built from the repository root, so that README.md is a page and its links into docs/ resolve::

    pip install -e '.[docs]' && sphinx-build -W -n -c docs . docs/_build/html

Offline by default: MathJax comes from a pip package (django-static-mathjax, MathJax 3's files
only) and is served from ``_static``; the theme loads no font or script from a CDN; search is
Sphinx's own index. The tutorials are executed when the site is built (myst-nb).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import xpcnn  # noqa: E402

project = "xpcnn"
author = "the xpcnn authors"
copyright = "2026, the xpcnn authors"
release = version = xpcnn.__version__

root_doc = "docs/index"
include_patterns = ["README.md", "docs/**"]
exclude_patterns = ["docs/_build/**", "docs/_mathjax/**", "**/.ipynb_checkpoints", "docs/conf.py"]

extensions = [
    "myst_nb",  # MyST Markdown pages and executed Markdown notebooks (docs/tutorials)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]

# -- MyST ------------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # README's first heading is the page title at level 1, then level 2

# -- executed tutorials (myst-nb) -----------------------------------------------------------------
nb_execution_mode = os.environ.get("XPCNN_DOCS_EXECUTE", "cache")  # "off" for a quick look at the text
nb_execution_timeout = 600
nb_execution_raise_on_error = True  # a tutorial that fails fails the build
nb_execution_cache_path = str(ROOT / "docs" / "_build" / ".jupyter_cache")
nb_merge_streams = True

# -- autodoc ---------------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the signatures carry them; many are strings ("str | None") for Python 3.10
napoleon_google_docstring = True
napoleon_numpy_docstring = True
autosummary_generate = False

# Names that docstrings and signatures use but that no page documents (third-party types, and
# xpcnn's own internals named in prose). Each is a reference that cannot resolve, not a typo.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|cupy|scipy|torch|matplotlib|onnx|mpi4py|array_api_strict)(\..*)?"),
    (r"py:.*", r"(Array|Any|Callable|Iterable|Sequence|Mapping|Path|PathLike|os\.PathLike|Figure|ndarray)"),
    (r"py:.*", r"(optional|callable|array|array-like|arrays|function|default|Device or str)"),
    (r"py:class", r"(xpcnn\.)?[\w.]*\._[\w.]+"),  # private bases named by show-inheritance
    (r"py:class", r"(abc\.ABC|object|Exception|ValueError|TypeError|RuntimeError|OSError|ImportError)"),
]

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"xpcnn {release}"
html_static_path = []
html_show_sourcelink = False


def _local_mathjax() -> str:
    """Copy MathJax 3's self-contained ``tex-svg.js`` next to this file and serve it from ``_static``."""
    import mathjax  # django-static-mathjax: MathJax 3.2.2 as package data, no Django needed

    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg.js"
    folder = Path(__file__).parent / "_mathjax"
    target = folder / "mathjax" / "tex-svg.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)
    html_static_path.append(str(folder))
    return "mathjax/tex-svg.js"


mathjax_path = _local_mathjax()
mathjax3_config = {"tex": {"tags": "ams"}, "svg": {"fontCache": "global"}}
