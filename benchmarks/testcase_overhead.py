"""Per-test cost of aiotestkit.NetworkTestCase over a bare IsolatedAsyncioTestCase.

Runs N empty tests in three classes, in-process with unittest's own runner:
``unittest.IsolatedAsyncioTestCase``; ``NetworkTestCase`` (hygiene checks, network
sandbox, redirector session, server factories); and ``NetworkTestCase`` whose
``asyncSetUp`` also starts one case-controlled HTTP server. Each class runs
``--repeat`` times, alternating; the best milliseconds per test are printed.

Usage:
    .venv/bin/python benchmarks/testcase_overhead.py [--tests 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
import unittest

from aiotestkit import NetworkTestCase


class Plain(unittest.IsolatedAsyncioTestCase):
    pass


class Network(NetworkTestCase):
    pass


class NetworkWithServer(NetworkTestCase):
    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        await self.case_controlled_server_factory()


async def _empty(self: unittest.TestCase) -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    classes: list[type[unittest.TestCase]] = [Plain, Network, NetworkWithServer]
    for cls in classes:
        for index in range(options.tests):
            setattr(cls, f"test_{index:05d}", _empty)
    best = {cls.__name__: float("inf") for cls in classes}
    for _ in range(options.repeat):
        for cls in classes:
            suite = unittest.defaultTestLoader.loadTestsFromTestCase(cls)
            result = unittest.TestResult()
            start = time.perf_counter()
            suite.run(result)
            elapsed = time.perf_counter() - start
            if not result.wasSuccessful():
                raise SystemExit(f"{cls.__name__} failed: {result.failures + result.errors}")
            best[cls.__name__] = min(best[cls.__name__], elapsed * 1000 / result.testsRun)
    for name, milliseconds in best.items():
        print(f"{name:18s} {milliseconds:6.2f} ms/test (best of {options.repeat})")


if __name__ == "__main__":
    main()
