"""A bitcoin price client for Kraken's public REST API: the code under test.

It takes an injected ``aiohttp.ClientSession`` and knows the real address of the
service; its tests (``test_kraken.py``) reroute that address to a local test server.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import aiohttp


class QuotationError(Exception):
    """The quotation is not available."""


class PayloadError(QuotationError):
    """The server's response could not be understood."""


class QuotationProvider:
    """Interface of a price source."""

    async def get_price(self, pair: str) -> Decimal:
        """Return the latest trade price for ``pair``.

        Raises:
            PayloadError: if the server response could not be understood.
            QuotationError: if the quotation is not available.
            ValueError: if ``pair`` is not a valid pair symbol.
        """
        raise NotImplementedError


class Kraken(QuotationProvider):
    """Quotations from https://api.kraken.com."""

    TICKER_URL = "https://api.kraken.com/0/public/Ticker"
    PAIRS: ClassVar[dict[str, str]] = {
        "btcusd": "XXBTZUSD",
        "btceur": "XXBTZEUR",
        "ethusd": "XETHZUSD",
        "etheur": "XETHZEUR",
    }

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 30.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def get_price(self, pair: str) -> Decimal:
        try:
            symbol = self.PAIRS[pair.lower()]
        except KeyError:
            raise ValueError(f"unknown pair {pair!r}; known: {sorted(self.PAIRS)}") from None
        payload = await self._fetch({"pair": symbol})
        if payload.get("error"):
            raise QuotationError("; ".join(map(str, payload["error"])))
        try:
            return Decimal(payload["result"][symbol]["c"][0])
        except (KeyError, IndexError, TypeError, InvalidOperation) as error:
            raise PayloadError(f"no last trade price for {symbol} in {payload!r}") from error

    async def _fetch(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            async with self._session.get(
                self.TICKER_URL, params=params, timeout=self._timeout
            ) as response:
                if response.status >= 500:
                    raise QuotationError(f"Kraken is unavailable: HTTP {response.status}")
                if response.content_type != "application/json":
                    raise PayloadError(f"expected JSON, got {response.content_type}")
                text = await response.text()
        except aiohttp.ClientError as error:
            raise QuotationError(f"cannot reach Kraken: {error}") from error
        except asyncio.TimeoutError as error:  # TimeoutError since Python 3.11
            raise QuotationError("Kraken did not answer in time") from error
        try:
            payload = json.loads(text)
        except ValueError as error:
            raise PayloadError(f"malformed JSON from Kraken: {error}") from error
        if not isinstance(payload, dict):
            raise PayloadError(f"expected a JSON object, got {payload!r}")
        return payload
