"""Evidence for docs/explanation/virtual-time.md: looptime 0.9 and VirtualClock, real I/O.

Under looptime, in a venv that has it (it is not a dependency of aiotestkit); the
deadlock test hangs there, hence the timeout:
    python -m venv .venv-looptime && .venv-looptime/bin/pip install -e '.[test]' looptime
    timeout 60 .venv-looptime/bin/python -m pytest benchmarks/looptime_evaluation.py -v

Under aiotestkit.VirtualClock, in the project's venv (no looptime installed):
    .venv/bin/python -m pytest benchmarks/looptime_evaluation.py -v

Each test states what an engine must do; the outcomes are recorded in
docs/explanation/virtual-time.md.
The deadlock test is expected to fail: quickly, with a report, rather than hang.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import aiohttp
import pytest

from aiotestkit import CaseControlledTestServer

try:
    import looptime  # noqa: F401

    ENGINE = pytest.mark.looptime
except ImportError:
    ENGINE = pytest.mark.virtual_clock(autojump_threshold=0.3, deadlock_timeout=0.5)

pytestmark = [pytest.mark.asyncio, ENGINE]


async def test_in_loop_server_reply_beats_the_client_timeout() -> None:
    """The case-controlled server answers at once; a 30 s client timeout must not fire."""
    loop = asyncio.get_running_loop()
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        start = loop.time()
        task = asyncio.create_task(
            session.get(server.make_url("/"), timeout=aiohttp.ClientTimeout(total=30))
        )
        request = await server.receive_request()
        await asyncio.sleep(29)  # virtual: the client still waits
        server.send_response(request, text="ok")
        async with await task as response:
            assert await response.text() == "ok"
        assert 29 <= loop.time() - start < 30


def _serve_after(listener: socket.socket, delay: float) -> None:
    connection, _ = listener.accept()
    with connection:
        connection.recv(100)
        time.sleep(delay)  # real work in another thread: the reply is on its way
        connection.sendall(b"pong")


async def test_reply_from_a_thread_server_beats_the_client_timeout() -> None:
    """A loopback peer outside the loop answers after 50 ms of real time; timeout 30 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve_after, args=(listener, 0.05))
    thread.start()
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"ping")
        data = await asyncio.wait_for(reader.read(4), timeout=30)
        assert data == b"pong"
        writer.close()
        await writer.wait_closed()
    finally:
        thread.join()
        listener.close()


async def test_executor_work_beats_the_client_timeout() -> None:
    """Blocking work in the default executor (as getaddrinfo) takes 50 ms; timeout 30 s."""
    loop = asyncio.get_running_loop()
    result = await asyncio.wait_for(loop.run_in_executor(None, time.sleep, 0.05), timeout=30)
    assert result is None


async def test_deadlock_is_reported_not_a_hang() -> None:
    """Nothing can ever wake the test: an engine should fail fast with a report."""
    await asyncio.wait_for(asyncio.Event().wait(), timeout=None)
