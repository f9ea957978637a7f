"""Throughput: requests through a case-controlled server vs plain aiohttp.

Run: python benchmarks/throughput.py {case-controlled|plain} {sequential|concurrent|held} N

Prints one JSON object: ``{"server": ..., "mode": ..., "requests": N, "seconds": ...,
"cpu_seconds": ...}``: the wall (``perf_counter``) and CPU (``process_time``: user +
system of this process) time of the N requests, start-up and warm-up excluded.
Both servers are aiohttp's own ``RawTestServer`` on 127.0.0.1 and answer the same JSON;
the client is one ``aiohttp.ClientSession``. ``case-controlled``: the test's loop takes
each request with ``receive_request()`` and answers it with ``send_json()``. ``plain``: an
aiohttp handler returns ``web.json_response``. ``sequential`` sends one request after
the other; ``concurrent`` starts all N at once and gathers them (default connector: at
most 100 connections); ``held`` sends N requests at once on N kept-alive connections (no connector
limit; the connections are opened by an untimed first batch) and the server holds every
one until all N have arrived, then answers them all: the case-controlled test receives N
requests before it sends the first answer, the plain handler waits for the N-th request;
``held`` times 5 batches of N on the same connections and reports the median batch's wall
and CPU time (one batch lasts ~0.2 s, too short to time once on a shared machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from aiotestkit import CaseControlledTestServer

PAYLOAD = {"result": {"price": "3602.2", "volume": 17}, "error": []}


HOLD_TIMEOUT = 120.0  # seconds: a held request waits at most this long for the others
BATCHES = 5  # held: timed batches of N on the same connections; the median batch is reported


@contextlib.asynccontextmanager
async def _plain(hold: int) -> AsyncIterator[str]:
    arrived = 0
    batches: dict[int, asyncio.Event] = {}

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        nonlocal arrived
        if hold:
            # Requests come in batches of ``hold``: each waits for the last of its batch.
            batch = batches.setdefault(arrived // hold, asyncio.Event())
            arrived += 1
            if arrived % hold == 0:
                batch.set()
            await asyncio.wait_for(batch.wait(), HOLD_TIMEOUT)
        return web.json_response(PAYLOAD)

    async with RawTestServer(handler) as server:
        yield str(server.make_url("/item"))


@contextlib.asynccontextmanager
async def _case_controlled(hold: int) -> AsyncIterator[str]:
    async with CaseControlledTestServer() as server:

        async def answer() -> None:
            while True:
                if hold:
                    held = [
                        await server.receive_request(timeout=HOLD_TIMEOUT) for _ in range(hold)
                    ]
                    for request in held:
                        server.send_json(request, PAYLOAD)
                    continue
                request = await server.receive_request(timeout=60.0)
                server.send_json(request, PAYLOAD)

        answering = asyncio.create_task(answer())
        try:
            yield str(server.make_url("/item"))
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await answering


SERVERS: dict[str, Callable[[int], contextlib.AbstractAsyncContextManager[str]]] = {
    "case-controlled": _case_controlled,
    "plain": _plain,
}


async def _fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


async def measure(server: str, mode: str, n: int) -> tuple[float, float]:
    """Wall and CPU seconds for ``n`` requests answered by ``server`` in ``mode``."""
    hold = n if mode == "held" else 0
    connector = aiohttp.TCPConnector(limit=0 if hold else 100)
    async with SERVERS[server](0) as warm_url, aiohttp.ClientSession() as session:
        assert await _fetch(session, warm_url) == PAYLOAD  # warm up the code paths once
    async with (
        SERVERS[server](hold) as url,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        if hold:
            # Open the N connections first (a burst of N connects overflows the listen
            # backlog, and the kernel's SYN retries would time TCP, not the server); the
            # measured batch is received and answered on them, kept alive.
            warm: list[Awaitable[Any]] = [_fetch(session, url) for _ in range(n)]
            await asyncio.gather(*warm)
        else:
            assert await _fetch(session, url) == PAYLOAD  # connect once
        walls, cpus = [], []
        for _ in range(BATCHES if hold else 1):
            start, cpu = time.perf_counter(), time.process_time()
            if mode == "sequential":
                for _ in range(n):
                    assert await _fetch(session, url) == PAYLOAD
            else:
                calls: list[Awaitable[Any]] = [_fetch(session, url) for _ in range(n)]
                results = await asyncio.gather(*calls)
                assert all(result == PAYLOAD for result in results)
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    server, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if server not in SERVERS or mode not in ("sequential", "concurrent", "held"):
        sys.exit(__doc__)
    seconds, cpu_seconds = asyncio.run(measure(server, mode, n))
    print(
        json.dumps(
            {
                "server": server,
                "mode": mode,
                "requests": n,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
