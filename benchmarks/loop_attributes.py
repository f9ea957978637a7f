"""What touching an event loop's ``__dict__`` costs each later iteration of that loop.

CPython 3.11 and later keep an object's attributes in a compact array laid out by a key
table its class shares (30 names at most) and read them by a fast path. Reading the
object's ``__dict__``, or giving it more names than the shared table holds, moves them
into an ordinary dict for the rest of the object's life. This script counts, under
valgrind's callgrind, the instructions of 20,000 ``await asyncio.sleep(0)`` on a fresh
loop, for each way of touching it, on each Python given, and prints the cost per
iteration above the untouched loop. ``aiotestkit._core.patch_method`` exists because
of these figures (see ``benchmarks/README.md``).

Cases:

- ``untouched``: nothing done to the loop;
- ``vars``: ``vars(loop)`` read once;
- ``names-N``: ``N`` new instance attributes set (a loop has 24 of its own on 3.11).

Usage::

    python benchmarks/loop_attributes.py                        # this Python
    python benchmarks/loop_attributes.py --python python3.12 --python python3.13

Needs ``valgrind`` on the ``PATH``; about 5 seconds a case.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ITERATIONS = 20_000

NAMES = (
    "_make_socket_transport",
    "_make_ssl_transport",
    "_make_datagram_transport",
    "_start_serving",
    "getaddrinfo",
    "create_connection",
    "sock_connect",
)

CHILD = """
import asyncio, sys

case = sys.argv[1]
loop = asyncio.new_event_loop()
if case == "vars":
    vars(loop)
elif case.startswith("names-"):
    for name in {names!r}[: int(case.removeprefix("names-"))]:
        setattr(loop, name, getattr(loop, name))


async def main():
    for _ in range({iterations}):
        await asyncio.sleep(0)


loop.run_until_complete(main())
loop.close()
"""

CASES = ("untouched", "vars", "names-1", "names-2", "names-3", "names-4", "names-7")


def instructions(python: str, script: Path, case: str) -> int:
    """Instructions of one child run of ``case`` under callgrind."""
    completed = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, script, case],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    match = re.search(r"Collected\s*:\s*(\d+)", completed.stderr)
    if match is None:
        raise SystemExit(f"{python} {case}: no instruction count in valgrind's output")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python", action="append", help="an interpreter to measure (repeatable; default: this)"
    )
    args = parser.parse_args()
    pythons = args.python or [sys.executable]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD.format(names=NAMES, iterations=ITERATIONS))
        print("| Python | case | instructions per iteration above `untouched` |")
        print("|---|---|---:|")
        for python in pythons:
            version = subprocess.run(
                [python, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            base = instructions(python, script, "untouched")
            for case in CASES[1:]:
                extra = (instructions(python, script, case) - base) / ITERATIONS
                print(f"| {version} | {case} | {extra:+,.0f} |", flush=True)


if __name__ == "__main__":
    main()
