"""aiotestkit against the tools users would pick instead, side by side in one run.

Run: python benchmarks/run.py [--quick] [--repeats N] [--output PATH]

Needs the ``bench`` extra (``pip install -e '.[bench]'``) and installs nothing itself.
A tool that is not installed, or does not run with the installed aiohttp, is reported
as such in the results instead of failing the run. Each variant runs in its own pytest
process (or, for throughput, its own Python process), several times, interleaved with
the other variants of its scenario so that drift on a busy machine hits them all alike.
Writes ``benchmarks/RESULTS.md`` (``RESULTS-quick.md`` with ``--quick``) and prints it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generated  # noqa: E402

# Distribution name -> importable module, for the availability checks and versions.
TOOLS = {
    "aiotestkit": "aiotestkit",
    "aiohttp": "aiohttp",
    "pytest": "pytest",
    "pytest-asyncio": "pytest_asyncio",
    "pytest-aiohttp": "pytest_aiohttp",
    "pytest-httpserver": "pytest_httpserver",
    "aiointercept": "aiointercept",
    "aioresponses": "aioresponses",
    "pytest-xdist": "xdist",
    "trustme": "trustme",
}
HTTP_TOOLS = [
    "baseline",
    "aiotestkit-redirector",
    "aiotestkit-sandbox",
    "pytest-aiohttp",
    "pytest-httpserver",
    "aiointercept",
    "aioresponses",
]
# aiointercept serves plain HTTP only; aioresponses never opens a connection.
HTTPS_TOOLS = [
    "baseline",
    "aiotestkit-redirector",
    "aiotestkit-sandbox",
    "pytest-aiohttp",
    "pytest-httpserver",
]
TOOL_OF_VARIANT = {
    "aiotestkit-redirector": "aiotestkit",
    "aiotestkit-sandbox": "aiotestkit",
    "pytest-aiohttp": "pytest-aiohttp",
    "pytest-httpserver": "pytest-httpserver",
    "aiointercept": "aiointercept",
    "aioresponses": "aioresponses",
}
PYTEST_FLAGS = ["-q", "-x", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]


@dataclass(frozen=True)
class Sizes:
    http_tests: int
    trivial_tests: int
    sequential: int
    concurrent: int
    scale_out_tests: int
    repeats: int
    import_repeats: int


FULL = Sizes(300, 2000, 10_000, 1_000, 2_000, 3, import_repeats=5)
QUICK = Sizes(20, 100, 300, 100, 40, 1, import_repeats=1)


@dataclass
class Result:
    """The repeated measurements of one variant, or why it has none."""

    name: str
    samples: dict[str, list[float]] = field(default_factory=dict)
    unavailable: str = ""

    def add(self, **figures: float) -> None:
        for key, value in figures.items():
            self.samples.setdefault(key, []).append(value)

    def median(self, key: str) -> float:
        return statistics.median(self.samples[key])

    def spread(self, key: str) -> str:
        values = self.samples[key]
        if len(values) < 2:
            return "n/a"
        middle = statistics.median(values)
        half_range = (max(values) - min(values)) / 2
        return f"±{100 * half_range / middle:.0f}%" if middle else "n/a"

    @property
    def ok(self) -> bool:
        return not self.unavailable and bool(self.samples)


# --------------------------------------------------------------------------- helpers


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def sandbox_available() -> bool:
    import aiotestkit

    return hasattr(aiotestkit, "NetworkSandbox")


def why_unavailable(variant: str) -> str:
    """Empty if ``variant`` can run here, else the reason it cannot."""
    tool = TOOL_OF_VARIANT.get(variant)
    if tool is None:
        return ""
    if version(tool) is None or importlib.util.find_spec(TOOLS[tool]) is None:
        return (
            f"not installed (`pip install -e '.[bench]'`; {tool} needs Python >= 3.11)"
            if tool == "aiointercept" and sys.version_info < (3, 11)
            else "not installed (`pip install -e '.[bench]'`)"
        )
    if variant == "aiotestkit-sandbox" and not sandbox_available():
        return "not available: this aiotestkit has no `NetworkSandbox` yet"
    return ""


def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "CPU": model,
        "cores (os.cpu_count)": str(os.cpu_count()),
        "usable cores (sched_getaffinity)": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "unknown"
        ),
        "load average at start (1, 5, 15 min)": load,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(),
    }


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's waited-for children."""
    try:
        import resource
    except ImportError:  # not on Unix
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Runner:
    def __init__(self, sizes: Sizes, workdir: Path, log: Callable[[str], None]) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.log = log
        self._count = 0
        self.last_cpu = 0.0

    def pytest(self, directory: Path, *extra: str) -> tuple[float, dict[str, object]]:
        """Run pytest on ``directory`` in a new process; wall seconds and recorded phases."""
        self._count += 1
        result_file = self.workdir / f"result-{self._count}.json"
        env = dict(os.environ, BENCH_RESULT=str(result_file), PYTHONDONTWRITEBYTECODE="1")
        for name in [name for name in env if name.startswith("PYTEST_")]:
            del env[name]  # e.g. PYTEST_ADDOPTS, or the variables of an outer pytest run
        command = [sys.executable, "-m", "pytest", *PYTEST_FLAGS, *extra, str(directory)]
        cpu_before = children_cpu()
        start = time.perf_counter()
        completed = subprocess.run(
            command, cwd=directory, env=env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        self.last_cpu = children_cpu() - cpu_before
        if completed.returncode != 0:
            lines = (completed.stdout + completed.stderr).strip().splitlines()
            errors = [line[1:].strip() for line in lines if line.startswith("E ")]
            first = errors[0] if errors else lines[-1] if lines else "no output"
            tail = "\n".join(lines[-15:])
            raise VariantFailed(f"pytest exited with {completed.returncode}: {first}\n\n{tail}")
        recorded: dict[str, object] = {}
        if result_file.exists():
            recorded = json.loads(result_file.read_text())
        return wall, recorded

    def python(self, *args: str) -> tuple[str, str]:
        completed = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
            raise VariantFailed(
                f"python {' '.join(args)} exited with {completed.returncode}:\n{tail}"
            )
        return completed.stdout, completed.stderr


class VariantFailed(Exception):
    pass


def interleave(
    repeats: int,
    results: Sequence[Result],
    measure: Callable[[Result], None],
    log: Callable[[str], None],
) -> None:
    """Measure each available variant ``repeats`` times, round-robin."""
    for repeat in range(repeats):
        for result in results:
            if result.unavailable:
                continue
            start = time.perf_counter()
            try:
                measure(result)
            except VariantFailed as error:
                result.unavailable = f"failed: {error}"
            log(
                f"  [{repeat + 1}/{repeats}] {result.name}: "
                f"{'FAILED' if result.unavailable else 'ok'} ({time.perf_counter() - start:.1f} s)"
            )


# --------------------------------------------------------------------------- scenarios


def scenario_http(runner: Runner, scheme: str) -> list[Result]:
    tools = HTTP_TOOLS if scheme == "http" else HTTPS_TOOLS
    n = runner.sizes.http_tests
    results: list[Result] = []
    directories: dict[str, Path] = {}
    for tool in tools:
        variant = generated.http_variant(tool, scheme)
        result = Result(tool, unavailable=why_unavailable(tool))
        results.append(result)
        if not result.unavailable:
            directories[tool] = generated.write_suite(
                runner.workdir / f"{scheme}-{tool}", variant.body, n
            )

    def measure(result: Result) -> None:
        # A user of another tool has no aiotestkit: its variants and the baseline run
        # without aiotestkit's plugin, so aiotestkit's variants pay all of its costs.
        ours = TOOL_OF_VARIANT.get(result.name) == "aiotestkit"
        wall, recorded = runner.pytest(
            directories[result.name], *([] if ours else ["-p", "no:aiotestkit"])
        )
        phases = recorded["phases"]
        outcomes = recorded["outcomes"]
        assert isinstance(phases, dict)
        assert isinstance(outcomes, dict)
        if outcomes["passed"] != n:
            raise VariantFailed(f"expected {n} passed tests, got {outcomes}")
        result.add(
            setup=phases["setup"] / n,
            call=phases["call"] / n,
            teardown=phases["teardown"] / n,
            total=(phases["setup"] + phases["call"] + phases["teardown"]) / n,
            wall=wall,
        )

    interleave(runner.sizes.repeats, results, measure, runner.log)
    return results


def scenario_overhead(runner: Runner) -> tuple[list[Result], dict[str, Result]]:
    n = runner.sizes.trivial_tests
    directory = generated.write_suite(runner.workdir / "trivial", generated.TRIVIAL, n)
    # Both variants load the same other plugins; only aiotestkit differs.
    variants = {
        "collect, aiotestkit disabled (-p no:aiotestkit)": [
            "--collect-only",
            "-p",
            "no:aiotestkit",
        ],
        "collect, aiotestkit loaded": ["--collect-only"],
        "run, aiotestkit disabled (-p no:aiotestkit)": ["-p", "no:aiotestkit"],
        "run, aiotestkit loaded": [],
        # Where this aiotestkit has hygiene checks: their share of the overhead.
        "run, aiotestkit loaded, hygiene off (-o aiotestkit_hygiene=off)": [
            "-o",
            "aiotestkit_hygiene=off",
        ],
    }
    results = [Result(name) for name in variants]

    def measure(result: Result) -> None:
        wall, _ = runner.pytest(directory, *variants[result.name])
        result.add(wall=wall, cpu=runner.last_cpu)

    interleave(runner.sizes.repeats, results, measure, runner.log)

    warm = "import pytest, pytest_asyncio, aiohttp.test_utils, aiohttp.web"
    # name -> (statement measured, statement whose imports are subtracted from it)
    imports = {
        "import pytest (baseline)": ("import pytest", "pass"),
        "import aiotestkit.pytest_plugin, alone": ("import aiotestkit.pytest_plugin", "pass"),
        "import aiotestkit.pytest_plugin, after what pytest-aiohttp loads anyway": (
            f"{warm}; import aiotestkit.pytest_plugin",
            warm,
        ),
    }
    import_results = {name: Result(name) for name in imports}
    for _ in range(runner.sizes.import_repeats):
        for name, (code, prefix) in imports.items():
            import_results[name].add(us=import_us(runner, code) - import_us(runner, prefix))
    return results, import_results


def import_us(runner: Runner, code: str) -> int:
    """Microseconds ``python -X importtime -c code`` spent importing, start-up included.

    Sums the cumulative times of the top-level imports (no indentation in the tree).
    """
    _, stderr = runner.python("-X", "importtime", "-c", code)
    total = 0
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| \S", line)
        if match:
            total += int(match.group(1))
    return total


def scenario_throughput(runner: Runner) -> list[Result]:
    script = str(HERE / "throughput.py")
    modes = {"sequential": runner.sizes.sequential, "concurrent": runner.sizes.concurrent}
    results = [
        Result(f"{server}, {mode}") for mode in modes for server in ("plain", "case-controlled")
    ]

    def measure(result: Result) -> None:
        server, mode = result.name.split(", ")
        stdout, _ = runner.python(script, server, mode, str(modes[mode]))
        seconds = json.loads(stdout)["seconds"]
        result.add(rps=modes[mode] / seconds, seconds=seconds)

    interleave(runner.sizes.repeats, results, measure, runner.log)
    return results


def scenario_scale_out(runner: Runner) -> list[Result]:
    n = runner.sizes.scale_out_tests
    results = [Result("-n 0"), Result("-n 2")]
    if version("pytest-xdist") is None:
        for result in results:
            result.unavailable = "pytest-xdist not installed (`pip install -e '.[bench]'`)"
        return results
    directory = generated.write_suite(
        runner.workdir / "scale-out", generated.render(generated.SCALE_OUT), n
    )

    def measure(result: Result) -> None:
        wall, recorded = runner.pytest(directory, *result.name.split())
        outcomes = recorded["outcomes"]
        assert isinstance(outcomes, dict)
        if outcomes["passed"] != n:
            raise VariantFailed(f"expected {n} passed tests, got {outcomes}")
        result.add(wall=wall, cpu=runner.last_cpu)

    interleave(runner.sizes.repeats, results, measure, runner.log)
    return results


# --------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


def http_table(results: list[Result]) -> list[str]:
    base = results[0]
    lines = [
        "| variant | set-up ms | call ms | teardown ms | total ms/test | spread | "
        "ratio to baseline | wall s (process) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        if not result.ok:
            reason = result.unavailable.splitlines()[0]
            if reason.startswith("failed") and "aiohttp" not in reason:
                reason += f" (with aiohttp {version('aiohttp')})"
            lines.append(f"| {result.name} | {reason} | | | | | | |")
            continue
        total = result.median("total")
        lines.append(
            f"| {result.name} | {ms(result.median('setup'))} | {ms(result.median('call'))} | "
            f"{ms(result.median('teardown'))} | {ms(total)} | {result.spread('total')} | "
            f"{ratio(total, base.median('total')) if base.ok else 'n/a'} | "
            f"{result.median('wall'):.2f} |"
        )
    failures = [r for r in results if r.unavailable.startswith("failed")]
    for result in failures:
        lines += ["", f"{result.name} output:", "", "```", result.unavailable, "```"]
    return lines


def gap(measured: float, target: float, higher_is_better: bool, fmt: str) -> tuple[str, str]:
    """Whether ``measured`` meets ``target``, and the difference in the target's unit."""
    met = measured >= target if higher_is_better else measured <= target
    delta = measured - target
    text = f"{delta * 100:+.1f} points" if fmt.endswith("%}") else f"{delta:+.2f}x"
    return ("met" if met else "missed", text)


def report(
    about_machine: dict[str, str],
    args: argparse.Namespace,
    sizes: Sizes,
    http: list[Result],
    https: list[Result],
    overhead: list[Result],
    imports: dict[str, Result],
    throughput: list[Result],
    scale: list[Result],
    elapsed: float,
) -> str:
    out: list[str] = ["# aiotestkit benchmarks", ""]
    mode = (
        "quick (CI smoke run: small sizes, one repeat; not figures to quote)"
        if args.quick
        else "full"
    )
    out += [
        f"Command: `python benchmarks/run.py{' --quick' if args.quick else ''}` ({mode}); "
        f"{sizes.repeats} repeat(s) per variant, interleaved; finished in {elapsed:.0f} s on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "Figures are medians over the repeats; spread is half the range (max - min) as a "
        "percentage of the median. Ratios are to the named baseline of the same run.",
        "How each scenario measures, what profiling found, what was fixed and what remains "
        "and why: `benchmarks/README.md`.",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {key}: {value}" for key, value in about_machine.items()]
    out += ["", "## Package versions", ""]
    out += [f"- {dist}: {version(dist) or 'not installed'}" for dist in TOOLS]

    by_name = {r.name: r for r in http}
    by_name_s = {r.name: r for r in https}
    n = sizes.http_tests
    out += [
        "",
        f"## 1. Per-test cost of one HTTP GET answered with JSON ({n} tests per variant)",
        "",
        "Each test: the tool answers `GET /item/{i}` with the same JSON; the same client "
        "function (`aiohttp.ClientSession.get` + `.json()`) fetches it and the test asserts it. "
        "Set-up, call and teardown are pytest's own phase durations (summed over the tests, "
        "divided by their number). Baseline: an empty async test. Wall is the whole pytest "
        "process (start-up and collection included). The baseline and the other tools run "
        "with `-p no:aiotestkit` (their users have no aiotestkit), so aiotestkit's variants "
        "carry all of its plugin's costs, hygiene checks included.",
        "",
        "- aiotestkit-redirector: `case_controlled_server_factory` + `aiohttp_redirector`; the "
        "test receives the request and answers with `send_json` (a server per test).",
        "- aiotestkit-sandbox: `await network_sandbox.route(host, 80, "
        "case_controlled_server)`; the client makes its own `ClientSession()`, unmodified.",
        "- pytest-aiohttp: `aiohttp_raw_server(handler)` (a server per test) + a new "
        "`ClientSession`.",
        "- pytest-httpserver: `httpserver.expect_request(...).respond_with_json(...)` (one "
        "server thread per session, cleared per test) + a new `ClientSession`.",
        "- aiointercept: its `aiointercept_mock` fixture (one server per session, cleared per "
        "test) and `m.get(url, payload=...)` + a new `ClientSession`.",
        "- aioresponses: `with aioresponses() as m: m.get(url, payload=...)`: patches the "
        "session, no socket at all.",
        "",
    ]
    out += http_table(http)
    out += [
        "",
        f"## 2. The same over HTTPS ({n} tests per variant)",
        "",
        'aiotestkit: `case_controlled_server_factory(scheme="https")` (SNI certificates from '
        "the test CA) and the redirector's session, which trusts that CA; sandbox: the plain "
        "server routed for port 443, the client's own session. pytest-aiohttp: "
        "`aiohttp_raw_server(handler, ssl=...)`; pytest-httpserver: `httpserver_ssl_context` "
        "overridden; both with a session-scoped trustme CA and a client context trusting it. "
        "aiointercept serves plain HTTP only and aioresponses opens no connection, so neither "
        "has an HTTPS variant. Every variant does a full TLS handshake per test (a new "
        "session and connection per test).",
        "",
    ]
    out += http_table(https)

    out += [
        "",
        f"## 3. Plugin overhead ({sizes.trivial_tests} trivial async tests)",
        "",
        "`pytest --collect-only` and a full run of the same suite, with aiotestkit's plugin "
        "loaded and with `-p no:aiotestkit` (every other installed plugin loaded in both). "
        "Figures are the wall time of the pytest process, and its CPU time (user + system, "
        "from `getrusage`), which other load on the machine disturbs less.",
        "",
        "| variant | wall s | spread | ratio to the same step with aiotestkit disabled | "
        "CPU s (user + system) | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    ov = {r.name: r for r in overhead}
    for result in overhead:
        if not result.ok:
            out.append(f"| {result.name} | {result.unavailable.splitlines()[0]} | | | | |")
            continue
        base = ov[result.name.split(",")[0] + ", aiotestkit disabled (-p no:aiotestkit)"]
        out.append(
            f"| {result.name} | {result.median('wall'):.2f} | {result.spread('wall')} | "
            f"{ratio(result.median('wall'), base.median('wall')) if base.ok else 'n/a'} | "
            f"{result.median('cpu'):.2f} | "
            f"{ratio(result.median('cpu'), base.median('cpu')) if base.ok else 'n/a'} |"
        )
    out += [
        "",
        "Import time (`python -X importtime -c ...`, sum of the cumulative times of the "
        "top-level imports, microseconds, median):",
        "",
        "| import | µs | spread | ratio to `import pytest` |",
        "|---|---:|---:|---:|",
    ]
    base_import = imports["import pytest (baseline)"]
    for result in imports.values():
        if not result.ok:
            out.append(f"| {result.name} | {result.unavailable.splitlines()[0]} | | |")
            continue
        out.append(
            f"| {result.name} | {result.median('us'):.0f} | {result.spread('us')} | "
            f"{ratio(result.median('us'), base_import.median('us'))} |"
        )

    tp = {r.name: r for r in throughput}
    out += [
        "",
        f"## 4. Throughput ({sizes.sequential} sequential, {sizes.concurrent} concurrent "
        "requests)",
        "",
        "`benchmarks/throughput.py`: one process per measurement. Baseline: a plain aiohttp "
        "server (`RawTestServer` with a handler returning `web.json_response`). "
        "Case-controlled: a `CaseControlledTestServer` whose every request the test's loop "
        "takes with `receive_request()` and answers with `send_json()`. Same JSON, same "
        "client (one `ClientSession`, default connector limit of 100 connections).",
        "",
        "| variant | requests/s | spread | ratio to plain aiohttp |",
        "|---|---:|---:|---:|",
    ]
    for result in throughput:
        if not result.ok:
            out.append(f"| {result.name} | {result.unavailable.splitlines()[0]} | | |")
            continue
        base = tp["plain, " + result.name.split(", ")[1]]
        out.append(
            f"| {result.name} | {result.median('rps'):.0f} | {result.spread('rps')} | "
            f"{ratio(result.median('rps'), base.median('rps')) if base.ok else 'n/a'} |"
        )

    sc = {r.name: r for r in scale}
    out += [
        "",
        f"## 5. Scale-out under pytest-xdist ({sizes.scale_out_tests} tests)",
        "",
        "Each test starts a case-controlled server on a free port (every tenth over HTTPS, "
        "with the per-process test CA), fetches through `aiohttp_redirector`, and writes and "
        "reads a file in its `tmp_path`. Every run must pass every test (a port or file "
        "clash between workers would fail one). Baseline: `-n 0` (xdist loaded, no workers).",
        "",
        "| variant | wall s | spread | speed-up over -n 0 | CPU s (user + system) | all passed |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for result in scale:
        if not result.ok:
            out.append(f"| {result.name} | {result.unavailable.splitlines()[0]} | | | | no |")
            continue
        base = sc["-n 0"]
        speed = f"{base.median('wall') / result.median('wall'):.2f}x" if base.ok else "n/a"
        out.append(
            f"| {result.name} | {result.median('wall'):.2f} | {result.spread('wall')} | "
            f"{speed} | {result.median('cpu'):.2f} | "
            f"yes, {len(result.samples['wall'])} run(s) |"
        )
    n0, n2 = sc["-n 0"], sc["-n 2"]
    if n0.ok and n2.ok and n2.median("cpu") > 0:
        cores = os.cpu_count() or 1
        ceiling = min(2.0, cores) * n0.median("cpu") / n2.median("cpu")
        out += [
            "",
            f"`-n 2` spends {n2.median('cpu') / n0.median('cpu'):.2f}x the CPU time of `-n 0` "
            "(worker start-up and collection twice, and xdist passing every report to the "
            f"controller). With two idle cores the speed-up cannot exceed {ceiling:.2f}x "
            "(2 x CPU of -n 0 / CPU of -n 2): a wall-clock speed-up below that means the "
            "cores were busy with other work.",
        ]

    # Targets.
    out += [
        "",
        "## Targets",
        "",
        "Gap: measured minus target, in the target's unit (ratio, or percentage points).",
        "",
        "| target | measured | gap to target | status |",
        "|---|---:|---:|---|",
    ]

    def row(target: str, measured: float | None, limit: float, higher: bool, fmt: str) -> None:
        if measured is None:
            out.append(f"| {target} | not measured | | |")
            return
        status, gap_text = gap(measured, limit, higher, fmt)
        out.append(f"| {target} | {fmt.format(measured)} | {gap_text} | {status} |")

    def quotient(a: Result | None, b: Result | None, key: str) -> float | None:
        """``a``'s median over ``b``'s, or None if either was not measured."""
        if a is None or b is None or not a.ok or not b.ok:
            return None
        return a.median(key) / b.median(key)

    aiohttp_http = by_name.get("pytest-aiohttp")
    for variant in ("redirector", "sandbox"):
        ours_http = by_name.get(f"aiotestkit-{variant}")
        ours_https = by_name_s.get(f"aiotestkit-{variant}")
        row(
            f"per-test cost ({variant}) <= pytest-aiohttp's",
            quotient(ours_http, aiohttp_http, "total"),
            1.0,
            False,
            "{:.2f}x",
        )
        row(
            f"HTTPS per-test cost <= 1.3x our HTTP ({variant})",
            quotient(ours_https, ours_http, "total"),
            1.3,
            False,
            "{:.2f}x",
        )
    for step in ("collect", "run"):
        on = ov[f"{step}, aiotestkit loaded"]
        off = ov[f"{step}, aiotestkit disabled (-p no:aiotestkit)"]
        for key, unit in (("wall", "wall time"), ("cpu", "CPU time")):
            loaded = quotient(on, off, key)
            row(
                f"plugin overhead ({step}, {unit}) < 5%",
                None if loaded is None else loaded - 1,
                0.05,
                False,
                "{:+.1%}",
            )
    for mode in ("sequential", "concurrent"):
        row(
            f"case-controlled throughput ({mode}) >= 80% of plain aiohttp",
            quotient(tp[f"case-controlled, {mode}"], tp[f"plain, {mode}"], "rps"),
            0.8,
            True,
            "{:.0%}",
        )
    row(
        f"xdist -n 2 speed-up >= 1.7x ({os.cpu_count()} cores)",
        quotient(sc["-n 0"], sc["-n 2"], "wall"),
        1.7,
        True,
        "{:.2f}x",
    )
    reference = quotient(by_name_s.get("pytest-aiohttp"), aiohttp_http, "total")
    if reference is not None:
        out.append(
            "| (reference, not a target: pytest-aiohttp's HTTPS cost over its HTTP cost) | "
            f"{reference:.2f}x | | |"
        )
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    out += [
        "",
        f"Load average at the end (1, 5, 15 min): {load}. A load above the number of "
        "cores means other processes competed for the CPU during the run: then the "
        "xdist speed-up and the spreads say more about the machine than about the tools.",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one repeat: a smoke test for CI, in seconds",
    )
    parser.add_argument("--repeats", type=int, help="repeats per variant (full: 3, quick: 1)")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the results (default: benchmarks/RESULTS.md, "
        "or benchmarks/RESULTS-quick.md with --quick)",
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("aiotestkit") is None:
        parser.exit(
            2,
            f"{sys.executable} cannot import aiotestkit: run this with the project's venv, "
            "after `pip install -e '.[test,bench]'`\n",
        )
    sizes = QUICK if args.quick else FULL
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    output = args.output or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    about_machine = machine()  # before the run: the load average the run starts with
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aiotestkit-bench-") as tmp:
        runner = Runner(sizes, Path(tmp), log)
        log("1. per-test cost, HTTP")
        http = scenario_http(runner, "http")
        log("2. per-test cost, HTTPS")
        https = scenario_http(runner, "https")
        log("3. plugin overhead")
        overhead, imports = scenario_overhead(runner)
        log("4. throughput")
        throughput = scenario_throughput(runner)
        log("5. scale-out")
        scale = scenario_scale_out(runner)
    text = report(
        about_machine,
        args,
        sizes,
        http,
        https,
        overhead,
        imports,
        throughput,
        scale,
        time.perf_counter() - start,
    )
    output.write_text(text)
    print(text)
    log(f"wrote {output}")
    failed = [
        r
        for r in (*http, *https, *overhead, *throughput, *scale)
        if r.unavailable.startswith("failed")
    ]
    if failed:
        log(f"variants that failed: {', '.join(r.name for r in failed)}")
    # A peer tool that does not run here is a finding, reported above; a failure of
    # aiotestkit's own variants, the baselines or the scenarios 3-5 is an error.
    ours = [r.name for r in failed if TOOL_OF_VARIANT.get(r.name, "aiotestkit") == "aiotestkit"]
    if ours:
        log(f"aiotestkit's own measurements failed: {', '.join(ours)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
