"""The benchmark runner's quick mode runs end to end, so that the benchmarks cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _row(text: str, name: str) -> list[str]:
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{text}")


def test_quick_run_measures_every_scenario(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    text = output.read_text()
    assert completed.stdout.strip() == text.strip()
    for heading in (
        "## Machine",
        "## Package versions",
        "## 1. Per-test cost of one HTTP GET",
        "## 2. The same over HTTPS",
        "## 3. Plugin overhead",
        "## 4. Throughput",
        "## 5. Scale-out under pytest-xdist",
        "## Targets",
    ):
        assert heading in text
    number = re.compile(r"^\d+(\.\d+)?$")
    # The baseline and aiotestkit's own variants are measured, in both schemes.
    http, https = text.split("## 2. The same over HTTPS")
    https = https.split("## 3.")[0]
    for section in (http, https):
        for name in ("baseline", "aiotestkit-redirector", "pytest-aiohttp"):
            cells = _row(section, name)
            assert all(number.match(cell) for cell in cells[1:5]), cells
            assert cells[6].endswith("x"), cells
    assert _row(http, "baseline")[6] == "1.00x"
    for name in ("collect, aiotestkit loaded", "run, aiotestkit loaded"):
        assert number.match(_row(text, name)[1])
    for name in ("case-controlled, sequential", "case-controlled, concurrent"):
        assert number.match(_row(text, name)[1])
    assert _row(text, "-n 2")[-1].startswith("yes")
    assert "not measured" not in _row(text, "plugin overhead (run, CPU time) < 5%")[1]
