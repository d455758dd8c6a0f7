"""The documentation site (docs/, built with Sphinx): its code blocks run, the API page names every
public name, the CLI guide every flag, and the built derivation page shows rendered math in a real
browser (headless Chromium), with no script from the network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BUILT = DOCS / "_build" / "html"
#: Pages whose Python blocks run, each page's blocks in order in one namespace (the README's example
#: and export snippets have their own tests: test_readme.py, tests/app/test_export_cli.py).
RUNNABLE_PAGES = ["docs/getting-started.md",
                  *sorted(p.relative_to(ROOT).as_posix() for p in (DOCS / "guide").glob("*.md"))]
#: A block right after this comment is shown, not run; the comment says why.
NOT_RUN = re.compile(r"<!-- not run: [^>]+ -->\n+```python\n")


def python_blocks(text: str) -> "list[str]":
    shown = {m.end() for m in NOT_RUN.finditer(text)}
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S) if m.start() + len("```python\n")
            not in shown]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_every_python_block_of_the_guide_pages_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    text = (ROOT / page).read_text()
    blocks = python_blocks(text)
    monkeypatch.chdir(tmp_path)  # the files a block writes land here
    namespace: dict = {"__name__": "__docs__"}
    for code in blocks:
        exec(compile(code, page, "exec"), namespace)
    assert len(blocks) + len(NOT_RUN.findall(text)) == text.count("```python\n")


def test_the_not_run_marker_is_honoured_and_a_failing_block_fails(tmp_path):
    text = "<!-- not run: needs mpiexec -->\n```python\nraise SystemExit\n```\n```python\nx = 1\n```\n"
    assert python_blocks(text) == ["x = 1\n"]
    with pytest.raises(ZeroDivisionError):
        exec(compile(python_blocks("```python\n1 / 0\n```\n")[0], "page", "exec"), {})


def test_every_public_name_of_xpcnn_is_on_the_api_page():
    """Each name of ``xpcnn.__all__`` is documented where it is defined: its module is on docs/api.md
    (automodule, or py:module with autoclass), and where the directive lists members, the name is one."""
    import xpcnn

    api = (DOCS / "api.md").read_text()
    directives = {m.group(1): m.group(2) for m in re.finditer(
        r"\.\. automodule:: ([\w.]+)\n((?:   :[^\n]*\n(?:             [^\n]*\n)*)*)", api)}
    classes = set(re.findall(r"\.\. autoclass:: (\w+)", api))
    missing = []
    for name in xpcnn.__all__:
        obj = getattr(xpcnn, name)
        module = getattr(obj, "__module__", None) or next(
            m for m in ("xpcnn.backend.devices",) if hasattr(sys.modules[m], name))
        if module in directives:
            members = re.search(r":members:(.*?)(?:\n   :|\Z)", directives[module], re.S)
            listed = members and members.group(1).strip()
            if listed and name not in re.split(r"[\s,]+", listed):
                missing.append(f"{name} ({module}: not in :members:)")
        elif not (f".. py:module:: {module}" in api and name in classes):
            missing.append(f"{name} ({module})")
    assert not missing, missing


def test_every_train_flag_is_in_the_cli_guide():
    from xpcnn.app.cli import build_parser

    guide = (DOCS / "guide" / "cli.md").read_text()
    flags = [s for action in build_parser()._actions for s in action.option_strings if s.startswith("--")]
    assert "--early-stopping" in flags
    missing = [f for f in flags if f not in ("--help",) and f"`{f}" not in guide and f" {f}" not in guide]
    assert not missing, missing


def test_every_docs_page_is_in_a_toctree_or_is_another_helpers_page_the_lead_adds():
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md") if "_build" not in p.parts}
    listed = set()
    for page in DOCS.rglob("*.md"):
        for block in re.findall(r"```\{toctree\}\n(.*?)```", page.read_text(), re.S):
            base = page.parent.relative_to(DOCS)
            listed |= {(base / line.strip()).as_posix().lstrip("./") for line in block.splitlines()
                       if line.strip() and not line.startswith(":") and not line.startswith("/")}
    assert not pages - listed - {"index"}, sorted(pages - listed - {"index"})


def built_site(tmp_path_factory) -> Path:
    """The site CI built (docs/_build/html), or a quick build without the tutorials' execution."""
    if (BUILT / "docs" / "derivation.html").is_file():
        return BUILT
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, XPCNN_DOCS_EXECUTE="off")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-c", "docs", ".", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium (apt-get install chromium): the browser check of the derivation page")
    return found


def test_the_site_loads_no_script_or_style_from_the_network(tmp_path_factory):
    pytest.importorskip("sphinx")
    site = built_site(tmp_path_factory)
    remote = []
    for page in site.rglob("*.html"):
        html = page.read_text(errors="replace")
        remote += [f"{page.name}: {m}" for m in re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"(?:https?:)?//[^\"]+",
                                                             html)]
    assert not remote, remote[:5]
    assert (site / "_static" / "mathjax" / "tex-svg.js").is_file()
    assert (site / "searchindex.js").is_file()


def test_the_derivation_page_shows_rendered_math_in_headless_chromium(tmp_path_factory, tmp_path):
    browser = chromium()
    site = built_site(tmp_path_factory)
    page = site / "docs" / "derivation.html"
    source = page.read_text()
    assert "\\frac{\\partial E}" in source  # the TeX MathJax is to render
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                             "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    dom = result.stdout
    assert "<html" in dom, result.stderr[-1000:]
    rendered = dom.count("<mjx-container")
    displayed = source.count('class="math notranslate nohighlight"')
    assert displayed >= 10 and rendered >= displayed, (rendered, displayed)
    assert "<svg" in dom
    text = re.sub(r"<mjx-container.*?</mjx-container>", "", dom, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", "", text, flags=re.S)
    raw = re.findall(r"\\frac|\\partial|\\sum_", re.sub(r"<[^>]+>", "", text))
    assert not raw, f"raw TeX left in the page: {raw[:5]}"


def test_the_executed_tutorials_show_their_pictures():
    """Where the site was built with the tutorials executed (CI), their figures are on the pages: the
    kernels, feature maps, curves and confusion matrices are drawn, not only computed."""
    pages = BUILT / "docs" / "tutorials"
    if not (pages / "fashion-mnist.html").is_file() or "XPCNN_DOCS_EXECUTE" in os.environ:
        pytest.skip("the site is not built with executed tutorials here (.ci/run builds it)")
    pictures = {name: (pages / f"{name}.html").read_text().count("<img") for name in
                ("derivation-experiment", "fashion-mnist")}
    assert pictures["derivation-experiment"] >= 5 and pictures["fashion-mnist"] >= 3, pictures
