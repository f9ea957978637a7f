"""Cost of one case-controlled round trip, and of one test using aiohttp_redirector.

Run: python benchmarks/http_round_trip.py [--round-trips N] [--tests N]

1. Round trips: one server and one session, N requests each received and answered by
   the test loop, over HTTP and over HTTPS (a kept-alive connection, so the TLS
   handshake is paid once) — and N fresh HTTPS connections (a handshake each).
2. Per-test cost: N generated tests, each one GET over HTTPS through the
   aiohttp_redirector fixture, against N empty async tests, in separate pytest processes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _pytest_timing import EMPTY_TESTS, pytest_seconds

from aiotestkit import AiohttpRedirector, CaseControlledTestServer


async def _round_trips(n: int, scheme: str, fresh_connections: bool) -> float:
    async with (
        AiohttpRedirector() as redirector,
        CaseControlledTestServer(scheme=scheme) as server,
    ):
        port = 443 if scheme == "https" else 80
        redirector.add_server("api.example.com", port, server)
        url = f"{scheme}://api.example.com/item"
        start = time.perf_counter()
        for _ in range(n):
            headers = {"Connection": "close"} if fresh_connections else None
            task = asyncio.create_task(redirector.session.get(url, headers=headers))
            server.send_json(await server.receive_request(), {"ok": True})
            async with await task as response:
                await response.read()
        return (time.perf_counter() - start) / n


TEST_BODY = """
import asyncio, pytest
from aiotestkit import CaseControlledTestServer

@pytest.mark.parametrize("i", range({n}))
@pytest.mark.asyncio
async def test_get(i, aiohttp_redirector):
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.example.com", 443, server)
        task = asyncio.create_task(aiohttp_redirector.session.get("https://api.example.com/"))
        server.send_json(await server.receive_request(), {{"ok": True}})
        async with await task as response:
            assert await response.json() == {{"ok": True}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--tests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    for label, scheme, fresh in [
        ("HTTP round trip, kept-alive", "http", False),
        ("HTTPS round trip, kept-alive", "https", False),
        ("HTTPS round trip, new connection + handshake each", "https", True),
    ]:
        n = args.round_trips if not fresh else max(args.round_trips // 4, 1)
        runs = [asyncio.run(_round_trips(n, scheme, fresh)) for _ in range(args.repeats)]
        print(f"{label}: median {statistics.median(runs) * 1e3:.3f} ms over {n} x {args.repeats}")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        empty = [
            pytest_seconds(directory, EMPTY_TESTS.format(n=args.tests))
            for _ in range(args.repeats)
        ]
        full = [
            pytest_seconds(directory, TEST_BODY.format(n=args.tests)) for _ in range(args.repeats)
        ]
    per_test = (statistics.median(full) - statistics.median(empty)) / args.tests
    print(
        f"{args.tests} empty async tests: median {statistics.median(empty):.2f} s; "
        f"{args.tests} aiohttp_redirector HTTPS tests: median {statistics.median(full):.2f} s; "
        f"cost per test beyond an empty async test: {per_test * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
