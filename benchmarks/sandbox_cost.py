"""Per-test cost of the network sandbox against aiohttp_redirector and a plain test server.

Each iteration is what one test pays: start a server, set up the tool, make one
HTTPS request (a real TLS handshake, verification on), tear everything down.

    .venv/bin/python benchmarks/sandbox_cost.py [iterations]

Prints the median and mean per iteration in milliseconds, and the sandbox's own
open + route + close cost with 1 and with 100 routes (no request).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from aiotestkit import AiohttpRedirector, NetworkSandbox, default_certificate_authority

CA = default_certificate_authority()
CLIENT_CONTEXT = CA.client_context()
SERVER_CONTEXT = CA.sni_server_context()  # shared, so no case pays for building it


async def hello(request: web.BaseRequest) -> web.Response:
    return web.Response(text="ok")


async def baseline() -> None:
    server = RawTestServer(hello)
    await server.start_server(ssl=SERVER_CONTEXT)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"https://localhost:{server.port}/", ssl=CLIENT_CONTEXT) as response,
        ):
            assert await response.text() == "ok"
    finally:
        await server.close()


async def redirector() -> None:
    server = RawTestServer(hello)
    await server.start_server(ssl=SERVER_CONTEXT)
    try:
        async with AiohttpRedirector() as redirect:
            redirect.add_server("api.example.com", 443, server)
            async with redirect.session.get("https://api.example.com/") as response:
                assert await response.text() == "ok"
    finally:
        await server.close()


async def sandbox() -> None:
    server = RawTestServer(hello)
    await server.start_server()
    try:
        async with NetworkSandbox() as sandbox:
            await sandbox.route("api.example.com", 443, server)
            async with (
                aiohttp.ClientSession() as session,
                session.get("https://api.example.com/") as response,
            ):
                assert await response.text() == "ok"
    finally:
        await server.close()


def routes_only(count: int) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        async with NetworkSandbox() as sandbox:
            for index in range(count):
                await sandbox.route(f"host{index}.example.com", 443, SERVER)

    return run


SERVER: RawTestServer


async def measure(cases: dict[str, Callable[[], Awaitable[None]]], iterations: int) -> None:
    """Run the cases round-robin, so that load changes on the machine hit all alike."""
    for case in cases.values():  # warm up: certificates, contexts, imports
        for _ in range(5):
            await case()
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(iterations):
        for name, case in cases.items():
            await asyncio.sleep(0.001)  # the previous case's closing callbacks run here
            start = time.perf_counter()
            await case()
            timings[name].append((time.perf_counter() - start) * 1000)
    for name, values in timings.items():
        print(
            f"{name:<42} median {statistics.median(values):7.3f} ms"
            f"   mean {statistics.fmean(values):7.3f} ms   (n={iterations})"
        )


async def main(iterations: int) -> None:
    global SERVER
    await measure(
        {
            "plain aiohttp test server (TLS)": baseline,
            "aiohttp_redirector (TLS, real hostname)": redirector,
            "network sandbox (TLS, real hostname)": sandbox,
        },
        iterations,
    )
    SERVER = RawTestServer(hello)
    await SERVER.start_server()
    try:
        await measure(
            {
                "sandbox open + close, no route": routes_only(0),
                "sandbox open + 1 route + close": routes_only(1),
                "sandbox open + 100 routes + close": routes_only(100),
            },
            iterations,
        )
    finally:
        await SERVER.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
