"""The real python-kraken-sdk WebSocket client against a case-controlled WebSocket server.

``kraken.spot.SpotWSClient`` connects with the ``websockets`` library to
``wss://ws.kraken.com`` + ``/v2``. The SDK documents ``ws_url=`` to point it at other
Kraken instances; these tests use it to point the unmodified client at a local
:class:`aiotestkit.CaseControlledWebSocketServer`, and the test plays Kraken: it
receives the client's ping and subscription and answers them, pushes ticker data, and
closes the connection to see the client reconnect and restore its subscription.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import WSMsgType

if sys.version_info < (3, 11):  # pyproject.toml installs python-kraken-sdk on 3.11+ only
    pytest.skip("python-kraken-sdk requires Python 3.11 or newer", allow_module_level=True)

from kraken.spot import SpotWSClient
from kraken_ws_peer import TICKER, TIME, Kraken

from aiotestkit import CaseControlledWebSocketServer, VirtualClock

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def messages() -> asyncio.Queue[Any]:
    return asyncio.Queue()


@pytest_asyncio.fixture
async def client(
    clock: VirtualClock,
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    messages: asyncio.Queue[Any],
) -> AsyncIterator[tuple[SpotWSClient, Kraken]]:
    """A started SpotWSClient and the test's Kraken side of its first connection.

    The SDK waits a random 1 to 2 s before each connection (its reconnect back-off);
    under the virtual clock (requested first, so the SDK starts in virtual time) that
    wait takes no real time, while the WebSocket traffic is real.
    """
    server = case_controlled_websocket_server
    client = SpotWSClient(callback=messages.put, ws_url=f"ws://{server.host}:{server.port}")
    starting = asyncio.create_task(client.start())
    connection = await server.receive_connection()
    assert connection.path == "/v2"
    assert connection.headers["User-Agent"] == "btschwertfeger/python-kraken-sdk"
    await connection.accept()
    kraken = Kraken(connection)
    await kraken.answer_ping()  # the client pings as soon as it is connected
    await starting
    assert await messages.get() == {"method": "pong", **TIME}
    yield client, kraken
    # The SDK checks its stop flag between messages and waits up to 10 s for one:
    # send a heartbeat so that close() returns at once.
    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0)
    live = server.connections[-1]
    if not live.finished:
        await live.send_json({"channel": "heartbeat"})
    await closing
    ending = await live.receive()  # the client's close frame, seen by the server
    assert (ending.type, live.close_code) == (WSMsgType.CLOSE, 1000)


async def test_ticker_subscription_is_confirmed(
    client: tuple[SpotWSClient, Kraken], messages: asyncio.Queue[Any]
) -> None:
    spot, kraken = client
    await spot.subscribe(params=TICKER)
    await kraken.confirm_subscription()
    confirmation = await asyncio.wait_for(messages.get(), 5)
    assert confirmation["success"] is True
    assert spot.active_public_subscriptions == [
        {"channel": "ticker", "snapshot": True, "symbol": ["BTC/USD"]}
    ]


async def test_pushed_ticker_reaches_on_message(
    client: tuple[SpotWSClient, Kraken], messages: asyncio.Queue[Any]
) -> None:
    spot, kraken = client
    await spot.subscribe(params=TICKER)
    await kraken.confirm_subscription()
    await asyncio.wait_for(messages.get(), 5)
    update = {
        "channel": "ticker",
        "type": "update",
        "data": [{"symbol": "BTC/USD", "bid": 97000.1, "ask": 97000.2, "last": 97000.1}],
    }
    await kraken.connection.send_json(update)
    assert await asyncio.wait_for(messages.get(), 5) == update


async def test_client_ping_gets_the_servers_pong(
    client: tuple[SpotWSClient, Kraken], messages: asyncio.Queue[Any]
) -> None:
    spot, kraken = client
    await spot.send_message({"method": "ping", "req_id": 7})
    assert await kraken.connection.receive_json() == {"method": "ping", "req_id": 7}
    await kraken.connection.send_json({"method": "pong", "req_id": 7, **TIME})
    assert await asyncio.wait_for(messages.get(), 5) == {"method": "pong", "req_id": 7, **TIME}


async def test_server_close_makes_the_client_reconnect_and_resubscribe(
    client: tuple[SpotWSClient, Kraken],
    messages: asyncio.Queue[Any],
    case_controlled_websocket_server: CaseControlledWebSocketServer,
) -> None:
    spot, kraken = client
    await spot.subscribe(params=TICKER)
    await kraken.confirm_subscription()
    await asyncio.wait_for(messages.get(), 5)

    await kraken.connection.close(1001, "maintenance")

    # The SDK waits 1 to 2 s (random back-off, virtual here), then connects again.
    second = await case_controlled_websocket_server.receive_connection(timeout=10)
    assert second.path == "/v2"
    again = Kraken(second)
    await again.answer_ping()
    # The subscription is restored, as the server confirmed it the first time.
    await again.confirm_subscription({**TICKER, "snapshot": True})
    assert kraken.connection.close_code == 1001
    assert not spot.exception_occur
