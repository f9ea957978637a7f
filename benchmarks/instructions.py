"""Per-test cost in CPU instructions, counted by valgrind's callgrind: a measure no load skews.

Time on a shared machine moves by ±20 % with its load; an instruction count moves by
well under 1 % (a full garbage collection that falls in one run and not the other is the
main noise, up to ~0.15 M instructions per test here). This script writes two suites of
one variant, of ``--small`` and ``--large`` tests (``benchmarks/generated.py``), counts the
instructions of a whole pytest run of each under callgrind, and reports the per-test
slope, ``(large - small) / (large_tests - small_tests)``, in millions of instructions, and
that slope minus the empty async test's with aiotestkit disabled.

Variants (any number, in the order given):

- ``trivial``: the empty async test with aiotestkit loaded (default settings);
- ``trivial-off``: the same with ``-o aiotestkit_hygiene=off``;
- ``trivial-disabled``: the same with ``-p no:aiotestkit`` (the baseline);
- ``sync``, ``sync-disabled``: the empty sync test, loaded and disabled;
- ``TOOL:SCHEME``: a per-test HTTP variant of ``benchmarks/run.py`` (``aiotestkit-redirector``,
  ``aiotestkit-sandbox``, ``pytest-aiohttp``, ...; ``http`` or ``https``); tools other than
  aiotestkit's run with ``-p no:aiotestkit``, as in ``run.py``;
- any of these with ``+off`` appended: the same with ``-o aiotestkit_hygiene=off``;
- any of these with ``@NAME=VALUE`` appended (more than once if need be): the same with
  ``-o NAME=VALUE``, e.g. ``aiotestkit-sandbox:http@aiotestkit_hygiene_gc=off``.

Usage::

    python benchmarks/instructions.py trivial trivial-off trivial-disabled
    python benchmarks/instructions.py pytest-aiohttp:http aiotestkit-redirector:http
    python benchmarks/instructions.py --src /tmp/old/src trivial   # another checkout's code
    python benchmarks/instructions.py trivial trivial@aiotestkit_hygiene_gc=off   # an ini option

Needs ``valgrind`` on the ``PATH``. Each run is about 50 times slower than without
valgrind: a pair of trivial suites takes about a minute, a pair of HTTPS suites several.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generated

DISABLED = ["-p", "no:aiotestkit"]
FLAGS = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly"]
BASELINE = "trivial-disabled"


def suite_of(variant: str) -> tuple[str, list[str]]:
    """The test body and the extra pytest options of ``variant``."""
    simple = {
        "trivial": (generated.TRIVIAL, []),
        "trivial-off": (generated.TRIVIAL, ["-o", "aiotestkit_hygiene=off"]),
        "trivial-disabled": (generated.TRIVIAL, DISABLED),
        "sync": (generated.TRIVIAL_SYNC, []),
        "sync-disabled": (generated.TRIVIAL_SYNC, DISABLED),
    }
    if variant in simple:
        return simple[variant]
    if "@" in variant:
        base, *settings = variant.split("@")
        body, options = suite_of(base)
        for setting in settings:
            if "=" not in setting:
                raise SystemExit(f"{variant!r}: expected @NAME=VALUE, got @{setting}")
            options = [*options, "-o", setting]
        return body, options
    if variant.endswith("+off"):
        body, options = suite_of(variant.removesuffix("+off"))
        return body, [*options, "-o", "aiotestkit_hygiene=off"]
    tool, _, scheme = variant.partition(":")
    if scheme not in ("http", "https"):
        raise SystemExit(
            f"unknown variant {variant!r}: expected one of {sorted(simple)} or TOOL:SCHEME"
        )
    body = generated.http_variant(tool, scheme).body
    return body, ([] if tool.startswith("aiotestkit") else DISABLED)


def _sigint_default() -> None:
    """In the child before it runs: SIGINT handled as in a terminal, however we were started.

    A shell starts a background job with SIGINT ignored, which its children inherit; then
    ``asyncio.Runner`` installs no SIGINT handler of its own, and every test (every
    iteration) counts about 0.16 M instructions fewer than in the foreground.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def callgrind_count(
    command: list[str], out: Path, *, env: dict[str, str], cwd: Path | None = None
) -> int:
    """Instructions of one run of ``command`` under callgrind, its output file ``out``.

    Runs ``command`` once without valgrind first (it must pass, and it writes the bytecode
    caches), then under callgrind with SIGINT handled as in a terminal.

    Raises:
        SystemExit: if either run fails (with the end of its output), or ``out`` has no
            ``summary:`` line.
    """
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, timeout=600)
    completed = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        preexec_fn=_sigint_default,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{command}: failed under valgrind:\n{completed.stdout[-2000:]}")
    match = re.search(r"^summary:\s*(\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{out}: no 'summary:' line")
    return int(match.group(1))


def count(directory: Path, options: list[str], env: dict[str, str]) -> int:
    """Instructions of one pytest run of ``directory`` under callgrind."""
    command = [sys.executable, "-m", "pytest", *FLAGS, *options, str(directory)]
    return callgrind_count(command, directory / "callgrind.out", env=env, cwd=directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--small", type=int, default=20, help="tests in the small suite")
    parser.add_argument("--large", type=int, default=80, help="tests in the large suite")
    parser.add_argument("--src", help="a source tree put first on PYTHONPATH (another checkout)")
    parser.add_argument(
        "--no-baseline", action="store_true", help=f"do not add {BASELINE!r} to subtract"
    )
    args = parser.parse_args()
    variants = list(dict.fromkeys(args.variants))
    if not args.no_baseline and BASELINE not in variants:
        variants.append(BASELINE)
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(args.src).resolve()), env.get("PYTHONPATH")])
        )
    slopes: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="aiotestkit-instructions-") as tmp:
        for index, variant in enumerate(variants):
            body, options = suite_of(variant)
            counts = []
            for n in (args.small, args.large):
                directory = generated.write_suite(Path(tmp) / f"{index}-{n}", body, n)
                counts.append(count(directory, options, env))
            slopes[variant] = (counts[1] - counts[0]) / (args.large - args.small) / 1e6
            print(
                f"{variant}: {counts[0] / 1e6:.1f} M ({args.small} tests), "
                f"{counts[1] / 1e6:.1f} M ({args.large} tests): {slopes[variant]:.3f} M/test",
                flush=True,
            )
    base = slopes.get(BASELINE)
    print()
    print("| variant | M instructions/test | above the empty async test, aiotestkit disabled |")
    print("|---|---:|---:|")
    for variant, slope in slopes.items():
        above = f"{slope - base:+.3f}" if base is not None else "n/a"
        print(f"| {variant} | {slope:.3f} | {above} |")


if __name__ == "__main__":
    main()
