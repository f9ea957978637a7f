"""Seed 003's tests of ``receive()``, with aiotestkit.mock, as pytest functions.

With pytest the mocks come first in the signature, fixtures after them: pytest
knows which arguments the patchers fill, as with ``unittest.mock.patch``.
"""

from __future__ import annotations

from unittest import mock

import pytest
from async_receive import receive

from aiotestkit.mock import assert_all_awaited, async_patch

pytestmark = pytest.mark.asyncio


async def test_invalid_packet() -> None:
    with pytest.raises(ValueError, match="Invalid packet type 'FOO'"):
        await receive("FOO", "data")


@async_patch("async_receive.send_to_client")
async def test_ping(send_to_client: mock.AsyncMock) -> None:
    await receive("PING", "data")
    send_to_client.assert_awaited_once_with("PONG", "data")
    assert_all_awaited(send_to_client)


@async_patch("async_receive.trigger_event", return_value="my response")
@async_patch("async_receive.send_to_client")
async def test_message(
    send_to_client: mock.AsyncMock, trigger_event: mock.AsyncMock, caplog: pytest.LogCaptureFixture
) -> None:
    await receive("MESSAGE", "data")
    trigger_event.assert_awaited_once_with("message", "data")
    send_to_client.assert_awaited_once_with("MESSAGE", "my response")
    assert_all_awaited(send_to_client, trigger_event)
    assert caplog.records == []  # a fixture after the mocks


async def test_message_as_context_managers() -> None:
    async with (
        async_patch("async_receive.trigger_event", return_value="my response") as trigger_event,
        async_patch("async_receive.send_to_client") as send_to_client,
    ):
        await receive("MESSAGE", "data")
    trigger_event.assert_awaited_once_with("message", "data")
    send_to_client.assert_awaited_once_with("MESSAGE", "my response")
