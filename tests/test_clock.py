"""Virtual time: sleeps, timers and timeouts over real sockets, in milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time

import aiohttp
import httpx
import pytest

from aiotestkit import (
    AiohttpRedirector,
    CaseControlledTestServer,
    NetworkSandbox,
    RequestNotPending,
    VirtualClock,
)

pytestmark = pytest.mark.asyncio


async def test_sleep_returns_at_once_and_time_is_exact(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    assert clock.time() == loop.time() == 0.0
    started = time.perf_counter()
    await asyncio.sleep(600)
    assert clock.time() == loop.time() == 600.0
    assert time.perf_counter() - started < 0.5


async def test_timers_fire_in_deadline_order(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []

    def record(name: str) -> None:
        fired.append((name, loop.time()))

    loop.call_later(30, record, "later-30")
    loop.call_at(10, record, "at-10")
    loop.call_later(20, record, "later-20")
    loop.call_later(10, record, "later-10")
    await asyncio.sleep(31)
    assert fired == [("at-10", 10), ("later-10", 10), ("later-20", 20), ("later-30", 30)]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in 3.11")
async def test_asyncio_timeout_and_wait_for_fire_at_their_virtual_deadline(
    clock: VirtualClock,
) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(30):
            await asyncio.Event().wait()
    assert clock.time() == 30.0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.Event().wait(), timeout=12.5)
    assert clock.time() == 42.5


async def test_aiohttp_client_timeout_fires_while_the_server_holds_the_request(
    clock: VirtualClock, case_controlled_server: CaseControlledTestServer
) -> None:
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(
            session.get(
                case_controlled_server.make_url("/slow"),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        )
        request = await case_controlled_server.receive_request()
        sent_at = clock.time()
        with pytest.raises(asyncio.TimeoutError):
            await task
        # aiohttp rounds deadlines of 5 s and more up to a whole second.
        assert 30 <= clock.time() - sent_at < 31
        assert request.path == "/slow"


@pytest.mark.parametrize("answer_after", [29.0, 29.999])
async def test_reply_sent_before_the_deadline_wins_over_https(
    clock: VirtualClock, aiohttp_redirector: AiohttpRedirector, answer_after: float
) -> None:
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.example.com", 443, server)
        task = asyncio.create_task(
            aiohttp_redirector.session.get(
                "https://api.example.com/price", timeout=aiohttp.ClientTimeout(sock_read=30)
            )
        )
        request = await server.receive_request()
        await asyncio.sleep(answer_after)
        server.send_json(request, {"price": "3602.2"})
        async with await task as response:
            assert await response.json() == {"price": "3602.2"}


async def test_reply_sent_after_the_deadline_loses(
    clock: VirtualClock, case_controlled_server: CaseControlledTestServer
) -> None:
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(
            session.get(
                case_controlled_server.make_url("/"), timeout=aiohttp.ClientTimeout(sock_read=2)
            )
        )
        request = await case_controlled_server.receive_request()
        await asyncio.sleep(2.5)
        assert task.done()
        with pytest.raises(asyncio.TimeoutError):
            await task
        with pytest.raises(RequestNotPending, match="its client closed the connection"):
            case_controlled_server.send_response(request, text="too late")


def _answer_after(listener: socket.socket, delay: float) -> None:
    connection, _ = listener.accept()
    with connection:
        connection.recv(4)
        time.sleep(delay)
        with contextlib.suppress(OSError):  # the client may have given up and closed
            connection.sendall(b"pong")


@pytest.mark.virtual_clock(autojump_threshold=0.3)
async def test_reply_from_a_peer_outside_the_loop_wins_within_the_threshold(
    clock: VirtualClock,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_answer_after, args=(listener, 0.05))
    thread.start()
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(4), timeout=30) == b"pong"
        assert clock.time() == 0.0
        writer.close()
        await writer.wait_closed()
    finally:
        thread.join()
        listener.close()


@pytest.mark.virtual_clock(autojump_threshold=0)
async def test_without_threshold_a_peer_outside_the_loop_is_not_waited_for(
    clock: VirtualClock,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_answer_after, args=(listener, 0.05))
    thread.start()
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"ping")
        with pytest.raises(asyncio.TimeoutError):  # TimeoutError since Python 3.11
            await asyncio.wait_for(reader.read(4), timeout=30)
        assert clock.time() == 30.0
        writer.close()
        await writer.wait_closed()
    finally:
        thread.join()
        listener.close()


@pytest.mark.virtual_clock(deadlock_timeout=0.05)
async def test_a_long_executor_job_is_not_a_deadlock(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, time.sleep, 0.3)
    assert clock.time() == 0.0


async def test_detach_fails_a_running_advance(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    clock.autojump = False
    advancing = asyncio.create_task(clock.advance(10))
    await asyncio.sleep(0)
    clock.detach(loop)
    with pytest.raises(RuntimeError, match=r"was detached while clock\.advance\(\) was running"):
        await advancing
    clock.attach(loop)  # the fixture detaches it again


async def test_executor_jobs_are_waited_for_in_real_time(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    # 0.2 s of real work against a 0.01 s virtual timeout: the job wins.
    await asyncio.wait_for(loop.run_in_executor(None, time.sleep, 0.2), timeout=0.01)
    addresses = await asyncio.wait_for(loop.getaddrinfo("127.0.0.1", 80), timeout=0.01)
    assert addresses
    assert clock.time() == 0.0


async def test_httpx_timeout_follows_virtual_time(
    clock: VirtualClock, case_controlled_server: CaseControlledTestServer
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        task = asyncio.create_task(client.get(str(case_controlled_server.make_url("/"))))
        request = await case_controlled_server.receive_request()
        sent_at = clock.time()
        with pytest.raises(httpx.ReadTimeout):
            await task
        assert clock.time() - sent_at == pytest.approx(30)
        case_controlled_server.send_response(request, text="too late")


@pytest.mark.virtual_clock(autojump=False)
async def test_advance_runs_each_timer_in_order_and_lets_it_settle(clock: VirtualClock) -> None:
    loop = asyncio.get_running_loop()
    events: list[tuple[str, float]] = []

    async def worker(name: str, delays: list[float]) -> None:
        for delay in delays:
            await asyncio.sleep(delay)
            events.append((name, loop.time()))

    tasks = [
        asyncio.create_task(worker("a", [10, 10, 10])),
        asyncio.create_task(worker("b", [15, 15])),
    ]
    await clock.advance(0)
    assert events == []
    await clock.advance(29.9)
    assert events == [("a", 10), ("b", 15), ("a", 20)]
    assert clock.time() == pytest.approx(29.9)
    await clock.advance(0.1)
    # b set its timer for t=30 at t=15, before a did at t=20.
    assert events[3:] == [("b", 30), ("a", 30)]
    await asyncio.gather(*tasks)


@pytest.mark.virtual_clock(autojump=False)
async def test_manual_mode_moves_time_only_in_advance(
    clock: VirtualClock, case_controlled_server: CaseControlledTestServer
) -> None:
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(
            session.get(
                case_controlled_server.make_url("/"), timeout=aiohttp.ClientTimeout(sock_read=5)
            )
        )
        request = await case_controlled_server.receive_request()
        assert clock.time() == 0.0
        await clock.advance(4.5)
        assert not task.done()
        case_controlled_server.send_response(request, text="in time")
        async with await task as response:
            assert await response.text() == "in time"
        assert clock.time() == 4.5


async def test_autojump_can_be_switched_off_and_on(clock: VirtualClock) -> None:
    clock.autojump = False
    sleeper = asyncio.create_task(asyncio.sleep(5))
    await clock.advance(1)
    assert not sleeper.done()
    clock.autojump = True
    await sleeper
    assert clock.time() == 5.0


async def test_advance_checks_its_argument(clock: VirtualClock) -> None:
    with pytest.raises(ValueError, match="seconds must be a non-negative finite number"):
        await clock.advance(-1)
    with pytest.raises(TypeError, match="seconds must be a number of seconds, got '1'"):
        await clock.advance("1")  # type: ignore[arg-type]


async def test_advance_needs_the_clock_attached_to_the_running_loop() -> None:
    with pytest.raises(RuntimeError, match="not attached to the running loop"):
        await VirtualClock().advance(1)


@pytest.mark.virtual_clock(deadlock_timeout=0.05)
async def test_two_concurrent_advances_are_refused(clock: VirtualClock) -> None:
    clock.autojump = False
    first = asyncio.create_task(clock.advance(10))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="another advance\\(\\) is running"):
        await clock.advance(1)
    await first


async def test_timeouts_through_the_network_sandbox(
    clock: VirtualClock,
    network_sandbox: NetworkSandbox,
    case_controlled_server: CaseControlledTestServer,
) -> None:
    await network_sandbox.route("api.kraken.com", 443, case_controlled_server)
    url = "https://api.kraken.com/0/public/Time"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession() as session:  # the client's own session
        task = asyncio.create_task(session.get(url, timeout=timeout))
        request = await case_controlled_server.receive_request()
        await asyncio.sleep(29)
        case_controlled_server.send_json(request, {"error": []})
        async with await task as response:
            assert await response.json() == {"error": []}
        task = asyncio.create_task(session.get(url, timeout=timeout))
        request = await case_controlled_server.receive_request()
        with pytest.raises(asyncio.TimeoutError):
            await task
        assert clock.time() == 59
        await case_controlled_server.wait_for_disconnect(request)


async def test_bytes_held_back_by_nagle_are_waited_for(clock: VirtualClock) -> None:
    # A server socket without TCP_NODELAY (made with proto 0, as raw-socket servers and
    # relays often are) holds a second small write until the peer acknowledges the
    # first, which a delayed ACK does only after ~40 ms of real time.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(b"+")
            writer.write(line)
        writer.close()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(answer, sock=listener)
    async with server:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        for n in range(20):
            writer.write(b"%d\n" % n)
            reply = await asyncio.wait_for(reader.readexactly(len(b"+%d\n" % n)), timeout=5)
            assert reply == b"+%d\n" % n
        assert clock.time() == 0.0
        writer.close()
        await writer.wait_closed()
