"""VirtualClock on loops it attaches to directly: restore, errors, deadlock, determinism."""

from __future__ import annotations

import asyncio
import time
import unittest
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from aiotestkit import CaseControlledTestServer, DeadlockError, VirtualClock


def _run_deadlocking(
    clock: VirtualClock, coro_factory: Callable[[], Coroutine[Any, Any, None]]
) -> DeadlockError:
    loop = asyncio.new_event_loop()
    try:
        clock.attach(loop)
        try:
            with pytest.raises(DeadlockError) as caught:
                loop.run_until_complete(coro_factory())
        finally:
            clock.detach(loop)
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    return caught.value


def test_deadlock_is_reported_with_every_waiting_task() -> None:
    async def main() -> None:
        event = asyncio.Event()

        async def helper() -> None:
            await asyncio.Queue[int]().get()

        helper_task = asyncio.create_task(helper(), name="helper")
        await asyncio.sleep(3)
        await event.wait()
        await helper_task

    started = time.perf_counter()
    error = _run_deadlocking(VirtualClock(deadlock_timeout=0.1), main)
    assert time.perf_counter() - started < 2
    message = str(error)
    assert message.startswith(
        "event loop deadlocked at virtual time t=3 s: every task waits and no timer is "
        "scheduled, no I/O arrived for 0.1 s of real time and no executor job is running"
    )
    assert "Waiting tasks (2):" in message
    assert "main):" in message
    assert "test_clock_loop.py" in message
    assert "in main: await event.wait()" in message
    assert "- helper (" in message
    assert "in helper: await asyncio.Queue[int]().get()" in message
    assert "waits on <Future pending" in message
    assert "bound the wait with asyncio.timeout()" in message


def test_deadlock_in_manual_mode_says_to_advance() -> None:
    async def main() -> None:
        await asyncio.sleep(10)

    error = _run_deadlocking(VirtualClock(autojump=False, deadlock_timeout=0.05), main)
    message = str(error)
    assert "autojump is off and the next timer is due at t=10 s (virtual; now t=0 s)" in message
    assert "await clock.advance(seconds)" in message


def test_attach_and_detach_restore_the_loop_and_keep_timer_delays() -> None:
    loop = asyncio.new_event_loop()
    try:
        selector = loop._selector  # type: ignore[attr-defined]
        handle = loop.call_later(100, lambda: None)
        remaining = handle.when() - loop.time()
        clock = VirtualClock(start=50)
        clock.attach(loop)
        assert loop.time() == 50
        # The real time that passed between the two readings (a busy machine) is lost.
        assert handle.when() - loop.time() == pytest.approx(remaining, abs=0.05)
        assert loop.time == clock.time
        assert selector.select != type(selector).select.__get__(selector)
        loop.run_until_complete(asyncio.sleep(20))
        assert clock.time() == 70
        clock.detach(loop)
        assert loop.time == type(loop).time.__get__(loop)
        assert loop.run_in_executor == type(loop).run_in_executor.__get__(loop)
        assert selector.select == type(selector).select.__get__(selector)
        assert "time" not in vars(type(loop))  # the class is left alone
        assert handle.when() - loop.time() == pytest.approx(remaining - 20, abs=0.05)
        clock.detach(loop)  # a second detach does nothing
        handle.cancel()
    finally:
        loop.close()


def test_attach_refuses_what_it_cannot_handle() -> None:
    loop = asyncio.new_event_loop()
    other = asyncio.new_event_loop()
    try:
        clock = VirtualClock()
        clock.attach(loop)
        with pytest.raises(RuntimeError, match=r"is attached to .* already; detach it first"):
            clock.attach(other)
        with pytest.raises(RuntimeError, match="has a virtual clock already"):
            VirtualClock().attach(loop)
        with pytest.raises(RuntimeError, match=r"is attached to .*, not to"):
            clock.detach(other)
        clock.detach(loop)
    finally:
        loop.close()
        other.close()
    with pytest.raises(RuntimeError, match="the loop is closed"):
        VirtualClock().attach(loop)
    with pytest.raises(TypeError, match="needs an asyncio selector event loop, got object"):
        VirtualClock().attach(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"autojump_threshold": -1}, ValueError, "autojump_threshold must be a non-negative"),
        ({"deadlock_timeout": 0}, ValueError, "deadlock_timeout must be a positive"),
        ({"in_flight_timeout": "5"}, TypeError, "in_flight_timeout must be a number"),
        ({"autojump": 1}, TypeError, "autojump must be True or False"),
        ({"start": float("nan")}, TypeError, "start must be a finite number"),
    ],
)
def test_constructor_checks_its_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        VirtualClock(**kwargs)  # type: ignore[arg-type]


def test_settings_are_checked_when_set() -> None:
    clock = VirtualClock()
    clock.autojump_threshold = 0.5
    assert clock.autojump_threshold == 0.5
    with pytest.raises(ValueError, match="autojump_threshold must be a non-negative"):
        clock.autojump_threshold = -0.1
    with pytest.raises(ValueError, match="deadlock_timeout must be a positive"):
        clock.deadlock_timeout = 0
    with pytest.raises(TypeError, match="in_flight_timeout must be a number of seconds"):
        clock.in_flight_timeout = None  # type: ignore[assignment]
    assert (clock.autojump_threshold, clock.deadlock_timeout, clock.in_flight_timeout) == (
        0.5,
        1.0,
        5.0,
    )


async def _run_scenario() -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    events: list[tuple[str, float]] = []
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:

        async def client(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            try:
                async with session.get(
                    server.make_url(f"/{name}"), timeout=aiohttp.ClientTimeout(total=7)
                ) as response:
                    events.append((f"{name} got {await response.text()}", loop.time()))
            except asyncio.TimeoutError:
                events.append((f"{name} timed out", loop.time()))

        tasks = [asyncio.create_task(client(n, d)) for n, d in [("a", 1), ("b", 2), ("c", 3)]]
        for _ in range(3):
            request = await server.receive_request()
            events.append((f"server got {request.path}", loop.time()))
            if request.path != "/b":
                await asyncio.sleep(4)
                server.send_response(request, text=request.path)
        await asyncio.gather(*tasks)
        await server.close()
    return events


def test_the_same_scenario_gives_the_same_events_on_every_run() -> None:
    runs = []
    for _ in range(3):
        loop = asyncio.new_event_loop()
        clock = VirtualClock()
        clock.attach(loop)
        try:
            runs.append(loop.run_until_complete(_run_scenario()))
        finally:
            clock.detach(loop)
            loop.close()
    assert runs[0] == runs[1] == runs[2]
    assert runs[0] == [
        ("server got /a", 1),
        ("server got /b", 5),  # b arrived at t=2 and waited in the server's queue
        ("server got /c", 5),  # c waited too: receive_request() returns it at once
        ("a got /a", 5),
        ("b timed out", 9),  # b's 7 s timeout, set at t=2, fires before c's answer
        ("c got /c", 9),
    ]


class TestVirtualClockInUnittest(unittest.IsolatedAsyncioTestCase):
    """The same clock from unittest: attach in asyncSetUp, detach as a cleanup."""

    async def asyncSetUp(self) -> None:
        loop = asyncio.get_running_loop()
        self.clock = VirtualClock()
        self.clock.attach(loop)
        self.addCleanup(self.clock.detach, loop)

    async def test_timeout_of_a_held_request(self) -> None:
        async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
            task = asyncio.create_task(
                session.get(server.make_url("/"), timeout=aiohttp.ClientTimeout(total=30))
            )
            request = await server.receive_request()
            with pytest.raises(asyncio.TimeoutError):
                await task
            assert self.clock.time() == 30
            await server.wait_for_disconnect(request)
