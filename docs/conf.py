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
# the tutorials' kernels import this checkout's xpcnn, not another installed copy
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

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
if nb_execution_mode == "off":  # no kernel ran, so no cell knows its language: the code is shown unhighlighted
    suppress_warnings.append("myst-nb.lexer")
nb_execution_raise_on_error = True  # a tutorial that fails fails the build
nb_execution_cache_path = str(ROOT / "docs" / "_build" / ".jupyter_cache")
nb_merge_streams = True
nb_execution_in_temp = True  # the files a tutorial writes (checkpoints, ONNX) stay out of the checkout

# -- autodoc ---------------------------------------------------------------------------------------
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
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


# -- references to xpcnn's public facade and short names -----------------------------------------
# Docstrings say ``xpcnn.to_numpy`` or ``~xpcnn.OutputError`` (the names users import) and, inside a
# module, ``ConfigError`` or ``Sequential.fit``; the API page documents each object once, where it is
# defined. This resolves such a reference to the documented object, when there is one.

def _documented(env, name: str):
    objects = env.get_domain("py").objects
    return name if name in objects else None


def _candidates(target: str, module: "str | None"):
    import importlib

    yield target
    for prefix in ("xpcnn.", (module + ".") if module else None):
        if prefix:
            yield prefix + target
    parts = target.split(".")
    roots = ["xpcnn", module] if module else ["xpcnn"]
    for root in roots:  # an object reached through a module's namespace: its canonical name
        try:
            obj = importlib.import_module(root)
        except ImportError:
            continue
        for part in (parts[1:] if parts[0] == "xpcnn" else parts):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is None:
            continue
        owner = getattr(obj, "__module__", None)
        qual = getattr(obj, "__qualname__", None)
        if owner and qual:
            yield f"{owner}.{qual}"
        elif isinstance(obj, type(importlib)):
            yield obj.__name__


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    module = node.get("py:module")
    cls = node.get("py:class")
    tries = list(_candidates(target, module))
    if module and cls:
        tries.insert(0, f"{module}.{cls}.{target}")
    for name in tries:
        found = _documented(env, name)
        if found:
            from sphinx.util.nodes import make_refnode

            docname = env.get_domain("py").objects[found].docname
            return make_refnode(app.builder, node["refdoc"], docname, found, contnode, found)
    return None


# -- indented equation blocks ---------------------------------------------------------------------
# The house style writes a docstring's equations as an indented block after a blank line, often
# without reST's "::" (xpcnn/layers/reshape.py, xpcnn/optim/optimizers.py, ...). Shown as typed, they
# are literal blocks: a lone "::" paragraph before such a block makes it one (and is not rendered).

def _literal_equations(app, what, name, obj, options, lines):
    out, previous = [], ""
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        before = lines[i - 1] if i else ""
        text = previous.strip()
        if (line.strip() and not before.strip() and previous and indent > len(previous) - len(previous.lstrip())
                and not text.endswith("::") and not text.startswith((".. ", ":", "* ", "- ", "|"))
                and not text[:1].isdigit()):
            out += ["::", ""]
        out.append(line)
        if line.strip():
            previous = line
    lines[:] = out


# Names the docstrings cross-reference that the API page does not document: internal modules and
# helpers (each should become plain ``code`` or be documented; the report lists them), and napoleon
# reading a sentence after "Returns:" as a type.
nitpick_ignore = [
    ("py:class", "xpcnn.train.Trainer"), ("py:class", "xpcnn.train.trainer.Trainer"),
    ("py:mod", "xpcnn.tools.summary"), ("py:func", "loss_for_output"), ("py:mod", "xpcnn.train.step_guard"),
    ("py:mod", "xpcnn.distributed.data_parallel"), ("py:data", "xpcnn.losses.LOSSES"), ("py:data", "LOSSES"),
    ("py:class", "The loss"), ("py:meth", "Layer._keep"), ("py:mod", "xpcnn._checks"),
    ("py:meth", "reset_parameters"), ("py:mod", "xpcnn.engines"), ("py:mod", "xpcnn.engines.auto"),
    ("py:attr", "Convolutional.chosen_engine"), ("py:class", "Set to False for a first layer"),
    ("py:meth", "MaxPool2D._separable_max"), ("py:func", "xpcnn.backend.uniform_from_key"),
    ("py:meth", "Optimizer.to"), ("py:func", "xpcnn.optim.schedules.check_schedule"),
    ("py:meth", "Sequential.fit"), ("py:attr", "EarlyStopping.best_epoch"), ("py:attr", "restored_epoch"),
    ("py:class", "xpcnn.backend.libraries.ArrayBackend"), ("py:mod", "xpcnn.backend.libraries"),
    ("py:func", "xpcnn.io.files.atomic_write"), ("py:func", "xpcnn.datasets.mnist.load_idx_folder"),
    ("py:class", "Training settings that suit the network"), ("py:mod", "xpcnn.testing.torch_twins"),
    ("py:mod", "communicator"), ("py:mod", "world"), ("py:mod", "data_parallel"), ("py:class", "DistributedError"),
]


def setup(app):
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-process-docstring", _literal_equations, priority=900)  # after napoleon (500)
