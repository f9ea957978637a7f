"""The test's side of the Kraken Spot WebSocket API v2, played on a case-controlled connection."""

from __future__ import annotations

from typing import Any

from aiotestkit import WebSocketConnection

TICKER = {"channel": "ticker", "symbol": ["BTC/USD"]}
TIME = {"time_in": "2026-11-21T20:00:00.000000Z", "time_out": "2026-11-21T20:00:00.000100Z"}


class Kraken:
    """The test's side of the Kraken WebSocket API v2, on one connection."""

    def __init__(self, connection: WebSocketConnection) -> None:
        self.connection = connection

    async def answer_ping(self) -> None:
        assert await self.connection.receive_json() == {"method": "ping"}
        await self.connection.send_json({"method": "pong", **TIME})

    async def confirm_subscription(self, params: dict[str, Any] = TICKER) -> None:
        request = await self.connection.receive_json()
        assert request == {"method": "subscribe", "params": params}
        await self.connection.send_json(
            {
                "method": "subscribe",
                "result": {"channel": "ticker", "snapshot": True, "symbol": "BTC/USD"},
                "success": True,
                **TIME,
            }
        )
