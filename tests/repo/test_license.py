"""The licence the package declares is the one the repository carries."""

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_mit_licence_that_pyproject_declares_is_in_the_repository():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    text = (ROOT / "LICENSE").read_text()
    assert declared == {"text": "MIT"}
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text
