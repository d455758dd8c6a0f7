"""The README says what the code does: its links resolve, its install hints match the errors', and
the exit statuses and the loss scale it states are the real ones."""

import pathlib
import re

from xpcnn.app import reporting
ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FLAT = " ".join(README.split())  # line breaks do not matter


def test_every_relative_link_and_cited_file_exists():
    targets = re.findall(r"\]\(([^)#:]+)\)", README)
    targets += [t for t in re.findall(r"`([\w./-]+\.(?:md|txt|py))`", README) if "/" in t or t.endswith(".txt")]
    assert "docs/derivation.md" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_the_derivation_document_covers_what_the_readme_says_it_does():
    text = (ROOT / "docs" / "derivation.md").read_text()
    for topic in ("valid cross-correlation", "Kernel gradient", "Bias gradient", "Input gradient",
                  "dense layer", "sigmoid", "Binary cross-entropy"):
        assert topic.lower() in text.lower(), topic


def test_the_plot_hint_in_errors_is_the_one_the_readme_gives():
    for spelling in re.findall(r"pip install (?:-e )?'([^']+)'", reporting.PLOT_HINT):
        assert spelling in README, spelling


def test_the_readme_states_the_real_exit_statuses_and_the_loss_scale():
    assert "exit status 2 for a bad flag or flag value (usage error), 1 for anything else, 130 after Ctrl-C" in FLAT
    assert "Errors are one line on stderr, exit 1." not in FLAT
    assert "the mean over all `N·K` elements: `1/K` of the per-sample mean" in FLAT


ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
PACKAGE = ROOT / "xpcnn"


def test_every_path_the_architecture_page_cites_exists():
    cited = re.findall(r"`([\w./-]*/[\w./-]*)`", ARCHITECTURE)  # `xpcnn/train/loop.py`, `tests/layers/`
    cited += [(pathlib.Path("docs") / t).as_posix() for t in re.findall(r"\]\(([^)#:]+)\)", ARCHITECTURE)]
    assert "xpcnn/train/trainer.py" in cited and "xpcnn/model.py" in cited
    missing = [t for t in cited if not (ROOT / t).resolve().exists()]
    assert not missing, missing


def test_the_architecture_page_names_every_subpackage_and_top_level_module_in_its_tree():
    tree = re.search(r"## The package, by job\n+```\n(.*?)```", ARCHITECTURE, re.S).group(1)
    listed = set(re.findall(r"(?:^|\s)(_?\w+(?:\.py|/))", tree))
    subpackages = {p.parent.name + "/" for p in PACKAGE.glob("*/__init__.py")}
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert subpackages and modules
    assert not (subpackages | modules) - listed, sorted((subpackages | modules) - listed)


def test_the_architecture_page_draws_the_import_layers_the_test_enforces():
    from tests.repo.test_imports import LAYERS

    drawn = re.search(r"## The import layers\n.*?```\n(.*?)```", ARCHITECTURE, re.S).group(1)
    layers = [{name.strip() for name in part.split(",")} for part in " ".join(drawn.split()).split("<")]
    assert layers == LAYERS
