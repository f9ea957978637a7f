"""Per-test cost of each transport of the ``transport`` fixture: set-up, round trip, teardown.

Run: python benchmarks/transport_cost.py [--iterations N] [--tests N] [--repeats N]

1. In one process, N times per transport: set-up (a TransportContext, start_server and
   connect, which includes the TLS handshake for "tls"), one round trip (a line sent
   and echoed back by the handler), and teardown (close(): clients, server, handler
   task, socket file). The median of each phase is printed. The same for a
   CaseControlledStreamServer (start, connect, receive_connection / send / receive,
   close).
2. Per-test cost under pytest: N generated tests with one round trip each, over one
   transport (selected by the marker), against N empty async tests, in separate pytest
   processes; the difference divided by N.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _pytest_timing import EMPTY_TESTS, pytest_seconds

from aiotestkit import CaseControlledStreamServer, TransportContext, default_certificate_authority
from aiotestkit._core import TRANSPORT_NAMES


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


async def _transport_phases(name: str, n: int) -> tuple[list[float], list[float], list[float]]:
    setup, round_trip, teardown = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        context = TransportContext(name)
        reader, writer = await context.start_server_and_connect(_echo)
        t1 = time.perf_counter()
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        t2 = time.perf_counter()
        await context.close()
        t3 = time.perf_counter()
        setup.append(t1 - t0)
        round_trip.append(t2 - t1)
        teardown.append(t3 - t2)
    return setup, round_trip, teardown


async def _stream_server_phases(name: str, n: int) -> tuple[list[float], list[float], list[float]]:
    client_ssl = default_certificate_authority().client_context() if name == "tls" else None
    setup, round_trip, teardown = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        server = CaseControlledStreamServer(transport=name)
        await server.start_server()
        if name == "unix":
            assert server.path is not None
            reader, writer = await asyncio.open_unix_connection(server.path)
        else:
            reader, writer = await asyncio.open_connection(
                server.host, server.port, ssl=client_ssl
            )
        connection = await server.receive_connection()
        t1 = time.perf_counter()
        writer.write(b"ping\n")
        assert await connection.receive_line() == b"ping\n"
        await connection.send(b"pong\n")
        assert await reader.readline() == b"pong\n"
        t2 = time.perf_counter()
        await connection.close()
        writer.close()
        await server.close()
        t3 = time.perf_counter()
        setup.append(t1 - t0)
        round_trip.append(t2 - t1)
        teardown.append(t3 - t2)
    return setup, round_trip, teardown


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:.3f} ms"


TEST_BODY = """
import pytest

pytestmark = pytest.mark.asyncio

async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()

@pytest.mark.transports("{name}")
@pytest.mark.parametrize("i", range({n}))
async def test_round_trip(i, transport):
    reader, writer = await transport.start_server_and_connect(echo)
    writer.write(b"ping\\n")
    assert await reader.readline() == b"ping\\n"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--tests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    default_certificate_authority().leaf_certificate()  # issue the cert outside the timing
    for label, measure in [
        ("TransportContext", _transport_phases),
        ("CaseControlledStreamServer", _stream_server_phases),
    ]:
        for name in TRANSPORT_NAMES:
            setup, round_trip, teardown = asyncio.run(measure(name, args.iterations))
            print(
                f"{label} {name:>4}: set-up {_ms(setup)}, round trip {_ms(round_trip)}, "
                f"teardown {_ms(teardown)} (median of {args.iterations})"
            )

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        empty = statistics.median(
            pytest_seconds(directory, EMPTY_TESTS.format(n=args.tests))
            for _ in range(args.repeats)
        )
        print(f"{args.tests} empty async tests: median {empty:.2f} s")
        for name in TRANSPORT_NAMES:
            body = TEST_BODY.format(name=name, n=args.tests)
            full = statistics.median(pytest_seconds(directory, body) for _ in range(args.repeats))
            per_test = (full - empty) / args.tests
            print(
                f"{args.tests} transport tests over {name}: median {full:.2f} s; "
                f"cost per test beyond an empty async test: {per_test * 1e3:.2f} ms"
            )


if __name__ == "__main__":
    main()
