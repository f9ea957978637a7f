"""The seed 003 example suite passes under ``python -m unittest``, warnings as errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "receive"


def test_receive_example_passes_under_python_m_unittest() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "unittest", "-v", "test_async_receive"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in ("test_invalid_packet", "test_ping", "test_message"):
        # "(module.Class)" before Python 3.11, "(module.Class.test)" since.
        verdict = rf"^{name} \(test_async_receive\.TestReceive(\.{name})?\) \.\.\. ok$"
        assert re.search(verdict, result.stderr, re.MULTILINE), result.stderr
    assert "Ran 4 tests" in result.stderr
