"""The unmodified SpotWSClient under its real address, ``wss://ws.kraken.com/v2``.

No ``ws_url=``: the network sandbox routes ``ws.kraken.com:443`` to the test's
:class:`aiotestkit.CaseControlledWebSocketServer` and makes the client's TLS handshake
succeed with a certificate for ``ws.kraken.com`` from the test CA, verification on.
The virtual clock skips the SDK's 1 to 2 s back-off before it connects.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

if sys.version_info < (3, 11):  # pyproject.toml installs python-kraken-sdk on 3.11+ only
    pytest.skip("python-kraken-sdk requires Python 3.11 or newer", allow_module_level=True)

from kraken.spot import SpotWSClient
from kraken_ws_peer import TICKER, TIME, Kraken

from aiotestkit import CaseControlledWebSocketServer, NetworkSandbox, VirtualClock

pytestmark = pytest.mark.asyncio


async def test_real_address_over_verified_tls(
    clock: VirtualClock,
    network_sandbox: NetworkSandbox,
    case_controlled_websocket_server: CaseControlledWebSocketServer,
) -> None:
    server = case_controlled_websocket_server
    await network_sandbox.route("ws.kraken.com", 443, server)
    messages: asyncio.Queue[Any] = asyncio.Queue()
    client = SpotWSClient(callback=messages.put)
    assert client.WS_URL == "wss://ws.kraken.com/v2"
    starting = asyncio.create_task(client.start())

    connection = await server.receive_connection(timeout=10)
    assert connection.request.secure
    assert connection.request.host == "ws.kraken.com"
    assert connection.path == "/v2"
    kraken = Kraken(connection)
    await kraken.answer_ping()
    await starting
    assert await messages.get() == {"method": "pong", **TIME}

    await client.subscribe(params=TICKER)
    await kraken.confirm_subscription()
    assert (await asyncio.wait_for(messages.get(), 5))["success"] is True

    closing = asyncio.create_task(client.close())
    await asyncio.sleep(0)
    await connection.send_json({"channel": "heartbeat"})  # the SDK checks its stop flag
    await closing
    assert (await connection.receive()).type.name == "CLOSE"
    network_sandbox.assert_tls_verified()
