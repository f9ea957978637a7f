"""Scenario 4: requests per second through a case-controlled server vs plain aiohttp.

Run: python benchmarks/throughput.py {case-controlled|plain} {sequential|concurrent} N

Prints one JSON object: ``{"server": ..., "mode": ..., "requests": N, "seconds": ...}``.
Both servers are aiohttp's own ``RawTestServer`` on 127.0.0.1 and answer the same JSON;
the client is one ``aiohttp.ClientSession`` (default connector: at most 100
connections). ``case-controlled``: the test's loop takes each request with
``receive_request()`` and answers it with ``send_json()``. ``plain``: an aiohttp
handler returns ``web.json_response`` directly. ``sequential`` sends one request after
the other; ``concurrent`` starts all N at once and gathers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from aiotestkit import CaseControlledTestServer

PAYLOAD = {"result": {"price": "3602.2", "volume": 17}, "error": []}


@contextlib.asynccontextmanager
async def _plain() -> AsyncIterator[str]:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.json_response(PAYLOAD)

    async with RawTestServer(handler) as server:
        yield str(server.make_url("/item"))


@contextlib.asynccontextmanager
async def _case_controlled() -> AsyncIterator[str]:
    async with CaseControlledTestServer() as server:

        async def answer() -> None:
            while True:
                request = await server.receive_request(timeout=60.0)
                server.send_json(request, PAYLOAD)

        answering = asyncio.create_task(answer())
        try:
            yield str(server.make_url("/item"))
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering


SERVERS: dict[str, Callable[[], contextlib.AbstractAsyncContextManager[str]]] = {
    "case-controlled": _case_controlled,
    "plain": _plain,
}


async def _fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def measure(server: str, mode: str, n: int) -> float:
    """Seconds for ``n`` requests answered by ``server`` in ``mode``."""
    async with SERVERS[server]() as url, aiohttp.ClientSession() as session:
        assert await _fetch(session, url) == PAYLOAD  # warm up: connect once
        start = time.perf_counter()
        if mode == "sequential":
            for _ in range(n):
                assert await _fetch(session, url) == PAYLOAD
        else:
            calls: list[Awaitable[Any]] = [_fetch(session, url) for _ in range(n)]
            results = await asyncio.gather(*calls)
            assert all(result == PAYLOAD for result in results)
        return time.perf_counter() - start


def main() -> None:
    server, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if server not in SERVERS or mode not in ("sequential", "concurrent"):
        sys.exit(__doc__)
    seconds = asyncio.run(measure(server, mode, n))
    print(json.dumps({"server": server, "mode": mode, "requests": n, "seconds": seconds}))


if __name__ == "__main__":
    main()
