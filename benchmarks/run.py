"""aiotestkit against the tools users would pick instead, side by side in one run.

Run: python benchmarks/run.py [--quick] [--repeats N] [--resolver {threaded,aiodns,both}]
                              [--with-load [N]] [--only SCENARIOS] [--output PATH]

Needs the ``bench`` extra (``pip install -e '.[test,bench]'``). The one thing it installs
is a cached venv with aiohttp 3.13 for aioresponses (which does not run on aiohttp 3.14),
under ``benchmarks/.venvs`` (not committed; ``--no-build`` to skip). Each variant runs in
its own pytest process (throughput: its own Python process), once per round, the rounds
interleaving every variant of a scenario; wall and CPU time of every measurement; targets
judged on the ratios of values paired by round. Writes ``benchmarks/RESULTS.md``
(``RESULTS-quick.md`` with ``--quick``) and prints it. ``benchmarks/README.md`` explains
the method.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generated  # noqa: E402
from _harness import (  # noqa: E402
    CpuHog,
    Env,
    Result,
    Runner,
    VariantFailed,
    build_venv,
    default_resolver,
    interleave,
    load_average,
    make_env,
    paired,
    verdict,
)

# Distribution name -> importable module, for the availability checks and versions.
TOOLS = {
    "aiotestkit": "aiotestkit",
    "aiohttp": "aiohttp",
    "aiodns": "aiodns",
    "pytest": "pytest",
    "pytest-asyncio": "pytest_asyncio",
    "pytest-aiohttp": "pytest_aiohttp",
    "pytest-httpserver": "pytest_httpserver",
    "aiointercept": "aiointercept",
    "aioresponses": "aioresponses",
    "httpx": "httpx",
    "respx": "respx",
    "pytest-httpx": "pytest_httpx",
    "pytest-xdist": "xdist",
    "trustme": "trustme",
}
AIOHTTP_HTTP_TOOLS = [
    "baseline",
    "aiotestkit-redirector",
    "aiotestkit-sandbox",
    "aiotestkit-aioresponses",
    "pytest-aiohttp",
    "pytest-httpserver",
    "aiointercept",
]
# aiointercept serves plain HTTP only; aioresponses never opens a connection (and runs in
# the aiohttp 3.13 venv, with its own baseline and pytest-aiohttp beside it).
AIOHTTP_HTTPS_TOOLS = [
    "baseline",
    "aiotestkit-redirector",
    "aiotestkit-sandbox",
    "pytest-aiohttp",
    "pytest-httpserver",
]
OLD_AIOHTTP_TOOLS = ["baseline", "pytest-aiohttp", "aioresponses"]
HTTPX_TOOLS = [
    "baseline",
    "aiotestkit-sandbox",
    "aiotestkit-httpx-mock",
    "respx",
    "pytest-httpx",
    "pytest-httpserver",
]
TOOL_OF_VARIANT = {
    "aiotestkit-redirector": "aiotestkit",
    "aiotestkit-aioresponses": "aiotestkit",
    "aiotestkit-httpx-mock": "aiotestkit",
    "aiotestkit-sandbox": "aiotestkit",
    "pytest-aiohttp": "pytest-aiohttp",
    "pytest-httpserver": "pytest-httpserver",
    "aiointercept": "aiointercept",
    "aioresponses": "aioresponses",
    "respx": "respx",
    "pytest-httpx": "pytest-httpx",
}
PYTEST_FLAGS = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
PYTEST_FLAGS += ["-W", "ignore::DeprecationWarning"]
SCENARIOS = ("aiohttp", "httpx", "overhead", "memory", "throughput", "scale-out")
MEMORY_TOLERANCE_KB = 0.5  # per test: below what RSS sampling resolves over 2,000 tests
OLD_AIOHTTP = "aiohttp>=3.13,<3.14"


@dataclass(frozen=True)
class Sizes:
    http_tests: int
    trivial_tests: int
    memory_tests: int
    sequential: int
    concurrent: int
    held: int
    scale_out_tests: int
    repeats: int
    import_repeats: int


FULL = Sizes(300, 2000, 2000, 10_000, 1_000, 1_000, 1_000, repeats=5, import_repeats=5)
QUICK = Sizes(10, 50, 60, 100, 50, 50, 20, repeats=2, import_repeats=1)


# --------------------------------------------------------------------------- helpers


def version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def why_unavailable(variant: str) -> str:
    """Empty if ``variant`` can run in this venv, else the reason it cannot."""
    tool = TOOL_OF_VARIANT.get(variant)
    if tool is None:
        return ""
    if version(tool) is None or importlib.util.find_spec(TOOLS[tool]) is None:
        return (
            f"not installed (`pip install -e '.[bench]'`; {tool} needs Python >= 3.11)"
            if tool == "aiointercept" and sys.version_info < (3, 11)
            else "not installed (`pip install -e '.[bench]'`)"
        )
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
    return {
        "CPU": model,
        "cores (os.cpu_count)": str(os.cpu_count()),
        "usable cores (sched_getaffinity)": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "unknown"
        ),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": platform.platform(),
    }


@dataclass
class Context:
    """What every scenario needs: sizes, the runner, the environments, the log."""

    sizes: Sizes
    runner: Runner
    workdir: Path
    log: Callable[[str], None]
    envs: dict[str, Env]  # "threaded" / "aiodns" -> the main venv with that resolver
    old_env: Env | None  # the aiohttp 3.13 venv, or None
    old_env_reason: str
    loads: list[tuple[str, str]] = field(default_factory=list)

    def mark(self, moment: str) -> None:
        self.loads.append((moment, load_average()))

    @property
    def main(self) -> Env:
        """The environment of everything that is not compared per resolver."""
        return self.envs.get("threaded") or self.envs["aiodns"]


def pytest_measure(
    ctx: Context,
    result: Result,
    round_: int,
    directory: Path,
    n: int,
    extra: Sequence[str] = (),
    **extra_env: str,
) -> dict[str, object]:
    """Run one pytest process on ``directory``, check it, record its figures in ``result``."""
    assert result.env is not None
    measured = ctx.runner.run(
        result.env, [*PYTEST_FLAGS, *extra, str(directory)], cwd=directory, **extra_env
    )
    recorded = measured.recorded
    outcomes = recorded.get("outcomes")
    if not isinstance(outcomes, dict) or outcomes.get("passed") != n:
        raise VariantFailed(f"expected {n} passed tests, got {outcomes}")
    if recorded.get("resolver") != result.env.resolver:
        raise VariantFailed(
            f"aiohttp's DefaultResolver was {recorded.get('resolver')}, "
            f"expected {result.env.resolver}"
        )
    per_test = recorded["per_test"]
    assert isinstance(per_test, dict)
    figures = (
        {}
        if not per_test["tests"]
        else {key: per_test[key] for key in ("setup", "call", "teardown", "wall", "cpu")}
    )
    result.add(round_, proc_wall=measured.wall, proc_cpu=measured.cpu, **figures)
    return recorded


def loads_plugin(tool: str) -> list[str]:
    # A user of another tool has no aiotestkit: its variants and the baseline run without
    # aiotestkit's plugin, so aiotestkit's variants pay all of its costs.
    return [] if TOOL_OF_VARIANT.get(tool) == "aiotestkit" else ["-p", "no:aiotestkit"]


# --------------------------------------------------------------------------- scenarios


def scenario_per_test(
    ctx: Context, client: str, scheme: str, env: Env, tools: Sequence[str]
) -> list[Result]:
    """One GET per test with ``client`` over ``scheme``, for every tool, in ``env``."""
    n = ctx.sizes.http_tests
    results: list[Result] = []
    directories: dict[tuple[str, str], Path] = {}
    lineup = [(tool, env) for tool in tools]
    # aioresponses' venv has no aiodns: it is compared under the threaded resolver only.
    if client == "aiohttp" and scheme == "http" and env.resolver == "ThreadedResolver":
        if ctx.old_env is not None:
            lineup += [(tool, ctx.old_env) for tool in OLD_AIOHTTP_TOOLS]
        else:
            results.append(Result("aioresponses", unavailable=ctx.old_env_reason))
    for tool, tool_env in lineup:
        unavailable = "" if tool_env is not env else why_unavailable(tool)
        result = Result(tool, env=tool_env, unavailable=unavailable)
        results.append(result)
        if not unavailable and (tool, client) not in directories:
            variant = generated.http_variant(tool, scheme, client)
            directories[(tool, client)] = generated.write_suite(
                ctx.workdir / f"{client}-{scheme}-{tool}", variant.body, n
            )

    def measure(result: Result, round_: int) -> None:
        directory = directories[(result.name, client)]
        pytest_measure(ctx, result, round_, directory, n, loads_plugin(result.name))

    interleave(ctx.sizes.repeats, results, measure, ctx.log)
    return results


def scenario_overhead(ctx: Context) -> tuple[list[Result], dict[str, Result]]:
    n = ctx.sizes.trivial_tests
    suites = {
        "async": generated.write_suite(ctx.workdir / "trivial", generated.TRIVIAL, n),
        "sync": generated.write_suite(ctx.workdir / "trivial-sync", generated.TRIVIAL_SYNC, n),
    }
    disabled = ["-p", "no:aiotestkit"]
    hygiene_off = ["-o", "aiotestkit_hygiene=off"]
    # name -> (suite, pytest options). Every variant loads the same other plugins.
    variants = {
        "async, collect, aiotestkit disabled": ("async", ["--collect-only", *disabled]),
        "async, collect, aiotestkit loaded": ("async", ["--collect-only"]),
        "async, run, aiotestkit disabled": ("async", disabled),
        "async, run, aiotestkit loaded": ("async", []),
        "async, run, aiotestkit loaded, hygiene off": ("async", hygiene_off),
        "sync, run, aiotestkit disabled": ("sync", disabled),
        "sync, run, aiotestkit loaded": ("sync", []),
    }
    results = [Result(name, env=ctx.main) for name in variants]

    def measure(result: Result, round_: int) -> None:
        suite, options = variants[result.name]
        if "--collect-only" in options:
            assert result.env is not None
            measured = ctx.runner.run(
                result.env, [*PYTEST_FLAGS, *options, str(suites[suite])], cwd=suites[suite]
            )
            result.add(round_, proc_wall=measured.wall, proc_cpu=measured.cpu)
        else:
            pytest_measure(ctx, result, round_, suites[suite], n, options)

    interleave(ctx.sizes.repeats, results, measure, ctx.log)

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
    for round_ in range(ctx.sizes.import_repeats):
        for name, (code, prefix) in imports.items():
            import_results[name].add(round_, us=import_us(ctx, code) - import_us(ctx, prefix))
    return results, import_results


def import_us(ctx: Context, code: str) -> int:
    """Microseconds ``python -X importtime -c code`` spent importing, start-up included.

    Sums the cumulative times of the top-level imports (no indentation in the tree).
    """
    import subprocess

    completed = subprocess.run(
        [ctx.main.python, "-X", "importtime", "-c", code],
        env=ctx.main.environ(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    total = 0
    for line in completed.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| \S", line)
        if match:
            total += int(match.group(1))
    return total


def rss_slope(samples: Sequence[Sequence[int]], n: int) -> float:
    """Bytes per test: least-squares slope of RSS over the tests after the first tenth."""
    points = [(i, rss) for i, rss in samples if i > n // 10]
    if len(points) < 2:
        raise VariantFailed(f"too few memory samples ({len(points)}) for a slope")
    mean_i = statistics.fmean(i for i, _ in points)
    mean_r = statistics.fmean(r for _, r in points)
    num = sum((i - mean_i) * (r - mean_r) for i, r in points)
    den = sum((i - mean_i) ** 2 for i, _ in points)
    return num / den


def scenario_memory(ctx: Context) -> list[Result]:
    n = ctx.sizes.memory_tests
    every = max(1, n // 50)
    tools = ["pytest-aiohttp", "aiotestkit-redirector", "aiotestkit-sandbox"]
    results = [Result(tool, env=ctx.main) for tool in tools]
    directories = {
        tool: generated.write_suite(
            ctx.workdir / f"memory-{tool}", generated.http_variant(tool, "http").body, n
        )
        for tool in tools
    }

    def measure(result: Result, round_: int) -> None:
        recorded = pytest_measure(
            ctx,
            result,
            round_,
            directories[result.name],
            n,
            loads_plugin(result.name),
            BENCH_MEMORY_EVERY=str(every),
        )
        samples = recorded["rss"]
        assert isinstance(samples, list)
        result.add(
            round_,
            kb_per_test=rss_slope(samples, n) / 1024,
            rss_end_mb=samples[-1][1] / 2**20,
        )

    interleave(ctx.sizes.repeats, results, measure, ctx.log)
    return results


def scenario_throughput(ctx: Context) -> list[Result]:
    script = str(HERE / "throughput.py")
    modes = {
        "sequential": ctx.sizes.sequential,
        "concurrent": ctx.sizes.concurrent,
        "held": ctx.sizes.held,
    }
    results = [
        Result(f"{server}, {mode}", env=ctx.main)
        for mode in modes
        for server in ("plain", "case-controlled")
    ]

    def measure(result: Result, round_: int) -> None:
        assert result.env is not None
        server, mode = result.name.split(", ")
        measured = ctx.runner.run(result.env, [script, server, mode, str(modes[mode])])
        figures = json.loads(measured.stdout)
        result.add(
            round_,
            seconds=figures["seconds"],
            cpu_seconds=figures["cpu_seconds"],
            rps=modes[mode] / figures["seconds"],
        )

    interleave(ctx.sizes.repeats, results, measure, ctx.log)
    return results


# name -> (suite template, loads aiotestkit). Ours, and the ceiling pytest-xdist allows on
# this machine for the same shape of test without aiotestkit and for an empty test.
SCALE_OUT_SUITES = {
    "aiotestkit-sandbox": (generated.SCALE_OUT, True),
    "pytest-aiohttp": (generated.SCALE_OUT_PYTEST_AIOHTTP, False),
    "empty async test": (generated.SCALE_OUT_EMPTY, False),
}


def scenario_scale_out(ctx: Context) -> list[Result]:
    n = ctx.sizes.scale_out_tests
    results = [
        Result(f"{suite}, {workers}", env=ctx.main)
        for suite in SCALE_OUT_SUITES
        for workers in ("-n 0", "-n 2")
    ]
    if version("pytest-xdist") is None:
        for result in results:
            result.unavailable = "pytest-xdist not installed (`pip install -e '.[bench]'`)"
        return results
    directories = {
        suite: generated.write_suite(
            ctx.workdir / f"scale-out-{index}", generated.render(template), n
        )
        for index, (suite, (template, _)) in enumerate(SCALE_OUT_SUITES.items())
    }
    runs = itertools.count()

    def measure(result: Result, round_: int) -> None:
        suite, workers = result.name.rsplit(", ", 1)
        options = workers.split()
        if not SCALE_OUT_SUITES[suite][1]:
            options += ["-p", "no:aiotestkit"]
        # A new base directory for tmp_path per run: otherwise pytest deletes the oldest
        # of its last runs' directories (1,000 of them) at the start of this one, a cost
        # that depends on what ran before, not on the tool measured.
        basetemp = ctx.workdir / "basetemp" / str(next(runs))
        basetemp.parent.mkdir(exist_ok=True)
        options += ["--basetemp", str(basetemp)]
        pytest_measure(ctx, result, round_, directories[suite], n, options)
        shutil.rmtree(basetemp, ignore_errors=True)

    interleave(ctx.sizes.repeats, results, measure, ctx.log)
    return results


# --------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def find(results: Sequence[Result], name: str, env: Env | None = None) -> Result | None:
    for result in results:
        if result.name == name and (env is None or result.env is env):
            return result
    return None


def net(result: Result, base: Result, key: str) -> Callable[[int], float | None]:
    """Per round: ``result``'s ``key`` minus the baseline's of the same round and env."""

    def value(round_: int) -> float | None:
        a, b = result.samples.get(key, {}), base.samples.get(key, {})
        if round_ in a and round_ in b:
            return a[round_] - b[round_]
        return None

    return value


def raw(result: Result, key: str) -> Callable[[int], float | None]:
    return lambda round_: result.samples.get(key, {}).get(round_)


def per_test_table(results: list[Result]) -> list[str]:
    lines = [
        "| variant | env | set-up ms | call ms | teardown ms | wall ms/test | spread | "
        "CPU ms/test | spread | above baseline: wall ms | CPU ms | process wall s | "
        "process CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        label = result.env.label if result.env else ""
        if not result.ok:
            reason = result.unavailable.splitlines()[0]
            lines.append(f"| {result.name} | {label} | {reason} |" + " |" * 10)
            continue
        base = find(results, "baseline", result.env)
        above = {"wall": "n/a", "cpu": "n/a"}
        if base is not None and base.ok:
            for key in above:
                difference = net(result, base, key)
                values = [v for r in result.samples[key] if (v := difference(r)) is not None]
                above[key] = ms(statistics.median(values)) if values else "n/a"
        lines.append(
            f"| {result.name} | {label} | {ms(result.median('setup'))} | "
            f"{ms(result.median('call'))} | {ms(result.median('teardown'))} | "
            f"{ms(result.median('wall'))} | {result.spread('wall')} | "
            f"{ms(result.median('cpu'))} | {result.spread('cpu')} | {above['wall']} | "
            f"{above['cpu']} | {result.median('proc_wall'):.2f} | "
            f"{result.median('proc_cpu'):.2f} |"
        )
    for result in results:
        if result.unavailable.startswith("failed"):
            lines += ["", f"{result.name} output:", "", "```", result.unavailable, "```"]
    return lines


@dataclass
class Target:
    text: str
    measure: str
    ratios: list[float]
    limit: float
    higher_is_better: bool = False
    fmt: str = "{:.2f}x"
    missing: str = ""

    def row(self) -> str:
        if self.missing or not self.ratios:
            return f"| {self.text} | {self.measure} | not measured: {self.missing} | | | |"
        values = sorted(self.ratios)
        interval = f"{self.fmt.format(values[0])} to {self.fmt.format(values[-1])}"
        return (
            f"| {self.text} | {self.measure} | {self.fmt.format(statistics.median(values))} | "
            f"{interval} | {len(values)} | "
            f"{verdict(values, self.limit, self.higher_is_better)} |"
        )


def ratio_targets(
    text: str,
    ours: Result | None,
    theirs: Result | None,
    limit: float,
    base_ours: Result | None,
    base_theirs: Result | None,
    rounds: int,
) -> list[Target]:
    """Targets on per-test cost above each variant's baseline, in wall and CPU time."""
    out = []
    for key, unit in (("cpu", "CPU"), ("wall", "wall")):
        measure = f"{unit} ms/test above an empty async test"
        need = (ours, theirs, base_ours, base_theirs)
        if any(r is None or not r.ok for r in need):
            missing = (
                ", ".join(r.name for r in need if r is not None and not r.ok)
                or "a variant is not in this run"
            )
            out.append(Target(text, measure, [], limit, missing=missing))
            continue
        assert ours is not None
        assert theirs is not None
        assert base_ours is not None
        assert base_theirs is not None
        ratios = paired(net(ours, base_ours, key), net(theirs, base_theirs, key), rounds)
        out.append(Target(text, measure, ratios, limit))
    return out


def report(
    ctx: Context,
    argv: Sequence[str],
    args: argparse.Namespace,
    about_machine: dict[str, str],
    per_test: dict[tuple[str, str, str], list[Result]],
    overhead: list[Result] | None,
    imports: dict[str, Result] | None,
    memory: list[Result] | None,
    throughput: list[Result] | None,
    scale: list[Result] | None,
    elapsed: float,
    resolvers: dict[str, str],
) -> str:
    sizes = ctx.sizes
    rounds = sizes.repeats
    out: list[str] = ["# aiotestkit benchmarks", ""]
    mode = "quick (smoke run: tiny sizes; not figures to quote)" if args.quick else "full"
    load = (
        f"**with load**: {args.with_load} CPU hog process(es) (`--with-load`) ran beside "
        "the benchmark for the whole run"
        if args.with_load
        else "no load added by the harness (other processes on the machine: see the load averages)"
    )
    out += [
        f"Command: `{' '.join(['python benchmarks/run.py', *argv])}` ({mode}); "
        f"{rounds} rounds, every variant of a scenario once per round, the "
        f"order rotated each round; finished in {elapsed:.0f} s on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load}.",
        "",
        "Figures are medians over the rounds; spread is half the range (max - min) as a "
        "percentage of the median. A target's ratio is computed per round from values "
        "measured in the same round, and called **met** only when every round's ratio "
        "meets it (**missed** when none does, **not shown** otherwise). Method: "
        "`benchmarks/README.md`.",
        "",
        "## Machine",
        "",
    ]
    out += [f"- {key}: {value}" for key, value in about_machine.items()]
    out += [f"- load average (1, 5, 15 min) {moment}: {value}" for moment, value in ctx.loads]
    out += ["", "## Environments and resolvers", ""]
    for name, env in ctx.envs.items():
        out.append(
            f"- `--resolver {name}`: {env.python}, aiohttp's DefaultResolver is "
            f"`{resolvers[name]}`"
            + (
                " (aiodns is installed but hidden: `import aiodns` fails in every child "
                "process, as if it were not installed)"
                if env.hide_aiodns and version("aiodns")
                else ""
            )
            + "; every pytest run checked it."
        )
    main_name = next(name for name, env in ctx.envs.items() if env is ctx.main)
    out.append(
        "- The scenarios other than the aiohttp per-test ones (httpx, plugin overhead, "
        f"memory, throughput, scale-out) run under `--resolver {main_name}`."
    )
    if ctx.old_env is not None:
        out.append(
            f"- `{ctx.old_env.label}`: a venv built by the harness ({ctx.old_env.python}) with "
            f"`{OLD_AIOHTTP}`, aioresponses and this venv's pytest, pytest-asyncio and "
            "pytest-aiohttp, for aioresponses (which fails on aiohttp 3.14: "
            "`ClientResponse.__init__() missing ... 'stream_writer'`); its baseline and "
            "pytest-aiohttp run there too, so that its ratios compare like with like."
        )
    else:
        out.append(f"- aioresponses: {ctx.old_env_reason}")
    out += ["", "## Package versions", ""]
    out += [f"- {dist}: {version(dist) or 'not installed'}" for dist in TOOLS]

    n = sizes.http_tests
    section = 0
    descriptions = {
        "aiohttp": [
            "Each test: the tool answers `GET /item/{i}` with the same JSON; the same client "
            "function (`session.get` + `.json()`) fetches it. Wall and CPU ms/test: the "
            "test's whole run protocol (set-up, call, teardown, reporting; `perf_counter` "
            "and `process_time`, every thread of the process), the mean over the tests "
            "without the first and the last (which carry the session-scoped set-up and "
            "teardown); set-up/call/teardown are pytest's own phase durations, over the "
            'same tests. "Above baseline": minus the empty async test of the same round '
            "and env. Process wall/CPU: the whole pytest process (start-up, imports, "
            "collection, session set-up and teardown; "
            "CPU from `os.wait4`). The baseline and the other tools run with "
            "`-p no:aiotestkit`, so aiotestkit's variants pay all of its plugin's costs.",
            "",
            "- aiotestkit-redirector: `case_controlled_server_factory` + `aiohttp_redirector`; "
            "the test receives the request and answers it with `send_json`.",
            "- aiotestkit-sandbox: `await network_sandbox.route(host, port, "
            "case_controlled_server)`; the client makes its own `ClientSession()`, unmodified.",
            "- pytest-aiohttp: `aiohttp_raw_server(handler)` + a new `ClientSession`.",
            "- pytest-httpserver: `httpserver.expect_request(...).respond_with_json(...)`.",
            "- aiointercept: `aiointercept_mock` and `m.get(url, payload=...)`.",
            "- aioresponses: `with aioresponses() as m: m.get(url, payload=...)` (no socket).",
            "- aiotestkit-aioresponses: the same test with "
            "`from aiotestkit.compat.aioresponses import aioresponses` (one import line "
            "changed) and `@pytest.mark.network_sandbox`: a real server, routed, per test.",
            "",
            "HTTPS: every variant does a full TLS handshake per test (new session, new "
            "connection); pytest-aiohttp and pytest-httpserver use a session-scoped trustme "
            "CA and one client context trusting it.",
        ],
        "httpx": [
            "The same test with `httpx.AsyncClient(verify=bench_client_ssl)`: every variant "
            "passes the session's one SSL context, so that no client loads certifi's bundle "
            "(httpx's `verify=True` builds a context from certifi for every client, several "
            "ms). respx (`respx.mock`) and pytest-httpx (`httpx_mock`) replace the "
            "transport (no socket, no TLS); pytest-httpserver and the sandbox serve over "
            "real sockets (HTTPS: a real handshake; the sandbox makes the routed connection "
            "trust its CA). aiotestkit-httpx-mock: pytest-httpx's test with the "
            "`aiotestkit_httpx_mock` fixture (a real server behind the sandbox).",
        ],
    }
    seen_client: set[str] = set()
    for (client, scheme, resolver), results in per_test.items():
        section += 1
        out += [
            "",
            f"## {section}. Per-test cost, {client} client, {scheme.upper()}, "
            f"{resolvers[resolver]} ({n} tests per variant)",
            "",
        ]
        if client not in seen_client:
            out += descriptions[client] + [""]
            seen_client.add(client)
        out += per_test_table(results)

    def simple_table(
        results: list[Result], columns: Sequence[tuple[str, str, Callable[[float], str]]]
    ) -> list[str]:
        header = "| variant | " + " | ".join(f"{title} | spread" for title, _, _ in columns)
        lines = [header + " |", "|---|" + "---:|---:|" * len(columns)]
        for result in results:
            if not result.ok:
                reason = result.unavailable.splitlines()[0]
                lines.append(f"| {result.name} | {reason} |" + " |" * (2 * len(columns) - 1))
                continue
            cells = [
                f"{fmt(result.median(key))} | {result.spread(key)}"
                for _, key, fmt in columns
                if key in result.samples
            ] + ["n/a | "] * sum(1 for _, key, _ in columns if key not in result.samples)
            lines.append(f"| {result.name} | " + " | ".join(cells) + " |")
        return lines

    if overhead is not None and imports is not None:
        section += 1
        out += [
            "",
            f"## {section}. Plugin overhead ({sizes.trivial_tests} trivial tests)",
            "",
            "The same suite with aiotestkit's plugin loaded and with `-p no:aiotestkit` "
            "(every other plugin loaded in both): process wall and CPU time (start-up and "
            "collection included), and per test (the run protocol, as above).",
            "",
        ]
        out += simple_table(
            overhead,
            [
                ("process wall s", "proc_wall", "{:.2f}".format),
                ("process CPU s", "proc_cpu", "{:.2f}".format),
                ("wall µs/test", "wall", lambda v: f"{v * 1e6:.0f}"),
                ("CPU µs/test", "cpu", lambda v: f"{v * 1e6:.0f}"),
            ],
        )
        out += [
            "",
            "Import time (`python -X importtime -c ...`, sum of the cumulative times of the "
            "top-level imports, µs, median):",
            "",
        ]
        out += simple_table(list(imports.values()), [("µs", "us", "{:.0f}".format)])

    if memory is not None:
        section += 1
        out += [
            "",
            f"## {section}. Memory per test ({sizes.memory_tests} HTTP tests, aiohttp client)",
            "",
            "The resident set size (`/proc/self/statm`, after `gc.collect()`) every "
            f"{max(1, sizes.memory_tests // 50)} tests; growth is the least-squares slope "
            "over the tests after the first tenth.",
            "",
        ]
        out += simple_table(
            memory,
            [
                ("growth KB/test", "kb_per_test", "{:.2f}".format),
                ("RSS at the end MB", "rss_end_mb", "{:.1f}".format),
            ],
        )

    if throughput is not None:
        section += 1
        out += [
            "",
            f"## {section}. Throughput ({sizes.sequential} sequential, {sizes.concurrent} "
            f"concurrent, {sizes.held} held requests)",
            "",
            "`benchmarks/throughput.py`, one process per measurement; wall and CPU time of "
            "the requests only. Plain: aiohttp's `RawTestServer` with a handler. "
            "Case-controlled: the test's loop receives each request and answers it. Held: "
            "all requests outstanding at once on their own kept-alive connections, every "
            "one held until the last has arrived.",
            "",
        ]
        out += simple_table(
            throughput,
            [
                ("requests/s", "rps", "{:.0f}".format),
                ("wall s", "seconds", "{:.3f}".format),
                ("CPU s", "cpu_seconds", "{:.3f}".format),
            ],
        )

    if scale is not None:
        section += 1
        out += [
            "",
            f"## {section}. Scale-out under pytest-xdist ({sizes.scale_out_tests} sandbox tests)",
            "",
            "aiotestkit-sandbox: each test routes a case-controlled server in the sandbox "
            "(every tenth on 443, over HTTPS), fetches with an unmodified `ClientSession`, "
            "and writes a file in `tmp_path`. pytest-aiohttp: the same shape with "
            "`aiohttp_raw_server` (every tenth over HTTPS) and `-p no:aiotestkit`; empty "
            "async test: `-p no:aiotestkit`. These two show what pytest-xdist gives on this "
            "machine to tests that are not aiotestkit's. Every run must pass every test and "
            "gets a new `--basetemp` (else pytest deletes an earlier run's 1,000 `tmp_path` "
            "directories at its start).",
            "",
        ]
        out += simple_table(
            scale,
            [
                ("process wall s", "proc_wall", "{:.2f}".format),
                ("process CPU s", "proc_cpu", "{:.2f}".format),
            ],
        )
        out += [
            "",
            "| tests | speed-up, process wall (-n 0 / -n 2), median | range over the rounds "
            "| CPU added by -n 2, ms/test |",
            "|---|---:|---:|---:|",
        ]
        for suite in SCALE_OUT_SUITES:
            serial, parallel = find(scale, f"{suite}, -n 0"), find(scale, f"{suite}, -n 2")
            if not (serial and parallel and serial.ok and parallel.ok):
                continue
            ratios = paired(raw(serial, "proc_wall"), raw(parallel, "proc_wall"), rounds)
            added = [
                (b - a) * 1e3 / sizes.scale_out_tests
                for r in range(rounds)
                if (a := raw(serial, "proc_cpu")(r)) is not None
                and (b := raw(parallel, "proc_cpu")(r)) is not None
            ]
            if ratios and added:
                out.append(
                    f"| {suite} | {statistics.median(ratios):.2f}x "
                    f"| {min(ratios):.2f}x to {max(ratios):.2f}x "
                    f"| {statistics.median(added):.2f} |"
                )

    # ------------------------------------------------------------------ targets
    targets: list[Target] = []
    for resolver in ctx.envs:
        env = ctx.envs[resolver]
        http = per_test.get(("aiohttp", "http", resolver), [])
        https = per_test.get(("aiohttp", "https", resolver), [])
        tag = f"{resolvers[resolver]}"
        pairs = [
            (
                "aiotestkit_redirector ≤ 1.0x pytest-aiohttp, HTTP",
                http,
                http,
                "aiotestkit-redirector",
                1.0,
            ),
            (
                "aiotestkit_redirector ≤ 1.0x pytest-aiohttp, HTTPS",
                https,
                https,
                "aiotestkit-redirector",
                1.0,
            ),
            (
                "network_sandbox HTTP ≤ 1.1x pytest-aiohttp HTTP",
                http,
                http,
                "aiotestkit-sandbox",
                1.1,
            ),
            (
                "network_sandbox HTTPS ≤ 1.0x pytest-aiohttp HTTPS",
                https,
                https,
                "aiotestkit-sandbox",
                1.0,
            ),
            (
                "stretch: network_sandbox HTTPS ≤ 1.5x pytest-aiohttp HTTP",
                https,
                http,
                "aiotestkit-sandbox",
                1.5,
            ),
        ]
        for text, ours_in, theirs_in, name, limit in pairs:
            if not ours_in or not theirs_in:
                continue
            targets += ratio_targets(
                f"{text} ({tag})",
                find(ours_in, name, env),
                find(theirs_in, "pytest-aiohttp", env),
                limit,
                find(ours_in, "baseline", env),
                find(theirs_in, "baseline", env),
                rounds,
            )
    if overhead is not None:
        ov = {r.name: r for r in overhead}
        checks = [
            (
                "plugin overhead, async tests, default settings ≤ +5%",
                "async, run, aiotestkit loaded",
                "async, run, aiotestkit disabled",
                0.05,
            ),
            (
                "plugin overhead, async tests, `aiotestkit_hygiene = off` ≤ +1%",
                "async, run, aiotestkit loaded, hygiene off",
                "async, run, aiotestkit disabled",
                0.01,
            ),
            (
                "plugin overhead, sync tests ≤ +1% (unaffected)",
                "sync, run, aiotestkit loaded",
                "sync, run, aiotestkit disabled",
                0.01,
            ),
        ]
        for text, on, off, limit in checks:
            for key, unit in (("proc_cpu", "process CPU"), ("proc_wall", "process wall")):
                if not (ov[on].ok and ov[off].ok):
                    targets.append(Target(text, unit, [], limit, missing="failed"))
                    continue
                ratios = paired(raw(ov[on], key), raw(ov[off], key), rounds)
                targets.append(Target(text, unit, [r - 1 for r in ratios], limit, fmt="{:+.1%}"))
    if memory is not None:
        theirs = find(memory, "pytest-aiohttp")
        for name in ("aiotestkit-sandbox", "aiotestkit-redirector"):
            ours = find(memory, name)
            text = (
                f"{name}: memory growth per test ≤ pytest-aiohttp's "
                f"(+{MEMORY_TOLERANCE_KB} KB tolerance)"
            )
            if ours is None or theirs is None or not ours.ok or not theirs.ok:
                targets.append(Target(text, "KB/test", [], 0, missing="failed"))
                continue
            differences = [
                a - b
                for r in range(rounds)
                if (a := raw(ours, "kb_per_test")(r)) is not None
                and (b := raw(theirs, "kb_per_test")(r)) is not None
            ]
            targets.append(
                Target(
                    text,
                    "KB/test, ours minus theirs",
                    differences,
                    MEMORY_TOLERANCE_KB,
                    fmt="{:+.2f}",
                )
            )
    if scale is not None:
        n0, n2 = find(scale, "aiotestkit-sandbox, -n 0"), find(scale, "aiotestkit-sandbox, -n 2")
        text = f"`-n 2` speed-up ≥ 1.6x on {sizes.scale_out_tests} sandbox tests"
        if n0 and n2 and n0.ok and n2.ok:
            targets.append(
                Target(
                    text,
                    "process wall, -n 0 / -n 2",
                    paired(raw(n0, "proc_wall"), raw(n2, "proc_wall"), rounds),
                    1.6,
                    higher_is_better=True,
                )
            )
        else:
            targets.append(Target(text, "process wall", [], 1.6, missing="failed"))
    if throughput is not None:
        tp = {r.name: r for r in throughput}
        for key, unit in (("seconds", "wall"), ("cpu_seconds", "CPU")):
            ours, theirs = tp["case-controlled, held"], tp["plain, held"]
            text = f"{sizes.held} concurrently held requests ≤ 1.0x plain aiohttp's time"
            if ours.ok and theirs.ok:
                targets.append(
                    Target(text, unit, paired(raw(ours, key), raw(theirs, key), rounds), 1.0)
                )
            else:
                targets.append(Target(text, unit, [], 1.0, missing="failed"))

    peak = max(
        (float(value.split(",")[0]) for _, value in ctx.loads if value != "unknown"), default=0.0
    )
    cores = os.cpu_count() or 1
    loaded = (
        f" The 1-minute load average reached {peak:.1f} on {cores} cores during this run: "
        "read its wall times as loaded-machine figures."
        if peak > cores
        else ""
    )
    section += 1
    out += [
        "",
        "## Targets (issue 14)",
        "",
        "Per-test targets compare costs above the empty async test of the same round "
        "and env; every ratio is formed per round, from values of that round. "
        + (
            "This run had CPU hogs beside it: these are the loaded-machine figures."
            if args.with_load
            else "No load was added: compare with a `--with-load` run for the loaded-machine "
            "targets."
        )
        + loaded,
        "",
        "| target | measure | median | range over the rounds | rounds | verdict |",
        "|---|---|---:|---:|---:|---|",
    ]
    out += [target.row() for target in targets]
    out += [
        "",
        f"Load average at the end (1, 5, 15 min): {load_average()}. With "
        f"{os.cpu_count()} cores, a 1-minute load above {os.cpu_count()} means processes "
        "waited for a CPU: wall times then include that wait, CPU times much less.",
        "",
    ]
    return "\n".join(out)


def setup_envs(
    args: argparse.Namespace, workdir: Path, log: Callable[[str], None]
) -> tuple[dict[str, Env], Env | None, str]:
    python = sys.executable
    aiohttp_label = f"aiohttp {version('aiohttp')}"
    has_aiodns = version("aiodns") is not None
    wanted = args.resolver or ("both" if has_aiodns else "threaded")
    envs: dict[str, Env] = {}
    if wanted in ("threaded", "both"):
        envs["threaded"] = make_env(aiohttp_label, python, has_aiodns, "ThreadedResolver", workdir)
    if wanted in ("aiodns", "both"):
        if not has_aiodns:
            raise SystemExit("--resolver aiodns: aiodns is not installed in this venv")
        envs["aiodns"] = make_env(aiohttp_label, python, False, "AsyncResolver", workdir)
    old_env, reason = None, ""
    venv = args.venvs / "aiohttp-3.13"
    requirements = [
        OLD_AIOHTTP,
        f"aioresponses=={version('aioresponses')}" if version("aioresponses") else "aioresponses",
        *(f"{dist}=={version(dist)}" for dist in ("pytest", "pytest-asyncio", "pytest-aiohttp")),
    ]
    if "threaded" not in envs:
        reason = "not measured: it runs only with `--resolver threaded` or `both`"
    elif args.no_build and not (venv / "bin" / "python").exists():
        reason = (
            f"not measured: its aiohttp 3.13 venv ({venv}) is not built "
            "(`--no-build`; a run without it builds it)"
        )
    else:
        try:
            python_313 = build_venv(venv, requirements, log)
        except (RuntimeError, OSError) as error:
            reason = f"not measured: building its aiohttp 3.13 venv failed: {error}"
        else:
            label = "venv " + default_version(python_313)
            old_env = make_env(label, python_313, False, "ThreadedResolver", workdir)
    return envs, old_env, reason


def default_version(python: str) -> str:
    import subprocess

    completed = subprocess.run(
        [python, "-c", "import aiohttp; print(aiohttp.__version__)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return f"aiohttp {completed.stdout.strip() or '?'}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, 2 rounds: a smoke test, in seconds"
    )
    parser.add_argument("--repeats", type=int, help="rounds (full: 5, quick: 2)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SIZE=N",
        help="override a size, e.g. --set http_tests=50 (sizes: "
        + ", ".join(f"{name} (full {value})" for name, value in FULL.__dict__.items())
        + ")",
    )
    parser.add_argument(
        "--resolver",
        choices=("threaded", "aiodns", "both"),
        help="aiohttp's default resolver for every variant: threaded (aiodns hidden, as if "
        "not installed), aiodns (as installed), or both, one after the other "
        "(default: both if aiodns is installed, else threaded)",
    )
    parser.add_argument(
        "--with-load",
        type=int,
        nargs="?",
        const=os.cpu_count() or 1,
        default=0,
        metavar="N",
        help="run N CPU hog processes beside the benchmark (default N: the number of cores)",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios to run, of: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--venvs",
        type=Path,
        default=HERE / ".venvs",
        help="where the harness keeps the venvs it builds (default: benchmarks/.venvs)",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="build no venv; use one only if it exists"
    )
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
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    if only - set(SCENARIOS):
        parser.error(f"unknown scenario(s) {sorted(only - set(SCENARIOS))}; use {SCENARIOS}")
    sizes = QUICK if args.quick else FULL
    if args.repeats:
        sizes = replace(sizes, repeats=args.repeats)
    for setting in args.set:
        name, _, value = setting.partition("=")
        if name not in FULL.__dict__ or not value.isdigit() or int(value) < 1:
            parser.error(
                f"--set {setting}: expected SIZE=N with N >= 1 and SIZE one of "
                f"{', '.join(FULL.__dict__)}"
            )
        sizes = replace(sizes, **{name: int(value)})
    output = args.output or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    about_machine = machine()
    start = time.perf_counter()
    hog = CpuHog(args.with_load, limit=4 * 3600) if args.with_load else None
    try:
        with tempfile.TemporaryDirectory(prefix="aiotestkit-bench-") as tmp:
            workdir = Path(tmp)
            envs, old_env, old_reason = setup_envs(args, workdir, log)
            ctx = Context(sizes, Runner(workdir, log), workdir, log, envs, old_env, old_reason)
            ctx.mark("at the start")
            resolvers = {name: default_resolver(env) for name, env in envs.items()}
            for name, env in envs.items():
                if resolvers[name] != env.resolver:
                    raise SystemExit(
                        f"--resolver {name}: aiohttp's DefaultResolver is {resolvers[name]}, "
                        f"expected {env.resolver}"
                    )
            per_test: dict[tuple[str, str, str], list[Result]] = {}
            groups = [
                ("aiohttp", AIOHTTP_HTTP_TOOLS, AIOHTTP_HTTPS_TOOLS),
                ("httpx", HTTPX_TOOLS, HTTPX_TOOLS),
            ]
            for client, http_tools, https_tools in groups:
                if client not in only:
                    continue
                # httpx does not use aiohttp's resolver: one environment is enough.
                for resolver, env in (
                    envs.items() if client == "aiohttp" else [next(iter(envs.items()))]
                ):
                    for scheme, tools in (("http", http_tools), ("https", https_tools)):
                        log(f"per-test cost: {client}, {scheme}, {env.resolver}")
                        per_test[(client, scheme, resolver)] = scenario_per_test(
                            ctx, client, scheme, env, tools
                        )
                        ctx.mark(f"after {client} {scheme} ({env.resolver})")
            overhead = imports = memory = throughput = scale = None
            if "overhead" in only:
                log("plugin overhead")
                overhead, imports = scenario_overhead(ctx)
                ctx.mark("after the plugin overhead")
            if "memory" in only:
                log("memory per test")
                memory = scenario_memory(ctx)
                ctx.mark("after memory")
            if "throughput" in only:
                log("throughput")
                throughput = scenario_throughput(ctx)
                ctx.mark("after throughput")
            if "scale-out" in only:
                log("scale-out")
                scale = scenario_scale_out(ctx)
                ctx.mark("at the end")
    finally:
        if hog is not None:
            hog.stop()
    text = report(
        ctx,
        argv,
        args,
        about_machine,
        per_test,
        overhead,
        imports,
        memory,
        throughput,
        scale,
        time.perf_counter() - start,
        resolvers,
    )
    output.write_text(text)
    print(text)
    log(f"wrote {output}")
    everything = [
        r
        for results in (*per_test.values(), overhead, memory, throughput, scale)
        for r in results or []
    ]
    failed = [r for r in everything if r.unavailable.startswith("failed")]
    if failed:
        log(f"variants that failed: {', '.join(r.name for r in failed)}")
    # A peer tool that does not run here is a finding, reported above; a failure of
    # aiotestkit's own variants, a baseline or a scenario without peers is an error.
    ours = [r.name for r in failed if TOOL_OF_VARIANT.get(r.name, "aiotestkit") == "aiotestkit"]
    if ours:
        log(f"aiotestkit's own measurements failed: {', '.join(ours)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
