"""The README's "Verified on" table: every row is the one its committed doctor report gives
(scripts/verified_row.py writes them), and every committed report has its row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import verified_row  # noqa: E402

REPORTS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "benchmarks").glob("doctor-*.json"))


def test_every_readme_row_is_the_one_its_report_gives():
    rows = verified_row.readme_rows(ROOT / "README.md")
    assert rows, "the README has no Verified on row"
    for row, path in rows:
        assert (ROOT / path).is_file(), path
        assert row == verified_row.row_for(path), f"rerun: python scripts/verified_row.py {path}"


def test_every_committed_report_has_its_row_and_is_a_real_full_run():
    linked = {path for _, path in verified_row.readme_rows(ROOT / "README.md")}
    assert REPORTS and set(REPORTS) == linked
    for path in REPORTS:
        report = json.loads((ROOT / path).read_text())
        assert report["tool"] == "xpcnn-doctor" and "interrupted" not in report
        assert report["checks"] and report["environment"]["cpu"]
    cpu = [json.loads((ROOT / p).read_text()) for p in REPORTS if "doctor-cpu-" in p]
    assert any(r["device"] == "cpu" and not r["quick"] and r["verdict"]["passed"] for r in cpu)


def test_the_check_flag_accepts_the_readme_and_refuses_a_changed_row(tmp_path):
    script = ROOT / "scripts" / "verified_row.py"
    ok = subprocess.run([sys.executable, str(script), "--check", str(ROOT / "README.md")], capture_output=True,
                        text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    changed = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    row, _ = verified_row.readme_rows(ROOT / "README.md")[0]
    changed.write_text(text.replace(row, row.replace("passed", "passed!"), 1))
    bad = subprocess.run([sys.executable, str(script), "--check", str(changed)], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 1 and "differs from its report" in bad.stderr
