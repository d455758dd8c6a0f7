#!/usr/bin/env python
"""The README's "Verified on" rows, made from ``xpcnn-doctor --json`` reports, never by hand.

    python scripts/verified_row.py benchmarks/doctor-*.json        # print the header and one row per report
    python scripts/verified_row.py --check README.md               # exit 1 if a README row differs

Each row links to its report (the path as given, relative to the repository root); the test suite
(tests/repo/test_verified_on.py) checks that every row in the README is the one its report gives.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from xpcnn.doctor.report import ROW_HEADER, verified_row

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\((benchmarks/[^)]+\.json)\) \|$")


def readme_rows(readme: Path) -> "list[tuple[str, str]]":
    """``(row, report path)`` for every row of the README's "Verified on" table."""
    text = readme.read_text()
    section = text.split("## Verified on", 1)[1].split("\n## ", 1)[0] if "## Verified on" in text else ""
    return [(line, m.group(1)) for line in section.splitlines() if (m := LINK.search(line))]


def row_for(path: str) -> str:
    return verified_row(json.loads((ROOT / path).read_text()), path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="*", help="doctor --json reports, as paths relative to the repository root")
    p.add_argument("--check", metavar="README", help="compare the README's rows with their reports")
    args = p.parse_args(argv)
    if args.check:
        bad = [(row, path) for row, path in readme_rows(Path(args.check)) if row != row_for(path)]
        for row, path in bad:
            print(f"verified_row.py: the row for {path} differs from its report; it should be:\n{row_for(path)}",
                  file=sys.stderr)
        return 1 if bad else 0
    print(ROW_HEADER)
    for path in args.reports:
        print(row_for(Path(path).resolve().relative_to(ROOT).as_posix()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
