"""The benchmark harness runs end to end (a smoke run), and judges targets as documented.

Timing is never asserted: the smoke run checks that every scenario produced figures, that
every run used the resolver the output names, and that the verdicts follow the paired
rounds.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _harness import paired, verdict  # noqa: E402


def _rows(text: str, name: str, *, part: bool = False) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and (name in cells[0] if part else cells[0] == name):
            rows.append(cells)
    if not rows:
        raise AssertionError(f"no row {name!r} in:\n{text}")
    return rows


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize(
    ("values", "limit", "higher", "expected"),
    [
        ([0.8, 0.9, 0.95, 0.85, 0.99], 1.0, False, "met"),
        ([0.8, 0.9, 1.05, 0.85, 0.99], 1.0, False, "not shown (the rounds fall on both sides)"),
        ([1.1, 1.2, 1.3], 1.0, False, "missed"),
        ([1.7, 1.8], 1.6, True, "met"),
        ([1.5, 1.8], 1.6, True, "not shown (the rounds fall on both sides)"),
        ([0.9], 1.0, False, "not shown (fewer than 2 rounds)"),
    ],
)
def test_verdict_needs_every_round_on_one_side(
    values: list[float], limit: float, higher: bool, expected: str
) -> None:
    assert verdict(values, limit, higher) == expected


def test_ratios_are_paired_by_round() -> None:
    ours = {0: 2.0, 1: 6.0, 2: 3.0}
    theirs = {0: 4.0, 1: 3.0}  # round 2 missing: skipped, never paired with another round
    assert paired(ours.get, theirs.get, 3) == [0.5, 2.0]


def test_quick_run_measures_every_scenario(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--repeats",
            "1",
            "--resolver",
            "threaded",
            "--no-build",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    text = output.read_text()
    assert completed.stdout.strip() == text.strip()
    for heading in (
        "## Machine",
        "## Environments and resolvers",
        "## Package versions",
        "Per-test cost, aiohttp client, HTTP, ThreadedResolver",
        "Per-test cost, aiohttp client, HTTPS, ThreadedResolver",
        "Per-test cost, httpx client, HTTP",
        "Per-test cost, httpx client, HTTPS",
        "Plugin overhead",
        "Memory per test",
        "Throughput",
        "Scale-out under pytest-xdist",
        "## Targets (issue 14)",
    ):
        assert heading in text
    assert "aiohttp's DefaultResolver is `ThreadedResolver`" in text
    assert "load average (1, 5, 15 min) at the start" in text
    number = re.compile(r"^-?\d+(\.\d+)?$")
    for heading in ("aiohttp client, HTTP,", "aiohttp client, HTTPS,", "httpx client, HTTPS,"):
        section = _section(text, heading)
        for name in ("baseline", "aiotestkit-sandbox"):
            # wall and CPU per test, above baseline, process wall and CPU: all measured.
            cells = _rows(section, name)[0]
            assert all(number.match(cell) for cell in cells[2:6] + cells[7:8] + cells[9:]), cells
    assert _rows(_section(text, "aiohttp client, HTTP,"), "aiotestkit-redirector")
    targets = _section(text, "## Targets (issue 14)")
    for target in (
        "network_sandbox HTTPS ≤ 1.0x pytest-aiohttp HTTPS (ThreadedResolver)",
        "plugin overhead, async tests, default settings ≤ +5%",
        "`-n 2` speed-up ≥ 1.6x",
        "concurrently held requests ≤ 1.0x plain aiohttp's time",
    ):
        for cells in _rows(targets, target, part=True):
            assert "not measured" not in cells[2], cells
            assert cells[-1] == "not shown (fewer than 2 rounds)", cells  # one round only


def test_routed_pieces_run_every_flow() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "routed_pieces.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    ran = {line.removesuffix(": ran") for line in completed.stdout.splitlines()}
    assert {"plain", "sandbox", "sandbox+instrumented", "case-controlled+instrumented"} <= ran
