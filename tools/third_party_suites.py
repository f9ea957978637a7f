"""Run third-party test suites with and without aiotestkit installed, side by side.

Run: python tools/third_party_suites.py [--aiohttp VERSION] [--workdir DIR] [-n N]
         [--tests PATH ...] [--loop-scope-workaround]

Installing aiotestkit must not break a suite that passed before: its plugin loads by
itself and pulls in pytest-asyncio and pytest-aiohttp. This script downloads aiohttp's
sdist (``pip download --no-binary :all: --no-deps aiohttp==VERSION``), which ships the
project's own test suite, makes two virtual environments with the same aiohttp wheel and
the same test dependencies, one of them with aiotestkit (this checkout) installed, runs
the chosen test files of the suite in each, and prints the counts side by side and every
test that fails only with aiotestkit, with the first lines of its failure.

The suite runs as its project configured it (its ``pytest.ini``, ``filterwarnings =
error`` included); only its ``addopts`` is replaced, to drop coverage and pytest-xdist's
``auto``. With ``--loop-scope-workaround`` the run with aiotestkit also sets pytest-asyncio's
``asyncio_default_fixture_loop_scope`` ini option, which a project that never used
pytest-asyncio does not set: use it only to see past that one failure.

It needs the network access to PyPI that pip has; nothing else is fetched. The default
test run of the project does not run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import venv
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_TESTS = ("tests/test_client_functional.py", "tests/test_web_functional.py")

# What aiohttp's tests/conftest.py and the default test files import, from
# requirements/test-common-base.in, less pytest-cov, linters and the autobahn/benchmark tools.
TEST_REQUIREMENTS = (
    "coverage",  # pytest.ini's filterwarnings names coverage's warning class
    "pytest",
    "pytest-mock",
    "pytest-timeout",
    "pytest-xdist",
    "trustme",
    "freezegun",
    "blockbuster",
    "brotli",
    "isal",
    "zlib-ng",
)

FIRST_LINES = 12
"""Lines of each new failure that are printed."""


@dataclasses.dataclass
class SuiteRun:
    """The outcome of one pytest run of the suite."""

    label: str
    exit_code: int
    seconds: float
    outcomes: dict[str, str]
    """Test id -> passed, failed, error, skipped, xfailed or xpassed."""
    details: dict[str, str]
    """Test id -> the text of its failure or error."""
    output: str

    def counts(self) -> Counter[str]:
        """How many tests ended with each outcome."""
        return Counter(self.outcomes.values())


def log(message: str) -> None:
    """Print a progress line at once."""
    print(f"-- {message}", flush=True)


def run(command: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``command``, fail with its output if it fails."""
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    if result.returncode != 0:
        raise SystemExit(
            f"command failed ({result.returncode}): {' '.join(map(str, command))}\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


def download_sdist(name: str, version: str, workdir: Path) -> Path:
    """Download and unpack the sdist of ``name==version``; return its directory."""
    source = workdir / f"{name}-{version}"
    if source.is_dir():
        return source
    log(f"downloading the sdist of {name}=={version}")
    run(
        [
            sys.executable,
            *("-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps"),
            *(f"{name}=={version}", "--dest", workdir),
        ]
    )
    archive = next(workdir.glob(f"{name}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return source


def make_venv(path: Path, requirements: Sequence[str]) -> Path:
    """Create a virtual environment at ``path`` with ``requirements``; return its python."""
    python = path / "bin" / "python"
    if not python.exists():
        log(f"creating {path}")
        venv.create(path, with_pip=True)
    log(f"installing into {path.name}: {' '.join(requirements)}")
    run([python, "-m", "pip", "install", "--quiet", *requirements])
    return python


def run_suite(
    label: str, python: Path, source: Path, tests: Sequence[str], extra: Sequence[str]
) -> SuiteRun:
    """Run ``tests`` of the suite in ``source`` with ``python``; parse the JUnit report."""
    junit = source / f"junit-{label}.xml"
    junit.unlink(missing_ok=True)
    command = [
        # The venv's pytest script, not ``python -m pytest``: the source tree's
        # aiohttp/ directory must not shadow the installed aiohttp.
        str(python.parent / "pytest"),
        *("-o", "addopts=", "-p", "no:cacheprovider", "-ra", "-q"),
        *("-m", "not dev_mode and not autobahn and not internal"),
        f"--junitxml={junit}",
        *extra,
        *tests,
    ]
    log(f"[{label}] {' '.join(command[1:])}")
    start = time.monotonic()
    result = subprocess.run(
        command,
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    seconds = time.monotonic() - start
    outcomes: dict[str, str] = {}
    details: dict[str, str] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            test_id = f"{case.get('classname')}::{case.get('name')}"
            outcome, text = "passed", ""
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "failed" if child.tag == "failure" else "error"
                    text = (child.get("message") or "") + "\n" + (child.text or "")
                    break
                if child.tag == "skipped":
                    kind = child.get("type") or ""
                    outcome = "xfailed" if kind == "pytest.xfail" else "skipped"
            outcomes[test_id] = outcome
            if text:
                details[test_id] = text.strip()
    return SuiteRun(
        label, result.returncode, seconds, outcomes, details, result.stdout + result.stderr
    )


def internal_error(suite_run: SuiteRun) -> str | None:
    """The last lines of pytest's INTERNALERROR or usage error, if no test ran."""
    if suite_run.exit_code == 0 or suite_run.outcomes:
        return None
    lines = [line for line in suite_run.output.splitlines() if line.strip()]
    crash = [line for line in lines if "INTERNALERROR" in line or "ERROR" in line]
    return "\n".join((crash or lines)[-FIRST_LINES:])


def print_side_by_side(runs: Sequence[SuiteRun]) -> None:
    """The counts of each run in columns, and the exit codes and durations."""
    kinds = ["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
    width = max(len(r.label) for r in runs) + 2
    print()
    print("outcome".ljust(10) + "".join(r.label.rjust(width) for r in runs))
    for kind in kinds:
        print(kind.ljust(10) + "".join(str(r.counts()[kind]).rjust(width) for r in runs))
    print("exit code".ljust(10) + "".join(str(r.exit_code).rjust(width) for r in runs))
    print("seconds".ljust(10) + "".join(f"{r.seconds:.0f}".rjust(width) for r in runs))


def print_new_failures(before: SuiteRun, after: SuiteRun) -> int:
    """Every test that fails (or errs) in ``after`` and did not in ``before``; return how many."""
    bad = ("failed", "error")
    new = [
        test_id
        for test_id, outcome in after.outcomes.items()
        if outcome in bad and before.outcomes.get(test_id) not in bad
    ]
    fixed = [
        test_id
        for test_id, outcome in before.outcomes.items()
        if outcome in bad and after.outcomes.get(test_id) not in bad
    ]
    print(f"\n{len(new)} new failure(s) with aiotestkit ({after.label}):")
    for test_id in new:
        was = before.outcomes.get(test_id, "absent")
        print(f"\n* {test_id} ({was} -> {after.outcomes[test_id]})")
        text = after.details.get(test_id, "")
        print(textwrap.indent("\n".join(text.splitlines()[:FIRST_LINES]), "    "))
    if fixed:
        print(f"\n{len(fixed)} test(s) fail only without aiotestkit: {', '.join(fixed)}")
    return len(new)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; the exit code is 1 if aiotestkit added a failure or a crash."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    installed = importlib.metadata.version("aiohttp")
    parser.add_argument("--aiohttp", default=installed, help=f"version (default {installed})")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/aiotestkit-third-party"), help="cache"
    )
    parser.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS), help="test paths")
    parser.add_argument("-n", dest="workers", default="2", help="pytest-xdist workers (0: off)")
    parser.add_argument(
        "--loop-scope-workaround",
        action="store_true",
        help="set asyncio_default_fixture_loop_scope in the run with aiotestkit",
    )
    parser.add_argument("--fresh", action="store_true", help="recreate the venvs")
    args = parser.parse_args(argv)

    workdir: Path = args.workdir.resolve()
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = download_sdist("aiohttp", args.aiohttp, workdir)
    requirements = [f"aiohttp=={args.aiohttp}", *TEST_REQUIREMENTS]
    without = make_venv(workdir / "venv-without", requirements)
    with_kit = make_venv(workdir / "venv-with", [*requirements, str(ROOT)])
    # Reinstall this checkout's current code even if the version number did not change.
    run([with_kit, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", ROOT])

    xdist = ["-n", args.workers] if args.workers != "0" else ["-p", "no:xdist"]
    runs = [run_suite("without", without, source, args.tests, xdist)]
    extra = list(xdist)
    with_run = run_suite("with-aiotestkit", with_kit, source, args.tests, extra)
    crash = internal_error(with_run)
    if crash is not None:
        print(f"\nWith aiotestkit, pytest crashed (exit code {with_run.exit_code}):")
        print(textwrap.indent(crash, "    "))
        if not args.loop_scope_workaround:
            print_side_by_side([*runs, with_run])
            return 1
        extra += ["-o", "asyncio_default_fixture_loop_scope=function"]
        print("\nRunning again with -o asyncio_default_fixture_loop_scope=function (workaround):")
        with_run = run_suite("with-aiotestkit+ini", with_kit, source, args.tests, extra)
    runs.append(with_run)
    for suite_run in runs:
        problem = internal_error(suite_run)
        if problem is not None:
            print(f"\n{suite_run.label} crashed:\n{textwrap.indent(problem, '    ')}")
    print(f"\naiohttp {args.aiohttp}, {' '.join(args.tests)}, Python {sys.version.split()[0]}")
    print_side_by_side(runs)
    added = print_new_failures(runs[0], runs[-1])
    return 1 if added or crash is not None else 0


if __name__ == "__main__":
    sys.exit(main())
