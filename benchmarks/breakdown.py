"""Where each millisecond of one routed HTTPS test goes, in CPU and in wall time.

Run: python benchmarks/breakdown.py [--iterations N] [--resolver {threaded,aiodns}]
                                    [--variants NAME,...]

Each iteration is what one test pays, on a new event loop (as pytest-asyncio gives each
test): the server starts, the sandbox opens and routes the host, an unmodified client makes
its own ``aiohttp.ClientSession`` and fetches one JSON document (the test receives the
request and answers it), then everything closes. The variants run interleaved, one
iteration each in turn; the figures are medians over the iterations, in microseconds of
wall time (``perf_counter_ns``) and of CPU time (``process_time_ns``: every thread of the
process), per phase:

- server start: ``CaseControlledTestServer().start_server()`` (plain: ``RawTestServer``);
- sandbox open, route: ``NetworkSandbox().open()``, ``await sandbox.route(host, port,
  server)`` (sandbox variants only);
- session: ``aiohttp.ClientSession()`` (builds the connector and its resolver: with aiodns,
  a c-ares channel);
- request set-up: from the session to the resolver call (aiohttp builds the request, the
  connector looks for a connection);
- resolve: the connector's host resolution (``on_dns_resolvehost_*`` traces; none for an IP
  address, as in the plain variants);
- connect: the TCP connection (up to ``loop.sock_connect`` returning; for the sandbox, to
  its gateway);
- handshake: from the connected socket to the connection aiohttp can use
  (``on_connection_create_end``): the TLS handshake, through the gateway for the sandbox;
- request: from the connection to the decoded JSON (request sent, received and answered by
  the test or the handler, response read);
- teardown: the session, the sandbox and the server closed;
- event loop: what ``asyncio.run`` adds around the test (a new loop, closed after it).

The "loop iterations" row counts the event loop's iterations per test (a wrapper around
the loop's private ``_run_once``: a diagnostic for this script only).

Variants: ``sandbox-https``, ``sandbox-http`` (a plain ``case_controlled_server`` routed on
443 or 80), ``redirector-https``, ``redirector-http`` (a ``CaseControlledTestServer`` of that
scheme added to an ``AiohttpRedirector``, whose session the client uses; "sandbox open" is
the redirector's ``open()``, "route" its ``add_server``), ``plain-https``, ``plain-http``
(aiohttp's ``RawTestServer`` with a handler and a client context trusting the test CA, as
pytest-aiohttp's ``aiohttp_raw_server`` test).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

HOST = "api.example.com"
PAYLOAD = {"result": {"price": "3602.2", "volume": 17}, "error": []}
PHASES = [
    "server start",
    "sandbox open",
    "route",
    "session",
    "request set-up",
    "resolve",
    "connect",
    "handshake",
    "request",
    "teardown",
    "event loop",
]
VARIANTS = [
    "sandbox-https",
    "redirector-https",
    "plain-https",
    "sandbox-http",
    "redirector-http",
    "plain-http",
]


class Clock:
    """Marks (name, wall ns, CPU ns) in the order the events happen."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, int, int]] = [
            ("start", time.perf_counter_ns(), time.process_time_ns())
        ]

    def mark(self, name: str) -> None:
        self.marks.append((name, time.perf_counter_ns(), time.process_time_ns()))

    def phases(self) -> dict[str, tuple[int, int]]:
        """Wall and CPU ns of each phase: from the previous mark to the phase's own."""
        out: dict[str, tuple[int, int]] = {}
        for (_, wall0, cpu0), (name, wall1, cpu1) in zip(self.marks, self.marks[1:], strict=False):
            wall, cpu = out.get(name, (0, 0))
            out[name] = (wall + wall1 - wall0, cpu + cpu1 - cpu0)
        return out


def tracing(clock: Clock) -> Any:
    import aiohttp

    async def dns_start(*_: Any) -> None:
        clock.mark("request set-up")

    async def dns_end(*_: Any) -> None:
        clock.mark("resolve")

    async def connection_create_end(*_: Any) -> None:
        clock.mark("handshake")

    config = aiohttp.TraceConfig()
    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_end.append(connection_create_end)
    return config


def instrument_loop(clock: Clock, counter: list[int]) -> None:
    """Mark the end of every TCP connect, and count the loop's iterations."""
    loop = asyncio.get_running_loop()
    connect = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        await connect(sock, address)
        clock.mark("connect")

    loop.sock_connect = sock_connect  # type: ignore[method-assign]
    run_once = getattr(loop, "_run_once", None)
    if run_once is not None:

        def counting_run_once() -> None:
            counter[0] += 1
            run_once()

        loop._run_once = counting_run_once  # type: ignore[attr-defined]


async def sandbox_test(scheme: str, clock: Clock, counter: list[int], env: Any) -> None:
    import aiohttp

    from aiotestkit import CaseControlledTestServer, NetworkSandbox

    server = CaseControlledTestServer()
    await server.start_server()
    clock.mark("server start")
    sandbox = NetworkSandbox(certificate_authority=env.ca)
    await sandbox.open()
    clock.mark("sandbox open")
    instrument_loop(clock, counter)  # after the sandbox's own patches, so it sees them
    await sandbox.route(HOST, 443 if scheme == "https" else 80, server)
    clock.mark("route")

    async def client() -> Any:
        session = aiohttp.ClientSession(trace_configs=[tracing(clock)])
        clock.mark("session")
        try:
            async with session.get(f"{scheme}://{HOST}/item/1") as response:
                response.raise_for_status()
                data = await response.json()
            clock.mark("request")
            return data
        finally:
            await session.close()

    task = asyncio.create_task(client())
    request = await server.receive_request()
    server.send_json(request, PAYLOAD)
    assert await task == PAYLOAD
    await sandbox.close()
    await server.close()
    clock.mark("teardown")


async def redirector_test(scheme: str, clock: Clock, counter: list[int], env: Any) -> None:
    from aiotestkit import AiohttpRedirector, CaseControlledTestServer

    server = CaseControlledTestServer(scheme=scheme, certificate_authority=env.ca)
    await server.start_server()
    clock.mark("server start")
    instrument_loop(clock, counter)
    redirector = AiohttpRedirector(certificate_authority=env.ca)
    await redirector.open()
    clock.mark("sandbox open")
    redirector.add_server(HOST, 443 if scheme == "https" else 80, server)
    clock.mark("route")
    session = redirector.session
    session.trace_configs.append(tracing(clock))
    for trace_config in session.trace_configs:
        trace_config.freeze()

    async def client() -> Any:
        clock.mark("session")
        async with session.get(f"{scheme}://{HOST}/item/1") as response:
            response.raise_for_status()
            data = await response.json()
        clock.mark("request")
        return data

    task = asyncio.create_task(client())
    request = await server.receive_request()
    server.send_json(request, PAYLOAD)
    assert await task == PAYLOAD
    await redirector.close()
    await server.close()
    clock.mark("teardown")


async def plain_test(scheme: str, clock: Clock, counter: list[int], env: Any) -> None:
    import aiohttp
    from aiohttp import web
    from aiohttp.test_utils import RawTestServer

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.json_response(PAYLOAD)

    https = scheme == "https"
    server = RawTestServer(handler, scheme=scheme)
    await server.start_server(ssl=env.server_context if https else None)
    clock.mark("server start")
    instrument_loop(clock, counter)
    connector = aiohttp.TCPConnector(ssl=env.client_context) if https else None
    session = aiohttp.ClientSession(connector=connector, trace_configs=[tracing(clock)])
    clock.mark("session")
    try:
        async with session.get(str(server.make_url("/item/1"))) as response:
            response.raise_for_status()
            assert await response.json() == PAYLOAD
        clock.mark("request")
    finally:
        await session.close()
        await server.close()
    clock.mark("teardown")


TESTS: dict[str, Callable[..., Any]] = {
    "sandbox-https": lambda c, n, e: sandbox_test("https", c, n, e),
    "sandbox-http": lambda c, n, e: sandbox_test("http", c, n, e),
    "redirector-https": lambda c, n, e: redirector_test("https", c, n, e),
    "redirector-http": lambda c, n, e: redirector_test("http", c, n, e),
    "plain-https": lambda c, n, e: plain_test("https", c, n, e),
    "plain-http": lambda c, n, e: plain_test("http", c, n, e),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warm-up", type=int, default=20, help="iterations not counted")
    parser.add_argument(
        "--resolver",
        choices=("threaded", "aiodns"),
        default="threaded",
        help="threaded: hide aiodns (as if not installed); aiodns: as installed",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    if args.resolver == "threaded":
        sys.modules["aiodns"] = None  # type: ignore[assignment]  # import aiodns fails
    import aiohttp.resolver

    from aiotestkit import default_certificate_authority

    ca = default_certificate_authority()
    # Shared contexts, as a session-scoped fixture would give every test.
    env = SimpleNamespace(
        ca=ca, server_context=ca.sni_server_context(), client_context=ca.client_context()
    )
    variants = args.variants.split(",")
    unknown = set(variants) - set(TESTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    samples: dict[str, list[dict[str, tuple[int, int]]]] = {v: [] for v in variants}
    iterations: dict[str, list[int]] = {v: [] for v in variants}
    for i in range(args.warm_up + args.iterations):
        for variant in variants:
            clock, counter = Clock(), [0]
            wall, cpu = time.perf_counter_ns(), time.process_time_ns()
            asyncio.run(TESTS[variant](clock, counter, env))
            wall, cpu = time.perf_counter_ns() - wall, time.process_time_ns() - cpu
            if i >= args.warm_up:
                phases = clock.phases()
                # What asyncio.run adds around the test: a new loop, closed after it.
                phases["event loop"] = (
                    wall - sum(w for w, _ in phases.values()),
                    cpu - sum(c for _, c in phases.values()),
                )
                samples[variant].append(phases)
                iterations[variant].append(counter[0])

    print(
        f"# One routed test, phase by phase: {args.iterations} iterations "
        f"({args.warm_up} warm-up), aiohttp's DefaultResolver "
        f"{aiohttp.resolver.DefaultResolver.__name__}; µs wall / µs CPU"
    )

    def cell(variant: str, phase: str | None, average: Callable[..., float]) -> str:
        runs = samples[variant]
        if phase is None:
            walls = [sum(w for w, _ in run.values()) for run in runs]
            cpus = [sum(c for _, c in run.values()) for run in runs]
        else:
            if not any(phase in run for run in runs):
                return "-"
            walls = [run.get(phase, (0, 0))[0] for run in runs]
            cpus = [run.get(phase, (0, 0))[1] for run in runs]
        return f"{average(walls) / 1e3:.0f} / {average(cpus) / 1e3:.0f}"

    for title, average in (("Medians", statistics.median), ("Means", statistics.fmean)):
        print()
        print(f"{title}:")
        print()
        print("| phase | " + " | ".join(variants) + " |")
        print("|---|" + "---:|" * len(variants))
        for phase in PHASES:
            print(f"| {phase} | " + " | ".join(cell(v, phase, average) for v in variants) + " |")
        print("| **whole test** | " + " | ".join(cell(v, None, average) for v in variants) + " |")
        print(
            "| loop iterations | "
            + " | ".join(f"{average(iterations[v]):.0f}" for v in variants)
            + " |"
        )
    print()
    print(
        "A phase's median is over its own values, so the phases need not add up to the "
        "whole test's median; the means add up, and show a phase that is sometimes slow. "
        "Wall minus CPU is time the process waited (for a CPU on a "
        "busy machine, or for a thread)."
    )


if __name__ == "__main__":
    main()
