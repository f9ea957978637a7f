"""Overhead of aiotestkit's hygiene checks on 1,000 trivial async tests.

Runs the same generated test suite in fresh pytest processes, with the checks on (the
default: strict, hang guard, young-generation gc), with the checks off through the ini
switches (``aiotestkit_hygiene=off``, ``aiotestkit_hang_timeout=0``), and with the
plugin disabled (``-p no:aiotestkit``). Each variant also runs a one-test suite, so
that the start-up cost (imports, collection) can be taken out: the per-test cost is
``(time(N tests) - time(1 test)) / (N - 1)``. A conftest also sums, inside pytest, the
time spent in each test's run protocol (set-up, call, teardown): the most direct
per-test figure, free of start-up noise.

It prints the best wall time and the best CPU time (user + system of the pytest
process) of each, the whole-run ratios, and the per-test ratios. Runs alternate so
that load on a shared machine spreads over all variants; CPU time is the steadier
figure on a busy machine.

Usage:
    .venv/bin/python benchmarks/hygiene_overhead.py [--tests 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST_FILE = """
import asyncio

import pytest

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("n", range({tests}))
async def test_trivial(n):
    await asyncio.sleep(0)
"""

CONFTEST = """
import os
import time

import pytest

TOTALS = {"wall": 0.0, "cpu": 0.0, "library": 0.0}


def _timed(function):
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            TOTALS["library"] += time.process_time() - start

    return wrapper


def pytest_configure(config):
    # CPU time spent in aiotestkit's own per-test code (settings, attach, hang guard,
    # finish), without pytest's fixture machinery around it.
    if not config.pluginmanager.has_plugin("aiotestkit"):
        return
    from aiotestkit import LoopInstrumentation, pytest_plugin

    for name in ("__init__", "attach", "run_finish", "start_hang_guard", "stop_hang_guard"):
        setattr(LoopInstrumentation, name, _timed(getattr(LoopInstrumentation, name)))
    pytest_plugin._instrumentation_for = _timed(pytest_plugin._instrumentation_for)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        TOTALS["wall"] += time.perf_counter() - wall
        TOTALS["cpu"] += time.process_time() - cpu


def pytest_sessionfinish(session):
    with open(os.environ["HYGIENE_BENCH_OUT"], "w") as out:
        out.write(f"{TOTALS['wall']} {TOTALS['cpu']} {TOTALS['library']}")
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""

ON, OFF, PLUGIN_OFF = "checks on (default)", "checks off (ini)", "plugin off (-p no:aiotestkit)"
VARIANTS = {
    ON: [],
    OFF: ["-o", "aiotestkit_hygiene=off", "-o", "aiotestkit_hang_timeout=0"],
    PLUGIN_OFF: ["-p", "no:aiotestkit"],
}


def run_once(
    directory: Path, test_file: str, extra: list[str], tests: int
) -> tuple[float, float, float, float, float]:
    """Run one suite once.

    Returns:
        (process wall s, process CPU s, wall s in test protocols, CPU s in test
        protocols, CPU s in aiotestkit's per-test code).
    """
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file, *extra]
    out = directory / "totals.txt"
    env = {**os.environ, "HYGIENE_BENCH_OUT": str(out)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, check=False, env=env
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0 or f"{tests} passed" not in result.stdout:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    protocol_wall, protocol_cpu, library = (float(x) for x in out.read_text().split())
    return elapsed, cpu, protocol_wall, protocol_cpu, library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = (args.tests, 1)
    best: dict[tuple[str, str, int], float] = {}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        (directory / "pytest.ini").write_text(INI)
        (directory / "conftest.py").write_text(CONFTEST)
        for size in sizes:
            (directory / f"test_{size}.py").write_text(TEST_FILE.format(tests=size))
        for _ in range(args.repeat):
            for size in sizes:
                for variant, extra in VARIANTS.items():
                    wall, cpu, in_wall, in_cpu, library = run_once(
                        directory, f"test_{size}.py", extra, size
                    )
                    for clock, value in (
                        ("wall", wall),
                        ("CPU", cpu),
                        ("in-test wall", in_wall),
                        ("in-test CPU", in_cpu),
                        ("library CPU", library),
                    ):
                        key = (variant, clock, size)
                        best[key] = min(best.get(key, value), value)
    print(f"best of {args.repeat} runs; suites of {args.tests} and of 1 trivial async test")
    for variant in VARIANTS:
        print(
            f"{variant:30} {args.tests} tests: wall {best[variant, 'wall', args.tests]:.3f} s, "
            f"CPU {best[variant, 'CPU', args.tests]:.3f} s;   1 test: "
            f"wall {best[variant, 'wall', 1]:.3f} s, CPU {best[variant, 'CPU', 1]:.3f} s"
        )
    for clock in ("wall", "CPU"):
        whole = {v: best[v, clock, args.tests] for v in VARIANTS}
        per_test = {
            v: (best[v, clock, args.tests] - best[v, clock, 1]) / (args.tests - 1)
            for v in VARIANTS
        }
        print(
            f"{clock:4} whole run: on/off {whole[ON] / whole[OFF]:.3f}, "
            f"on/plugin off {whole[ON] / whole[PLUGIN_OFF]:.3f};   per test: "
            f"on {per_test[ON] * 1e3:.3f} ms, off {per_test[OFF] * 1e3:.3f} ms, "
            f"plugin off {per_test[PLUGIN_OFF] * 1e3:.3f} ms, "
            f"on/off {per_test[ON] / per_test[OFF]:.3f}, "
            f"on/plugin off {per_test[ON] / per_test[PLUGIN_OFF]:.3f}"
        )
    library = {v: best[v, "library CPU", args.tests] / args.tests for v in (ON, OFF)}
    in_test = best[PLUGIN_OFF, "in-test CPU", args.tests] / args.tests
    print(
        f"aiotestkit's own code per test (CPU): on {library[ON] * 1e3:.3f} ms, "
        f"off {library[OFF] * 1e3:.3f} ms; checks on cost "
        f"{(library[ON] - library[OFF]) / in_test:.1%} of a test's in-test CPU without the plugin"
    )
    for clock in ("in-test wall", "in-test CPU"):
        per_test = {v: best[v, clock, args.tests] / args.tests for v in VARIANTS}
        print(
            f"{clock} (set-up + call + teardown, summed in pytest): "
            f"on {per_test[ON] * 1e3:.3f} ms, off {per_test[OFF] * 1e3:.3f} ms, "
            f"plugin off {per_test[PLUGIN_OFF] * 1e3:.3f} ms per test; "
            f"on/off {per_test[ON] / per_test[OFF]:.3f}, "
            f"on/plugin off {per_test[ON] / per_test[PLUGIN_OFF]:.3f}"
        )


if __name__ == "__main__":
    main()
