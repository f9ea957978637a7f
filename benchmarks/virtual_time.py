"""Ten virtual minutes of sleeping and back-off: wall time and speed-up over real time.

Run: python benchmarks/virtual_time.py [--repeat N]

Scenarios (each covers 600 s of loop time):
1. heartbeat: one task sleeps 1 s, 600 times (600 jumps: the cost of one jump).
2. back-off: a client retries against a case-controlled HTTPS server answering 503,
   waiting 10, 20, 40, 80, 160 and 290 s between tries (7 requests over real TLS).
3. timeouts: 20 requests that the server holds, each ending on a 30 s client timeout.

Engines: aiotestkit.VirtualClock with its default autojump_threshold (2 ms) and with 0,
and looptime (if it is importable: it is not a dependency of aiotestkit; install it in
a separate venv, see benchmarks/looptime_evaluation.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp

from aiotestkit import AiohttpRedirector, CaseControlledTestServer, VirtualClock

VIRTUAL_SECONDS = 600.0
BACKOFF = (10.0, 20.0, 40.0, 80.0, 160.0, 290.0)


async def heartbeat() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(600):
        await asyncio.sleep(1)
    assert loop.time() - start == VIRTUAL_SECONDS, loop.time() - start


async def backoff() -> None:
    loop = asyncio.get_running_loop()
    async with (
        AiohttpRedirector() as redirector,
        CaseControlledTestServer(scheme="https") as server,
    ):
        redirector.add_server("api.example.com", 443, server)
        start = loop.time()

        async def client() -> None:
            for delay in (*BACKOFF, None):
                async with redirector.session.get("https://api.example.com/") as response:
                    if response.status < 500 or delay is None:
                        return
                await asyncio.sleep(delay)

        task = asyncio.create_task(client())
        for _ in range(len(BACKOFF) + 1):
            server.send_response(await server.receive_request(timeout=300), status=503)
        await task
        assert loop.time() - start == VIRTUAL_SECONDS, loop.time() - start


async def timeouts() -> None:
    loop = asyncio.get_running_loop()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        CaseControlledTestServer() as server,
    ):
        start = loop.time()
        for _ in range(20):
            task = asyncio.create_task(session.get(server.make_url("/")))
            request = await server.receive_request(timeout=60)
            with contextlib.suppress(asyncio.TimeoutError):
                await task
            await server.wait_for_disconnect(request)
        assert 600 <= loop.time() - start < 620, loop.time() - start


SCENARIOS: dict[str, Callable[[], Awaitable[None]]] = {
    "heartbeat": heartbeat,
    "back-off": backoff,
    "timeouts": timeouts,
}


def run_virtual(scenario: Callable[[], Awaitable[None]], threshold: float) -> float:
    loop = asyncio.new_event_loop()
    clock = VirtualClock(autojump_threshold=threshold)
    clock.attach(loop)
    try:
        started = time.perf_counter()
        loop.run_until_complete(scenario())
        return time.perf_counter() - started
    finally:
        clock.detach(loop)
        loop.close()


def run_looptime(scenario: Callable[[], Awaitable[None]]) -> float:
    import looptime  # type: ignore[import-not-found]

    loop = looptime.new_event_loop()
    try:
        started = time.perf_counter()
        loop.run_until_complete(scenario())
        return time.perf_counter() - started
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import looptime  # noqa: F401

        engines: list[str] = ["virtual-2ms", "virtual-0", "looptime"]
    except ImportError:
        engines = ["virtual-2ms", "virtual-0"]
    print(f"{'scenario':<10} {'engine':<12} {'wall (median)':>14} {'virtual/wall':>13}")
    for name, scenario in SCENARIOS.items():
        for engine in engines:
            walls = []
            for _ in range(args.repeat):
                if engine == "looptime":
                    try:
                        walls.append(run_looptime(scenario))
                    except Exception as error:
                        print(f"{name:<10} {engine:<12} failed: {type(error).__name__}: {error}")
                        break
                else:
                    threshold = 0.002 if engine == "virtual-2ms" else 0.0
                    walls.append(run_virtual(scenario, threshold))
            if walls:
                wall = statistics.median(walls)
                print(
                    f"{name:<10} {engine:<12} {wall * 1000:>11.1f} ms "
                    f"{VIRTUAL_SECONDS / wall:>12.0f}x"
                )


if __name__ == "__main__":
    main()
