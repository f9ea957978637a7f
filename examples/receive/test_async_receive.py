# ruff: noqa: PT027  # a unittest.TestCase: its own assertRaises is the point
"""Seed 003's tests of ``receive()``, with aiotestkit.mock, as a unittest test case.

Runs under ``python -m unittest`` (from this directory) and under pytest alike. No
``_run()`` helper: ``IsolatedAsyncioTestCase`` runs the ``async def`` tests. No
hand-made ``AsyncMock``: ``async_patch`` puts a standard ``unittest.mock.AsyncMock``
in place and passes it to the test, so nothing is imported back from the module.
"""

from __future__ import annotations

import unittest
from unittest import mock

from async_receive import receive

from aiotestkit.mock import assert_all_awaited, async_patch


class TestReceive(unittest.IsolatedAsyncioTestCase):
    async def test_invalid_packet(self) -> None:
        with self.assertRaisesRegex(ValueError, "Invalid packet type 'FOO'"):
            await receive("FOO", "data")

    @async_patch("async_receive.send_to_client")
    async def test_ping(self, send_to_client: mock.AsyncMock) -> None:
        await receive("PING", "data")
        send_to_client.assert_awaited_once_with("PONG", "data")
        assert_all_awaited(send_to_client)

    @async_patch("async_receive.trigger_event", return_value="my response")
    @async_patch("async_receive.send_to_client")
    async def test_message(
        self, send_to_client: mock.AsyncMock, trigger_event: mock.AsyncMock
    ) -> None:
        await receive("MESSAGE", "data")
        trigger_event.assert_awaited_once_with("message", "data")
        send_to_client.assert_awaited_once_with("MESSAGE", "my response")
        assert_all_awaited(send_to_client, trigger_event)

    @async_patch("async_receive.trigger_event", side_effect=TimeoutError("no handler"))
    @async_patch("async_receive.send_to_client")
    async def test_message_without_a_response_sends_nothing(
        self, send_to_client: mock.AsyncMock, trigger_event: mock.AsyncMock
    ) -> None:
        with self.assertRaises(TimeoutError):
            await receive("MESSAGE", "data")
        trigger_event.assert_awaited_once_with("message", "data")
        send_to_client.assert_not_called()


if __name__ == "__main__":
    unittest.main()
