"""Wall time of a generated pytest suite, for the simple per-test cost scripts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

EMPTY_TESTS = """
import pytest

@pytest.mark.parametrize("i", range({n}))
@pytest.mark.asyncio
async def test_empty(i):
    pass
"""
"""The baseline: ``n`` empty async tests (format it with ``n=``)."""

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def pytest_seconds(directory: Path, source: str) -> float:
    """Write ``source`` as the only test module of ``directory``, run pytest on it, time it."""
    (directory / "test_bench.py").write_text(source)
    (directory / "pytest.ini").write_text(INI)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        check=True,
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start
