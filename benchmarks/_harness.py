"""The measuring machinery of ``run.py``: environments, child processes, rounds, verdicts.

- :class:`Env`: the Python a variant runs in, and whether aiodns is hidden from it.
- :class:`Runner`: runs one child process and measures its wall time and its CPU time
  (user + system, from ``os.wait4``: the child and the children it waited for, such as
  xdist workers; never the CPU hog or another measurement).
- :func:`interleave`: every variant of a scenario once per round, the order rotated each
  round, so that drift and position on a busy machine hit every variant alike.
- :func:`paired` and :func:`verdict`: a ratio per round from values measured in the same
  round, and a target called met only when every round's ratio is on the right side of it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Makes ``import aiodns`` raise ImportError in every process that has it on PYTHONPATH
# (also xdist workers and scripts), which is exactly what aiohttp sees when aiodns is not
# installed: ``aiohttp.resolver`` falls back to ``ThreadedResolver`` as DefaultResolver.
_HIDE_AIODNS = (
    'raise ImportError("aiodns is hidden by benchmarks/run.py --resolver threaded, so that '
    'aiohttp uses ThreadedResolver as it does when aiodns is not installed")\n'
)


def load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class Env:
    """A Python environment variants run in."""

    label: str  # short, shown next to the figures measured in it
    python: str
    hide_aiodns: bool
    resolver: str  # the class aiohttp's DefaultResolver must be in every run
    hide_dir: Path | None = None  # holds the aiodns shadow package when hide_aiodns

    def environ(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **extra)
        for name in [name for name in env if name.startswith("PYTEST_")]:
            del env[name]  # e.g. PYTEST_ADDOPTS, or the variables of an outer pytest run
        if self.hide_aiodns:
            assert self.hide_dir is not None
            paths = [str(self.hide_dir), *filter(None, [env.get("PYTHONPATH")])]
            env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


def make_env(label: str, python: str, hide_aiodns: bool, resolver: str, workdir: Path) -> Env:
    hide_dir = None
    if hide_aiodns:
        hide_dir = workdir / "hide-aiodns"
        (hide_dir / "aiodns").mkdir(parents=True, exist_ok=True)
        (hide_dir / "aiodns" / "__init__.py").write_text(_HIDE_AIODNS)
    return Env(label, python, hide_aiodns, resolver, hide_dir)


def default_resolver(env: Env) -> str:
    """The name of aiohttp's DefaultResolver in ``env`` (asked of a child process)."""
    completed = subprocess.run(
        [env.python, "-c", "import aiohttp.resolver as r; print(r.DefaultResolver.__name__)"],
        env=env.environ(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return completed.stdout.strip() or f"unknown ({completed.stderr.strip()[-200:]})"


def build_venv(directory: Path, requirements: Sequence[str], log: Callable[[str], None]) -> str:
    """A venv at ``directory`` with ``requirements`` installed by pip; its Python.

    Built once and reused while its recorded requirements are the same. Raises
    ``RuntimeError`` with pip's output when the build fails.
    """
    python = directory / "bin" / "python"
    stamp = directory / "bench-requirements.json"
    wanted = json.dumps(sorted(requirements))
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    log(f"  building {directory} with pip: {' '.join(requirements)}")
    for command in (
        [sys.executable, "-m", "venv", "--clear", str(directory)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
    ):
        completed = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=900
        )
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-10:])
            raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{tail}")
    stamp.write_text(wanted)
    return str(python)


class VariantFailed(Exception):
    pass


@dataclass
class Measured:
    """One child process: its wall and CPU seconds, and what it wrote."""

    wall: float
    cpu: float
    stdout: str
    recorded: dict[str, object]


class Runner:
    """Runs the child processes of a benchmark, one at a time, and measures each."""

    def __init__(self, workdir: Path, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.log = log
        self._count = 0

    def run(
        self, env: Env, args: Sequence[str], cwd: Path | None = None, **extra_env: str
    ) -> Measured:
        self._count += 1
        result_file = self.workdir / f"result-{self._count}.json"
        environ = env.environ(BENCH_RESULT=str(result_file), **extra_env)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            start = time.perf_counter()
            process = subprocess.Popen(
                [env.python, *args], cwd=cwd, env=environ, stdout=out, stderr=err
            )
            try:
                _, status, usage = os.wait4(process.pid, 0)
            except BaseException:
                process.kill()
                process.wait()
                raise
            wall = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if process.returncode != 0:
            lines = (stdout + stderr).strip().splitlines()
            errors = [line[1:].strip() for line in lines if line.startswith("E ")]
            first = errors[0] if errors else lines[-1] if lines else "no output"
            tail = "\n".join(lines[-15:])
            raise VariantFailed(f"exited with {process.returncode}: {first}\n\n{tail}")
        recorded: dict[str, object] = {}
        if result_file.exists():
            recorded = json.loads(result_file.read_text())
            result_file.unlink()
        return Measured(wall, usage.ru_utime + usage.ru_stime, stdout, recorded)


@dataclass
class Result:
    """The measurements of one variant, one value per round, or why it has none."""

    name: str
    env: Env | None = None
    samples: dict[str, dict[int, float]] = field(default_factory=dict)
    unavailable: str = ""
    note: str = ""

    def add(self, round_: int, **figures: float) -> None:
        for key, value in figures.items():
            self.samples.setdefault(key, {})[round_] = value

    def values(self, key: str) -> list[float]:
        return list(self.samples[key].values())

    def median(self, key: str) -> float:
        return statistics.median(self.values(key))

    def spread(self, key: str) -> str:
        """Half the range of the rounds' values, as a percentage of their median."""
        values = self.values(key)
        if len(values) < 2:
            return "n/a"
        middle = statistics.median(values)
        half_range = (max(values) - min(values)) / 2
        return f"±{100 * half_range / abs(middle):.0f}%" if middle else "n/a"

    @property
    def ok(self) -> bool:
        return not self.unavailable and bool(self.samples)


def interleave(
    repeats: int,
    results: Sequence[Result],
    measure: Callable[[Result, int], None],
    log: Callable[[str], None],
) -> None:
    """Measure each available variant once per round, ``repeats`` rounds.

    The order of the variants rotates by one each round, so that no variant always runs
    first (cold caches) or right after the same neighbour.
    """
    count = len(results)
    for round_ in range(repeats):
        order = [results[(round_ + k) % count] for k in range(count)] if count else []
        for result in order:
            if result.unavailable:
                continue
            start = time.perf_counter()
            try:
                measure(result, round_)
            except VariantFailed as error:
                result.unavailable = f"failed: {error}"
            log(
                f"  [{round_ + 1}/{repeats}] {result.name}"
                f"{f' [{result.env.label}]' if result.env else ''}: "
                f"{'FAILED' if result.unavailable else 'ok'} ({time.perf_counter() - start:.1f} s)"
            )


def paired(
    numerator: Callable[[int], float | None],
    denominator: Callable[[int], float | None],
    rounds: int,
) -> list[float]:
    """The ratio of the two values measured in each round (rounds missing either skipped)."""
    ratios = []
    for round_ in range(rounds):
        a, b = numerator(round_), denominator(round_)
        if a is not None and b is not None and b > 0:
            ratios.append(a / b)
    return ratios


def verdict(values: Sequence[float], limit: float, higher_is_better: bool) -> str:
    """``met`` if every round's value meets ``limit``, ``missed`` if none does, else
    ``not shown``.

    With n independent rounds, the chance that the median lies outside the range of the
    rounds' values is 2 / 2**n (6 % for 5 rounds, 0.4 % for 9), so a range entirely on one
    side of the limit supports the conclusion; a range across the limit does not.
    """
    if len(values) < 2:
        return "not shown (fewer than 2 rounds)"
    low, high = min(values), max(values)
    good, bad = (low >= limit, high < limit) if higher_is_better else (high <= limit, low > limit)
    if good:
        return "met"
    if bad:
        return "missed"
    return "not shown (the rounds fall on both sides)"


class CpuHog:
    """``count`` processes spinning on the CPU beside the benchmark (``--with-load``).

    Each hog stops by itself after ``limit`` seconds, so none outlives a crashed run; the
    harness stops them (by their process ids) when the run ends.
    """

    def __init__(self, count: int, limit: float) -> None:
        code = (
            "import time\n"
            f"end = time.monotonic() + {limit!r}\n"
            "while time.monotonic() < end:\n"
            "    sum(range(10000))\n"
        )
        self.processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
