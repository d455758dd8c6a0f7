"""House style that a reader notices: no line of Python longer than 120 characters."""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIMIT = 120


def long_lines(paths, limit: int = LIMIT) -> "list[str]":
    """``"path:line (length)"`` for every line over ``limit`` characters (not bytes: ``∂`` is one)."""
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) > limit:
                found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number} ({len(line)})")
    return found


def python_files():
    return sorted(p for folder in ("xpcnn", "tests", "scripts") for p in (ROOT / folder).rglob("*.py"))


def test_every_python_line_fits_in_120_characters():
    files = python_files()
    assert len(files) > 50, "the package, tests and scripts were not found"
    assert long_lines(files) == []


def test_the_check_counts_characters_and_finds_a_long_line(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n" + "∂" * LIMIT + "\n" + "y" * (LIMIT + 1) + "\n", encoding="utf-8")
    assert long_lines([path]) == [f"{path}:3 ({LIMIT + 1})"]
